#!/usr/bin/env bash
# Redis (appendfsync always) vs a local 3-node Ketch cluster, same machine, same run.
set -uo pipefail
KETCH=${KETCH:-$(pwd)/target/release/ketch}  # run from the project root after cargo build --release
N=${N:-100000}
work=$(mktemp -d)
echo "work dir $work"
redis-server --port 7379 --dir "$work" --appendonly yes --appendfsync always --save "" --daemonize yes --logfile "$work/redis.log"
sleep 1
bench() { # label port args...
    local label=$1 port=$2; shift 2
    local out
    out=$(redis-benchmark -p "$port" -n "$N" -c 50 -d 256 -r 100000 "$@" --csv 2>&1 | grep -v '^"test"' )
    echo "$label | $* | $out"
}
bench redis 7379 -t set -P 1
bench redis 7379 -t set -P 16
bench redis 7379 -t get -P 1
redis-cli -p 7379 shutdown nosave >/dev/null 2>&1
cd "$work" && ("$KETCH" cluster --nodes 3 > "$work/cluster.log" 2>&1 &)
sleep 4
leader_port=""
for p in 6380 6381 6382; do
  if redis-cli -p $p info 2>/dev/null | grep -q '^role:leader'; then leader_port=$p; fi
done
follower_port=$(for p in 6380 6381 6382; do [ "$p" != "$leader_port" ] && echo $p; done | head -1)
echo "ketch leader on $leader_port, follower $follower_port"
bench ketch-leader $leader_port -t set -P 1
bench ketch-leader $leader_port -t set -P 16
bench ketch-leader $leader_port -t get -P 1
bench ketch-leader $leader_port -t get -P 16
bench ketch-follower $follower_port -t set -P 1
bench ketch-follower $follower_port -t get -P 1
redis-cli -p $leader_port info | grep -E "fsync|batch|commit|applied" | head
pkill -INT -f "ketch cluster" ; sleep 3
cat "$work/cluster.log" | tail -5
