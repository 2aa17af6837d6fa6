//! Progress on stderr for long operations, shown only to a person watching a terminal.
//!
//! A line such as `verified 1.2 GiB of 3.4 GiB` is redrawn in place (carriage return, then an
//! erase-to-end-of-line escape) at most [`REDRAW_INTERVAL`] apart, so a fast loop costs one clock
//! read per update and a terminal is not flooded. When stderr is not a terminal (a pipe, a file,
//! a test) nothing at all is written, so scripted runs get clean, stable output.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Shortest time between two redraws: ten per second at most.
pub const REDRAW_INTERVAL: Duration = Duration::from_millis(100);

/// A progress line for an operation of a known size in bytes.
pub struct Progress {
    /// Where the line goes; `None` when progress is off.
    sink: Option<Box<dyn Write>>,
    verb: &'static str,
    done_bytes: u64,
    total_bytes: u64,
    last_redraw: Option<Instant>,
    drawn: bool,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("enabled", &self.sink.is_some())
            .field("verb", &self.verb)
            .field("done_bytes", &self.done_bytes)
            .field("total_bytes", &self.total_bytes)
            .finish()
    }
}

impl Progress {
    /// Progress on stderr, if stderr is a terminal and `wanted`; otherwise a no-op.
    /// `verb` names what is done, in the past tense: `"verified"`, `"dumped"`.
    pub fn on_stderr(verb: &'static str, total_bytes: u64, wanted: bool) -> Progress {
        let sink: Option<Box<dyn Write>> = if wanted && std::io::stderr().is_terminal() {
            Some(Box::new(std::io::stderr()))
        } else {
            None
        };
        Progress::to_sink(sink, verb, total_bytes)
    }

    /// Progress written to `sink`, or nothing when `sink` is `None`.
    pub fn to_sink(sink: Option<Box<dyn Write>>, verb: &'static str, total_bytes: u64) -> Progress {
        Progress {
            sink,
            verb,
            done_bytes: 0,
            total_bytes,
            last_redraw: None,
            drawn: false,
        }
    }

    /// True if this progress writes anything.
    pub fn is_enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Bytes reported done so far.
    pub fn done_bytes(&self) -> u64 {
        self.done_bytes
    }

    /// Changes the verb for the rest of the operation (for example from reading entries to
    /// checking snapshots) and the total it counts towards.
    pub fn restart(&mut self, verb: &'static str, total_bytes: u64) {
        self.verb = verb;
        self.done_bytes = 0;
        self.total_bytes = total_bytes;
        self.last_redraw = None;
    }

    /// Shows `text` in place of the progress line until the next redraw: for a phase that
    /// cannot report progress of its own.
    pub fn show_phase(&mut self, text: &str) {
        if let Some(sink) = &mut self.sink {
            let _ = write!(sink, "\r\x1b[K{text}");
            let _ = sink.flush();
            self.drawn = true;
            self.last_redraw = None;
        }
    }

    /// Records `bytes` more done, redrawing if the last redraw is old enough.
    pub fn advance(&mut self, bytes: u64) {
        self.advance_at(bytes, Instant::now());
    }

    /// [`Progress::advance`] with the clock passed in, so the rate limit can be tested.
    pub fn advance_at(&mut self, bytes: u64, now: Instant) {
        self.done_bytes = self.done_bytes.saturating_add(bytes);
        if self.sink.is_none() {
            return;
        }
        let due = self
            .last_redraw
            .is_none_or(|last| now.duration_since(last) >= REDRAW_INTERVAL);
        if due {
            self.last_redraw = Some(now);
            self.redraw();
        }
    }

    /// Erases the line, so that what follows on stderr starts on a clean line.
    pub fn finish(&mut self) {
        if self.drawn {
            if let Some(sink) = &mut self.sink {
                let _ = sink.write_all(b"\r\x1b[K");
                let _ = sink.flush();
            }
            self.drawn = false;
        }
    }

    fn redraw(&mut self) {
        let line = format!(
            "\r\x1b[K{} {} of {}",
            self.verb,
            human_bytes(self.done_bytes.min(self.total_bytes)),
            human_bytes(self.total_bytes)
        );
        if let Some(sink) = &mut self.sink {
            // Progress is a courtesy: a failing stderr must not fail the operation.
            let _ = sink.write_all(line.as_bytes());
            let _ = sink.flush();
            self.drawn = true;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `bytes` in binary units with one decimal: `512 B`, `1.5 KiB`, `3.4 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink the test can read back after the progress wrote to it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn redraws_at_most_every_interval_and_erases_at_the_end() {
        let shared = Shared::default();
        let mut progress = Progress::to_sink(Some(Box::new(shared.clone())), "verified", 4 << 30);
        let start = Instant::now();
        progress.advance_at(1 << 30, start);
        // 99 updates within the same interval: none of them redraws.
        for step in 1..100u64 {
            progress.advance_at(1 << 20, start + Duration::from_millis(step));
        }
        progress.advance_at(0, start + REDRAW_INTERVAL);
        progress.show_phase("checking footers");
        // A phase message is replaced by the next update, whatever the interval.
        progress.advance_at(0, start + REDRAW_INTERVAL + Duration::from_millis(1));
        progress.finish();
        let text = String::from_utf8(shared.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("verified").count(), 3, "{text:?}");
        assert!(text.contains("checking footers\r"), "{text:?}");
        assert!(text.contains("verified 1.0 GiB of 4.0 GiB"), "{text:?}");
        assert!(text.contains("verified 1.1 GiB of 4.0 GiB"), "{text:?}");
        assert!(text.ends_with("\r\x1b[K"), "{text:?}");
    }

    #[test]
    fn disabled_progress_writes_nothing_but_counts() {
        let mut progress = Progress::to_sink(None, "dumped", 10);
        progress.advance(7);
        progress.finish();
        assert!(!progress.is_enabled());
        assert_eq!(progress.done_bytes(), 7);
    }
}
