//! Client input to the RESP server and server input to the client: arbitrary bytes through
//! `ketch::kv::resp`'s request and reply parsers.
//!
//! Byte 0 picks the side (bit 0) and a small limit set (bit 1), and its high bits the chunk
//! size for incremental feeding. Checked besides "no panic, no hang":
//! - requests: feeding the input in chunks yields exactly the requests (and the error, if any)
//!   that parsing it whole does, and every request re-encodes to bytes that parse back to it;
//! - replies: a parsed reply (with well-formed status lines) re-encodes to bytes that parse
//!   back to the same reply.
#![no_main]

use ketch::kv::resp::{encode_request, Limits, Reply, ReplyParser, Request, RequestParser};
use libfuzzer_sys::fuzz_target;

/// Requests and the final error, parsing `input` as a server does: feed what arrived, drop
/// what was consumed, repeat. `chunk` bytes arrive at a time.
fn parse_requests(limits: Limits, input: &[u8], chunk: usize) -> (Vec<Request>, bool) {
    let mut parser = RequestParser::new(limits);
    let mut buffer: Vec<u8> = Vec::new();
    let mut requests = Vec::new();
    let mut arrived = 0;
    loop {
        let more = chunk.min(input.len() - arrived);
        buffer.extend_from_slice(&input[arrived..arrived + more]);
        arrived += more;
        // Each parse either consumes bytes, completes a request, or needs more input.
        loop {
            match parser.parse(&buffer) {
                Ok(parsed) => {
                    assert!(parsed.consumed <= buffer.len(), "consumed past the input");
                    buffer.drain(..parsed.consumed);
                    let progress = parsed.consumed > 0 || parsed.request.is_some();
                    if let Some(request) = parsed.request {
                        requests.push(request);
                    }
                    if !progress {
                        break;
                    }
                }
                Err(_) => return (requests, true),
            }
        }
        if arrived == input.len() {
            return (requests, false);
        }
    }
}

/// Whether every status line in `reply` is one an encoder can reproduce: a lone `\r` or a
/// byte that is not UTF-8 (replaced when decoded) cannot survive a round trip, and no server
/// sends them.
fn reproducible(reply: &Reply) -> bool {
    match reply {
        Reply::Simple(text) | Reply::Error(text) => {
            !text.contains(['\r', '\n', char::REPLACEMENT_CHARACTER])
        }
        Reply::Array(Some(items)) => items.iter().all(reproducible),
        _ => true,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let limits = if mode & 2 == 0 {
        Limits::default()
    } else {
        Limits {
            bulk_bytes_max: 16,
            array_items_max: 4,
            inline_bytes_max: 32,
            request_bytes_max: 40,
        }
    };
    if mode & 1 == 0 {
        let whole = parse_requests(limits, rest, rest.len().max(1));
        let chunk = usize::from(mode >> 2) + 1;
        let chunked = parse_requests(limits, rest, chunk);
        assert_eq!(whole, chunked, "chunked feeding changed the parse");
        for request in whole.0.iter().filter(|r| !r.is_empty()) {
            let mut encoded = Vec::new();
            encode_request(&mut encoded, request);
            // Default limits: an inline argument may be longer than the small bulk limit.
            let (again, failed) = parse_requests(Limits::default(), &encoded, encoded.len());
            assert!(!failed, "a parsed request re-encodes to valid RESP");
            assert_eq!(&again, &[request.clone()], "encode/parse round trip");
        }
    } else {
        let parser = ReplyParser::new(limits);
        let mut at = 0;
        while at < rest.len() {
            match parser.parse(&rest[at..]) {
                Ok(Some((reply, consumed))) => {
                    assert!(consumed > 0 && consumed <= rest.len() - at);
                    at += consumed;
                    if !reproducible(&reply) {
                        continue;
                    }
                    let mut encoded = Vec::new();
                    reply.encode(&mut encoded);
                    let again = parser.parse(&encoded).expect("a re-encoded reply parses");
                    assert_eq!(again, Some((reply, encoded.len())), "reply round trip");
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
});
