//! The runtime-neutral host of a Shoal engine.
//!
//! Everything an adapter does besides talking to its executor lives here, written once: the
//! engine task (commands, inputs, outputs, shutdown), the peer connection and listener loops,
//! the UDP tracker relay, the HTTP tracker client, disk and hash jobs. A runtime supplies only
//! primitives through [`Runtime`]: spawn a task, run a closure on its blocking pool, sleep,
//! and TCP/UDP sockets. shoal-smol implements it for smol, shoal-tokio for tokio.
//!
//! Where things are: a [`Handle`] (handle.rs) sends commands (command.rs; a plain engine call
//! is a closure, `Command::Engine`) to the [`EngineTask`] (task.rs), which owns the engine.
//! Socket tasks and trackers (io.rs, net.rs) and the disk and hash threads (workers.rs,
//! disk.rs, pool.rs) report back through input.rs. session.rs holds the settings and errors,
//! runtime.rs the [`Runtime`] trait; portmap.rs runs UPnP/NAT-PMP port mapping beside the
//! engine (gateway.rs finds the router). proxy.rs talks to a SOCKS5 proxy; association.rs
//! carries the DHT and uTP through its UDP relay when one is set.
//!
//! ```text
//! let (handle, bound, task) = shoal_host::start::<MyRuntime>(config).await?;
//! my_executor::spawn(task.run());
//! ```

mod association;
mod command;
mod device;
mod device_http;
mod disk;
mod gateway;
mod handle;
mod input;
mod io;
mod net;
mod pool;
mod portmap;
mod proxy;
mod random;
mod runtime;
mod session;
mod task;
mod workers;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use shoal_core::Engine;
use shoal_core::Instant;

pub use association::{AssociationState, ProxyUdpReport};
pub use device::{bind_to_interface, bound_interface};
pub use disk::{Storage, StorageError};
pub use gateway::default_gateway;
pub use handle::Handle;
pub use net::{http_agent, http_error, http_error_of, resolve_blocking, PolicyResolver};
pub use portmap::PortMapReport;
pub use proxy::Proxy;
pub use runtime::Runtime;
pub use session::{AddOptions, Checkpoint, DhtSettings, MagnetOptions, PortMapSettings, SessionConfig, SessionError};
pub use task::EngineTask;

/// Binds the listeners and builds the engine task; the caller spawns [`EngineTask::run`] on
/// its executor. Returns the session handle and the addresses actually bound.
pub async fn start<R: Runtime>(
    config: SessionConfig,
) -> Result<(Handle, Vec<SocketAddr>, EngineTask<R>), SessionError> {
    // Small on purpose: socket readers wait here, so TCP pushes back on a peer that sends faster
    // than the engine digests (each entry may hold a 256 KiB read).
    let (inputs_tx, inputs) = async_channel::bounded(32);
    let policy = config.engine.net_policy();
    let addrs = config.listen_addrs();
    let mut listeners = Vec::new();
    let mut bound = Vec::new();
    for addr in addrs {
        match io::listen::<R>(addr, inputs_tx.clone()).await {
            Ok((local, task)) => {
                bound.push(local);
                listeners.push(task);
            }
            // A host without IPv6 still works on IPv4.
            Err(_) if addr.is_ipv6() && !bound.is_empty() => {}
            Err(source) => return Err(SessionError::Listen { addr, source }),
        }
    }
    let mut engine_config = config.engine.clone();
    if engine_config.announce_ipv6.is_none() {
        // BEP 7: a listener on a global IPv6 address is how trackers' IPv6 peers reach us.
        engine_config.announce_ipv6 = bound.iter().find_map(|a| global_ipv6(a.ip()));
    }
    if engine_config.listen_port == 0 {
        if let Some(a) = bound.first() {
            engine_config.listen_port = a.port();
        }
    }
    // Local Service Discovery, on loopback when the session only listens there (and always
    // when local-only: the policy allows multicast only through the loopback interface).
    let mut lsd_sockets = Vec::new();
    let mut proxy_udp = None;
    if config.proxy.is_some() && config.lsd {
        tracing::info!("a proxy is set: Local Service Discovery stays off (multicast cannot go through a proxy)");
    }
    if config.lsd && config.proxy.is_none() {
        let loopback = policy.is_local_only() || !bound.is_empty() && bound.iter().all(|a| a.ip().is_loopback());
        let interface = if loopback { Ipv4Addr::LOCALHOST } else { Ipv4Addr::UNSPECIFIED };
        match io::lsd_socket::<R>(policy, interface, inputs_tx.clone()) {
            Ok(s) => lsd_sockets.push(s),
            Err(e) => tracing::warn!("Local Service Discovery cannot use UDP {}: {e}", shoal_core::lsd::PORT),
        }
        let interface6 = if loopback { io::LOOPBACK_IFINDEX } else { 0 };
        match io::lsd_socket_v6::<R>(policy, interface6, inputs_tx.clone()) {
            Ok(s) => lsd_sockets.push(s),
            // A host without IPv6 (or without a multicast route for it) still has IPv4's group.
            Err(e) => tracing::info!("Local Service Discovery on IPv6 cannot use UDP {}: {e}", shoal_core::lsd::PORT),
        }
    }
    engine_config.lsd = !lsd_sockets.is_empty();
    // The DHT speaks UDP on the same addresses and port as the peer listeners, and uTP
    // (BEP 29) shares that socket, so it is bound when either is on. Through a proxy, that
    // socket is the proxy's UDP relay instead (as libtorrent does with a SOCKS5 proxy): no
    // datagram of theirs goes directly.
    let mut dht_sockets = Vec::new();
    let mut relayed = None;
    let wants_udp = config.dht.is_some() || engine_config.utp;
    match &config.proxy {
        Some(proxy) if wants_udp => {
            let report = association::SharedReport::default();
            relayed = Some(association::start::<R>(proxy.clone(), policy, inputs_tx.clone(), report.clone()));
            proxy_udp = Some(report);
        }
        Some(_) => {}
        None if wants_udp => {
            for addr in &bound {
                match io::dht_socket::<R>(*addr, inputs_tx.clone()).await {
                    Ok(s) => dht_sockets.push(s),
                    Err(e) => tracing::warn!("DHT and uTP cannot use UDP {addr}: {e}"),
                }
            }
        }
        None => {}
    }
    let has_udp = !dht_sockets.is_empty() || relayed.is_some();
    engine_config.utp &= has_udp;
    let seed = config.seed.unwrap_or_else(random::random_seed);
    let mut engine = Engine::new(engine_config, seed, Instant::ZERO);
    if let Some(dht) = &config.dht {
        if has_udp {
            let mut dht_config = dht.config.clone();
            dht_config.ipv4 = bound.iter().any(|a| a.is_ipv4());
            dht_config.ipv6 = bound.iter().any(|a| a.is_ipv6());
            if config.proxy.is_some() && !policy.is_contained() {
                without_router_names(&mut dht_config);
            }
            engine.enable_dht(dht_config, dht.saved.as_deref(), Instant::ZERO);
            for node in &dht.nodes {
                engine.add_dht_node(*node, Instant::ZERO);
            }
        }
    }
    let (commands_tx, commands) = async_channel::unbounded();
    let mut report = None;
    let mut portmap_task = None;
    if let (Some(settings), Some(port)) = (&config.port_mapping, bound.first().map(SocketAddr::port)) {
        let shared = std::sync::Arc::default();
        let setup = portmap::Setup {
            settings: settings.clone(),
            policy,
            port,
            udp: !dht_sockets.is_empty(),
            announce_port: config.engine.announce_port,
            commands: commands_tx.clone(),
            report: std::sync::Arc::clone(&shared),
        };
        match portmap::start::<R>(setup) {
            Ok(t) => {
                portmap_task = Some(t);
                report = Some(shared);
            }
            Err(e) => tracing::warn!("port mapping is off: {e}"),
        }
    }
    let sockets = task::Sockets { listeners, dht: dht_sockets, relayed, lsd: lsd_sockets };
    let mut task =
        EngineTask::new(engine, inputs_tx, inputs, commands, sockets, config.proxy).map_err(SessionError::Threads)?;
    task.sparse_files = config.sparse_files;
    task.portmap = portmap_task;
    Ok((Handle::new(commands_tx, report).with_proxy_udp(proxy_udp), bound, task))
}

/// Through a proxy no host name is looked up here (the proxy resolves those of trackers), so
/// the DHT's bootstrap routers given by name are left out: it starts from its saved nodes, the
/// nodes given by address, and those peers tell it of (BEP 5 PORT).
fn without_router_names(dht: &mut shoal_core::dht::DhtConfig) {
    let before = dht.bootstrap.len();
    dht.bootstrap.retain(|(host, _)| host.parse::<IpAddr>().is_ok());
    if dht.bootstrap.len() < before {
        tracing::info!(
            "proxy: the DHT does not use its bootstrap routers given by name (they would be looked up \
             directly); it starts from saved nodes and those peers tell it of"
        );
    }
}

/// `ip` if it is a global unicast IPv6 address (2000::/3): one a peer elsewhere can reach, not
/// loopback, link-local, unique-local, multicast or IPv4-mapped.
fn global_ipv6(ip: IpAddr) -> Option<Ipv6Addr> {
    match ip {
        IpAddr::V6(v6) if v6.segments()[0] & 0xe000 == 0x2000 => Some(v6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{global_ipv6, without_router_names};

    #[test]
    fn through_a_proxy_the_dht_keeps_only_routers_given_by_address() {
        let mut dht = shoal_core::dht::DhtConfig::default();
        assert!(dht.bootstrap.iter().any(|(h, _)| h.parse::<std::net::IpAddr>().is_err()), "named routers by default");
        dht.bootstrap.push(("192.0.2.7".into(), 6881));
        without_router_names(&mut dht);
        assert_eq!(dht.bootstrap, [("192.0.2.7".to_string(), 6881)]);
    }

    #[test]
    fn only_global_unicast_ipv6_is_announced() {
        let g = |s: &str| global_ipv6(s.parse().expect("an address"));
        assert_eq!(g("2a01:4f8::1"), Some("2a01:4f8::1".parse().unwrap()));
        for other in ["::", "::1", "fe80::1", "fd00::1", "ff02::1", "::ffff:1.2.3.4", "192.0.2.1"] {
            assert_eq!(g(other), None, "{other}");
        }
    }
}
