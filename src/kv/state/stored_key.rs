//! [`StoredKey`]: a key's bytes as the keyspace stores them, short keys inline.
//!
//! A point operation finds the key's bucket by hash, then compares the key's bytes. Held in a
//! `Vec`, those bytes are one more pointer to chase, a likely cache miss per lookup (a profile
//! of the leader under `redis-benchmark -t get` put a twentieth of its time in that compare).
//! Keys of up to [`INLINE_BYTES`] bytes, which most keys are, live inside the bucket instead:
//! no chase, and no allocation of their own (about 30 bytes saved per key with its allocator
//! header). The type is as large as a `Vec` (24 bytes).

use std::ops::Deref;

/// Keys up to this long are stored inline.
pub const INLINE_BYTES: usize = 22;

/// A key's bytes: inline when short, else on the heap.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredKey {
    /// A short key.
    Inline {
        /// How many of `bytes` are the key's.
        len: u8,
        /// The key, then zeros.
        bytes: [u8; INLINE_BYTES],
    },
    /// A longer key.
    Heap(Box<[u8]>),
}

impl From<&[u8]> for StoredKey {
    fn from(key: &[u8]) -> Self {
        if key.len() <= INLINE_BYTES {
            let mut bytes = [0u8; INLINE_BYTES];
            bytes[..key.len()].copy_from_slice(key);
            StoredKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            StoredKey::Heap(key.into())
        }
    }
}

impl Deref for StoredKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            StoredKey::Inline { len, bytes } => &bytes[..*len as usize],
            StoredKey::Heap(bytes) => bytes,
        }
    }
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_inline_up_to_the_limit_and_on_the_heap_past_it() {
        assert_eq!(std::mem::size_of::<StoredKey>(), 24);
        for len in [0, 1, INLINE_BYTES - 1, INLINE_BYTES, INLINE_BYTES + 1, 300] {
            let key: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let stored = StoredKey::from(&key[..]);
            assert_eq!(&stored[..], &key[..], "length {len}");
            assert_eq!(
                matches!(stored, StoredKey::Inline { .. }),
                len <= INLINE_BYTES,
                "length {len}"
            );
        }
        // Equal bytes, equal keys, whatever the representation was built from.
        assert_eq!(
            StoredKey::from(&b"k"[..]),
            StoredKey::from(&b"k".to_vec()[..])
        );
        assert_ne!(StoredKey::from(&b"k"[..]), StoredKey::from(&b"k\0"[..]));
    }
}
