"""The redis-py layer: application-like workloads, results compared at the Python level.

Each scenario takes a client factory and a key prefix and returns a list of observations
(return values, or `("raised", ExceptionClass, message)`); it runs once against Redis and
once against Ketch with the same kind of client, and the two lists must be equal. Every
scenario runs twice: with `redis.Redis(host, port)` and nothing else (redis-py 8 negotiates
RESP3 with `HELLO 3` by default; the `protocol` scenario records what it negotiated) and with
`protocol=2`.

Values that are inherently not comparable are reduced before they are recorded, each where
it is taken: a TTL to "~N" when within tolerance of N, INFO to whether `redis_version` is
present, and a negotiated protocol to its number.
"""

import time

import redis

#: Seconds of slack for TTLs read back after a write (the write went through Raft first).
TTL_TOLERANCE_S = 3

#: Expiry deadline of the "key disappears" scenario, and how long the check waits. Short, but
#: long enough that the writes and the "still there" read fit before it on a loaded machine.
SHORT_TTL_MS = 600
PAST_DEADLINE_S = 1.0


def about(value, expected, tolerance):
    """`"~expected"` if `expected - tolerance <= value <= expected`, else the value."""
    if isinstance(value, int) and expected - tolerance <= value <= expected:
        return "~%d" % expected
    return value


def observe(results, thunk):
    """Appends what `thunk()` returns, or the exception it raises, to `results`."""
    try:
        results.append(thunk())
    except redis.RedisError as error:
        results.append(("raised", type(error).__name__, str(error)))


def scenario_protocol(make, p):
    """The protocol redis-py negotiated on its connection, and that the connection works."""
    out = []
    client = make()
    observe(out, client.ping)
    try:
        connection = client.connection_pool.get_connection()
        out.append(("protocol", int(connection.protocol or 2)))
        client.connection_pool.release(connection)
    except redis.RedisError as error:
        out.append(("raised", type(error).__name__, str(error)))
    return out


def scenario_strings(make, p):
    r = make()
    out = []
    for thunk in [
        lambda: r.set(p + "a", "1"),
        lambda: r.get(p + "a"),
        lambda: r.set(p + "a", "2", nx=True),
        lambda: r.set(p + "b", "2", xx=True),
        lambda: r.set(p + "a", "3", xx=True, get=True),
        lambda: r.mset({p + "x": "1", p + "y": "2"}),
        lambda: r.mget([p + "x", p + "y", p + "missing"]),
        lambda: r.incr(p + "n"),
        lambda: r.incrby(p + "n", 10),
        lambda: r.decr(p + "n"),
        lambda: r.append(p + "s", "hello"),
        lambda: r.strlen(p + "s"),
        lambda: r.getrange(p + "s", 1, 3),
        lambda: r.getdel(p + "s"),
        lambda: r.exists(p + "a", p + "s"),
        lambda: r.delete(p + "a", p + "x"),
        lambda: r.incr(p + "y"),
        lambda: r.set(p + "t", "abc"),
        lambda: r.incr(p + "t"),
    ]:
        observe(out, thunk)
    return out


def scenario_pipeline(make, p):
    r = make()
    out = []

    def pipelined():
        pipe = r.pipeline(transaction=False)
        for i in range(50):
            pipe.set(p + "k%d" % i, i)
        for i in range(50):
            pipe.incr(p + "k%d" % i)
        pipe.mget([p + "k%d" % i for i in range(50)])
        pipe.incr(p + "not-a-number-key")
        pipe.set(p + "bad", "x")
        pipe.incr(p + "bad")
        return pipe.execute(raise_on_error=False)

    results = None
    try:
        results = pipelined()
    except redis.RedisError as error:
        out.append(("raised", type(error).__name__, str(error)))
    if results is not None:
        out.append(
            [
                ("raised", type(x).__name__, str(x)) if isinstance(x, Exception) else x
                for x in results
            ]
        )
    return out


def scenario_lock(make, p):
    """redis-py's Lock: acquire is SET NX PX; release runs a Lua script (EVALSHA)."""
    r = make()
    out = []
    lock = r.lock(p + "lock", timeout=5, blocking_timeout=1)
    other = r.lock(p + "lock", timeout=5)
    observe(out, lock.acquire)
    observe(out, lambda: other.acquire(blocking=False))
    observe(out, lock.locked)
    observe(out, lock.owned)
    observe(out, lambda: about(r.pttl(p + "lock") // 1000, 5, TTL_TOLERANCE_S))
    observe(out, lock.release)
    observe(out, lambda: other.acquire(blocking=False))
    observe(out, other.release)
    return out


def scenario_lock_by_hand(make, p):
    """The pattern under redis-py's Lock without its Lua release: SET NX PX, DEL by the owner."""
    r = make()
    out = []
    observe(out, lambda: r.set(p + "manual", "token", nx=True, px=5000))
    observe(out, lambda: r.set(p + "manual", "token2", nx=True, px=5000))
    observe(out, lambda: r.get(p + "manual"))
    observe(out, lambda: r.delete(p + "manual"))
    return out


def scenario_expiry(make, p):
    r = make()
    out = []
    observe(out, lambda: r.setex(p + "a", 100, "v"))
    observe(out, lambda: about(r.ttl(p + "a"), 100, TTL_TOLERANCE_S))
    observe(out, lambda: r.psetex(p + "b", 100000, "v"))
    observe(out, lambda: about(r.pttl(p + "b") // 1000, 100, TTL_TOLERANCE_S))
    observe(out, lambda: r.set(p + "c", "v"))
    observe(out, lambda: r.ttl(p + "c"))
    observe(out, lambda: r.expire(p + "c", 100))
    observe(out, lambda: r.expire(p + "c", 50, gt=True))
    observe(out, lambda: r.persist(p + "c"))
    observe(out, lambda: r.ttl(p + "missing"))
    # A short deadline: the key is there before it and gone after it.
    observe(out, lambda: r.set(p + "short", "v", px=SHORT_TTL_MS))
    observe(out, lambda: r.set(p + "short2", "v"))
    observe(out, lambda: r.pexpire(p + "short2", SHORT_TTL_MS))
    observe(out, lambda: r.exists(p + "short", p + "short2"))
    time.sleep(PAST_DEADLINE_S)
    observe(out, lambda: r.get(p + "short"))
    observe(out, lambda: r.exists(p + "short", p + "short2"))
    return out


def scenario_floats(make, p):
    r = make()
    out = []
    observe(out, lambda: r.incrbyfloat(p + "f", 1.5))
    observe(out, lambda: r.incrbyfloat(p + "f", 0.75))
    observe(out, lambda: r.incrbyfloat(p + "f", -10))
    observe(out, lambda: r.get(p + "f"))
    observe(out, lambda: r.set(p + "s", "abc"))
    observe(out, lambda: r.incrbyfloat(p + "s", 1))
    return out


def scenario_hashes(make, p):
    r = make()
    out = []
    observe(out, lambda: r.hset(p + "h", mapping={"a": "1", "b": "2", "c": "3"}))
    observe(out, lambda: r.hset(p + "h", "d", "4"))
    observe(out, lambda: r.hgetall(p + "h"))
    observe(out, lambda: r.hget(p + "h", "a"))
    observe(out, lambda: r.hmget(p + "h", ["a", "zz", "c"]))
    observe(out, lambda: r.hincrby(p + "h", "a", 10))
    observe(out, lambda: r.hincrbyfloat(p + "h", "b", 0.5))
    observe(out, lambda: r.hdel(p + "h", "c", "zz"))
    observe(out, lambda: r.hlen(p + "h"))
    observe(out, lambda: r.hexists(p + "h", "d"))
    observe(out, lambda: sorted(r.hkeys(p + "h")))
    observe(out, lambda: sorted(r.hvals(p + "h")))
    observe(out, lambda: r.hsetnx(p + "h", "a", "x"))
    observe(out, lambda: r.hgetall(p + "missing"))
    observe(out, lambda: r.set(p + "s", "v"))
    observe(out, lambda: r.hget(p + "s", "a"))
    return out


def scenario_scan(make, p):
    r = make()
    out = []
    observe(out, lambda: r.mset({p + "k%02d" % i: i for i in range(40)}))
    observe(out, lambda: r.hset(p + "h", mapping={"f%d" % i: i for i in range(20)}))
    observe(out, lambda: sorted(r.scan_iter(match=p + "*", count=7)))
    observe(out, lambda: sorted(r.scan_iter(match=p + "k1*")))
    observe(out, lambda: sorted(r.scan_iter(match=p + "*", _type="hash")))
    observe(out, lambda: sorted(r.hscan_iter(p + "h", match="f1*")))
    return out


def scenario_transaction(make, p):
    r = make()
    out = []

    def transaction():
        pipe = r.pipeline(transaction=True)
        pipe.set(p + "a", "1")
        pipe.incr(p + "a")
        pipe.hset(p + "h", mapping={"f": "v"})
        pipe.get(p + "a")
        return pipe.execute()

    observe(out, transaction)

    def runtime_error():
        pipe = r.pipeline(transaction=True)
        pipe.set(p + "b", "x")
        pipe.incr(p + "b")
        pipe.set(p + "c", "y")
        return pipe.execute(raise_on_error=False)

    try:
        out.append(
            [
                ("raised", type(x).__name__, str(x)) if isinstance(x, Exception) else x
                for x in runtime_error()
            ]
        )
    except redis.RedisError as error:
        out.append(("raised", type(error).__name__, str(error)))
    observe(out, lambda: r.get(p + "c"))
    return out


def scenario_watch(make, p):
    r, other = make(), make()
    out = []
    observe(out, lambda: r.set(p + "balance", "100"))

    def conflicting():
        with r.pipeline() as pipe:
            pipe.watch(p + "balance")
            current = int(pipe.get(p + "balance"))
            other.set(p + "balance", "0")  # another connection writes in between
            pipe.multi()
            pipe.set(p + "balance", current - 10)
            return pipe.execute()

    observe(out, conflicting)
    observe(out, lambda: r.get(p + "balance"))

    def debit(pipe):
        current = int(pipe.get(p + "balance"))
        pipe.multi()
        pipe.set(p + "balance", current + 5)

    observe(out, lambda: r.transaction(debit, p + "balance"))
    observe(out, lambda: r.get(p + "balance"))
    return out


def scenario_client_and_info(make, p):
    r = make()
    out = []
    observe(out, lambda: r.client_setname("compat-py"))
    observe(out, lambda: r.client_getname())
    observe(out, lambda: "redis_version" in r.info())
    observe(out, lambda: "redis_version" in r.info("server"))
    observe(out, lambda: r.echo("hello"))
    observe(out, lambda: isinstance(r.time(), tuple))
    return out


SCENARIOS = [
    ("protocol", scenario_protocol),
    ("strings", scenario_strings),
    ("pipeline", scenario_pipeline),
    ("lock", scenario_lock),
    ("lock_by_hand", scenario_lock_by_hand),
    ("expiry", scenario_expiry),
    ("floats", scenario_floats),
    ("hashes", scenario_hashes),
    ("scan", scenario_scan),
    ("transaction", scenario_transaction),
    ("watch", scenario_watch),
    ("client_and_info", scenario_client_and_info),
]


def client_factory(address, protocol):
    host, port = address
    if protocol is None:
        return lambda: redis.Redis(host=host, port=port)  # redis-py's defaults
    return lambda: redis.Redis(host=host, port=port, protocol=protocol)


def run_one(scenario, address, protocol, prefix):
    try:
        return scenario(client_factory(address, protocol), prefix)
    except (redis.RedisError, OSError, ValueError, TypeError) as error:
        return [("scenario raised", type(error).__name__, str(error))]


def run_all(redis_addr, ketch_addr, run_token):
    """Yields `(result_id, same, report_lines)` for every scenario and protocol."""
    for name, scenario in SCENARIOS:
        for variant, protocol in (("resp3", None), ("resp2", 2)):
            prefix = "compat:%s:py.%s:%s:" % (run_token, name, variant)
            from_redis = run_one(scenario, redis_addr, protocol, prefix)
            if name == "protocol" and protocol is None and ("protocol", 3) not in from_redis:
                # The suite's premise: redis-py's defaults speak RESP3. Not a difference to
                # list but a broken reference, so the whole run fails.
                raise SystemExit(
                    "redis-py %s with default settings did not negotiate RESP3 with Redis: %r"
                    % (redis.__version__, from_redis)
                )
            from_ketch = run_one(scenario, ketch_addr, protocol, prefix)
            lines = [
                "  client: redis.Redis(host, port%s), redis-py %s"
                % ("" if protocol is None else ", protocol=%d" % protocol, redis.__version__)
            ]
            length = max(len(from_redis), len(from_ketch))
            for i in range(length):
                a = from_redis[i] if i < len(from_redis) else "<nothing>"
                b = from_ketch[i] if i < len(from_ketch) else "<nothing>"
                lines.append("  %2d. redis: %r" % (i + 1, a))
                lines.append("   %s ketch: %r" % ("!=" if a != b else "  ", b))
            yield "py.%s@%s" % (name, variant), from_redis == from_ketch, lines
