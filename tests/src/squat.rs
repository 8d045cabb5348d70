//! Slot squatters on loopback (issue #14 finding 1): sockets that connect to a peer and hold
//! the connection doing nothing, some without a byte, some after a valid handshake for the
//! torrent; each connects again [`RECONNECT`] after it is closed, as the attack does (the
//! issue's came back every 20 s, when its handshake timed out). They run on threads of the
//! test process until dropped.
//!
//! A tight reconnect loop would be a connection flood instead: no slot policy tells its
//! sockets from an honest one whose handshake is still in the socket buffer, and it burns the
//! CPU of both ends (the seeder of a 2-core machine shares it with 600 squatter threads).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::bencode::InfoHash;

/// How long a blocked read waits before looking at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// How long a squatter waits before connecting again after a close or a refusal.
pub const RECONNECT: Duration = Duration::from_secs(1);

/// Figures of a running squat, shared with its threads.
#[derive(Default, Debug)]
pub struct SquatStats {
    /// Connections open now (accepted or still in the listener's queue).
    pub open: AtomicUsize,
    /// Connections made, over the whole squat.
    pub connects: AtomicU64,
    /// Handshaking connections the peer answered with its own handshake, open now.
    pub answered: AtomicUsize,
    /// Handshakes answered, over the whole squat.
    pub answered_total: AtomicU64,
    /// Connections the peer closed (each one reconnected).
    pub closed: AtomicU64,
}

/// Squatting threads; dropping it stops them and closes their sockets.
pub struct Squatters {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// What they achieved so far.
    pub stats: Arc<SquatStats>,
}

impl Squatters {
    /// Starts `silent` squatters that never send a byte and `handshaking` ones that send a
    /// handshake for `info_hash` (each its own peer id), then nothing, never interested.
    pub fn start(target: SocketAddr, info_hash: InfoHash, silent: usize, handshaking: usize) -> Squatters {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SquatStats::default());
        let threads = (0..silent + handshaking)
            .map(|i| {
                let hello = (i >= silent).then(|| handshake(&info_hash, i));
                let (stop, stats) = (stop.clone(), stats.clone());
                std::thread::Builder::new()
                    .name(format!("squatter-{i}"))
                    .stack_size(64 * 1024)
                    .spawn(move || squat(target, hello, &stop, &stats))
                    .expect("spawn a squatter thread")
            })
            .collect();
        Squatters { stop, threads, stats }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.stats.open.load(Ordering::Relaxed)
    }

    /// A one-line summary for test output.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        format!(
            "open {} connects {} answered now {} answered in all {} closed by the peer {}",
            s.open.load(Ordering::Relaxed),
            s.connects.load(Ordering::Relaxed),
            s.answered.load(Ordering::Relaxed),
            s.answered_total.load(Ordering::Relaxed),
            s.closed.load(Ordering::Relaxed)
        )
    }
}

impl Drop for Squatters {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A BitTorrent handshake (BEP 3) for `info_hash` with a peer id of its own for squatter `i`.
fn handshake(info_hash: &InfoHash, i: usize) -> Vec<u8> {
    let mut out = vec![19];
    out.extend_from_slice(b"BitTorrent protocol");
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&info_hash.0);
    out.extend_from_slice(format!("-SQ0001-{i:012}").as_bytes());
    out
}

/// One squatter: connect, optionally handshake, hold the socket until the peer closes it,
/// and again, until `stop`.
fn squat(target: SocketAddr, hello: Option<Vec<u8>>, stop: &AtomicBool, stats: &SquatStats) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            pause(stop);
            continue;
        };
        let _ = s.set_read_timeout(Some(POLL));
        stats.open.fetch_add(1, Ordering::Relaxed);
        stats.connects.fetch_add(1, Ordering::Relaxed);
        let mut answered = false;
        let mut got = 0usize;
        let mut buf = [0u8; 4096];
        if let Some(h) = &hello {
            if s.write_all(h).is_err() {
                stats.open.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
        }
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    // The peer's handshake is 68 bytes; whatever follows is ignored.
                    if hello.is_some() && !answered && got >= 68 {
                        answered = true;
                        stats.answered.fetch_add(1, Ordering::Relaxed);
                        stats.answered_total.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if answered {
            stats.answered.fetch_sub(1, Ordering::Relaxed);
        }
        stats.open.fetch_sub(1, Ordering::Relaxed);
        if !stop.load(Ordering::Relaxed) {
            stats.closed.fetch_add(1, Ordering::Relaxed);
            pause(stop);
        }
    }
}

/// Waits [`RECONNECT`] (the attack's pace, not a synchronisation), or less once `stop` is set.
fn pause(stop: &AtomicBool) {
    let until = std::time::Instant::now() + RECONNECT;
    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
        std::thread::sleep(POLL.min(RECONNECT));
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to at least `want` (up to the hard limit), so
/// that a test can hold hundreds of sockets; returns the soft limit in force.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}
