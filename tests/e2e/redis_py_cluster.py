"""redis-py's RedisCluster against a Ketch cluster, for tests/e2e_redis_cluster.rs and
tests/e2e_sharded_cluster.rs.

    python redis_py_cluster.py workload [--masters N] HOST:PORT [HOST:PORT...]
        SET/GET/MGET of keys in many slots through RedisCluster (RESP3, then RESP2), and
        CLUSTER KEYSLOT against redis-py's own keyslot() for 1,000 random keys. Prints one
        `ok <what>` line per check; any failure raises. Without --masters the cluster has
        one primary (`ok one primary HOST:PORT`); with it, N nodes master the slots in
        redis-py's routing table and are its primaries (`ok N slot masters, the primaries:
        HOST:PORT...`).

    python redis_py_cluster.py writer PROGRESS STOP HOST:PORT [HOST:PORT...]
        SETs fo:<n> = v<n> in a loop through RedisCluster until the file STOP exists,
        writing the count of acknowledged SETs to PROGRESS after each one. A failed SET
        (an error or a connection lost mid-call) is counted and retried with the next key
        after a short pause, as an application would. Then it reads every acknowledged key
        back and prints `acked N failed M lost 0`; a lost key raises.

Only python3 and redis-py are needed.
"""

import os
import random
import sys
import time

from redis.cluster import ClusterNode, RedisCluster


def nodes(addrs):
    out = []
    for addr in addrs:
        host, port = addr.rsplit(":", 1)
        out.append(ClusterNode(host, int(port)))
    return out


def workload(addrs, masters_expected=None):
    for protocol in (3, 2):
        rc = RedisCluster(startup_nodes=nodes(addrs), protocol=protocol, decode_responses=True)
        keys = [f"py:{protocol}:{i}" for i in range(300)]
        slots = {rc.keyslot(k) for k in keys}
        assert len(slots) > 250, f"only {len(slots)} slots"
        for k in keys:
            assert rc.set(k, k.upper()), k
        for k in keys:
            assert rc.get(k) == k.upper(), k
        assert rc.mget_nonatomic(keys) == [k.upper() for k in keys]
        # One slot: an ordinary MSET / MGET goes to its node in one command.
        tagged = {f"{{user{protocol}}}.{i}": str(i) for i in range(20)}
        assert rc.mset(tagged)
        assert rc.mget(list(tagged)) == list(tagged.values())
        assert rc.delete(*list(tagged)[:5]) == 5
        print(f"ok resp{protocol} set/get/mget in {len(slots)} slots")
        rc.close()

    rc = RedisCluster(startup_nodes=nodes(addrs), decode_responses=True)
    # SCAN over every primary (each scans the slots it leads): every key once, in pages.
    written = {f"py:{protocol}:{i}" for protocol in (3, 2) for i in range(300)}
    scanned = list(rc.scan_iter(match="py:*", count=25))
    assert set(scanned) == written, (len(scanned), len(written))
    assert len(scanned) == len(written), f"{len(scanned) - len(written)} keys returned twice"
    print(f"ok scan_iter returned the {len(written)} keys once each")
    rng = random.Random(7919)
    alphabet = "abcxyz019{}:._-"
    checked = 0
    for _ in range(1000):
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        server = rc.cluster_keyslot(key)
        assert server == rc.keyslot(key), (key, server, rc.keyslot(key))
        checked += 1
    print(f"ok keyslot agrees for {checked} keys")
    if masters_expected is None:
        primaries = rc.get_primaries()
        assert len(primaries) == 1, primaries
        print(f"ok one primary {primaries[0].name}")
    else:
        # The master of each slot in redis-py's routing table, where it sends the slot's
        # commands; and its primaries, where it sends commands for every primary (DBSIZE,
        # KEYS, SCAN). redis-py keeps one role per node, the last CLUSTER SLOTS gave it, so
        # a node named a replica after being named a master would be filed as a replica.
        masters = sorted({rc.nodes_manager.slots_cache[slot][0].name for slot in range(16384)})
        assert len(masters) == masters_expected, masters
        by_name = sorted(rc.get_nodes(), key=lambda n: n.name)
        roles = " ".join(f"{n.name}={n.server_type}" for n in by_name)
        primaries = sorted(n.name for n in rc.get_primaries())
        assert primaries == masters, f"primaries {primaries}, roles {roles}"
        print(f"ok {masters_expected} slot masters, the primaries: {' '.join(masters)}")
    rc.close()


def writer(progress, stop, addrs):
    rc = RedisCluster(startup_nodes=nodes(addrs), decode_responses=True)
    acked = []
    failed = 0
    n = 0
    while not os.path.exists(stop):
        n += 1
        key = f"fo:{n}"
        try:
            if rc.set(key, f"v{n}"):
                acked.append(n)
        except Exception as e:  # noqa: BLE001 - any failure is retried with the next key
            failed += 1
            print(f"set {key}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            time.sleep(0.1)
        with open(progress + ".tmp", "w") as f:
            f.write(str(len(acked)))
        os.replace(progress + ".tmp", progress)
    lost = [n for n in acked if rc.get(f"fo:{n}") != f"v{n}"]
    assert not lost, f"acknowledged SETs lost: {lost[:10]}"
    print(f"acked {len(acked)} failed {failed} lost 0")
    rc.close()


if __name__ == "__main__":
    if sys.argv[1] == "workload" and sys.argv[2] == "--masters":
        workload(sys.argv[4:], int(sys.argv[3]))
    elif sys.argv[1] == "workload":
        workload(sys.argv[2:])
    elif sys.argv[1] == "writer":
        writer(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]}")
