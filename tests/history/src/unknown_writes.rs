//! What the reads of a key reveal about its writes of unknown outcome: which reads saw their
//! bytes, and whether those bytes could have come from anything else.
//!
//! The rules these facts feed are argued in `checker.rs` (`key_operations`). Here is only the
//! search for them, indexed so that it costs about the total size of the values on the key
//! rather than (unknown writes) x (reads): every value is scanned once per distinct length of
//! an unknown write's value, with a hash lookup per window.

use std::collections::{BTreeSet, HashMap};

/// One write of unknown outcome, as input.
pub(crate) struct UnknownWrite<'h> {
    /// Identifies the write among all writes of the key (its history index).
    pub(crate) writer: usize,
    pub(crate) value: &'h [u8],
}

/// What the key's other operations say about one unknown write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Evidence {
    /// Earliest and latest return among the reads whose value contains the write's bytes.
    pub(crate) seen_returns: Option<(u64, u64)>,
    /// Whether a value containing the write's bytes proves the write applied: its bytes are
    /// not empty, no other write's value contains them, and no other write's value ends with
    /// a proper prefix of them (which an occurrence spanning two writes' bytes would need).
    pub(crate) is_token: bool,
}

/// Gathers the [`Evidence`] for each of `unknown`, given the observed values of the key's
/// reads with their return times, and the values of all its writes (unknown ones included)
/// with their writer ids.
pub(crate) fn gather_evidence(
    unknown: &[UnknownWrite<'_>],
    reads: &[(&[u8], u64)],
    writes: &[(usize, &[u8])],
) -> Vec<Evidence> {
    let mut evidence: Vec<Evidence> = unknown
        .iter()
        .map(|write| Evidence {
            seen_returns: None,
            is_token: !write.value.is_empty(),
        })
        .collect();
    let mut by_value: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let mut by_proper_prefix: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let mut lengths = BTreeSet::new();
    for (id, write) in unknown.iter().enumerate() {
        by_value.entry(write.value).or_default().push(id);
        lengths.insert(write.value.len());
        for prefix_len in 1..write.value.len() {
            by_proper_prefix
                .entry(&write.value[..prefix_len])
                .or_default()
                .push(id);
        }
    }

    // Which reads saw which unknown write's bytes. A read counts once per write however many
    // times the bytes occur in its value.
    let mut last_read_seen: Vec<Option<usize>> = vec![None; unknown.len()];
    for (read, &(value, returned)) in reads.iter().enumerate() {
        for_each_occurrence(value, &lengths, &by_value, |id| {
            if last_read_seen[id] == Some(read) {
                return;
            }
            last_read_seen[id] = Some(read);
            let seen = &mut evidence[id].seen_returns;
            *seen = Some(match *seen {
                None => (returned, returned),
                Some((first, last)) => (first.min(returned), last.max(returned)),
            });
        });
    }

    // Which unknown writes' bytes another write could also produce.
    for &(writer, value) in writes {
        for_each_occurrence(value, &lengths, &by_value, |id| {
            if unknown[id].writer != writer {
                evidence[id].is_token = false;
            }
        });
        let longest_prefix = value.len().min(lengths.last().copied().unwrap_or(0));
        for suffix_len in 1..=longest_prefix {
            let suffix = &value[value.len() - suffix_len..];
            for &id in by_proper_prefix.get(suffix).into_iter().flatten() {
                if unknown[id].writer != writer {
                    evidence[id].is_token = false;
                }
            }
        }
    }
    evidence
}

/// Calls `found` with each pattern id occurring in `text`, once per occurrence. The empty
/// pattern occurs once in every text.
fn for_each_occurrence(
    text: &[u8],
    lengths: &BTreeSet<usize>,
    by_value: &HashMap<&[u8], Vec<usize>>,
    mut found: impl FnMut(usize),
) {
    for &len in lengths.iter().take_while(|&&len| len <= text.len()) {
        if len == 0 {
            by_value
                .get(&b""[..])
                .into_iter()
                .flatten()
                .for_each(|&id| found(id));
            continue;
        }
        for window in text.windows(len) {
            for &id in by_value.get(window).into_iter().flatten() {
                found(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        needle.is_empty()
            || haystack
                .windows(needle.len())
                .any(|window| window == needle)
    }

    /// The definition, pair by pair.
    fn naive(
        unknown: &[UnknownWrite<'_>],
        reads: &[(&[u8], u64)],
        writes: &[(usize, &[u8])],
    ) -> Vec<Evidence> {
        unknown
            .iter()
            .map(|write| {
                let seen: Vec<u64> = reads
                    .iter()
                    .filter(|(value, _)| contains(value, write.value))
                    .map(|&(_, returned)| returned)
                    .collect();
                let seen_returns = seen
                    .iter()
                    .min()
                    .map(|&first| (first, *seen.iter().max().expect("non-empty")));
                let is_token = !write.value.is_empty()
                    && writes
                        .iter()
                        .filter(|&&(writer, _)| writer != write.writer)
                        .all(|&(_, value)| {
                            !contains(value, write.value)
                                && (1..write.value.len())
                                    .all(|len| !value.ends_with(&write.value[..len]))
                        });
                Evidence {
                    seen_returns,
                    is_token,
                }
            })
            .collect()
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(0u8..3, 0..5)
    }

    proptest! {
        #[test]
        fn indexed_search_matches_the_definition(
            write_values in prop::collection::vec(value(), 1..8),
            unknown_mask in prop::collection::vec(any::<bool>(), 8),
            read_values in prop::collection::vec((prop::collection::vec(0u8..3, 0..12), 0u64..100), 0..8),
        ) {
            let writes: Vec<(usize, &[u8])> =
                write_values.iter().enumerate().map(|(i, v)| (i, v.as_slice())).collect();
            let unknown: Vec<UnknownWrite<'_>> = writes
                .iter()
                .filter(|(i, _)| unknown_mask[*i])
                .map(|&(writer, value)| UnknownWrite { writer, value })
                .collect();
            let reads: Vec<(&[u8], u64)> =
                read_values.iter().map(|(v, ret)| (v.as_slice(), *ret)).collect();
            prop_assert_eq!(
                gather_evidence(&unknown, &reads, &writes),
                naive(&unknown, &reads, &writes)
            );
        }
    }

    #[test]
    fn straddling_and_containing_values_are_not_tokens() {
        let writes: Vec<(usize, &[u8])> = vec![(0, b"ab"), (1, b"xa"), (2, b"<1>"), (3, b"<11>")];
        let unknown = [
            UnknownWrite {
                writer: 0,
                value: b"ab",
            },
            UnknownWrite {
                writer: 2,
                value: b"<1>",
            },
            UnknownWrite {
                writer: 3,
                value: b"<11>",
            },
        ];
        let reads: Vec<(&[u8], u64)> = vec![(b"xab", 5), (b"<1><11>", 9), (b"<11>", 3)];
        let evidence = gather_evidence(&unknown, &reads, &writes);
        // "xa" ends with "a", a proper prefix of "ab".
        assert!(!evidence[0].is_token);
        assert_eq!(evidence[0].seen_returns, Some((5, 5)));
        assert!(evidence[1].is_token);
        assert_eq!(evidence[1].seen_returns, Some((9, 9)));
        assert!(evidence[2].is_token);
        assert_eq!(evidence[2].seen_returns, Some((3, 9)));
    }
}
