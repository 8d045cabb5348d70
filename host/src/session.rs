//! A session's settings, what a handle adds, and its errors.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use shoal_core::Metainfo;
use shoal_core::{Config, EngineError, FilePriority};

use crate::disk::StorageError;

/// How to run a session.
#[derive(Clone, Debug, Default)]
pub struct SessionConfig {
    /// The engine's tunables (`listen_port` among them).
    pub engine: Config,
    /// Addresses to accept peers on; empty means every address on `engine.listen_port`
    /// ([`SessionConfig::listen_addrs`]).
    pub listen: Vec<SocketAddr>,
    /// Seed of the engine's randomness; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// The DHT, if on (UDP on the listen addresses).
    pub dht: Option<DhtSettings>,
    /// Local Service Discovery (BEP 14): multicast on UDP 6771 of the LAN (or of loopback when
    /// every listen address is loopback). Turns on [`Config::lsd`] when the socket is set up.
    pub lsd: bool,
    /// Let new files grow sparse as pieces arrive, instead of allocating each wanted file's
    /// full size when it is first written (Transmission's "fast" preallocation, the default).
    pub sparse_files: bool,
    /// Port mapping (UPnP IGD, NAT-PMP) of the listen port, if on; what it learns is announced.
    pub port_mapping: Option<PortMapSettings>,
    /// A SOCKS5 proxy for everything the session dials: peers (CONNECT), UDP trackers (UDP
    /// ASSOCIATE), HTTP trackers, the DHT and uTP (the UDP relay of an association kept open
    /// for them). A failing proxy fails the connection, never goes direct. With a proxy Local
    /// Service Discovery is off (multicast cannot be proxied); peers that dial the listeners
    /// are still accepted, as libtorrent does by default.
    pub proxy: Option<crate::proxy::Proxy>,
}

impl SessionConfig {
    /// The addresses the session binds: [`SessionConfig::listen`], or when that is empty
    /// `0.0.0.0` and `[::]` on `engine.listen_port`, `127.0.0.1` and `[::1]` when
    /// [`NetPolicy::LocalOnly`](shoal_core::NetPolicy::LocalOnly): answers to anyone else would leave the host.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        if !self.listen.is_empty() {
            return self.listen.clone();
        }
        let (v4, v6) = if self.engine.net_policy().is_local_only() {
            (Ipv4Addr::LOCALHOST, Ipv6Addr::LOCALHOST)
        } else {
            (Ipv4Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED)
        };
        let port = self.engine.listen_port;
        vec![SocketAddr::from((v4, port)), SocketAddr::from((v6, port))]
    }
}

/// How the session maps its ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortMapSettings {
    /// Use UPnP IGD.
    pub upnp: bool,
    /// Use NAT-PMP.
    pub natpmp: bool,
    /// Use PCP (RFC 6887) first, NAT-PMP being its fallback when the gateway does not speak it.
    pub pcp: bool,
    /// Where NAT-PMP and PCP requests go; `None`: the default gateway of `/proc/net/route`.
    pub gateway: Option<Ipv4Addr>,
}

/// How to run the DHT.
#[derive(Clone, Debug, Default)]
pub struct DhtSettings {
    /// Protocol settings, bootstrap host names among them.
    pub config: shoal_core::dht::DhtConfig,
    /// Nodes to start from besides the bootstrap hosts (e.g. other nodes on loopback).
    pub nodes: Vec<SocketAddr>,
    /// A routing table saved by [`crate::Handle::dht_snapshot`] in an earlier run.
    pub saved: Option<Vec<u8>>,
}

/// Errors of session operations.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Binding a listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The engine refused the command.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Setting up the torrent's files failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The session has stopped.
    #[error("the session has stopped")]
    Stopped,
    /// Starting the disk and hash threads failed.
    #[error("cannot start worker threads: {0}")]
    Threads(std::io::Error),
    /// The engine refused a health check.
    #[error(transparent)]
    Health(#[from] shoal_core::HealthCheckError),
}

/// How to add a torrent.
#[derive(Clone, Debug)]
pub struct AddOptions {
    /// The torrent.
    pub metainfo: Metainfo,
    /// The directory its files go under.
    pub destination: PathBuf,
    /// Start paused.
    pub paused: bool,
    /// Peers to dial besides the trackers'.
    pub peers: Vec<SocketAddr>,
    /// Per-file priorities.
    pub file_priorities: Vec<FilePriority>,
    /// Pieces known verified (resume data); skips the check.
    pub have: Option<shoal_core::Bitfield>,
    /// With `have`: still check the other pieces whose data exists (resume data from before a
    /// crash).
    pub verify_unverified: bool,
}

impl AddOptions {
    /// Defaults: check existing data, start at once.
    pub fn new(metainfo: Metainfo, destination: PathBuf) -> Self {
        AddOptions {
            metainfo,
            destination,
            paused: false,
            peers: Vec::new(),
            file_priorities: Vec::new(),
            have: None,
            verify_unverified: false,
        }
    }
}

/// How to add a magnet link: the files are mapped under `destination` once the metadata
/// has arrived from peers (watch for [`shoal_core::Event::MetadataReceived`]).
#[derive(Clone, Debug)]
pub struct MagnetOptions {
    /// The parsed link.
    pub magnet: shoal_core::magnet::Magnet,
    /// The directory its files go under.
    pub destination: PathBuf,
    /// Start paused.
    pub paused: bool,
    /// Peers to dial besides the link's and the trackers'.
    pub peers: Vec<SocketAddr>,
}

/// A torrent's verified pieces, taken after its written data reached stable storage: resume
/// data built from it never claims a piece a crash could lose.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The torrent's phase when the snapshot was taken.
    pub state: shoal_core::TorrentState,
    /// Pieces verified and written (and synced) by then.
    pub have: shoal_core::Bitfield,
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    use shoal_core::Config;

    use super::SessionConfig;

    fn config(local_only: bool, listen: Vec<SocketAddr>) -> SessionConfig {
        SessionConfig {
            engine: Config {
                listen_port: 6881,
                net_policy: shoal_core::NetPolicy::new(local_only),
                ..Config::default()
            },
            listen,
            ..SessionConfig::default()
        }
    }

    #[test]
    fn listens_everywhere_by_default() {
        let addrs = config(false, Vec::new()).listen_addrs();
        assert_eq!(
            addrs,
            [SocketAddr::from((Ipv4Addr::UNSPECIFIED, 6881)), SocketAddr::from((Ipv6Addr::UNSPECIFIED, 6881))]
        );
    }

    #[test]
    fn local_only_listens_on_loopback() {
        let addrs = config(true, Vec::new()).listen_addrs();
        assert_eq!(
            addrs,
            [SocketAddr::from((Ipv4Addr::LOCALHOST, 6881)), SocketAddr::from((Ipv6Addr::LOCALHOST, 6881))]
        );
    }

    #[test]
    fn given_addresses_win() {
        let given = vec![SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 7000))];
        assert_eq!(config(true, given.clone()).listen_addrs(), given);
    }
}
