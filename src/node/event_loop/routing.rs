//! Carrying out the core's `Ready` (see `crate::raft` for the contract): messages to the
//! transport, persistence to the log writer, committed entries and reads to the apply thread,
//! and the writer's and apply thread's completions back to the core.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{EventLoop, PendingPersist, State, APPLY_SLACK_ITEMS, NODE_GROUP};
use crate::node::addresses::addresses_in;
use crate::node::apply::{ApplyWork, APPLY_QUEUE_ITEMS};
use crate::node::coalesce::coalesce_appends;
use crate::node::disk_stall;
use crate::node::errors::{ProposeError, ReadError};
use crate::node::log_writer::PersistWork;
use crate::raft::{Message, MessageBody, Ready};

impl EventLoop {
    pub(super) fn take_completions(&mut self, state: &mut State) {
        let durable = self
            .writer_shared
            .durable_through_seq
            .load(Ordering::Acquire);
        while state.pending.front().is_some_and(|p| p.seq <= durable) {
            let done = state.pending.pop_front().expect("front exists");
            state.writer_progress.durable(done.write_bytes);
            if let Some(meta) = done.install {
                self.learn_snapshot_addresses(&meta);
                // Proposals at or below the snapshot were decided elsewhere: whether theirs is
                // the entry the snapshot holds is unknown here.
                let kept = state.waiters.split_off(&(meta.index + 1));
                for (_, waiter) in std::mem::replace(&mut state.waiters, kept) {
                    waiter.done.complete(Err(ProposeError::LeaderLost));
                }
                self.send_apply(state, ApplyWork::Restore(meta.clone()));
                self.core.on_snapshot_installed(meta);
            }
            if let Some((index, term)) = done.last_entry {
                self.core.on_persisted(index, term);
            }
            for message in done.persisted_messages {
                self.send_message(state, message);
            }
        }
        // Built snapshots first: the apply thread publishes the applied index before a
        // snapshot at it, so the index read next covers every snapshot taken here, and the
        // core is never told of a snapshot beyond its applied index.
        let built = std::mem::take(
            &mut *self
                .apply_shared
                .built
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let applied = self.apply_shared.applied_index.load(Ordering::Acquire);
        if applied > state.applied_reported {
            self.core.on_applied(applied);
            state.applied_reported = applied;
        }
        for meta in built {
            let index = meta.index;
            self.core.on_snapshot_built(meta);
            // The snapshot is durable: the log below it is no longer needed at restart.
            state.seq += 1;
            state.pending.push_back(PendingPersist {
                seq: state.seq,
                sent_at: Instant::now(),
                write_bytes: 0,
                persisted_messages: Vec::new(),
                last_entry: None,
                install: None,
            });
            let work = PersistWork {
                seq: state.seq,
                compact_to: Some(index + 1),
                ..PersistWork::default()
            };
            if self.writer_tx.try_send(work).is_err() {
                state.seq -= 1;
                state.pending.pop_back();
                log::warn!("log writer queue full: log compaction to {index} skipped until the next snapshot");
            }
        }
    }

    pub(super) fn send_apply(&mut self, state: &mut State, work: ApplyWork) {
        match self.apply_tx.try_send(work) {
            Ok(()) => state.apply_sent += 1,
            // has_room() keeps slack for this; a full queue here is a bug in that accounting.
            Err(e) => panic!("apply queue full despite the room check: {e}"),
        }
    }

    pub(super) fn handle_ready(&mut self, state: &mut State, ready: Ready) {
        let Ready {
            hard_state,
            truncate_from,
            entries,
            messages,
            persisted_messages,
            committed_entries,
            read_states,
            snapshot_request,
            snapshot_chunks,
            snapshot_to_install,
        } = ready;
        // Addresses of new members, from the entries this node appends (see `membership`).
        if !entries.is_empty() {
            self.learn_addresses(addresses_in(&entries));
        }
        // The leader sends appends before its own write is durable (thesis §10.2.1).
        for message in coalesce_appends(messages, self.settings.append_merge_bytes_max) {
            self.send_message(state, message);
        }
        let needs_persist = hard_state.is_some()
            || truncate_from.is_some()
            || !entries.is_empty()
            || !snapshot_chunks.is_empty()
            || snapshot_to_install.is_some();
        if needs_persist || !persisted_messages.is_empty() {
            state.seq += 1;
            let last_entry = entries.last().map(|e| (e.index, e.term));
            let write_bytes = disk_stall::write_bytes(&entries, &snapshot_chunks);
            state.writer_progress.sent(write_bytes);
            state.pending.push_back(PendingPersist {
                seq: state.seq,
                sent_at: Instant::now(),
                write_bytes,
                persisted_messages,
                last_entry,
                install: snapshot_to_install.clone(),
            });
            let work = PersistWork {
                seq: state.seq,
                truncate_from,
                entries,
                hard_state,
                snapshot_chunks,
                snapshot_to_install,
                compact_to: None,
            };
            if self.writer_tx.try_send(work).is_err() {
                // has_room() checked; only a writer that exited (fatal error) gets here.
                let error = self
                    .writer_shared
                    .error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_else(|| "the log writer thread exited".to_string());
                self.stop_participating(state, error);
            }
        }
        if let Some(request) = snapshot_request {
            let addresses = self.addresses.addrs().clone();
            self.send_apply(state, ApplyWork::BuildSnapshot { request, addresses });
        }
        if let Some(last) = committed_entries.last() {
            // The proposals these entries answer go with them: the apply thread answers each
            // with its result as soon as it is applied, with no hop back through this thread.
            let later = state.waiters.split_off(&(last.index + 1));
            let waiters = std::mem::replace(&mut state.waiters, later);
            self.send_apply(
                state,
                ApplyWork::Entries {
                    entries: committed_entries,
                    waiters,
                },
            );
        }
        for read_state in read_states {
            let Some(read) = state.reads.remove(&read_state.ctx) else {
                continue;
            };
            // Reads may use the queue only down to half the slack, which stays reserved for
            // restores and the next Ready's entries.
            if self.apply_inflight(state) + APPLY_SLACK_ITEMS / 2 >= APPLY_QUEUE_ITEMS as u64 {
                read.done.complete(Err(ReadError::Backpressure));
                continue;
            }
            let work = ApplyWork::Read {
                index: read_state.index,
                query: read.query,
                done: read.done,
                deadline: read.deadline,
            };
            self.send_apply(state, work);
        }
    }

    pub(super) fn send_message(&mut self, state: &mut State, mut message: Message) {
        if !state.participating || state.disk_stalled || state.isolated {
            return;
        }
        if let MessageBody::InstallSnapshot {
            meta,
            offset,
            len,
            data,
            ..
        } = &mut message.body
        {
            if data.is_empty() && *len > 0 {
                match self.read_snapshot_chunk(state, meta, *offset, *len) {
                    Some(bytes) => *data = bytes,
                    // The snapshot is gone; the leader retries with a newer one.
                    None => return,
                }
            }
        }
        self.transport
            .send(self.poll.registry(), NODE_GROUP, &message);
    }

    pub(super) fn read_snapshot_chunk(
        &mut self,
        state: &mut State,
        meta: &crate::raft::SnapshotMeta,
        offset: u64,
        len: u64,
    ) -> Option<Vec<u8>> {
        let cached = state
            .raw_snapshot
            .as_ref()
            .is_some_and(|raw| (raw.meta().index, raw.meta().term) == (meta.index, meta.term));
        if !cached {
            let file_meta = self
                .snapshots
                .list()
                .into_iter()
                .find(|m| (m.index, m.term) == (meta.index, meta.term))?;
            match self.snapshots.open_raw(&file_meta) {
                Ok(raw) => state.raw_snapshot = Some(raw),
                Err(e) => {
                    log::warn!("cannot open snapshot {} for sending: {e}", meta.index);
                    return None;
                }
            }
        }
        let raw = state.raw_snapshot.as_ref()?;
        let len = usize::try_from(len).ok()?;
        let mut buf = vec![0; len];
        match raw.read_at(offset, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Some(buf)
            }
            Err(e) => {
                log::warn!("cannot read snapshot {} for sending: {e}", meta.index);
                state.raw_snapshot = None;
                None
            }
        }
    }
}
