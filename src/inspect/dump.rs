//! `ketch wal dump DIR`: the entries of the log, one line each.
//!
//! The log is opened read-only in the default recovery mode, so the entries shown are those a
//! normal open would see (a torn tail is left out, with a note on the notes stream). Entries are
//! read in bounded chunks (see [`super::chunks`]), so memory stays small whatever the log's size.
//!
//! # Line formats
//!
//! - `text`: `index=5 term=2 bytes=11 data="hello\x00world"`. Printable ASCII is shown as is
//!   (with `"` and `\` escaped); `\n`, `\r`, `\t` by their names; every other byte as `\xNN`.
//!   Payloads longer than `max_bytes` show their first `max_bytes` bytes followed by
//!   `...(+N bytes)`.
//! - `hex`: `index=5 term=2 bytes=11 hex=68656c6c6f00776f726c64`, the whole payload.
//! - `json`: `{"index":5,"term":2,"bytes":11,"hex":"68656c6c6f00776f726c64"}`, one object per
//!   line, the whole payload.
//!
//! Damage stops the dump at the first entry that cannot be read: the entries before it are
//! printed, then the error (exit code 1). Nothing is skipped silently.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use ketch_storage::RecoveryMode;

use super::chunks::{self, CHUNK_BUDGET_BYTES};
use super::json::Json;
use super::progress::Progress;
use super::{file_name, open_read_only, InspectError, Verdict};

/// How each entry is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Escaped text, truncated.
    Text,
    /// The whole payload in hex.
    Hex,
    /// One JSON object per line, the payload in hex.
    Json,
}

/// What to dump and how.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// First index to print; the log's first index if `None` or below it.
    pub from: Option<u64>,
    /// Last index to print, inclusive; the log's last index if `None` or above it.
    pub to: Option<u64>,
    /// The group to print, in a store directory (required there; refused for a `Wal`).
    pub group: Option<u64>,
    /// Line format.
    pub format: Format,
    /// Payload bytes shown per entry in the text format.
    pub max_bytes: usize,
    /// Show progress on stderr (when it is a terminal); callers set it when stdout is not one.
    pub progress: bool,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            from: None,
            to: None,
            group: None,
            format: Format::Text,
            max_bytes: 64,
            progress: false,
        }
    }
}

/// Runs `ketch wal dump`: entries to `out`, remarks (clamped bounds, an ignored torn tail) to
/// `notes`.
pub fn run(
    dir: &Path,
    options: &DumpOptions,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<Verdict, InspectError> {
    if let (Some(from), Some(to)) = (options.from, options.to) {
        if from > to {
            return Err(InspectError::Usage(format!(
                "--from {from} is above --to {to}: nothing to dump"
            )));
        }
    }
    if super::store::is_store_dir(dir) {
        return super::store::dump(dir, options.group, options, out, notes);
    }
    if let Some(group) = options.group {
        return Err(InspectError::Usage(format!(
            "--group {group}: {} is a single log, not a store of groups",
            dir.display()
        )));
    }
    let wal = open_read_only(dir, RecoveryMode::TolerateTornTail)?;
    if let Some(torn) = &wal.recovery_report().torn_tail {
        // Notes are advisory: a closed stderr must not stop the dump.
        let _ = writeln!(
            notes,
            "note: {} ends in a torn tail at byte offset {} ({} bytes); it is not shown",
            file_name(&torn.path),
            torn.offset,
            torn.bytes
        );
    }
    let (first, last) = (wal.first_index(), wal.last_index());
    let lo = options.from.unwrap_or(first).max(first);
    let hi = options.to.map_or(last, |to| to.min(last)).saturating_add(1);
    let clamped =
        options.from.is_some_and(|from| from < first) || options.to.is_some_and(|to| to > last);
    if lo >= hi {
        let _ = writeln!(
            notes,
            "note: no entries to dump: the log holds {}",
            if first > last {
                "no entries".to_string()
            } else {
                format!("{first}..={last}")
            }
        );
        return Ok(Verdict::Healthy);
    }
    if clamped {
        let _ = writeln!(
            notes,
            "note: the log holds {first}..={last}; dumping {lo}..={}",
            hi - 1
        );
    }
    let segments = wal.segments();
    let plan = chunks::plan(&segments, lo, hi, CHUNK_BUDGET_BYTES);
    let total_bytes = plan.iter().map(|chunk| chunk.estimated_bytes).sum();
    let mut progress = Progress::on_stderr("dumped", total_bytes, options.progress);
    let mut lines = EntryLines::new(out, options);
    for chunk in &plan {
        let visited = chunks::visit(&wal, chunk, |index, term, data| {
            lines.entry(index, term, data)
        });
        lines.check()?;
        // On damage, the entries before the bad one were printed; the error names it.
        visited?;
        progress.advance(chunk.estimated_bytes);
    }
    progress.finish();
    out.flush()?;
    Ok(Verdict::Healthy)
}

/// Writes entries as lines to an output, for visitors that cannot return an error: the first
/// write error is kept (later entries are skipped) until [`EntryLines::check`] hands it out.
pub struct EntryLines<'a> {
    out: &'a mut dyn Write,
    options: &'a DumpOptions,
    line: String,
    error: Option<io::Error>,
}

impl<'a> EntryLines<'a> {
    /// Lines in `options`' format, to `out`.
    pub fn new(out: &'a mut dyn Write, options: &'a DumpOptions) -> Self {
        EntryLines {
            out,
            options,
            line: String::new(),
            error: None,
        }
    }

    /// Writes one entry's line, unless an earlier write failed.
    pub fn entry(&mut self, index: u64, term: u64, data: &[u8]) {
        if self.error.is_some() {
            return;
        }
        write_line(&mut self.line, index, term, data, self.options);
        if let Err(error) = self.out.write_all(self.line.as_bytes()) {
            self.error = Some(error);
        }
    }

    /// The first write error, if any.
    pub fn check(&mut self) -> io::Result<()> {
        self.error.take().map_or(Ok(()), Err)
    }
}

/// Formats entry `index` (of `term`, payload `data`) into `line` (cleared first), ending with a newline.
pub fn write_line(line: &mut String, index: u64, term: u64, data: &[u8], options: &DumpOptions) {
    line.clear();
    match options.format {
        Format::Text => {
            let _ = write!(
                line,
                "index={} term={} bytes={} data=\"",
                index,
                term,
                data.len()
            );
            let shown = data.len().min(options.max_bytes);
            escape_text(line, &data[..shown]);
            line.push('"');
            if shown < data.len() {
                let _ = write!(line, "...(+{} bytes)", data.len() - shown);
            }
        }
        Format::Hex => {
            let _ = write!(
                line,
                "index={} term={} bytes={} hex=",
                index,
                term,
                data.len()
            );
            push_hex(line, data);
        }
        Format::Json => {
            let mut hex = String::with_capacity(data.len() * 2);
            push_hex(&mut hex, data);
            let object = Json::Object(vec![
                ("index", Json::U64(index)),
                ("term", Json::U64(term)),
                ("bytes", Json::U64(data.len() as u64)),
                ("hex", Json::Str(hex)),
            ]);
            object.write_to(line);
        }
    }
    line.push('\n');
}

/// Printable ASCII as is, `"` and `\` escaped, everything else as an escape.
pub fn escape_text(out: &mut String, bytes: &[u8]) {
    for &byte in bytes {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(byte as char),
            other => {
                let _ = write!(out, "\\x{other:02x}");
            }
        }
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for &byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 0xf) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_for(data: &[u8], format: Format, max_bytes: usize) -> String {
        let mut line = String::new();
        let options = DumpOptions {
            format,
            max_bytes,
            ..DumpOptions::default()
        };
        write_line(&mut line, 7, 3, data, &options);
        line
    }

    #[test]
    fn text_escapes_and_truncates() {
        assert_eq!(
            line_for(b"a\"b\\c\n\x00\xff", Format::Text, 64),
            "index=7 term=3 bytes=8 data=\"a\\\"b\\\\c\\n\\x00\\xff\"\n"
        );
        assert_eq!(
            line_for(b"abcdefgh", Format::Text, 3),
            "index=7 term=3 bytes=8 data=\"abc\"...(+5 bytes)\n"
        );
        assert_eq!(
            line_for(b"", Format::Text, 0),
            "index=7 term=3 bytes=0 data=\"\"\n"
        );
    }

    #[test]
    fn hex_and_json_show_the_whole_payload() {
        assert_eq!(
            line_for(b"\x00\xabZ", Format::Hex, 1),
            "index=7 term=3 bytes=3 hex=00ab5a\n"
        );
        assert_eq!(
            line_for(b"\x00\xabZ", Format::Json, 1),
            "{\"index\":7,\"term\":3,\"bytes\":3,\"hex\":\"00ab5a\"}\n"
        );
    }
}
