//! [`ShardMachine`]: the one state machine type of a sharded host's groups (a host builds
//! every group with one factory): the meta group's, or a range group's.

use std::io::{self, Read, Write};

use super::meta_machine::MetaStateMachine;
use super::range_machine::RangeMachine;
use crate::node::StateMachine;

/// A sharded host's group state.
// One meta group per host against many range groups: nearly every value is the large variant,
// so boxing it would save no memory and add a pointer chase to every apply.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ShardMachine {
    /// The meta group: the routing table.
    Meta(MetaStateMachine),
    /// A range group: a slot range's keys.
    Range(RangeMachine),
}

impl StateMachine for ShardMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        match self {
            ShardMachine::Meta(meta) => meta.apply(index, command),
            ShardMachine::Range(range) => range.apply(index, command),
        }
    }

    fn query(&mut self, query: &[u8]) -> Vec<u8> {
        match self {
            ShardMachine::Meta(meta) => meta.query(query),
            ShardMachine::Range(range) => range.query(query),
        }
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> io::Result<()> {
        match self {
            ShardMachine::Meta(meta) => meta.snapshot(out),
            ShardMachine::Range(range) => range.snapshot(out),
        }
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        match self {
            ShardMachine::Meta(meta) => meta.restore(input),
            ShardMachine::Range(range) => range.restore(input),
        }
    }
}
