//! Redis Cluster's hash slots: which of the [`SLOT_COUNT`] slots a key belongs to.
//!
//! # The rule (Redis Cluster specification, "Keys distribution model")
//!
//! `slot = CRC16(h) mod 16384`, where CRC16 is CRC-16/XMODEM (polynomial `0x1021`, initial
//! value 0, no reflection, no final xor) and `h` is the key's **hash tag** if it has one,
//! else the whole key. The hash tag is the bytes between the first `{` and the first `}`
//! after it, when there is at least one byte between them:
//!
//! | key                     | hashed        |
//! |-------------------------|---------------|
//! | `foo`                   | `foo`         |
//! | `{user1000}.following`  | `user1000`    |
//! | `foo{}{bar}`            | the whole key (the first tag is empty) |
//! | `foo{{bar}}zap`         | `{bar`        |
//! | `foo{bar}{zap}`         | `bar`         |
//! | `{bar`                  | the whole key (no `}` after the `{`) |
//!
//! Keys that share a hash tag share a slot, which is how a client keeps the keys of one
//! multi-key command together.

use crc::{Crc, CRC_16_XMODEM};

/// Slots in a Redis Cluster keyspace.
pub const SLOT_COUNT: u16 = 16_384;

/// The highest slot.
pub const SLOT_MAX: u16 = SLOT_COUNT - 1;

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// The bytes of `key` that decide its slot: its hash tag, or the whole key (module docs).
pub fn hashed_part(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let after = &key[open + 1..];
    match after.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &after[..close],
        _ => key,
    }
}

/// The slot of `key` (module docs).
pub fn key_slot(key: &[u8]) -> u16 {
    // 16384 is a power of two: Redis masks with 0x3FFF, the same as `% SLOT_COUNT`.
    let slot = CRC16.checksum(hashed_part(key)) % SLOT_COUNT;
    debug_assert!(slot <= SLOT_MAX);
    slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_gives() {
        // `CLUSTER KEYSLOT` of redis-server 7.0.15.
        for (key, slot) in [
            (&b"foo"[..], 12182),
            (b"bar", 5061),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"{bar", 4015),
            (b"{}", 15257),
            (b"a{b}c{d}", 3300),
            (b"", 0),
        ] {
            assert_eq!(key_slot(key), slot, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn hash_tags_follow_the_first_brace() {
        assert_eq!(hashed_part(b"{user1000}.following"), b"user1000");
        assert_eq!(hashed_part(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hashed_part(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hashed_part(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hashed_part(b"{bar"), b"{bar");
        assert_eq!(hashed_part(b"bar}"), b"bar}");
        assert_eq!(key_slot(b"x{tag}y"), key_slot(b"tag"));
    }

    #[test]
    fn the_checksum_is_xmodem() {
        // The catalogue's check value: CRC-16/XMODEM of "123456789".
        assert_eq!(CRC16.checksum(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"123456789"), 0x31c3 % SLOT_COUNT);
    }
}
