//! Snapshots (Raft §7): building them when the log grows, sending them in chunks to followers
//! whose next entry is compacted, and receiving and installing them.

use crate::raft::message::{MessageBody, SnapshotMeta};
use crate::raft::node_id::NodeId;
use crate::raft::progress::ProgressState;
use crate::raft::ready::{SnapshotChunk, SnapshotRequest};

use super::{Core, IncomingSnapshot};

impl Core {
    /// The driver built the snapshot requested in a `Ready`; `meta.size_bytes` is its size.
    pub fn on_snapshot_built(&mut self, meta: SnapshotMeta) {
        self.snapshot_building = false;
        if meta.index <= self.log.snapshot().index {
            return;
        }
        // Keep entries that replicating followers still need, within the threshold bound, so
        // a briefly lagging follower does not need a whole snapshot.
        let floor = (meta.index + 1).saturating_sub(self.config.snapshot_threshold_entries);
        let needed = self
            .progress
            .values()
            .filter(|pr| pr.state != ProgressState::Snapshot)
            .map(|pr| pr.match_index + 1)
            .min()
            .unwrap_or(meta.index + 1);
        self.memberships.compact(meta.index, meta.term);
        self.log.compact(meta, needed.max(floor));
    }

    /// The driver installed the snapshot given in `Ready::snapshot_to_install`.
    pub fn on_snapshot_installed(&mut self, meta: SnapshotMeta) {
        let Some((installing, _, leader)) = self.installing.take() else {
            panic!("on_snapshot_installed without a snapshot to install");
        };
        assert_eq!(
            installing, meta,
            "on_snapshot_installed for a different snapshot"
        );
        self.log.restore(meta.clone());
        self.memberships.restore(&meta);
        self.refresh_membership();
        self.stats.snapshots_installed += 1;
        self.send(
            leader,
            MessageBody::InstallSnapshotResponse {
                snapshot_index: meta.index,
                next_offset: meta.size_bytes,
                done: true,
                rejected: false,
            },
        );
    }

    pub(super) fn send_snapshot_chunk(&mut self, to: NodeId) -> bool {
        let chunk_bytes = self.config.snapshot_chunk_bytes;
        let Some(transfer) = self
            .progress
            .get_mut(&to)
            .and_then(|pr| pr.snapshot.as_mut())
        else {
            return false;
        };
        if transfer.chunk_in_flight {
            return false;
        }
        let offset = transfer.acked_offset.min(transfer.meta.size_bytes);
        let len = chunk_bytes.min(transfer.meta.size_bytes - offset);
        let done = offset + len >= transfer.meta.size_bytes;
        transfer.chunk_in_flight = true;
        transfer.idle_ticks = 0;
        let meta = transfer.meta.clone();
        self.send(
            to,
            MessageBody::InstallSnapshot {
                meta,
                offset,
                len,
                data: Vec::new(),
                done,
            },
        );
        true
    }

    /// Leader tick: snapshot chunks may be lost, so one that has seen no answer for two
    /// heartbeats is sent again.
    pub(super) fn resend_stalled_snapshot_chunks(&mut self) {
        let resend_after_ticks = 2 * self.config.heartbeat_interval_ticks;
        let latest = self.log.snapshot();
        let mut resend = Vec::new();
        for (id, pr) in self.progress.iter_mut() {
            let Some(transfer) = &mut pr.snapshot else {
                continue;
            };
            transfer.idle_ticks += 1;
            if transfer.chunk_in_flight && transfer.idle_ticks >= resend_after_ticks {
                if transfer.meta != *latest {
                    // The driver may have deleted the older snapshot (its chunks are then
                    // dropped): start over with the latest one.
                    pr.become_snapshot(latest.clone());
                    self.stats.snapshots_sent += 1;
                } else {
                    transfer.chunk_in_flight = false;
                }
                resend.push(*id);
            }
        }
        for id in resend {
            self.send_snapshot_chunk(id);
        }
    }

    pub(super) fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        snapshot_index: u64,
        next_offset: u64,
        done: bool,
        rejected: bool,
    ) {
        let Some(pr) = self.progress.get_mut(&from) else {
            self.stats.ignored_messages += 1;
            return;
        };
        pr.recent_active = true;
        let Some(transfer) = pr.snapshot.as_mut() else {
            self.stats.ignored_messages += 1;
            return;
        };
        if transfer.meta.index != snapshot_index {
            self.stats.ignored_messages += 1;
            return;
        }
        if done {
            pr.maybe_update(snapshot_index);
            pr.become_probe();
            if self.maybe_commit() {
                self.broadcast_append(false);
            }
            self.send_append(from, true);
            return;
        }
        if rejected {
            transfer.acked_offset = next_offset.min(transfer.meta.size_bytes);
        } else {
            transfer.acked_offset = transfer
                .acked_offset
                .max(next_offset.min(transfer.meta.size_bytes));
        }
        transfer.chunk_in_flight = false;
        transfer.idle_ticks = 0;
        self.send_snapshot_chunk(from);
    }

    pub(super) fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        len: u64,
        data: Vec<u8>,
        done: bool,
    ) {
        let respond = |node: &mut Self, next_offset: u64, done: bool, rejected: bool| {
            node.send_after_persist(
                from,
                MessageBody::InstallSnapshotResponse {
                    snapshot_index: meta.index,
                    next_offset,
                    done,
                    rejected,
                },
            );
        };
        if self.installing.is_some() {
            self.stats.ignored_messages += 1;
            return;
        }
        let Some(end) = offset.checked_add(len) else {
            self.stats.inconsistent_messages += 1;
            return;
        };
        if data.len() as u64 != len
            || end > meta.size_bytes
            || (done && end != meta.size_bytes)
            || meta.membership.validate().is_err()
        {
            self.stats.inconsistent_messages += 1;
            return;
        }
        if meta.index <= self.log.commit() {
            // Everything the snapshot holds is committed here already.
            respond(self, meta.size_bytes, true, false);
            return;
        }
        let expected = match &self.incoming_snapshot {
            Some(incoming) if incoming.meta == meta => incoming.next_offset,
            _ => 0,
        };
        if offset != expected {
            respond(self, expected, false, true);
            return;
        }
        if offset == 0 {
            self.incoming_snapshot = Some(IncomingSnapshot {
                meta: meta.clone(),
                next_offset: 0,
            });
        }
        self.snapshot_chunks.push(SnapshotChunk {
            meta: meta.clone(),
            offset,
            data,
        });
        let next_offset = offset + len;
        if let Some(incoming) = &mut self.incoming_snapshot {
            incoming.next_offset = next_offset;
        }
        if !done {
            respond(self, next_offset, false, false);
            return;
        }
        self.incoming_snapshot = None;
        if self.log.match_term(meta.index, meta.term) {
            // Raft §7: the log already holds the snapshot's last entry; keep what follows.
            self.log.commit_to(meta.index);
            respond(self, meta.size_bytes, true, false);
            return;
        }
        self.installing = Some((meta, false, from));
    }

    pub(super) fn snapshot_due(&self) -> bool {
        !self.snapshot_building
            && self.log.applied()
                >= self.log.snapshot().index + self.config.snapshot_threshold_entries
            // A joining node builds no snapshot before it knows its configuration.
            && !self.memberships.at(self.log.applied()).is_unknown()
    }

    pub(super) fn take_snapshot_request(&mut self) -> Option<SnapshotRequest> {
        if !self.snapshot_due() {
            return None;
        }
        let index = self.log.applied();
        let term = self.log.term(index)?;
        self.snapshot_building = true;
        Some(SnapshotRequest {
            index,
            term,
            membership: self.memberships.at(index).clone(),
        })
    }
}
