"""The raw-layer cases: command lists run on Redis and on Ketch, replies compared.

A case is an id (`group.name`, the id `known_differences.txt` names) and a list of steps:

  ["SET", K + "a", "1"]          a command; its reply compared byte for byte
  N("ttl:100:3", "TTL", K + "a") a command whose reply goes through a normalizer
                                 (see normalize.py for each one and why)
  On2(step)                      the step on a second connection to the same server (for
                                 WATCH conflicts and per-connection state)
  Sleep(ms)                      waits, for expiry deadlines
  ScanAll("SCAN", ...)           iterates a SCAN-family command to cursor 0 and compares the
                                 set of elements returned, not the cursors or the batching
  CommandConsistency()           COMMAND COUNT == len(COMMAND) == commands in COMMAND LIST

`K` is replaced by a prefix unique to the run, the case and the variant, so cases do not
see each other's keys even on a server that cannot FLUSHALL; the cases that look at the
whole keyspace (DBSIZE, RANDOMKEY, FLUSH*) start with FLUSHALL. `{at_s:N}` and `{at_ms:N}` in
an argument become the Unix time N seconds or milliseconds from now.

`unsupported` cases name commands Ketch deliberately does not implement (lists, sets, sorted
sets): they run on Ketch only, and each reply must be an error saying "not supported by
ketch" (Redis' reply is not the reference there).
"""

K = "{k}"


class N:
    def __init__(self, norm, *args):
        self.norm = norm
        self.args = list(args)


class On2:
    def __init__(self, step):
        self.step = step


class Sleep:
    def __init__(self, ms):
        self.ms = ms


class ScanAll:
    def __init__(self, *args):
        self.args = list(args)


class CommandConsistency:
    pass


class Case:
    def __init__(self, case_id, steps, follower=False, unsupported=False):
        self.id = case_id
        self.steps = steps
        self.follower = follower
        self.unsupported = unsupported


CASES = []


def case(case_id, *steps, follower=False):
    CASES.append(Case(case_id, list(steps), follower=follower))


def unsupported(case_id, *steps):
    CASES.append(Case(case_id, list(steps), unsupported=True))


I64_MAX = "9223372036854775807"
I64_MIN = "-9223372036854775808"
FAR_FUTURE_S = "4102444800"  # 2100-01-01: a fixed deadline, so EXPIRETIME compares exactly

# ---------------------------------------------------------------- strings (follower too)
case("strings.set_get",
     ["SET", K + "a", "v1"], ["GET", K + "a"], ["SET", K + "a", "v2"], ["GET", K + "a"],
     ["SET", K + "empty", ""], ["GET", K + "empty"], ["SET", K + "bin", "a\r\nb\x00c"],
     ["GET", K + "bin"], follower=True)
case("strings.set_arity", ["SET"], ["SET", K + "a"], ["set", K + "a"], follower=True)
case("strings.set_nx",
     ["SET", K + "a", "1", "NX"], ["SET", K + "a", "2", "NX"], ["GET", K + "a"],
     ["SET", K + "a", "3", "nx"], follower=True)
case("strings.set_xx",
     ["SET", K + "a", "1", "XX"], ["GET", K + "a"], ["SET", K + "a", "1"],
     ["SET", K + "a", "2", "XX"], ["GET", K + "a"], follower=True)
case("strings.set_nx_xx", ["SET", K + "a", "1", "NX", "XX"], ["SET", K + "a", "1", "XX", "NX"],
     ["SET", K + "a", "1", "NX", "NX"], ["SET", K + "a", "1", "BOGUS"], follower=True)
case("strings.set_get_option",
     ["SET", K + "a", "1", "GET"], ["SET", K + "a", "2", "GET"], ["GET", K + "a"],
     ["SET", K + "a", "3", "NX", "GET"], ["SET", K + "a", "4", "XX", "GET"],
     ["SET", K + "b", "1", "NX", "GET"], ["GET", K + "b"], follower=True)
case("strings.set_ex",
     ["SET", K + "a", "v", "EX", "100"], N("ttl:100:3", "TTL", K + "a"),
     N("ttl:100000:3000", "PTTL", K + "a"), ["GET", K + "a"], follower=True)
case("strings.set_px",
     ["SET", K + "a", "v", "PX", "100000"], N("ttl:100000:3000", "PTTL", K + "a"),
     N("ttl:100:3", "TTL", K + "a"), follower=True)
case("strings.set_exat_pxat",
     ["SET", K + "a", "v", "EXAT", "{at_s:100}"], N("ttl:100:3", "TTL", K + "a"),
     ["SET", K + "b", "v", "PXAT", "{at_ms:100000}"], N("ttl:100000:3000", "PTTL", K + "b"),
     ["SET", K + "c", "v", "EXAT", FAR_FUTURE_S], ["EXPIRETIME", K + "c"],
     ["SET", K + "d", "v", "EXAT", "1"], ["GET", K + "d"], ["EXISTS", K + "d"], follower=True)
case("strings.set_expiry_errors",
     ["SET", K + "a", "v", "EX", "0"], ["SET", K + "a", "v", "EX", "-1"],
     ["SET", K + "a", "v", "EX", "abc"], ["SET", K + "a", "v", "EX"],
     ["SET", K + "a", "v", "EX", "1", "PX", "1"], ["SET", K + "a", "v", "KEEPTTL", "EX", "1"],
     ["SET", K + "a", "v", "EX", "9223372036854775807"], ["SET", K + "a", "v", "PX", "0"],
     ["SET", K + "a", "v", "PXAT", "-5"], ["EXISTS", K + "a"], follower=True)
case("strings.set_keepttl",
     ["SET", K + "a", "v", "EX", "100"], ["SET", K + "a", "v2", "KEEPTTL"],
     N("ttl:100:3", "TTL", K + "a"), ["GET", K + "a"], ["SET", K + "a", "v3"], ["TTL", K + "a"],
     ["SET", K + "b", "v", "KEEPTTL"], ["TTL", K + "b"], follower=True)
case("strings.get", ["GET", K + "missing"], ["GET"], ["GET", K + "a", K + "b"], follower=True)
case("strings.del",
     ["MSET", K + "a", "1", K + "b", "2"], ["DEL", K + "a", K + "b", K + "c"],
     ["DEL", K + "a"], ["DEL"], ["SET", K + "a", "1"], ["DEL", K + "a", K + "a"], follower=True)
case("strings.exists",
     ["SET", K + "a", "1"], ["EXISTS", K + "a"], ["EXISTS", K + "a", K + "a", K + "b"],
     ["EXISTS"], ["EXISTS", K + "missing"], follower=True)
case("strings.append",
     ["APPEND", K + "a", "Hello"], ["APPEND", K + "a", " World"], ["GET", K + "a"],
     ["APPEND", K + "a", ""], ["APPEND", K + "a"], follower=True)
case("strings.incr_decr",
     ["INCR", K + "n"], ["INCR", K + "n"], ["DECR", K + "n"], ["DECR", K + "m"],
     ["GET", K + "n"], ["INCR"], ["INCR", K + "n", K + "m"], ["DECR"], follower=True)
case("strings.incr_errors",
     ["SET", K + "s", "abc"], ["INCR", K + "s"], ["SET", K + "s", " 1"], ["INCR", K + "s"],
     ["SET", K + "s", "1.5"], ["INCR", K + "s"], ["SET", K + "s", "01"], ["INCR", K + "s"],
     ["SET", K + "s", I64_MAX], ["INCR", K + "s"], ["SET", K + "s", I64_MIN], ["DECR", K + "s"],
     ["GET", K + "s"], follower=True)
case("strings.incrby_decrby",
     ["INCRBY", K + "n", "5"], ["INCRBY", K + "n", "-3"], ["DECRBY", K + "n", "10"],
     ["DECRBY", K + "n", "-4"], ["INCRBY", K + "n", "abc"], ["INCRBY", K + "n", "1.0"],
     ["INCRBY", K + "n", "9223372036854775808"], ["DECRBY", K + "n", I64_MIN],
     ["SET", K + "m", "9223372036854775800"], ["INCRBY", K + "m", "100"],
     ["DECRBY", K + "m", I64_MAX], ["GET", K + "m"], ["INCRBY", K + "n"], ["DECRBY"],
     follower=True)
case("strings.mget_mset",
     ["MSET", K + "a", "1", K + "b", "2"], ["MGET", K + "a", K + "b", K + "c"],
     ["MSET", K + "a"], ["MSET", K + "a", "1", K + "b"], ["MGET"],
     ["MSET", K + "a", "x", K + "a", "y"], ["GET", K + "a"], follower=True)
case("strings.setnx",
     ["SETNX", K + "a", "1"], ["SETNX", K + "a", "2"], ["GET", K + "a"], ["SETNX", K + "a"],
     follower=True)
case("strings.getset",
     ["GETSET", K + "a", "v"], ["GETSET", K + "a", "w"], ["GET", K + "a"], ["GETSET", K + "a"],
     follower=True)
case("strings.getdel",
     ["SET", K + "a", "v"], ["GETDEL", K + "a"], ["GETDEL", K + "a"], ["EXISTS", K + "a"],
     ["GETDEL"], follower=True)
case("strings.getrange",
     ["SET", K + "a", "Hello World"], ["GETRANGE", K + "a", "0", "4"],
     ["GETRANGE", K + "a", "-5", "-1"], ["GETRANGE", K + "a", "5", "2"],
     ["GETRANGE", K + "a", "0", "100"], ["GETRANGE", K + "a", "-100", "2"],
     ["GETRANGE", K + "missing", "0", "-1"], ["GETRANGE", K + "a", "x", "1"],
     ["GETRANGE", K + "a", "0"], follower=True)
case("strings.setrange",
     ["SET", K + "a", "Hello World"], ["SETRANGE", K + "a", "6", "Redis"], ["GET", K + "a"],
     ["SETRANGE", K + "b", "5", "x"], ["GET", K + "b"], ["SETRANGE", K + "a", "-1", "x"],
     ["SETRANGE", K + "a", "536870912", "x"], ["SETRANGE", K + "c", "0", ""],
     ["EXISTS", K + "c"], ["SETRANGE", K + "a", "abc", "x"], ["SETRANGE", K + "a", "1"],
     follower=True)
case("strings.strlen",
     ["STRLEN", K + "missing"], ["SET", K + "a", "hello"], ["STRLEN", K + "a"], ["STRLEN"],
     follower=True)
case("strings.incrbyfloat",
     ["INCRBYFLOAT", K + "f", "10.5"], ["INCRBYFLOAT", K + "f", "0.1"],
     ["INCRBYFLOAT", K + "f", "-5"], ["INCRBYFLOAT", K + "f", "5.0e3"],
     ["INCRBYFLOAT", K + "f", "abc"], ["INCRBYFLOAT", K + "f", "inf"], ["GET", K + "f"],
     ["SET", K + "g", "3"], ["INCRBYFLOAT", K + "g", "1.5"], ["SET", K + "s", "abc"],
     ["INCRBYFLOAT", K + "s", "1"], ["INCRBYFLOAT", K + "f"], follower=True)
case("strings.msetnx",
     ["MSETNX", K + "a", "1", K + "b", "2"], ["MSETNX", K + "b", "3", K + "c", "4"],
     ["MGET", K + "a", K + "b", K + "c"], ["MSETNX", K + "a"], ["MSETNX", K + "x", "1", K + "y"],
     follower=True)
case("strings.setex_psetex",
     ["SETEX", K + "a", "100", "v"], N("ttl:100:3", "TTL", K + "a"), ["GET", K + "a"],
     ["PSETEX", K + "b", "100000", "v"], N("ttl:100000:3000", "PTTL", K + "b"),
     ["SETEX", K + "a", "0", "v"], ["SETEX", K + "a", "-1", "v"], ["SETEX", K + "a", "abc", "v"],
     ["SETEX", K + "a", "100"], ["PSETEX", K + "b", "0", "v"], follower=True)
case("strings.getex",
     ["SET", K + "a", "v"], ["GETEX", K + "a"], ["TTL", K + "a"], ["GETEX", K + "a", "EX", "100"],
     N("ttl:100:3", "TTL", K + "a"), ["GETEX", K + "a", "PERSIST"], ["TTL", K + "a"],
     ["GETEX", K + "a", "PX", "100000"], N("ttl:100000:3000", "PTTL", K + "a"),
     ["GETEX", K + "a", "EXAT", FAR_FUTURE_S], ["EXPIRETIME", K + "a"],
     ["GETEX", K + "missing", "EX", "10"], ["GETEX", K + "a", "EX", "1", "PX", "1"],
     ["GETEX", K + "a", "EX", "0"], ["GETEX", K + "a", "PERSIST", "EX", "1"],
     ["GETEX", K + "a", "BOGUS"], ["GETEX"], follower=True)
case("strings.wrongtype",
     ["HSET", K + "h", "f", "v"], ["GET", K + "h"], ["SET", K + "h", "x", "GET"],
     ["APPEND", K + "h", "x"], ["INCR", K + "h"], ["DECRBY", K + "h", "1"],
     ["MGET", K + "h", K + "missing"], ["GETSET", K + "h", "x"], ["GETDEL", K + "h"],
     ["STRLEN", K + "h"], ["GETRANGE", K + "h", "0", "1"], ["SETRANGE", K + "h", "0", "x"],
     ["INCRBYFLOAT", K + "h", "1"], ["GETEX", K + "h"], ["HGET", K + "h", "f"],
     ["SET", K + "h", "now a string"], ["GET", K + "h"], ["DEL", K + "h"], ["EXISTS", K + "h"],
     follower=True)
case("strings.case_insensitive",
     ["set", K + "a", "1"], ["Get", K + "a"], ["iNcR", K + "a"], ["mget", K + "a"],
     follower=True)

# ---------------------------------------------------------------- expiry (follower too)
case("expiry.expire",
     ["SET", K + "a", "v"], ["EXPIRE", K + "a", "100"], N("ttl:100:3", "TTL", K + "a"),
     ["EXPIRE", K + "missing", "100"], ["EXPIRE", K + "a", "abc"], ["EXPIRE", K + "a"],
     ["EXPIRE", K + "a", "10", "BOGUS"], ["EXPIRE", K + "a", "9223372036854775807"],
     follower=True)
case("expiry.expire_options",
     ["SET", K + "a", "v"], ["EXPIRE", K + "a", "100", "XX"], ["EXPIRE", K + "a", "100", "GT"],
     ["EXPIRE", K + "a", "100", "LT"], N("ttl:100:3", "TTL", K + "a"),
     ["EXPIRE", K + "a", "200", "NX"], ["EXPIRE", K + "a", "200", "XX"],
     N("ttl:200:3", "TTL", K + "a"), ["EXPIRE", K + "a", "100", "GT"],
     ["EXPIRE", K + "a", "300", "GT"], ["EXPIRE", K + "a", "400", "LT"],
     ["EXPIRE", K + "a", "50", "LT"], N("ttl:50:3", "TTL", K + "a"),
     ["EXPIRE", K + "a", "10", "NX", "XX"], ["EXPIRE", K + "a", "10", "GT", "LT"],
     ["EXPIRE", K + "a", "10", "NX", "GT"], ["EXPIRE", K + "a", "10", "xx", "gt"],
     N("ttl:50:3", "TTL", K + "a"), follower=True)
case("expiry.expire_negative",
     ["SET", K + "a", "v"], ["EXPIRE", K + "a", "-1"], ["EXISTS", K + "a"],
     ["SET", K + "b", "v"], ["PEXPIRE", K + "b", "0"], ["GET", K + "b"], follower=True)
case("expiry.pexpire",
     ["SET", K + "a", "v"], ["PEXPIRE", K + "a", "100000"], N("ttl:100000:3000", "PTTL", K + "a"),
     ["PEXPIRE", K + "a", "200000", "NX"], ["PEXPIRE", K + "a", "200000", "GT"],
     N("ttl:200000:3000", "PTTL", K + "a"), ["PEXPIRE", K + "missing", "10"],
     ["PEXPIRE", K + "a", "x"], follower=True)
case("expiry.expireat_pexpireat",
     ["SET", K + "a", "v"], ["EXPIREAT", K + "a", FAR_FUTURE_S], ["EXPIRETIME", K + "a"],
     ["PEXPIRETIME", K + "a"], ["EXPIREAT", K + "a", "{at_s:100}", "LT"],
     N("ttl:100:3", "TTL", K + "a"), ["PEXPIREAT", K + "a", "{at_ms:200000}", "GT"],
     N("ttl:200000:3000", "PTTL", K + "a"), ["PEXPIREAT", K + "a", "{at_ms:50000}", "XX"],
     N("ttl:50000:3000", "PTTL", K + "a"), ["EXPIREAT", K + "a", "1"], ["EXISTS", K + "a"],
     ["EXPIREAT", K + "missing", FAR_FUTURE_S], ["EXPIREAT", K + "a", "soon"],
     ["PEXPIREAT", K + "a"], follower=True)
case("expiry.ttl_pttl_expiretime",
     ["TTL", K + "missing"], ["PTTL", K + "missing"], ["EXPIRETIME", K + "missing"],
     ["SET", K + "a", "v"], ["TTL", K + "a"], ["PTTL", K + "a"], ["EXPIRETIME", K + "a"],
     ["TTL"], ["PTTL", K + "a", K + "b"], ["EXPIRETIME"], follower=True)
case("expiry.persist",
     ["PERSIST", K + "missing"], ["SET", K + "a", "v"], ["PERSIST", K + "a"],
     ["EXPIRE", K + "a", "100"], ["PERSIST", K + "a"], ["TTL", K + "a"], ["PERSIST"],
     follower=True)
# 800 ms leaves the writes before the first EXISTS time to commit on a loaded machine.
case("expiry.deadline_passes",
     ["SET", K + "a", "v", "PX", "800"], ["SET", K + "b", "v"], ["PEXPIRE", K + "b", "800"],
     ["SETEX", K + "c", "1", "v"], ["EXISTS", K + "a", K + "b", K + "c"], Sleep(1300),
     ["GET", K + "a"], ["EXISTS", K + "a", K + "b", K + "c"], ["TTL", K + "a"],
     ["APPEND", K + "a", "x"], ["TTL", K + "a"], follower=True)
case("expiry.overwrite_clears_ttl",
     ["SET", K + "a", "v", "EX", "100"], ["SET", K + "a", "w"], ["TTL", K + "a"],
     ["SET", K + "b", "1", "EX", "100"], ["INCR", K + "b"], N("ttl:100:3", "TTL", K + "b"),
     ["APPEND", K + "b", "0"], N("ttl:100:3", "TTL", K + "b"), ["GETSET", K + "b", "x"],
     ["TTL", K + "b"], ["SET", K + "c", "v", "EX", "100"], ["RENAME", K + "c", K + "d"],
     N("ttl:100:3", "TTL", K + "d"), follower=True)

# ---------------------------------------------------------------- keys
case("keys.unlink",
     ["MSET", K + "a", "1", K + "b", "2"], ["UNLINK", K + "a", K + "b", K + "c"],
     ["UNLINK", K + "a"], ["UNLINK"], ["EXISTS", K + "a", K + "b"])
case("keys.type",
     ["SET", K + "s", "v"], ["HSET", K + "h", "f", "v"], ["TYPE", K + "s"], ["TYPE", K + "h"],
     ["TYPE", K + "missing"], ["TYPE"], ["TYPE", K + "s", K + "h"])
case("keys.rename",
     ["SET", K + "a", "1"], ["RENAME", K + "a", K + "b"], ["GET", K + "a"], ["GET", K + "b"],
     ["RENAME", K + "missing", K + "x"], ["SET", K + "c", "3"], ["RENAME", K + "b", K + "c"],
     ["GET", K + "c"], ["RENAME", K + "c", K + "c"], ["GET", K + "c"], ["RENAME", K + "c"],
     ["HSET", K + "h", "f", "v"], ["RENAME", K + "h", K + "h2"], ["HGET", K + "h2", "f"])
case("keys.renamenx",
     ["MSET", K + "a", "1", K + "b", "2"], ["RENAMENX", K + "a", K + "b"],
     ["RENAMENX", K + "a", K + "c"], ["MGET", K + "a", K + "b", K + "c"],
     ["RENAMENX", K + "missing", K + "x"], ["RENAMENX", K + "c", K + "c"], ["RENAMENX", K + "c"])
case("keys.keys",
     ["MSET", K + "one", "1", K + "two", "2", K + "three", "3"], ["HSET", K + "h", "f", "v"],
     N("unordered", "KEYS", K + "*"), N("unordered", "KEYS", K + "t*"),
     N("unordered", "KEYS", K + "?wo"), N("unordered", "KEYS", K + "[ot]*"),
     ["KEYS", K + "nothing*"], ["KEYS"], ["KEYS", "a", "b"])
case("keys.scan",
     ["MSET"] + [x for i in range(25) for x in (K + "s%02d" % i, str(i))],
     ["HSET", K + "h1", "f", "v"], ["HSET", K + "h2", "f", "v"],
     ScanAll("SCAN", "MATCH", K + "*"), ScanAll("SCAN", "MATCH", K + "*", "COUNT", "3"),
     ScanAll("SCAN", "MATCH", K + "s1*", "COUNT", "1000"),
     ScanAll("SCAN", "MATCH", K + "*", "TYPE", "hash"),
     ScanAll("SCAN", "MATCH", K + "*", "TYPE", "string", "COUNT", "5"),
     ScanAll("SCAN", "MATCH", K + "*", "TYPE", "list"),
     ["SCAN", "abc"], ["SCAN", "0", "COUNT", "0"], ["SCAN", "0", "COUNT", "x"],
     ["SCAN", "0", "BOGUS", "1"], ["SCAN"], ["SCAN", "0", "MATCH"])
case("keys.dbsize_flush",
     ["FLUSHALL"], ["DBSIZE"], ["MSET", K + "a", "1", K + "b", "2"], ["HSET", K + "h", "f", "v"],
     ["DBSIZE"], ["FLUSHDB"], ["DBSIZE"], ["SET", K + "a", "1"], ["FLUSHALL", "SYNC"],
     ["DBSIZE"], ["SET", K + "a", "1"], ["FLUSHDB", "ASYNC"], ["DBSIZE"], ["FLUSHALL", "BOGUS"],
     ["FLUSHDB", "SYNC", "ASYNC"], ["DBSIZE", "x"])
case("keys.randomkey",
     ["FLUSHALL"], ["RANDOMKEY"], ["SET", K + "only", "v"], ["RANDOMKEY"],
     ["RANDOMKEY", "x"])
case("keys.time", N("shape", "TIME"), ["TIME", "x"])

# ---------------------------------------------------------------- hashes
case("hashes.hset_hget",
     ["HSET", K + "h", "f1", "v1"], ["HSET", K + "h", "f1", "v2", "f2", "v3"],
     ["HGET", K + "h", "f1"], ["HGET", K + "h", "missing"], ["HGET", K + "missing", "f"],
     ["HSET", K + "h", "f1"], ["HSET", K + "h"], ["HSET", K + "h", "a", "1", "b"],
     ["HGET", K + "h"], ["HSET", K + "h", "", ""], ["HGET", K + "h", ""], follower=True)
case("hashes.hmget",
     ["HSET", K + "h", "a", "1", "b", "2"], ["HMGET", K + "h", "a", "x", "b"],
     ["HMGET", K + "missing", "a"], ["HMGET", K + "h"], ["SET", K + "s", "v"],
     ["HMGET", K + "s", "a"])
case("hashes.expiry",
     ["HSET", K + "h", "f", "v"], ["PEXPIRE", K + "h", "800"], ["HGET", K + "h", "f"],
     Sleep(1300), ["HGET", K + "h", "f"], ["EXISTS", K + "h"], ["HSET", K + "h", "f", "v"],
     ["EXPIRE", K + "h", "100"], ["HSET", K + "h", "g", "w"], N("ttl:100:3", "TTL", K + "h"))
case("hashes.hdel",
     ["HSET", K + "h", "a", "1", "b", "2", "c", "3"], ["HDEL", K + "h", "a", "x"],
     ["HDEL", K + "h", "b", "c"], ["EXISTS", K + "h"], ["HDEL", K + "missing", "a"],
     ["HDEL", K + "h"])
case("hashes.hgetall_hkeys_hvals",
     ["HSET", K + "h", "a", "1", "b", "2", "c", "3"], N("pairs", "HGETALL", K + "h"),
     N("unordered", "HKEYS", K + "h"), N("unordered", "HVALS", K + "h"),
     ["HGETALL", K + "missing"], ["HKEYS", K + "missing"], ["HVALS", K + "missing"],
     ["HGETALL"], ["HKEYS", K + "h", "x"], ["HVALS"], follower=True)
case("hashes.hlen_hexists",
     ["HSET", K + "h", "a", "1", "b", "2"], ["HLEN", K + "h"], ["HLEN", K + "missing"],
     ["HEXISTS", K + "h", "a"], ["HEXISTS", K + "h", "z"], ["HEXISTS", K + "missing", "a"],
     ["HLEN"], ["HEXISTS", K + "h"])
case("hashes.hincrby",
     ["HINCRBY", K + "h", "n", "5"], ["HINCRBY", K + "h", "n", "-7"], ["HGET", K + "h", "n"],
     ["HINCRBY", K + "h", "n", "x"], ["HSET", K + "h", "s", "abc"], ["HINCRBY", K + "h", "s", "1"],
     ["HSET", K + "h", "big", I64_MAX], ["HINCRBY", K + "h", "big", "1"],
     ["HINCRBY", K + "h", "n", "9223372036854775808"], ["HINCRBY", K + "h", "n"],
     ["SET", K + "str", "v"], ["HINCRBY", K + "str", "n", "1"])
case("hashes.hincrbyfloat",
     ["HINCRBYFLOAT", K + "h", "f", "10.5"], ["HINCRBYFLOAT", K + "h", "f", "0.1"],
     ["HINCRBYFLOAT", K + "h", "f", "-5e2"], ["HINCRBYFLOAT", K + "h", "f", "x"],
     ["HINCRBYFLOAT", K + "h", "f", "inf"], ["HSET", K + "h", "s", "abc"],
     ["HINCRBYFLOAT", K + "h", "s", "1"], ["HINCRBYFLOAT", K + "h", "f"], ["HGET", K + "h", "f"])
case("hashes.hsetnx",
     ["HSETNX", K + "h", "a", "1"], ["HSETNX", K + "h", "a", "2"], ["HGET", K + "h", "a"],
     ["HSETNX", K + "h", "a"], ["SET", K + "s", "v"], ["HSETNX", K + "s", "a", "1"])
case("hashes.hscan",
     ["HSET", K + "h"] + [x for i in range(30) for x in ("f%02d" % i, "v%d" % i)],
     ScanAll("HSCAN", K + "h"), ScanAll("HSCAN", K + "h", "COUNT", "4"),
     ScanAll("HSCAN", K + "h", "MATCH", "f1*"), ScanAll("HSCAN", K + "missing"),
     ["HSCAN", K + "h", "x"], ["HSCAN", K + "h"], ["SET", K + "s", "v"], ["HSCAN", K + "s", "0"])
case("hashes.wrongtype",
     ["SET", K + "s", "v"], ["HSET", K + "s", "f", "v"], ["HGET", K + "s", "f"],
     ["HDEL", K + "s", "f"], ["HLEN", K + "s"], ["HEXISTS", K + "s", "f"], ["HKEYS", K + "s"],
     ["HVALS", K + "s"], ["HINCRBYFLOAT", K + "s", "f", "1"])

# ---------------------------------------------------------------- transactions
case("tx.multi_exec",
     ["MULTI"], ["SET", K + "a", "1"], ["INCR", K + "a"], ["GET", K + "a"], ["EXEC"],
     ["GET", K + "a"], follower=True)
case("tx.empty_and_nested",
     ["MULTI"], ["EXEC"], ["MULTI"], ["MULTI"], ["PING"], ["EXEC"], ["EXEC"], ["DISCARD"],
     ["MULTI", "x"])
case("tx.discard",
     ["MULTI"], ["SET", K + "a", "1"], ["DISCARD"], ["GET", K + "a"], ["DISCARD"])
case("tx.execabort_unknown_command",
     ["MULTI"], ["SET", K + "a", "1"], ["NOSUCHCOMMAND", "x"], ["SET", K + "b", "2"], ["EXEC"],
     ["MGET", K + "a", K + "b"], follower=True)
case("tx.execabort_wrong_arity",
     ["MULTI"], ["SET", K + "a", "1"], ["SET", K + "b"], ["GET"], ["EXEC"], ["GET", K + "a"])
case("tx.runtime_error_inside_exec",
     ["MULTI"], ["SET", K + "a", "abc"], ["INCR", K + "a"], ["SET", K + "b", "v"],
     ["HSET", K + "a", "f", "v"], ["EXEC"], ["MGET", K + "a", K + "b"], follower=True)
case("tx.watch_conflict",
     ["SET", K + "a", "1"], ["WATCH", K + "a"], On2(["SET", K + "a", "2"]), ["MULTI"],
     ["SET", K + "a", "3"], ["EXEC"], ["GET", K + "a"], follower=True)
case("tx.watch_no_conflict",
     ["SET", K + "a", "1"], ["WATCH", K + "a"], On2(["GET", K + "a"]), ["MULTI"],
     ["INCR", K + "a"], ["EXEC"], ["GET", K + "a"])
case("tx.watch_missing_key_created",
     ["WATCH", K + "a", K + "b"], On2(["SET", K + "b", "x"]), ["MULTI"], ["SET", K + "a", "1"],
     ["EXEC"], ["EXISTS", K + "a"])
case("tx.watch_deleted_key",
     ["SET", K + "a", "1"], ["WATCH", K + "a"], On2(["DEL", K + "a"]), ["MULTI"],
     ["SET", K + "a", "1"], ["EXEC"], ["EXISTS", K + "a"])
case("tx.unwatch",
     ["SET", K + "a", "1"], ["WATCH", K + "a"], On2(["SET", K + "a", "2"]), ["UNWATCH"],
     ["MULTI"], ["SET", K + "a", "3"], ["EXEC"], ["GET", K + "a"], ["UNWATCH"])
case("tx.watch_inside_multi",
     ["MULTI"], ["WATCH", K + "a"], ["SET", K + "a", "1"], ["EXEC"], ["WATCH"],
     ["GET", K + "a"])
case("tx.exec_after_conflict_resets_watch",
     ["SET", K + "a", "1"], ["WATCH", K + "a"], On2(["SET", K + "a", "2"]), ["MULTI"],
     ["EXEC"], ["MULTI"], ["SET", K + "a", "4"], ["EXEC"], ["GET", K + "a"])

# ---------------------------------------------------------------- server
case("server.ping_echo",
     ["PING"], ["PING", "hello"], ["PING", "a", "b"], ["ECHO", "x y"], ["ECHO"],
     ["ECHO", "a", "b"], ["ping"], follower=True)
case("server.select",
     ["SELECT", "0"], ["SELECT", "abc"], ["SELECT", "-1"], ["SELECT", "16"], ["SELECT"],
     ["SELECT", "0", "1"], ["SELECT", "0"])
case("server.select_other_database", ["SELECT", "1"], ["SELECT", "15"])
case("server.hello",
     N("hello", "HELLO"), N("hello", "HELLO", "2"), ["PING"], N("hello", "HELLO", "3"),
     ["PING"], ["HELLO", "4"], ["HELLO", "abc"], ["HELLO", "1"],
     N("hello", "HELLO", "2", "SETNAME", "compat-name"), ["CLIENT", "GETNAME"],
     N("hello", "HELLO", "3", "SETNAME", "other"), ["CLIENT", "GETNAME"],
     ["HELLO", "3", "SETNAME", "bad name"], ["HELLO", "3", "BOGUS"], ["CLIENT", "GETNAME"])
case("server.client_names",
     ["CLIENT", "GETNAME"], ["CLIENT", "SETNAME", "compat"], ["CLIENT", "GETNAME"],
     ["CLIENT", "SETNAME", "with space"], ["CLIENT", "SETNAME", "a\nb"],
     ["CLIENT", "SETNAME", ""], ["CLIENT", "GETNAME"], ["CLIENT", "SETNAME"],
     ["CLIENT", "GETNAME", "x"], On2(["CLIENT", "GETNAME"]))
case("server.client_setinfo",
     ["CLIENT", "SETINFO", "LIB-NAME", "compat"], ["CLIENT", "SETINFO", "lib-ver", "1.2.3"],
     ["CLIENT", "SETINFO", "LIB-NAME", "with space"], ["CLIENT", "SETINFO", "BOGUS", "x"],
     ["CLIENT", "SETINFO", "LIB-NAME"])
case("server.client_id_list_info",
     N("shape", "CLIENT", "ID"), N("client_fields", "CLIENT", "INFO"),
     N("client_fields", "CLIENT", "LIST", "ID", "999999999"), ["CLIENT", "BOGUS"], ["CLIENT"],
     ["CLIENT", "ID", "x"])
case("server.command",
     N("shape", "COMMAND", "COUNT"), CommandConsistency(), N("shape", "COMMAND", "INFO", "GET"),
     N("shape", "COMMAND", "INFO", "NOSUCHCOMMAND"), N("shape", "COMMAND", "DOCS", "GET"),
     ["COMMAND", "BOGUS"])
case("server.config_get",
     N("pairs", "CONFIG", "GET", "nosuchparameter"), N("shape", "CONFIG", "GET", "databases"),
     ["CONFIG", "GET"], ["CONFIG"])
case("server.info",
     N("info", "INFO"), N("info", "INFO", "server"), N("info", "INFO", "keyspace"),
     N("info", "INFO", "nosuchsection"), follower=True)
case("server.unknown_command",
     ["NOSUCHCOMMAND"], ["NOSUCHCOMMAND", "a", "b"], ["KEYSX"], follower=True)

# ---------------------------------------------------------------- not in Ketch
unsupported("unsupported.lists",
            ["LPUSH", K + "l", "a"], ["RPUSH", K + "l", "a"], ["LPOP", K + "l"],
            ["RPOP", K + "l"], ["LRANGE", K + "l", "0", "-1"], ["LLEN", K + "l"])
unsupported("unsupported.sets",
            ["SADD", K + "s", "a"], ["SMEMBERS", K + "s"], ["SPOP", K + "s"],
            ["SISMEMBER", K + "s", "a"])
unsupported("unsupported.sorted_sets",
            ["ZADD", K + "z", "1", "a"], ["ZRANGE", K + "z", "0", "-1"], ["ZPOPMIN", K + "z"],
            ["ZSCORE", K + "z", "a"])
