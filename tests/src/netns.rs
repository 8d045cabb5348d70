//! A network namespace of the test's own, for programs that must not reach the network even
//! if they try (Tribler's GUI: version check, error reporting).

use std::io;
use std::process::{Command, Stdio};

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
