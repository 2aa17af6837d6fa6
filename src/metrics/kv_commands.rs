//! `ketch_kv_commands_total{cmd}`: RESP commands by name, over a bounded label set.
//!
//! The label is the lower-case name of a command the server knows ([`KNOWN_COMMANDS`]);
//! any other name counts as `cmd="other"`, so a client sending random names cannot grow the
//! series without bound. The counters are created once, at start; counting finds the name
//! case-insensitively by binary search in the sorted list (no allocation, no lock, about
//! seven comparisons) and adds one. A command added to the server's table needs its name here
//! too: a test of the server's command table fails until it is.

use prometheus::{IntCounter, IntCounterVec, Opts};

/// Every command name with its own series: the server's commands, lower case, sorted (for
/// the binary search in [`CommandCounters::count`]).
pub const KNOWN_COMMANDS: &[&str] = &[
    "append",
    "auth",
    "client",
    "cluster",
    "command",
    "config",
    "dbsize",
    "decr",
    "decrby",
    "del",
    "discard",
    "echo",
    "exec",
    "exists",
    "expire",
    "expireat",
    "expiretime",
    "flushall",
    "flushdb",
    "get",
    "getdel",
    "getex",
    "getrange",
    "getset",
    "hdel",
    "hello",
    "hexists",
    "hget",
    "hgetall",
    "hincrby",
    "hincrbyfloat",
    "hkeys",
    "hlen",
    "hmget",
    "hmset",
    "hscan",
    "hset",
    "hsetnx",
    "hstrlen",
    "hvals",
    "incr",
    "incrby",
    "incrbyfloat",
    "info",
    "ketch.addlearner",
    "ketch.demote",
    "ketch.members",
    "ketch.promote",
    "ketch.remove",
    "ketch.transfer",
    "ketch.write",
    "keys",
    "mget",
    "mset",
    "msetnx",
    "multi",
    "persist",
    "pexpire",
    "pexpireat",
    "pexpiretime",
    "ping",
    "psetex",
    "pttl",
    "quit",
    "randomkey",
    "readonly",
    "readwrite",
    "rename",
    "renamenx",
    "scan",
    "select",
    "set",
    "setex",
    "setnx",
    "setrange",
    "strlen",
    "time",
    "ttl",
    "type",
    "unlink",
    "unwatch",
    "watch",
];

/// The label value of every name outside [`KNOWN_COMMANDS`].
pub const OTHER_COMMAND: &str = "other";

/// The counter family and its pre-made children.
#[derive(Debug, Clone)]
pub struct CommandCounters {
    family: IntCounterVec,
    known: Vec<IntCounter>,
    other: IntCounter,
}

impl CommandCounters {
    /// Creates the family with one child per known command and one for the rest.
    pub fn new() -> Self {
        let family = IntCounterVec::new(
            Opts::new(
                "ketch_kv_commands_total",
                "RESP commands received, by lower-case command name (unknown names: other).",
            ),
            &["cmd"],
        )
        .expect("valid metric options");
        let known = KNOWN_COMMANDS
            .iter()
            .map(|name| family.with_label_values(&[*name]))
            .collect();
        let other = family.with_label_values(&[OTHER_COMMAND]);
        CommandCounters {
            family,
            known,
            other,
        }
    }

    /// The family, for registration.
    pub fn family(&self) -> &IntCounterVec {
        &self.family
    }

    /// Counts one command named `name` (any case).
    #[inline]
    pub fn count(&self, name: &[u8]) {
        let counter = KNOWN_COMMANDS
            .binary_search_by(|known| cmp_lower(known.as_bytes(), name))
            .map_or(&self.other, |i| &self.known[i]);
        counter.inc();
    }
}

/// Orders `known` (lower case) against `name` lower-cased, without copying `name`.
fn cmp_lower(known: &[u8], name: &[u8]) -> std::cmp::Ordering {
    known
        .iter()
        .copied()
        .cmp(name.iter().map(u8::to_ascii_lowercase))
}

impl Default for CommandCounters {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_known_list_is_lower_case_sorted_and_without_repeats() {
        for pair in KNOWN_COMMANDS.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?} out of order or repeated");
        }
        for name in KNOWN_COMMANDS {
            assert_eq!(*name, name.to_ascii_lowercase());
            assert_ne!(*name, OTHER_COMMAND);
        }
    }

    #[test]
    fn known_names_count_by_lower_case_name_and_the_rest_as_other() {
        let counters = CommandCounters::new();
        counters.count(b"SET");
        counters.count(b"set");
        counters.count(b"KeTcH.WrItE");
        counters.count(b"NOSUCHCMD");
        counters.count(b"");
        counters.count(&[0xff; 40]);
        let value = |cmd: &str| counters.family.with_label_values(&[cmd]).get();
        assert_eq!(value("set"), 2);
        assert_eq!(value("ketch.write"), 1);
        assert_eq!(value("get"), 0);
        assert_eq!(value(OTHER_COMMAND), 3);
        // The label set is the fixed list plus "other", whatever was sent.
        use prometheus::core::Collector;
        let families = counters.family.collect();
        assert_eq!(families[0].get_metric().len(), KNOWN_COMMANDS.len() + 1);
    }
}
