//! What the kernel says about the daemon's own process, read from `/proc/self` (with the
//! `procfs` crate): open files, open sockets, threads, CPU time and resident memory.
//!
//! The shapes follow what Tribler's `/debug` endpoints get from psutil, so that its GUI's debug
//! pane shows them: psutil's `open_files()` (regular files only), `connections()` (TCP and UDP
//! over IPv4 and IPv6, matched to our descriptors by socket inode), its status names, and
//! `"-"` for an address whose port is 0.

use std::collections::HashSet;
use std::net::SocketAddr;

use procfs::net::TcpState;
use procfs::process::{FDTarget, Process};
use procfs::ProcResult;

/// `AF_INET`, as Linux numbers it (psutil reports the raw value).
const AF_INET: u32 = 2;
/// `AF_INET6` on Linux.
const AF_INET6: u32 = 10;
/// `SOCK_STREAM`.
const SOCK_STREAM: u32 = 1;
/// `SOCK_DGRAM`.
const SOCK_DGRAM: u32 = 2;

/// A regular file the process holds open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    /// The path the kernel shows for the descriptor (`… (deleted)` once unlinked).
    pub path: String,
    pub fd: i32,
}

/// The regular files open in this process, by descriptor. Sockets, pipes, devices and
/// anonymous inodes are left out, as psutil's `open_files()` does.
pub fn open_files() -> ProcResult<Vec<OpenFile>> {
    let me = Process::myself()?;
    let mut files = Vec::new();
    // A descriptor closed while we iterate is simply gone: skip it.
    for info in me.fd()?.flatten() {
        let FDTarget::Path(path) = info.target else { continue };
        // Stat the descriptor, not the path: the path may name another file by now.
        let regular = std::fs::metadata(format!("/proc/self/fd/{}", info.fd)).is_ok_and(|m| m.is_file());
        if regular {
            files.push(OpenFile { path: path.to_string_lossy().into_owned(), fd: info.fd });
        }
    }
    files.sort_by_key(|f| f.fd);
    Ok(files)
}

/// An internet socket the process holds open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSocket {
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u32,
    /// psutil's status name (`LISTEN`, `ESTABLISHED`, …; `NONE` for UDP).
    pub status: &'static str,
    /// `ip:port`, or `-` when unbound.
    pub laddr: String,
    /// `ip:port`, or `-` when not connected.
    pub raddr: String,
    /// [`SOCK_STREAM`] or [`SOCK_DGRAM`].
    pub kind: u32,
}

/// The TCP and UDP sockets (IPv4 and IPv6) among this process's descriptors, from the
/// socket tables of its own network namespace.
pub fn open_sockets() -> ProcResult<Vec<OpenSocket>> {
    let me = Process::myself()?;
    let ours: HashSet<u64> = me
        .fd()?
        .flatten()
        .filter_map(|info| match info.target {
            FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect();
    let mut sockets = Vec::new();
    for (family, table) in [(AF_INET, me.tcp()?), (AF_INET6, me.tcp6()?)] {
        for e in table.into_iter().filter(|e| ours.contains(&e.inode)) {
            sockets.push(OpenSocket {
                family,
                status: tcp_status(&e.state),
                laddr: address(e.local_address),
                raddr: address(e.remote_address),
                kind: SOCK_STREAM,
            });
        }
    }
    for (family, table) in [(AF_INET, me.udp()?), (AF_INET6, me.udp6()?)] {
        for e in table.into_iter().filter(|e| ours.contains(&e.inode)) {
            sockets.push(OpenSocket {
                family,
                status: "NONE",
                laddr: address(e.local_address),
                raddr: address(e.remote_address),
                kind: SOCK_DGRAM,
            });
        }
    }
    Ok(sockets)
}

/// psutil's `"%s:%d" % addr` (no brackets around IPv6), or `-` for port 0 (unbound local
/// side, unconnected remote side).
fn address(a: SocketAddr) -> String {
    if a.port() == 0 {
        "-".into()
    } else {
        format!("{}:{}", a.ip(), a.port())
    }
}

/// psutil's names for the kernel's TCP states.
fn tcp_status(s: &TcpState) -> &'static str {
    match s {
        TcpState::Established => "ESTABLISHED",
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv => "SYN_RECV",
        TcpState::FinWait1 => "FIN_WAIT1",
        TcpState::FinWait2 => "FIN_WAIT2",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSE",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::Listen => "LISTEN",
        TcpState::Closing => "CLOSING",
        TcpState::NewSynRecv => "NEW_SYN_RECV",
    }
}

/// One thread of the process.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    /// The kernel's thread id (the process id for the main thread).
    pub id: i32,
    /// The name the thread gave itself (`comm`, at most 15 bytes).
    pub name: String,
    /// What the kernel says the thread is doing. Tribler lists Python stack frames here; a
    /// native thread's stack cannot be walked safely from another thread, so these lines hold
    /// the thread's state, CPU time, context switches, and the kernel function it waits in.
    pub frames: Vec<String>,
}

/// Every thread of the process, main thread first.
pub fn threads() -> ProcResult<Vec<Thread>> {
    let me = Process::myself()?;
    let ticks = procfs::ticks_per_second() as f64;
    let mut threads = Vec::new();
    // A thread that ends while we look is skipped.
    for task in me.tasks()?.flatten() {
        let Ok(stat) = task.stat() else { continue };
        let mut frames = vec![
            format!("state: {} ({})", stat.state, state_name(stat.state)),
            format!("cpu time: user {:.2} s, system {:.2} s", stat.utime as f64 / ticks, stat.stime as f64 / ticks),
        ];
        if let Ok(status) = task.status() {
            if let (Some(v), Some(n)) = (status.voluntary_ctxt_switches, status.nonvoluntary_ctxt_switches) {
                frames.push(format!("context switches: {v} voluntary, {n} involuntary"));
            }
        }
        // `0` when running, or when the kernel hides addresses.
        let wchan = std::fs::read_to_string(format!("/proc/self/task/{}/wchan", task.tid)).unwrap_or_default();
        if !wchan.is_empty() && wchan != "0" {
            frames.push(format!("waiting in kernel: {wchan}"));
        }
        if let Some(cpu) = stat.processor {
            frames.push(format!("last ran on CPU {cpu}"));
        }
        threads.push(Thread { id: task.tid, name: stat.comm, frames });
    }
    threads.sort_by_key(|t| (t.id != me.pid, t.id));
    Ok(threads)
}

/// proc(5)'s names of a task state letter.
fn state_name(state: char) -> &'static str {
    match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "waiting on disk",
        'Z' => "zombie",
        'T' => "stopped",
        't' => "tracing stop",
        'X' | 'x' => "dead",
        'I' => "idle",
        'P' => "parked",
        'W' => "waking",
        'K' => "wakekill",
        _ => "unknown",
    }
}

/// CPU time and resident memory of the process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// User plus system CPU time since the process started, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size in bytes (`statm`'s resident pages).
    pub rss_bytes: u64,
    /// Seconds since the process started.
    pub age_seconds: f64,
}

/// Reads `/proc/self/stat`, `statm` and `/proc/uptime`: a few hundred bytes, no walk.
pub fn usage() -> ProcResult<Usage> {
    use procfs::Current;
    let me = Process::myself()?;
    let stat = me.stat()?;
    let statm = me.statm()?;
    let ticks = procfs::ticks_per_second() as f64;
    let uptime = procfs::Uptime::current()?.uptime;
    Ok(Usage {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        rss_bytes: statm.resident.saturating_mul(procfs::page_size()),
        age_seconds: (uptime - stat.starttime as f64 / ticks).max(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_we_open_is_listed_with_its_descriptor() {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("shoal-debug-proc-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let files = open_files().unwrap();
        let ours = files.iter().find(|f| f.fd == file.as_raw_fd()).expect("our file is listed");
        assert_eq!(ours.path, path.to_string_lossy());
        std::fs::remove_file(&path).unwrap();
        // Unlinked but still open: the kernel's name says so.
        let ours = open_files().unwrap().into_iter().find(|f| f.fd == file.as_raw_fd()).unwrap();
        assert!(ours.path.ends_with(" (deleted)"), "{}", ours.path);
    }

    #[test]
    fn a_listening_socket_and_a_udp_socket_are_listed() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sockets = open_sockets().unwrap();
        let listen = OpenSocket {
            family: AF_INET,
            status: "LISTEN",
            laddr: tcp.local_addr().unwrap().to_string(),
            raddr: "-".into(),
            kind: SOCK_STREAM,
        };
        assert!(sockets.contains(&listen), "{sockets:?}");
        let dgram = OpenSocket {
            family: AF_INET,
            status: "NONE",
            laddr: udp.local_addr().unwrap().to_string(),
            raddr: "-".into(),
            kind: SOCK_DGRAM,
        };
        assert!(sockets.contains(&dgram), "{sockets:?}");
    }

    #[test]
    fn threads_have_their_names_and_main_comes_first() {
        let t = std::thread::Builder::new()
            .name("debug-probe".into())
            .spawn(|| {
                let threads = threads().unwrap();
                assert_eq!(threads[0].id, std::process::id() as i32);
                let me = threads.iter().find(|t| t.name == "debug-probe").expect("this thread is listed");
                assert!(me.frames[0].starts_with("state: "), "{:?}", me.frames);
            })
            .unwrap();
        t.join().unwrap();
    }

    #[test]
    fn usage_is_plausible() {
        let u = usage().unwrap();
        assert!(u.rss_bytes > 1 << 20, "{u:?}");
        assert!(u.cpu_seconds >= 0.0 && u.age_seconds >= 0.0, "{u:?}");
    }
}
