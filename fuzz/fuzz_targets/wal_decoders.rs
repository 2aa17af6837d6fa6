//! Feeds arbitrary bytes to the record, header, footer and trailer decoders: errors, never panics.
#![no_main]

use ketch_storage::record;
use ketch_storage::segment::{self, Footer, SegmentHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let seq = data.first().copied().unwrap_or(0) as u64;
    if let Ok(frame) = record::decode_frame(seq, data) {
        assert!(frame.total_bytes <= data.len());
        let _ = record::parse_entry(frame.payload);
        let _ = record::parse_commit(frame.payload);
        let _ = Footer::decode(frame.payload);
    }
    let _ = SegmentHeader::decode(std::path::Path::new("fuzz"), data);
    let _ = segment::decode_trailer(seq, &data[..data.len().min(24)]);
    let _ = Footer::decode(data);
});
