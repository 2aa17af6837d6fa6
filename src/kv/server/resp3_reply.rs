//! RESP3 replies from RESP2 ones: the state machine answers in RESP2 (its replies are in the
//! log's results and must not depend on who asked), and a connection that said `HELLO 3`
//! gets them converted here, by the shape its command's reply has in Redis 7
//! ([`ReplyShape`], from the command table).
//!
//! | shape          | RESP2 in                        | RESP3 out                         |
//! |----------------|---------------------------------|-----------------------------------|
//! | `Plain`        | anything                        | the same, with every `$-1` and `*-1` (also inside arrays, as `MGET` sends) as `_` |
//! | `MapFromPairs` | array of 2n elements            | map of n pairs (`HGETALL`)        |
//! | `Verbatim`     | bulk string                     | verbatim string `=…txt:…`         |
//!
//! No command served today replies with a RESP3 set or double (Redis 7.0's `INCRBYFLOAT` and
//! `HINCRBYFLOAT` stay bulk strings), so there are no such shapes yet.
//!
//! Errors, and a reply not of the shape's expected RESP2 type, convert as `Plain`: a command's
//! error or an unexpected reply is never lost. Replies whose first byte is `+`, `-` or `:`,
//! and non-nil bulk strings under `Plain`, are passed through without parsing.

use crate::kv::resp::{Frame, Limits, Protocol, ReplyParser};

/// How a command's RESP2 reply maps onto RESP3 (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReplyShape {
    /// Same types; nils become RESP3 nulls.
    Plain,
    /// A flat array of key-value pairs becomes a map.
    MapFromPairs,
    /// A bulk string becomes a `txt` verbatim string.
    Verbatim,
}

/// The RESP3 form of one complete RESP2 reply, by `shape` (module docs). `reply` comes from
/// the state machine; bytes that do not parse as one reply are passed on unchanged (and
/// flagged in debug builds), since guessing would be worse than a RESP2 answer.
pub(super) fn resp2_to_resp3(reply: &[u8], shape: ReplyShape) -> Vec<u8> {
    match (reply.first(), shape) {
        (Some(b'+' | b'-' | b':'), _) => return reply.to_vec(),
        (Some(b'$'), ReplyShape::Plain) if !reply.starts_with(b"$-1\r\n") => return reply.to_vec(),
        _ => {}
    }
    // The state machine's own output: no limit but the reply's length is needed.
    let parsed = match ReplyParser::new(Limits::unbounded()).parse(reply) {
        Ok(Some((parsed, consumed))) if consumed == reply.len() => parsed,
        other => {
            debug_assert!(false, "not one RESP2 reply: {other:?}");
            return reply.to_vec();
        }
    };
    let frame = Frame::from_resp2(parsed);
    let frame = match (shape, frame) {
        (ReplyShape::MapFromPairs, Frame::Array(items)) if items.len() % 2 == 0 => {
            let mut items = items.into_iter();
            let mut pairs = Vec::with_capacity(items.len() / 2);
            while let (Some(key), Some(value)) = (items.next(), items.next()) {
                pairs.push((key, value));
            }
            Frame::Map(pairs)
        }
        (ReplyShape::Verbatim, Frame::Bulk(text)) => Frame::Verbatim {
            format: *b"txt",
            text,
        },
        (_, frame) => frame,
    };
    frame.to_bytes(Protocol::Resp3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::resp::{Reply, Resp3Parser};
    use proptest::prelude::*;

    fn convert(reply: &[u8], shape: ReplyShape) -> Vec<u8> {
        resp2_to_resp3(reply, shape)
    }

    #[test]
    fn nils_become_nulls_everywhere() {
        assert_eq!(convert(b"$-1\r\n", ReplyShape::Plain), b"_\r\n");
        assert_eq!(convert(b"*-1\r\n", ReplyShape::Plain), b"_\r\n");
        assert_eq!(
            convert(b"*3\r\n$1\r\na\r\n$-1\r\n*1\r\n$-1\r\n", ReplyShape::Plain),
            b"*3\r\n$1\r\na\r\n_\r\n*1\r\n_\r\n"
        );
        for same in [
            &b"+OK\r\n"[..],
            b"-ERR x\r\n",
            b":5\r\n",
            b"$3\r\nabc\r\n",
            b"*0\r\n",
        ] {
            assert_eq!(convert(same, ReplyShape::Plain), same);
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(
            convert(
                b"*4\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\ng\r\n$-1\r\n",
                ReplyShape::MapFromPairs
            ),
            b"%2\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\ng\r\n_\r\n"
        );
        assert_eq!(convert(b"*0\r\n", ReplyShape::MapFromPairs), b"%0\r\n");
        // Odd: not pairs, so not a map; kept as an array.
        assert_eq!(
            convert(b"*1\r\n$1\r\nf\r\n", ReplyShape::MapFromPairs),
            b"*1\r\n$1\r\nf\r\n"
        );
        assert_eq!(
            convert(b"$5\r\na:1\r\n\r\n", ReplyShape::Verbatim),
            b"=9\r\ntxt:a:1\r\n\r\n"
        );
        assert_eq!(convert(b"$-1\r\n", ReplyShape::Verbatim), b"_\r\n");
        // A command's error keeps its text whatever the shape.
        assert_eq!(
            convert(b"-WRONGTYPE x\r\n", ReplyShape::MapFromPairs),
            b"-WRONGTYPE x\r\n"
        );
    }

    fn resp2_reply() -> impl Strategy<Value = Reply> {
        let leaf = prop_oneof![
            "[a-zA-Z0-9 ]{0,8}".prop_map(Reply::Simple),
            "ERR [a-z ]{0,8}".prop_map(Reply::Error),
            any::<i64>().prop_map(Reply::Integer),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12))
                .prop_map(Reply::Bulk),
            Just(Reply::Array(None)),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            proptest::collection::vec(inner, 0..6).prop_map(|items| Reply::Array(Some(items)))
        })
    }

    proptest! {
        /// Any RESP2 reply converts, under every shape, to one valid RESP3 reply that the
        /// RESP3 parser reads back whole, that holds no RESP2 nil, and (for `Plain`) that
        /// is the input's own RESP3 encoding.
        #[test]
        fn resp2_in_valid_resp3_out(reply in resp2_reply(), shape_no in 0usize..3) {
            let shape = [
                ReplyShape::Plain,
                ReplyShape::MapFromPairs,
                ReplyShape::Verbatim,
            ][shape_no];
            let mut resp2 = Vec::new();
            reply.encode(&mut resp2);
            let resp3 = convert(&resp2, shape);
            let (frame, consumed) = Resp3Parser::new(Limits::default())
                .parse(&resp3)
                .expect("valid RESP3")
                .expect("complete");
            prop_assert_eq!(consumed, resp3.len());
            // Written back in RESP3 it is the same bytes: so no `$-1` / `*-1` was left
            // (they parse as nulls, which write as `_`).
            prop_assert_eq!(frame.to_bytes(Protocol::Resp3), resp3.clone());
            if shape == ReplyShape::Plain {
                prop_assert_eq!(Frame::from_resp2(reply).to_bytes(Protocol::Resp3), resp3);
            }
        }
    }
}
