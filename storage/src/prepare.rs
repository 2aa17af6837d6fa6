//! Preparing segment files ahead of need: a background thread zero-fills and syncs the next
//! file, so that rolling over to a new segment does not stall writers. Shared by [`crate::Wal`]
//! and [`crate::LogStore`], whose files differ only in their suffix.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::Result;
use crate::files::TempFile;
use crate::segment;

/// A background thread that zero-fills and syncs the next segment file before it is needed.
#[derive(Debug)]
pub(crate) struct Preparer {
    ready: Option<Receiver<Result<(TempFile, File)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Preparer {
    /// Starts preparing files of `size_bytes` in `dir`, named `next-N{suffix}` until taken, on
    /// a thread named `thread_name`.
    pub(crate) fn start(
        dir: PathBuf,
        size_bytes: u64,
        suffix: &'static str,
        thread_name: &'static str,
    ) -> Preparer {
        // Rendezvous channel: at most one prepared file waits, so at most one is wasted at close.
        let (sender, receiver) = mpsc::sync_channel(0);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                // A file not taken (stopped, or the receiver gone) is deleted as it is dropped.
                for attempt in 1u64.. {
                    let path = dir.join(format!("next-{attempt}{suffix}"));
                    let _ = std::fs::remove_file(&path);
                    // Not through the test's fault injector: a test arms a fault for a chosen
                    // write, and this thread writes whenever it gets to run. A failure here
                    // falls back to preparing inline, whose writes do meet the fault.
                    let stop = || thread_stop.load(Ordering::Relaxed);
                    let prepared = segment::prepare_zero_filled(path, size_bytes, &stop, None);
                    let failed = prepared.is_err();
                    if stop() || sender.send(prepared).is_err() || failed {
                        return;
                    }
                }
            })
            .expect("spawning the segment preparer thread");
        Preparer {
            ready: Some(receiver),
            stop,
            thread: Some(thread),
        }
    }

    /// Waits for the prepared file; `None` if the thread has stopped.
    pub(crate) fn take(&self) -> Option<Result<(TempFile, File)>> {
        self.ready.as_ref()?.recv().ok()
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.ready.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
