//! Preparing segment files ahead of need: a background thread zero-fills and syncs the next
//! file, so that rolling over to a new segment does not stall writers. Shared by [`crate::Wal`]
//! and [`crate::LogStore`], whose files differ only in their suffix.
//!
//! # Pacing
//!
//! The zeros go out in synced steps (see [`segment::ZERO_FILL_STEP_BYTES`]), and each step
//! delays the append whose fdatasync meets it on the disk by about the step's write-back time.
//! Run back to back, the steps keep the disk busy for the whole preparation and every append
//! in that time meets one. Paced, they are spread over the time the active segment takes to
//! fill halfway, and the appends between them run on a quiet disk. The owner paces the thread
//! ([`Preparer::start_paced`], [`Preparer::pace`]) by saying how many bytes of the next file it
//! wants ready by now; the thread parks while it is that far ahead, and a pace above its
//! progress wakes it. While the owner wants any of the file, the thread also trickles on, so
//! that the file is complete a few seconds after it began however slowly the segment fills.
//! At its pace it writes the smallest steps; behind it (the owner's segment
//! fills faster than the steps go out), bigger ones, which need fewer flushes for the same
//! zeros. [`Preparer::take`] asks for the whole file before it waits for it.
//!
//! [`crate::Wal`] and [`crate::LogStore`] both pace through [`Preparer::pace_to_fill`] after
//! every write, and ask for nothing while they hold a spare file for the next roll, so a log
//! that compacts and reuses its files prepares none once it has spares (unpaced, the thread
//! zero-filled one more file as soon as the last one was taken, whether or not a roll would
//! ever need it). Unpaced, measured with the store: its keep-everything W3 maximum batch
//! latency was 58-88 ms against the paced Wal's 23-28 ms in the same run.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::files::TempFile;
use crate::segment;

/// Longest the thread sleeps before it looks at the pace again while it is ahead. The owner
/// wakes it as soon as it asks for more; this only bounds a wake-up that went missing.
const PACE_RECHECK: Duration = Duration::from_millis(100);

/// A paced thread behind its pace by B bytes writes a step of B / this (within the step bounds
/// of [`segment::prepare_zero_filled_in_steps`]): it catches up in a few steps, and at its pace
/// it writes the smallest ones.
const BEHIND_PER_STEP: u64 = 4;

/// However slowly a paced owner's segment fills, its next file is complete this long after the
/// thread starts on it, as long as the owner wants any of it: a batch of more than the room
/// left, arriving after a quiet spell, then finds the file ready instead of waiting for all of
/// its zeros. A default segment's trickle is a 256 KiB step every 16 ms.
const PACED_FILE_WITHIN: Duration = Duration::from_secs(4);

/// A background thread that zero-fills and syncs the next segment file before it is needed.
#[derive(Debug)]
pub(crate) struct Preparer {
    ready: Option<Receiver<Result<(TempFile, File)>>>,
    stop: Arc<AtomicBool>,
    /// Bytes of the file in preparation the owner wants ready by now (`u64::MAX`: all of it).
    wanted_bytes: Arc<AtomicU64>,
    /// The thread sleeps until `wanted_bytes` exceeds this (`u64::MAX`: it is not sleeping).
    wake_above_bytes: Arc<AtomicU64>,
    /// The owner paces the thread: after a take, the next file waits for its pace.
    paced: bool,
    thread: Option<JoinHandle<()>>,
}

impl Preparer {
    /// Starts preparing files of `size_bytes` in `dir`, named `next-N{suffix}` until taken, on
    /// a thread named `thread_name`, each as fast as it can (the owners pace theirs; this is
    /// the step machinery alone, for its tests).
    #[cfg(test)]
    pub(crate) fn start(
        dir: PathBuf,
        size_bytes: u64,
        suffix: &'static str,
        thread_name: &'static str,
    ) -> Preparer {
        Self::spawn(dir, size_bytes, suffix, thread_name, None)
    }

    /// [`Preparer::start`], but the thread prepares only as much as [`Preparer::pace`] asks.
    pub(crate) fn start_paced(
        dir: PathBuf,
        size_bytes: u64,
        suffix: &'static str,
        thread_name: &'static str,
    ) -> Preparer {
        Self::spawn(
            dir,
            size_bytes,
            suffix,
            thread_name,
            Some(PACED_FILE_WITHIN),
        )
    }

    /// Paced if `paced_file_within` is given: see [`PACED_FILE_WITHIN`].
    fn spawn(
        dir: PathBuf,
        size_bytes: u64,
        suffix: &'static str,
        thread_name: &'static str,
        paced_file_within: Option<Duration>,
    ) -> Preparer {
        let paced = paced_file_within.is_some();
        // Rendezvous channel: at most one prepared file waits, so at most one is wasted at close.
        let (sender, receiver) = mpsc::sync_channel(0);
        let stop = Arc::new(AtomicBool::new(false));
        let wanted_bytes = Arc::new(AtomicU64::new(if paced { 0 } else { u64::MAX }));
        let thread_stop = Arc::clone(&stop);
        let thread_wanted = Arc::clone(&wanted_bytes);
        let wake_above_bytes = Arc::new(AtomicU64::new(u64::MAX));
        let thread_wake_above = Arc::clone(&wake_above_bytes);
        let thread = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                // A file not taken (stopped, or the receiver gone) is deleted as it is dropped.
                for attempt in 1u64.. {
                    let path = dir.join(format!("next-{attempt}{suffix}"));
                    let _ = std::fs::remove_file(&path);
                    let stopped = || thread_stop.load(Ordering::Relaxed);
                    let file_started = Instant::now();
                    // What the owner wants, or the trickle if that is more (see
                    // `PACED_FILE_WITHIN`), and how long until the trickle passes `done_bytes`.
                    let wanted = |done_bytes: u64| -> (u64, Duration) {
                        let owner = thread_wanted.load(Ordering::SeqCst);
                        let Some(within) = paced_file_within.filter(|_| owner > 0) else {
                            return (owner, PACE_RECHECK);
                        };
                        let within = within.as_secs_f64();
                        let elapsed = file_started.elapsed().as_secs_f64();
                        let trickle = (size_bytes as f64 * elapsed / within) as u64;
                        let until =
                            (done_bytes as f64 + 1.0) * within / size_bytes as f64 - elapsed;
                        let until = Duration::from_secs_f64(until.max(0.0)).min(PACE_RECHECK);
                        (owner.max(trickle), until)
                    };
                    // Called before each step with the bytes done so far.
                    let next_step = |done_bytes: u64| {
                        // Bounded: the owner raises the pace as its segment fills, and asks for
                        // everything before it waits for the file; stop ends it too. Each of
                        // them wakes the thread once the value is above `wake_above`, set
                        // before the check so that a raise in between is not missed.
                        thread_wake_above.store(done_bytes, Ordering::SeqCst);
                        loop {
                            let (wanted_bytes, recheck) = wanted(done_bytes);
                            if stopped() || done_bytes < wanted_bytes {
                                break;
                            }
                            std::thread::park_timeout(recheck);
                        }
                        thread_wake_above.store(u64::MAX, Ordering::SeqCst);
                        if stopped() {
                            return None;
                        }
                        if !paced {
                            return Some(segment::ZERO_FILL_STEP_BYTES);
                        }
                        // Behind its pace, the thread takes bigger steps (fewer flushes for
                        // the same zeros) to catch up: each costs the append that meets it
                        // more, but a roll that finds the file unfinished waits for all the
                        // rest.
                        let behind_bytes = wanted(done_bytes).0.saturating_sub(done_bytes);
                        Some(behind_bytes / BEHIND_PER_STEP)
                    };
                    // Not through the test's fault injector: a test arms a fault for a chosen
                    // write, and this thread writes whenever it gets to run. A failure here
                    // falls back to preparing inline, whose writes do meet the fault.
                    let prepared =
                        segment::prepare_zero_filled_in_steps(path, size_bytes, &next_step, None);
                    let failed = prepared.is_err();
                    if stopped() || sender.send(prepared).is_err() || failed {
                        return;
                    }
                }
            })
            .expect("spawning the segment preparer thread");
        Preparer {
            ready: Some(receiver),
            stop,
            wanted_bytes,
            wake_above_bytes,
            paced,
            thread: Some(thread),
        }
    }

    /// Lets the thread prepare `wanted_bytes` of the next file by now and no more (`u64::MAX`:
    /// all of it, at once).
    pub(crate) fn pace(&self, wanted_bytes: u64) {
        self.wanted_bytes.store(wanted_bytes, Ordering::SeqCst);
        if wanted_bytes > self.wake_above_bytes.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    /// Paces the thread to how full the active segment is: all of the next file by the time
    /// the active segment (`written` of its `file_len` bytes) is half full, in proportion
    /// before; nothing while a spare file waits for the next roll. Half, not all: a write rate
    /// that jumps (from one small entry per sync to large batches) can fill the second half
    /// several times faster than the first, and a roll that finds the file unfinished waits for
    /// the rest. `size_bytes` is the file size being prepared.
    pub(crate) fn pace_to_fill(
        &self,
        spare_waiting: bool,
        written: u64,
        file_len: u64,
        size_bytes: u64,
    ) {
        if spare_waiting {
            self.pace(0);
            return;
        }
        let half_len = (file_len / 2).max(1);
        let wanted_bytes = u128::from(size_bytes) * u128::from(written) / u128::from(half_len);
        self.pace(u64::try_from(wanted_bytes).unwrap_or(u64::MAX));
    }

    fn wake(&self) {
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }

    /// Waits for the prepared file, asking for all of it first; `None` if the thread has
    /// stopped. A paced thread then waits for the owner's pace for the next file.
    pub(crate) fn take(&self) -> Option<Result<(TempFile, File)>> {
        self.pace(u64::MAX);
        let taken = self.ready.as_ref()?.recv().ok();
        if self.paced {
            self.pace(0);
        }
        taken
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake();
        self.ready.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The length of the preparer's `attempt`th file.
    fn preparing_len(dir: &std::path::Path, attempt: u64) -> u64 {
        let path = dir.join(format!("next-{attempt}.test.tmp"));
        std::fs::metadata(path).map_or(0, |meta| meta.len())
    }

    /// Waits (up to a generous bound, for a loaded machine) until the file in preparation
    /// holds at least `len_bytes`.
    fn wait_for_len(dir: &std::path::Path, len_bytes: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while preparing_len(dir, 1) < len_bytes {
            assert!(
                Instant::now() < deadline,
                "the preparer never reached {len_bytes} bytes"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_paced_preparer_goes_no_further_than_asked_and_take_asks_for_everything() {
        let dir = tempfile::tempdir().unwrap();
        let step = segment::ZERO_FILL_STEP_BYTES;
        let size_bytes = 4 * step;
        let never = Some(Duration::from_secs(24 * 3600));
        let preparer = Preparer::spawn(dir.path().into(), size_bytes, ".test.tmp", "test", never);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            preparing_len(dir.path(), 1),
            0,
            "nothing asked, nothing written"
        );

        preparer.pace(1);
        wait_for_len(dir.path(), step);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            preparing_len(dir.path(), 1),
            step,
            "one byte asked: one step"
        );

        preparer.pace(2 * step + 1);
        wait_for_len(dir.path(), 3 * step);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(preparing_len(dir.path(), 1), 3 * step);

        let (temp, file) = preparer.take().unwrap().unwrap();
        assert_eq!(file.metadata().unwrap().len(), size_bytes);
        assert!(std::fs::read(temp.path()).unwrap().iter().all(|b| *b == 0));
        std::thread::sleep(Duration::from_millis(100));
        // At most the one step it may have begun while take asked for everything.
        assert!(
            preparing_len(dir.path(), 2) <= segment::ZERO_FILL_STEP_MAX_BYTES,
            "after a take, the next file waits for its pace"
        );
    }

    #[test]
    fn a_paced_preparer_trickles_on_while_any_of_the_file_is_wanted() {
        let dir = tempfile::tempdir().unwrap();
        let size_bytes = 4 * segment::ZERO_FILL_STEP_BYTES;
        let within = Some(Duration::from_millis(200));
        let preparer = Preparer::spawn(dir.path().into(), size_bytes, ".test.tmp", "test", within);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            preparing_len(dir.path(), 1),
            0,
            "no trickle while nothing is wanted"
        );
        preparer.pace(1);
        wait_for_len(dir.path(), size_bytes);
        let (_temp, file) = preparer.take().unwrap().unwrap();
        assert_eq!(file.metadata().unwrap().len(), size_bytes);
    }

    #[test]
    fn an_unpaced_preparer_prepares_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let size_bytes = 3 * segment::ZERO_FILL_STEP_BYTES + 1000;
        let preparer = Preparer::start(dir.path().into(), size_bytes, ".test.tmp", "test");
        wait_for_len(dir.path(), size_bytes);
        let (_temp, file) = preparer.take().unwrap().unwrap();
        assert_eq!(file.metadata().unwrap().len(), size_bytes);
    }
}
