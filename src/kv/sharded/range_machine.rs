//! [`RangeMachine`]: a range group's state: the slot range it serves at its epoch, and its
//! keys (a [`KvStateMachine`]).
//!
//! # Guarded batches
//!
//! The server sends a range group write and query batches (`kv::command`) wrapped in a guard
//! that names the range and range epoch of the route it followed ([`guard`]):
//!
//! | offset | size | field                                           |
//! |--------|------|-------------------------------------------------|
//! | 0      | 1    | [`GUARD`] (`0xE7`, never a batch version byte)   |
//! | 1      | 8    | the range epoch of the route (u64, >= 1)        |
//! | 9      | 2    | the route's first slot (u16)                    |
//! | 11     | 2    | the route's last slot (u16)                     |
//! | 13     |      | the write batch or query batch                  |
//!
//! A guarded batch whose range and epoch are not the group's own, as applied at that entry
//! (writes) or in the applied state (queries), is refused whole: every item answers `-TRYAGAIN` (not
//! applied) and nothing of it runs or enters a session, alike on every replica. A server
//! whose routing table lags a change of the range therefore never has a request served by a
//! group that does not hold its keys, whatever the table said: TiKV's region epoch check
//! (the range is checked too, so a table that named the wrong group for a range would be
//! refused by that group, not served). A batch without a guard
//! (its first byte is a batch version) is not checked: a keyless command (`FLUSHALL`, an
//! active-expiry reclaim), or an entry from before guards.
//!
//! The guard does not name each command's keys: the server builds it from the route of the
//! batch's keys' slot (one check per batch; a request routed with another check starts a new
//! batch), and the state machine cannot yet find a command's keys to check them one by one.
//!
//! The leader's stamp (`kv::service`'s `leader_stamp`) rewrites the leader ms of the batch
//! inside a guard ([`stamp_guarded`]).
//!
//! # Snapshot
//!
//! | size | field                                                  |
//! |------|--------------------------------------------------------|
//! | 8    | magic `KETCHRG1`                                       |
//! | 1    | 1 if a range follows, 0 if none                        |
//! | 12   | if a range: first slot u16, last slot u16, epoch u64   |
//! |      | the key-value snapshot (`kv::state::snapshot`)         |
//!
//! A snapshot that starts otherwise is a key-value snapshot whole (written by a build before
//! ranges had epochs); the range is then the one the group was created with.

use std::io::{self, Cursor, Read, Write};

use crate::kv::command::push_result;
use crate::kv::server::RangeCheck;
use crate::kv::state::KvStateMachine;
use crate::node::StateMachine;

/// The first byte of a guarded batch.
pub const GUARD: u8 = 0xE7;
const SNAPSHOT_MAGIC: &[u8; 8] = b"KETCHRG1";

/// The slots a range group serves, and the epoch of those bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedRange {
    /// First slot (inclusive).
    pub first: u16,
    /// Last slot (inclusive).
    pub last: u16,
    /// Advances whenever the bounds change.
    pub epoch: u64,
}

/// Bytes before the batch in a guarded one.
const GUARD_BYTES: usize = 13;

/// `batch` wrapped in a guard for a route with `check`.
pub fn guard(check: RangeCheck, batch: Vec<u8>) -> Vec<u8> {
    assert!(check.epoch >= 1, "a guard names a range epoch");
    let mut out = Vec::with_capacity(GUARD_BYTES + batch.len());
    out.push(GUARD);
    out.extend_from_slice(&check.epoch.to_le_bytes());
    out.extend_from_slice(&check.first.to_le_bytes());
    out.extend_from_slice(&check.last.to_le_bytes());
    out.extend_from_slice(&batch);
    out
}

/// The guard's check and the batch inside, or `None` and the bytes for an unguarded batch.
fn unguard(bytes: &[u8]) -> (Option<RangeCheck>, &[u8]) {
    match bytes {
        [GUARD, rest @ ..] if rest.len() >= GUARD_BYTES - 1 => {
            let check = RangeCheck {
                epoch: u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")),
                first: u16::from_le_bytes([rest[8], rest[9]]),
                last: u16::from_le_bytes([rest[10], rest[11]]),
            };
            (Some(check), &rest[GUARD_BYTES - 1..])
        }
        _ => (None, bytes),
    }
}

/// The batch a stamp applies to: the one inside a guard, or `bytes` itself.
pub fn stamp_guarded(bytes: &mut [u8], stamp: impl FnOnce(&mut [u8])) {
    if bytes.first() == Some(&GUARD) && bytes.len() > GUARD_BYTES {
        stamp(&mut bytes[GUARD_BYTES..]);
    } else {
        stamp(bytes);
    }
}

/// Whether a group whose own range is `own` (as applied) serves a batch routed with `check`:
/// only if the route was for exactly that range at exactly that epoch (module docs). The
/// simulator's routing scenarios decide with this same function.
pub fn admits(own: Option<OwnedRange>, check: RangeCheck) -> bool {
    own.is_some_and(|own| {
        (own.first, own.last, own.epoch) == (check.first, check.last, check.epoch)
    })
}

/// A range group's state machine (module docs).
#[derive(Debug)]
pub struct RangeMachine {
    range: Option<OwnedRange>,
    kv: KvStateMachine,
}

impl RangeMachine {
    /// A group serving `range` (none: a group this host has no route for, which refuses
    /// every guarded batch until a snapshot gives it one), its keys in `kv`.
    pub fn new(range: Option<OwnedRange>, kv: KvStateMachine) -> RangeMachine {
        RangeMachine { range, kv }
    }

    /// The range as applied.
    pub fn range(&self) -> Option<OwnedRange> {
        self.range
    }

    /// The keys.
    pub fn kv(&self) -> &KvStateMachine {
        &self.kv
    }

    /// `None` if a batch guarded by `check` may run; else the refusal of each of its items.
    fn refusal(&self, check: Option<RangeCheck>, batch: &[u8]) -> Option<Vec<u8>> {
        let check = check?;
        let text = match self.range {
            _ if admits(self.range, check) => return None,
            Some(range) => format!(
                "-TRYAGAIN not applied: this group serves slots {}-{} at range epoch {}, the \
                 route was for slots {}-{} at epoch {}; the routing table is changing, retry\r\n",
                range.first, range.last, range.epoch, check.first, check.last, check.epoch
            ),
            None => format!(
                "-TRYAGAIN not applied: this group serves no slot range yet (the route was \
                 for slots {}-{} at epoch {}); retry\r\n",
                check.first, check.last, check.epoch
            ),
        };
        // Both batch kinds have their item count at offset 9 (`kv::command`).
        let count = batch
            .get(9..13)
            .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
        let mut results = Vec::with_capacity(count as usize * (text.len() + 4));
        for _ in 0..count {
            push_result(&mut results, text.as_bytes());
        }
        Some(results)
    }
}

impl StateMachine for RangeMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let (check, batch) = unguard(command);
        match self.refusal(check, batch) {
            Some(refused) => refused,
            None => self.kv.apply(index, batch),
        }
    }

    fn query(&mut self, query: &[u8]) -> Vec<u8> {
        let (check, batch) = unguard(query);
        match self.refusal(check, batch) {
            Some(refused) => refused,
            None => self.kv.query(batch),
        }
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(SNAPSHOT_MAGIC)?;
        match self.range {
            Some(range) => {
                out.write_all(&[1])?;
                out.write_all(&range.first.to_le_bytes())?;
                out.write_all(&range.last.to_le_bytes())?;
                out.write_all(&range.epoch.to_le_bytes())?;
            }
            None => out.write_all(&[0])?,
        }
        self.kv.snapshot(out)
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let mut head = [0u8; 8];
        let mut got = 0;
        while got < head.len() {
            match input.read(&mut head[got..])? {
                0 => break,
                n => got += n,
            }
        }
        if got < head.len() || &head != SNAPSHOT_MAGIC {
            // A key-value snapshot whole (module docs).
            let mut whole = Cursor::new(head[..got].to_vec()).chain(input);
            return self.kv.restore(&mut whole);
        }
        let mut flag = [0u8; 1];
        input.read_exact(&mut flag)?;
        let range = match flag[0] {
            0 => None,
            1 => {
                let mut fields = [0u8; 12];
                input.read_exact(&mut fields)?;
                let range = OwnedRange {
                    first: u16::from_le_bytes([fields[0], fields[1]]),
                    last: u16::from_le_bytes([fields[2], fields[3]]),
                    epoch: u64::from_le_bytes(fields[4..].try_into().expect("8 bytes")),
                };
                if range.first > range.last || range.epoch == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("range snapshot: bad range {range:?}"),
                    ));
                }
                Some(range)
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("range snapshot: range flag {other} (0 or 1 expected)"),
                ))
            }
        };
        self.kv.restore(input)?;
        self.range = range;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::command::WriteBatchEncoder;
    use crate::kv::command::{
        split_results, Operation, Query, QueryBatchEncoder, Write as KvWrite,
    };
    use crate::kv::session_id::SessionId;
    use crate::kv::session_table::SessionConfig;

    const RANGE: OwnedRange = OwnedRange {
        first: 0,
        last: 1023,
        epoch: 3,
    };

    fn at(epoch: u64) -> RangeCheck {
        RangeCheck {
            first: 0,
            last: 1023,
            epoch,
        }
    }

    fn machine() -> RangeMachine {
        RangeMachine::new(Some(RANGE), KvStateMachine::new(SessionConfig::default()))
    }

    fn set(key: &[u8], seq: u64) -> Vec<u8> {
        let mut batch = WriteBatchEncoder::new(1);
        batch.push(&KvWrite {
            session: SessionId(7),
            seq,
            acked_below: 0,
            operation: Operation::Command(vec![b"SET", key, b"v"]),
        });
        batch.finish()
    }

    fn get(key: &[u8]) -> Vec<u8> {
        let mut batch = QueryBatchEncoder::new(1);
        batch.push(&Query::Command(vec![b"GET", key]));
        batch.finish()
    }

    fn replies(results: &[u8]) -> Vec<Vec<u8>> {
        split_results(results, 1)
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[test]
    fn a_batch_on_another_epoch_is_refused_whole_and_not_recorded() {
        let mut m = machine();
        let refused = replies(&m.apply(1, &guard(at(2), set(b"k", 1))));
        assert_eq!(refused.len(), 1);
        let text = String::from_utf8(refused[0].clone()).unwrap();
        assert!(
            text.starts_with(
                "-TRYAGAIN not applied: this group serves slots 0-1023 at range epoch 3, the \
                 route was for slots 0-1023 at epoch 2"
            ),
            "{text}"
        );
        assert!(m.kv().is_empty(), "nothing ran");
        assert_eq!(
            replies(&m.query(&guard(at(2), get(b"k"))))[0][..9],
            *b"-TRYAGAIN"
        );
        // The same seq on the right epoch runs: the refusal entered no session.
        assert_eq!(
            replies(&m.apply(2, &guard(at(3), set(b"k", 1)))),
            [b"+OK\r\n".to_vec()]
        );
        assert_eq!(
            replies(&m.query(&guard(at(3), get(b"k")))),
            [b"$1\r\nv\r\n".to_vec()]
        );
        // The right epoch for another range (a table naming the wrong group): refused.
        let wrong = RangeCheck {
            first: 1024,
            last: 2047,
            epoch: 3,
        };
        assert!(replies(&m.query(&guard(wrong, get(b"k"))))[0].starts_with(b"-TRYAGAIN"));
        // Unguarded batches are not checked.
        assert_eq!(replies(&m.query(&get(b"k"))), [b"$1\r\nv\r\n".to_vec()]);
        let mut unrouted = RangeMachine::new(None, KvStateMachine::new(SessionConfig::default()));
        assert!(
            replies(&unrouted.apply(1, &guard(at(1), set(b"k", 1))))[0].starts_with(b"-TRYAGAIN")
        );
    }

    #[test]
    fn the_stamp_goes_inside_the_guard() {
        let mut bytes = guard(at(3), set(b"k", 1));
        stamp_guarded(&mut bytes, |batch| {
            assert!(crate::kv::command::write_batch::stamp_leader_ms(batch, 99));
        });
        let (_, batch) = unguard(&bytes);
        assert_eq!(batch[1..9], 99u64.to_le_bytes());
    }

    #[test]
    fn snapshots_keep_the_range_and_old_ones_still_restore() {
        let mut m = machine();
        m.apply(1, &guard(at(3), set(b"k", 1)));
        let mut bytes = Vec::new();
        m.snapshot(&mut bytes).unwrap();
        let mut other = RangeMachine::new(None, KvStateMachine::new(SessionConfig::default()));
        other.restore(&mut &bytes[..]).unwrap();
        assert_eq!(other.range(), Some(RANGE));
        assert_eq!(other.kv().len(), 1);
        // A key-value snapshot alone: the keys, and the range the group was made with.
        let mut kv_only = Vec::new();
        m.kv.snapshot(&mut kv_only).unwrap();
        let mut old = RangeMachine::new(Some(RANGE), KvStateMachine::new(SessionConfig::default()));
        old.restore(&mut &kv_only[..]).unwrap();
        assert_eq!((old.range(), old.kv().len()), (Some(RANGE), 1));
        let mut bad = bytes.clone();
        bad[8] = 5;
        assert!(other
            .restore(&mut &bad[..])
            .unwrap_err()
            .to_string()
            .contains("range flag 5"));
    }
}
