#!/usr/bin/env bash
# Ketch's 3-node leader against one redis-server (appendonly yes, appendfsync always), alternated:
# redis-benchmark -t set,get -n N -c 50 -d 256 -P 1 -r 100000 against a fresh server of each
# kind per round, which goes first alternating between rounds. Prints every run, then each
# round's Ketch/Redis ratio and the median ratio per test.
#
#   cargo build --release && ROUNDS=3 READ_MODE=read-index benches/compare/redis_ratio.sh
#
# KETCH names the binary (default target/release/ketch), N the requests per test (100000),
# READ_MODE is passed to `ketch cluster --read-mode` (read-index or lease).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
ketch=${KETCH:-$root/target/release/ketch}
rounds=${ROUNDS:-3}
n=${N:-100000}
read_mode=${READ_MODE:-read-index}
redis_port=7379
for tool in redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "redis_ratio.sh needs $tool on PATH" >&2; exit 2; }
done
results=$(mktemp)
. "$root/benches/compare/local_cluster.sh"

bench() { # kind round port
    local kind=$1 round=$2 port=$3 test rate
    for test in set get; do
        rate=$(redis-benchmark -p "$port" -n "$n" -c 50 -d 256 -r 100000 -t "$test" -P 1 --csv \
            2>/dev/null | grep -v '^"test"' | head -1 | cut -d, -f2 | tr -d '"')
        echo "$round $kind $test ${rate:-0}" | tee -a "$results"
    done
}

run_redis() { # round
    local work
    work=$(mktemp -d)
    redis-server --port "$redis_port" --dir "$work" --appendonly yes --appendfsync always \
        --save "" --daemonize yes --logfile "$work/redis.log"
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    bench redis "$1" "$redis_port"
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1
    sleep 0.5
    rm -rf "$work"
}

run_ketch() { # round
    local work
    work=$(mktemp -d)
    if start_local_cluster "$ketch" "$work" --read-mode "$read_mode"; then
        bench ketch "$1" "$LEADER_PORT"
    else
        echo "round $1: no leader" >&2
    fi
    stop_local_cluster
    rm -rf "$work"
}

for round in $(seq "$rounds"); do
    if [ $((round % 2)) = 1 ]; then run_redis "$round"; run_ketch "$round"
    else run_ketch "$round"; run_redis "$round"; fi
done

python3 - "$results" "$read_mode" <<'EOF'
import statistics, sys
from collections import defaultdict
rates = defaultdict(dict)
for line in open(sys.argv[1]):
    round_, kind, test, rate = line.split()
    rates[(test, round_)][kind] = float(rate)
for test in ("set", "get"):
    ratios = [r["ketch"] / r["redis"] for (t, _), r in sorted(rates.items())
              if t == test and r.get("redis") and "ketch" in r]
    if ratios:
        shown = " ".join(f"{x:.2f}" for x in ratios)
        print(f"{test} ({sys.argv[2]} reads): Ketch/Redis per round {shown}; "
              f"median {statistics.median(ratios):.2f}x")
EOF
rm -f "$results"
