#!/usr/bin/env bash
# Flame graphs of the Raft leader of a local 3-node cluster under redis-benchmark SET and GET.
#
#   cargo build --release && benches/compare/flamegraph.sh [OUT_DIR]     (default benches/flame)
#
# Starts `ketch cluster --nodes 3` (one `ketch serve` process per node) in a temporary directory,
# finds the leader and its process id through INFO, and for each of SET and GET runs
# `redis-benchmark -c 50 -d 256 -P 1 -r 100000` against the leader while `perf record` samples
# the leader's process alone (every thread, DWARF call graphs) for SECS seconds (default 10).
# inferno folds the stacks and draws OUT_DIR/leader-set.svg and OUT_DIR/leader-get.svg.
# Needs perf, redis-benchmark, redis-cli, and inferno (`cargo install inferno`).
# READ_MODE (read-index or lease) is passed to the cluster; KETCH names the binary; FOLDED=PREFIX
# keeps the folded stacks as PREFIX-set.folded and PREFIX-get.folded.
#
# SHARDS=N (above 1) starts `ketch cluster --nodes 3 --shards N` instead, runs
# `redis-benchmark --cluster`, and samples node 1 (which leads a third of the ranges and
# follows the rest), drawing OUT_DIR/sharded-set.svg and OUT_DIR/sharded-get.svg.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
ketch=${KETCH:-$root/target/release/ketch}
out=${1:-$root/benches/flame}
secs=${SECS:-10}
read_mode=${READ_MODE:-read-index}
shards=${SHARDS:-1}
for tool in perf redis-benchmark redis-cli inferno-collapse-perf inferno-flamegraph; do
    command -v "$tool" >/dev/null || { echo "flamegraph.sh needs $tool on PATH" >&2; exit 2; }
done
[ -x "$ketch" ] || { echo "no ketch binary at $ketch (cargo build --release)" >&2; exit 2; }
mkdir -p "$out"
work=$(mktemp -d)
. "$root/benches/compare/local_cluster.sh"
cleanup() {
    stop_local_cluster
    rm -rf "$work"
}
trap cleanup EXIT
if [ "$shards" -gt 1 ]; then
    start_local_cluster "$ketch" "$work" --shards "$shards" || exit 1
    # Every range led, leaders handed to their hosts (node 1 then leads a third of them).
    for _ in $(seq 300); do
        redis-cli -p 6380 cluster info 2>/dev/null | grep -q '^cluster_state:ok' \
            && [ "$(redis-cli -p 6380 cluster nodes | awk 'NF > 8' | wc -l)" = 3 ] && break
        sleep 0.1
    done
    leader_port=6380
    cluster_flag=--cluster
    name=sharded
    what="ketch node 1 of 3, $shards shards, redis-benchmark --cluster"
else
    start_local_cluster "$ketch" "$work" --read-mode "$read_mode" || exit 1
    leader_port=$LEADER_PORT
    cluster_flag=
    name=leader
    what="ketch leader, redis-benchmark"
fi
leader_pid=$(redis-cli -p "$leader_port" info server | tr -d '\r' | sed -n 's/^process_id://p')
echo "sampling port $leader_port, process $leader_pid, read mode $read_mode, $shards shards" >&2

for test in set get; do
    # Enough requests to outlast the sampling; stopped once it ends.
    # shellcheck disable=SC2086
    redis-benchmark $cluster_flag -p "$leader_port" -t "$test" -n 100000000 -c 50 -d 256 -P 1 \
        -r 100000 -q > "$work/bench-$test.log" 2>&1 &
    bench_pid=$!
    sleep 2
    perf record -q -F 499 --call-graph dwarf,16384 -p "$leader_pid" -o "$work/perf-$test.data" \
        -- sleep "$secs" 2> "$work/perf-$test.log"
    kill "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
    perf script -i "$work/perf-$test.data" 2>/dev/null | inferno-collapse-perf > "$work/$test.folded"
    title="$what $test -c 50 -d 256 -P 1 ($read_mode reads)"
    inferno-flamegraph --title "$title" < "$work/$test.folded" > "$out/$name-$test.svg"
    echo "$out/$name-$test.svg: $(wc -l < "$work/$test.folded") stacks" >&2
    [ -n "${FOLDED:-}" ] && cp "$work/$test.folded" "$FOLDED-$test.folded"
    echo "$test: $(tr '\r' '\n' < "$work/bench-$test.log" | grep -a 'rps=' | tail -1)" >&2
done
