//! Peer input: arbitrary bytes through the frame decoder and the message decoders.
//!
//! A peer connection carries frames (`ketch::wire::frame`) whose payloads are a handshake, its
//! challenge and proof, a Raft message, a batch of Raft messages, a forward or a host beat
//! (`ketch::wire::message`). Random bytes rarely pass the frame checksum, so the input's
//! first byte picks what is fuzzed:
//! - even: the rest is a byte stream fed to a `FrameDecoder` in chunks whose sizes come from
//!   the input (exercising partial headers and payloads); every frame that comes out is
//!   decoded;
//! - odd: the rest is a payload, decoded directly and also wrapped in a valid frame and sent
//!   through the decoder.
//!
//! Checked: no panic, no hang, the decoder's buffer stays within its bound, and every message,
//! batch, forward and host beat that decodes re-encodes to a payload that decodes to the same
//! value.
#![no_main]

use ketch::wire::frame::HEADER_BYTES;
use ketch::wire::message::{
    decode_challenge, decode_forward, decode_handshake, decode_host_beat, decode_message,
    decode_proof, decode_raft_batch, encode_forward, encode_host_beat, encode_message_payload,
    encode_raft_batch_payload, FRAME_KIND_FORWARD, FRAME_KIND_HOST_BEAT,
};
use ketch::wire::{encode_frame, FrameDecoder};
use libfuzzer_sys::fuzz_target;

const MAX_PAYLOAD_BYTES: u32 = 1 << 16;

fn decode_payload(kind: u8, payload: &[u8]) {
    let _ = kind;
    let _ = decode_handshake(payload);
    let _ = decode_challenge(payload);
    let _ = decode_proof(payload);
    if let Ok((group, message)) = decode_message(payload) {
        let mut again = Vec::new();
        encode_message_payload(group, &message, &mut again);
        let round_trip = decode_message(&again).expect("a re-encoded message decodes");
        assert_eq!(round_trip, (group, message), "decode(encode(m)) == m");
    }
    if let Ok(batch) = decode_raft_batch(payload) {
        let mut again = Vec::new();
        encode_raft_batch_payload(&batch, &mut again);
        let round_trip = decode_raft_batch(&again).expect("a re-encoded batch decodes");
        assert_eq!(round_trip, batch, "decode(encode(batch)) == batch");
    }
    if let Ok(forward) = decode_forward(payload) {
        let mut frame = Vec::new();
        encode_forward(&forward, &mut Vec::new(), &mut frame).expect("a decoded forward frames");
        let (header, again) = frame.split_at(HEADER_BYTES);
        assert_eq!(header[3], FRAME_KIND_FORWARD);
        assert_eq!(decode_forward(again), Ok(forward), "decode(encode(f)) == f");
    }
    if let Ok(beat) = decode_host_beat(payload) {
        let mut frame = Vec::new();
        encode_host_beat(&beat, &mut frame).expect("a host beat frames");
        assert_eq!(frame[3], FRAME_KIND_HOST_BEAT);
        assert_eq!(decode_host_beat(&frame[HEADER_BYTES..]), Ok(beat));
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
