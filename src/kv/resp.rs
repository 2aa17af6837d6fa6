//! RESP, the Redis serialization protocol: an incremental parser of client requests, reply
//! encoding in RESP2 and RESP3, and incremental reply parsers (RESP2 for clients such as
//! `ketch::client`, RESP3 for tests and RESP3 clients).
//!
//! # Wire format (RESP2)
//!
//! Every element starts with a type byte and ends its header line with `\r\n`:
//!
//! | type            | bytes                                  | example               |
//! |-----------------|----------------------------------------|-----------------------|
//! | simple string   | `+` text `\r\n`                        | `+OK\r\n`             |
//! | error           | `-` CODE text `\r\n`                   | `-ERR unknown\r\n`    |
//! | integer         | `:` decimal i64 `\r\n`                 | `:42\r\n`             |
//! | bulk string     | `$` length `\r\n` bytes `\r\n`         | `$3\r\nfoo\r\n`       |
//! | nil bulk        | `$-1\r\n`                              |                       |
//! | array           | `*` count `\r\n` then count elements   | `*1\r\n$4\r\nPING\r\n` |
//! | nil array       | `*-1\r\n`                              |                       |
//!
//! # Wire format (RESP3 additions)
//!
//! A connection speaks RESP3 after `HELLO 3` ([`Protocol`]). Requests do not change; replies
//! may use these types, which [`Frame::encode`] downgrades for RESP2 as Redis does:
//!
//! | type            | bytes                                      | RESP2 form            |
//! |-----------------|--------------------------------------------|-----------------------|
//! | null            | `_\r\n`                                    | `$-1` or `*-1`        |
//! | map             | `%` pairs `\r\n` then 2 × pairs elements   | array of 2 × pairs    |
//! | set             | `~` count `\r\n` then count elements       | array                 |
//! | double          | `,` value `\r\n` (`inf`, `-inf`, `nan`)    | bulk string           |
//! | boolean         | `#t\r\n` / `#f\r\n`                        | `:1` / `:0`           |
//! | verbatim string | `=` length `\r\n` `txt:` text `\r\n`        | bulk string of text   |
//! | big number      | `(` digits `\r\n` (parsed only)            | bulk string           |
//!
//! The verbatim length counts the 3-byte format and its colon. Doubles are printed in the
//! shortest form that reads back to the same value (Redis 7.2's choice; 7.0 prints
//! `%.17g`); no command Ketch serves today replies with one. Push (`>`) and attribute (`|`)
//! frames are neither sent nor parsed.
//!
//! A client request is either an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or
//! an *inline* command: one line of space-separated words, with `"..."` (backslash escapes
//! `\n \r \t \b \a \\ \" \xHH`) and `'...'` quoting, as `redis-cli` and `telnet` users send.
//! Many requests may arrive in one read (pipelining); the parser returns them one at a time.
//!
//! # Limits
//!
//! [`Limits`] bounds a bulk string's length and an array's element count (defaults: 512 MiB
//! and 512 Mi elements, like Redis' `proto-max-bulk-len`) and an inline request line (64 KiB,
//! Redis' `PROTO_INLINE_MAX_SIZE`). Breaking a limit or malformed input is a [`ProtocolError`]
//! whose [`ProtocolError::reply_text`] is Redis' own wording (`ERR Protocol error: invalid bulk
//! length`); the server sends it and closes the connection. Nothing here panics on any input,
//! and nothing allocates more than the bytes actually received plus a small bounded amount:
//! declared lengths are never trusted for preallocation.

use std::fmt;

/// Largest bulk string accepted by default (Redis `proto-max-bulk-len`).
pub const DEFAULT_BULK_BYTES_MAX: usize = 512 << 20;
/// Largest array element count accepted by default.
pub const DEFAULT_ARRAY_ITEMS_MAX: usize = 512 << 20;
/// Longest inline request or header line (Redis `PROTO_INLINE_MAX_SIZE`).
pub const DEFAULT_INLINE_BYTES_MAX: usize = 64 << 10;
/// Most argument bytes in one request by default (Redis `client-query-buffer-limit`).
pub const DEFAULT_REQUEST_BYTES_MAX: usize = 1 << 30;
/// Deepest reply nesting [`ReplyParser`] accepts (Redis replies nest a few levels).
pub const REPLY_DEPTH_MAX: usize = 32;
/// Elements reserved up front at most, whatever a header declares.
const PREALLOCATE_ITEMS_MAX: usize = 64;

/// Size limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string, in bytes.
    pub bulk_bytes_max: usize,
    /// Most elements in one array (arguments of one request, or elements of one reply array).
    pub array_items_max: usize,
    /// Longest inline request or header line, in bytes (without the line end).
    pub inline_bytes_max: usize,
    /// Most bytes of arguments in one request (bounds a connection's memory: many
    /// arguments each under `bulk_bytes_max` cannot add up past this).
    pub request_bytes_max: usize,
}

impl Limits {
    /// No limit at all: for parsing bytes the process produced itself (the state machine's
    /// replies), whose length is already bounded where they were made.
    pub fn unbounded() -> Self {
        Limits {
            bulk_bytes_max: usize::MAX,
            array_items_max: usize::MAX,
            inline_bytes_max: usize::MAX,
            request_bytes_max: usize::MAX,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bulk_bytes_max: DEFAULT_BULK_BYTES_MAX,
            array_items_max: DEFAULT_ARRAY_ITEMS_MAX,
            inline_bytes_max: DEFAULT_INLINE_BYTES_MAX,
            request_bytes_max: DEFAULT_REQUEST_BYTES_MAX,
        }
    }
}

/// Why the input is not valid RESP (or breaks a limit). The connection cannot be resynchronized
/// after one of these: the server replies [`ProtocolError::reply_text`] and closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// An array header's count is not a number, is negative (requests) or above the limit.
    InvalidMultibulkLength,
    /// A bulk header's length is not a number, is negative (requests) or above the limit.
    InvalidBulkLength,
    /// A request array element is not a bulk string.
    ExpectedBulk {
        /// The type byte found instead of `$`.
        found: u8,
    },
    /// A header line longer than the inline limit without its `\r\n`.
    TooBigCountString {
        /// True for an array header, false for a bulk header.
        array: bool,
    },
    /// An inline request line longer than the inline limit.
    TooBigInlineRequest,
    /// An inline request with an unterminated quote.
    UnbalancedQuotes,
    /// A bulk string's data is not followed by `\r\n`.
    MissingBulkTerminator,
    /// A reply starts with an unknown type byte.
    UnknownReplyType {
        /// The byte.
        found: u8,
    },
    /// A reply integer is not a decimal i64.
    InvalidInteger,
    /// A simple string or error line holds a `\r` or `\n` before its end, or is too long.
    InvalidLine,
    /// A reply nests arrays deeper than [`REPLY_DEPTH_MAX`].
    TooDeep,
    /// A request's arguments add up to more than [`Limits::request_bytes_max`].
    RequestTooLarge,
}

impl ProtocolError {
    /// The error reply a Redis server sends for this problem, without `-` and `\r\n`.
    pub fn reply_text(&self) -> String {
        match self {
            ProtocolError::InvalidMultibulkLength => {
                "ERR Protocol error: invalid multibulk length".to_string()
            }
            ProtocolError::InvalidBulkLength => {
                "ERR Protocol error: invalid bulk length".to_string()
            }
            ProtocolError::ExpectedBulk { found } => {
                format!(
                    "ERR Protocol error: expected '$', got '{}'",
                    printable(*found)
                )
            }
            ProtocolError::TooBigCountString { array: true } => {
                "ERR Protocol error: too big mbulk count string".to_string()
            }
            ProtocolError::TooBigCountString { array: false } => {
                "ERR Protocol error: too big bulk count string".to_string()
            }
            ProtocolError::TooBigInlineRequest => {
                "ERR Protocol error: too big inline request".to_string()
            }
            ProtocolError::UnbalancedQuotes => {
                "ERR Protocol error: unbalanced quotes in request".to_string()
            }
            ProtocolError::MissingBulkTerminator => {
                "ERR Protocol error: bulk string not terminated by CRLF".to_string()
            }
            ProtocolError::UnknownReplyType { found } => {
                format!(
                    "ERR Protocol error: unknown reply type '{}'",
                    printable(*found)
                )
            }
            ProtocolError::InvalidInteger => "ERR Protocol error: invalid integer".to_string(),
            ProtocolError::InvalidLine => "ERR Protocol error: invalid line".to_string(),
            ProtocolError::TooDeep => "ERR Protocol error: reply nested too deep".to_string(),
            ProtocolError::RequestTooLarge => {
                "ERR Protocol error: request larger than the query buffer limit".to_string()
            }
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reply_text())
    }
}

impl std::error::Error for ProtocolError {}

fn printable(byte: u8) -> char {
    if byte.is_ascii_graphic() || byte == b' ' {
        byte as char
    } else {
        '?'
    }
}

/// Position of the first `\r\n` in `buf` at or after `from`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        match buf[i..].iter().position(|&b| b == b'\r') {
            Some(offset) => {
                let at = i + offset;
                if at + 1 < buf.len() {
                    if buf[at + 1] == b'\n' {
                        return Some(at);
                    }
                    i = at + 1;
                } else {
                    return None;
                }
            }
            None => return None,
        }
    }
    None
}

/// Parses a non-negative or `-1` decimal header value; `None` if not a number.
fn parse_i64(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let (negative, digits) = match digits[0] {
        b'-' => (true, &digits[1..]),
        _ => (false, digits),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        value = if negative {
            value.checked_mul(10)?.checked_sub(digit)?
        } else {
            value.checked_mul(10)?.checked_add(digit)?
        };
    }
    Some(value)
}

/// One parsed client request: the command name and its arguments, as bulk strings.
pub type Request = Vec<Vec<u8>>;

/// Where the request parser stands between calls.
#[derive(Debug)]
enum RequestState {
    /// Between requests.
    Idle,
    /// Inside an array request: `remaining` more arguments to read.
    Array {
        remaining: usize,
        args: Vec<Vec<u8>>,
        /// Bytes of `args` so far.
        args_bytes: usize,
        /// The next argument's length, once its `$` header is read.
        bulk_len: Option<usize>,
    },
}

/// An incremental parser of client requests.
///
/// Feed it the unconsumed bytes of a connection's input; each call returns at most one
/// request and how many bytes it consumed (the caller drops them). Partial input is kept as
/// state (arguments read so far), so byte-at-a-time feeding costs no rescanning of arguments.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    state: RequestState,
    /// In an incomplete line, how far `\r\n` has been searched for already.
    line_scanned: usize,
}

/// What one [`RequestParser::parse`] call produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Bytes of the input consumed (drop them before the next call).
    pub consumed: usize,
    /// A complete request, if one ended within the consumed bytes. An empty request (a blank
    /// inline line or `*0`) is returned as `Some(vec![])`; servers ignore it.
    pub request: Option<Request>,
}

impl RequestParser {
    /// A parser with these limits.
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            state: RequestState::Idle,
            line_scanned: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes the request being parsed still needs before it can complete, if known: lets a
    /// server grow its input buffer for a large bulk string in one step.
    pub fn pending_bulk_bytes(&self) -> Option<usize> {
        match &self.state {
            RequestState::Array {
                bulk_len: Some(len),
                ..
            } => Some(len + 2),
            _ => None,
        }
    }

    /// Parses from `input` (the bytes not yet consumed). On error the connection must be
    /// closed; the parser is then in an unspecified state.
    pub fn parse(&mut self, input: &[u8]) -> Result<Parsed, ProtocolError> {
        let mut consumed = 0;
        loop {
            match &mut self.state {
                RequestState::Idle => {
                    if input.len() == consumed {
                        return Ok(Parsed {
                            consumed,
                            request: None,
                        });
                    }
                    if input[consumed] == b'*' {
                        let Some((count, used)) = self.header_line(&input[consumed..], true)?
                        else {
                            return Ok(Parsed {
                                consumed,
                                request: None,
                            });
                        };
                        consumed += used;
                        if count <= 0 {
                            // Redis treats `*0` and `*-1` as an empty request.
                            return Ok(Parsed {
                                consumed,
                                request: Some(Vec::new()),
                            });
                        }
                        let remaining = count as usize;
                        self.state = RequestState::Array {
                            remaining,
                            args: Vec::with_capacity(remaining.min(PREALLOCATE_ITEMS_MAX)),
                            args_bytes: 0,
                            bulk_len: None,
                        };
                    } else {
                        let rest = &input[consumed..];
                        let Some(end) = find_crlf_or_lf(rest, self.line_scanned) else {
                            if unterminated_line_bytes(rest) > self.limits.inline_bytes_max {
                                return Err(ProtocolError::TooBigInlineRequest);
                            }
                            self.line_scanned = rest.len().saturating_sub(1);
                            return Ok(Parsed {
                                consumed,
                                request: None,
                            });
                        };
                        self.line_scanned = 0;
                        if end.line_len > self.limits.inline_bytes_max {
                            return Err(ProtocolError::TooBigInlineRequest);
                        }
                        let words = split_inline(&rest[..end.line_len])?;
                        consumed += end.total_len;
                        return Ok(Parsed {
                            consumed,
                            request: Some(words),
                        });
                    }
                }
                RequestState::Array {
                    remaining,
                    args,
                    args_bytes,
                    bulk_len,
                } => {
                    if *remaining == 0 {
                        let request = std::mem::take(args);
                        self.state = RequestState::Idle;
                        return Ok(Parsed {
                            consumed,
                            request: Some(request),
                        });
                    }
                    match *bulk_len {
                        None => {
                            let rest = &input[consumed..];
                            if rest.is_empty() {
                                return Ok(Parsed {
                                    consumed,
                                    request: None,
                                });
                            }
                            if rest[0] != b'$' {
                                return Err(ProtocolError::ExpectedBulk { found: rest[0] });
                            }
                            let (limits, scanned) = (self.limits, self.line_scanned);
                            let Some((len, used)) = header_line(limits, scanned, rest, false)?
                            else {
                                self.line_scanned = rest.len().saturating_sub(1);
                                return Ok(Parsed {
                                    consumed,
                                    request: None,
                                });
                            };
                            self.line_scanned = 0;
                            if len < 0 {
                                return Err(ProtocolError::InvalidBulkLength);
                            }
                            if *args_bytes + len as usize > limits.request_bytes_max {
                                return Err(ProtocolError::RequestTooLarge);
                            }
                            consumed += used;
                            *bulk_len = Some(len as usize);
                        }
                        Some(len) => {
                            let rest = &input[consumed..];
                            if rest.len() < len + 2 {
                                return Ok(Parsed {
                                    consumed,
                                    request: None,
                                });
                            }
                            if &rest[len..len + 2] != b"\r\n" {
                                return Err(ProtocolError::MissingBulkTerminator);
                            }
                            args.push(rest[..len].to_vec());
                            *args_bytes += len;
                            consumed += len + 2;
                            *bulk_len = None;
                            *remaining -= 1;
                        }
                    }
                }
            }
        }
    }

    /// Reads a `*N\r\n` header at the start of `input`.
    fn header_line(
        &mut self,
        input: &[u8],
        array: bool,
    ) -> Result<Option<(i64, usize)>, ProtocolError> {
        let result = header_line(self.limits, self.line_scanned, input, array)?;
        self.line_scanned = match result {
            Some(_) => 0,
            None => input.len().saturating_sub(1),
        };
        Ok(result)
    }
}

/// Reads a `*N\r\n` or `$N\r\n` header at the start of `input`, checking N against the
/// limits. Returns the value and the header's length, or `None` if the line is incomplete.
/// Bytes of a line whose end has not arrived yet, not counting a final `\r` that may be the
/// first half of its `\r\n`: a line within the limit must never be refused because it
/// arrived in pieces (the parse may not depend on how the input was split).
fn unterminated_line_bytes(partial: &[u8]) -> usize {
    partial.len() - usize::from(partial.last() == Some(&b'\r'))
}

fn header_line(
    limits: Limits,
    scanned: usize,
    input: &[u8],
    array: bool,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let Some(end) = find_crlf(input, scanned.min(input.len())) else {
        if unterminated_line_bytes(input) > limits.inline_bytes_max {
            return Err(ProtocolError::TooBigCountString { array });
        }
        return Ok(None);
    };
    // The same bound whether the line arrived whole or in pieces (found by fuzzing).
    if end > limits.inline_bytes_max {
        return Err(ProtocolError::TooBigCountString { array });
    }
    let value = parse_i64(&input[1..end]);
    let (max, error) = if array {
        (
            limits.array_items_max,
            ProtocolError::InvalidMultibulkLength,
        )
    } else {
        (limits.bulk_bytes_max, ProtocolError::InvalidBulkLength)
    };
    match value {
        Some(v) if v <= max as i64 => Ok(Some((v, end + 2))),
        _ => Err(error),
    }
}

struct LineEnd {
    line_len: usize,
    total_len: usize,
}

/// Finds the end of an inline line: `\n`, with an optional `\r` before it (as Redis does).
fn find_crlf_or_lf(buf: &[u8], from: usize) -> Option<LineEnd> {
    let at = buf[from.min(buf.len())..]
        .iter()
        .position(|&b| b == b'\n')?
        + from.min(buf.len());
    let line_len = if at > 0 && buf[at - 1] == b'\r' {
        at - 1
    } else {
        at
    };
    Some(LineEnd {
        line_len,
        total_len: at + 1,
    })
}

/// Splits an inline request into words, with Redis' quoting rules (`sdssplitargs`).
fn split_inline(line: &[u8]) -> Result<Request, ProtocolError> {
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Ok(words);
        }
        let mut word = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                let Some(&c) = line.get(i) else {
                    return Err(ProtocolError::UnbalancedQuotes);
                };
                if c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x' {
                    let hex = |b: u8| (b as char).to_digit(16);
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        word.push((h * 16 + l) as u8);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < line.len() {
                    word.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    // A closing quote must be followed by a space or the end.
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    in_double = false;
                    i += 1;
                    break;
                } else {
                    word.push(c);
                    i += 1;
                }
            } else if in_single {
                let Some(&c) = line.get(i) else {
                    return Err(ProtocolError::UnbalancedQuotes);
                };
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    word.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    in_single = false;
                    i += 1;
                    break;
                } else {
                    word.push(c);
                    i += 1;
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => {
                        in_double = true;
                        i += 1;
                    }
                    Some(b'\'') => {
                        in_single = true;
                        i += 1;
                    }
                    Some(&c) => {
                        word.push(c);
                        i += 1;
                    }
                }
            }
        }
        debug_assert!(!in_double && !in_single);
        words.push(word);
    }
}

/// Appends a request (array of bulk strings) to `out`, as a client sends it.
pub fn encode_request<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    write_header(out, b'*', args.len() as i64);
    for arg in args {
        write_bulk(out, arg.as_ref());
    }
}

fn write_header(out: &mut Vec<u8>, kind: u8, value: i64) {
    out.push(kind);
    write_decimal(out, value);
    out.extend_from_slice(b"\r\n");
}

fn write_decimal(out: &mut Vec<u8>, value: i64) {
    let mut digits = [0u8; 20];
    let mut n = value.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `+text\r\n`. `text` must not contain `\r` or `\n` (checked in debug builds).
pub fn write_simple(out: &mut Vec<u8>, text: &str) {
    debug_assert!(
        !text.contains(['\r', '\n']),
        "simple string with a line end"
    );
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `-text\r\n`; line ends inside `text` are replaced by spaces (Redis does the same).
pub fn write_error(out: &mut Vec<u8>, text: &str) {
    out.push(b'-');
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Appends `:value\r\n`.
pub fn write_integer(out: &mut Vec<u8>, value: i64) {
    write_header(out, b':', value);
}

/// Appends a bulk string.
pub fn write_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    write_header(out, b'$', bytes.len() as i64);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends the nil bulk string `$-1\r\n`.
pub fn write_nil(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// Appends an array header for `len` elements (the caller appends the elements).
pub fn write_array_header(out: &mut Vec<u8>, len: usize) {
    write_header(out, b'*', len as i64);
}

/// A RESP2 reply, as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`.
    Simple(String),
    /// `-CODE text`: the whole line without `-`.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$n` + bytes; `None` for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n` + elements; `None` for `*-1`.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// Appends this reply's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(text) => write_simple(out, text),
            Reply::Error(text) => write_error(out, text),
            Reply::Integer(n) => write_integer(out, *n),
            Reply::Bulk(Some(bytes)) => write_bulk(out, bytes),
            Reply::Bulk(None) => write_nil(out),
            Reply::Array(Some(items)) => {
                write_array_header(out, items.len());
                for item in items {
                    item.encode(out);
                }
            }
            Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
        }
    }

    /// The error's code (first word, e.g. `TRYAGAIN`), if this is an error reply.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Reply::Error(text) => Some(text.split(' ').next().unwrap_or("")),
            _ => None,
        }
    }
}

/// An incremental parser of replies (the client side).
///
/// Stateless between replies: [`ReplyParser::parse`] looks at the buffered bytes and returns a
/// complete reply and its length, or `None` when more bytes are needed. A large bulk string is
/// recognized as incomplete from its header alone, so slow arrival of a big value costs no
/// rescanning of its data.
#[derive(Debug, Clone)]
pub struct ReplyParser {
    limits: Limits,
}

impl ReplyParser {
    /// A parser with these limits (bulk length, array length; the inline limit bounds lines).
    pub fn new(limits: Limits) -> Self {
        ReplyParser { limits }
    }

    /// Parses one reply from the front of `input`: `Ok(Some((reply, consumed)))`, `Ok(None)`
    /// if incomplete, or an error if the bytes cannot be a reply.
    pub fn parse(&self, input: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
        let mut at = 0;
        match self.parse_at(input, &mut at, 0)? {
            Some(reply) => Ok(Some((reply, at))),
            None => Ok(None),
        }
    }

    fn line<'a>(&self, input: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, ProtocolError> {
        let start = *at + 1;
        match find_crlf(input, start) {
            Some(end) => {
                // A simple line may hold neither CR nor LF (the encoder turns them into spaces), so a
                // reply that carries one is malformed rather than silently altered.
                if end - start > self.limits.inline_bytes_max
                    || input[start..end].iter().any(|&b| b == b'\n' || b == b'\r')
                {
                    return Err(ProtocolError::InvalidLine);
                }
                *at = end + 2;
                Ok(Some(&input[start..end]))
            }
            None if unterminated_line_bytes(&input[start.min(input.len())..])
                > self.limits.inline_bytes_max =>
            {
                Err(ProtocolError::InvalidLine)
            }
            None => Ok(None),
        }
    }

    fn parse_at(
        &self,
        input: &[u8],
        at: &mut usize,
        depth: usize,
    ) -> Result<Option<Reply>, ProtocolError> {
        if depth > REPLY_DEPTH_MAX {
            return Err(ProtocolError::TooDeep);
        }
        let Some(&kind) = input.get(*at) else {
            return Ok(None);
        };
        let Some(line) = self.line(input, at)? else {
            return Ok(None);
        };
        match kind {
            b'+' => Ok(Some(Reply::Simple(
                String::from_utf8_lossy(line).into_owned(),
            ))),
            b'-' => Ok(Some(Reply::Error(
                String::from_utf8_lossy(line).into_owned(),
            ))),
            b':' => match parse_i64(line) {
                Some(n) => Ok(Some(Reply::Integer(n))),
                None => Err(ProtocolError::InvalidInteger),
            },
            b'$' => match parse_i64(line) {
                Some(-1) => Ok(Some(Reply::Bulk(None))),
                Some(len) if len >= 0 && len as u64 <= self.limits.bulk_bytes_max as u64 => {
                    let len = len as usize;
                    if input.len() - *at < len + 2 {
                        return Ok(None);
                    }
                    if &input[*at + len..*at + len + 2] != b"\r\n" {
                        return Err(ProtocolError::MissingBulkTerminator);
                    }
                    let bytes = input[*at..*at + len].to_vec();
                    *at += len + 2;
                    Ok(Some(Reply::Bulk(Some(bytes))))
                }
                _ => Err(ProtocolError::InvalidBulkLength),
            },
            b'*' => match parse_i64(line) {
                Some(-1) => Ok(Some(Reply::Array(None))),
                Some(count) if count >= 0 && count as u64 <= self.limits.array_items_max as u64 => {
                    let count = count as usize;
                    let mut items = Vec::with_capacity(count.min(PREALLOCATE_ITEMS_MAX));
                    for _ in 0..count {
                        match self.parse_at(input, at, depth + 1)? {
                            Some(item) => items.push(item),
                            None => return Ok(None),
                        }
                    }
                    Ok(Some(Reply::Array(Some(items))))
                }
                _ => Err(ProtocolError::InvalidMultibulkLength),
            },
            other => Err(ProtocolError::UnknownReplyType { found: other }),
        }
    }
}

/// Which protocol a connection speaks: RESP2 until the client sends `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2 (the default).
    #[default]
    Resp2,
    /// RESP3.
    Resp3,
}

impl Protocol {
    /// The version number `HELLO` and `CLIENT LIST` (`resp=`) show.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// Appends the RESP3 null `_\r\n`.
pub fn write_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"_\r\n");
}

/// Appends a RESP3 map header for `pairs` key-value pairs (the caller appends `2 * pairs`
/// elements).
pub fn write_map_header(out: &mut Vec<u8>, pairs: usize) {
    write_header(out, b'%', pairs as i64);
}

/// Appends a RESP3 set header for `len` elements.
pub fn write_set_header(out: &mut Vec<u8>, len: usize) {
    write_header(out, b'~', len as i64);
}

/// Appends a RESP3 double: `,` then the value in its shortest round-trip form, or `inf`,
/// `-inf`, `nan` (module docs).
pub fn write_double(out: &mut Vec<u8>, value: f64) {
    out.push(b',');
    out.extend_from_slice(double_text(value).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A double as RESP3 and Redis' RESP2 bulk form print it.
fn double_text(value: f64) -> String {
    if value.is_nan() {
        "nan".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        // Rust's shortest round-trip form; integers print without a fraction, as Redis does.
        format!("{value}")
    }
}

/// Appends a RESP3 boolean `#t` / `#f`.
pub fn write_boolean(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"#t\r\n" } else { b"#f\r\n" });
}

/// Appends a RESP3 verbatim string: `=` length, `\r\n`, the three-byte `format`, `:`, the
/// text, `\r\n` (the length counts the format and colon).
pub fn write_verbatim(out: &mut Vec<u8>, format: &[u8; 3], text: &[u8]) {
    write_header(out, b'=', (text.len() + 4) as i64);
    out.extend_from_slice(format);
    out.push(b':');
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// A reply in RESP3's type system, written in either protocol by [`Frame::encode`] as Redis
/// downgrades RESP3 types for RESP2 clients (map: flat array of pairs, set: array, double:
/// bulk string, boolean: integer 1/0, verbatim: bulk string of the text). Also what
/// [`Resp3Parser`] returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+text`.
    Simple(String),
    /// `-CODE text`.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$n` + bytes.
    Bulk(Vec<u8>),
    /// Nothing: `_` in RESP3, the nil bulk `$-1` in RESP2.
    Null,
    /// Nothing where Redis sends the nil array in RESP2 (`*-1`); `_` in RESP3.
    NullArray,
    /// `*n` + elements.
    Array(Vec<Frame>),
    /// `~n` + elements.
    Set(Vec<Frame>),
    /// `%n` + n key-value pairs.
    Map(Vec<(Frame, Frame)>),
    /// `,value`.
    Double(f64),
    /// `#t` / `#f`.
    Boolean(bool),
    /// `=n` + format + `:` + text.
    Verbatim {
        /// Three bytes, `txt` or `mkd`.
        format: [u8; 3],
        /// The text.
        text: Vec<u8>,
    },
    /// `(digits`: a RESP3 big number (parsed only; no command sends one).
    BigNumber(String),
}

impl Frame {
    /// A bulk string of `text`.
    pub fn bulk(text: impl AsRef<[u8]>) -> Frame {
        Frame::Bulk(text.as_ref().to_vec())
    }

    /// A map of bulk-string keys.
    pub fn map<I, K>(pairs: I) -> Frame
    where
        I: IntoIterator<Item = (K, Frame)>,
        K: AsRef<[u8]>,
    {
        Frame::Map(
            pairs
                .into_iter()
                .map(|(key, value)| (Frame::bulk(key), value))
                .collect(),
        )
    }

    /// Appends this reply's encoding in `protocol` to `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut Vec<u8>) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Frame::Simple(text) => write_simple(out, text),
            Frame::Error(text) => write_error(out, text),
            Frame::Integer(n) => write_integer(out, *n),
            Frame::Bulk(bytes) => write_bulk(out, bytes),
            Frame::Null if resp3 => write_null(out),
            Frame::Null => write_nil(out),
            Frame::NullArray if resp3 => write_null(out),
            Frame::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Frame::Array(items) => {
                write_array_header(out, items.len());
                for item in items {
                    item.encode(protocol, out);
                }
            }
            Frame::Set(items) => {
                if resp3 {
                    write_set_header(out, items.len());
                } else {
                    write_array_header(out, items.len());
                }
                for item in items {
                    item.encode(protocol, out);
                }
            }
            Frame::Map(pairs) => {
                if resp3 {
                    write_map_header(out, pairs.len());
                } else {
                    write_array_header(out, pairs.len() * 2);
                }
                for (key, value) in pairs {
                    key.encode(protocol, out);
                    value.encode(protocol, out);
                }
            }
            Frame::Double(value) if resp3 => write_double(out, *value),
            Frame::Double(value) => write_bulk(out, double_text(*value).as_bytes()),
            Frame::Boolean(value) if resp3 => write_boolean(out, *value),
            Frame::Boolean(value) => write_integer(out, i64::from(*value)),
            Frame::Verbatim { format, text } if resp3 => write_verbatim(out, format, text),
            Frame::Verbatim { text, .. } => write_bulk(out, text),
            Frame::BigNumber(digits) if resp3 => {
                out.push(b'(');
                out.extend_from_slice(digits.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Frame::BigNumber(digits) => write_bulk(out, digits.as_bytes()),
        }
    }

    /// This reply encoded in `protocol`.
    pub fn to_bytes(&self, protocol: Protocol) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(protocol, &mut out);
        out
    }

    /// The RESP3 form of a RESP2 reply: nils become [`Frame::Null`] / [`Frame::NullArray`],
    /// everything else keeps its type.
    pub fn from_resp2(reply: Reply) -> Frame {
        match reply {
            Reply::Simple(text) => Frame::Simple(text),
            Reply::Error(text) => Frame::Error(text),
            Reply::Integer(n) => Frame::Integer(n),
            Reply::Bulk(Some(bytes)) => Frame::Bulk(bytes),
            Reply::Bulk(None) => Frame::Null,
            Reply::Array(Some(items)) => {
                Frame::Array(items.into_iter().map(Frame::from_resp2).collect())
            }
            Reply::Array(None) => Frame::NullArray,
        }
    }
}

/// A parser of RESP3 replies (and so of RESP2 ones, a subset), for clients and tests.
/// Stateless between replies like [`ReplyParser`]; push (`>`) and attribute (`|`) frames are
/// refused as unknown types, since no command here sends them.
#[derive(Debug, Clone)]
pub struct Resp3Parser {
    lines: ReplyParser,
}

impl Resp3Parser {
    /// A parser with these limits.
    pub fn new(limits: Limits) -> Self {
        Resp3Parser {
            lines: ReplyParser::new(limits),
        }
    }

    /// Parses one reply from the front of `input`: `Ok(Some((frame, consumed)))`, `Ok(None)`
    /// if incomplete, or an error if the bytes cannot be a reply.
    pub fn parse(&self, input: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
        let mut at = 0;
        match self.parse_at(input, &mut at, 0)? {
            Some(frame) => Ok(Some((frame, at))),
            None => Ok(None),
        }
    }

    fn items(
        &self,
        input: &[u8],
        at: &mut usize,
        depth: usize,
        count: usize,
    ) -> Result<Option<Vec<Frame>>, ProtocolError> {
        let mut items = Vec::with_capacity(count.min(PREALLOCATE_ITEMS_MAX));
        for _ in 0..count {
            match self.parse_at(input, at, depth + 1)? {
                Some(item) => items.push(item),
                None => return Ok(None),
            }
        }
        Ok(Some(items))
    }

    /// A length-prefixed payload (`$`, `=`) of `len` bytes after the header.
    fn payload<'a>(
        &self,
        input: &'a [u8],
        at: &mut usize,
        len: i64,
    ) -> Result<Option<&'a [u8]>, ProtocolError> {
        if len < 0 || len as u64 > self.lines.limits.bulk_bytes_max as u64 {
            return Err(ProtocolError::InvalidBulkLength);
        }
        let len = len as usize;
        if input.len() - *at < len + 2 {
            return Ok(None);
        }
        if &input[*at + len..*at + len + 2] != b"\r\n" {
            return Err(ProtocolError::MissingBulkTerminator);
        }
        let bytes = &input[*at..*at + len];
        *at += len + 2;
        Ok(Some(bytes))
    }

    fn count(&self, line: &[u8]) -> Result<usize, ProtocolError> {
        match parse_i64(line) {
            Some(count)
                if count >= 0 && count as u64 <= self.lines.limits.array_items_max as u64 =>
            {
                Ok(count as usize)
            }
            _ => Err(ProtocolError::InvalidMultibulkLength),
        }
    }

    fn parse_at(
        &self,
        input: &[u8],
        at: &mut usize,
        depth: usize,
    ) -> Result<Option<Frame>, ProtocolError> {
        if depth > REPLY_DEPTH_MAX {
            return Err(ProtocolError::TooDeep);
        }
        let Some(&kind) = input.get(*at) else {
            return Ok(None);
        };
        if !b"+-:$*_%~,#=(".contains(&kind) {
            return Err(ProtocolError::UnknownReplyType { found: kind });
        }
        let Some(line) = self.lines.line(input, at)? else {
            return Ok(None);
        };
        let text = || String::from_utf8_lossy(line).into_owned();
        let frame = match kind {
            b'+' => Frame::Simple(text()),
            b'-' => Frame::Error(text()),
            b':' => Frame::Integer(parse_i64(line).ok_or(ProtocolError::InvalidInteger)?),
            b'(' => {
                let digits = line.strip_prefix(b"-").unwrap_or(line);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(ProtocolError::InvalidInteger);
                }
                Frame::BigNumber(text())
            }
            b'_' if line.is_empty() => Frame::Null,
            b'#' => match line {
                b"t" => Frame::Boolean(true),
                b"f" => Frame::Boolean(false),
                _ => return Err(ProtocolError::InvalidLine),
            },
            b',' => {
                let value = match line {
                    b"inf" => f64::INFINITY,
                    b"-inf" => f64::NEG_INFINITY,
                    b"nan" => f64::NAN,
                    _ => std::str::from_utf8(line)
                        .ok()
                        .filter(|t| {
                            !t.is_empty()
                                && !t.contains(|c: char| c.is_alphabetic() && c != 'e' && c != 'E')
                        })
                        .and_then(|t| t.parse::<f64>().ok())
                        .ok_or(ProtocolError::InvalidLine)?,
                };
                Frame::Double(value)
            }
            b'$' => match parse_i64(line) {
                Some(-1) => Frame::Null,
                Some(len) => match self.payload(input, at, len)? {
                    Some(bytes) => Frame::Bulk(bytes.to_vec()),
                    None => return Ok(None),
                },
                None => return Err(ProtocolError::InvalidBulkLength),
            },
            b'=' => {
                let len = parse_i64(line).ok_or(ProtocolError::InvalidBulkLength)?;
                match self.payload(input, at, len)? {
                    Some(bytes) if bytes.len() >= 4 && bytes[3] == b':' => Frame::Verbatim {
                        format: [bytes[0], bytes[1], bytes[2]],
                        text: bytes[4..].to_vec(),
                    },
                    Some(_) => return Err(ProtocolError::InvalidBulkLength),
                    None => return Ok(None),
                }
            }
            b'*' if line == b"-1" => Frame::NullArray,
            b'*' | b'~' => {
                let count = self.count(line)?;
                match self.items(input, at, depth, count)? {
                    Some(items) if kind == b'*' => Frame::Array(items),
                    Some(items) => Frame::Set(items),
                    None => return Ok(None),
                }
            }
            b'%' => {
                let pairs = self.count(line)?;
                let Some(count) = pairs.checked_mul(2) else {
                    return Err(ProtocolError::InvalidMultibulkLength);
                };
                match self.items(input, at, depth, count)? {
                    Some(items) => {
                        let mut items = items.into_iter();
                        let mut map = Vec::with_capacity(pairs.min(PREALLOCATE_ITEMS_MAX));
                        while let (Some(key), Some(value)) = (items.next(), items.next()) {
                            map.push((key, value));
                        }
                        Frame::Map(map)
                    }
                    None => return Ok(None),
                }
            }
            _ => return Err(ProtocolError::InvalidLine),
        };
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(parser: &mut RequestParser, input: &[u8]) -> Result<Vec<Request>, ProtocolError> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let parsed = parser.parse(&input[at..])?;
            at += parsed.consumed;
            match parsed.request {
                Some(request) => out.push(request),
                None => return Ok(out),
            }
        }
    }

    /// Feeds `input` one byte at a time, as a connection's buffer would grow.
    fn parse_byte_at_a_time(
        parser: &mut RequestParser,
        input: &[u8],
    ) -> Result<Vec<Request>, ProtocolError> {
        let mut buffer = Vec::new();
        let mut out = Vec::new();
        for &byte in input {
            buffer.push(byte);
            loop {
                let parsed = parser.parse(&buffer)?;
                buffer.drain(..parsed.consumed);
                match parsed.request {
                    Some(request) => out.push(request),
                    None => break,
                }
            }
        }
        assert!(buffer.is_empty(), "left over: {buffer:?}");
        Ok(out)
    }

    #[test]
    fn parses_pipelined_arrays_and_inline() {
        let mut parser = RequestParser::new(Limits::default());
        let input = b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nGET  k\r\nECHO \"a b\\x41\\n\" 'c\\'d'\n";
        let requests = parse_all(&mut parser, input).unwrap();
        assert_eq!(
            requests,
            vec![
                vec![b"PING".to_vec()],
                vec![b"SET".to_vec(), b"k".to_vec(), b"".to_vec()],
                vec![b"GET".to_vec(), b"k".to_vec()],
                vec![b"ECHO".to_vec(), b"a bA\n".to_vec(), b"c'd".to_vec()],
            ]
        );
        let mut parser = RequestParser::new(Limits::default());
        assert_eq!(parse_byte_at_a_time(&mut parser, input).unwrap(), requests);
    }

    #[test]
    fn empty_requests_are_returned_empty() {
        let mut parser = RequestParser::new(Limits::default());
        let requests = parse_all(&mut parser, b"\r\n*0\r\n   \n").unwrap();
        assert_eq!(requests, vec![Vec::<Vec<u8>>::new(); 3]);
    }

    #[test]
    fn protocol_errors_use_redis_wording() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "ERR Protocol error: invalid multibulk length"),
            (b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
            (b"*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length"),
            (
                b"*1\r\n+OK\r\n",
                "ERR Protocol error: expected '$', got '+'",
            ),
            (
                b"*1\r\n$1\r\nab\r\n",
                "ERR Protocol error: bulk string not terminated by CRLF",
            ),
            (
                b"SET \"k v\r\n",
                "ERR Protocol error: unbalanced quotes in request",
            ),
            (
                b"SET \"k\"v\r\n",
                "ERR Protocol error: unbalanced quotes in request",
            ),
            (
                b"*99999999999999999999999\r\n",
                "ERR Protocol error: invalid multibulk length",
            ),
        ];
        for (input, expected) in cases {
            let mut parser = RequestParser::new(Limits::default());
            let error = parse_all(&mut parser, input).unwrap_err();
            assert_eq!(
                error.reply_text(),
                *expected,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn limits_are_enforced_before_the_data_arrives() {
        let limits = Limits {
            bulk_bytes_max: 10,
            array_items_max: 3,
            inline_bytes_max: 16,
            request_bytes_max: 25,
        };
        let mut parser = RequestParser::new(limits);
        // Only the header of an oversize bulk: refused at once, without waiting for the data.
        assert_eq!(
            parse_all(&mut parser, b"*1\r\n$11\r\n").unwrap_err(),
            ProtocolError::InvalidBulkLength
        );
        let mut parser = RequestParser::new(limits);
        assert_eq!(
            parse_all(&mut parser, b"*4\r\n").unwrap_err(),
            ProtocolError::InvalidMultibulkLength
        );
        let mut parser = RequestParser::new(limits);
        assert_eq!(
            parse_all(&mut parser, &[b'a'; 17]).unwrap_err(),
            ProtocolError::TooBigInlineRequest
        );
        let mut parser = RequestParser::new(limits);
        assert_eq!(
            parse_all(&mut parser, b"*1\r\n$11111111111111111111").unwrap_err(),
            ProtocolError::TooBigCountString { array: false }
        );
        // At the limit is fine.
        let mut parser = RequestParser::new(limits);
        let mut input = Vec::new();
        encode_request(&mut input, &[&b"0123456789"[..], b"a", b"b"]);
        assert_eq!(parse_all(&mut parser, &input).unwrap().len(), 1);
        // Arguments each within the bulk limit, together above the request limit.
        let mut parser = RequestParser::new(limits);
        let mut input = Vec::new();
        encode_request(&mut input, &[&b"0123456789"[..], b"0123456789", b"012345"]);
        assert_eq!(
            parse_all(&mut parser, &input).unwrap_err(),
            ProtocolError::RequestTooLarge
        );
    }

    #[test]
    fn huge_declared_array_allocates_nothing_up_front() {
        let mut parser = RequestParser::new(Limits::default());
        let parsed = parser.parse(b"*536870912\r\n$1\r\na\r\n").unwrap();
        assert_eq!(parsed.request, None);
        match &parser.state {
            RequestState::Array {
                args, remaining, ..
            } => {
                assert!(args.capacity() <= PREALLOCATE_ITEMS_MAX);
                assert_eq!(*remaining, 536_870_911);
            }
            RequestState::Idle => panic!("expected to be inside an array"),
        }
    }

    #[test]
    fn reply_parser_reads_every_type_and_waits_for_more() {
        let replies = vec![
            Reply::Simple("OK".into()),
            Reply::Error("ERR wrong".into()),
            Reply::Integer(-42),
            Reply::Bulk(Some(b"a\r\nb".to_vec())),
            Reply::Bulk(None),
            Reply::Array(None),
            Reply::Array(Some(vec![
                Reply::Integer(1),
                Reply::Array(Some(vec![Reply::Bulk(Some(Vec::new()))])),
            ])),
        ];
        let mut bytes = Vec::new();
        for reply in &replies {
            reply.encode(&mut bytes);
        }
        let parser = ReplyParser::new(Limits::default());
        let mut at = 0;
        for expected in &replies {
            // Every proper prefix of the reply is incomplete.
            let (reply, used) = parser.parse(&bytes[at..]).unwrap().unwrap();
            for cut in 0..used {
                assert_eq!(parser.parse(&bytes[at..at + cut]).unwrap(), None);
            }
            assert_eq!(&reply, expected);
            at += used;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(
            parser.parse(b"?x\r\n").unwrap_err(),
            ProtocolError::UnknownReplyType { found: b'?' }
        );
        assert_eq!(
            parser.parse(b":1x\r\n").unwrap_err(),
            ProtocolError::InvalidInteger
        );
        let deep = "*1\r\n".repeat(REPLY_DEPTH_MAX + 2);
        assert_eq!(
            parser.parse(deep.as_bytes()).unwrap_err(),
            ProtocolError::TooDeep
        );
    }

    fn arb_reply() -> impl Strategy<Value = Reply> {
        let leaf = prop_oneof![
            "[a-zA-Z0-9 ]{0,20}".prop_map(Reply::Simple),
            "[A-Z]{1,8} [a-z ]{0,20}".prop_map(Reply::Error),
            any::<i64>().prop_map(Reply::Integer),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))
                .prop_map(Reply::Bulk),
            Just(Reply::Array(None)),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            proptest::collection::vec(inner, 0..8).prop_map(|items| Reply::Array(Some(items)))
        })
    }

    proptest! {
        #[test]
        fn requests_round_trip_whole_and_byte_at_a_time(
            requests in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
                1..8,
            )
        ) {
            let mut bytes = Vec::new();
            for request in &requests {
                encode_request(&mut bytes, request);
            }
            let mut parser = RequestParser::new(Limits::default());
            prop_assert_eq!(&parse_all(&mut parser, &bytes).unwrap(), &requests);
            let mut parser = RequestParser::new(Limits::default());
            prop_assert_eq!(&parse_byte_at_a_time(&mut parser, &bytes).unwrap(), &requests);
        }

        #[test]
        fn replies_round_trip(replies in proptest::collection::vec(arb_reply(), 1..6)) {
            let mut bytes = Vec::new();
            for reply in &replies {
                reply.encode(&mut bytes);
            }
            let parser = ReplyParser::new(Limits::default());
            let mut at = 0;
            for expected in &replies {
                let (reply, used) = parser.parse(&bytes[at..]).unwrap().unwrap();
                prop_assert_eq!(&reply, expected);
                at += used;
            }
            prop_assert_eq!(at, bytes.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let limits = Limits {
                bulk_bytes_max: 64,
                array_items_max: 8,
                inline_bytes_max: 32,
                request_bytes_max: 128,
            };
            let mut parser = RequestParser::new(limits);
            let _ = parse_all(&mut parser, &input);
            let mut parser = RequestParser::new(limits);
            let _ = parse_byte_at_a_time_lenient(&mut parser, &input);
            let _ = ReplyParser::new(limits).parse(&input);
        }
    }

    /// Requests and the final error (if any), feeding `input` in pieces of `piece` bytes.
    fn outcome(
        limits: Limits,
        input: &[u8],
        piece: usize,
    ) -> (Vec<Request>, Option<ProtocolError>) {
        let mut parser = RequestParser::new(limits);
        let mut buffer = Vec::new();
        let mut requests = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            buffer.extend_from_slice(chunk);
            loop {
                match parser.parse(&buffer) {
                    Err(e) => return (requests, Some(e)),
                    Ok(parsed) => {
                        buffer.drain(..parsed.consumed);
                        match parsed.request {
                            Some(request) => requests.push(request),
                            None => break,
                        }
                    }
                }
            }
        }
        (requests, None)
    }

    proptest! {
        #[test]
        fn the_outcome_does_not_depend_on_how_input_is_split(
            input in proptest::collection::vec(
                prop_oneof![
                    Just(b'*'), Just(b'$'), Just(b'\r'), Just(b'\n'), Just(b'"'), Just(b' '),
                    Just(b'-'), Just(b'1'), Just(b'2'), Just(b'0'), Just(b'a'), any::<u8>()
                ],
                0..96,
            ),
            piece in 1usize..8,
        ) {
            let limits = Limits {
                bulk_bytes_max: 12,
                array_items_max: 4,
                inline_bytes_max: 6,
                request_bytes_max: 20,
            };
            prop_assert_eq!(outcome(limits, &input, input.len()), outcome(limits, &input, piece));
        }
    }

    fn parse_byte_at_a_time_lenient(
        parser: &mut RequestParser,
        input: &[u8],
    ) -> Result<usize, ProtocolError> {
        let mut buffer = Vec::new();
        let mut count = 0;
        for &byte in input {
            buffer.push(byte);
            loop {
                let parsed = parser.parse(&buffer)?;
                buffer.drain(..parsed.consumed);
                match parsed.request {
                    Some(_) => count += 1,
                    None => break,
                }
            }
        }
        Ok(count)
    }

    #[test]
    fn resp3_writers_write_redis_bytes() {
        let mut out = Vec::new();
        write_null(&mut out);
        write_map_header(&mut out, 2);
        write_set_header(&mut out, 1);
        write_double(&mut out, 1.5);
        write_double(&mut out, 3.0);
        write_double(&mut out, f64::NEG_INFINITY);
        write_boolean(&mut out, true);
        write_boolean(&mut out, false);
        write_verbatim(&mut out, b"txt", b"a\r\nb");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "_\r\n%2\r\n~1\r\n,1.5\r\n,3\r\n,-inf\r\n#t\r\n#f\r\n=8\r\ntxt:a\r\nb\r\n"
        );
    }

    #[test]
    fn frames_downgrade_for_resp2_as_redis_does() {
        let frame = Frame::Array(vec![
            Frame::map([("k", Frame::Null)]),
            Frame::Set(vec![Frame::Integer(1)]),
            Frame::Double(2.5),
            Frame::Boolean(true),
            Frame::Verbatim {
                format: *b"txt",
                text: b"x".to_vec(),
            },
            Frame::NullArray,
        ]);
        assert_eq!(
            String::from_utf8(frame.to_bytes(Protocol::Resp2)).unwrap(),
            "*6\r\n*2\r\n$1\r\nk\r\n$-1\r\n*1\r\n:1\r\n$3\r\n2.5\r\n:1\r\n$1\r\nx\r\n*-1\r\n"
        );
        assert_eq!(
            String::from_utf8(frame.to_bytes(Protocol::Resp3)).unwrap(),
            "*6\r\n%1\r\n$1\r\nk\r\n_\r\n~1\r\n:1\r\n,2.5\r\n#t\r\n=5\r\ntxt:x\r\n_\r\n"
        );
    }

    #[test]
    fn resp3_parser_reads_every_type_and_waits_for_more() {
        let parser = Resp3Parser::new(Limits::default());
        let input = b"*9\r\n_\r\n%1\r\n+a\r\n:1\r\n~1\r\n$1\r\nx\r\n,-0.5\r\n#f\r\n=6\r\ntxt:hi\r\n(123\r\n$-1\r\n-ERR e\r\n";
        let expected = Frame::Array(vec![
            Frame::Null,
            Frame::Map(vec![(Frame::Simple("a".into()), Frame::Integer(1))]),
            Frame::Set(vec![Frame::bulk("x")]),
            Frame::Double(-0.5),
            Frame::Boolean(false),
            Frame::Verbatim {
                format: *b"txt",
                text: b"hi".to_vec(),
            },
            Frame::BigNumber("123".into()),
            Frame::Null,
            Frame::Error("ERR e".into()),
        ]);
        assert_eq!(parser.parse(input).unwrap(), Some((expected, input.len())));
        for end in 0..input.len() {
            assert_eq!(parser.parse(&input[..end]).unwrap(), None, "{end}");
        }
        for bad in [
            &b"_x\r\n"[..],
            b"#x\r\n",
            b",abc\r\n",
            b",\r\n",
            b"=2\r\nab\r\n",
            b"(12a\r\n",
            b">1\r\n:1\r\n",
            b"%-1\r\n",
            b"-\r\r\n",
            b"+a\rb\r\n",
        ] {
            assert!(parser.parse(bad).is_err(), "{bad:?}");
        }
        let mut deep = Vec::new();
        for _ in 0..=REPLY_DEPTH_MAX + 1 {
            deep.extend_from_slice(b"%1\r\n_\r\n");
        }
        assert_eq!(parser.parse(&deep), Err(ProtocolError::TooDeep));
    }

    proptest! {
        /// Whatever bytes arrive, the RESP3 parser answers (a frame, "need more" or an error)
        /// without panicking, and a frame it returns re-encodes to bytes it parses the same.
        #[test]
        fn resp3_parser_never_panics(input in proptest::collection::vec(
            prop::sample::select(b"*%~_$=,#(:+-\r\n0123txt:a".to_vec()), 0..64)) {
            let parser = Resp3Parser::new(Limits::default());
            if let Ok(Some((frame, used))) = parser.parse(&input) {
                prop_assert!(used <= input.len());
                let again = frame.to_bytes(Protocol::Resp3);
                let reparsed = parser.parse(&again).unwrap().unwrap().0;
                // NaN is the one value not equal to itself.
                if !again.windows(3).any(|w| w == b"nan") {
                    prop_assert_eq!(reparsed, frame);
                }
            }
        }
    }
}
