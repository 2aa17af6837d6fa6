//! Glob-style pattern matching with the semantics of Redis' `stringmatchlen` (used by `KEYS`,
//! `SCAN MATCH`, `CONFIG GET` and `COMMAND LIST FILTERBY PATTERN`):
//!
//! | pattern   | matches                                                            |
//! |-----------|--------------------------------------------------------------------|
//! | `*`       | any run of bytes, including none                                   |
//! | `?`       | exactly one byte                                                   |
//! | `[abc]`   | one byte of the set; `[^abc]` one byte not in it; `[a-z]` a range (reversed bounds are swapped); `\` escapes inside |
//! | `\x`      | the byte `x` itself (a trailing lone `\` is itself)                |
//! | other     | itself (ASCII case-folded when `nocase`)                           |
//!
//! As in Redis, a `[` without its `]` takes the rest of the pattern as the set, and `[]` is
//! an empty set (it matches nothing; `[^]` matches any byte).
//!
//! Redis matches recursively and caps the work with a nesting limit; this matcher backtracks
//! only to the last `*` seen (the classic two-pointer algorithm), which gives the same answer
//! in O(pattern × subject) steps and no recursion, so no input can make it slow or deep.

/// One element of a pattern: what a single position matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Star,
    AnyByte,
    Byte(u8),
    /// A `[...]` set: the bytes between the brackets (after `^`) and whether it is negated.
    Class {
        start: usize,
        end: usize,
        negated: bool,
    },
}

/// Whether `subject` matches the glob `pattern` (module docs). `nocase` folds ASCII case.
pub fn glob_match(pattern: &[u8], subject: &[u8], nocase: bool) -> bool {
    let mut p = 0; // pattern position
    let mut s = 0; // subject position
                   // Where to resume after the last `*`: the pattern just past it, the subject byte it
                   // would swallow next.
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            let (token, next_p) = token_at(pattern, p);
            match token {
                Token::Star => {
                    backtrack = Some((next_p, s));
                    p = next_p;
                    continue;
                }
                _ if s < subject.len() && token_matches(pattern, token, subject[s], nocase) => {
                    p = next_p;
                    s += 1;
                    continue;
                }
                _ => {}
            }
        } else if s == subject.len() {
            return true;
        }
        // Mismatch: let the last star swallow one more byte, if there is one to swallow.
        match backtrack {
            Some((star_p, star_s)) if star_s < subject.len() => {
                backtrack = Some((star_p, star_s + 1));
                p = star_p;
                s = star_s + 1;
            }
            _ => return false,
        }
    }
}

/// The token starting at `pattern[at]` and the position after it.
fn token_at(pattern: &[u8], at: usize) -> (Token, usize) {
    match pattern[at] {
        b'*' => (Token::Star, at + 1),
        b'?' => (Token::AnyByte, at + 1),
        b'\\' if at + 1 < pattern.len() => (Token::Byte(pattern[at + 1]), at + 2),
        b'[' => {
            let mut start = at + 1;
            let negated = pattern.get(start) == Some(&b'^');
            if negated {
                start += 1;
            }
            let mut i = start;
            while i < pattern.len() {
                match pattern[i] {
                    b'\\' if i + 1 < pattern.len() => i += 2,
                    b']' => {
                        return (
                            Token::Class {
                                start,
                                end: i,
                                negated,
                            },
                            i + 1,
                        )
                    }
                    _ => i += 1,
                }
            }
            // Unterminated: the rest of the pattern is the set (Redis does the same).
            let end = pattern.len();
            (
                Token::Class {
                    start: start.min(end),
                    end,
                    negated,
                },
                end,
            )
        }
        byte => (Token::Byte(byte), at + 1),
    }
}

fn fold(byte: u8, nocase: bool) -> u8 {
    if nocase {
        byte.to_ascii_lowercase()
    } else {
        byte
    }
}

fn token_matches(pattern: &[u8], token: Token, byte: u8, nocase: bool) -> bool {
    match token {
        Token::Star => true,
        Token::AnyByte => true,
        Token::Byte(expected) => fold(expected, nocase) == fold(byte, nocase),
        Token::Class {
            start,
            end,
            negated,
        } => class_matches(&pattern[start..end], byte, nocase) != negated,
    }
}

/// Whether `byte` is in the set `class` (the bytes between `[` (or `[^`) and `]`).
fn class_matches(class: &[u8], byte: u8, nocase: bool) -> bool {
    let byte = fold(byte, nocase);
    let mut i = 0;
    while i < class.len() {
        if class[i] == b'\\' && i + 1 < class.len() {
            if fold(class[i + 1], nocase) == byte {
                return true;
            }
            i += 2;
        } else if i + 2 < class.len() && class[i + 1] == b'-' {
            let (mut low, mut high) = (fold(class[i], nocase), fold(class[i + 2], nocase));
            if low > high {
                std::mem::swap(&mut low, &mut high);
            }
            if (low..=high).contains(&byte) {
                return true;
            }
            i += 3;
        } else {
            if fold(class[i], nocase) == byte {
                return true;
            }
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(pattern: &str, subject: &str) -> bool {
        glob_match(pattern.as_bytes(), subject.as_bytes(), false)
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("*max*", "maxmemory"));
        assert!(m("*max*", "proto-max-bulk-len"));
        assert!(!m("*max*", "save"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("**a", "a"));
        assert!(!m("", "a"));
        assert!(m("", ""));
    }

    #[test]
    fn classes_like_redis() {
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed bounds are swapped");
        assert!(m("[\\]]", "]"));
        assert!(!m("[]", "a"), "an empty set matches nothing");
        assert!(m("[^]", "a"));
        assert!(m("a[bc", "ac"), "an unterminated set runs to the end");
        assert!(m("a[-]", "a-"));
    }

    #[test]
    fn escapes_and_case() {
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("a\\", "a\\"), "a trailing backslash is itself");
        assert!(!m("ABC", "abc"));
        assert!(glob_match(b"ABC", b"abc", true));
        assert!(glob_match(b"[A-C]x", b"bX", true));
    }

    /// A plain recursive matcher, the shape of Redis' own, as the reference.
    fn reference(pattern: &[u8], subject: &[u8]) -> bool {
        if pattern.is_empty() {
            return subject.is_empty();
        }
        let (token, next) = token_at(pattern, 0);
        match token {
            Token::Star => (0..=subject.len()).any(|k| reference(&pattern[next..], &subject[k..])),
            _ => {
                !subject.is_empty()
                    && token_matches(pattern, token, subject[0], false)
                    && reference(&pattern[next..], &subject[1..])
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_recursive_definition(
            pattern in proptest::collection::vec(prop::sample::select(b"ab*?[]^-\\".to_vec()), 0..10),
            subject in proptest::collection::vec(prop::sample::select(b"ab-]".to_vec()), 0..10),
        ) {
            prop_assert_eq!(glob_match(&pattern, &subject, false), reference(&pattern, &subject));
        }
    }
}
