//! Redis' glob patterns (`stringmatchlen` in Redis' `util.c`), for `KEYS`, `SCAN ... MATCH`
//! and `CONFIG GET`: `*` any run of bytes, `?` any one byte, `[abc]`, `[^abc]`, `[a-z]`
//! classes (a reversed range `[z-a]` matches as `[a-z]`), `\x` the byte `x`. Matching is on
//! bytes, case sensitive unless asked otherwise.
//!
//! Like Redis 7, a `*` that failed to match the rest at some position stops the outer `*`s
//! from retrying longer matches, which keeps a pattern of many stars linear-ish instead of
//! exponential.

/// True if `text` matches `pattern`.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let mut skip_longer = false;
    match_from(pattern, text, false, &mut skip_longer, 0)
}

/// True if `text` matches `pattern`, ASCII case ignored.
pub fn glob_match_nocase(pattern: &[u8], text: &[u8]) -> bool {
    let mut skip_longer = false;
    match_from(pattern, text, true, &mut skip_longer, 0)
}

/// Redis' nesting bound on `*` recursion.
const NESTING_MAX: usize = 1000;

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

fn match_from(
    mut pattern: &[u8],
    mut text: &[u8],
    nocase: bool,
    skip_longer: &mut bool,
    nesting: usize,
) -> bool {
    if nesting > NESTING_MAX {
        return false;
    }
    while let Some(&p) = pattern.first() {
        match p {
            b'*' => {
                while pattern.len() > 1 && pattern[1] == b'*' {
                    pattern = &pattern[1..];
                }
                if pattern.len() == 1 {
                    return true;
                }
                for start in 0..=text.len() {
                    if match_from(
                        &pattern[1..],
                        &text[start..],
                        nocase,
                        skip_longer,
                        nesting + 1,
                    ) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                if text.is_empty() {
                    return false;
                }
                text = &text[1..];
            }
            b'[' => {
                let Some(&c) = text.first() else {
                    return false;
                };
                pattern = &pattern[1..];
                let negate = pattern.first() == Some(&b'^');
                if negate {
                    pattern = &pattern[1..];
                }
                let mut matched = false;
                loop {
                    match pattern {
                        [] => {
                            // Unterminated class: Redis treats the end as closing it.
                            break;
                        }
                        [b'\\', escaped, ..] => {
                            if eq(*escaped, c, nocase) {
                                matched = true;
                            }
                            pattern = &pattern[2..];
                        }
                        [b']', ..] => break,
                        [low, b'-', high, ..] => {
                            let (mut low, mut high) = (*low, *high);
                            if low > high {
                                std::mem::swap(&mut low, &mut high);
                            }
                            let c = if nocase { c.to_ascii_lowercase() } else { c };
                            let (low, high) = if nocase {
                                (low.to_ascii_lowercase(), high.to_ascii_lowercase())
                            } else {
                                (low, high)
                            };
                            if c >= low && c <= high {
                                matched = true;
                            }
                            pattern = &pattern[3..];
                        }
                        [single, ..] => {
                            if eq(*single, c, nocase) {
                                matched = true;
                            }
                            pattern = &pattern[1..];
                        }
                    }
                }
                if matched == negate {
                    return false;
                }
                text = &text[1..];
                if pattern.is_empty() {
                    // The class ran to the pattern's end: nothing left to match after it.
                    return text.is_empty();
                }
            }
            b'\\' if pattern.len() >= 2 => {
                pattern = &pattern[1..];
                match text.first() {
                    Some(&c) if eq(pattern[0], c, nocase) => text = &text[1..],
                    _ => return false,
                }
            }
            _ => match text.first() {
                Some(&c) if eq(p, c, nocase) => text = &text[1..],
                _ => return false,
            },
        }
        pattern = &pattern[1..];
        if text.is_empty() {
            while pattern.first() == Some(&b'*') {
                pattern = &pattern[1..];
            }
            break;
        }
    }
    pattern.is_empty() && text.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_redis() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h*llo", "hllo", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("user:*", "user:1000", true),
            ("user:*", "users", false),
            ("*:*:*", "a:b:c", true),
            ("*:*:*", "a:b", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("", "", true),
            ("", "a", false),
            ("abc", "abcd", false),
            ("[abc]", "b", true),
            ("k[0-9]", "k5", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                *expected,
                "{pattern:?} on {text:?}"
            );
        }
        assert!(glob_match_nocase(b"SAVE", b"save"));
        assert!(!glob_match(b"SAVE", b"save"));
    }

    #[test]
    fn many_stars_stay_fast() {
        let pattern = "a*".repeat(30) + "b";
        let text = "a".repeat(60);
        let start = std::time::Instant::now();
        assert!(!glob_match(pattern.as_bytes(), text.as_bytes()));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
