//! The client's handle on its session: a random id and sequence numbers that make retried
//! writes idempotent (Raft thesis §6.3); the session itself is held by the state machine
//! (`kv::session_table`).
//!
//! Every write gets the next sequence number once, at its first attempt, and keeps it across
//! retries on any node; the state machine applies a (session, sequence) pair at most once and
//! answers a duplicate with the saved result. Each write also carries the lowest sequence
//! number still in flight, so the server may forget results below it (bounded memory).

use crate::kv::resp::encode_request;
use crate::kv::SessionId;

/// The creator field of client-made session ids (nodes use their ids, which start at 1).
const CLIENT_CREATOR: u16 = 0;

/// The client's side of a session: its id and the next sequence number.
#[derive(Debug, Clone)]
pub(crate) struct SessionHandle {
    id: SessionId,
    next_seq: u64,
}

impl SessionHandle {
    /// A handle on a new session with a fresh random id.
    pub(crate) fn new() -> SessionHandle {
        SessionHandle {
            id: SessionId::generate(CLIENT_CREATOR),
            next_seq: 1,
        }
    }

    /// The session id.
    pub(crate) fn id(&self) -> SessionId {
        self.id
    }

    /// Takes the next sequence number for a new write.
    pub(crate) fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The sequence number the next write will get: every lower one has been answered or
    /// given up by the caller.
    pub(crate) fn peek_seq(&self) -> u64 {
        self.next_seq
    }

    /// Moves to a new session (after the server expired it: nothing of the old one is pending
    /// any more).
    pub(crate) fn renew(&mut self) {
        *self = SessionHandle::new();
    }

    /// Appends the request for write `args` with sequence `seq`, `in_flight_from` being the
    /// lowest sequence number still in flight: `KETCH.WRITE <session> <seq> <acked-below>
    /// <command> [args...]` (the server's module docs, `kv::server`, define it).
    pub(crate) fn encode_write(
        &self,
        out: &mut Vec<u8>,
        seq: u64,
        in_flight_from: u64,
        args: &[Vec<u8>],
    ) {
        debug_assert!(
            in_flight_from <= seq,
            "a write below the in-flight watermark"
        );
        let id = self.id.to_string();
        let seq = seq.to_string();
        let acked = in_flight_from.to_string();
        let mut words: Vec<&[u8]> = Vec::with_capacity(args.len() + 4);
        words.extend_from_slice(&[
            b"KETCH.WRITE".as_slice(),
            id.as_bytes(),
            seq.as_bytes(),
            acked.as_bytes(),
        ]);
        words.extend(args.iter().map(|a| a.as_slice()));
        encode_request(out, &words);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_get_distinct_ids_and_increasing_sequence_numbers() {
        let mut a = SessionHandle::new();
        let b = SessionHandle::new();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.next_seq(), 1);
        assert_eq!(a.next_seq(), 2);
        assert_eq!(a.peek_seq(), 3);
        let old = a.id();
        a.renew();
        assert_ne!(a.id(), old);
        assert_eq!(a.peek_seq(), 1);
    }
}
