#!/usr/bin/env bash
# Ketch's durable log against okaywal and raft-engine in the shared `wal-bench` harness.
#
#   benches/compare/wal_bench.sh [ROUNDS] [WORKLOAD...]    (default: 2 rounds of w1 w2 w3 w4)
#
#   CONFIGS="ketch ketch-store" SECS=60 ARGS="--lagging 100" SEGMENT_MIB=16 \
#       benches/compare/wal_bench.sh 3 w5
#
# Copies the harness (a checkout of wal-bench named by WAL_BENCH_SRC) to a temporary directory, turns
# on its `ketch` feature against this checkout's `storage/`, puts wal_bench_ketch.rs in as the
# Ketch engine, builds it, then runs 5 s per engine, alternating engines within each workload:
# Ketch compacting like okaywal's checkpoint (`ketch-ckpt`), okaywal, Ketch keeping every entry,
# raft-engine, and `LogStore` with one group per stream (`ketch-store`, wal_bench_ketch_store.rs).
# CONFIGS picks and orders the configurations, SECS the seconds per run (default 5), ARGS adds
# harness flags to every run, SEGMENT_MIB sets the segment size of both Ketch engines. Data goes
# to WAL_BENCH_DIR (default: a directory on the same disk as this checkout, since tmpfs would
# make fsync free). WAL_BENCH_TARGET keeps the builds there (incremental next time) instead of in
# the temporary directory. QUIET=SECONDS waits, before each run, up to that long for a quiet
# data disk (under 2 MB written in a second, by anyone), and tries a run again (twice at most)
# if other processes wrote over 5 MB during it. Every line ends with the harness's
# `foreign-activity.py` report: CPU seconds and bytes written by other processes during the
# run. One line per run on stdout.
#
# BASELINE names another checkout (an older commit, say) to measure in the same run: the harness
# is built a second time against its storage/ and engine files, and the configurations
# `base-ketch`, `base-ketch-ckpt` and `base-ketch-store` run that build, alternated with the rest:
#
#   BASELINE=../old CONFIGS="base-ketch-ckpt ketch-ckpt okaywal base-ketch ketch" \
#       benches/compare/wal_bench.sh 3
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

# Builds the harness against checkout $1 (its storage/ and its engine files) into $work/$2.
build_harness() {
    local checkout=$1 harness=$work/$2
    cp -r "$src" "$harness"
    rm -rf "$harness/target"
    sed -i 's|^# *ketch = \["dep:ketch-storage"\]|ketch = ["dep:ketch-storage"]|' "$harness/Cargo.toml"
    grep -q '^ketch = \["dep:ketch-storage"\]' "$harness/Cargo.toml" ||
        { echo "could not enable the ketch feature in $src/Cargo.toml" >&2; exit 2; }
    sed -i "/^\[dependencies\]/a ketch-storage = { path = \"$checkout/storage\", optional = true }" \
        "$harness/Cargo.toml"
    cp "$checkout/benches/compare/wal_bench_ketch.rs" "$harness/src/engines/ketch.rs"
    cp "$checkout/benches/compare/wal_bench_ketch_store.rs" "$harness/src/engines/ketch_store.rs"
    # Register `ketch-store` beside `ketch`: module, engine name, dispatch arm.
    sed -i 's|^pub mod ketch;|pub mod ketch;\n#[cfg(feature = "ketch")]\npub mod ketch_store;|; s|^    "ketch",|    "ketch",\n    #[cfg(feature = "ketch")]\n    "ketch-store",|' \
        "$harness/src/engines/mod.rs"
    sed -i 's|^\( *\)"ketch" => run::<engines::ketch::Ketch>(&args),|&\n\1#[cfg(feature = "ketch")]\n\1"ketch-store" => run::<engines::ketch_store::KetchStore>(\&args),|' \
        "$harness/src/main.rs"
    grep -q '"ketch-store" => run::<engines::ketch_store::KetchStore>' "$harness/src/main.rs" ||
        { echo "could not register the ketch-store engine in $src/src/main.rs" >&2; exit 2; }
    echo "building wal-bench with the ketch engine of $checkout in $harness" >&2
    local target=$harness/target
    [ -n "${WAL_BENCH_TARGET:-}" ] && target=$WAL_BENCH_TARGET/$2
    CARGO_TARGET_DIR=$target \
        cargo build --quiet --release --features ketch --manifest-path "$harness/Cargo.toml"
    ln -sfn "$target" "$harness/built"
}

build_harness "$root" harness
bench=$work/harness/built/release/wal-bench
if [ -n "${BASELINE:-}" ]; then
    baseline=$(cd "$BASELINE" && pwd)
    [ -d "$baseline/storage" ] || { echo "no storage/ in BASELINE=$BASELINE" >&2; exit 2; }
    build_harness "$baseline" baseline
fi
data=${WAL_BENCH_DIR:-$work/data}
configs=${CONFIGS:-ketch-ckpt okaywal ketch raft-engine}
secs=${SECS:-5}
read -r -a extra <<< "${ARGS:-}"
mkdir -p "$data"
disk_stat=/sys/dev/block/$(stat -c '%d' "$data" | awk '{printf "%d:%d", int($1/256), $1%256}')/stat
# (each run starts from an empty one: see below)

# Bytes written to the data disk so far, by anyone.
disk_written() { echo $(($(awk '{print $7}' "$disk_stat") * 512)); }

# QUIET=SECONDS: wait up to that long for a second in which under 2 MB reach the data disk.
wait_quiet() {
    local waited=0 before
    while [ "$waited" -lt "$QUIET" ]; do
        before=$(disk_written)
        sleep 1
        [ $(($(disk_written) - before)) -lt 2000000 ] && return
        waited=$((waited + 1))
    done
    echo "disk still busy after ${QUIET}s; measuring anyway" >&2
}

for round in $(seq "$rounds"); do
    for workload in $workloads; do
        for config in $configs; do
            binary=$bench
            case $config in
                base-*)
                    [ -n "${BASELINE:-}" ] || { echo "config $config needs BASELINE" >&2; exit 2; }
                    binary=$work/baseline/built/release/wal-bench ;;
            esac
            engine=${config#base-}
            engine=${engine%-ckpt}
            vars=()
            [ "${config%-ckpt}" != "$config" ] && vars+=(KETCH_CHECKPOINT=1)
            [ -n "${SEGMENT_MIB:-}" ] && vars+=(KETCH_SEGMENT_MIB="$SEGMENT_MIB")
            # With QUIET, a run during which others wrote over 5 MB is tried again, twice at most.
            for try in 1 2 3; do
                rm -rf "$data"
                [ -n "${QUIET:-}" ] && wait_quiet
                foreign=""
                if [ -f "$src/foreign-activity.py" ]; then
                    rm -f "$work/stop"
                    python3 "$src/foreign-activity.py" $$ "$work/stop" >"$work/foreign" &
                    monitor=$!
                fi
                line=$(env "${vars[@]}" "$binary" --engine "$engine" --workload "$workload" \
                    --secs "$secs" --dir "$data" "${extra[@]}" 2>&1 | tail -n 1)
                if [ -f "$src/foreign-activity.py" ]; then
                    touch "$work/stop"
                    wait "$monitor"
                    foreign=" $(cat "$work/foreign")"
                fi
                [ -n "${QUIET:-}" ] || break
                awk -v line="$foreign" 'BEGIN { exit !(match(line, /foreign_write_mb=[0-9.]+/) &&
                    substr(line, RSTART + 17, RLENGTH - 17) + 0 > 5) }' || break
                [ "$try" -lt 3 ] && echo "round $round $workload $config: others wrote during the run, again:$foreign" >&2
            done
            echo "round $round $workload $config: $line$foreign"
        done
    done
done
rm -rf "$data"
