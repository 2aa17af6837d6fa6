//! The command table: every command the state machine runs, its arity, whether it writes, and
//! its handler. The server classifies requests with [`lookup`] (a write goes through the log,
//! a read through a ReadIndex query) and checks arity before proposing; the state machine
//! checks again (a log holds whatever was proposed).
//!
//! Handlers write one RESP2 reply into [`Exec::out`]. A write handler runs at apply, with
//! `now_ms` the log time and `index` the entry's log index (the revision of what it changes);
//! a read handler runs at apply too inside a transaction, or in a query with `now_ms` the
//! larger of log time and the serving node's clock.

use super::keyspace::Keyspace;
use super::value::WRONGTYPE_TEXT;
use super::{expiry, hashes, keys, strings};
use crate::kv::resp::write_error;

/// What a handler needs besides the keyspace.
pub struct Exec<'a> {
    /// Log time (writes) or max(log time, serving clock) (queries), ms.
    pub now_ms: u64,
    /// The serving node's clock in a query (`TIME`); log time at apply.
    pub clock_ms: u64,
    /// Log index of the entry being applied (0 in a query).
    pub index: u64,
    /// Largest value a write may leave.
    pub max_value_bytes: usize,
    /// The reply.
    pub out: &'a mut Vec<u8>,
}

impl Exec<'_> {
    /// Appends an error reply.
    pub fn error(&mut self, text: &str) {
        write_error(self.out, text);
    }

    /// Appends Redis' WRONGTYPE error.
    pub fn wrong_type(&mut self) {
        write_error(self.out, WRONGTYPE_TEXT);
    }

    /// Appends `+OK`.
    pub fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }
}

/// A read handler.
pub type ReadFn = fn(&Keyspace, &mut Exec<'_>, &[&[u8]]);
/// A write handler.
pub type WriteFn = fn(&mut Keyspace, &mut Exec<'_>, &[&[u8]]);

/// How a command runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Reads only: served by a query.
    Read(ReadFn),
    /// Changes state: goes through the log.
    Write(WriteFn),
}

/// One command.
#[derive(Clone, Copy)]
pub struct CommandSpec {
    /// Lower-case name, as Redis' error texts quote it.
    pub name: &'static str,
    /// Redis' arity: `n > 0` exactly n words, `n < 0` at least -n (name included).
    pub arity: i32,
    /// The handler.
    pub handler: Handler,
}

impl CommandSpec {
    /// True if the command goes through the log.
    pub fn is_write(&self) -> bool {
        matches!(self.handler, Handler::Write(_))
    }

    /// True if `argc` words (name included) fit the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        if self.arity >= 0 {
            argc == self.arity as usize
        } else {
            argc >= self.arity.unsigned_abs() as usize
        }
    }
}

/// Redis' wording for a wrong number of arguments.
pub fn arity_error_text(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

use Handler::{Read as R, Write as W};

/// Every command, by name. `GETEX` is a write even without options (it may change a TTL;
/// routing it by its options would need the words, and a write is always correct).
const COMMANDS: &[CommandSpec] = &[
    // Strings.
    spec("get", 2, R(strings::get)),
    spec("set", -3, W(strings::set)),
    spec("setnx", 3, W(strings::setnx)),
    spec("setex", 4, W(strings::setex)),
    spec("psetex", 4, W(strings::psetex)),
    spec("getset", 3, W(strings::getset)),
    spec("getdel", 2, W(strings::getdel)),
    spec("getex", -2, W(strings::getex)),
    spec("getrange", 4, R(strings::getrange)),
    spec("setrange", 4, W(strings::setrange)),
    spec("strlen", 2, R(strings::strlen)),
    spec("append", 3, W(strings::append)),
    spec("incr", 2, W(strings::incr)),
    spec("decr", 2, W(strings::decr)),
    spec("incrby", 3, W(strings::incrby)),
    spec("decrby", 3, W(strings::decrby)),
    spec("incrbyfloat", 3, W(strings::incrbyfloat)),
    spec("mget", -2, R(strings::mget)),
    spec("mset", -3, W(strings::mset)),
    spec("msetnx", -3, W(strings::msetnx)),
    // Hashes.
    spec("hset", -4, W(hashes::hset)),
    spec("hmset", -4, W(hashes::hmset)),
    spec("hsetnx", 4, W(hashes::hsetnx)),
    spec("hget", 3, R(hashes::hget)),
    spec("hmget", -3, R(hashes::hmget)),
    spec("hdel", -3, W(hashes::hdel)),
    spec("hgetall", 2, R(hashes::hgetall)),
    spec("hkeys", 2, R(hashes::hkeys)),
    spec("hvals", 2, R(hashes::hvals)),
    spec("hlen", 2, R(hashes::hlen)),
    spec("hexists", 3, R(hashes::hexists)),
    spec("hstrlen", 3, R(hashes::hstrlen)),
    spec("hincrby", 4, W(hashes::hincrby)),
    spec("hincrbyfloat", 4, W(hashes::hincrbyfloat)),
    spec("hscan", -3, R(hashes::hscan)),
    // Keys.
    spec("del", -2, W(keys::del)),
    spec("unlink", -2, W(keys::del)),
    spec("exists", -2, R(keys::exists)),
    spec("type", 2, R(keys::type_of)),
    spec("rename", 3, W(keys::rename)),
    spec("renamenx", 3, W(keys::renamenx)),
    spec("keys", 2, R(keys::keys)),
    spec("scan", -2, R(keys::scan)),
    spec("randomkey", 1, R(keys::randomkey)),
    spec("dbsize", 1, R(keys::dbsize)),
    spec("flushdb", -1, W(keys::flush)),
    spec("flushall", -1, W(keys::flush)),
    spec("time", 1, R(keys::time)),
    // Expiry.
    spec("expire", -3, W(expiry::expire)),
    spec("pexpire", -3, W(expiry::pexpire)),
    spec("expireat", -3, W(expiry::expireat)),
    spec("pexpireat", -3, W(expiry::pexpireat)),
    spec("ttl", 2, R(expiry::ttl)),
    spec("pttl", 2, R(expiry::pttl)),
    spec("expiretime", 2, R(expiry::expiretime)),
    spec("pexpiretime", 2, R(expiry::pexpiretime)),
    spec("persist", 2, W(expiry::persist)),
];

const fn spec(name: &'static str, arity: i32, handler: Handler) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        handler,
    }
}

/// The command named `name` (any case).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Redis type families Ketch does not implement, by command name: a client gets a clear
/// refusal rather than "unknown command".
const UNSUPPORTED: &[&str] = &[
    // Lists.
    "lpush",
    "rpush",
    "lpushx",
    "rpushx",
    "lpop",
    "rpop",
    "lrange",
    "llen",
    "lindex",
    "lset",
    "lrem",
    "ltrim",
    "linsert",
    "lpos",
    "lmove",
    "blmove",
    "blpop",
    "brpop",
    "rpoplpush",
    "brpoplpush",
    "lmpop",
    "blmpop",
    // Sets.
    "sadd",
    "srem",
    "smembers",
    "scard",
    "spop",
    "srandmember",
    "sismember",
    "smismember",
    "smove",
    "sinter",
    "sintercard",
    "sinterstore",
    "sunion",
    "sunionstore",
    "sdiff",
    "sdiffstore",
    "sscan",
    // Sorted sets.
    "zadd",
    "zrem",
    "zrange",
    "zrangebyscore",
    "zrevrange",
    "zrevrangebyscore",
    "zrangestore",
    "zscore",
    "zmscore",
    "zcard",
    "zcount",
    "zincrby",
    "zrank",
    "zrevrank",
    "zpopmin",
    "zpopmax",
    "bzpopmin",
    "bzpopmax",
    "zrandmember",
    "zremrangebyrank",
    "zremrangebyscore",
    "zunionstore",
    "zinterstore",
    "zdiffstore",
    "zunion",
    "zinter",
    "zdiff",
    "zscan",
    "zlexcount",
    "zrangebylex",
    "zrevrangebylex",
    "zremrangebylex",
    "zmpop",
    "bzmpop",
];

/// The refusal for a list, set or sorted-set command, if `name` is one.
pub fn unsupported_text(name: &[u8]) -> Option<String> {
    let lower = UNSUPPORTED
        .iter()
        .find(|known| known.as_bytes().eq_ignore_ascii_case(name))?;
    Some(format!(
        "ERR '{lower}' is not supported by ketch (lists, sets and sorted sets are not implemented)"
    ))
}

/// Runs one command's words in a write context (at apply), appending its reply; unknown
/// names and wrong arity get Redis' errors.
pub fn run_write(keys: &mut Keyspace, exec: &mut Exec<'_>, argv: &[&[u8]]) {
    match checked(exec, argv) {
        Some(Handler::Write(handler)) => handler(keys, exec, argv),
        Some(Handler::Read(handler)) => handler(keys, exec, argv),
        None => {}
    }
}

/// Runs a read command's words in a query; a write command is refused (the server never
/// sends one).
pub fn run_read(keys: &Keyspace, exec: &mut Exec<'_>, argv: &[&[u8]]) {
    match checked(exec, argv) {
        Some(Handler::Read(handler)) => handler(keys, exec, argv),
        Some(Handler::Write(_)) => exec.error("ERR internal error: a write command in a query"),
        None => {}
    }
}

fn checked(exec: &mut Exec<'_>, argv: &[&[u8]]) -> Option<Handler> {
    let Some(name) = argv.first() else {
        exec.error("ERR empty command");
        return None;
    };
    let Some(spec) = lookup(name) else {
        let name = String::from_utf8_lossy(name);
        exec.error(&format!(
            "ERR unknown command '{name}', with args beginning with: "
        ));
        return None;
    };
    if !spec.arity_ok(argv.len()) {
        exec.error(&arity_error_text(spec.name));
        return None;
    }
    Some(spec.handler)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lower_case() {
        let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        names.extend(UNSUPPORTED);
        for name in &names {
            assert_eq!(name.to_ascii_lowercase(), *name);
        }
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a name is listed twice");
        assert!(lookup(b"GeT").is_some());
        assert!(lookup(b"lpush").is_none());
        assert!(unsupported_text(b"LPUSH")
            .unwrap()
            .contains("'lpush' is not supported"));
    }
}
