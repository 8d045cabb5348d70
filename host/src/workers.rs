//! Fixed pools of threads for a session's disk and hash jobs.
//!
//! An executor's blocking pool grows a thread whenever work waits: with hashing behind on a
//! busy machine, one download grew to 170 threads, each holding a stack and an allocator heap
//! (260 MiB of RSS), and none of them made the two cores faster. Hashing wants one thread per
//! core; disk I/O a few threads, so that a slow read does not hold up the rest.

use std::thread;

use async_channel::{Receiver, Sender};

/// A unit of work for a pool thread.
type Work = Box<dyn FnOnce() + Send>;

/// Threads for disk I/O (reads, writes, checks of existing data).
const DISK_THREADS: usize = 4;
/// Most hashing threads, however many cores there are.
const MAX_HASH_THREADS: usize = 8;

/// The disk and hash pools of one session; their threads end once this is dropped and the
/// work queued before has run.
pub(crate) struct Workers {
    disk: Sender<Work>,
    hash: Sender<Work>,
}

impl Workers {
    /// Starts [`DISK_THREADS`] disk threads and one hash thread per core.
    pub(crate) fn start() -> std::io::Result<Workers> {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Workers { disk: pool("shoal-disk", DISK_THREADS)?, hash: pool("shoal-hash", cores.min(MAX_HASH_THREADS))? })
    }

    /// Queues disk work.
    pub(crate) fn disk(&self, work: impl FnOnce() + Send + 'static) {
        let _ = self.disk.try_send(Box::new(work));
    }

    /// Queues hashing work.
    pub(crate) fn hash(&self, work: impl FnOnce() + Send + 'static) {
        let _ = self.hash.try_send(Box::new(work));
    }
}

fn pool(name: &str, threads: usize) -> std::io::Result<Sender<Work>> {
    let (tx, rx): (Sender<Work>, Receiver<Work>) = async_channel::unbounded();
    for i in 0..threads {
        let rx = rx.clone();
        thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
            while let Ok(work) = rx.recv_blocking() {
                work();
            }
        })?;
    }
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn runs_every_queued_job_on_a_bounded_set_of_named_threads() {
        let workers = Workers::start().unwrap();
        let (done_tx, done_rx) = async_channel::unbounded();
        let count = Arc::new(AtomicUsize::new(0));
        for i in 0..200 {
            let (done, count) = (done_tx.clone(), count.clone());
            let job = move || {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = done.send_blocking(thread::current().name().unwrap_or("").to_string());
            };
            if i % 2 == 0 {
                workers.disk(job);
            } else {
                workers.hash(job);
            }
        }
        let names: std::collections::BTreeSet<String> = (0..200).map(|_| done_rx.recv_blocking().unwrap()).collect();
        assert_eq!(count.load(Ordering::SeqCst), 200);
        assert!(names.iter().all(|n| n.starts_with("shoal-disk-") || n.starts_with("shoal-hash-")), "{names:?}");
        assert!(names.len() <= DISK_THREADS + MAX_HASH_THREADS, "{names:?}");
    }
}
