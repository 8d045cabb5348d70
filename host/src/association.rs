//! The DHT/uTP socket of a session with a SOCKS5 proxy: every datagram goes through a UDP
//! association (RFC 1928 §7) and none directly. A task asks the proxy for the association,
//! wraps what the engine sends in the relay's header and unwraps what the relay passes back;
//! when the proxy refuses or the control connection ends, the DHT and uTP stop (their
//! datagrams are dropped) until a new association is granted, on
//! [`shoal_core::socks::association::Reassociate`]'s schedule.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_channel::{Receiver, Sender};
use futures_lite::future;
use shoal_core::socks::association::{Reassociate, REQUEST_TIMEOUT};
use shoal_core::socks::{self, Command, ProxyError};
use shoal_core::NetPolicy;

use crate::input::Input;
use crate::io::{self, BACKOFF};
use crate::proxy::{self, Proxy, Relayed};
use crate::runtime::Runtime;

/// Largest datagram read from the relay: the biggest a peer or node sends (uTP's packets are
/// about 1.2 KiB, the DHT's under 1.5 KiB; [`io`]'s DHT socket reads 8 KiB) plus the header.
const RECV_BUF: usize = 8192 + socks::udp::MAX_HEADER;

/// Where the association stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssociationState {
    /// Asking the proxy for an association.
    Connecting,
    /// Datagrams go through the proxy's relay at `relay`.
    Up {
        /// The relay's address, as the proxy gave it.
        relay: SocketAddr,
    },
    /// No association: the DHT and uTP are stopped until the next request.
    Down {
        /// Why (the proxy's refusal, or how the last association ended).
        error: String,
    },
}

impl AssociationState {
    /// One word for the state: `connecting`, `up` or `down`.
    pub fn word(&self) -> &'static str {
        match self {
            AssociationState::Connecting => "connecting",
            AssociationState::Up { .. } => "up",
            AssociationState::Down { .. } => "down",
        }
    }
}

/// What the DHT/uTP association has done, for the daemon and the CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyUdpReport {
    /// Where it stands now.
    pub state: AssociationState,
    /// Associations the proxy granted so far.
    pub associations: u64,
    /// Datagrams sent to the relay.
    pub sent: u64,
    /// Datagrams the relay passed back to the engine.
    pub received: u64,
    /// Datagrams of the engine dropped because there was no association (never sent another way).
    pub unsent: u64,
    /// Datagrams from the relay dropped for a bad header (fragments, host names, cut short).
    pub refused: u64,
}

impl Default for ProxyUdpReport {
    fn default() -> Self {
        ProxyUdpReport {
            state: AssociationState::Connecting,
            associations: 0,
            sent: 0,
            received: 0,
            unsent: 0,
            refused: 0,
        }
    }
}

/// The report, shared by the association's task and the session's handles.
pub(crate) type SharedReport = Arc<Mutex<ProxyUdpReport>>;

fn update(report: &SharedReport, change: impl FnOnce(&mut ProxyUdpReport)) {
    change(&mut report.lock().unwrap_or_else(|p| p.into_inner()));
}

/// The engine's DHT/uTP socket through the proxy: queue a datagram with [`RelayedSocket::send`].
/// Dropping it ends the association.
pub(crate) struct RelayedSocket<R: Runtime> {
    outgoing: Sender<(SocketAddr, Vec<u8>)>,
    _task: R::Task,
}

impl<R: Runtime> RelayedSocket<R> {
    /// Queues a datagram for `to` (dropped if the queue is full, as on the direct socket).
    pub(crate) fn send(&self, to: SocketAddr, data: Vec<u8>) {
        let _ = self.outgoing.try_send((to, data));
    }
}

/// Starts the task that keeps an association with `proxy` and carries the engine's DHT/uTP
/// datagrams through it, reporting to `report`.
pub(crate) fn start<R: Runtime>(
    proxy: Proxy,
    policy: NetPolicy,
    inputs: Sender<Input<R>>,
    report: SharedReport,
) -> RelayedSocket<R> {
    let (outgoing, queue) = async_channel::bounded(io::DHT_QUEUE);
    let task = R::spawn(async move {
        let mut retry = Reassociate::new();
        loop {
            update(&report, |r| r.state = AssociationState::Connecting);
            let (error, wait) = match associate::<R>(&proxy, policy).await {
                Err(error) => {
                    let wait = retry.failed();
                    tracing::warn!(
                        "proxy: {error}: no UDP association, so uTP and the DHT are stopped \
                         (nothing is sent directly); asking again in {}s",
                        wait.as_secs()
                    );
                    (error, wait)
                }
                Ok(association) => {
                    let since = Instant::now();
                    let relay = association.relay;
                    update(&report, |r| {
                        r.state = AssociationState::Up { relay };
                        r.associations += 1;
                    });
                    tracing::info!("proxy: UDP association up: uTP and the DHT go through the relay at {relay}");
                    let Some(error) = carry(association, &queue, &inputs, &report).await else { return };
                    let wait = retry.ended(since.elapsed());
                    tracing::warn!(
                        "proxy: {error}: uTP and the DHT are stopped (nothing is sent directly); \
                         asking for a new UDP association in {}s",
                        wait.as_secs()
                    );
                    (error, wait)
                }
            };
            update(&report, |r| r.state = AssociationState::Down { error });
            if !drop_until::<R>(Instant::now() + wait, &queue, &report).await {
                return;
            }
        }
    });
    RelayedSocket { outgoing, _task: task }
}

/// A granted association: its control connection (the association lives as long as it does)
/// and a socket connected to the relay (the kernel drops datagrams from any other address).
struct Association<R: Runtime> {
    control: Relayed<R>,
    socket: R::Udp,
    relay: SocketAddr,
}

/// Asks `proxy` for an association and opens the socket to its relay (if `policy` allows it);
/// a proxy that has not granted it within [`REQUEST_TIMEOUT`] has failed.
async fn associate<R: Runtime>(proxy: &Proxy, policy: NetPolicy) -> Result<Association<R>, String> {
    let request = async {
        let asked = proxy.request::<R>(policy, Command::UdpAssociate, proxy::associate_target()).await;
        asked.map_err(|e| e.to_string())
    };
    let timeout = async {
        R::sleep_until(Instant::now() + REQUEST_TIMEOUT).await;
        Err(format!("no answer to the UDP ASSOCIATE request within {}s", REQUEST_TIMEOUT.as_secs()))
    };
    let control = future::or(request, timeout).await?;
    let relay = proxy.relay_addr(&control.bound).map_err(|e| e.to_string())?;
    let relay = policy.check(relay).map_err(|r| format!("its UDP relay is {r}"))?;
    let socket = relay_socket::<R>(relay).map_err(|e| ProxyError::Io(e.kind()).to_string())?;
    Ok(Association { control, socket, relay })
}

/// A UDP socket of `relay`'s family on an ephemeral port, connected to it, with the DHT/uTP
/// socket's kernel buffers (a uTP window arrives in a burst).
fn relay_socket<R: Runtime>(relay: SocketAddr) -> std::io::Result<R::Udp> {
    let any: SocketAddr = match relay {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let std_socket = std::net::UdpSocket::bind(any)?;
    let sock = socket2::SockRef::from(&std_socket);
    crate::device::apply(&sock)?;
    let _ = sock.set_recv_buffer_size(io::UDP_BUFFER);
    let _ = sock.set_send_buffer_size(io::UDP_BUFFER);
    std_socket.connect(relay)?;
    std_socket.set_nonblocking(true)?;
    R::udp_from_std(std_socket)
}

/// Carries datagrams both ways until the association ends (why, as words) or the session does
/// (`None`).
async fn carry<R: Runtime>(
    mut association: Association<R>,
    queue: &Receiver<(SocketAddr, Vec<u8>)>,
    inputs: &Sender<Input<R>>,
    report: &SharedReport,
) -> Option<String> {
    let socket = &association.socket;
    let recv = async {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            match R::udp_recv(socket, &mut buf).await {
                Ok(n) => match socks::udp::unwrap_ip(&buf[..n]) {
                    Ok((from, payload)) => {
                        update(report, |r| r.received += 1);
                        let input = Input::Datagram(shoal_core::Socket::Dht, from, payload.to_vec());
                        if inputs.send(input).await.is_err() {
                            return None;
                        }
                    }
                    // Nothing a peer or node sends needs these: dropped, the relay's fault.
                    Err(e) => {
                        update(report, |r| r.refused += 1);
                        tracing::debug!("proxy: dropped a datagram from the UDP relay: {e}");
                    }
                },
                // ICMP errors and the like: the control connection says when it is over.
                Err(_) => R::sleep_until(Instant::now() + BACKOFF).await,
            }
        }
    };
    let send = async {
        let mut datagram = Vec::new();
        while let Ok((to, data)) = queue.recv().await {
            datagram.clear();
            socks::udp::wrap_ip(to, &data, &mut datagram);
            if R::udp_send(socket, &datagram).await.is_ok() {
                update(report, |r| r.sent += 1);
            }
        }
        None
    };
    // The proxy sends nothing on the control connection; its end ends the association.
    let reader = &mut association.control.reader;
    let control = async {
        let mut buf = [0u8; 64];
        loop {
            match R::read(reader, &mut buf).await {
                Ok(0) => return Some(ProxyError::AssociationClosed.to_string()),
                Ok(_) => {}
                Err(e) => return Some(format!("{} (UDP association)", ProxyError::Io(e.kind()))),
            }
        }
    };
    future::or(control, future::or(recv, send)).await
}

/// Drops what the engine queues until `deadline`: `false` once the session is gone.
async fn drop_until<R: Runtime>(
    deadline: Instant,
    queue: &Receiver<(SocketAddr, Vec<u8>)>,
    report: &SharedReport,
) -> bool {
    let drain = async {
        while queue.recv().await.is_ok() {
            update(report, |r| r.unsent += 1);
        }
        false
    };
    let wait = async {
        R::sleep_until(deadline).await;
        true
    };
    future::or(wait, drain).await
}
