//! The store's on-disk layouts: file names, the segment header, the checkpoint and footer
//! payloads, and the parser that turns a segment's frames into the changes that the write path
//! and recovery apply. The byte-by-byte description is in the
//! [module documentation](crate::store).

use std::path::Path;

use byteorder::{ByteOrder, LittleEndian};

use crate::entry::HardState;
use crate::error::{Error, Result};
use crate::record::{self, RecordKind, FRAME_HEADER_BYTES};
use crate::recovery::RecordParser;
use crate::segment::{CHECKSUM_CRC32, HEADER_BYTES};

/// Suffix of a store segment file.
pub const STORE_SEGMENT_SUFFIX: &str = ".kst";
/// Suffix of a store segment file being prepared; deleted at open.
pub const STORE_PREPARING_SUFFIX: &str = ".kst.tmp";
/// Suffix of a freed store segment kept for reuse.
pub const STORE_SPARE_SUFFIX: &str = ".kst.spare";
/// Suffix of a store segment moved aside by salvage recovery.
pub const STORE_SALVAGED_SUFFIX: &str = ".kst.salvaged";
/// Store segment format version written by this code.
pub const STORE_FORMAT_VERSION: u32 = 1;

const STORE_MAGIC: &[u8; 8] = b"KETCHSTO";
/// Bytes of one group's state in a checkpoint or footer.
pub(crate) const GROUP_STATE_BYTES: usize = 48;
/// Fixed bytes of one run in a footer (group, first index, bytes, count).
pub(crate) const RUN_FIXED_BYTES: usize = 28;

/// The file name of store segment `seq`.
pub fn store_segment_file_name(seq: u64) -> String {
    format!("{seq:020}{STORE_SEGMENT_SUFFIX}")
}

/// Parses a store segment file name into its sequence number.
pub fn parse_store_segment_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(STORE_SEGMENT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The fixed header of a store segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreHeader {
    /// Identifies the store; equal in all its segments.
    pub store_id: u64,
    /// This segment's sequence number.
    pub seq: u64,
}

impl StoreHeader {
    /// Encodes the header into its 128 bytes.
    pub fn encode(&self) -> [u8; HEADER_BYTES as usize] {
        let mut bytes = [0u8; HEADER_BYTES as usize];
        bytes[0..8].copy_from_slice(STORE_MAGIC);
        LittleEndian::write_u32(&mut bytes[8..12], STORE_FORMAT_VERSION);
        LittleEndian::write_u32(&mut bytes[12..16], CHECKSUM_CRC32);
        LittleEndian::write_u64(&mut bytes[16..24], self.store_id);
        LittleEndian::write_u64(&mut bytes[24..32], self.seq);
        let crc = crc32fast::hash(&bytes[0..124]);
        LittleEndian::write_u32(&mut bytes[124..128], crc);
        bytes
    }

    /// Decodes and verifies a header. `path` is used in errors.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::corruption(path, 0, None, reason);
        if bytes.len() < HEADER_BYTES as usize {
            return Err(bad(format!(
                "store segment header truncated: file holds {} bytes, the header needs \
                 {HEADER_BYTES}",
                bytes.len()
            )));
        }
        if &bytes[0..8] != STORE_MAGIC {
            return Err(bad("not a Ketch store segment: bad magic".into()));
        }
        if crc32fast::hash(&bytes[0..124]) != LittleEndian::read_u32(&bytes[124..128]) {
            return Err(bad("store segment header checksum mismatch".into()));
        }
        let version = LittleEndian::read_u32(&bytes[8..12]);
        if version != STORE_FORMAT_VERSION {
            return Err(bad(format!(
                "store segment format version {version} is not supported (this build reads \
                 {STORE_FORMAT_VERSION})"
            )));
        }
        let algorithm = LittleEndian::read_u32(&bytes[12..16]);
        if algorithm != CHECKSUM_CRC32 {
            return Err(bad(format!("unknown checksum algorithm {algorithm}")));
        }
        if bytes[32..124].iter().any(|byte| *byte != 0) {
            return Err(bad("reserved header bytes are not zero".into()));
        }
        Ok(StoreHeader {
            store_id: LittleEndian::read_u64(&bytes[16..24]),
            seq: LittleEndian::read_u64(&bytes[24..32]),
        })
    }
}

/// One group's range and hard state, as a checkpoint or footer records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupState {
    /// The group.
    pub group: u64,
    /// Its first index.
    pub first: u64,
    /// Its last index (`first - 1` if it holds no entry).
    pub last: u64,
    /// Its hard state.
    pub hard_state: HardState,
}

impl GroupState {
    fn encode(&self, out: &mut Vec<u8>) {
        for value in [
            self.group,
            self.first,
            self.last,
            self.hard_state.term,
            self.hard_state.vote,
            self.hard_state.commit,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }

    fn decode(bytes: &[u8]) -> GroupState {
        debug_assert_eq!(bytes.len(), GROUP_STATE_BYTES);
        let field = |slot: usize| LittleEndian::read_u64(&bytes[slot * 8..slot * 8 + 8]);
        GroupState {
            group: field(0),
            first: field(1),
            last: field(2),
            hard_state: HardState {
                term: field(3),
                vote: field(4),
                commit: field(5),
            },
        }
    }
}

/// Encodes a checkpoint payload.
pub(crate) fn encode_checkpoint(states: &[GroupState]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + states.len() * GROUP_STATE_BYTES);
    payload.extend_from_slice(&(states.len() as u64).to_le_bytes());
    for state in states {
        state.encode(&mut payload);
    }
    payload
}

/// Decodes a checkpoint payload.
pub(crate) fn decode_checkpoint(payload: &[u8]) -> Option<Vec<GroupState>> {
    let count = record::payload_u64(payload, 0)?;
    let body = &payload[8..];
    if body.len() as u64 != count.checked_mul(GROUP_STATE_BYTES as u64)? {
        return None;
    }
    Some(
        body.chunks_exact(GROUP_STATE_BYTES)
            .map(GroupState::decode)
            .collect(),
    )
}

/// A run of a group's live entries stored in one sealed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterRun {
    /// The group.
    pub group: u64,
    /// Index of the run's first entry.
    pub first_index: u64,
    /// Bytes of the run's entry frames (so that open learns the live bytes without touching
    /// the frames).
    pub bytes: u64,
    /// Frame offset of each entry, in index order.
    pub offsets: Vec<u32>,
}

/// A sealed store segment's footer: the state of every live group at sealing and where this
/// segment holds their live entries. Open applies it instead of reading the segment's records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreFooter {
    /// Every live group's state at sealing, sorted by group.
    pub states: Vec<GroupState>,
    /// The live entries stored in this segment.
    pub runs: Vec<FooterRun>,
}

impl StoreFooter {
    /// Encodes the seal frame's payload.
    pub(crate) fn encode_payload(&self) -> Vec<u8> {
        let entries: usize = self.runs.iter().map(|run| run.offsets.len()).sum();
        let mut payload = encode_checkpoint(&self.states);
        payload.reserve(8 + self.runs.len() * RUN_FIXED_BYTES + entries * 4);
        payload.extend_from_slice(&(self.runs.len() as u64).to_le_bytes());
        for run in &self.runs {
            payload.extend_from_slice(&run.group.to_le_bytes());
            payload.extend_from_slice(&run.first_index.to_le_bytes());
            payload.extend_from_slice(&run.bytes.to_le_bytes());
            payload.extend_from_slice(&(run.offsets.len() as u32).to_le_bytes());
            for offset in &run.offsets {
                payload.extend_from_slice(&offset.to_le_bytes());
            }
        }
        payload
    }

    /// Decodes a seal frame's payload.
    pub(crate) fn decode(payload: &[u8]) -> Option<StoreFooter> {
        let count = record::payload_u64(payload, 0)?;
        let states_end = 8usize
            .checked_add(usize::try_from(count.checked_mul(GROUP_STATE_BYTES as u64)?).ok()?)?;
        let states = decode_checkpoint(payload.get(..states_end)?)?;
        let mut rest = payload.get(states_end..)?;
        let run_count = LittleEndian::read_u64(rest.get(..8)?);
        rest = &rest[8..];
        let mut runs = Vec::new();
        for _ in 0..run_count {
            let fixed = rest.get(..RUN_FIXED_BYTES)?;
            let group = LittleEndian::read_u64(&fixed[0..8]);
            let first_index = LittleEndian::read_u64(&fixed[8..16]);
            let bytes = LittleEndian::read_u64(&fixed[16..24]);
            let len = LittleEndian::read_u32(&fixed[24..28]) as usize;
            let offsets_bytes = rest.get(RUN_FIXED_BYTES..RUN_FIXED_BYTES + len.checked_mul(4)?)?;
            let mut offsets = vec![0u32; len];
            LittleEndian::read_u32_into(offsets_bytes, &mut offsets);
            runs.push(FooterRun {
                group,
                first_index,
                bytes,
                offsets,
            });
            rest = &rest[RUN_FIXED_BYTES + len * 4..];
        }
        rest.is_empty().then_some(StoreFooter { states, runs })
    }
}

/// One change recorded in a store batch, as recovery and the write path apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreOp {
    /// An entry of `group` at `offset`, its frame `bytes` long; `moved` for a rewritten entry
    /// (changes only its place).
    Entry {
        group: u64,
        index: u64,
        offset: u32,
        bytes: u32,
        moved: bool,
    },
    HardState {
        group: u64,
        hard_state: HardState,
    },
    Truncate {
        group: u64,
        from: u64,
    },
    Compact {
        group: u64,
        first: u64,
    },
    Remove {
        group: u64,
    },
    Checkpoint(Vec<GroupState>),
}

/// A store segment's records.
pub(crate) struct StoreRecords<'a> {
    /// The file, for errors.
    pub path: &'a Path,
}

impl RecordParser for StoreRecords<'_> {
    type Op = StoreOp;
    type Footer = StoreFooter;

    fn parse(
        &mut self,
        kind: RecordKind,
        payload: &[u8],
        offset: u64,
    ) -> Result<Result<StoreOp, &'static str>> {
        let field = |slot| record::payload_u64(payload, slot);
        Ok(match kind {
            RecordKind::GroupEntry | RecordKind::RewrittenEntry => {
                match record::parse_group_entry(payload) {
                    Some((group, index, _, _)) => Ok(StoreOp::Entry {
                        group,
                        index,
                        offset: u32::try_from(offset).map_err(|_| {
                            Error::corruption(self.path, offset, None, "record beyond 4 GiB")
                        })?,
                        bytes: (FRAME_HEADER_BYTES + payload.len()) as u32,
                        moved: kind == RecordKind::RewrittenEntry,
                    }),
                    None => Err("group entry record"),
                }
            }
            RecordKind::GroupHardState => match (field(0), field(1), field(2), field(3)) {
                (Some(group), Some(term), Some(vote), Some(commit)) if payload.len() == 32 => {
                    Ok(StoreOp::HardState {
                        group,
                        hard_state: HardState { term, vote, commit },
                    })
                }
                _ => Err("group hard state record"),
            },
            RecordKind::GroupTruncate => match (field(0), field(1)) {
                (Some(group), Some(from)) if payload.len() == 16 => {
                    Ok(StoreOp::Truncate { group, from })
                }
                _ => Err("group truncate record"),
            },
            RecordKind::GroupCompact => match (field(0), field(1)) {
                (Some(group), Some(first)) if payload.len() == 16 => {
                    Ok(StoreOp::Compact { group, first })
                }
                _ => Err("group compact record"),
            },
            RecordKind::RemoveGroup => match field(0) {
                Some(group) if payload.len() == 8 => Ok(StoreOp::Remove { group }),
                _ => Err("remove group record"),
            },
            RecordKind::Checkpoint => match decode_checkpoint(payload) {
                Some(states) => Ok(StoreOp::Checkpoint(states)),
                None => Err("checkpoint record"),
            },
            RecordKind::Commit | RecordKind::Seal => unreachable!("framing is the scanner's"),
            RecordKind::Entry
            | RecordKind::HardState
            | RecordKind::Truncate
            | RecordKind::Compact => {
                return Err(Error::corruption(
                    self.path,
                    offset,
                    None,
                    format!(
                        "a {kind:?} record of a single write-ahead log in a store segment: the \
                         file does not belong to this store"
                    ),
                ))
            }
        })
    }

    fn footer(&mut self, payload: &[u8]) -> Option<StoreFooter> {
        StoreFooter::decode(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_damage() {
        let header = StoreHeader {
            store_id: 0xfeed,
            seq: 42,
        };
        let bytes = header.encode();
        assert_eq!(StoreHeader::decode(Path::new("x"), &bytes).unwrap(), header);
        for byte in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[byte] ^= 0x04;
            assert!(StoreHeader::decode(Path::new("x"), &damaged).is_err());
        }
    }

    #[test]
    fn footer_round_trips_and_refuses_truncation() {
        let footer = StoreFooter {
            states: vec![GroupState {
                group: 3,
                first: 5,
                last: 9,
                hard_state: HardState {
                    term: 2,
                    vote: 1,
                    commit: 8,
                },
            }],
            runs: vec![FooterRun {
                group: 3,
                first_index: 7,
                bytes: 420,
                offsets: vec![128, 300, 400],
            }],
        };
        let payload = footer.encode_payload();
        assert_eq!(StoreFooter::decode(&payload).unwrap(), footer);
        for cut in 0..payload.len() {
            assert!(StoreFooter::decode(&payload[..cut]).is_none());
        }
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(
            parse_store_segment_file_name(&store_segment_file_name(17)),
            Some(17)
        );
        assert_eq!(parse_store_segment_file_name("17.kst"), None);
    }
}
