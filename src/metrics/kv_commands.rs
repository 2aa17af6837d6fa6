//! `ketch_kv_commands_total{cmd}`: RESP commands by name, over a bounded label set.
//!
//! The label is the lower-case name of a command the server knows ([`KNOWN_COMMANDS`]);
//! any other name counts as `cmd="other"`, so a client sending random names cannot grow the
//! series without bound. The counters are created once, at start; counting matches the name
//! case-insensitively against the fixed list (no allocation, no lock) and adds one.

use prometheus::{IntCounter, IntCounterVec, Opts};

/// Every command name with its own series, lower case.
pub const KNOWN_COMMANDS: &[&str] = &[
    "get",
    "set",
    "del",
    "exists",
    "append",
    "incr",
    "incrby",
    "decr",
    "decrby",
    "mget",
    "mset",
    "dbsize",
    "ping",
    "echo",
    "info",
    "command",
    "config",
    "select",
    "client",
    "quit",
    "ketch.write",
    "ketch.addlearner",
    "ketch.promote",
    "ketch.remove",
    "ketch.transfer",
    "ketch.members",
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
            .iter()
            .position(|known| known.as_bytes().eq_ignore_ascii_case(name))
            .map_or(&self.other, |i| &self.known[i]);
        counter.inc();
    }
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
    fn known_names_count_by_lower_case_name_and_the_rest_as_other() {
        let counters = CommandCounters::new();
        counters.count(b"SET");
        counters.count(b"set");
        counters.count(b"KeTcH.WrItE");
        counters.count(b"FLUSHALL");
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
