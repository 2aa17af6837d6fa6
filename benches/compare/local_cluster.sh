# Sourced by the comparison scripts: a fresh local 3-node cluster and its leader.
#
#   start_local_cluster BINARY WORK_DIR [ketch cluster flags...]
#       starts `BINARY cluster --nodes 3 FLAGS` in WORK_DIR (log in WORK_DIR/cluster.log) and
#       waits up to 20 s for a leader; sets CLUSTER_PID and LEADER_PORT (empty, with the log's
#       tail on stderr, if none was elected). Returns 1 without a leader.
#   stop_local_cluster
#       stops it (SIGINT, as Ctrl-C would) and waits for it.

start_local_cluster() {
    local bin=$1 work=$2 port
    shift 2
    # The cluster runs in WORK_DIR: a relative path to the binary is made absolute first.
    case $bin in /*) ;; */*) bin=$PWD/$bin ;; esac
    (cd "$work" && exec "$bin" cluster --nodes 3 "$@" > "$work/cluster.log" 2>&1) &
    CLUSTER_PID=$!
    LEADER_PORT=""
    for _ in $(seq 200); do
        for port in 6380 6381 6382; do
            if redis-cli -p "$port" info replication 2>/dev/null | grep -Eq '^(raft_role|role):leader'; then
                LEADER_PORT=$port
            fi
        done
        [ -n "$LEADER_PORT" ] && return 0
        sleep 0.1
    done
    echo "the local cluster elected no leader in 20 s; its log:" >&2
    tail -5 "$work/cluster.log" >&2
    return 1
}

stop_local_cluster() {
    [ -n "${CLUSTER_PID:-}" ] || return 0
    kill -INT "$CLUSTER_PID" 2>/dev/null
    wait "$CLUSTER_PID" 2>/dev/null
    CLUSTER_PID=""
}
