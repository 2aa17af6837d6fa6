//! Record framing and checksums.
//!
//! # Frame format (version 1)
//!
//! Every record in a segment is one frame. All integers are little-endian.
//!
//! ```text
//! offset  size  field
//! 0       4     crc32      CRC-32 (ISO-HDLC, crc32fast) of: the segment's sequence number as
//!                          8 little-endian bytes, then bytes 4 .. 12 + payload_len of this frame
//! 4       4     payload_len
//! 8       1     kind       1 entry, 2 hard state, 3 truncate, 4 commit, 5 compact, 6 seal,
//!                          7-13 the kinds of a [`crate::LogStore`] (never in a `.wal` file)
//! 9       3     reserved   must be zero
//! 12      n     payload
//! ```
//!
//! Because the CRC covers the segment's sequence number, bytes left over from another segment
//! (a recycled file, a stale copy) never parse as valid records of this one. A zero-filled region
//! never parses either: kind 0 is invalid.
//!
//! Payloads:
//!
//! | kind | payload |
//! |------|---------|
//! | entry (1) | index u64, term u64, data (payload_len - 16 bytes) |
//! | hard state (2) | term u64, vote u64, commit u64 |
//! | truncate (3) | from_index u64: entries at or above it are dropped |
//! | commit (4) | frame_count u32, reserved u32, batch_bytes u64: ends a batch of `frame_count` frames occupying the `batch_bytes` bytes before this frame |
//! | compact (5) | first_index u64: the log now starts at this index |
//! | seal (6) | the segment footer, see [`crate::segment`] (a store's: [`crate::store`]) |
//! | group entry (7) | group u64, index u64, term u64, data (payload_len - 24 bytes) |
//! | group hard state (8) | group u64, term u64, vote u64, commit u64 |
//! | group truncate (9) | group u64, from_index u64: the group's entries at or above it are dropped |
//! | group compact (10) | group u64, first_index u64: the group now starts at this index |
//! | remove group (11) | group u64: the group and everything it held are gone |
//! | checkpoint (12) | group_count u64, then per live group: group, first, last, hard state term, vote, commit (6 x u64) |
//! | rewritten entry (13) | as group entry (7): a live entry copied forward by garbage collection; it moves the entry, never changes the group's range |
//!
//! Kinds 1-3 and 5 appear only in a [`crate::Wal`]'s `.wal` files, kinds 7-13 only in a
//! [`crate::LogStore`]'s `.kst` files; recovery of either refuses the other's kinds as corruption.
//!
//! # Batches
//!
//! Frames are written in batches: zero or more entry / hard state / truncate / compact frames and
//! one commit frame. Recovery applies a batch only when its commit frame is valid and its counts
//! match, so a batch is atomic across a crash. Each entry frame carries its own CRC, so a random read
//! of one entry verifies exactly the bytes it returns.

use byteorder::{ByteOrder, LittleEndian};

/// Size of a frame header in bytes.
pub const FRAME_HEADER_BYTES: usize = 12;
/// Size of an entry payload's fixed part (index and term).
pub const ENTRY_FIXED_BYTES: usize = 16;
/// Size of a group entry payload's fixed part (group, index and term).
pub const GROUP_ENTRY_FIXED_BYTES: usize = 24;
/// Size of a whole commit frame.
pub const COMMIT_FRAME_BYTES: usize = FRAME_HEADER_BYTES + 16;
/// The largest payload a frame may carry. Bounds what recovery trusts in a length field.
pub const MAX_PAYLOAD_BYTES: u32 = 1 << 30;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A log entry.
    Entry = 1,
    /// Raft hard state.
    HardState = 2,
    /// Suffix truncation.
    Truncate = 3,
    /// End of a batch.
    Commit = 4,
    /// Prefix compaction.
    Compact = 5,
    /// Segment footer.
    Seal = 6,
    /// A log entry of one group of a store.
    GroupEntry = 7,
    /// Raft hard state of one group.
    GroupHardState = 8,
    /// Suffix truncation of one group.
    GroupTruncate = 9,
    /// Prefix compaction of one group.
    GroupCompact = 10,
    /// Removal of a group.
    RemoveGroup = 11,
    /// Every live group's range and hard state, at the start of each store segment.
    Checkpoint = 12,
    /// A live group entry copied forward by garbage collection.
    RewrittenEntry = 13,
}

impl RecordKind {
    fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => RecordKind::Entry,
            2 => RecordKind::HardState,
            3 => RecordKind::Truncate,
            4 => RecordKind::Commit,
            5 => RecordKind::Compact,
            6 => RecordKind::Seal,
            7 => RecordKind::GroupEntry,
            8 => RecordKind::GroupHardState,
            9 => RecordKind::GroupTruncate,
            10 => RecordKind::GroupCompact,
            11 => RecordKind::RemoveGroup,
            12 => RecordKind::Checkpoint,
            13 => RecordKind::RewrittenEntry,
            _ => return None,
        })
    }
}

/// The CRC of a frame: the segment sequence number, then the frame from its length field on.
pub fn frame_crc(segment_seq: u64, frame_after_crc: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&segment_seq.to_le_bytes());
    hasher.update(frame_after_crc);
    hasher.finalize()
}

/// Appends one frame to `out`.
pub fn encode_frame(out: &mut Vec<u8>, segment_seq: u64, kind: RecordKind, payload: &[&[u8]]) {
    let payload_len: usize = payload.iter().map(|part| part.len()).sum();
    assert!(
        payload_len <= MAX_PAYLOAD_BYTES as usize,
        "record payload of {payload_len} bytes exceeds the format's limit"
    );
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    LittleEndian::write_u32(&mut out[start + 4..start + 8], payload_len as u32);
    out[start + 8] = kind as u8;
    for part in payload {
        out.extend_from_slice(part);
    }
    let crc = frame_crc(segment_seq, &out[start + 4..]);
    LittleEndian::write_u32(&mut out[start..start + 4], crc);
}

/// Appends an entry frame.
pub fn encode_entry(out: &mut Vec<u8>, segment_seq: u64, index: u64, term: u64, data: &[u8]) {
    let mut fixed = [0u8; ENTRY_FIXED_BYTES];
    LittleEndian::write_u64(&mut fixed[0..8], index);
    LittleEndian::write_u64(&mut fixed[8..16], term);
    encode_frame(out, segment_seq, RecordKind::Entry, &[&fixed, data]);
}

/// Appends a group entry frame (`kind` is [`RecordKind::GroupEntry`] or
/// [`RecordKind::RewrittenEntry`]).
pub fn encode_group_entry(
    out: &mut Vec<u8>,
    segment_seq: u64,
    kind: RecordKind,
    group: u64,
    index: u64,
    term: u64,
    data: &[u8],
) {
    debug_assert!(matches!(
        kind,
        RecordKind::GroupEntry | RecordKind::RewrittenEntry
    ));
    let mut fixed = [0u8; GROUP_ENTRY_FIXED_BYTES];
    LittleEndian::write_u64(&mut fixed[0..8], group);
    LittleEndian::write_u64(&mut fixed[8..16], index);
    LittleEndian::write_u64(&mut fixed[16..24], term);
    encode_frame(out, segment_seq, kind, &[&fixed, data]);
}

/// Parses a group entry payload into `(group, index, term, data)`.
pub fn parse_group_entry(payload: &[u8]) -> Option<(u64, u64, u64, &[u8])> {
    if payload.len() < GROUP_ENTRY_FIXED_BYTES {
        return None;
    }
    Some((
        LittleEndian::read_u64(&payload[0..8]),
        LittleEndian::read_u64(&payload[8..16]),
        LittleEndian::read_u64(&payload[16..24]),
        &payload[GROUP_ENTRY_FIXED_BYTES..],
    ))
}

/// Appends a frame whose payload is a list of u64 values.
pub fn encode_u64s(out: &mut Vec<u8>, segment_seq: u64, kind: RecordKind, values: &[u64]) {
    let mut payload = [0u8; 32];
    assert!(values.len() * 8 <= payload.len());
    for (slot, value) in values.iter().enumerate() {
        LittleEndian::write_u64(&mut payload[slot * 8..slot * 8 + 8], *value);
    }
    encode_frame(out, segment_seq, kind, &[&payload[..values.len() * 8]]);
}

/// Appends the commit frame that closes a batch of `frame_count` frames spanning `batch_bytes`.
pub fn encode_commit(out: &mut Vec<u8>, segment_seq: u64, frame_count: u32, batch_bytes: u64) {
    let mut payload = [0u8; 16];
    LittleEndian::write_u32(&mut payload[0..4], frame_count);
    LittleEndian::write_u64(&mut payload[8..16], batch_bytes);
    encode_frame(out, segment_seq, RecordKind::Commit, &[&payload]);
}

/// A frame that parsed and passed its checksum.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// What it holds.
    pub kind: RecordKind,
    /// Its payload.
    pub payload: &'a [u8],
    /// Bytes it occupies, header included.
    pub total_bytes: usize,
}

/// Why bytes at an offset are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The frame runs past the end of the available bytes.
    Truncated,
    /// Kind 0 with zero length: the unwritten, zero-filled part of a segment.
    Zeroed,
    /// The header is malformed (unknown kind, nonzero reserved bytes, absurd length).
    BadHeader(String),
    /// The checksum does not match.
    BadChecksum,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated => write!(f, "record runs past the end of the file"),
            FrameError::Zeroed => write!(f, "zero-filled bytes where a record should start"),
            FrameError::BadHeader(reason) => write!(f, "malformed record header: {reason}"),
            FrameError::BadChecksum => write!(f, "record checksum mismatch"),
        }
    }
}

/// Parses and verifies the frame at the start of `bytes`.
pub fn decode_frame(segment_seq: u64, bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    if bytes.len() < FRAME_HEADER_BYTES {
        if bytes.iter().all(|byte| *byte == 0) {
            return Err(FrameError::Zeroed);
        }
        return Err(FrameError::Truncated);
    }
    let header = &bytes[..FRAME_HEADER_BYTES];
    if header.iter().all(|byte| *byte == 0) {
        return Err(FrameError::Zeroed);
    }
    let payload_len = LittleEndian::read_u32(&header[4..8]);
    let kind = RecordKind::from_u8(header[8])
        .ok_or_else(|| FrameError::BadHeader(format!("unknown record kind {}", header[8])))?;
    if header[9..12] != [0, 0, 0] {
        return Err(FrameError::BadHeader("reserved bytes are not zero".into()));
    }
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(FrameError::BadHeader(format!(
            "payload length {payload_len} exceeds the limit"
        )));
    }
    let total_bytes = FRAME_HEADER_BYTES + payload_len as usize;
    if bytes.len() < total_bytes {
        return Err(FrameError::Truncated);
    }
    let stored_crc = LittleEndian::read_u32(&header[0..4]);
    if frame_crc(segment_seq, &bytes[4..total_bytes]) != stored_crc {
        return Err(FrameError::BadChecksum);
    }
    Ok(Frame {
        kind,
        payload: &bytes[FRAME_HEADER_BYTES..total_bytes],
        total_bytes,
    })
}

/// Reads the `slot`-th u64 of a payload, or `None` if the payload is too short.
pub fn payload_u64(payload: &[u8], slot: usize) -> Option<u64> {
    payload
        .get(slot * 8..slot * 8 + 8)
        .map(LittleEndian::read_u64)
}

/// Parses an entry payload into `(index, term, data)`.
pub fn parse_entry(payload: &[u8]) -> Option<(u64, u64, &[u8])> {
    if payload.len() < ENTRY_FIXED_BYTES {
        return None;
    }
    Some((
        LittleEndian::read_u64(&payload[0..8]),
        LittleEndian::read_u64(&payload[8..16]),
        &payload[ENTRY_FIXED_BYTES..],
    ))
}

/// Parses a commit payload into `(frame_count, batch_bytes)`.
pub fn parse_commit(payload: &[u8]) -> Option<(u32, u64)> {
    if payload.len() != 16 {
        return None;
    }
    Some((
        LittleEndian::read_u32(&payload[0..4]),
        LittleEndian::read_u64(&payload[8..16]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, 7, 42, 3, b"hello");
        let frame = decode_frame(7, &buf).unwrap();
        assert_eq!(frame.kind, RecordKind::Entry);
        assert_eq!(frame.total_bytes, buf.len());
        assert_eq!(parse_entry(frame.payload), Some((42, 3, &b"hello"[..])));
    }

    #[test]
    fn crc_covers_segment_sequence() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, 7, 1, 1, b"x");
        assert_eq!(decode_frame(8, &buf).unwrap_err(), FrameError::BadChecksum);
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, 1, 9, 2, b"some data");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut damaged = buf.clone();
                damaged[byte] ^= 1 << bit;
                assert!(
                    decode_frame(1, &damaged).is_err(),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn zeroes_and_truncation_are_recognised() {
        assert_eq!(decode_frame(1, &[0u8; 64]).unwrap_err(), FrameError::Zeroed);
        let mut buf = Vec::new();
        encode_entry(&mut buf, 1, 1, 1, b"abcdef");
        for cut in 1..buf.len() {
            assert!(decode_frame(1, &buf[..cut]).is_err());
        }
    }
}
