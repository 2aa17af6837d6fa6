//! A small JSON value and its serialisation, for `--json` and `--format json` output.
//!
//! Written by hand rather than with a serialisation crate: the tool only ever writes JSON, the
//! values are a handful of numbers and strings, and the one part that needs care, string
//! escaping, is short and tested here.

use std::fmt::Write as _;

/// A JSON value. Objects keep their keys in insertion order so output is stable and readable.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An unsigned integer (log indices, terms, byte counts), written exactly.
    U64(u64),
    /// A floating-point number; non-finite values are written as `null`, which JSON requires.
    F64(f64),
    /// A string, escaped on output.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in the order given.
    Object(Vec<(&'static str, Json)>),
}

impl Json {
    /// A string value.
    pub fn str(text: impl Into<String>) -> Json {
        Json::Str(text.into())
    }

    /// `Some(v)` as `v`, `None` as `null`.
    pub fn opt_u64(value: Option<u64>) -> Json {
        value.map_or(Json::Null, Json::U64)
    }

    /// Serialises on one line, with no insignificant whitespace.
    pub fn to_line(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }

    /// Appends the serialisation to `out`.
    pub fn write_to(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            Json::U64(value) => {
                let _ = write!(out, "{value}");
            }
            Json::F64(value) if value.is_finite() => {
                let _ = write!(out, "{value}");
            }
            Json::F64(_) => out.push_str("null"),
            Json::Str(text) => write_string(out, text),
            Json::Array(items) => {
                out.push('[');
                for (position, item) in items.iter().enumerate() {
                    if position > 0 {
                        out.push(',');
                    }
                    item.write_to(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (position, (key, value)) in fields.iter().enumerate() {
                    if position > 0 {
                        out.push(',');
                    }
                    write_string(out, key);
                    out.push(':');
                    value.write_to(out);
                }
                out.push('}');
            }
        }
    }
}

/// Writes `text` as a JSON string literal: quotes, backslashes and every control character are
/// escaped (RFC 8259 §7); everything else, including non-ASCII, is written as UTF-8.
pub fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            control if (control as u32) < 0x20 || control == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", control as u32);
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_quotes_backslashes_and_controls() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c\nd\u{1}e\u{7f}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001e\u007fé""#);
    }

    #[test]
    fn nested_values_serialise_compactly_in_order() {
        let value = Json::Object(vec![
            ("z", Json::U64(u64::MAX)),
            ("a", Json::Array(vec![Json::Null, Json::Bool(true)])),
            ("ratio", Json::F64(2.5)),
            ("nan", Json::F64(f64::NAN)),
            ("name", Json::str("x/y")),
        ]);
        assert_eq!(
            value.to_line(),
            r#"{"z":18446744073709551615,"a":[null,true],"ratio":2.5,"nan":null,"name":"x/y"}"#
        );
    }
}
