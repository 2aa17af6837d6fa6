#!/usr/bin/env bash
# Ketch's durable log against okaywal and raft-engine in the shared `wal-bench` harness.
#
#   benches/compare/wal_bench.sh [ROUNDS] [WORKLOAD...]    (default: 2 rounds of w1 w2 w3 w4)
#
# Copies the harness (a checkout of wal-bench named by WAL_BENCH_SRC) to a temporary directory, turns
# on its `ketch` feature against this checkout's `storage/`, puts wal_bench_ketch.rs in as the
# Ketch engine, builds it, then runs 5 s per engine, alternating engines within each workload:
# Ketch compacting like okaywal's checkpoint (`ketch-ckpt`), okaywal, Ketch keeping every entry,
# raft-engine. KETCH_ENGINE=store builds the `LogStore` adapter (wal_bench_ketch_store.rs) as the
# ketch engine instead of the `Wal` one. Data goes to WAL_BENCH_DIR (default: a directory on the same disk as this
# checkout, since tmpfs would make fsync free). One line per run on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
src=${WAL_BENCH_SRC:?set WAL_BENCH_SRC to a checkout of the wal-bench harness}
rounds=${1:-2}
shift || true
workloads=${*:-w1 w2 w3 w4}
[ -f "$src/Cargo.toml" ] || { echo "no wal-bench at $src (set WAL_BENCH_SRC)" >&2; exit 2; }

mkdir -p "$root/target"
work=$(mktemp -d "$root/target/wal-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$src" "$work/harness"
rm -rf "$work/harness/target"
sed -i 's|^# *ketch = \["dep:ketch-storage"\]|ketch = ["dep:ketch-storage"]|' "$work/harness/Cargo.toml"
grep -q '^ketch = \["dep:ketch-storage"\]' "$work/harness/Cargo.toml" ||
    { echo "could not enable the ketch feature in $src/Cargo.toml" >&2; exit 2; }
sed -i "/^\[dependencies\]/a ketch-storage = { path = \"$root/storage\", optional = true }" \
    "$work/harness/Cargo.toml"
if [ "${KETCH_ENGINE:-wal}" = store ]; then
    # The multi-group LogStore as the ketch engine (each harness stream a group).
    cp "$here/wal_bench_ketch_store.rs" "$work/harness/src/engines/ketch.rs"
else
    cp "$here/wal_bench_ketch.rs" "$work/harness/src/engines/ketch.rs"
fi
echo "building wal-bench with the ketch engine in $work" >&2
cargo build --quiet --release --features ketch --manifest-path "$work/harness/Cargo.toml"
bench=$work/harness/target/release/wal-bench
data=${WAL_BENCH_DIR:-$work/data}

for round in $(seq "$rounds"); do
    for workload in $workloads; do
        for config in ketch-ckpt okaywal ketch raft-engine; do
            engine=${config%-ckpt}
            checkpoint=()
            [ "$config" = ketch-ckpt ] && checkpoint=(KETCH_CHECKPOINT=1)
            rm -rf "$data"
            line=$(env "${checkpoint[@]}" "$bench" --engine "$engine" --workload "$workload" \
                --secs 5 --dir "$data" 2>&1 | tail -n 1)
            echo "round $round $workload $config: $line"
        done
    done
done
rm -rf "$data"
