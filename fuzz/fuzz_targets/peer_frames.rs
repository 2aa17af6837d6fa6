//! Peer input: arbitrary bytes through the frame decoder and the message decoders.
//!
//! A peer connection carries frames (`ketch::wire::frame`) whose payloads are a handshake or
//! a Raft message (`ketch::wire::message`). Random bytes rarely pass the frame checksum, so
//! the input's first byte picks what is fuzzed:
//! - even: the rest is a byte stream fed to a `FrameDecoder` in chunks whose sizes come from
//!   the input (exercising partial headers and payloads); every frame that comes out is
//!   decoded;
//! - odd: the rest is a payload, decoded directly and also wrapped in a valid frame and sent
//!   through the decoder.
//!
//! Checked: no panic, no hang, the decoder's buffer stays within its bound, and every message
//! that decodes re-encodes to a payload that decodes to the same message.
#![no_main]

use ketch::wire::message::{
    decode_challenge, decode_handshake, decode_message, decode_proof, encode_message_payload,
};
use ketch::wire::{encode_frame, FrameDecoder};
use libfuzzer_sys::fuzz_target;

const MAX_PAYLOAD_BYTES: u32 = 1 << 16;

fn decode_payload(kind: u8, payload: &[u8]) {
    let _ = kind;
    let _ = decode_handshake(payload);
    let _ = decode_challenge(payload);
    let _ = decode_proof(payload);
    if let Ok(message) = decode_message(payload) {
        let mut again = Vec::new();
        encode_message_payload(&message, &mut again);
        let round_trip = decode_message(&again).expect("a re-encoded message decodes");
        assert_eq!(round_trip, message, "decode(encode(m)) == m");
    }
}

fn stream(decoder: &mut FrameDecoder, mut bytes: &[u8], chunk_sizes: &[u8]) {
    let mut sizes = chunk_sizes.iter().cycle();
    // Each round takes at least one byte or drains a frame, so this ends.
    while !bytes.is_empty() {
        let want = usize::from(*sizes.next().unwrap_or(&255)).max(1);
        let taken = decoder.feed(&bytes[..want.min(bytes.len())]);
        assert!(decoder.buffered_bytes() <= decoder.capacity_bytes());
        bytes = &bytes[taken..];
        loop {
            match decoder.next_frame() {
                Ok(Some((kind, payload))) => decode_payload(kind, &payload),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if taken == 0 && decoder.buffered_bytes() == decoder.capacity_bytes() {
            panic!("decoder full without a frame or an error");
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut decoder = FrameDecoder::new(MAX_PAYLOAD_BYTES);
    if mode % 2 == 0 {
        let split = rest.len().min(usize::from(mode >> 1));
        let (sizes, bytes) = rest.split_at(split);
        stream(
            &mut decoder,
            bytes,
            if sizes.is_empty() { &[7] } else { sizes },
        );
    } else {
        decode_payload(mode >> 1, rest);
        let mut framed = Vec::new();
        if encode_frame(2, rest, &mut framed).is_ok() {
            stream(&mut decoder, &framed, &[mode]);
        }
    }
});
