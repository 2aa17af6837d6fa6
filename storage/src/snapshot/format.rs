//! The snapshot header and file names: encoding, decoding and every bounds check.
//!
//! The byte layout is documented in the [parent module](super); this file is the only place that
//! knows it.

use std::io::Read;
use std::path::{Path, PathBuf};

use byteorder::{ByteOrder, LittleEndian};

use crate::error::{Error, Result};

/// First eight bytes of every snapshot file.
pub(crate) const MAGIC: &[u8; 8] = b"KETCHSNP";

/// The format version this code writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Compression algorithm code for zstd, the only one defined.
pub(crate) const ALGORITHM_ZSTD: u32 = 1;

/// Largest membership blob accepted, so a damaged length field cannot make us allocate gigabytes.
pub const MEMBERSHIP_MAX_BYTES: u32 = 64 << 20;

/// Bytes before the membership blob: magic, version, algorithm, index, term, membership length.
pub(crate) const FIXED_PREFIX_BYTES: u64 = 36;

/// Bytes after the membership blob: uncompressed size, compressed size, content crc, stream crc,
/// header crc.
pub(crate) const FIXED_SUFFIX_BYTES: u64 = 28;

const VERSION_OFFSET: u64 = 8;
const ALGORITHM_OFFSET: u64 = 12;
const MEMBERSHIP_LEN_OFFSET: u64 = 32;

/// Everything the header records, in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) index: u64,
    pub(crate) term: u64,
    pub(crate) membership: Vec<u8>,
    pub(crate) uncompressed_bytes: u64,
    pub(crate) compressed_bytes: u64,
    pub(crate) checksum: u32,
    pub(crate) stream_checksum: u32,
}

/// Length of the header for a membership blob of `membership_len` bytes.
pub(crate) fn header_len_bytes(membership_len: usize) -> u64 {
    FIXED_PREFIX_BYTES + membership_len as u64 + FIXED_SUFFIX_BYTES
}

impl Header {
    /// Length of this header on disk; the zstd stream starts at this offset.
    pub(crate) fn len_bytes(&self) -> u64 {
        header_len_bytes(self.membership.len())
    }

    /// The header's bytes, ending with the crc32 of everything before it.
    pub(crate) fn encode(&self) -> Vec<u8> {
        assert!(
            self.membership.len() <= MEMBERSHIP_MAX_BYTES as usize,
            "membership length was checked when the snapshot began"
        );
        let mut bytes = Vec::with_capacity(self.len_bytes() as usize);
        let mut word = [0u8; 8];
        bytes.extend_from_slice(MAGIC);
        LittleEndian::write_u32(&mut word, FORMAT_VERSION);
        bytes.extend_from_slice(&word[..4]);
        LittleEndian::write_u32(&mut word, ALGORITHM_ZSTD);
        bytes.extend_from_slice(&word[..4]);
        LittleEndian::write_u64(&mut word, self.index);
        bytes.extend_from_slice(&word);
        LittleEndian::write_u64(&mut word, self.term);
        bytes.extend_from_slice(&word);
        LittleEndian::write_u32(&mut word, self.membership.len() as u32);
        bytes.extend_from_slice(&word[..4]);
        bytes.extend_from_slice(&self.membership);
        LittleEndian::write_u64(&mut word, self.uncompressed_bytes);
        bytes.extend_from_slice(&word);
        LittleEndian::write_u64(&mut word, self.compressed_bytes);
        bytes.extend_from_slice(&word);
        LittleEndian::write_u32(&mut word, self.checksum);
        bytes.extend_from_slice(&word[..4]);
        LittleEndian::write_u32(&mut word, self.stream_checksum);
        bytes.extend_from_slice(&word[..4]);
        let header_crc = crc32fast::hash(&bytes);
        LittleEndian::write_u32(&mut word, header_crc);
        bytes.extend_from_slice(&word[..4]);
        assert_eq!(bytes.len() as u64, self.len_bytes());
        bytes
    }

    /// Reads and checks a header from the start of `source`, a file `file_len_bytes` long.
    ///
    /// Every field is checked before it is used, and the length of the file must be exactly the
    /// header plus the compressed size it declares: a truncated or extended file is corrupt.
    pub(crate) fn decode(
        source: &mut impl Read,
        file_len_bytes: u64,
        path: &Path,
    ) -> Result<Header> {
        let corrupt = |offset: u64, reason: String| Error::corruption(path, offset, None, reason);
        if file_len_bytes < header_len_bytes(0) {
            return Err(corrupt(
                0,
                format!(
                    "file is {file_len_bytes} bytes, shorter than the smallest snapshot header \
                     ({} bytes): truncated or not a snapshot",
                    header_len_bytes(0)
                ),
            ));
        }
        let mut prefix = [0u8; FIXED_PREFIX_BYTES as usize];
        read_header_bytes(source, &mut prefix, path, 0)?;
        if &prefix[..8] != MAGIC {
            return Err(corrupt(
                0,
                "bad magic: not a Ketch snapshot file".to_string(),
            ));
        }
        let version = LittleEndian::read_u32(&prefix[8..12]);
        if version != FORMAT_VERSION {
            return Err(corrupt(
                VERSION_OFFSET,
                format!("unsupported snapshot format version {version} (this build reads {FORMAT_VERSION})"),
            ));
        }
        let algorithm = LittleEndian::read_u32(&prefix[12..16]);
        if algorithm != ALGORITHM_ZSTD {
            return Err(corrupt(
                ALGORITHM_OFFSET,
                format!("unknown compression algorithm {algorithm} (only 1 = zstd is defined)"),
            ));
        }
        let index = LittleEndian::read_u64(&prefix[16..24]);
        let term = LittleEndian::read_u64(&prefix[24..32]);
        let membership_len = LittleEndian::read_u32(&prefix[32..36]);
        if membership_len > MEMBERSHIP_MAX_BYTES {
            return Err(corrupt(
                MEMBERSHIP_LEN_OFFSET,
                format!("membership length {membership_len} exceeds the cap of {MEMBERSHIP_MAX_BYTES} bytes"),
            ));
        }
        let header_len = header_len_bytes(membership_len as usize);
        // Checked before allocating, so a damaged length in a small file allocates nothing.
        if header_len > file_len_bytes {
            return Err(corrupt(
                MEMBERSHIP_LEN_OFFSET,
                format!(
                    "membership length {membership_len} makes the header {header_len} bytes, \
                     longer than the {file_len_bytes}-byte file"
                ),
            ));
        }
        let mut rest = vec![0u8; membership_len as usize + FIXED_SUFFIX_BYTES as usize];
        read_header_bytes(source, &mut rest, path, FIXED_PREFIX_BYTES)?;
        let membership = rest[..membership_len as usize].to_vec();
        let suffix = &rest[membership_len as usize..];
        let uncompressed_bytes = LittleEndian::read_u64(&suffix[0..8]);
        let compressed_bytes = LittleEndian::read_u64(&suffix[8..16]);
        let checksum = LittleEndian::read_u32(&suffix[16..20]);
        let stream_checksum = LittleEndian::read_u32(&suffix[20..24]);
        let stored_header_crc = LittleEndian::read_u32(&suffix[24..28]);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&prefix);
        hasher.update(&rest[..rest.len() - 4]);
        let computed_header_crc = hasher.finalize();
        let header_crc_offset = header_len - 4;
        if stored_header_crc != computed_header_crc {
            return Err(corrupt(
                header_crc_offset,
                format!(
                    "header checksum mismatch (stored {stored_header_crc:#010x}, computed \
                     {computed_header_crc:#010x}): the header is damaged or was never completed"
                ),
            ));
        }
        let expected_len = header_len.checked_add(compressed_bytes);
        if expected_len != Some(file_len_bytes) {
            let compressed_offset = header_crc_offset - 16;
            return Err(corrupt(
                compressed_offset.min(file_len_bytes),
                format!(
                    "file is {file_len_bytes} bytes but the header declares {header_len} header bytes \
                     plus {compressed_bytes} compressed bytes: truncated or extended"
                ),
            ));
        }
        Ok(Header {
            index,
            term,
            membership,
            uncompressed_bytes,
            compressed_bytes,
            checksum,
            stream_checksum,
        })
    }
}

fn read_header_bytes(
    source: &mut impl Read,
    buf: &mut [u8],
    path: &Path,
    offset: u64,
) -> Result<()> {
    source.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corruption(path, offset, None, "file ends inside the snapshot header")
        } else {
            Error::io("read snapshot header", path, e)
        }
    })
}

/// `snap-{index:020}-{term:020}.snap`: zero-padded so names sort like (index, term).
pub(crate) fn file_name(index: u64, term: u64) -> String {
    format!("snap-{index:020}-{term:020}.snap")
}

/// The path of the finished snapshot `(index, term)` in `dir`.
pub(crate) fn file_path(dir: &Path, index: u64, term: u64) -> PathBuf {
    dir.join(file_name(index, term))
}

/// `(index, term)` from a finished snapshot's file name, or `None` if the name is not one.
pub(crate) fn parse_file_name(name: &str) -> Option<(u64, u64)> {
    let digits = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (index, term) = digits.split_once('-')?;
    let all_digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(index) || !all_digits(term) {
        return None;
    }
    Some((index.parse().ok()?, term.parse().ok()?))
}

/// True for names this module uses for snapshots being written or received.
pub(crate) fn is_temp_file_name(name: &str) -> bool {
    name.starts_with("snap-") && name.ends_with(".snap.tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            index: 42,
            term: 7,
            membership: b"voters=1,2,3".to_vec(),
            uncompressed_bytes: 1000,
            compressed_bytes: 5,
            checksum: 0xdead_beef,
            stream_checksum: 0x0bad_cafe,
        }
    }

    fn file_of(header: &Header) -> Vec<u8> {
        let mut bytes = header.encode();
        bytes.extend_from_slice(&vec![0xAA; header.compressed_bytes as usize]);
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Header> {
        Header::decode(&mut &bytes[..], bytes.len() as u64, Path::new("x.snap"))
    }

    #[test]
    fn header_round_trips_and_has_the_documented_length() {
        let header = sample();
        let bytes = file_of(&header);
        assert_eq!(header.encode().len(), 36 + 12 + 28);
        assert_eq!(decode(&bytes).unwrap(), header);
    }

    #[test]
    fn every_single_byte_change_in_the_header_is_caught() {
        let header = sample();
        let clean = file_of(&header);
        for offset in 0..header.len_bytes() as usize {
            for bit in 0..8 {
                let mut damaged = clean.clone();
                damaged[offset] ^= 1 << bit;
                let err = decode(&damaged).expect_err("a flipped header bit must be detected");
                assert!(err.is_corruption(), "offset {offset}: {err}");
            }
        }
    }

    #[test]
    fn truncated_and_extended_files_are_corrupt() {
        let clean = file_of(&sample());
        for len in 0..clean.len() {
            let err = decode(&clean[..len]).expect_err("truncation must be detected");
            assert!(err.is_corruption(), "len {len}: {err}");
        }
        let mut extended = clean.clone();
        extended.push(0);
        assert!(decode(&extended).unwrap_err().is_corruption());
    }

    #[test]
    fn huge_membership_length_is_rejected_before_allocating() {
        let mut bytes = file_of(&sample());
        LittleEndian::write_u32(&mut bytes[32..36], u32::MAX);
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(err, Error::Corruption { offset: 32, .. }), "{err}");
        LittleEndian::write_u32(&mut bytes[32..36], MEMBERSHIP_MAX_BYTES);
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(err, Error::Corruption { offset: 32, .. }), "{err}");
    }

    #[test]
    fn file_names_round_trip_and_reject_lookalikes() {
        assert_eq!(
            file_name(5, 2),
            "snap-00000000000000000005-00000000000000000002.snap"
        );
        assert_eq!(
            parse_file_name(&file_name(u64::MAX, 3)),
            Some((u64::MAX, 3))
        );
        for name in [
            "snap-5-2.snap",
            "snap-00000000000000000005-00000000000000000002.snap.tmp",
            "snap-0000000000000000000a-00000000000000000002.snap",
            "snap-99999999999999999999-00000000000000000002.snap",
            "00000000000000000001.wal",
        ] {
            assert_eq!(parse_file_name(name), None, "{name}");
        }
        assert!(is_temp_file_name("snap-recv-1-2.snap.tmp"));
        assert!(!is_temp_file_name("x.snap.tmp"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_magic_never_panic(
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..200)
        ) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend(tail);
            let _ = decode(&bytes);
        }
    }
}
