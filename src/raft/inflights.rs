//! The in-flight window of a replicating follower, bounded by message count and bytes.
//!
//! In the Replicate state the leader pipelines AppendEntries optimistically (Raft thesis
//! §10.2.2). The window bounds how much is outstanding: at most `max_messages` messages and at
//! most `max_bytes` payload bytes. Each message is recorded by the last index it carries; an
//! acknowledgement up to index `i` frees every message whose last index is `<= i`.

use std::collections::VecDeque;

/// Outstanding AppendEntries to one follower, oldest first.
#[derive(Debug, Clone)]
pub struct Inflights {
    /// (last index carried, payload bytes), in increasing last index.
    window: VecDeque<(u64, u64)>,
    bytes: u64,
    max_messages: usize,
    max_bytes: u64,
}

impl Inflights {
    /// An empty window with the given bounds.
    pub fn new(max_messages: usize, max_bytes: u64) -> Self {
        Self {
            window: VecDeque::with_capacity(max_messages.min(1024)),
            bytes: 0,
            max_messages,
            max_bytes,
        }
    }

    /// Whether no more messages may be sent until some are acknowledged. A window holding
    /// any bytes at its byte limit is full; an empty window is never full, so a single
    /// oversized message can always make progress.
    pub fn is_full(&self) -> bool {
        self.window.len() >= self.max_messages
            || (self.bytes >= self.max_bytes && !self.window.is_empty())
    }

    /// Records a sent message ending at `last_index` carrying `bytes`.
    pub fn add(&mut self, last_index: u64, bytes: u64) {
        assert!(!self.is_full(), "inflights: add on a full window");
        if let Some((last, _)) = self.window.back() {
            assert!(
                *last < last_index,
                "inflights: last index {last_index} not above window end {last}"
            );
        }
        self.window.push_back((last_index, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last index is `<= index`.
    pub fn free_up_to(&mut self, index: u64) {
        while let Some((last, bytes)) = self.window.front().copied() {
            if last > index {
                break;
            }
            self.window.pop_front();
            self.bytes -= bytes;
        }
    }

    /// Forgets everything (on a state change of the follower's progress).
    pub fn reset(&mut self) {
        self.window.clear();
        self.bytes = 0;
    }

    /// Messages in flight.
    pub fn len(&self) -> usize {
        self.window.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// Payload bytes in flight.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_count() {
        let mut w = Inflights::new(3, 1 << 20);
        w.add(1, 10);
        w.add(2, 10);
        assert!(!w.is_full());
        w.add(5, 10);
        assert!(w.is_full());
        w.free_up_to(1);
        assert!(!w.is_full());
        assert_eq!(w.len(), 2);
        w.free_up_to(4);
        assert_eq!(w.len(), 1);
        assert_eq!(w.bytes(), 10);
        w.free_up_to(100);
        assert!(w.is_empty());
        assert_eq!(w.bytes(), 0);
    }

    #[test]
    fn bounded_by_bytes_but_one_big_message_always_fits() {
        let mut w = Inflights::new(100, 100);
        w.add(1, 500);
        assert!(w.is_full());
        w.free_up_to(1);
        w.add(2, 60);
        assert!(!w.is_full());
        w.add(3, 60);
        assert!(w.is_full());
        w.reset();
        assert!(w.is_empty());
        assert_eq!(w.bytes(), 0);
    }

    #[test]
    #[should_panic(expected = "not above window end")]
    fn indices_must_increase() {
        let mut w = Inflights::new(10, 1000);
        w.add(5, 1);
        w.add(5, 1);
    }
}
