//! Waiting on events with deadlines, and loopback port allocation.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Polls `check` until it yields a value or `timeout` passes.
///
/// The poll interval starts at 5 ms and grows to 100 ms, so short waits are quick and long
/// ones cheap. Returns an error naming `what` on timeout.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(5);
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(Duration::from_millis(100));
    }
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_port_open(port: u16, timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_for(&format!("127.0.0.1:{port} to accept TCP"), timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok().map(|_| ())
    })
}

/// Ports handed out by this process, so two parallel tests never get the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that is free for both TCP and UDP right now.
///
/// The port is found by binding port 0 and released before returning; the small window in
/// which another program could take it is accepted. Ports are never handed out twice by one
/// test binary.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("cannot bind loopback");
        let port = tcp.local_addr().expect("bound socket has an address").port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            continue;
        }
        let mut set = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if set.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("could not find a free loopback port")
}

/// A loopback socket address `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}
