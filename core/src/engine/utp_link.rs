//! uTP peer connections (BEP 29) on the DHT's UDP socket. Dials try uTP first and fall back to
//! TCP when the uTP connect fails (as libtorrent does); incoming uTP connections are accepted.
//! To the rest of the engine a uTP connection is a TCP one: same [`ConnId`] space, same
//! handshake, same `PeerBytes`/`Sent` flow, only fed from here instead of the runtime.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::SocketAddr;

use crate::types::{ConnId, Instant};
use crate::utp::{UtpCloseReason, UtpConfig, UtpConnId, UtpEvent, UtpSocket};

use super::close_reason::CloseReason;
use super::output::{Output, PeerIo, UdpIo};

/// The largest IP packet uTP's packet-size discovery tries.
const ETHERNET_MTU: usize = 1500;

/// What the link hands the engine as if the runtime had said it.
#[derive(Debug)]
pub(super) enum LinkInput {
    /// A uTP dial connected.
    Connected(ConnId),
    /// Bytes arrived.
    Bytes(ConnId, Vec<u8>),
    /// The uTP send buffer took this many bytes.
    Sent(ConnId, usize),
    /// The connection ended.
    Closed(ConnId, CloseReason),
    /// A uTP dial got no answer and is dialled over TCP now, under the same id (the torrent
    /// may ask for a hole punch meanwhile).
    FellBack(ConnId),
    /// A peer opened a uTP connection: the engine accepts it or not ([`UtpLink::accepted`]).
    Incoming(UtpConnId, SocketAddr),
}

/// The uTP socket and the map between its connections and the engine's.
pub(super) struct UtpLink {
    socket: UtpSocket,
    /// The time of the engine's latest input: outputs are drained right after it.
    now: Instant,
    to_utp: HashMap<ConnId, UtpConnId>,
    to_conn: BTreeMap<UtpConnId, ConnId>,
    /// uTP dials not answered yet, with the address a TCP fallback dials.
    dialing: HashMap<ConnId, SocketAddr>,
    /// Bytes the engine sent that the uTP send buffer had no room for yet (the engine bounds
    /// what it sends ahead of `Sent`).
    unsent: HashMap<ConnId, VecDeque<u8>>,
    inputs: VecDeque<LinkInput>,
    /// TCP fallback dials for the runtime.
    outputs: VecDeque<Output>,
}

impl UtpLink {
    /// A link whose socket holds as many connections as the engine allows.
    pub(super) fn new(max_connections: usize, max_half_open: usize, seed: u64, now: Instant) -> UtpLink {
        let config = UtpConfig {
            max_connections,
            max_half_open: max_half_open.max(1),
            // libtorrent's utp_connect_timeout is 3 s: the SYN and one resend (1 s + 2 s),
            // so a peer without uTP costs a TCP fallback only 3 s.
            syn_resends: 1,
            // Packet-size discovery up to Ethernet's MTU: some peers read datagrams into
            // 1500-byte buffers (larger ones would arrive cut short), so even loopback's 64 KiB
            // is not tried.
            path_mtu: Some(ETHERNET_MTU),
            ..UtpConfig::default()
        };
        UtpLink {
            socket: UtpSocket::new(config, seed),
            now,
            to_utp: HashMap::new(),
            to_conn: BTreeMap::new(),
            dialing: HashMap::new(),
            unsent: HashMap::new(),
            inputs: VecDeque::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Moves the link's clock to the engine's latest input.
    pub(super) fn set_now(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// The time of the engine's latest input.
    pub(super) fn now(&self) -> Instant {
        self.now
    }

    /// A uTP datagram from the DHT socket.
    pub(super) fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        self.set_now(now);
        self.socket.handle_datagram(from, data, now);
        self.collect();
    }

    /// Runs the socket's timers.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        self.set_now(now);
        if self.socket.poll_timeout().is_some_and(|t| t <= now) {
            self.socket.handle_timeout(now);
            self.collect();
        }
    }

    /// When the socket's timers are next due.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.socket.poll_timeout()
    }

    /// Takes the outputs that concern uTP connections (returns `None` for those) and passes
    /// the others on.
    pub(super) fn intercept(&mut self, output: Output) -> Option<Output> {
        let now = self.now;
        match output {
            Output::Peer(PeerIo::Connect { conn, addr }) => match self.socket.connect(addr, now) {
                Ok(u) => {
                    self.to_utp.insert(conn, u);
                    self.to_conn.insert(u, conn);
                    self.dialing.insert(conn, addr);
                }
                Err(_) => return Some(Output::Peer(PeerIo::Connect { conn, addr })),
            },
            Output::Peer(PeerIo::Send { conn, data }) => {
                let Some(&u) = self.to_utp.get(&conn) else {
                    return Some(Output::Peer(PeerIo::Send { conn, data }));
                };
                let queue = self.unsent.entry(conn).or_default();
                if queue.is_empty() {
                    let n = self.socket.write(u, &data, now);
                    queue.extend(&data[n..]);
                    if n > 0 {
                        self.inputs.push_back(LinkInput::Sent(conn, n));
                    }
                } else {
                    queue.extend(&data);
                }
            }
            Output::Peer(PeerIo::Close { conn, reason }) => {
                let Some(u) = self.to_utp.remove(&conn) else {
                    return Some(Output::Peer(PeerIo::Close { conn, reason }));
                };
                self.to_conn.remove(&u);
                self.dialing.remove(&conn);
                self.unsent.remove(&conn);
                self.socket.close(u, now);
            }
            other => return Some(other),
        }
        self.collect();
        None
    }

    /// The engine accepted a peer's uTP connection as `conn`, or refused it (`None`).
    pub(super) fn accepted(&mut self, u: UtpConnId, conn: Option<ConnId>) {
        match conn {
            Some(conn) => {
                self.to_utp.insert(conn, u);
                self.to_conn.insert(u, conn);
                // Bytes that came with the connection were held until it had an id.
                let data = self.socket.read(u, usize::MAX, self.now);
                if !data.is_empty() {
                    self.inputs.push_back(LinkInput::Bytes(conn, data));
                }
            }
            None => self.socket.abort(u, self.now),
        }
        self.collect();
    }

    /// The next input for the engine.
    pub(super) fn poll_input(&mut self) -> Option<LinkInput> {
        self.inputs.pop_front()
    }

    /// The next output for the runtime: TCP fallback dials, then datagrams for the DHT socket.
    pub(super) fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.outputs.pop_front() {
            return Some(o);
        }
        let (to, data) = self.socket.poll_transmit()?;
        Some(Output::Udp(UdpIo::Dht { to, data }))
    }

    /// Turns the socket's events into engine inputs.
    fn collect(&mut self) {
        while let Some(event) = self.socket.poll_event() {
            match event {
                UtpEvent::Connected(u) => {
                    if let Some(&conn) = self.to_conn.get(&u) {
                        self.dialing.remove(&conn);
                        self.inputs.push_back(LinkInput::Connected(conn));
                    }
                }
                UtpEvent::Incoming(u, addr) => self.inputs.push_back(LinkInput::Incoming(u, addr)),
                UtpEvent::Readable(u) => {
                    if let Some(&conn) = self.to_conn.get(&u) {
                        let data = self.socket.read(u, usize::MAX, self.now);
                        self.inputs.push_back(LinkInput::Bytes(conn, data));
                    }
                }
                UtpEvent::Writable(u) => self.flush(u),
                UtpEvent::Closed(u, why) => self.closed(u, why),
            }
        }
    }

    /// Writes what waits for room on `u`.
    fn flush(&mut self, u: UtpConnId) {
        let Some(&conn) = self.to_conn.get(&u) else { return };
        let Some(queue) = self.unsent.get_mut(&conn) else { return };
        let mut total = 0;
        while !queue.is_empty() {
            let (front, _) = queue.as_slices();
            let n = self.socket.write(u, front, self.now);
            let short = n < front.len();
            queue.drain(..n);
            total += n;
            if short {
                break;
            }
        }
        if total > 0 {
            self.inputs.push_back(LinkInput::Sent(conn, total));
        }
    }

    fn closed(&mut self, u: UtpConnId, why: UtpCloseReason) {
        let Some(conn) = self.to_conn.remove(&u) else { return };
        self.to_utp.remove(&conn);
        self.unsent.remove(&conn);
        if let Some(addr) = self.dialing.remove(&conn) {
            // The peer speaks no uTP (or is gone, or behind a NAT): dial it over TCP under the
            // same id.
            self.inputs.push_back(LinkInput::FellBack(conn));
            self.outputs.push_back(Output::Peer(PeerIo::Connect { conn, addr }));
            return;
        }
        let reason = match why {
            UtpCloseReason::Finished => CloseReason::PeerClosed,
            UtpCloseReason::Reset => CloseReason::Io(ErrorKind::ConnectionReset),
            UtpCloseReason::ConnectTimedOut | UtpCloseReason::TimedOut => CloseReason::Io(ErrorKind::TimedOut),
        };
        self.inputs.push_back(LinkInput::Closed(conn, reason));
    }
}
