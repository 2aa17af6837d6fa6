//! Work for the log writer and the apply workers, gathered over one pass of the loop and sent
//! as one channel message per thread at the end of the pass.
//!
//! Sent one item at a time, as each group's `Ready` was handled, the work of a pass over 64
//! busy groups woke the writer and the apply workers up to once per item (a futex wake each,
//! and for an apply worker, its report and a wake of the loop back), which was an eighth of
//! the loop's time. One message per thread per pass costs one wake-up, whatever the number
//! of groups.
//!
//! Bounds are unchanged: they count items, not messages. The loop checks room in items before
//! it takes a `Ready` (sequence numbers against "durable through" for the writer, items sent
//! against items processed for each worker), so a channel sized in items never holds more
//! messages than it has room for. Order is kept: every item for the writer goes through
//! [`Outbox::persist`] in sequence order, and every item for a worker through
//! [`Outbox::apply`], so a group's `Add` still reaches its worker before its entries.

use std::sync::mpsc::{SyncSender, TrySendError};

use super::apply::ApplyWork;
use super::log_writer::PersistWork;

/// A thread that can no longer take work (it stopped on an error, which it published).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gone {
    /// The log writer.
    Writer,
    /// This apply worker.
    ApplyWorker(usize),
}

/// Why a flush stopped, and the apply work it could not send: its completions are still
/// owed an answer.
pub(super) struct Unsent {
    /// The thread that is gone.
    pub(super) gone: Gone,
    /// Apply work not sent (to any worker).
    pub(super) apply: Vec<ApplyWork>,
}

/// The pass's work, not yet sent.
#[derive(Default)]
pub(super) struct Outbox {
    persist: Vec<PersistWork>,
    apply: Vec<Vec<ApplyWork>>,
}

impl Outbox {
    /// An empty outbox for `workers` apply workers.
    pub(super) fn new(workers: usize) -> Self {
        Outbox {
            persist: Vec::new(),
            apply: (0..workers).map(|_| Vec::new()).collect(),
        }
    }

    /// Queues `work` for the writer, after everything queued before it.
    pub(super) fn persist(&mut self, work: PersistWork) {
        debug_assert!(
            self.persist.last().is_none_or(|last| last.seq < work.seq),
            "persistence work must be queued in sequence order"
        );
        self.persist.push(work);
    }

    /// Queues `work` for apply worker `worker`, after everything queued for it before.
    pub(super) fn apply(&mut self, worker: usize, work: ApplyWork) {
        self.apply[worker].push(work);
    }

    /// Sends what was queued: one message to the writer and one to each worker with work.
    /// A full channel (possible only for a worker, after a burst of group adds, which skip
    /// the room check) is waited for: the worker drains it without the loop's help.
    pub(super) fn flush(
        &mut self,
        writer: &SyncSender<Vec<PersistWork>>,
        workers: &[SyncSender<Vec<ApplyWork>>],
    ) -> Result<(), Unsent> {
        let mut gone = None;
        if !self.persist.is_empty() {
            let work = std::mem::take(&mut self.persist);
            if send(writer, work).is_err() {
                gone = Some(Gone::Writer);
            }
        }
        let mut unsent = Vec::new();
        for (worker, (queued, tx)) in self.apply.iter_mut().zip(workers).enumerate() {
            if queued.is_empty() {
                continue;
            }
            if let Err(mut work) = send(tx, std::mem::take(queued)) {
                gone.get_or_insert(Gone::ApplyWorker(worker));
                unsent.append(&mut work);
            }
        }
        match gone {
            None => Ok(()),
            Some(gone) => Err(Unsent {
                gone,
                apply: unsent,
            }),
        }
    }
}

impl std::fmt::Debug for Unsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} gone, {} apply items unsent",
            self.gone,
            self.apply.len()
        )
    }
}

/// Sends `work`, waiting if the channel is full; gives it back if the receiver is gone.
fn send<T>(tx: &SyncSender<Vec<T>>, work: Vec<T>) -> Result<(), Vec<T>> {
    match tx.try_send(work) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(work)) => tx.send(work).map_err(|e| e.0),
        Err(TrySendError::Disconnected(work)) => Err(work),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use super::*;

    fn persist(seq: u64) -> PersistWork {
        PersistWork {
            seq,
            group: seq % 3,
            ..PersistWork::default()
        }
    }

    #[test]
    fn a_pass_sends_one_message_per_thread_in_order() {
        let (writer_tx, writer_rx) = sync_channel(4);
        let (apply_tx, apply_rx) = sync_channel(4);
        let mut outbox = Outbox::new(1);
        for seq in 1..=5 {
            outbox.persist(persist(seq));
        }
        outbox.apply(0, ApplyWork::Remove { group: 7 });
        outbox.apply(0, ApplyWork::Remove { group: 8 });
        outbox
            .flush(&writer_tx, std::slice::from_ref(&apply_tx))
            .unwrap();
        let seqs: Vec<u64> = writer_rx
            .try_recv()
            .unwrap()
            .iter()
            .map(|w| w.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert!(writer_rx.try_recv().is_err(), "one message");
        let groups: Vec<u64> = apply_rx
            .try_recv()
            .unwrap()
            .iter()
            .map(|w| match w {
                ApplyWork::Remove { group } => *group,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(groups, [7, 8]);
        // Nothing queued: nothing sent.
        outbox.flush(&writer_tx, &[apply_tx]).unwrap();
        assert!(writer_rx.try_recv().is_err());
        assert!(apply_rx.try_recv().is_err());
    }

    #[test]
    fn a_gone_thread_is_named() {
        let (writer_tx, writer_rx) = sync_channel(4);
        let (apply_tx, apply_rx) = sync_channel::<Vec<ApplyWork>>(4);
        drop(apply_rx);
        let mut outbox = Outbox::new(1);
        outbox.apply(0, ApplyWork::Remove { group: 1 });
        outbox.persist(persist(1));
        let unsent = outbox
            .flush(&writer_tx, &[apply_tx])
            .expect_err("a worker is gone");
        assert_eq!(unsent.gone, Gone::ApplyWorker(0));
        assert!(matches!(unsent.apply[..], [ApplyWork::Remove { group: 1 }]));
        assert_eq!(
            writer_rx.try_recv().unwrap().len(),
            1,
            "the writer still got its work"
        );
        drop(writer_rx);
        outbox.persist(persist(2));
        let unsent = outbox
            .flush(&writer_tx, &[])
            .expect_err("the writer is gone");
        assert_eq!(unsent.gone, Gone::Writer);
        assert!(unsent.apply.is_empty());
    }
}
