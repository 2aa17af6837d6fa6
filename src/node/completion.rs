//! One-shot completion callbacks: how a proposal's result or a read's answer gets back to its
//! caller without a thread waiting on it.
//!
//! A [`Completion`] wraps the caller's `FnOnce` and guarantees it runs exactly once:
//! [`Completion::complete`] consumes the completion, and a completion dropped without being
//! completed (its holder, a thread or a queue, went away: the node is shutting down) calls the
//! callback with its drop error instead. Every path therefore answers once, and no path
//! answers twice, by construction rather than by care at each call site.
//!
//! Callbacks run on whichever thread resolves the request (the caller's, the event loop's or
//! the apply thread's), so they must be cheap and must not block: push to a queue and wake a
//! poller, for instance.

use std::fmt;

use super::errors::{ProposeError, ReadError};

/// The boxed caller callback.
type Callback<T, E> = Box<dyn FnOnce(Result<T, E>) + Send + 'static>;

/// A callback that runs exactly once: when completed, or with `on_drop`'s error when dropped.
pub(crate) struct Completion<T, E> {
    done: Option<Callback<T, E>>,
    on_drop: fn() -> E,
}

/// Where a proposal's result goes.
pub(crate) type ProposeCompletion = Completion<Vec<u8>, ProposeError>;
/// Where a read's answer goes.
pub(crate) type ReadCompletion = Completion<Vec<u8>, ReadError>;

impl<T, E> Completion<T, E> {
    /// Wraps `done`; if the completion is dropped uncompleted, `done` gets `on_drop()`.
    pub(crate) fn new(
        done: impl FnOnce(Result<T, E>) + Send + 'static,
        on_drop: fn() -> E,
    ) -> Self {
        Completion {
            done: Some(Box::new(done)),
            on_drop,
        }
    }

    /// Runs the callback with `result`.
    pub(crate) fn complete(mut self, result: Result<T, E>) {
        if let Some(done) = self.done.take() {
            done(result);
        }
    }
}

impl ProposeCompletion {
    /// A proposal completion that answers `ShuttingDown` if dropped.
    pub(crate) fn proposal(
        done: impl FnOnce(Result<Vec<u8>, ProposeError>) + Send + 'static,
    ) -> Self {
        Completion::new(crate::metrics::observe_proposal(done), || {
            ProposeError::ShuttingDown
        })
    }
}

impl ReadCompletion {
    /// A read completion that answers `ShuttingDown` if dropped.
    pub(crate) fn read(done: impl FnOnce(Result<Vec<u8>, ReadError>) + Send + 'static) -> Self {
        Completion::new(done, || ReadError::ShuttingDown)
    }
}

impl<T, E> Drop for Completion<T, E> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(Err((self.on_drop)()));
        }
    }
}

impl<T, E> fmt::Debug for Completion<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("pending", &self.done.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn completed_runs_once_with_the_result_and_not_again_on_drop() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&calls);
        let completion = ProposeCompletion::proposal(move |r| seen.lock().unwrap().push(r));
        completion.complete(Ok(b"x".to_vec()));
        assert_eq!(*calls.lock().unwrap(), vec![Ok(b"x".to_vec())]);
    }

    #[test]
    fn dropped_uncompleted_runs_once_with_the_drop_error() {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        let completion = ReadCompletion::read(move |r| {
            assert_eq!(r, Err(ReadError::ShuttingDown));
            seen.fetch_add(1, Ordering::SeqCst);
        });
        drop(completion);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
