//! Query batch version 2: read commands as words, and key revisions for `WATCH` (see the
//! format table in [`super`]).

use super::{
    put_bytes, BatchBuffer, Cursor, DecodeError, ARGV_WORDS_MAX, FORMAT_VERSION,
    QUERIES_PER_BATCH_MAX,
};

const KIND_COMMAND: u8 = 1;
const KIND_REVISIONS: u8 = 2;
const KIND_KEYSPACE: u8 = 3;

/// A read query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query<'a> {
    /// A read command: its words, name first.
    Command(Vec<&'a [u8]>),
    /// The revision of each key (for `WATCH`).
    Revisions(Vec<&'a [u8]>),
    /// The number of keys and of keys with a deadline (for `INFO keyspace`).
    KeyspaceCounts,
}

/// A decoded query batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryBatch<'a> {
    /// The serving node's clock, in ms since the Unix epoch.
    pub clock_ms: u64,
    /// The queries, at least one.
    pub queries: Vec<Query<'a>>,
}

impl Query<'_> {
    /// The bytes [`QueryBatchEncoder::push`] adds for this query.
    pub fn encoded_bytes(&self) -> usize {
        match self {
            Query::Command(words) | Query::Revisions(words) => {
                1 + 4 + words.iter().map(|w| 4 + w.len()).sum::<usize>()
            }
            Query::KeyspaceCounts => 1,
        }
    }
}

impl<'a> QueryBatch<'a> {
    /// Decodes a query batch.
    pub fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(input, "query batch");
        cursor.version(FORMAT_VERSION)?;
        let clock_ms = cursor.u64("clock_ms")?;
        // A keyspace query is one byte.
        let count = cursor.count("query count", 1)?;
        if count > QUERIES_PER_BATCH_MAX as usize {
            return Err(cursor.error("query count", format!("{count} queries, above the limit")));
        }
        let mut queries = Vec::with_capacity(count);
        for _ in 0..count {
            let kind = cursor.u8("kind")?;
            if kind == KIND_KEYSPACE {
                queries.push(Query::KeyspaceCounts);
                continue;
            }
            if kind != KIND_COMMAND && kind != KIND_REVISIONS {
                cursor.at -= 1;
                return Err(cursor.error("kind", format!("unknown kind {kind}")));
            }
            let words = cursor.keys("words")?;
            if words.len() > ARGV_WORDS_MAX as usize {
                return Err(cursor.error("words", "too many words"));
            }
            queries.push(if kind == KIND_COMMAND {
                Query::Command(words)
            } else {
                Query::Revisions(words)
            });
        }
        cursor.finish()?;
        Ok(QueryBatch { clock_ms, queries })
    }
}

/// Builds a query batch incrementally.
#[derive(Debug)]
pub struct QueryBatchEncoder {
    batch: BatchBuffer,
}

impl QueryBatchEncoder {
    /// An empty batch carrying the serving node's clock.
    pub fn new(clock_ms: u64) -> Self {
        QueryBatchEncoder {
            batch: BatchBuffer::new(
                FORMAT_VERSION,
                clock_ms,
                QUERIES_PER_BATCH_MAX,
                "query batch",
            ),
        }
    }

    /// Queries so far.
    pub fn len(&self) -> u32 {
        self.batch.len()
    }

    /// True if no query was added.
    pub fn is_empty(&self) -> bool {
        self.batch.len() == 0
    }

    /// Encoded bytes so far.
    pub fn encoded_bytes(&self) -> usize {
        self.batch.encoded_bytes()
    }

    /// Appends a query.
    pub fn push(&mut self, query: &Query<'_>) {
        let out = self.batch.item();
        let (kind, words) = match query {
            Query::Command(words) => (KIND_COMMAND, words),
            Query::Revisions(words) => (KIND_REVISIONS, words),
            Query::KeyspaceCounts => {
                out.push(KIND_KEYSPACE);
                return;
            }
        };
        assert!(!words.is_empty(), "a query has at least one word");
        out.push(kind);
        out.extend_from_slice(&(words.len() as u32).to_le_bytes());
        for word in words {
            put_bytes(out, word);
        }
    }

    /// The encoded batch (at least one query must have been pushed).
    pub fn finish(self) -> Vec<u8> {
        self.batch.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn query_batches_round_trip(
            clock_ms in any::<u64>(),
            queries in proptest::collection::vec(
                (0..3u8, proptest::collection::vec(
                    proptest::collection::vec(any::<u8>(), 0..8), 1..4)),
                1..5),
        ) {
            let queries: Vec<Query<'_>> = queries
                .iter()
                .map(|(kind, words)| {
                    let words = words.iter().map(|w| &w[..]).collect();
                    match kind {
                        0 => Query::Command(words),
                        1 => Query::Revisions(words),
                        _ => Query::KeyspaceCounts,
                    }
                })
                .collect();
            let mut encoder = QueryBatchEncoder::new(clock_ms);
            for query in &queries {
                encoder.push(query);
            }
            prop_assert_eq!(
                13 + queries.iter().map(Query::encoded_bytes).sum::<usize>(),
                encoder.encoded_bytes()
            );
            let bytes = encoder.finish();
            let batch = QueryBatch::decode(&bytes).unwrap();
            prop_assert_eq!(batch.clock_ms, clock_ms);
            prop_assert_eq!(batch.queries, queries);
            for cut in 0..bytes.len() {
                prop_assert!(QueryBatch::decode(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn the_decoder_never_panics(input in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = QueryBatch::decode(&input);
        }
    }

    #[test]
    fn a_forged_count_is_refused_before_allocating() {
        let mut forged = vec![FORMAT_VERSION];
        forged.extend_from_slice(&5u64.to_le_bytes());
        forged.extend_from_slice(&u32::MAX.to_le_bytes());
        let error = QueryBatch::decode(&forged).unwrap_err();
        assert_eq!((error.field, error.offset), ("query count", 13));
        // Version 1 query batches are no longer read.
        assert_eq!(
            QueryBatch::decode(&[1, 1, 0, 0, 0, 4]).unwrap_err().field,
            "version"
        );
    }
}
