//! `ketch wal stat|verify|dump` run as a process on directories prepared with `ketch_storage`:
//! a healthy multi-segment log, a torn tail, a flipped bit in a sealed segment, a log with a
//! snapshot, and a `LogStore` of many groups (healthy, then with a flipped bit in a sealed
//! segment). Every command must leave the directory byte-identical.
//!
//! Reproduce one scenario: `cargo test -p ketch --test cli_wal <name>`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ketch_storage::snapshot::{SnapshotOptions, SnapshotStore};
use ketch_storage::{Entry, HardState, LogStore, Options, StoreBatch, StoreOptions, Wal};

const ENTRIES: u64 = 2000;
const BATCH_ENTRIES: u64 = 10;
const HARD_STATE: HardState = HardState {
    term: 3,
    vote: 2,
    commit: 1500,
};

/// The payload of entry `index`: a findable marker, then printable filler, and every seventh
/// entry some bytes that need escaping.
fn payload(index: u64) -> Vec<u8> {
    let mut data = format!("entry-{index:06}-").into_bytes();
    if index % 7 == 0 {
        data.extend_from_slice(b"\x00\xff\"\\\n");
    }
    while data.len() < 60 + (index % 80) as usize {
        data.push(b'a' + (data.len() % 26) as u8);
    }
    data
}

fn open_options() -> Options {
    Options {
        segment_size_bytes: 64 << 10,
        prepare_segments_ahead: false,
        ..Options::default()
    }
}

/// Appends entries `first..=last` in batches of [`BATCH_ENTRIES`], all of term `term`.
fn append_range(wal: &mut Wal, first: u64, last: u64, term: u64) {
    let mut next = first;
    while next <= last {
        let end = (next + BATCH_ENTRIES - 1).min(last);
        let batch: Vec<Entry> = (next..=end)
            .map(|index| Entry::new(index, term, payload(index)))
            .collect();
        wal.append(&batch).unwrap();
        next = end + 1;
    }
}

/// A healthy log of [`ENTRIES`] entries over several 64 KiB segments, with [`HARD_STATE`].
fn healthy_log(dir: &Path) {
    let mut wal = Wal::open(dir, open_options()).unwrap();
    append_range(&mut wal, 1, ENTRIES, 3);
    wal.set_hard_state(HARD_STATE).unwrap();
    wal.sync().unwrap();
    assert!(wal.segments().len() >= 3, "the test needs several segments");
}

/// Every file in `dir` with its bytes.
fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

fn ketch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ketch"))
        .args(args)
        .output()
        .expect("running the ketch binary")
}

fn ketch_in(dir: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args[..2].to_vec();
    all.push(dir.to_str().unwrap());
    all.extend_from_slice(&args[2..]);
    ketch(&all)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

/// Runs every read-only command (all formats) and checks the directory did not change.
fn assert_commands_leave_dir_unchanged(dir: &Path) {
    let before = dir_contents(dir);
    for args in [
        &["wal", "stat"][..],
        &["wal", "stat", "--json"],
        &["wal", "verify"],
        &["wal", "verify", "--json"],
        &["wal", "dump"],
        &["wal", "dump", "--format", "hex"],
        &["wal", "dump", "--format", "json", "--from", "5"],
    ] {
        let output = ketch_in(dir, args);
        // Machine output stays machine-readable on damaged directories too.
        if args.contains(&"--json") {
            parse_json(stdout(&output).trim_end());
        }
        if args.contains(&"json") {
            stdout(&output)
                .lines()
                .for_each(|line| drop(parse_json(line)));
        }
        assert!(
            output.status.code().is_some_and(|code| code <= 1),
            "{args:?} failed: {}",
            stderr(&output)
        );
        let after = dir_contents(dir);
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "{args:?} changed the file list"
        );
        for (name, bytes) in &before {
            assert!(
                after[name] == *bytes,
                "{args:?} changed the bytes of {name}"
            );
        }
    }
}

/// The file name of `path`.
fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// A byte position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn hex_decode(hex: &str) -> Vec<u8> {
    assert_eq!(hex.len() % 2, 0, "odd hex length: {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The text a dump shows for `data`, escaped as documented.
fn escaped(data: &[u8]) -> String {
    let mut out = String::new();
    for &byte in data {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(byte as char),
            other => out.push_str(&format!("\\x{other:02x}")),
        }
    }
    out
}

// ---- a minimal JSON parser, to check the output really is JSON ----------------------------

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    /// Kept as written, so u64 values compare exactly.
    Number(String),
    Str(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    fn get(&self, key: &str) -> &Value {
        match self {
            Value::Object(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no key {key} in {self:?}")),
            _ => panic!("not an object: {self:?}"),
        }
    }

    fn u64(&self) -> u64 {
        match self {
            Value::Number(text) => text.parse().unwrap(),
            _ => panic!("not a number: {self:?}"),
        }
    }

    fn str(&self) -> &str {
        match self {
            Value::Str(text) => text,
            _ => panic!("not a string: {self:?}"),
        }
    }

    fn array(&self) -> &[Value] {
        match self {
            Value::Array(items) => items,
            _ => panic!("not an array: {self:?}"),
        }
    }
}

fn parse_json(text: &str) -> Value {
    let bytes = text.as_bytes();
    let mut position = 0;
    let value = parse_value(bytes, &mut position);
    skip_whitespace(bytes, &mut position);
    assert_eq!(position, bytes.len(), "trailing bytes after JSON in {text}");
    value
}

fn skip_whitespace(bytes: &[u8], position: &mut usize) {
    while *position < bytes.len() && bytes[*position].is_ascii_whitespace() {
        *position += 1;
    }
}

fn expect(bytes: &[u8], position: &mut usize, literal: &str) {
    assert!(
        bytes[*position..].starts_with(literal.as_bytes()),
        "expected {literal} at {position}"
    );
    *position += literal.len();
}

fn parse_value(bytes: &[u8], position: &mut usize) -> Value {
    skip_whitespace(bytes, position);
    match bytes[*position] {
        b'n' => {
            expect(bytes, position, "null");
            Value::Null
        }
        b't' => {
            expect(bytes, position, "true");
            Value::Bool(true)
        }
        b'f' => {
            expect(bytes, position, "false");
            Value::Bool(false)
        }
        b'"' => Value::Str(parse_string(bytes, position)),
        b'[' => {
            *position += 1;
            let mut items = Vec::new();
            skip_whitespace(bytes, position);
            if bytes[*position] == b']' {
                *position += 1;
                return Value::Array(items);
            }
            loop {
                items.push(parse_value(bytes, position));
                skip_whitespace(bytes, position);
                *position += 1;
                match bytes[*position - 1] {
                    b',' => continue,
                    b']' => return Value::Array(items),
                    other => panic!("unexpected {} in array", other as char),
                }
            }
        }
        b'{' => {
            *position += 1;
            let mut fields = Vec::new();
            skip_whitespace(bytes, position);
            if bytes[*position] == b'}' {
                *position += 1;
                return Value::Object(fields);
            }
            loop {
                skip_whitespace(bytes, position);
                let key = parse_string(bytes, position);
                skip_whitespace(bytes, position);
                expect(bytes, position, ":");
                fields.push((key, parse_value(bytes, position)));
                skip_whitespace(bytes, position);
                *position += 1;
                match bytes[*position - 1] {
                    b',' => continue,
                    b'}' => return Value::Object(fields),
                    other => panic!("unexpected {} in object", other as char),
                }
            }
        }
        _ => {
            let start = *position;
            while *position < bytes.len() && b"-+.eE0123456789".contains(&bytes[*position]) {
                *position += 1;
            }
            let number = std::str::from_utf8(&bytes[start..*position]).unwrap();
            number
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad number {number:?}"));
            Value::Number(number.to_string())
        }
    }
}

fn parse_string(bytes: &[u8], position: &mut usize) -> String {
    expect(bytes, position, "\"");
    let mut out = Vec::new();
    loop {
        let byte = bytes[*position];
        *position += 1;
        match byte {
            b'"' => return String::from_utf8(out).unwrap(),
            b'\\' => {
                let escape = bytes[*position];
                *position += 1;
                match escape {
                    b'"' | b'\\' | b'/' => out.push(escape),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'u' => {
                        let hex = std::str::from_utf8(&bytes[*position..*position + 4]).unwrap();
                        let code = u32::from_str_radix(hex, 16).unwrap();
                        *position += 4;
                        let ch = char::from_u32(code).unwrap();
                        out.extend_from_slice(ch.to_string().as_bytes());
                    }
                    other => panic!("bad escape \\{}", other as char),
                }
            }
            control if control < 0x20 => panic!("unescaped control byte {control} in string"),
            other => out.push(other),
        }
    }
}

// ---- scenarios ------------------------------------------------------------------------------

#[test]
fn help_describes_the_commands() {
    let top = ketch(&["--help"]);
    assert_exit(&top, 0);
    assert!(stdout(&top).contains("wal"), "{}", stdout(&top));
    let wal = ketch(&["wal", "--help"]);
    assert_exit(&wal, 0);
    let text = stdout(&wal);
    for word in ["stat", "verify", "dump", "Exit codes", "Read-only"] {
        assert!(
            text.contains(word),
            "`ketch wal --help` lacks {word}:\n{text}"
        );
    }
    let dump = ketch(&["wal", "dump", "--help"]);
    assert_exit(&dump, 0);
    for word in ["--from", "--to", "--format", "--max-bytes", "hex", "json"] {
        assert!(stdout(&dump).contains(word), "{}", stdout(&dump));
    }
    // Usage errors exit 2.
    assert_exit(&ketch(&["wal", "frobnicate"]), 2);
    assert_exit(&ketch(&["wal", "dump"]), 2);
}

#[test]
fn missing_or_empty_directories_are_usage_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    for command in ["stat", "verify", "dump"] {
        let output = ketch(&["wal", command, missing.to_str().unwrap()]);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains("no-such-dir"),
            "{}",
            stderr(&output)
        );
        let empty = ketch(&["wal", command, dir.path().to_str().unwrap()]);
        assert_exit(&empty, 2);
        assert!(
            stderr(&empty).contains("holds no log segments"),
            "{}",
            stderr(&empty)
        );
    }
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn stat_reports_segments_range_and_hard_state_of_a_healthy_log() {
    let dir = tempfile::tempdir().unwrap();
    healthy_log(dir.path());
    let segments = Wal::open(
        dir.path(),
        Options {
            read_only: true,
            ..open_options()
        },
    )
    .unwrap()
    .segments();

    let output = ketch_in(dir.path(), &["wal", "stat"]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(
        text.contains("entries      1..=2000 (2000 entries)"),
        "{text}"
    );
    assert!(
        text.contains("hard state   term 3, vote 2, commit 1500"),
        "{text}"
    );
    assert!(text.contains("recovery     clean"), "{text}");
    assert!(text.contains("snapshots    none"), "{text}");
    for segment in &segments {
        let (first, last) = segment.live_range.unwrap();
        let row = text
            .lines()
            .find(|line| line.contains(&name(&segment.path)))
            .unwrap_or_else(|| panic!("no row for {}:\n{text}", segment.path.display()));
        assert!(row.contains(&format!("{first}..={last}")), "{row}");
        assert!(
            row.contains(&format!("{} / {}", segment.used_bytes, segment.file_len)),
            "{row}"
        );
        assert!(
            row.ends_with(if segment.sealed { "sealed" } else { "active" }),
            "{row}"
        );
    }

    let json = ketch_in(dir.path(), &["wal", "stat", "--json"]);
    assert_exit(&json, 0);
    let value = parse_json(stdout(&json).trim_end());
    assert_eq!(value.get("first_index").u64(), 1);
    assert_eq!(value.get("last_index").u64(), ENTRIES);
    assert_eq!(value.get("entries").u64(), ENTRIES);
    assert_eq!(value.get("hard_state").get("term").u64(), 3);
    assert_eq!(value.get("hard_state").get("vote").u64(), 2);
    assert_eq!(value.get("hard_state").get("commit").u64(), 1500);
    assert_eq!(value.get("recovery").get("torn_tail"), &Value::Null);
    let json_segments = value.get("segments").array();
    assert_eq!(json_segments.len(), segments.len());
    for (shown, segment) in json_segments.iter().zip(&segments) {
        assert_eq!(shown.get("file").str(), name(&segment.path));
        assert_eq!(shown.get("seq").u64(), segment.header.seq);
        assert_eq!(shown.get("live_first").u64(), segment.live_range.unwrap().0);
        assert_eq!(shown.get("live_last").u64(), segment.live_range.unwrap().1);
        assert_eq!(shown.get("used_bytes").u64(), segment.used_bytes);
        assert_eq!(shown.get("file_bytes").u64(), segment.file_len);
        assert_eq!(shown.get("sealed"), &Value::Bool(segment.sealed));
    }
    let used: u64 = segments.iter().map(|s| s.used_bytes).sum();
    assert_eq!(value.get("used_bytes").u64(), used);
}

#[test]
fn verify_passes_a_healthy_log_quietly_and_leaves_it_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    healthy_log(dir.path());
    let output = ketch_in(dir.path(), &["wal", "verify"]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(
        text.contains("entries  2000 of 2000 read and checksummed (1..=2000"),
        "{text}"
    );
    assert!(
        text.contains("hard state term 3, vote 2, commit 1500"),
        "{text}"
    );
    assert!(
        text.contains("checksums, segment chain and footers"),
        "{text}"
    );
    assert!(text.ends_with("result   healthy\n"), "{text}");
    let json = ketch_in(dir.path(), &["wal", "verify", "--json"]);
    assert_exit(&json, 0);
    let report = parse_json(stdout(&json).trim_end());
    assert_eq!(report.get("healthy"), &Value::Bool(true));
    assert!(report.get("problems").array().is_empty());
    assert_eq!(report.get("checked").array().len(), 3);
    // stderr is a pipe here: no progress, nothing at all.
    assert_eq!(stderr(&output), "");
    assert_commands_leave_dir_unchanged(dir.path());
}

#[test]
fn dump_respects_bounds_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    healthy_log(dir.path());

    let text = ketch_in(dir.path(), &["wal", "dump", "--from", "10", "--to", "21"]);
    assert_exit(&text, 0);
    let lines: Vec<_> = stdout(&text).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 12);
    for (line, index) in lines.iter().zip(10u64..) {
        let data = payload(index);
        let shown = &data[..data.len().min(64)];
        let mut expected = format!(
            "index={index} term=3 bytes={} data=\"{}\"",
            data.len(),
            escaped(shown)
        );
        if data.len() > 64 {
            expected.push_str(&format!("...(+{} bytes)", data.len() - 64));
        }
        assert_eq!(line, &expected);
    }
    // Index 14 holds bytes that need escaping.
    assert!(lines[4].contains("\\x00\\xff\\\"\\\\\\n"), "{}", lines[4]);
    assert_eq!(stderr(&text), "");

    let short = ketch_in(
        dir.path(),
        &[
            "wal",
            "dump",
            "--from",
            "20",
            "--to",
            "20",
            "--max-bytes",
            "5",
        ],
    );
    assert_exit(&short, 0);
    let line = stdout(&short);
    assert_eq!(
        line,
        format!(
            "index=20 term=3 bytes={} data=\"entry\"...(+{} bytes)\n",
            payload(20).len(),
            payload(20).len() - 5
        )
    );

    let hex = ketch_in(
        dir.path(),
        &["wal", "dump", "--from", "1990", "--format", "hex"],
    );
    assert_exit(&hex, 0);
    let lines: Vec<_> = stdout(&hex).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 11, "1990..=2000");
    for (line, index) in lines.iter().zip(1990u64..) {
        let (head, digits) = line.split_once(" hex=").unwrap();
        assert_eq!(
            head,
            format!("index={index} term=3 bytes={}", payload(index).len())
        );
        assert_eq!(hex_decode(digits), payload(index));
    }

    let json = ketch_in(
        dir.path(),
        &["wal", "dump", "--to", "30", "--format", "json"],
    );
    assert_exit(&json, 0);
    let lines: Vec<_> = stdout(&json).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 30, "1..=30");
    for (line, index) in lines.iter().zip(1u64..) {
        let value = parse_json(line);
        assert_eq!(value.get("index").u64(), index);
        assert_eq!(value.get("term").u64(), 3);
        assert_eq!(value.get("bytes").u64(), payload(index).len() as u64);
        assert_eq!(hex_decode(value.get("hex").str()), payload(index));
    }

    // Bounds outside the log are clamped, with a note; reversed bounds are a usage error.
    let clamped = ketch_in(
        dir.path(),
        &["wal", "dump", "--from", "1999", "--to", "5000"],
    );
    assert_exit(&clamped, 0);
    assert_eq!(stdout(&clamped).lines().count(), 2);
    assert!(stderr(&clamped).contains("the log holds 1..=2000; dumping 1999..=2000"));
    let beyond = ketch_in(dir.path(), &["wal", "dump", "--from", "3000"]);
    assert_exit(&beyond, 0);
    assert_eq!(stdout(&beyond), "");
    assert!(
        stderr(&beyond).contains("no entries to dump"),
        "{}",
        stderr(&beyond)
    );
    let reversed = ketch_in(dir.path(), &["wal", "dump", "--from", "9", "--to", "8"]);
    assert_exit(&reversed, 2);
    assert!(stderr(&reversed).contains("--from 9 is above --to 8"));
}

#[test]
fn dump_into_a_closed_pipe_stops_quietly() {
    let dir = tempfile::tempdir().unwrap();
    healthy_log(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ketch"))
        .args([
            "wal",
            "dump",
            dir.path().to_str().unwrap(),
            "--format",
            "hex",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("index=1 term=3"), "{first}");
    // Dropping the reader closes the pipe, as `| head -1` does; the dump is far larger than a
    // pipe buffer, so the writer must meet the closed pipe.
    let output = child.wait_with_output().unwrap();
    assert_exit(&output, 0);
    assert_eq!(stderr(&output), "");
}

/// Writes a last batch, then garbles bytes inside it, as a crash in the middle of the write
/// would leave. Returns (active segment, offset where the last batch starts).
fn torn_tail_log(dir: &Path) -> (PathBuf, u64) {
    healthy_log(dir);
    let mut wal = Wal::open(dir, open_options()).unwrap();
    let before = wal.segments().last().unwrap().used_bytes;
    append_range(&mut wal, ENTRIES + 1, ENTRIES + 5, 4);
    wal.sync().unwrap();
    let active = wal.segments().last().unwrap().clone();
    assert!(!active.sealed);
    assert!(
        active.used_bytes > before + 64,
        "the batch must land in the same segment"
    );
    drop(wal);
    let mut bytes = std::fs::read(&active.path).unwrap();
    let middle = ((before + active.used_bytes) / 2) as usize;
    for byte in &mut bytes[middle..middle + 16] {
        *byte ^= 0xA5;
    }
    std::fs::write(&active.path, &bytes).unwrap();
    (active.path, before)
}

#[test]
fn torn_tail_is_damage_for_verify_and_a_finding_for_stat() {
    let dir = tempfile::tempdir().unwrap();
    let (active, batch_offset) = torn_tail_log(dir.path());
    let file = name(&active);

    let verify = ketch_in(dir.path(), &["wal", "verify"]);
    assert_exit(&verify, 1);
    let text = stdout(&verify);
    assert!(
        text.contains(&format!(
            "corruption in {} at byte offset {batch_offset}",
            active.display()
        )),
        "{text}"
    );
    assert!(text.contains("torn tail"), "{text}");
    assert!(
        text.contains("a normal open would cut") && text.contains(&file),
        "{text}"
    );
    // The rest of the log, as a normal open sees it, is intact.
    assert!(text.contains("entries  2000 of 2000 read"), "{text}");
    assert!(text.contains("result   DAMAGED"), "{text}");

    let stat = ketch_in(dir.path(), &["wal", "stat"]);
    assert_exit(&stat, 0);
    let text = stdout(&stat);
    assert!(
        text.contains(&format!(
            "torn tail in {file} at byte offset {batch_offset}"
        )),
        "{text}"
    );
    assert!(text.contains("entries      1..=2000"), "{text}");
    let json = parse_json(stdout(&ketch_in(dir.path(), &["wal", "stat", "--json"])).trim_end());
    let torn = json.get("recovery").get("torn_tail");
    assert_eq!(torn.get("file").str(), file);
    assert_eq!(torn.get("offset").u64(), batch_offset);

    let dump = ketch_in(dir.path(), &["wal", "dump", "--from", "1999"]);
    assert_exit(&dump, 0);
    assert_eq!(
        stdout(&dump).lines().count(),
        2,
        "the torn batch is not shown"
    );
    assert!(stderr(&dump).contains("torn tail"), "{}", stderr(&dump));

    // Read-only means the torn tail is still there for a real open to repair.
    assert_commands_leave_dir_unchanged(dir.path());
}

#[test]
fn flipped_bit_in_a_sealed_segment_is_located_by_file_offset_and_index() {
    let dir = tempfile::tempdir().unwrap();
    healthy_log(dir.path());
    let segments = Wal::open(
        dir.path(),
        Options {
            read_only: true,
            ..open_options()
        },
    )
    .unwrap()
    .segments();
    let sealed = segments
        .iter()
        .find(|s| s.sealed && s.header.seq == 2)
        .unwrap();
    let (first, last) = sealed.live_range.unwrap();
    let victim = (first + last) / 2;
    let mut bytes = std::fs::read(&sealed.path).unwrap();
    let marker = format!("entry-{victim:06}-");
    let at = find(&bytes, marker.as_bytes()).unwrap();
    bytes[at + marker.len() + 1] ^= 0x10;
    std::fs::write(&sealed.path, &bytes).unwrap();

    let verify = ketch_in(dir.path(), &["wal", "verify"]);
    assert_exit(&verify, 1);
    let text = stdout(&verify);
    let damage = text
        .lines()
        .find(|line| line.starts_with("DAMAGE"))
        .unwrap_or_else(|| panic!("no damage line:\n{text}"));
    assert!(
        damage.contains(&sealed.path.display().to_string()),
        "{damage}"
    );
    assert!(
        damage.contains(&format!("(log indices {victim}..={victim})")),
        "{damage}"
    );
    // The offset named is that of the damaged entry's frame, just before its payload.
    let offset: usize = damage
        .split("at byte offset ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {damage}"));
    assert!(
        offset < at && at - offset <= 64,
        "offset {offset}, payload at {at}"
    );
    assert!(
        text.contains(&format!("entries  {} of 2000 read", ENTRIES - 1)),
        "{text}"
    );
    // One flipped bit is one problem, reported once, though both checks trip over it.
    assert_eq!(text.matches("DAMAGE ").count(), 1, "{text}");
    assert!(text.ends_with("result   DAMAGED (1 problem)\n"), "{text}");
    let json = ketch_in(dir.path(), &["wal", "verify", "--json"]);
    assert_exit(&json, 1);
    let report = parse_json(stdout(&json).trim_end());
    assert_eq!(report.get("healthy"), &Value::Bool(false));
    assert_eq!(report.get("damaged_entries").u64(), 1);
    let problem = &report.get("problems").array()[0];
    assert_eq!(problem.get("kind").str(), "damage");
    assert_eq!(problem.get("file").str(), sealed.path.display().to_string());
    assert_eq!(problem.get("offset").u64(), offset as u64);
    assert_eq!(problem.get("first_index").u64(), victim);
    assert_eq!(problem.get("last_index").u64(), victim);

    // Dump stops at the damaged entry, after printing the ones before it.
    let dump = ketch_in(
        dir.path(),
        &["wal", "dump", "--from", &(victim - 3).to_string()],
    );
    assert_exit(&dump, 1);
    assert_eq!(stdout(&dump).lines().count(), 3);
    assert!(
        stderr(&dump).contains(&name(&sealed.path)),
        "{}",
        stderr(&dump)
    );
    assert!(
        stderr(&dump).contains(&format!("{victim}..={victim}")),
        "{}",
        stderr(&dump)
    );

    // Stat reads footers only: it describes the log and does not claim to have checked records.
    let stat = ketch_in(dir.path(), &["wal", "stat"]);
    assert_exit(&stat, 0);
    assert_commands_leave_dir_unchanged(dir.path());
}

/// A log compacted up to a snapshot at index 1200 (term 3), the snapshot in the same directory.
fn log_with_snapshot(dir: &Path) -> PathBuf {
    healthy_log(dir);
    let store = SnapshotStore::open(dir, SnapshotOptions::default()).unwrap();
    let mut writer = store.begin(1200, 3, b"voters=1,2,3").unwrap();
    for key in 0..5000u32 {
        writeln!(writer, "key{key:06}=value-{}", key % 97).unwrap();
    }
    let meta = writer.finish().unwrap();
    drop(store);
    let mut wal = Wal::open(dir, open_options()).unwrap();
    wal.apply_snapshot(1200, 3).unwrap();
    assert!(wal.first_index() == 1201);
    meta.path
}

#[test]
fn snapshots_are_listed_by_stat_and_read_through_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = log_with_snapshot(dir.path());
    let meta = ketch_storage::snapshot::verify_file(&snapshot).unwrap();
    let file = name(&snapshot);

    let stat = ketch_in(dir.path(), &["wal", "stat"]);
    assert_exit(&stat, 0);
    let text = stdout(&stat);
    assert!(
        text.contains("entries      1201..=2000 (800 entries)"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|line| line.starts_with("snapshot") && line.contains(&file))
        .unwrap_or_else(|| panic!("no snapshot row:\n{text}"));
    assert!(row.contains("index 1200, term 3"), "{row}");
    assert!(
        row.contains(&format!("({} B)", meta.uncompressed_bytes)),
        "{row}"
    );
    assert!(
        row.contains(&format!("({} B)", meta.compressed_bytes)),
        "{row}"
    );
    assert!(
        row.contains(&format!("ratio {:.2}", meta.compression_ratio())),
        "{row}"
    );

    let json = parse_json(stdout(&ketch_in(dir.path(), &["wal", "stat", "--json"])).trim_end());
    let shown = &json.get("snapshots").array()[0];
    assert_eq!(shown.get("file").str(), file);
    assert_eq!(shown.get("index").u64(), 1200);
    assert_eq!(shown.get("term").u64(), 3);
    assert_eq!(
        shown.get("uncompressed_bytes").u64(),
        meta.uncompressed_bytes
    );
    assert_eq!(shown.get("compressed_bytes").u64(), meta.compressed_bytes);
    assert_eq!(json.get("first_index").u64(), 1201);

    let verify = ketch_in(dir.path(), &["wal", "verify"]);
    assert_exit(&verify, 0);
    let text = stdout(&verify);
    assert!(
        text.contains(&format!("snapshot {file}: index 1200, term 3")),
        "{text}"
    );
    assert!(text.contains("entries  800 of 800 read"), "{text}");
    assert!(!text.contains("no valid snapshot"), "{text}");
    assert_commands_leave_dir_unchanged(dir.path());

    // A damaged byte in the compressed stream is found and named.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x01;
    std::fs::write(&snapshot, &bytes).unwrap();
    let verify = ketch_in(dir.path(), &["wal", "verify"]);
    assert_exit(&verify, 1);
    let text = stdout(&verify);
    assert!(
        text.lines()
            .any(|line| line.starts_with("DAMAGE") && line.contains(&file)),
        "{text}"
    );
    assert!(
        text.contains("no valid snapshot in this directory covers them"),
        "{text}"
    );
    // Stat reads headers only: the header is intact, so stat still succeeds.
    assert_exit(&ketch_in(dir.path(), &["wal", "stat"]), 0);
    assert_commands_leave_dir_unchanged(dir.path());

    // A damaged header is found by stat too, and named.
    bytes[20] ^= 0x01;
    std::fs::write(&snapshot, &bytes).unwrap();
    let stat = ketch_in(dir.path(), &["wal", "stat"]);
    assert_exit(&stat, 1);
    assert!(
        stdout(&stat).contains(&format!("snapshot     {file}: DAMAGED")),
        "{}",
        stdout(&stat)
    );
}

#[test]
fn an_empty_log_is_healthy_and_dumps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    drop(Wal::open(dir.path(), open_options()).unwrap());
    let stat = ketch_in(dir.path(), &["wal", "stat"]);
    assert_exit(&stat, 0);
    assert!(
        stdout(&stat).contains("entries      none (next index 1)"),
        "{}",
        stdout(&stat)
    );
    assert!(stdout(&stat).contains("hard state   term 0, vote none, commit 0"));
    let verify = ketch_in(dir.path(), &["wal", "verify"]);
    assert_exit(&verify, 0);
    assert!(stdout(&verify).contains("0 of 0 read and checksummed (the log holds no entries"));
    let dump = ketch_in(dir.path(), &["wal", "dump"]);
    assert_exit(&dump, 0);
    assert_eq!(stdout(&dump), "");
    assert!(stderr(&dump).contains("no entries to dump: the log holds no entries"));
    assert_commands_leave_dir_unchanged(dir.path());
}

/// Throughput of `verify` and `dump` on a larger log, through the release or debug binary this
/// test was built with. Ignored by default (it writes hundreds of MiB):
/// `KETCH_CLI_BENCH_MIB=1024 cargo test --release -p ketch --test cli_wal -- --ignored --nocapture`.
/// Set `KETCH_CLI_BENCH_DIR` to build the log there and keep it.
#[test]
#[ignore]
fn large_log_verify_and_dump_throughput() {
    let size_mib: u64 = std::env::var("KETCH_CLI_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("KETCH_CLI_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let entry_bytes = 1024usize;
    let entries = (size_mib << 20) / entry_bytes as u64;
    if !dir
        .join("00000000000000000001-00000000000000000001.wal")
        .exists()
    {
        let mut wal = Wal::open(
            &dir,
            Options {
                segment_size_bytes: 64 << 20,
                ..Options::default()
            },
        )
        .unwrap();
        let mut next = 1u64;
        while next <= entries {
            let end = (next + 255).min(entries);
            let batch: Vec<Entry> = (next..=end)
                .map(|index| {
                    let mut data = payload(index);
                    data.resize(entry_bytes, b'x');
                    Entry::new(index, 1, data)
                })
                .collect();
            wal.append(&batch).unwrap();
            next = end + 1;
        }
        wal.set_hard_state(HardState {
            term: 1,
            vote: 1,
            commit: entries,
        })
        .unwrap();
        wal.sync().unwrap();
    }
    let used_bytes: u64 = Wal::open(
        &dir,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap()
    .segments()
    .iter()
    .map(|s| s.used_bytes)
    .sum();
    let mib = used_bytes as f64 / (1 << 20) as f64;

    let started = std::time::Instant::now();
    let verify = ketch_in(&dir, &["wal", "verify"]);
    let verify_secs = started.elapsed().as_secs_f64();
    assert_exit(&verify, 0);

    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ketch"))
        .args(["wal", "dump", dir.to_str().unwrap(), "--format", "hex"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = 0u64;
    let mut output_bytes = 0u64;
    let mut reader = BufReader::with_capacity(1 << 20, child.stdout.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        lines += 1;
        output_bytes += line.len() as u64;
        line.clear();
    }
    assert!(child.wait().unwrap().success());
    let dump_secs = started.elapsed().as_secs_f64();
    assert_eq!(lines, entries);

    println!(
        "log: {entries} entries of {entry_bytes} B, {mib:.0} MiB of records\n\
         verify: {verify_secs:.2} s, {:.0} MiB/s of log\n\
         dump --format hex: {dump_secs:.2} s, {:.0} MiB/s of log, {:.0} MiB of output",
        mib / verify_secs,
        mib / dump_secs,
        output_bytes as f64 / (1 << 20) as f64
    );
}

#[test]
fn damage_in_the_middle_of_the_active_segment_fails_a_normal_open_and_stat_shows_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    healthy_log(dir.path());
    let segments = Wal::open(
        dir.path(),
        Options {
            read_only: true,
            ..open_options()
        },
    )
    .unwrap()
    .segments();
    let active = segments.last().unwrap();
    assert!(!active.sealed);
    let (first, last) = active.live_range.unwrap();
    assert!(
        last - first > 2 * BATCH_ENTRIES,
        "complete batches must follow the damage"
    );
    // Damage an entry of the active segment's first batch: later batches are intact, so this is
    // not a torn write and no recovery mode but salvage opens the log.
    let mut bytes = std::fs::read(&active.path).unwrap();
    let marker = format!("entry-{:06}-", first + 1);
    let at = find(&bytes, marker.as_bytes()).unwrap();
    bytes[at + marker.len() + 2] ^= 0x01;
    std::fs::write(&active.path, &bytes).unwrap();

    let stat = ketch_in(dir.path(), &["wal", "stat"]);
    assert_exit(&stat, 1);
    let text = stdout(&stat);
    assert!(text.contains("DAMAGE       a normal open fails"), "{text}");
    assert!(text.contains(&name(&active.path)), "{text}");
    assert!(text.contains("salvage"), "{text}");
    // The salvage view keeps the entries before the damaged batch.
    assert!(
        text.contains(&format!("entries      1..={}", first - 1)),
        "{text}"
    );
    let json = parse_json(stdout(&ketch_in(dir.path(), &["wal", "stat", "--json"])).trim_end());
    assert_eq!(json.get("recovery").get("mode").str(), "salvage");
    assert!(json
        .get("recovery")
        .get("open_error")
        .str()
        .contains("not a torn write"));

    let verify = ketch_in(dir.path(), &["wal", "verify"]);
    assert_exit(&verify, 1);
    let text = stdout(&verify);
    assert!(
        text.lines()
            .any(|line| line.starts_with("DAMAGE") && line.contains(&name(&active.path))),
        "{text}"
    );
    assert!(
        text.contains("a normal open fails on this damage too"),
        "{text}"
    );

    let dump = ketch_in(dir.path(), &["wal", "dump"]);
    assert_exit(&dump, 1);
    assert!(
        stderr(&dump).contains(&name(&active.path)),
        "{}",
        stderr(&dump)
    );
    assert_commands_leave_dir_unchanged(dir.path());
}

/// A small deterministic generator, so a failing case can be replayed from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// Copies every file of `from` into `to`.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn randomly_damaged_directories_never_crash_a_command() {
    let template = tempfile::tempdir().unwrap();
    log_with_snapshot(template.path());
    let mut files: Vec<PathBuf> = std::fs::read_dir(template.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let segments = Wal::open(
        template.path(),
        Options {
            read_only: true,
            ..open_options()
        },
    )
    .unwrap()
    .segments();
    let mut detected = 0;
    for seed in 1..=40u64 {
        let mut random = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        let victim = dir.path().join(
            files[random.below(files.len() as u64) as usize]
                .file_name()
                .unwrap(),
        );
        let mut bytes = std::fs::read(&victim).unwrap();
        let damage = match random.below(5) {
            0 => {
                let at = random.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << random.below(8);
                format!("flipped a bit at {at}")
            }
            1 => {
                let len = random.below(bytes.len() as u64) as usize;
                bytes.truncate(len);
                format!("truncated to {len} bytes")
            }
            2 => {
                let at = random.below(bytes.len() as u64) as usize;
                let end = (at + 1 + random.below(4096) as usize).min(bytes.len());
                bytes[at..end].fill(0);
                format!("zeroed {at}..{end}")
            }
            3 => {
                let at = random.below(bytes.len() as u64) as usize;
                let end = (at + 1 + random.below(64) as usize).min(bytes.len());
                for byte in &mut bytes[at..end] {
                    *byte = random.next() as u8;
                }
                format!("garbled {at}..{end}")
            }
            _ => {
                std::fs::remove_file(&victim).unwrap();
                bytes.clear();
                "deleted".to_string()
            }
        };
        if victim.exists() {
            std::fs::write(&victim, &bytes).unwrap();
        }
        // Must verify find it? Every byte of a snapshot file is covered by a checksum or the
        // exact-length rule; a segment's bytes are covered up to its used bytes, and a sealed
        // segment's trailer must stay at its end. Zeros past the records are not data.
        let original = std::fs::read(template.path().join(victim.file_name().unwrap())).unwrap();
        let first_change = original
            .iter()
            .zip(&bytes)
            .position(|(a, b)| a != b)
            .or((bytes.len() < original.len()).then_some(bytes.len()));
        let must_detect = match first_change {
            None => false,
            Some(_) if !victim.exists() => false,
            Some(at) => match segments
                .iter()
                .find(|s| s.path.file_name() == victim.file_name())
            {
                // Spare segments are not data.
                None => name(&victim).ends_with(".snap"),
                Some(segment) => {
                    (at as u64) < segment.used_bytes
                        || (segment.sealed && bytes.len() < original.len())
                }
            },
        };
        let before = dir_contents(dir.path());
        for args in [
            &["wal", "stat"][..],
            &["wal", "stat", "--json"],
            &["wal", "verify"],
            &["wal", "verify", "--json"],
            &["wal", "dump", "--format", "json"],
        ] {
            let output = ketch_in(dir.path(), args);
            let context = format!(
                "seed {seed}: {} {damage}, `ketch {}`:\n{}{}",
                name(&victim),
                args.join(" "),
                stdout(&output)
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n"),
                stderr(&output)
            );
            assert!(matches!(output.status.code(), Some(0..=2)), "{context}");
            assert!(!stderr(&output).contains("panicked"), "{context}");
            if output.status.code() == Some(1) {
                // Damage reports name a file of the directory.
                let all = format!("{}{}", stdout(&output), stderr(&output));
                assert!(all.contains(".wal") || all.contains(".snap"), "{context}");
            }
            assert!(
                before == dir_contents(dir.path()),
                "{context}: the directory changed"
            );
            if args[1] == "verify" && must_detect {
                assert_eq!(output.status.code(), Some(1), "{context}: damage not found");
                detected += 1;
            }
        }
    }
    // The seeds must exercise detection, not only the absence of crashes.
    assert!(detected >= 8, "only {detected} cases needed detection");
}

#[test]
fn a_deleted_newest_segment_is_pointed_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), open_options()).unwrap();
    append_range(&mut wal, 1, 1000, 3);
    wal.set_hard_state(HardState {
        term: 3,
        vote: 2,
        commit: 1995,
    })
    .unwrap();
    append_range(&mut wal, 1001, ENTRIES, 3);
    wal.sync().unwrap();
    let segments = wal.segments();
    drop(wal);
    let newest = segments.last().unwrap();
    let survivor = &segments[segments.len() - 2];
    let survivor_last = survivor.live_range.unwrap().1;
    assert!(
        survivor_last < 1995,
        "the test needs the commit index in the lost segment"
    );
    std::fs::remove_file(&newest.path).unwrap();

    let stat = ketch_in(dir.path(), &["wal", "stat"]);
    assert_exit(&stat, 0);
    let text = stdout(&stat);
    assert!(
        text.contains("the newest segment is sealed and no active segment follows it"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.contains(&name(&survivor.path)))
        .unwrap();
    assert!(row.ends_with("sealed"), "{row}");
    let json = parse_json(stdout(&ketch_in(dir.path(), &["wal", "stat", "--json"])).trim_end());
    assert_eq!(
        json.get("recovery").get("newest_segment_sealed"),
        &Value::Bool(true)
    );

    let verify = ketch_in(dir.path(), &["wal", "verify"]);
    assert_exit(&verify, 0);
    let text = stdout(&verify);
    assert!(text.contains("the newest segment is sealed"), "{text}");
    assert!(
        text.contains(&format!(
            "commit index 1995 is above the last index {survivor_last}"
        )),
        "{text}"
    );
    assert_commands_leave_dir_unchanged(dir.path());

    // A healthy log says neither.
    let healthy = tempfile::tempdir().unwrap();
    healthy_log(healthy.path());
    let text = stdout(&ketch_in(healthy.path(), &["wal", "verify"]));
    assert!(!text.contains("note"), "{text}");
}

/// Runs `command` under `script(1)`, so that the process has a terminal; returns what the
/// terminal received. `None` if `script` is not installed.
fn on_terminal(command: &str) -> Option<String> {
    let typescript = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new("script")
        .args(["-q", "-e", "-c", command])
        .arg(typescript.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    assert!(
        status.success(),
        "`{command}` under script failed: {status}"
    );
    Some(String::from_utf8_lossy(&std::fs::read(typescript.path()).unwrap()).into_owned())
}

#[test]
fn progress_is_drawn_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    healthy_log(dir.path());
    let ketch = env!("CARGO_BIN_EXE_ketch");
    let dir = dir.path().display();
    let out = tempfile::NamedTempFile::new().unwrap();
    let out = out.path().display();
    let Some(verify) = on_terminal(&format!("{ketch} wal verify {dir} > {out}")) else {
        eprintln!("skipped: script(1) is not installed, no terminal to test progress on");
        return;
    };
    assert!(verify.contains("\r\x1b[Kchecking records"), "{verify:?}");
    assert!(verify.contains("\r\x1b[Kverified "), "{verify:?}");
    // The line is erased at the end, so the terminal is left clean.
    assert!(verify.contains(" KiB\r\x1b[K"), "{verify:?}");
    let dump_to_file = on_terminal(&format!("{ketch} wal dump {dir} > {out}")).unwrap();
    assert!(dump_to_file.contains("\r\x1b[Kdumped "), "{dump_to_file:?}");
    // Dumping to the terminal itself: the entries are the progress.
    let dump_to_terminal = on_terminal(&format!("{ketch} wal dump {dir} --to 3")).unwrap();
    assert!(
        dump_to_terminal.contains("index=3 term=3"),
        "{dump_to_terminal:?}"
    );
    assert!(!dump_to_terminal.contains("dumped"), "{dump_to_terminal:?}");
}

/// A store of groups 1..=40 over several 64 KiB segments: group g holds entries
/// `g * 10 ..= g * 10 + 49` of term g, and a hard state naming g.
fn store_of_groups(dir: &Path) {
    // No rewriting: every entry stays where it was first written, so the damage below hits a
    // live copy.
    let no_rewrite = StoreOptions {
        rewrite_bytes_per_round: 0,
        ..StoreOptions::default()
    };
    let store = LogStore::open_with(dir, open_options(), no_rewrite).unwrap();
    for round in 0..5 {
        let mut batch = StoreBatch::new();
        for group in 1..=40u64 {
            let lo = group * 10 + round * 10;
            batch.append(
                group,
                (lo..lo + 10)
                    .map(|index| Entry::new(index, group, payload(index)))
                    .collect(),
            );
            batch.set_hard_state(
                group,
                HardState {
                    term: group,
                    vote: group,
                    commit: lo,
                },
            );
        }
        store.write(batch, true).unwrap();
    }
    assert!(store.stats().segments >= 2, "{:?}", store.stats());
}

#[test]
fn a_store_directory_is_shown_group_by_group() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    store_of_groups(dir);
    let before = dir_contents(dir);

    let output = ketch_in(dir, &["wal", "stat"]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("groups     40"), "{text}");
    let row: Vec<&str> = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some("17"))
        .unwrap_or_else(|| panic!("no row for group 17:\n{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(row, ["17", "170", "219", "50", "17", "17", "210"], "{text}");
    let json = parse_json(stdout(&ketch_in(dir, &["wal", "stat", "--json"])).trim_end());
    let Value::Object(fields) = json else {
        panic!("stat --json is not an object")
    };
    let groups = fields.iter().find(|(k, _)| k == "groups").unwrap();
    assert!(matches!(&groups.1, Value::Array(rows) if rows.len() == 40));

    let output = ketch_in(dir, &["wal", "verify"]);
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("healthy"), "{}", stdout(&output));

    let output = ketch_in(dir, &["wal", "dump"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("--group"), "{}", stderr(&output));
    let output = ketch_in(
        dir,
        &[
            "wal", "dump", "--group", "17", "--from", "200", "--to", "201",
        ],
    );
    assert_exit(&output, 0);
    let heads: Vec<String> = stdout(&output)
        .lines()
        .map(|line| line.split(" data=").next().unwrap().to_string())
        .collect();
    let expected: Vec<String> = [200u64, 201]
        .iter()
        .map(|&index| format!("index={index} term=17 bytes={}", payload(index).len()))
        .collect();
    assert_eq!(heads, expected);
    assert_eq!(dir_contents(dir), before, "the commands changed the store");

    // Damage one live entry of group 3 in the oldest (sealed) segment: verify names the group.
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "kst"))
        .collect();
    segments.sort();
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    let at = find(&bytes, b"entry-000031-").expect("group 3's entry 31 in the oldest segment");
    bytes[at + 3] ^= 0x01;
    std::fs::write(&segments[0], &bytes).unwrap();
    let output = ketch_in(dir, &["wal", "verify"]);
    assert_exit(&output, 1);
    let text = stdout(&output);
    assert!(
        text.contains("group 3") && text.contains(&name(&segments[0])),
        "{text}"
    );
}
