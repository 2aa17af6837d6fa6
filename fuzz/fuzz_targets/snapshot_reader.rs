//! Feeds arbitrary bytes to the snapshot reader: it must return the content or a clean error,
//! never panic or hang, and never allocate without bound.
//!
//! Input byte 0 picks the mode. Even: the rest is the whole file. Odd: the rest is a zstd stream
//! (after 12 bytes of header fields) wrapped in a header with valid magic and checksums, so the
//! fuzzer reaches the decompression and end-of-stream checks instead of stopping at the header
//! CRC. The header layout is documented in `ketch_storage::snapshot`.
#![no_main]

use std::io::Read;

use ketch_storage::snapshot::{verify_file, SnapshotReader};
use libfuzzer_sys::fuzz_target;

fn wrapped(fields_and_stream: &[u8]) -> Vec<u8> {
    let (fields, stream) = fields_and_stream.split_at(fields_and_stream.len().min(12));
    let mut fields = fields.to_vec();
    fields.resize(12, 0);
    let uncompressed = u64::from(u32::from_le_bytes(fields[0..4].try_into().unwrap()));
    let content_crc = u32::from_le_bytes(fields[4..8].try_into().unwrap());
    let mut file = Vec::with_capacity(64 + stream.len());
    file.extend_from_slice(b"KETCHSNP");
    file.extend_from_slice(&1u32.to_le_bytes()); // format version
    file.extend_from_slice(&1u32.to_le_bytes()); // zstd
    file.extend_from_slice(&7u64.to_le_bytes()); // index
    file.extend_from_slice(&2u64.to_le_bytes()); // term
    file.extend_from_slice(&0u32.to_le_bytes()); // membership length
    file.extend_from_slice(&uncompressed.to_le_bytes());
    file.extend_from_slice(&(stream.len() as u64).to_le_bytes());
    file.extend_from_slice(&content_crc.to_le_bytes());
    file.extend_from_slice(&crc32fast::hash(stream).to_le_bytes());
    let header_crc = crc32fast::hash(&file);
    file.extend_from_slice(&header_crc.to_le_bytes());
    file.extend_from_slice(stream);
    file
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        wrapped(rest)
    };
    let dir = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let path = dir
        .path()
        .join("snap-00000000000000000007-00000000000000000002.snap");
    std::fs::write(&path, &bytes).unwrap();
    if let Ok(mut reader) = SnapshotReader::open(&path) {
        // Bounded: the header caps what a valid stream may produce; stop reading well past it.
        let mut sink = Vec::new();
        let _ = reader.by_ref().take(64 << 20).read_to_end(&mut sink);
    }
    let _ = verify_file(&path);
});
