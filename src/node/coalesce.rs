//! Merging contiguous AppendEntries to the same follower within one `Ready`.
//!
//! The core sends an Append per proposal (it replicates eagerly); when the loop proposes many
//! client commands before taking a `Ready`, a follower would receive one message, take one
//! `Ready`, one log-writer item and send one acknowledgement per entry. Two Appends of the same
//! term where the second starts right after the first's last entry say together exactly what
//! the second says with the first's entries in front: the follower checks the first's
//! `prev_log_index`/`prev_log_term`, stores both runs, and answers once for the last index,
//! which acknowledges both (the leader's progress frees in-flight messages up to an index).
//! The larger `leader_commit` is kept; commit only grows.
//!
//! Merging stops at `max_bytes` of entry payload per message, the core's own message limit.

use std::collections::HashMap;

use crate::raft::{Entry, Message, MessageBody, NodeId};

/// Returns `messages` with contiguous Appends to the same peer merged, others unchanged and
/// in their original order (a merged Append takes the place of the first of its parts).
pub fn coalesce_appends(messages: Vec<Message>, max_bytes: u64) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len());
    // For each peer, the position in `out` of its latest Append, and that Append's bytes.
    let mut last_append: HashMap<NodeId, (usize, u64)> = HashMap::new();
    for message in messages {
        if let MessageBody::Append { .. } = &message.body {
            if let Some((pos, merged_bytes)) = last_append.get_mut(&message.to) {
                if try_merge(&mut out[*pos], &message, merged_bytes, max_bytes) {
                    continue;
                }
            }
            let bytes = entries_bytes(&message);
            last_append.insert(message.to, (out.len(), bytes));
        }
        out.push(message);
    }
    out
}

fn entries_bytes(message: &Message) -> u64 {
    match &message.body {
        MessageBody::Append { entries, .. } => entries.iter().map(Entry::size_bytes).sum(),
        _ => 0,
    }
}

/// Appends `next`'s entries to `into` if they continue it; returns whether it did.
fn try_merge(into: &mut Message, next: &Message, merged_bytes: &mut u64, max_bytes: u64) -> bool {
    if into.term != next.term || into.from != next.from {
        return false;
    }
    let (
        MessageBody::Append {
            prev_log_index,
            entries,
            leader_commit,
            ..
        },
        MessageBody::Append {
            prev_log_index: next_prev_index,
            prev_log_term: next_prev_term,
            entries: next_entries,
            leader_commit: next_commit,
        },
    ) = (&mut into.body, &next.body)
    else {
        return false;
    };
    let last = entries.last().map_or(*prev_log_index, |e| e.index);
    let last_term = entries.last().map(|e| e.term);
    // An empty Append (a probe) is never merged into: its answer decides the next send.
    let contiguous =
        !entries.is_empty() && *next_prev_index == last && last_term == Some(*next_prev_term);
    let next_bytes = entries_bytes(next);
    if !contiguous || *merged_bytes + next_bytes > max_bytes {
        return false;
    }
    entries.extend(next_entries.iter().cloned());
    *leader_commit = (*leader_commit).max(*next_commit);
    *merged_bytes += next_bytes;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryKind;

    fn append(to: NodeId, prev: u64, count: u64, commit: u64) -> Message {
        Message {
            from: 1,
            to,
            term: 2,
            body: MessageBody::Append {
                prev_log_index: prev,
                prev_log_term: 2,
                entries: (prev + 1..=prev + count)
                    .map(|index| Entry {
                        term: 2,
                        index,
                        kind: EntryKind::Normal,
                        data: bytes::Bytes::from(vec![0; 8]),
                    })
                    .collect(),
                leader_commit: commit,
            },
        }
    }

    fn shape(m: &Message) -> (NodeId, u64, Vec<u64>, u64) {
        match &m.body {
            MessageBody::Append {
                prev_log_index,
                entries,
                leader_commit,
                ..
            } => (
                m.to,
                *prev_log_index,
                entries.iter().map(|e| e.index).collect(),
                *leader_commit,
            ),
            _ => (m.to, 0, Vec::new(), 0),
        }
    }

    #[test]
    fn contiguous_appends_per_peer_merge_and_gaps_do_not() {
        let heartbeat = Message {
            from: 1,
            to: 2,
            term: 2,
            body: MessageBody::Heartbeat {
                commit: 3,
                round: 1,
            },
        };
        let messages = vec![
            append(2, 10, 1, 5),
            append(3, 10, 1, 5),
            heartbeat.clone(),
            append(2, 11, 2, 6),
            append(3, 12, 1, 6), // a gap: 11 was not sent in this batch
        ];
        let out = coalesce_appends(messages, 1 << 20);
        assert_eq!(out.len(), 4);
        assert_eq!(shape(&out[0]), (2, 10, vec![11, 12, 13], 6));
        assert_eq!(shape(&out[1]), (3, 10, vec![11], 5));
        assert_eq!(out[2], heartbeat);
        assert_eq!(shape(&out[3]), (3, 12, vec![13], 6));
    }

    #[test]
    fn merging_stops_at_the_byte_limit_and_at_a_term_change() {
        let one_entry_bytes = 8 + 24;
        let out = coalesce_appends(
            vec![append(2, 0, 1, 0), append(2, 1, 1, 0), append(2, 2, 1, 0)],
            2 * one_entry_bytes,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(shape(&out[0]).2, vec![1, 2]);
        assert_eq!(shape(&out[1]).2, vec![3]);
        let mut later = append(2, 1, 1, 0);
        later.term = 3;
        assert_eq!(
            coalesce_appends(vec![append(2, 0, 1, 0), later], 1 << 20).len(),
            2
        );
    }
}
