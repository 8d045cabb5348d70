//! The daemon's runtime: its tasks, blocking work and timers go through the engine's
//! runtime-neutral [`Runtime`] trait, so the daemon runs on smol or tokio alike.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use shoal_host::Runtime;

/// A boxed future of the daemon's tasks.
type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A spawned task: dropping it cancels the task.
pub struct Task {
    /// The runtime's own handle, held for its drop.
    _running: Box<dyn std::any::Any + Send + Sync>,
}

/// Spawning, blocking work and timers of one [`Runtime`], as plain functions so that the
/// daemon's state holds it without being generic.
#[derive(Clone, Copy)]
pub struct Rt {
    spawn: fn(BoxFuture) -> Task,
    spawn_blocking: fn(Box<dyn FnOnce() + Send>),
    sleep_until: fn(Instant) -> BoxFuture,
}

impl Rt {
    /// The runtime `R`.
    pub fn of<R: Runtime>() -> Rt {
        Rt {
            spawn: |fut| Task { _running: Box::new(R::spawn(fut)) },
            spawn_blocking: |work| R::spawn_blocking(work),
            sleep_until: |at| Box::pin(R::sleep_until(at)),
        }
    }

    /// Runs `fut` as a task of its own, cancelled when the returned [`Task`] is dropped.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) -> Task {
        (self.spawn)(Box::pin(fut))
    }

    /// Runs `fut` to its end as a task of its own, with nothing to cancel it.
    pub fn detach(&self, fut: impl Future<Output = ()> + Send + 'static) {
        // The trait's tasks end when their handle is dropped, so the task holds its own
        // handle and lets go of it when done (forgetting it would leak the task's memory).
        let (tx, rx) = async_channel::bounded::<Task>(1);
        let task = self.spawn(async move {
            let _own = rx.recv().await;
            fut.await;
        });
        let _ = tx.try_send(task);
    }

    /// Runs `work` on the blocking pool and waits for its result.
    pub async fn unblock<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = async_channel::bounded(1);
        (self.spawn_blocking)(Box::new(move || {
            let _ = tx.try_send(work());
        }));
        // Only a panic of `work` drops the sender unanswered: pass it on.
        rx.recv().await.expect("blocking work panicked")
    }

    /// Runs `work` on the blocking pool without waiting for it.
    pub fn spawn_blocking(&self, work: impl FnOnce() + Send + 'static) {
        (self.spawn_blocking)(Box::new(work))
    }

    /// Completes at `at`.
    pub fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + Send + 'static {
        (self.sleep_until)(at)
    }

    /// Completes after `d`.
    pub fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send + 'static {
        self.sleep_until(Instant::now() + d)
    }
}
