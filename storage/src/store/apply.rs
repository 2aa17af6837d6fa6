//! How a batch of records changes the groups: one function for the write path and for
//! recovery, so that the state rebuilt at open is the state that wrote the records.

use std::collections::BTreeMap;

use super::format::StoreOp;
use super::index::{GroupIndex, LiveCounter, RunBytes};
use crate::entry::MAX_INDEX;

/// A record that cannot apply to the groups as they are: damage (or a bug).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inapplicable {
    pub group: u64,
    /// Frame offset of the record (0 when not known).
    pub offset: u32,
    pub index_range: Option<(u64, u64)>,
    pub reason: String,
}

/// Applies the records of one complete batch of segment `seq` in order.
pub(crate) fn apply_batch(
    groups: &mut BTreeMap<u64, GroupIndex>,
    seq: u64,
    ops: &[StoreOp],
    live: &mut dyn LiveCounter,
) -> Result<(), Inapplicable> {
    let mut position = 0;
    // Bounded: every step consumes at least one op.
    while position < ops.len() {
        if let StoreOp::Entry {
            group,
            index,
            offset,
            bytes,
            moved: true,
        } = ops[position]
        {
            if index == 0 || index > MAX_INDEX {
                return Err(Inapplicable {
                    group,
                    offset,
                    index_range: Some((index, index)),
                    reason: format!("rewritten entry holds impossible index {index}"),
                });
            }
            // A run of moved entries of one group becomes one relocation (one chunk).
            let mut offsets = vec![offset];
            let mut sizes = vec![bytes];
            let mut next = position + 1;
            while let Some(StoreOp::Entry {
                group: g,
                index: i,
                offset: o,
                bytes: b,
                moved: true,
            }) = ops.get(next)
            {
                if *g != group || *i != index + offsets.len() as u64 {
                    break;
                }
                offsets.push(*o);
                sizes.push(*b);
                next += 1;
            }
            if let Some(state) = groups.get_mut(&group) {
                state.relocate(seq, index, &offsets, RunBytes::Each(&sizes), live);
            }
            position = next;
            continue;
        }
        apply_one(groups, seq, &ops[position], live)?;
        position += 1;
    }
    Ok(())
}

fn apply_one(
    groups: &mut BTreeMap<u64, GroupIndex>,
    seq: u64,
    op: &StoreOp,
    live: &mut dyn LiveCounter,
) -> Result<(), Inapplicable> {
    match *op {
        StoreOp::Entry {
            group,
            index,
            offset,
            bytes,
            moved,
        } => {
            debug_assert!(!moved, "moved entries are relocated by apply_batch");
            let state = groups.entry(group).or_default();
            let problem = |reason: String| Inapplicable {
                group,
                offset,
                index_range: Some((index, index)),
                reason,
            };
            if index == 0 || index > MAX_INDEX {
                return Err(problem(format!("entry holds impossible index {index}")));
            }
            if index < state.first {
                return Err(problem(format!(
                    "entry {index} lies below the group's first index {}",
                    state.first
                )));
            }
            if !state.is_empty() && index > state.last + 1 {
                return Err(problem(format!(
                    "entry {index} does not follow the group's last index {}",
                    state.last
                )));
            }
            state.push(seq, index, offset, bytes as u64, live);
        }
        StoreOp::HardState { group, hard_state } => {
            groups.entry(group).or_default().hard_state = hard_state;
        }
        StoreOp::Truncate { group, from } => {
            if let Some(state) = groups.get_mut(&group) {
                state.truncate(from, live);
            }
        }
        StoreOp::Compact { group, first } => {
            if first == 0 || first > MAX_INDEX {
                return Err(Inapplicable {
                    group,
                    offset: 0,
                    index_range: None,
                    reason: format!("compaction to impossible index {first}"),
                });
            }
            groups.entry(group).or_default().compact(first, live);
        }
        StoreOp::Remove { group } => {
            if let Some(mut state) = groups.remove(&group) {
                state.clear(live);
            }
        }
        StoreOp::Checkpoint(ref states) => {
            if let Some(pair) = states
                .windows(2)
                .find(|pair| pair[0].group >= pair[1].group)
            {
                return Err(Inapplicable {
                    group: pair[1].group,
                    offset: 0,
                    index_range: None,
                    reason: "checkpoint lists groups out of order".into(),
                });
            }
            for state in states {
                if state.first == 0
                    || state.first > MAX_INDEX
                    || state.last > MAX_INDEX
                    || state.last + 1 < state.first
                {
                    return Err(Inapplicable {
                        group: state.group,
                        offset: 0,
                        index_range: None,
                        reason: format!(
                            "checkpoint holds an impossible range {}..={}",
                            state.first, state.last
                        ),
                    });
                }
            }
            let mut listed = states.iter().map(|state| state.group).peekable();
            let mut absent = Vec::new();
            for group in groups.keys() {
                while listed.next_if(|listed| listed < group).is_some() {}
                if listed.peek() != Some(group) {
                    absent.push(*group);
                }
            }
            for group in absent {
                if let Some(mut state) = groups.remove(&group) {
                    state.clear(live);
                }
            }
            for state in states {
                groups.entry(state.group).or_default().reset(
                    state.first,
                    state.last,
                    state.hard_state,
                    live,
                );
            }
        }
    }
    Ok(())
}
