//! `--bind-interface`: every socket of the process bound to one network interface
//! (`SO_BINDTODEVICE`, Linux), so that a VPN user's traffic never leaves by another one. It is
//! process-wide on purpose: set once at startup, before any session, it cannot be forgotten by
//! one code path. A missing interface fails every socket with an error naming it; there is no
//! fallback to the routing table.

use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;

use socket2::{Domain, Protocol, Socket, Type};

use crate::runtime::Runtime;

static DEVICE: OnceLock<String> = OnceLock::new();

/// Binds every socket this process opens from now on (peers, listeners, trackers, DHT/uTP,
/// LSD, port mapping, proxy) to interface `name`. Once per process; `Err` if the name cannot
/// be an interface's or another was set already.
pub fn bind_to_interface(name: &str) -> Result<(), String> {
    // IFNAMSIZ is 16 with the terminating zero.
    if name.is_empty() || name.len() > 15 || name.contains(['/', '\0']) || name.chars().any(char::is_whitespace) {
        return Err(format!("{name:?} is not an interface name"));
    }
    let set = DEVICE.get_or_init(|| name.to_string());
    if set != name {
        return Err(format!("already bound to interface {set}"));
    }
    Ok(())
}

/// The interface every socket is bound to, if one was set.
pub fn bound_interface() -> Option<&'static str> {
    DEVICE.get().map(String::as_str)
}

/// Binds `socket` to the interface, if one is set; the error names it.
pub(crate) fn apply(socket: &Socket) -> io::Result<()> {
    let Some(name) = bound_interface() else { return Ok(()) };
    bind_device(socket, name).map_err(|e| io::Error::new(e.kind(), format!("interface {name}: {e}")))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_device(socket: &Socket, name: &str) -> io::Result<()> {
    socket.bind_device(Some(name.as_bytes()))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_device(_: &Socket, _: &str) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "binding to an interface needs Linux"))
}

/// A socket of `addr`'s family and `ty`, bound to the interface.
fn socket(addr: SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    apply(&s)?;
    Ok(s)
}

/// A TCP connection to `addr`, from a socket bound to the interface when one is set.
pub(crate) async fn connect<R: Runtime>(addr: SocketAddr) -> io::Result<R::Stream> {
    if bound_interface().is_none() {
        return R::connect(addr).await;
    }
    let s = socket(addr, Type::STREAM, Protocol::TCP)?;
    s.set_nonblocking(true)?;
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    R::connecting_from_std(s.into()).await
}

/// Linux's "operation now in progress", what a non-blocking connect says.
const EINPROGRESS: i32 = 115;

/// A TCP listener on `addr`, bound to the interface when one is set.
pub(crate) async fn listen<R: Runtime>(addr: SocketAddr) -> io::Result<R::Listener> {
    if bound_interface().is_none() && addr.is_ipv4() {
        return R::bind(addr).await;
    }
    // As std's TcpListener::bind (which the runtimes use): SO_REUSEADDR. IPv6 listeners are
    // v6-only, so `[::]` binds beside `0.0.0.0` on the same port (a dual-stack `[::]`, the
    // system's default, fails there with "address in use" and left the session IPv4-only).
    let s = socket(addr, Type::STREAM, Protocol::TCP)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    // The backlog std's TcpListener::bind uses.
    s.listen(128)?;
    s.set_nonblocking(true)?;
    R::listener_from_std(s.into())
}

/// A UDP socket on an ephemeral port of `peer`'s family, bound to the interface when one is
/// set, connected to `peer`.
pub(crate) async fn udp_connect<R: Runtime>(peer: SocketAddr) -> io::Result<R::Udp> {
    if bound_interface().is_none() {
        return R::udp_connect(peer).await;
    }
    let s = udp(any_of(peer))?;
    s.connect(&peer.into())?;
    R::udp_from_std(s.into())
}

/// A non-blocking UDP socket bound to `addr` (and to the interface, when one is set).
pub(crate) fn udp(addr: SocketAddr) -> io::Result<Socket> {
    let s = socket(addr, Type::DGRAM, Protocol::UDP)?;
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// The unspecified address of `addr`'s family, port 0.
pub(crate) fn any_of(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_interfaces_are_refused_and_nothing_is_bound() {
        for bad in ["", "a-name-over-15-bytes", "wg/0", "wg 0", "wg\0"] {
            assert!(bind_to_interface(bad).is_err(), "{bad:?}");
        }
        // Setting one here would bind every socket of the other tests in this process.
        assert_eq!(bound_interface(), None);
    }
}
