//! The engine's tunables.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::mse::Levels;
use crate::net_policy::NetPolicy;
use crate::wire::Limits;

use super::admission::{ConnectionLimits, DEFAULT_DESCRIPTORS};

/// Tunables of one engine. Every buffer and queue the engine keeps is bounded by one of these.
#[derive(Clone, Debug)]
pub struct Config {
    /// The TCP port we accept peers on (announced to trackers and in the extended handshake).
    pub listen_port: u16,
    /// Connected peers per torrent. A torrent that is full replaces its least useful peer
    /// (idle, or only choking us) to take an incoming one; peers that send us data or want
    /// ours are kept.
    pub max_peers_per_torrent: usize,
    /// Peer connections over all torrents (dials in progress included), each a descriptor:
    /// see [`Config::with_descriptors`].
    pub max_connections: usize,
    /// Incoming connections whose handshake has not arrived yet (their torrent is unknown),
    /// kept apart from [`Config::max_connections`]. When full, the oldest is closed to take a
    /// new one.
    pub max_pending_handshakes: usize,
    /// Connections with one address: pending handshakes over the session, and peers of one
    /// torrent (incoming and dialled). IPv6 addresses count by /64; loopback is not limited.
    pub max_connections_per_ip: usize,
    /// Connection attempts in progress at once, over all torrents.
    pub max_half_open: usize,
    /// Peers we upload to at once per torrent (plus one optimistic unchoke).
    pub upload_slots: usize,
    /// Upper bound on our outstanding requests to one peer, in blocks.
    pub max_requests_per_peer: usize,
    /// Lower bound on the request queue to one peer once its rate is known, in blocks.
    pub min_requests_per_peer: usize,
    /// Our global IPv6 address, sent to HTTP trackers as `ipv6=` (BEP 7) so that IPv6 peers
    /// learn it even when the announce goes over IPv4. The host sets it from a listener bound
    /// to a global IPv6 address.
    pub announce_ipv6: Option<Ipv6Addr>,
    /// Requests sent to a new peer before its rate is known; the queue grows by a block per
    /// block it sends until then.
    pub initial_requests_per_peer: usize,
    /// Once a peer's rate is known, we keep this long of its rate requested from it, plus its
    /// round trip (libtorrent's `request_queue_time`).
    pub request_queue_time: Duration,
    /// Bytes of piece data held in memory per torrent (partial pieces, hashing, writing).
    pub max_in_flight_bytes: u64,
    /// Most bytes queued for sending to one peer (including disk reads for it in flight). The
    /// actual limit follows the peer's upload rate (about one second's worth), from
    /// [`Config::min_send_buffer`] up to this.
    pub max_send_buffer: u64,
    /// Bytes always allowed in flight to a peer, whatever its rate.
    pub min_send_buffer: u64,
    /// Disk reads for uploads in flight at once per torrent (each up to 256 KiB): more only
    /// adds threads and memory, the page cache answers these quickly.
    pub max_read_jobs: usize,
    /// Requests from one peer we queue before refusing more.
    pub max_peer_requests: usize,
    /// With requests outstanding, a peer that sends no block for this long is snubbed.
    pub request_timeout: Duration,
    /// A connection attempt that has not succeeded within this is abandoned.
    pub connect_timeout: Duration,
    /// A connection whose handshake has not arrived within this is closed; so is a peer that
    /// sends no message but keep-alives for this long after its handshake.
    pub handshake_timeout: Duration,
    /// Send a keep-alive after this much silence.
    pub keepalive_interval: Duration,
    /// Close a peer that has sent nothing for this long.
    pub inactivity_timeout: Duration,
    /// Piece checks (read + hash of existing data) in flight at once per torrent.
    pub max_check_jobs: usize,
    /// Torrents checking existing data at once; the others wait in
    /// [`TorrentState::CheckQueued`](crate::TorrentState::CheckQueued), first come first served. 0 counts as 1.
    pub max_checking_torrents: usize,
    /// Pieces a peer may help corrupt before it is banned (a sole contributor is banned at once).
    pub hashfails_to_ban: u32,
    /// Peers asked from trackers per announce.
    pub num_want: u32,
    /// How long shutdown waits for `stopped` announces before giving up.
    pub shutdown_timeout: Duration,
    /// Our client name for the extended handshake.
    pub client_name: String,
    /// Wire decoder limits.
    pub wire_limits: Limits,
    /// Where packets may go: anywhere, loopback only (tests and CI: nothing leaves the
    /// machine), or a test's own network namespaces; see [`NetPolicy`].
    pub net_policy: NetPolicy,
    /// Download limit over all torrents, payload bytes per second; 0 for none. Enforced by
    /// pacing our block requests, the only lever on what peers send.
    pub max_download_rate: u64,
    /// Upload limit over all torrents, payload bytes per second; 0 for none. Blocks read for
    /// peers wait in memory (bounded by the send buffers) until the limit lets them go.
    pub max_upload_rate: u64,
    /// Local Service Discovery (BEP 14): announce public torrents on the LAN multicast group
    /// ([`UdpIo::Lsd`](crate::UdpIo::Lsd)) and take peers from its [`Input::Datagram`](crate::Input::Datagram)s. Off by
    /// default: the runtime or the user turns it on.
    pub lsd: bool,
    /// The port announced to trackers and the DHT instead of [`Config::listen_port`]: the
    /// external port of a port mapping, or one the user forwarded by hand (`--announce-port`).
    pub announce_port: Option<u16>,
    /// The address announced to trackers (`ip=`, BEP 3; UDP trackers take IPv4 only): the
    /// external address a port mapping learned. `None`: trackers use the sender's.
    pub announce_ip: Option<IpAddr>,
    /// Message Stream Encryption of peer connections: whether we dial with it, accept it,
    /// insist on it.
    pub encryption: Encryption,
    /// The payload methods an encrypted connection may use after its handshake (offered when
    /// we dial, chosen from when we are dialled).
    pub encryption_levels: Levels,
    /// Speak uTP (BEP 29) on the DHT's UDP socket: dials try uTP first and fall back to TCP,
    /// and peers may connect over uTP. The runtime binds that socket even with the DHT off.
    pub utp: bool,
    /// BEP 55 hole punching (with [`Config::utp`]): advertise `ut_holepunch`, introduce two
    /// of our peers to each other when one asks, and reach a peer behind a NAT that a dial
    /// cannot reach through the peer that told us of it (both ends open uTP at once).
    pub holepunch: bool,
}

/// Whether peer connections use Message Stream Encryption (MSE/PE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encryption {
    /// Plain BitTorrent only: we dial in plaintext, and an encrypted handshake fails as the
    /// garbage it is to a plaintext decoder.
    Disabled,
    /// libtorrent's default: we dial encrypted and, when an encrypted handshake fails, dial
    /// the address once more in plaintext; we accept both; we say `e: 1`.
    Enabled,
    /// Never plain BitTorrent: every connection, dialled or accepted, is encrypted.
    Forced,
}

impl Encryption {
    /// Whether incoming connections may be encrypted (and so are sniffed for it).
    pub fn accepts_encrypted(self) -> bool {
        self != Encryption::Disabled
    }

    /// Whether incoming plaintext handshakes are taken.
    pub fn accepts_plaintext(self) -> bool {
        self != Encryption::Forced
    }
}

impl Config {
    /// Whether we speak `ut_holepunch`: it needs uTP, the transport punched through.
    pub fn holepunch_on(&self) -> bool {
        self.holepunch && self.utp
    }

    /// The port we announce: [`Config::announce_port`], else [`Config::listen_port`].
    pub fn announced_port(&self) -> u16 {
        self.announce_port.unwrap_or(self.listen_port)
    }

    /// The policy every outgoing connection and datagram passes ([`Config::net_policy`]).
    pub fn net_policy(&self) -> NetPolicy {
        self.net_policy
    }
}

impl Default for Config {
    /// Defaults for a process with [`DEFAULT_DESCRIPTORS`] descriptors.
    fn default() -> Self {
        let limits = ConnectionLimits::for_descriptors(DEFAULT_DESCRIPTORS);
        Config {
            listen_port: 6881,
            max_peers_per_torrent: 60,
            max_connections: limits.max_connections,
            max_pending_handshakes: limits.max_pending_handshakes,
            // Several peers behind one NAT, while one address cannot hold more than a few of a
            // torrent's slots.
            max_connections_per_ip: 8,
            max_half_open: 16,
            upload_slots: 8,
            max_requests_per_peer: 512,
            // libtorrent's floor: one block arriving while the next is asked for.
            min_requests_per_peer: 2,
            initial_requests_per_peer: 32,
            announce_ipv6: None,
            // What the engine kept before the round trip was measured (libtorrent keeps 3 s
            // and no round trip).
            request_queue_time: Duration::from_secs(2),
            max_in_flight_bytes: 16 << 20,
            max_send_buffer: 8 << 20,
            min_send_buffer: 1 << 20,
            max_read_jobs: 8,
            max_peer_requests: 500,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            // libtorrent's: an honest peer's handshake takes one round trip.
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(60),
            inactivity_timeout: Duration::from_secs(180),
            max_check_jobs: 4,
            max_checking_torrents: 1,
            hashfails_to_ban: 3,
            num_want: 80,
            shutdown_timeout: Duration::from_secs(5),
            client_name: concat!("Shoal ", env!("CARGO_PKG_VERSION")).to_string(),
            wire_limits: Limits::default(),
            net_policy: NetPolicy::Open,
            max_download_rate: 0,
            max_upload_rate: 0,
            lsd: false,
            announce_port: None,
            announce_ip: None,
            // The engine as a library (simulator, tests) speaks plain BitTorrent unless told;
            // the daemon and the CLI default to `Enabled`, as libtorrent does.
            encryption: Encryption::Disabled,
            encryption_levels: Levels::Both,
            utp: true,
            holepunch: true,
        }
    }
}

impl Config {
    /// This configuration with [`Config::max_connections`] and
    /// [`Config::max_pending_handshakes`] set for a process that may hold `budget` file
    /// descriptors (its soft `RLIMIT_NOFILE`; see [`ConnectionLimits::for_descriptors`]).
    pub fn with_descriptors(self, budget: u64) -> Config {
        self.with_limits(ConnectionLimits::for_descriptors(budget))
    }

    /// This configuration with the connection limits of `limits`.
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Config {
        self.max_connections = limits.max_connections;
        self.max_pending_handshakes = limits.max_pending_handshakes;
        self
    }
}
