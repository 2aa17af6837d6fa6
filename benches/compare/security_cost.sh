#!/usr/bin/env bash
# What passwords, TLS and metrics scraping cost: redis-benchmark SET (-c 50 -d 256 -P 1)
# against a fresh local 3-node `ketch cluster` in each configuration, alternated in one run,
# ROUNDS times (the order rotates every round):
#   plain    no flags (twice, as plain and plain2: the A/A pair that shows the noise)
#   password --requirepass (redis-benchmark -a)
#   secure   --secure: mutual TLS between nodes, TLS to the client, and the password
#   scraped  --metrics-port, with every node's /metrics fetched once a second during the run
# Usage: KETCH=target/release/ketch benches/compare/security_cost.sh
# Prints one line per (round, configuration) and the medians and ratios to plain at the end.
set -uo pipefail
KETCH=$(realpath "${KETCH:-target/release/ketch}")
ROUNDS=${ROUNDS:-5}
N=${N:-50000}
results=$(mktemp)

leader_port() { # password
    for _ in $(seq 1 100); do
        for p in 6380 6381 6382; do
            if redis-cli -p $p ${1:+-a "$1"} --no-auth-warning info replication 2>/dev/null |
                grep -q '^raft_role:leader'; then
                echo $p
                return
            fi
        done
        sleep 0.1
    done
}

run_config() { # label round
    local label=$1 round=$2 work flags=() auth="" tls=() scraper=""
    work=$(mktemp -d)
    case $label in
        password) flags=(--requirepass bench-pw); auth=bench-pw ;;
        secure) flags=(--secure) ;;
        scraped) flags=(--metrics-port 9100) ;;
    esac
    (cd "$work" && exec "$KETCH" cluster --nodes 3 "${flags[@]}" >"$work/cluster.log" 2>&1) &
    local cluster_pid=$!
    sleep 0.5
    if [ "$label" = secure ]; then
        for _ in $(seq 1 50); do [ -s "$work/ketch-data/secure/password" ] && break; sleep 0.1; done
        auth=$(cat "$work/ketch-data/secure/password")
    fi
    local leader
    leader=$(leader_port "$auth")
    if [ -z "$leader" ]; then
        echo "$label round $round: no leader; log:" >&2
        tail -5 "$work/cluster.log" >&2
    else
        local port=$leader
        if [ "$label" = secure ]; then
            port=$((leader - 6380 + 6390))
            tls=(--tls --cacert "$work/ketch-data/secure/ca.pem")
        fi
        if [ "$label" = scraped ]; then
            (while true; do
                for m in 9100 9101 9102; do curl -s -o /dev/null "http://127.0.0.1:$m/metrics"; done
                sleep 1
            done) &
            scraper=$!
        fi
        local rate
        rate=$(redis-benchmark -p "$port" "${tls[@]}" ${auth:+-a "$auth"} -n "$N" -c 50 -d 256 \
            -r 100000 -t set -P 1 --csv 2>/dev/null |
            grep -v '^"test"' | head -1 | cut -d, -f2 | tr -d '"')
        [ -n "$scraper" ] && kill "$scraper" 2>/dev/null && wait "$scraper" 2>/dev/null
        echo "$round $label ${rate:-0}" | tee -a "$results"
    fi
    kill -INT "$cluster_pid" 2>/dev/null
    wait "$cluster_pid" 2>/dev/null
    pkill -f "$work" 2>/dev/null
    rm -rf "$work"
}

configs=(plain password secure scraped plain2)
for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order so no configuration always runs first or last.
    for i in $(seq 0 $((${#configs[@]} - 1))); do
        run_config "${configs[$(((i + round) % ${#configs[@]}))]}" "$round"
    done
done

median() { awk -v l="$1" '$2==l {print $3}' "$results" | sort -n |
    awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
plain=$(median plain)
echo "medians (SET requests/s) and ratio to plain:"
for label in "${configs[@]}"; do
    m=$(median "$label")
    echo "$label $m $(awk -v a="$m" -v b="$plain" 'BEGIN {printf "%.3f", a / b}')"
done
rm -f "$results"
