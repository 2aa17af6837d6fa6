#!/usr/bin/env bash
# Sharded against unsharded, with a Redis Cluster as the anchor, alternated per round:
#
#   single:  ketch cluster --nodes 3 (one group); redis-benchmark at its leader
#   sharded: ketch cluster --nodes 3 --shards 16; redis-benchmark --cluster
#   redis:   3 redis-server --cluster-enabled yes masters (appendfsync always);
#            redis-benchmark --cluster
#
# each with -t set,get -n N -c 50 -d 256 -P 1 -r 100000. Beside throughput it reads each
# node process's CPU time (utime + stime, /proc/PID/stat) before and after every test, and
# reports the busiest node's CPU time per operation. Prints every run, then per round and as
# medians: sharded/single SET and GET throughput, sharded/single busiest-node CPU per
# operation, and sharded/redis SET throughput.
#
#   cargo build --release && ROUNDS=3 benches/compare/sharded.sh
#
# KETCH names the binary (default target/release/ketch), N the requests per test (500000),
# SHARDS the shard count of the sharded run (16).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
ketch=${KETCH:-$root/target/release/ketch}
rounds=${ROUNDS:-3}
n=${N:-500000}
shards=${SHARDS:-16}
for tool in redis-server redis-cli redis-benchmark python3; do
    command -v "$tool" >/dev/null || { echo "sharded.sh needs $tool on PATH" >&2; exit 2; }
done
results=$(mktemp)
. "$root/benches/compare/local_cluster.sh"
hz=$(getconf CLK_TCK)

cpu_ticks() { # pid -> utime + stime, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

bench() { # kind round port pids [--cluster]
    local kind=$1 round=$2 port=$3 pids=$4 cluster=${5:-} test rate pid before after busiest
    local started ended
    for test in set get; do
        declare -A start=()
        for pid in $pids; do start[$pid]=$(cpu_ticks "$pid"); done
        # The rate is the requests over the benchmark's wall-clock time, the same way for
        # every kind. With --cluster, redis-benchmark ends on a 250 ms tick, so its elapsed
        # time (its own figure's and the process's) is rounded up to a multiple of 250 ms
        # (runs of 100,000, 130,000, 160,000 and 200,000 GETs took 2021, 2519, 3017 and
        # 3768 ms): N is large enough that this is a few percent at most.
        started=$(date +%s%N)
        # shellcheck disable=SC2086
        redis-benchmark $cluster -p "$port" -n "$n" -c 50 -d 256 -r 100000 -t "$test" -P 1 \
            --csv >/dev/null 2>&1
        ended=$(date +%s%N)
        rate=$(python3 -c "print(f'{$n * 1e9 / ($ended - $started):.0f}')")
        busiest=0
        for pid in $pids; do
            after=$(cpu_ticks "$pid")
            before=${start[$pid]}
            [ $((after - before)) -gt "$busiest" ] && busiest=$((after - before))
        done
        # CPU microseconds per operation of the busiest node.
        cpu=$(python3 -c "print(f'{$busiest / $hz / $n * 1e6:.1f}')")
        echo "$round $kind $test ${rate:-0} $cpu" | tee -a "$results"
        unset start
    done
}

node_pids() { # the `ketch serve` children of the local cluster
    pgrep -P "$CLUSTER_PID" | tr '\n' ' '
}

run_single() { # round
    local work
    work=$(mktemp -d)
    if start_local_cluster "$ketch" "$work"; then
        bench single "$1" "$LEADER_PORT" "$(node_pids)"
    else
        echo "round $1: no leader" >&2
    fi
    stop_local_cluster
    rm -rf "$work"
}

# Every shard has a leader and the leaders are spread: each of the 3 hosts leads a range.
sharded_ready() {
    local nodes
    nodes=$(redis-cli -p 6380 cluster nodes 2>/dev/null) || return 1
    redis-cli -p 6380 cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    [ "$(echo "$nodes" | awk 'NF > 8' | wc -l)" = 3 ]
}

run_sharded() { # round
    local work
    work=$(mktemp -d)
    if start_local_cluster "$ketch" "$work" --shards "$shards"; then
        for _ in $(seq 300); do sharded_ready && break; sleep 0.1; done
        sharded_ready || echo "round $1: leaders not spread over the 3 hosts" >&2
        bench sharded "$1" 6380 "$(node_pids)" --cluster
    else
        echo "round $1: no leader" >&2
    fi
    stop_local_cluster
    rm -rf "$work"
}

run_redis() { # round
    local work port pids="" addrs=""
    work=$(mktemp -d)
    for port in 7380 7381 7382; do
        mkdir -p "$work/$port"
        redis-server --port "$port" --dir "$work/$port" --cluster-enabled yes \
            --cluster-config-file nodes.conf --appendonly yes --appendfsync always --save "" \
            --daemonize yes --logfile "$work/$port/redis.log" --pidfile "$work/$port/pid"
        addrs="$addrs 127.0.0.1:$port"
    done
    for port in 7380 7381 7382; do
        for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
        pids="$pids $(cat "$work/$port/pid")"
    done
    # shellcheck disable=SC2086
    redis-cli --cluster create $addrs --cluster-replicas 0 --cluster-yes >/dev/null 2>&1
    for _ in $(seq 100); do
        redis-cli -p 7380 cluster info 2>/dev/null | grep -q '^cluster_state:ok' && break
        sleep 0.1
    done
    bench redis "$1" 7380 "$pids" --cluster
    for port in 7380 7381 7382; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1; done
    sleep 0.5
    rm -rf "$work"
}

for round in $(seq "$rounds"); do
    case $((round % 3)) in
        1) run_single "$round"; run_sharded "$round"; run_redis "$round" ;;
        2) run_sharded "$round"; run_redis "$round"; run_single "$round" ;;
        0) run_redis "$round"; run_single "$round"; run_sharded "$round" ;;
    esac
done

python3 - "$results" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(dict)
for line in open(sys.argv[1]):
    round_, kind, test, rate, cpu = line.split()
    runs[(test, round_)][kind] = (float(rate), float(cpu))
def ratios(test, a, b, field):
    out = []
    for (t, _), r in sorted(runs.items()):
        if t == test and a in r and b in r and r[b][field] > 0:
            out.append(r[a][field] / r[b][field])
    return out
def show(what, xs):
    if xs:
        per = " ".join(f"{x:.2f}" for x in xs)
        print(f"{what}: per round {per}; median {statistics.median(xs):.2f}x")
for test in ("set", "get"):
    show(f"{test} throughput sharded/single", ratios(test, "sharded", "single", 0))
    show(f"{test} busiest-node CPU per op sharded/single", ratios(test, "sharded", "single", 1))
    show(f"{test} throughput sharded/redis-cluster", ratios(test, "sharded", "redis", 0))
EOF
rm -f "$results"
