//! The limits and protocol constants of a uTP socket.

use std::time::Duration;

/// Limits and protocol constants of a [`UtpSocket`](super::UtpSocket).
#[derive(Clone, Debug)]
pub struct UtpConfig {
    /// Most connections at once (open and half-open).
    pub max_connections: usize,
    /// Most connections accepted from a SYN and not yet confirmed by the peer's next packet:
    /// a SYN flood never holds more state than this.
    pub max_half_open: usize,
    /// Receive buffer per connection, in bytes: the window we advertise is its free room.
    pub recv_buffer: usize,
    /// Send buffer per connection, in bytes (written and not yet acknowledged).
    pub send_buffer: usize,
    /// The payload every packet starts with, and falls back to. 1200 bytes fit any path's MTU
    /// (IPv6's 1280) with IPv6, UDP and uTP headers and a selective ACK to spare.
    pub max_payload: usize,
    /// The largest IP packet the host's route allows (the interface's MTU): packet-size
    /// discovery probes payloads up to it less the headers. `None`: no discovery.
    pub path_mtu: Option<usize>,
    /// LEDBAT's queueing delay target (BEP 29 and libtorrent: 100 ms).
    pub target_delay: Duration,
    /// SYNs resent before a connect fails (libtorrent's `utp_syn_resends`: 2).
    pub syn_resends: u32,
    /// Retransmission timeouts in a row before an open connection is dropped (libtorrent's
    /// `utp_num_resends`: 3).
    pub max_resends: u32,
    /// A connection that received nothing for this long is dropped. Longer than BitTorrent's
    /// two-minute keep-alive, so a quiet live peer stays.
    pub idle_timeout: Duration,
    /// An idle connection sends a bare ACK this often to keep NAT mappings alive (libutp: 29 s).
    pub keepalive: Duration,
    /// How long a zero receive window of the peer stops us before we probe it with one packet
    /// (libutp: 15 s).
    pub zero_window_probe: Duration,
}

impl Default for UtpConfig {
    fn default() -> Self {
        UtpConfig {
            max_connections: 200,
            max_half_open: 50,
            recv_buffer: 1 << 20,
            send_buffer: 1 << 20,
            max_payload: 1200,
            path_mtu: None,
            target_delay: Duration::from_millis(100),
            syn_resends: 2,
            max_resends: 3,
            idle_timeout: Duration::from_secs(300),
            keepalive: Duration::from_secs(29),
            zero_window_probe: Duration::from_secs(15),
        }
    }
}
