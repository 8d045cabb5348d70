//! The tasks around the engine: peer connections, listeners, tracker traffic, disk and hash
//! jobs. Each reports back to the engine task as an [`Input`]; none makes a protocol decision.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::future;
use shoal_core::socks::{self, Command, ProxyError, Target};
use shoal_core::{CloseReason, ConnId, ExchangeId, JobId, NetPolicy, TransportError};
use shoal_core::{DiskError, DiskErrorKind, DiskJob, DiskJobKind, HashJob, JobResult};

use crate::device;
use crate::disk::{sha1_matches, Storage};
use crate::input::Input;
use crate::net;
use crate::pool::BufPool;
use crate::proxy::{self, Proxied, Proxy};
use crate::runtime::Runtime;
use crate::workers::Workers;

/// Read buffer per connection; one read hands the engine up to this many bytes.
const READ_BUF: usize = 256 * 1024;

/// Reads up to this long are handed over as a copy; longer ones hand over the buffer itself.
const SMALL_READ: usize = 16 * 1024;

/// Read buffer of a connection until a read fills it: a handshake and the first messages fit,
/// and a connection that sends little (a peer still handshaking, an idle one, a squatter)
/// holds this rather than [`READ_BUF`].
const FIRST_READ_BUF: usize = 4 * 1024;

/// Largest tracker response body we read.
const MAX_BODY: u64 = 4 << 20;

/// How long a failing accept or UDP receive waits before trying again.
pub(crate) const BACKOFF: Duration = Duration::from_millis(100);

/// A task with a queue of bytes to write: a peer connection or a UDP tracker exchange.
/// Dropping it cancels the task, which closes the socket.
pub(crate) struct Link<R: Runtime> {
    outgoing: Sender<Vec<u8>>,
    _task: R::Task,
}

impl<R: Runtime> Link<R> {
    fn new(make: impl FnOnce(Receiver<Vec<u8>>) -> R::Task) -> Self {
        let (outgoing, queue) = async_channel::unbounded();
        Link { outgoing, _task: make(queue) }
    }

    /// Queues bytes for writing (the engine bounds how much it queues).
    pub(crate) fn send(&self, data: Vec<u8>) {
        let _ = self.outgoing.try_send(data);
    }
}

/// Runs `work` on the runtime's blocking pool and waits for its result.
pub(crate) async fn unblock<R: Runtime, T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = async_channel::bounded(1);
    R::spawn_blocking(move || {
        let _ = tx.try_send(work());
    });
    rx.recv().await.ok()
}

/// Binds a listener; its accept loop runs until the returned task is dropped.
pub(crate) async fn listen<R: Runtime>(
    addr: SocketAddr,
    inputs: Sender<Input<R>>,
) -> std::io::Result<(SocketAddr, R::Task)> {
    let listener = device::listen::<R>(addr).await?;
    let local = R::local_addr(&listener)?;
    let task = R::spawn(async move {
        loop {
            match R::accept(&listener).await {
                Ok((stream, peer)) => {
                    if inputs.send(Input::Incoming(stream, peer)).await.is_err() {
                        break;
                    }
                }
                // Out of descriptors and the like: back off briefly instead of spinning.
                Err(_) => R::sleep_until(std::time::Instant::now() + BACKOFF).await,
            }
        }
    });
    Ok((local, task))
}

/// Dials `addr` if `policy` allows it, through `proxy` when there is one; reports `Connected`
/// then data, or `Closed` on failure.
pub(crate) fn connect<R: Runtime>(
    conn: ConnId,
    addr: SocketAddr,
    policy: NetPolicy,
    proxy: Option<Arc<Proxied>>,
    inputs: Sender<Input<R>>,
    pool: Arc<BufPool>,
) -> Link<R> {
    Link::new(|queue| {
        R::spawn(async move {
            let connected = match (policy.check(addr), proxy) {
                (Err(_refused), _) => Err(CloseReason::DialFailed(ErrorKind::PermissionDenied)),
                (Ok(addr), None) => match device::connect::<R>(addr).await {
                    Ok(stream) => Ok((R::split(stream), Vec::new())),
                    Err(e) => Err(CloseReason::DialFailed(e.kind())),
                },
                (Ok(addr), Some(p)) => match p.proxy.request::<R>(policy, Command::Connect, Target::Ip(addr)).await {
                    Ok(relayed) => Ok(((relayed.reader, relayed.writer), relayed.rest)),
                    Err(e) => {
                        p.log.failed(&format!("peer {addr}"), &e);
                        Err(CloseReason::Proxy(e))
                    }
                },
            };
            match connected {
                Ok(((reader, writer), first)) => {
                    if inputs.send(Input::Engine(shoal_core::Input::Connected(conn))).await.is_err() {
                        return;
                    }
                    let n = first.len();
                    if n > 0 && inputs.send(Input::PeerBytes(conn, first, n)).await.is_err() {
                        return;
                    }
                    serve::<R>(conn, reader, writer, queue, inputs, pool).await;
                }
                Err(reason) => {
                    let _ = inputs.send(Input::Engine(shoal_core::Input::Closed(conn, reason))).await;
                }
            }
        })
    })
}

/// Takes over an accepted stream.
pub(crate) fn accepted<R: Runtime>(
    conn: ConnId,
    stream: R::Stream,
    inputs: Sender<Input<R>>,
    pool: Arc<BufPool>,
) -> Link<R> {
    let (reader, writer) = R::split(stream);
    Link::new(|queue| R::spawn(serve::<R>(conn, reader, writer, queue, inputs, pool)))
}

/// Moves bytes both ways until either side ends, then reports `Closed` with why (unless the
/// engine dropped the link or the session is gone: then nobody listens).
///
/// Each read goes into a pooled buffer that is handed to the engine task whole (no copy) and
/// comes back to the pool once the engine has taken the bytes; sent buffers go there too.
async fn serve<R: Runtime>(
    conn: ConnId,
    mut reader: R::Reader,
    mut writer: R::Writer,
    queue: Receiver<Vec<u8>>,
    inputs: Sender<Input<R>>,
    pool: Arc<BufPool>,
) {
    let read = async {
        let mut buf = Vec::new();
        let mut want = FIRST_READ_BUF;
        loop {
            if buf.len() < want {
                buf = if want == READ_BUF { pool.take() } else { Vec::new() };
                buf.resize(want.max(buf.len()), 0);
            }
            let input = match R::read(&mut reader, &mut buf[..want]).await {
                Ok(0) => return Some(CloseReason::PeerClosed),
                Err(e) => return Some(CloseReason::Io(e.kind())),
                // Data flows: the full-size buffer from the next read on.
                Ok(n) if n == want && want < READ_BUF => {
                    want = READ_BUF;
                    Input::PeerBytes(conn, buf[..n].to_vec(), n)
                }
                // A few messages: copied, so a queued input never pins a whole buffer.
                Ok(n) if n <= SMALL_READ => Input::PeerBytes(conn, buf[..n].to_vec(), n),
                Ok(n) => Input::PeerBytes(conn, std::mem::take(&mut buf), n),
            };
            if inputs.send(input).await.is_err() {
                return None;
            }
        }
    };
    let write = async {
        while let Ok(data) = queue.recv().await {
            if let Err(e) = R::write_all(&mut writer, &data).await {
                return Some(CloseReason::Io(e.kind()));
            }
            let n = data.len();
            pool.put(data);
            if inputs.send(Input::Engine(shoal_core::Input::Sent(conn, n))).await.is_err() {
                return None;
            }
        }
        None
    };
    if let Some(reason) = future::or(read, write).await {
        let _ = inputs.send(Input::Engine(shoal_core::Input::Closed(conn, reason))).await;
    }
}

/// Resolves `host:port` (to an address `policy` allows), opens a socket and relays datagrams
/// both ways until dropped; through a UDP association of `proxy` when there is one.
pub(crate) fn udp_tracker<R: Runtime>(
    id: ExchangeId,
    host: String,
    port: u16,
    policy: NetPolicy,
    proxy: Option<Arc<Proxied>>,
    inputs: Sender<Input<R>>,
) -> Link<R> {
    Link::new(|queue| {
        R::spawn(async move {
            let fail = |words: String| Input::Exchange(id, Err(TransportError::Failed(words)));
            if let Some(p) = proxy {
                if let Err(e) = udp_via_proxy::<R>(id, &p, policy, host, port, queue, &inputs).await {
                    let _ = inputs.send(fail(e)).await;
                }
                return;
            }
            let socket = match udp_open::<R>(policy, host, port).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = inputs.send(fail(e)).await;
                    return;
                }
            };
            let recv = async {
                let mut buf = vec![0u8; 4096];
                loop {
                    match R::udp_recv(&socket, &mut buf).await {
                        Ok(n) => {
                            if inputs.send(Input::Exchange(id, Ok(buf[..n].to_vec()))).await.is_err() {
                                break;
                            }
                        }
                        // ICMP port unreachable and the like: the exchange's retries handle it.
                        Err(_) => R::sleep_until(std::time::Instant::now() + BACKOFF).await,
                    }
                }
            };
            let send = async {
                while let Ok(d) = queue.recv().await {
                    let _ = R::udp_send(&socket, &d).await;
                }
            };
            future::or(recv, send).await;
        })
    })
}

async fn udp_open<R: Runtime>(policy: NetPolicy, host: String, port: u16) -> Result<R::Udp, String> {
    let addrs = net::resolve::<R>(policy, host.clone(), port).await?;
    let addr = *addrs.first().ok_or_else(|| format!("{host}: no address"))?;
    // Checked again right before the socket is connected: nothing reaches it unchecked.
    let addr = policy.check(addr).map_err(|r| r.to_string())?;
    device::udp_connect::<R>(addr).await.map_err(|e| format!("{addr}: {e}"))
}

/// A UDP tracker exchange through a UDP association: its control connection stays open as
/// long as the exchange runs (the association ends with it), each datagram is wrapped in the
/// relay header. Host names go to the proxy to resolve, except under a contained policy (resolved
/// here, so the policy sees the address). Returns when dropped, or with why the association
/// failed or ended (a proxy failure as `proxy: ...`, also said in the log).
async fn udp_via_proxy<R: Runtime>(
    id: ExchangeId,
    p: &Proxied,
    policy: NetPolicy,
    host: String,
    port: u16,
    queue: Receiver<Vec<u8>>,
    inputs: &Sender<Input<R>>,
) -> Result<(), String> {
    let tracker = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Target::Ip(policy.check(SocketAddr::new(ip, port)).map_err(|r| r.to_string())?),
        Err(_) if policy.is_contained() => {
            let addrs = net::resolve::<R>(policy, host.clone(), port).await?;
            Target::Ip(*addrs.first().ok_or_else(|| format!("{host}: no address"))?)
        }
        Err(_) => Target::Domain(host, port),
    };
    let failed = |e: ProxyError| {
        p.log.failed(&format!("UDP tracker {tracker}"), &e);
        format!("proxy: {e}")
    };
    let mut control =
        p.proxy.request::<R>(policy, Command::UdpAssociate, proxy::associate_target()).await.map_err(failed)?;
    let relay = p.proxy.relay_addr(&control.bound).map_err(failed)?;
    let relay = policy.check(relay).map_err(|r| format!("proxy: its UDP relay is {r}"))?;
    let socket = device::udp_connect::<R>(relay).await.map_err(|e| failed(ProxyError::Io(e.kind())))?;
    let recv = async {
        let mut buf = vec![0u8; 4096];
        loop {
            match R::udp_recv(&socket, &mut buf).await {
                // Anything the relay cannot have sent (a fragment, a bad header) is dropped.
                Ok(n) => {
                    if let Ok((_, payload)) = socks::udp::unwrap(&buf[..n]) {
                        if inputs.send(Input::Exchange(id, Ok(payload.to_vec()))).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                Err(_) => R::sleep_until(std::time::Instant::now() + BACKOFF).await,
            }
        }
    };
    let send = async {
        while let Ok(d) = queue.recv().await {
            let datagram = socks::udp::wrap(&tracker, &d).map_err(|e| failed(e.into()))?;
            let _ = R::udp_send(&socket, &datagram).await;
        }
        Ok(())
    };
    // The association lives as long as its control connection: the proxy closing it ends the
    // exchange (it reads nothing else).
    let control = async {
        let mut byte = [0u8; 64];
        loop {
            match R::read(&mut control.reader, &mut byte).await {
                Ok(0) => return Err(failed(ProxyError::AssociationClosed)),
                Ok(_) => {}
                Err(e) => return Err(failed(ProxyError::Io(e.kind()))),
            }
        }
    };
    future::or(recv, future::or(send, control)).await
}

/// An HTTP client shared by all announces; every address it dials passes `policy`, every
/// connection goes through `proxy` when there is one.
pub(crate) fn http_agent(policy: NetPolicy, proxy: Option<&Proxy>) -> ureq::Agent {
    net::http_agent(policy, proxy, Duration::from_secs(30), false)
}

/// Runs one HTTP GET on the blocking pool and reports the body; a failure of `proxy` is said
/// in the log too.
pub(crate) fn http_get<R: Runtime>(
    agent: ureq::Agent,
    proxy: Option<Arc<Proxied>>,
    id: JobId,
    url: String,
    inputs: Sender<Input<R>>,
) {
    R::spawn_blocking(move || {
        let result = (|| -> Result<Vec<u8>, TransportError> {
            let mut resp = agent.get(&url).call().map_err(|e| {
                let words = net::http_error_of(&agent, &e);
                if let (Some(p), Some(why)) = (&proxy, words.strip_prefix("proxy: ")) {
                    // The announce's query (info-hash, peer id) would only lengthen the line.
                    p.log.failed(url.split('?').next().unwrap_or_default(), &why);
                }
                transport_error(&e, words)
            })?;
            let status = resp.status();
            let body = resp
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|e| transport_error(&e, e.to_string()))?;
            if !status.is_success() && body.is_empty() {
                return Err(status_error(status));
            }
            Ok(body)
        })();
        let _ = inputs.send_blocking(Input::Engine(shoal_core::Input::Http(id, result)));
    });
}

/// An error status with an empty body, worded as `http::StatusCode` displays itself (the
/// text trackers' statuses showed before the error was typed).
fn status_error(status: ureq::http::StatusCode) -> TransportError {
    let reason = status.canonical_reason().unwrap_or("<unknown status code>").to_owned();
    TransportError::HttpStatus { code: status.as_u16(), reason }
}

/// A failed HTTP request as the engine takes it: a timeout or anything else, in `words`.
fn transport_error(e: &ureq::Error, words: String) -> TransportError {
    match e {
        ureq::Error::Timeout(_) => TransportError::TimedOut(words),
        _ => TransportError::Failed(words),
    }
}

/// The error of a job for a torrent whose files could not be mapped.
pub(crate) fn no_storage() -> DiskError {
    DiskError { kind: DiskErrorKind::Other, message: "the torrent's files could not be mapped".into() }
}

/// Runs a disk job on the disk threads and reports its result.
pub(crate) fn disk_job<R: Runtime>(
    workers: &Workers,
    job: DiskJob,
    storage: Arc<Storage>,
    inputs: Sender<Input<R>>,
    pool: Arc<BufPool>,
) {
    workers.disk(move || {
        let result = match job.kind {
            DiskJobKind::Write { spans, data, .. } => JobResult::Written { result: storage.write(&spans, &data), data },
            DiskJobKind::Read { spans, len, .. } => JobResult::Read(storage.read_placed(&spans, len, pool.take())),
            DiskJobKind::Verify { spans, expected, .. } => JobResult::Verified(storage.verify(&spans, &expected)),
        };
        let _ = inputs.send_blocking(Input::Engine(shoal_core::Input::Job(job.id, result)));
    });
}

/// Hashes a downloaded piece on the hash threads, writes it if it matched, and reports both.
pub(crate) fn hash_job<R: Runtime>(
    workers: &Workers,
    job: HashJob,
    storage: Option<Arc<Storage>>,
    inputs: Sender<Input<R>>,
) {
    workers.hash(move || {
        let ok = sha1_matches(&job.data, &job.expected);
        let written = ok.then(|| match &storage {
            Some(s) => s.write(&job.write, &job.data),
            None => Err(no_storage()),
        });
        let _ = inputs.send_blocking(Input::Engine(shoal_core::Input::Job(
            job.id,
            JobResult::Hashed { ok, data: job.data, written },
        )));
    });
}

/// An unconnected UDP socket (the DHT's on one listen address, or Local Service Discovery's):
/// a task receives datagrams into the engine and sends what the engine queues. Dropping it
/// closes the socket.
pub(crate) struct DatagramSocket<R: Runtime> {
    addr: SocketAddr,
    outgoing: Sender<(SocketAddr, Vec<u8>)>,
    _task: R::Task,
}

impl<R: Runtime> DatagramSocket<R> {
    /// Whether `to` is of this socket's address family.
    pub(crate) fn family_matches(&self, to: &SocketAddr) -> bool {
        self.addr.is_ipv4() == to.is_ipv4()
    }

    /// Queues a datagram (dropped if the queue is full: the DHT retries).
    pub(crate) fn send(&self, to: SocketAddr, data: Vec<u8>) {
        let _ = self.outgoing.try_send((to, data));
    }
}

/// Datagrams queued for sending on a DHT socket before new ones are dropped (uTP sends a
/// window of up to 1 MiB, about 900 datagrams, per connection at once).
pub(crate) const DHT_QUEUE: usize = 8192;

/// Kernel buffer of the DHT/uTP socket, each way (the system's maximum caps it).
pub(crate) const UDP_BUFFER: usize = 4 << 20;

/// Binds the DHT socket on `addr` and starts its task.
pub(crate) async fn dht_socket<R: Runtime>(
    addr: SocketAddr,
    inputs: Sender<Input<R>>,
) -> std::io::Result<DatagramSocket<R>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // v6-only, so `[::]` binds beside `0.0.0.0` on the same port (as the listeners).
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    device::apply(&sock)?;
    // uTP shares this socket: a window of packets arrives in a burst, and the kernel's default
    // receive buffer (about 200 KiB) would drop the tail of it, each drop costing a timeout.
    let _ = sock.set_recv_buffer_size(UDP_BUFFER);
    let _ = sock.set_send_buffer_size(UDP_BUFFER);
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    let std_socket: std::net::UdpSocket = sock.into();
    let socket = R::udp_from_std(std_socket)?;
    Ok(udp_task::<R>(addr, socket, inputs, shoal_core::Socket::Dht))
}

/// Binds the Local Service Discovery socket (BEP 14): UDP 6771 on every address, shared with
/// other clients on the host (SO_REUSEADDR), member of the IPv4 group on `interface`
/// (unspecified: the system's default), its own announces looped back (other clients on
/// this host must hear them; ours are recognized by their cookie).
pub(crate) fn lsd_socket<R: Runtime>(
    policy: NetPolicy,
    interface: Ipv4Addr,
    inputs: Sender<Input<R>>,
) -> std::io::Result<DatagramSocket<R>> {
    use shoal_core::lsd::{GROUP_V4, PORT};
    use socket2::{Domain, Protocol, Socket, Type};
    if !policy.allows_multicast_via(interface) {
        let refused = shoal_core::Refused::Addr(SocketAddr::from((GROUP_V4, PORT)));
        return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, refused));
    }
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    crate::device::apply(&s)?;
    s.set_reuse_address(true)?;
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT));
    s.bind(&addr.into())?;
    s.join_multicast_v4(&GROUP_V4, &interface)?;
    s.set_multicast_loop_v4(true)?;
    if !interface.is_unspecified() {
        s.set_multicast_if_v4(&interface)?;
    }
    s.set_nonblocking(true)?;
    let socket = R::udp_from_std(s.into())?;
    Ok(udp_task::<R>(addr, socket, inputs, shoal_core::Socket::Lsd))
}

/// The loopback interface's index: Linux gives its loopback device index 1 in every network
/// namespace (`LOOPBACK_IFINDEX`), and so do the BSDs and macOS (`lo0`).
pub(crate) const LOOPBACK_IFINDEX: u32 = 1;

/// Binds the IPv6 Local Service Discovery socket (BEP 14): UDP 6771 on every IPv6 address,
/// shared (SO_REUSEADDR), member of the IPv6 group on interface index `interface` (0: the
/// system's default; the local-only policy allows [`LOOPBACK_IFINDEX`] alone), its own
/// announces looped back as on IPv4.
pub(crate) fn lsd_socket_v6<R: Runtime>(
    policy: NetPolicy,
    interface: u32,
    inputs: Sender<Input<R>>,
) -> std::io::Result<DatagramSocket<R>> {
    use shoal_core::lsd::{GROUP_V6, PORT};
    use socket2::{Domain, Protocol, Socket, Type};
    if policy.is_local_only() && interface != LOOPBACK_IFINDEX {
        let refused = shoal_core::Refused::Addr(SocketAddr::from((GROUP_V6, PORT)));
        return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, refused));
    }
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    crate::device::apply(&s)?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    let addr = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, PORT));
    s.bind(&addr.into())?;
    s.join_multicast_v6(&GROUP_V6, interface)?;
    s.set_multicast_loop_v6(true)?;
    if interface != 0 {
        s.set_multicast_if_v6(interface)?;
    }
    s.set_nonblocking(true)?;
    let socket = R::udp_from_std(s.into())?;
    Ok(udp_task::<R>(addr, socket, inputs, shoal_core::Socket::Lsd))
}

/// Starts the task of the engine's unconnected UDP socket `kind`: datagrams received become
/// inputs, queued datagrams are sent.
fn udp_task<R: Runtime>(
    addr: SocketAddr,
    socket: R::Udp,
    inputs: Sender<Input<R>>,
    kind: shoal_core::Socket,
) -> DatagramSocket<R> {
    let (outgoing, queue) = async_channel::bounded::<(SocketAddr, Vec<u8>)>(DHT_QUEUE);
    let task = R::spawn(async move {
        let recv = async {
            let mut buf = vec![0u8; 8192];
            loop {
                match R::udp_recv_from(&socket, &mut buf).await {
                    Ok((n, from)) => {
                        if inputs.send(Input::Datagram(kind, from, buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => R::sleep_until(std::time::Instant::now() + BACKOFF).await,
                }
            }
        };
        let send = async {
            while let Ok((to, d)) = queue.recv().await {
                let _ = R::udp_send_to(&socket, &d, to).await;
            }
        };
        future::or(recv, send).await;
    });
    DatagramSocket { addr, outgoing, _task: task }
}

/// Resolves a DHT bootstrap host name and reports the addresses `policy` allows.
pub(crate) fn dht_resolve<R: Runtime>(host: String, port: u16, policy: NetPolicy, inputs: Sender<Input<R>>) {
    R::spawn_blocking(move || {
        let addrs = net::resolve_blocking(policy, &host, port).unwrap_or_default();
        let _ = inputs.send_blocking(Input::Resolved(addrs));
    });
}

#[cfg(test)]
mod tests {
    use ureq::http::StatusCode;

    use super::status_error;

    #[test]
    fn an_error_status_reads_as_it_did_untyped() {
        for code in [404, 503, 599] {
            let status = StatusCode::from_u16(code).expect("a valid code");
            assert_eq!(status_error(status).to_string(), format!("HTTP {status}"));
        }
    }
}
