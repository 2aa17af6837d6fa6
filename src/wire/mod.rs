//! Peer message encoding and framing.
//!
//! Two layers: [`frame`] cuts a TCP byte stream into checksummed, length-limited frames, each
//! with a message kind; [`codec`] reads and writes the primitives inside a frame's payload.
//! Message definitions build on both.
//!
//! ```
//! use ketch::wire::codec::{WireReader, WireWriter};
//! use ketch::wire::frame::{encode_frame, FrameDecoder};
//!
//! let mut payload = Vec::new();
//! let mut writer = WireWriter::new(&mut payload);
//! writer.write_u64(7); // a term, say
//! writer.write_bytes(b"entry");
//! let mut stream = Vec::new();
//! encode_frame(1, &payload, &mut stream).unwrap();
//!
//! let mut decoder = FrameDecoder::new(1 << 20);
//! assert_eq!(decoder.feed(&stream), stream.len());
//! let (kind, payload) = decoder.next_frame().unwrap().unwrap();
//! let mut reader = WireReader::new(&payload);
//! assert_eq!((kind, reader.read_u64().unwrap()), (1, 7));
//! assert_eq!(reader.read_bytes(16).unwrap(), b"entry");
//! reader.finish().unwrap();
//! ```
#![forbid(unsafe_code)]

pub mod codec;
pub mod frame;
pub mod message;

pub use codec::{CodecError, WireReader, WireWriter};
pub use frame::{encode_frame, FrameDecoder, FrameHeader, PeerFrameError, FRAME_VERSION};
