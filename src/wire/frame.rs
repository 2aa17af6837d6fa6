//! Peer frames: how one message travels on a peer TCP connection.
//!
//! # Byte layout (version 1)
//!
//! All integers little-endian.
//!
//! | offset | size | field         | meaning                                                     |
//! |--------|------|---------------|-------------------------------------------------------------|
//! | 0      | 2    | `magic`       | `0x4B54` (bytes `54 4B`, "TK"): catches a stream not ours    |
//! | 2      | 1    | `version`     | [`FRAME_VERSION`]; any other value is refused               |
//! | 3      | 1    | `kind`        | message kind, opaque to the framing                         |
//! | 4      | 4    | `payload_len` | payload bytes that follow the header                        |
//! | 8      | 4    | `crc32`       | CRC-32 (IEEE, crc32fast) of bytes 2..8 then of the payload  |
//! | 12     | n    | `payload`     | `payload_len` bytes, encoded with [`super::codec`]          |
//!
//! The header is [`HEADER_BYTES`] = 12 bytes. The checksum covers the version, kind and length
//! as well as the payload, so a flipped length bit is caught even when it still parses. The
//! magic is outside the checksum: it is checked on its own, first, to fail fast on a stream
//! that is not Ketch framing (a client talking to the peer port, a desynchronized stream).
//!
//! A payload larger than [`MAX_FRAME_PAYLOAD_BYTES`] is never encoded; a decoder refuses any
//! frame larger than its own configured maximum, checking the length before buffering the
//! payload so a hostile length cannot make it allocate.
//!
//! # Large frames without copies
//!
//! A frame of tens of MiB (one large entry) costs, per copy, a fresh allocation whose pages
//! the kernel must fault in and zero: on a loaded host, over 100 ms for 64 MiB, on whichever
//! thread makes it. So neither end copies one on the event loop thread. A sender builds it
//! with [`FrameBuilder`] as an [`OutFrame`] of pieces, the large byte strings shared (not
//! copied) with the entries they come from; the checksum is computed over the pieces in
//! order, so the bytes on the wire are exactly those of [`encode_frame`]. A receiver's
//! [`FrameDecoder`] sizes its buffer for a frame once the header is in (no reallocation while
//! it arrives), and [`FrameDecoder::next_frame_shared`] hands a frame of at least
//! [`SHARED_FRAME_MIN_BYTES`] over as shared bytes without copying it.
//!
//! Any framing error leaves the stream unsynchronized (there is no resync marker), so a
//! [`FrameDecoder`] that reported one keeps reporting it: close the connection.

use std::fmt;

use byteorder::{ByteOrder, LittleEndian};
use bytes::Bytes;

/// The frame format version this code writes and reads.
pub const FRAME_VERSION: u8 = 1;

/// The magic number opening every frame.
pub const FRAME_MAGIC: u16 = 0x4B54;

/// Size of the frame header.
pub const HEADER_BYTES: usize = 12;

/// Largest payload any frame may carry (256 MiB): above the largest entry a node can be
/// configured to accept (a value limit of at most 128 MiB, plus its overhead). Snapshot chunks
/// and append batches must be split below it. Decoders are configured lower, to what their
/// node's settings need.
pub const MAX_FRAME_PAYLOAD_BYTES: u32 = 256 * 1024 * 1024;

/// Frames of at least this many bytes are received and sent without copying their payload:
/// [`FrameDecoder::next_frame_shared`] hands over its buffer, [`FrameBuilder`] writes shared
/// byte strings as pieces of their own. Below it one copy costs less than the bookkeeping.
pub const SHARED_FRAME_MIN_BYTES: usize = 256 << 10;

/// The decoded header of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Message kind, opaque to the framing.
    pub kind: u8,
    /// Bytes of payload after the header.
    pub payload_len: u32,
}

impl FrameHeader {
    /// Parses and validates a header from the start of `bytes`: `Ok(None)` when fewer than
    /// [`HEADER_BYTES`] are available and nothing seen so far is wrong. The magic and the
    /// version are checked as soon as their bytes are present. The checksum is not checked
    /// here (it covers the payload).
    pub fn parse(
        bytes: &[u8],
        max_payload_bytes: u32,
    ) -> Result<Option<FrameHeader>, PeerFrameError> {
        if bytes.len() >= 2 {
            let magic = LittleEndian::read_u16(&bytes[0..2]);
            if magic != FRAME_MAGIC {
                return Err(PeerFrameError::BadMagic { found: magic });
            }
        }
        if bytes.len() >= 3 && bytes[2] != FRAME_VERSION {
            return Err(PeerFrameError::UnsupportedVersion {
                found: bytes[2],
                supported: FRAME_VERSION,
            });
        }
        if bytes.len() < 8 {
            return Ok(None);
        }
        let payload_len = LittleEndian::read_u32(&bytes[4..8]);
        if payload_len > max_payload_bytes {
            return Err(PeerFrameError::TooLarge {
                payload_len: u64::from(payload_len),
                max_payload_bytes,
            });
        }
        if bytes.len() < HEADER_BYTES {
            return Ok(None);
        }
        Ok(Some(FrameHeader {
            kind: bytes[3],
            payload_len,
        }))
    }
}

/// What is wrong with a frame, or with a request to encode one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerFrameError {
    /// The stream does not start with [`FRAME_MAGIC`]: not a Ketch peer, or desynchronized.
    BadMagic {
        /// The two bytes found, read little-endian.
        found: u16,
    },
    /// The peer speaks a frame version this build does not.
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
        /// The only version supported.
        supported: u8,
    },
    /// The payload is over the limit (when decoding, the length field alone says so).
    TooLarge {
        /// Payload size claimed or requested.
        payload_len: u64,
        /// The limit in force.
        max_payload_bytes: u32,
    },
    /// Header and payload do not match their checksum: corrupted in transit or by a bug.
    BadChecksum {
        /// Message kind from the (possibly corrupt) header.
        kind: u8,
        /// Payload length from the (possibly corrupt) header.
        payload_len: u32,
        /// Checksum carried by the frame.
        stored: u32,
        /// Checksum computed over what arrived.
        computed: u32,
    },
}

impl fmt::Display for PeerFrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerFrameError::BadMagic { found } => write!(
                f,
                "bad frame magic {found:#06x} (expected {FRAME_MAGIC:#06x}): the peer is not \
                 speaking Ketch peer framing or the stream lost sync; close the connection"
            ),
            PeerFrameError::UnsupportedVersion { found, supported } => write!(
                f,
                "unsupported frame version {found} (this build speaks {supported}): upgrade \
                 the older node"
            ),
            PeerFrameError::TooLarge {
                payload_len,
                max_payload_bytes,
            } => write!(
                f,
                "frame payload of {payload_len} bytes exceeds the limit of {max_payload_bytes} \
                 bytes: split the message or raise the limit on both sides"
            ),
            PeerFrameError::BadChecksum {
                kind,
                payload_len,
                stored,
                computed,
            } => write!(
                f,
                "frame checksum mismatch (kind {kind}, {payload_len} payload bytes): stored \
                 {stored:#010x}, computed {computed:#010x}; the stream is corrupt, close it"
            ),
        }
    }
}

impl std::error::Error for PeerFrameError {}

/// The checksum of a frame: header bytes 2..8 (version, kind, length), then the payload.
fn frame_checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[2..8]);
    hasher.update(payload);
    hasher.finalize()
}

/// Turns `out[start..]` into one frame: `out[start..start + HEADER_BYTES]` is room for the
/// header, written here, and the payload follows it, already in place (so a large payload is
/// not copied once more to be framed). Fails, truncating `out` back to `start`, if the payload
/// is over [`MAX_FRAME_PAYLOAD_BYTES`].
///
/// # Panics
///
/// If `out` holds fewer than `start + HEADER_BYTES` bytes.
pub fn frame_in_place(kind: u8, out: &mut Vec<u8>, start: usize) -> Result<(), PeerFrameError> {
    let payload_bytes = out.len() - start - HEADER_BYTES;
    let payload_len = match u32::try_from(payload_bytes) {
        Ok(len) if len <= MAX_FRAME_PAYLOAD_BYTES => len,
        _ => {
            out.truncate(start);
            return Err(PeerFrameError::TooLarge {
                payload_len: payload_bytes as u64,
                max_payload_bytes: MAX_FRAME_PAYLOAD_BYTES,
            });
        }
    };
    let (header, payload) = out[start..].split_at_mut(HEADER_BYTES);
    LittleEndian::write_u16(&mut header[0..2], FRAME_MAGIC);
    header[2] = FRAME_VERSION;
    header[3] = kind;
    LittleEndian::write_u32(&mut header[4..8], payload_len);
    let checksum = frame_checksum(header, payload);
    LittleEndian::write_u32(&mut header[8..12], checksum);
    Ok(())
}

/// Appends one frame carrying `payload` to `out`. Fails, writing nothing, if the payload is
/// over [`MAX_FRAME_PAYLOAD_BYTES`].
pub fn encode_frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), PeerFrameError> {
    let payload_len = match u32::try_from(payload.len()) {
        Ok(len) if len <= MAX_FRAME_PAYLOAD_BYTES => len,
        _ => {
            return Err(PeerFrameError::TooLarge {
                payload_len: payload.len() as u64,
                max_payload_bytes: MAX_FRAME_PAYLOAD_BYTES,
            })
        }
    };
    let mut header = [0u8; HEADER_BYTES];
    LittleEndian::write_u16(&mut header[0..2], FRAME_MAGIC);
    header[2] = FRAME_VERSION;
    header[3] = kind;
    LittleEndian::write_u32(&mut header[4..8], payload_len);
    let checksum = frame_checksum(&header, payload);
    LittleEndian::write_u32(&mut header[8..12], checksum);
    out.reserve(HEADER_BYTES + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(())
}

/// One encoded frame, ready to write: one buffer, or pieces written in order, of which the
/// large ones are byte strings shared with the values they encode (an entry's data), so
/// framing a message of tens of MiB copies none of it.
#[derive(Debug, Clone)]
pub enum OutFrame {
    /// The whole frame in one buffer.
    Whole(Vec<u8>),
    /// The frame as consecutive pieces; the first holds the header.
    Pieces {
        /// The pieces, in wire order.
        pieces: Vec<Bytes>,
        /// Their total size.
        len_bytes: usize,
    },
}

impl OutFrame {
    /// Bytes on the wire, header included.
    pub fn len(&self) -> usize {
        match self {
            OutFrame::Whole(bytes) => bytes.len(),
            OutFrame::Pieces { len_bytes, .. } => *len_bytes,
        }
    }

    /// True for a frame of no bytes (never produced: every frame has a header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame in one buffer (a copy, for tests and tools).
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            OutFrame::Whole(bytes) => bytes.clone(),
            OutFrame::Pieces { pieces, len_bytes } => {
                let mut out = Vec::with_capacity(*len_bytes);
                for piece in pieces {
                    out.extend_from_slice(piece);
                }
                out
            }
        }
    }
}

/// Builds one [`OutFrame`]: fields are written into [`inline`](Self::inline), large byte
/// strings are added with [`share`](Self::share) and stay where they are.
#[derive(Debug)]
pub struct FrameBuilder {
    /// The first piece, with room for the header; `None` until something is shared.
    head: Option<Vec<u8>>,
    /// Pieces after the head, shared ones included.
    pieces: Vec<Bytes>,
    /// Inline bytes after the last shared piece (the head itself while nothing is shared).
    current: Vec<u8>,
}

impl Default for FrameBuilder {
    fn default() -> Self {
        FrameBuilder::new()
    }
}

impl FrameBuilder {
    /// An empty frame (room for the header, no payload).
    pub fn new() -> Self {
        FrameBuilder {
            head: None,
            pieces: Vec::new(),
            current: vec![0u8; HEADER_BYTES],
        }
    }

    /// The buffer to append inline payload bytes to.
    pub fn inline(&mut self) -> &mut Vec<u8> {
        &mut self.current
    }

    /// Appends `bytes` to the payload without copying them.
    pub fn share(&mut self, bytes: Bytes) {
        let before = std::mem::take(&mut self.current);
        if self.head.is_none() {
            self.head = Some(before);
        } else if !before.is_empty() {
            self.pieces.push(Bytes::from(before));
        }
        self.pieces.push(bytes);
    }

    /// The finished frame of `kind`; fails if the payload is over [`MAX_FRAME_PAYLOAD_BYTES`].
    pub fn finish(self, kind: u8) -> Result<OutFrame, PeerFrameError> {
        let FrameBuilder {
            head,
            mut pieces,
            mut current,
        } = self;
        let Some(mut head) = head else {
            frame_in_place(kind, &mut current, 0)?;
            return Ok(OutFrame::Whole(current));
        };
        let len_bytes = head.len() + pieces.iter().map(Bytes::len).sum::<usize>() + current.len();
        let payload_bytes = len_bytes - HEADER_BYTES;
        let payload_len = match u32::try_from(payload_bytes) {
            Ok(len) if len <= MAX_FRAME_PAYLOAD_BYTES => len,
            _ => {
                return Err(PeerFrameError::TooLarge {
                    payload_len: payload_bytes as u64,
                    max_payload_bytes: MAX_FRAME_PAYLOAD_BYTES,
                })
            }
        };
        LittleEndian::write_u16(&mut head[0..2], FRAME_MAGIC);
        head[2] = FRAME_VERSION;
        head[3] = kind;
        LittleEndian::write_u32(&mut head[4..8], payload_len);
        // The same checksum as `frame_checksum`, over the pieces in order.
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&head[2..8]);
        hasher.update(&head[HEADER_BYTES..]);
        for piece in &pieces {
            hasher.update(piece);
        }
        hasher.update(&current);
        LittleEndian::write_u32(&mut head[8..12], hasher.finalize());
        pieces.insert(0, Bytes::from(head));
        if !current.is_empty() {
            pieces.push(Bytes::from(current));
        }
        Ok(OutFrame::Pieces { pieces, len_bytes })
    }
}

/// Incremental frame decoder for one connection: feed it bytes as they arrive, take frames
/// out as they complete.
///
/// Memory is bounded: the decoder never holds more than [`FrameDecoder::capacity_bytes`] =
/// header + maximum payload bytes. [`feed`](FrameDecoder::feed) takes only what fits and says
/// how much it took; drain complete frames with [`next_frame`](FrameDecoder::next_frame) and
/// feed the rest. A full buffer always holds a complete frame or an error, so this never
/// stalls.
#[derive(Debug)]
pub struct FrameDecoder {
    max_payload_bytes: u32,
    /// Bytes received and not yet returned as frames, from `consumed_bytes` on.
    buffer: Vec<u8>,
    /// Prefix of `buffer` already returned, compacted away on the next feed.
    consumed_bytes: usize,
    /// Set by the first framing error; the stream is unsynchronized from there on.
    failed: Option<PeerFrameError>,
}

impl FrameDecoder {
    /// A decoder refusing payloads over `max_payload_bytes`, which is capped at
    /// [`MAX_FRAME_PAYLOAD_BYTES`] since no encoder produces more.
    pub fn new(max_payload_bytes: u32) -> Self {
        FrameDecoder {
            max_payload_bytes: max_payload_bytes.min(MAX_FRAME_PAYLOAD_BYTES),
            buffer: Vec::new(),
            consumed_bytes: 0,
            failed: None,
        }
    }

    /// The payload limit in force.
    pub fn max_payload_bytes(&self) -> u32 {
        self.max_payload_bytes
    }

    /// Raises the payload limit to `max_payload_bytes` (capped as in [`new`](Self::new)),
    /// keeping what is buffered: a peer connection decodes its handshake under a small limit
    /// and raises it once the peer has authenticated, without losing the frames that followed
    /// the handshake in the same read. Never lowers the limit, so the buffer stays within it.
    pub fn raise_max_payload_bytes(&mut self, max_payload_bytes: u32) {
        self.max_payload_bytes = self
            .max_payload_bytes
            .max(max_payload_bytes.min(MAX_FRAME_PAYLOAD_BYTES));
    }

    /// Most bytes the decoder ever buffers: one header plus one maximal payload.
    pub fn capacity_bytes(&self) -> usize {
        HEADER_BYTES + self.max_payload_bytes as usize
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len() - self.consumed_bytes
    }

    /// Appends as many of `bytes` as fit and returns how many it took. It takes them all
    /// unless the buffer is full of frames not yet taken out with
    /// [`next_frame`](Self::next_frame); then feed the rest after draining. After a framing
    /// error the decoder takes and discards everything (the connection is unusable).
    #[must_use = "bytes beyond the returned count were not taken; feed them after next_frame"]
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        if self.failed.is_some() {
            return bytes.len();
        }
        if self.consumed_bytes > 0 {
            // Compacting here, not in next_frame, moves the partial tail once per read.
            self.buffer.drain(..self.consumed_bytes);
            self.consumed_bytes = 0;
        }
        let room_bytes = self.capacity_bytes() - self.buffer.len();
        let taken_bytes = bytes.len().min(room_bytes);
        // The buffer starts at a frame boundary (compacted above): complete that frame's
        // header first, so its length is known before the buffer grows for it.
        let header_bytes = HEADER_BYTES
            .saturating_sub(self.buffer.len())
            .min(taken_bytes);
        self.buffer.extend_from_slice(&bytes[..header_bytes]);
        // Growing by doubling (up to the bound), not by each read's bytes: a frame of tens of
        // MiB arriving in 64 KiB reads would otherwise be reallocated, and copied, once per
        // read. A frame whose header is in gets its whole size at once, so a large one is
        // never copied while it arrives (only pages touched so far are paid for).
        let needed_bytes = self.buffer.len() + (taken_bytes - header_bytes);
        if needed_bytes > self.buffer.capacity() {
            let first_frame_bytes = match FrameHeader::parse(&self.buffer, self.max_payload_bytes) {
                Ok(Some(header)) => HEADER_BYTES + header.payload_len as usize,
                _ => 0,
            };
            let target_bytes = needed_bytes
                .max(first_frame_bytes)
                .max(self.buffer.capacity() * 2)
                .min(self.capacity_bytes());
            self.buffer.reserve_exact(target_bytes - self.buffer.len());
        }
        self.buffer
            .extend_from_slice(&bytes[header_bytes..taken_bytes]);
        assert!(
            self.buffer.len() <= self.capacity_bytes(),
            "decoder buffer over its bound"
        );
        taken_bytes
    }

    /// The next complete frame as `(kind, payload)`; `Ok(None)` when more bytes are needed.
    /// Errors are final: the same error is returned on every later call.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, PeerFrameError> {
        self.sticky(Self::parse_next)
    }

    /// Runs `parse` unless an earlier call failed; a failure is kept and returned from then on,
    /// and the buffer is dropped.
    fn sticky<T>(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<T, PeerFrameError>,
    ) -> Result<T, PeerFrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        parse(self).inspect_err(|error| {
            self.failed = Some(error.clone());
            self.buffer = Vec::new();
            self.consumed_bytes = 0;
        })
    }

    /// Like [`next_frame`](Self::next_frame), but the payload is shared: a frame of at least
    /// [`SHARED_FRAME_MIN_BYTES`] that starts the buffer is handed over without a copy (the
    /// decoder starts a new buffer with the bytes after it); a smaller one is copied once,
    /// as `next_frame` does.
    pub fn next_frame_shared(&mut self) -> Result<Option<(u8, Bytes)>, PeerFrameError> {
        self.sticky(Self::parse_shared)
    }

    fn parse_shared(&mut self) -> Result<Option<(u8, Bytes)>, PeerFrameError> {
        let Some((kind, frame_bytes)) = self.check_next()? else {
            return Ok(None);
        };
        if self.consumed_bytes == 0 && frame_bytes >= SHARED_FRAME_MIN_BYTES {
            // At most the rest of one read follows the frame: that is what gets copied.
            let rest = self.buffer[frame_bytes..].to_vec();
            let mut frame = std::mem::replace(&mut self.buffer, rest);
            frame.truncate(frame_bytes);
            let payload = Bytes::from(frame).slice(HEADER_BYTES..);
            return Ok(Some((kind, payload)));
        }
        let start = self.consumed_bytes + HEADER_BYTES;
        let payload =
            Bytes::copy_from_slice(&self.buffer[start..self.consumed_bytes + frame_bytes]);
        self.consumed_bytes += frame_bytes;
        debug_assert!(self.consumed_bytes <= self.buffer.len());
        Ok(Some((kind, payload)))
    }

    /// The kind and size of the next frame if it is complete and its checksum holds.
    fn check_next(&self) -> Result<Option<(u8, usize)>, PeerFrameError> {
        let pending = &self.buffer[self.consumed_bytes..];
        let Some(header) = FrameHeader::parse(pending, self.max_payload_bytes)? else {
            return Ok(None);
        };
        let frame_bytes = HEADER_BYTES + header.payload_len as usize;
        if pending.len() < frame_bytes {
            return Ok(None);
        }
        let payload = &pending[HEADER_BYTES..frame_bytes];
        let stored = LittleEndian::read_u32(&pending[8..12]);
        let computed = frame_checksum(pending, payload);
        if stored != computed {
            return Err(PeerFrameError::BadChecksum {
                kind: header.kind,
                payload_len: header.payload_len,
                stored,
                computed,
            });
        }
        Ok(Some((header.kind, frame_bytes)))
    }

    fn parse_next(&mut self) -> Result<Option<(u8, Vec<u8>)>, PeerFrameError> {
        let Some((kind, frame_bytes)) = self.check_next()? else {
            return Ok(None);
        };
        let start = self.consumed_bytes + HEADER_BYTES;
        let payload = self.buffer[start..self.consumed_bytes + frame_bytes].to_vec();
        self.consumed_bytes += frame_bytes;
        debug_assert!(self.consumed_bytes <= self.buffer.len());
        Ok(Some((kind, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(frames: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (kind, payload) in frames {
            encode_frame(*kind, payload, &mut out).unwrap();
        }
        out
    }

    /// Feeds `stream` in pieces cut at `cuts`, draining after each, until the stream ends or
    /// an error; returns the frames and the error if any.
    fn decode_in_pieces(
        max_payload_bytes: u32,
        stream: &[u8],
        cuts: &[usize],
    ) -> (Vec<(u8, Vec<u8>)>, Option<PeerFrameError>) {
        decode_pieces_with(max_payload_bytes, stream, cuts, false)
    }

    /// [`decode_in_pieces`], taking frames with `next_frame_shared` if `shared`.
    fn decode_pieces_with(
        max_payload_bytes: u32,
        stream: &[u8],
        cuts: &[usize],
        shared: bool,
    ) -> (Vec<(u8, Vec<u8>)>, Option<PeerFrameError>) {
        let mut decoder = FrameDecoder::new(max_payload_bytes);
        let mut frames = Vec::new();
        let mut bounds: Vec<usize> = cuts.iter().map(|cut| cut % (stream.len() + 1)).collect();
        bounds.push(0);
        bounds.push(stream.len());
        bounds.sort_unstable();
        for piece in bounds.windows(2) {
            let mut rest = &stream[piece[0]..piece[1]];
            loop {
                let taken = decoder.feed(rest);
                rest = &rest[taken..];
                assert!(decoder.buffered_bytes() <= decoder.capacity_bytes());
                loop {
                    let next = if shared {
                        decoder
                            .next_frame_shared()
                            .map(|f| f.map(|(kind, payload)| (kind, payload.to_vec())))
                    } else {
                        decoder.next_frame()
                    };
                    match next {
                        Ok(Some(frame)) => frames.push(frame),
                        Ok(None) => break,
                        Err(error) => return (frames, Some(error)),
                    }
                }
                if rest.is_empty() {
                    break;
                }
                assert!(taken > 0, "decoder stalled with a full buffer");
            }
        }
        (frames, None)
    }

    #[test]
    fn large_frames_built_from_pieces_decode_shared_between_small_ones() {
        let large: Vec<u8> = (0..SHARED_FRAME_MIN_BYTES * 3 + 5)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut builder = FrameBuilder::new();
        builder.inline().extend_from_slice(b"head");
        builder.share(Bytes::from(large.clone()));
        builder.inline().extend_from_slice(b"tail");
        let built = builder.finish(9).unwrap();
        assert!(
            matches!(built, OutFrame::Pieces { .. }),
            "a shared piece stays a piece"
        );
        let mut payload = b"head".to_vec();
        payload.extend_from_slice(&large);
        payload.extend_from_slice(b"tail");
        let frames = vec![
            (1, b"before".to_vec()),
            (9, payload),
            (2, b"after".to_vec()),
        ];
        let mut stream = encoded(&frames[..1]);
        stream.extend_from_slice(&built.to_vec());
        stream.extend_from_slice(&encoded(&frames[2..]));
        assert_eq!(
            stream,
            encoded(&frames),
            "pieces and one buffer frame alike"
        );
        // Cut as a socket would deliver it, with one cut inside the large frame's header.
        let cuts: Vec<usize> = (0..stream.len())
            .step_by(64 << 10)
            .chain([20, 25])
            .collect();
        let limit = u32::try_from(stream.len()).unwrap();
        for shared in [false, true] {
            let (decoded, error) = decode_pieces_with(limit, &stream, &cuts, shared);
            assert_eq!(error, None);
            assert!(decoded == frames, "shared {shared}: frames differ");
        }
    }

    #[test]
    fn header_layout_is_as_documented() {
        let mut out = Vec::new();
        encode_frame(7, b"abc", &mut out).unwrap();
        assert_eq!(&out[0..2], &[0x54, 0x4B]);
        assert_eq!(out[2], FRAME_VERSION);
        assert_eq!(out[3], 7);
        assert_eq!(&out[4..8], &[3, 0, 0, 0]);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[1, 7, 3, 0, 0, 0]);
        hasher.update(b"abc");
        assert_eq!(&out[8..12], &hasher.finalize().to_le_bytes());
        assert_eq!(&out[12..], b"abc");
        assert_eq!(out.len(), HEADER_BYTES + 3);
    }

    #[test]
    fn round_trip_including_empty_payloads() {
        let frames = vec![
            (1, b"hello".to_vec()),
            (2, Vec::new()),
            (255, vec![0; 1000]),
        ];
        let (decoded, error) = decode_in_pieces(1000, &encoded(&frames), &[]);
        assert_eq!(error, None);
        assert_eq!(decoded, frames);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let stream = encoded(&[(3, b"payload".to_vec())]);
        let mut decoder = FrameDecoder::new(64);
        for &byte in &stream[..stream.len() - 1] {
            assert_eq!(decoder.feed(&[byte]), 1);
            assert_eq!(decoder.next_frame(), Ok(None));
        }
        assert_eq!(decoder.feed(&stream[stream.len() - 1..]), 1);
        assert_eq!(decoder.next_frame(), Ok(Some((3, b"payload".to_vec()))));
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn bad_magic_is_reported_after_two_bytes() {
        let mut decoder = FrameDecoder::new(64);
        let _ = decoder.feed(b"GE");
        assert_eq!(
            decoder.next_frame(),
            Err(PeerFrameError::BadMagic { found: 0x4547 })
        );
        // Final: more bytes do not revive it.
        assert_eq!(decoder.feed(b"T / HTTP/1.1"), 12);
        assert!(matches!(
            decoder.next_frame(),
            Err(PeerFrameError::BadMagic { .. })
        ));
    }

    #[test]
    fn other_versions_are_refused() {
        let mut stream = encoded(&[(1, b"x".to_vec())]);
        stream[2] = 2;
        let (_, error) = decode_in_pieces(64, &stream[..3], &[]);
        assert_eq!(
            error,
            Some(PeerFrameError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        );
    }

    #[test]
    fn oversized_length_is_refused_before_the_payload_arrives() {
        let stream = encoded(&[(1, vec![9; 100])]);
        let mut decoder = FrameDecoder::new(99);
        let _ = decoder.feed(&stream[..8]);
        assert_eq!(
            decoder.next_frame(),
            Err(PeerFrameError::TooLarge {
                payload_len: 100,
                max_payload_bytes: 99
            })
        );
    }

    #[test]
    fn encoder_refuses_payloads_over_the_protocol_limit() {
        let payload = vec![0u8; MAX_FRAME_PAYLOAD_BYTES as usize + 1];
        let mut out = vec![1, 2, 3];
        let result = encode_frame(1, &payload, &mut out);
        assert!(matches!(result, Err(PeerFrameError::TooLarge { .. })));
        assert_eq!(out, vec![1, 2, 3], "nothing written on error");
    }

    #[test]
    fn decoder_limit_is_capped_at_the_protocol_limit() {
        assert_eq!(
            FrameDecoder::new(u32::MAX).max_payload_bytes(),
            MAX_FRAME_PAYLOAD_BYTES
        );
    }

    #[test]
    fn every_corrupted_byte_is_detected() {
        let stream = encoded(&[(4, b"some payload bytes".to_vec())]);
        for position in 0..stream.len() {
            for flip in [0x01u8, 0x80] {
                let mut corrupt = stream.clone();
                corrupt[position] ^= flip;
                let (frames, error) = decode_in_pieces(1024, &corrupt, &[]);
                // Either an error, or (a length corrupted upward) a frame still incomplete.
                assert!(frames.is_empty(), "corruption at {position} went unnoticed");
                if position != 4 && position != 5 {
                    assert!(error.is_some(), "corruption at {position} not reported");
                }
            }
        }
    }

    #[test]
    fn full_buffer_takes_nothing_until_drained() {
        let frames = vec![(1, vec![1; 10]), (2, vec![2; 10])];
        let stream = encoded(&frames);
        let mut decoder = FrameDecoder::new(10);
        assert_eq!(decoder.capacity_bytes(), 22);
        assert_eq!(decoder.feed(&stream), 22);
        assert_eq!(decoder.feed(&stream[22..]), 0);
        assert_eq!(decoder.next_frame(), Ok(Some(frames[0].clone())));
        assert_eq!(decoder.feed(&stream[22..]), 22);
        assert_eq!(decoder.next_frame(), Ok(Some(frames[1].clone())));
    }

    /// Timing, not correctness: run with
    /// `cargo test --release -p ketch --lib wire::frame::tests::decode_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement; run in release with --nocapture"]
    fn decode_throughput() {
        for payload_bytes in [64usize, 256, 4096, 65536] {
            let frame_count = (64 << 20) / (payload_bytes + HEADER_BYTES);
            let payload = vec![0x5au8; payload_bytes];
            let mut stream = Vec::new();
            let started = std::time::Instant::now();
            for kind in 0..frame_count {
                encode_frame(kind as u8, &payload, &mut stream).unwrap();
            }
            let encode_secs = started.elapsed().as_secs_f64();
            let mut decoder = FrameDecoder::new(1 << 20);
            let started = std::time::Instant::now();
            let mut decoded = 0usize;
            for chunk in stream.chunks(64 * 1024) {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let taken = decoder.feed(rest);
                    rest = &rest[taken..];
                    while let Some((_, payload)) = decoder.next_frame().unwrap() {
                        decoded += payload.len();
                    }
                }
            }
            let decode_secs = started.elapsed().as_secs_f64();
            assert_eq!(decoded, frame_count * payload_bytes);
            let megabytes = stream.len() as f64 / 1e6;
            println!(
                "{payload_bytes} B payloads, {frame_count} frames: encode {:.0} MB/s, \
                 decode (64 KiB reads) {:.0} MB/s, {:.2} M frames/s",
                megabytes / encode_secs,
                megabytes / decode_secs,
                frame_count as f64 / decode_secs / 1e6
            );
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_and_stay_bounded(
            bytes in prop::collection::vec(any::<u8>(), 0..600),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
            max_payload_bytes in 0u32..300,
        ) {
            // Half the cases open with a valid header so the payload and checksum paths run.
            let mut stream = Vec::new();
            if bytes.first().is_some_and(|b| b % 2 == 0) {
                encode_frame(1, &bytes[bytes.len() / 2..], &mut stream).unwrap();
                stream.truncate(HEADER_BYTES);
            }
            stream.extend_from_slice(&bytes);
            let _ = decode_in_pieces(max_payload_bytes, &stream, &cuts);
        }

        #[test]
        fn valid_streams_decode_identically_however_split(
            frames in prop::collection::vec(
                (any::<u8>(), prop::collection::vec(any::<u8>(), 0..200)), 0..6),
            cuts in prop::collection::vec(any::<usize>(), 0..10),
        ) {
            let stream = encoded(&frames);
            let (decoded, error) = decode_in_pieces(200, &stream, &cuts);
            prop_assert_eq!(error, None);
            prop_assert_eq!(&decoded, &frames);
            let (decoded, error) = decode_pieces_with(200, &stream, &cuts, true);
            prop_assert_eq!(error, None);
            prop_assert_eq!(&decoded, &frames);
        }

        #[test]
        fn byte_at_a_time_matches_whole(
            frames in prop::collection::vec(
                (any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)), 1..4),
        ) {
            let stream = encoded(&frames);
            let every_boundary: Vec<usize> = (0..=stream.len()).collect();
            let (decoded, error) = decode_in_pieces(40, &stream, &every_boundary);
            prop_assert_eq!(error, None);
            prop_assert_eq!(decoded, frames);
        }
    }
}
