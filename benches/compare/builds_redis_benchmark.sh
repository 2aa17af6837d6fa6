#!/usr/bin/env bash
# Two builds of `ketch` side by side, alternated in one run: redis-benchmark SET and GET
# (-c 50 -d 256 -P 1) against a fresh local 3-node cluster of each build, ROUNDS times.
# Usage: KETCH_A=path/to/old/ketch KETCH_B=target/release/ketch benches/compare/builds_redis_benchmark.sh
# Prints one line per (round, build, test) and the per-build medians at the end.
set -uo pipefail
: "${KETCH_A:?KETCH_A must name the first ketch binary}"
: "${KETCH_B:?KETCH_B must name the second ketch binary}"
ROUNDS=${ROUNDS:-3}
N=${N:-100000}
results=$(mktemp)
. "$(dirname "$0")/local_cluster.sh"

run_build() { # label binary round
    local label=$1 bin=$2 round=$3 work
    work=$(mktemp -d)
    if ! start_local_cluster "$bin" "$work"; then
        echo "$label round $round: no leader" >&2
    else
        for t in set get; do
            local rate
            rate=$(redis-benchmark -p "$LEADER_PORT" -n "$N" -c 50 -d 256 -r 100000 -t "$t" -P 1 --csv 2>/dev/null |
                grep -v '^"test"' | head -1 | cut -d, -f2 | tr -d '"')
            echo "$round $label $t $rate" | tee -a "$results"
        done
    fi
    stop_local_cluster
    pkill -f "$work" 2>/dev/null
    rm -rf "$work"
}

for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        run_build A "$KETCH_A" "$round"; run_build B "$KETCH_B" "$round"
    else
        run_build B "$KETCH_B" "$round"; run_build A "$KETCH_A" "$round"
    fi
done

echo "medians (requests/s):"
for label in A B; do
    for t in set get; do
        median=$(awk -v l=$label -v t=$t '$2==l && $3==t {print $4}' "$results" | sort -n |
            awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}')
        echo "$label $t $median"
    done
done
rm -f "$results"
