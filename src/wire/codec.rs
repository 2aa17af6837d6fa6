//! Primitive encoding for frame payloads: fixed-width little-endian integers and
//! length-prefixed byte strings, read through a cursor that checks every bound.
//!
//! # Encodings
//!
//! | primitive  | bytes | layout                                                 |
//! |------------|-------|--------------------------------------------------------|
//! | `u8`       | 1     | the byte                                               |
//! | `bool`     | 1     | `0` or `1`; anything else is an error                  |
//! | `u16`      | 2     | little-endian                                          |
//! | `u32`      | 4     | little-endian                                          |
//! | `u64`      | 8     | little-endian                                          |
//! | bytes      | 4 + n | `u32` length n, then n bytes                           |
//!
//! Messages are sequences of these with no padding or alignment. A reader is given a limit for
//! every byte string, so a corrupt or hostile length fails before anything is allocated.

use std::fmt;

use byteorder::{ByteOrder, LittleEndian};

/// What is wrong with a payload being decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The payload ends before a field does.
    Truncated {
        /// Offset in the payload where the field starts.
        offset: usize,
        /// Bytes the field needs.
        needed_bytes: usize,
        /// Bytes left in the payload.
        remaining_bytes: usize,
    },
    /// A byte string's length prefix is over the limit the reader allowed.
    LengthTooLarge {
        /// Offset of the length prefix.
        offset: usize,
        /// Length found.
        len: u32,
        /// Limit allowed by the caller.
        max_bytes: u32,
    },
    /// A boolean byte was neither 0 nor 1.
    InvalidBool {
        /// Offset of the byte.
        offset: usize,
        /// Value found.
        found: u8,
    },
    /// Bytes remain after the last field of a message.
    TrailingBytes {
        /// Offset where the unread bytes start.
        offset: usize,
        /// How many remain.
        remaining_bytes: usize,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated {
                offset,
                needed_bytes,
                remaining_bytes,
            } => write!(
                f,
                "payload truncated at offset {offset}: field needs {needed_bytes} bytes, \
                 {remaining_bytes} remain"
            ),
            CodecError::LengthTooLarge {
                offset,
                len,
                max_bytes,
            } => write!(
                f,
                "byte string at offset {offset} claims {len} bytes, over the limit of {max_bytes}"
            ),
            CodecError::InvalidBool { offset, found } => {
                write!(f, "boolean at offset {offset} is {found}, not 0 or 1")
            }
            CodecError::TrailingBytes {
                offset,
                remaining_bytes,
            } => write!(
                f,
                "{remaining_bytes} unexpected bytes after the message end at offset {offset}"
            ),
        }
    }
}

impl std::error::Error for CodecError {}

/// Appends primitives to a buffer. Writing cannot fail, except a byte string longer than a
/// `u32` length can say, which panics: payloads are built from bounded in-memory values and
/// framed below [`super::frame::MAX_FRAME_PAYLOAD_BYTES`] anyway.
#[derive(Debug)]
pub struct WireWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> WireWriter<'a> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        WireWriter { out }
    }

    /// Writes one byte.
    pub fn write_u8(&mut self, value: u8) {
        self.out.push(value);
    }

    /// Writes a boolean as one byte, 0 or 1.
    pub fn write_bool(&mut self, value: bool) {
        self.out.push(u8::from(value));
    }

    /// Writes a little-endian `u16`.
    pub fn write_u16(&mut self, value: u16) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    /// Writes a little-endian `u32`.
    pub fn write_u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    /// Writes a little-endian `u64`.
    pub fn write_u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    /// Writes a `u32` length and then the bytes.
    ///
    /// # Panics
    /// If `bytes` is longer than `u32::MAX`.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        let len = u32::try_from(bytes.len()).expect("byte string longer than u32::MAX");
        self.write_u32(len);
        self.out.extend_from_slice(bytes);
    }

    /// Bytes in the underlying buffer so far (including any it held before this writer).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// True when the underlying buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}

/// Reads primitives from a payload, front to back; every read checks the remaining length, and
/// a read that fails leaves the cursor where it was.
#[derive(Debug, Clone)]
pub struct WireReader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> WireReader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        WireReader { bytes, offset: 0 }
    }

    /// Offset of the next byte to read.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes not yet read.
    pub fn remaining_bytes(&self) -> usize {
        self.bytes.len() - self.offset
    }

    fn take(&mut self, needed_bytes: usize) -> Result<&'a [u8], CodecError> {
        let remaining_bytes = self.remaining_bytes();
        if needed_bytes > remaining_bytes {
            return Err(CodecError::Truncated {
                offset: self.offset,
                needed_bytes,
                remaining_bytes,
            });
        }
        let field = &self.bytes[self.offset..self.offset + needed_bytes];
        self.offset += needed_bytes;
        Ok(field)
    }

    /// Reads one byte.
    pub fn read_u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    /// Reads a boolean byte, refusing anything but 0 and 1.
    pub fn read_bool(&mut self) -> Result<bool, CodecError> {
        let offset = self.offset;
        match self.read_u8()? {
            0 => Ok(false),
            1 => Ok(true),
            found => {
                self.offset = offset;
                Err(CodecError::InvalidBool { offset, found })
            }
        }
    }

    /// Reads a little-endian `u16`.
    pub fn read_u16(&mut self) -> Result<u16, CodecError> {
        Ok(LittleEndian::read_u16(self.take(2)?))
    }

    /// Reads a little-endian `u32`.
    pub fn read_u32(&mut self) -> Result<u32, CodecError> {
        Ok(LittleEndian::read_u32(self.take(4)?))
    }

    /// Reads a little-endian `u64`.
    pub fn read_u64(&mut self) -> Result<u64, CodecError> {
        Ok(LittleEndian::read_u64(self.take(8)?))
    }

    /// Reads a length-prefixed byte string of at most `max_bytes`, borrowing from the payload.
    /// On error the reader has not advanced past the length prefix's start.
    pub fn read_bytes(&mut self, max_bytes: u32) -> Result<&'a [u8], CodecError> {
        let start = self.offset;
        let len = self.read_u32()?;
        if len > max_bytes {
            self.offset = start;
            return Err(CodecError::LengthTooLarge {
                offset: start,
                len,
                max_bytes,
            });
        }
        self.take(len as usize).inspect_err(|_| self.offset = start)
    }

    /// Checks that the whole payload was read: a message with trailing bytes is malformed.
    pub fn finish(self) -> Result<(), CodecError> {
        match self.remaining_bytes() {
            0 => Ok(()),
            remaining_bytes => Err(CodecError::TrailingBytes {
                offset: self.offset,
                remaining_bytes,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_every_primitive() {
        let mut out = Vec::new();
        let mut writer = WireWriter::new(&mut out);
        writer.write_u8(0xab);
        writer.write_bool(true);
        writer.write_u16(0x1234);
        writer.write_u32(0xdead_beef);
        writer.write_u64(u64::MAX - 1);
        writer.write_bytes(b"hello");
        writer.write_bytes(b"");
        assert_eq!(writer.len(), 1 + 1 + 2 + 4 + 8 + 9 + 4);
        let mut reader = WireReader::new(&out);
        assert_eq!(reader.read_u8(), Ok(0xab));
        assert_eq!(reader.read_bool(), Ok(true));
        assert_eq!(reader.read_u16(), Ok(0x1234));
        assert_eq!(reader.read_u32(), Ok(0xdead_beef));
        assert_eq!(reader.read_u64(), Ok(u64::MAX - 1));
        assert_eq!(reader.read_bytes(5), Ok(&b"hello"[..]));
        assert_eq!(reader.read_bytes(0), Ok(&b""[..]));
        assert_eq!(reader.finish(), Ok(()));
    }

    #[test]
    fn layout_is_little_endian() {
        let mut out = Vec::new();
        let mut writer = WireWriter::new(&mut out);
        writer.write_u32(0x0102_0304);
        writer.write_bytes(b"z");
        assert_eq!(out, vec![4, 3, 2, 1, 1, 0, 0, 0, b'z']);
    }

    #[test]
    fn truncation_is_an_error_with_its_offset() {
        let mut reader = WireReader::new(&[1, 2, 3]);
        assert_eq!(reader.read_u16(), Ok(0x0201));
        assert_eq!(
            reader.read_u32(),
            Err(CodecError::Truncated {
                offset: 2,
                needed_bytes: 4,
                remaining_bytes: 1
            })
        );
    }

    #[test]
    fn byte_string_limits_and_truncation() {
        let mut out = Vec::new();
        WireWriter::new(&mut out).write_bytes(b"four");
        let mut reader = WireReader::new(&out);
        assert_eq!(
            reader.read_bytes(3),
            Err(CodecError::LengthTooLarge {
                offset: 0,
                len: 4,
                max_bytes: 3
            })
        );
        assert_eq!(reader.offset(), 0, "a failed read does not advance");
        let mut short = WireReader::new(&out[..6]);
        assert_eq!(
            short.read_bytes(100),
            Err(CodecError::Truncated {
                offset: 4,
                needed_bytes: 4,
                remaining_bytes: 2
            })
        );
        assert_eq!(short.offset(), 0);
    }

    #[test]
    fn invalid_bool_and_trailing_bytes_are_errors() {
        let mut reader = WireReader::new(&[2, 9]);
        assert_eq!(
            reader.read_bool(),
            Err(CodecError::InvalidBool {
                offset: 0,
                found: 2
            })
        );
        assert_eq!(
            reader.finish(),
            Err(CodecError::TrailingBytes {
                offset: 0,
                remaining_bytes: 2
            })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..64),
            program in prop::collection::vec(0u8..6, 0..20),
            max_bytes in any::<u32>(),
        ) {
            let mut reader = WireReader::new(&bytes);
            for step in program {
                let before = reader.offset();
                let result = match step {
                    0 => reader.read_u8().map(drop),
                    1 => reader.read_bool().map(drop),
                    2 => reader.read_u16().map(drop),
                    3 => reader.read_u32().map(drop),
                    4 => reader.read_u64().map(drop),
                    _ => reader.read_bytes(max_bytes).map(drop),
                };
                prop_assert!(reader.offset() <= bytes.len());
                if result.is_err() {
                    prop_assert_eq!(reader.offset(), before);
                }
            }
        }

        #[test]
        fn byte_strings_round_trip(strings in prop::collection::vec(
            prop::collection::vec(any::<u8>(), 0..50), 0..8)) {
            let mut out = Vec::new();
            let mut writer = WireWriter::new(&mut out);
            for string in &strings {
                writer.write_bytes(string);
            }
            let mut reader = WireReader::new(&out);
            for string in &strings {
                prop_assert_eq!(reader.read_bytes(50)?, &string[..]);
            }
            prop_assert_eq!(reader.finish(), Ok(()));
        }
    }
}
