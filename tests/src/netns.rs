//! Network namespaces of a test's own: processes started inside see only the namespace's
//! loopback, so nothing they send can leave the machine whatever they try (Tribler's GUI:
//! version check, error reporting). Creating one needs root; [`Netns::create`] and
//! [`isolate_this_thread`] say why they cannot, and the tests skip with that message.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

/// A network namespace with only `lo` (up), deleted on drop, failure or not.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `shoal-<tag>-<pid>` with `lo` up; `Err` says why it cannot be (typically: not
    /// root).
    pub fn create(tag: &str) -> Result<Netns, String> {
        let name = format!("shoal-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (`ip netns exec NAME …`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip ARGS` inside the namespace (`link set lo multicast on`, `route add …`).
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["netns", "exec", &self.name, "ip"];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// `PROGRAM` to be run inside the namespace (arguments are added to the returned command).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `program ARGS` inside the namespace to its end: its stdout and stderr together, or
    /// an error naming the command and what it printed.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let out = self.command(program).args(args).output().map_err(|e| format!("cannot run {program}: {e}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("{program} {}: {text}", args.join(" ")))
        }
    }

    /// Runs `work` on a thread that has entered the namespace, so its sockets (an HTTP client
    /// talking to a daemon inside, say) are the namespace's; returns its result.
    pub fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        std::thread::spawn(move || {
            // SAFETY: setns on a valid descriptor changes only this thread's network namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
            work()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            eprintln!("warning: cannot delete network namespace {}: {e}", self.name);
        }
    }
}

/// Runs `ip ARGS`; `Err` with its message if it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Moves the calling thread into a new network namespace whose only interface is its own
/// loopback (brought up). Every process this thread starts afterwards, and every socket it
/// opens, lives there: nothing can leave the machine, and nothing outside can reach in.
///
/// A network namespace belongs to a thread, not to the process, so other tests running in
/// parallel threads are unaffected; it disappears with the last process in it. Needs root
/// (`CAP_SYS_ADMIN`); `Err` says why it cannot be made.
pub fn isolate_this_thread() -> Result<(), String> {
    // SAFETY: unshare takes no pointers; CLONE_NEWNET is allowed in a multithreaded process and
    // only changes the namespace of the calling thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!("unshare(CLONE_NEWNET) failed: {}", io::Error::last_os_error()));
    }
    let out = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if !out.status.success() {
        return Err(format!("ip link set lo up failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

/// The names of the network interfaces the calling thread sees (`/proc/thread-self/net/dev`).
pub fn interfaces() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default();
    text.lines().filter_map(|l| l.split_once(':')).map(|(name, _)| name.trim().to_string()).collect()
}
