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
//! disk.rs, pool.rs) report back through input.rs. session.rs holds the settings and errors.
//!
//! ```text
//! let (handle, bound, task) = shoal_host::start::<MyRuntime>(config).await?;
//! my_executor::spawn(task.run());
//! ```

mod command;
mod disk;
mod handle;
mod input;
mod io;
mod net;
mod pool;
mod session;
mod task;
mod workers;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use shoal_core::engine::Engine;
use shoal_core::Instant;

pub use disk::{Storage, StorageError};
pub use handle::Handle;
pub use net::{http_agent, http_error, resolve_blocking, PolicyResolver};
pub use session::{AddOptions, Checkpoint, DhtSettings, MagnetOptions, SessionConfig, SessionError};
pub use task::EngineTask;

/// What an executor gives a Shoal session: tasks, a blocking pool, a clock, sockets.
///
/// Implementors are marker types; every method is an associated function. Futures must be
/// `Send` because the engine task and its helpers may run on a work-stealing executor.
pub trait Runtime: Sized + Send + Sync + 'static {
    /// A spawned task; dropping it cancels the task.
    type Task: Send + Sync + 'static;
    /// A listening TCP socket.
    type Listener: Send + Sync + 'static;
    /// A connected TCP stream.
    type Stream: Send + 'static;
    /// The reading half of a stream.
    type Reader: Send + 'static;
    /// The writing half of a stream.
    type Writer: Send + 'static;
    /// A UDP socket connected to one peer.
    type Udp: Send + Sync + 'static;

    /// Spawns a task, cancelled when the returned handle is dropped.
    fn spawn(fut: impl Future<Output = ()> + Send + 'static) -> Self::Task;
    /// Runs `work` on the blocking pool, detached (disk I/O, hashing, HTTP).
    fn spawn_blocking(work: impl FnOnce() + Send + 'static);
    /// Completes at `at` (a deadline of the engine, in the past or future).
    fn sleep_until(at: std::time::Instant) -> impl Future<Output = ()> + Send;

    /// Binds a TCP listener.
    fn bind(addr: SocketAddr) -> impl Future<Output = std::io::Result<Self::Listener>> + Send;
    /// The address a listener is bound to.
    fn local_addr(listener: &Self::Listener) -> std::io::Result<SocketAddr>;
    /// Accepts one connection.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = std::io::Result<(Self::Stream, SocketAddr)>> + Send + '_;
    /// Opens a TCP connection.
    fn connect(addr: SocketAddr) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
    /// Splits a stream for concurrent reading and writing (and turns Nagle off).
    fn split(stream: Self::Stream) -> (Self::Reader, Self::Writer);
    /// Reads some bytes; 0 means end of stream.
    fn read<'a>(
        reader: &'a mut Self::Reader,
        buf: &'a mut [u8],
    ) -> impl Future<Output = std::io::Result<usize>> + Send + 'a;
    /// Writes all of `data`.
    fn write_all<'a>(
        writer: &'a mut Self::Writer,
        data: &'a [u8],
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'a;

    /// Resolves a host name.
    fn resolve(host: String, port: u16) -> impl Future<Output = std::io::Result<Vec<SocketAddr>>> + Send;
    /// Binds a UDP socket of `peer`'s family on an ephemeral port and connects it to `peer`.
    fn udp_connect(peer: SocketAddr) -> impl Future<Output = std::io::Result<Self::Udp>> + Send;
    /// Sends a datagram to the connected peer.
    fn udp_send<'a>(udp: &'a Self::Udp, data: &'a [u8]) -> impl Future<Output = std::io::Result<usize>> + Send + 'a;
    /// Receives a datagram from the connected peer.
    fn udp_recv<'a>(udp: &'a Self::Udp, buf: &'a mut [u8]) -> impl Future<Output = std::io::Result<usize>> + Send + 'a;
    /// Binds an unconnected UDP socket (the DHT's, on the listen port).
    fn udp_bind(addr: SocketAddr) -> impl Future<Output = std::io::Result<Self::Udp>> + Send;
    /// Sends a datagram to `to` from an unconnected socket.
    fn udp_send_to<'a>(
        udp: &'a Self::Udp,
        data: &'a [u8],
        to: SocketAddr,
    ) -> impl Future<Output = std::io::Result<usize>> + Send + 'a;
    /// Receives a datagram and its sender on an unconnected socket.
    fn udp_recv_from<'a>(
        udp: &'a Self::Udp,
        buf: &'a mut [u8],
    ) -> impl Future<Output = std::io::Result<(usize, SocketAddr)>> + Send + 'a;
    /// Adopts a UDP socket set up with std (and socket2) options, already non-blocking; called
    /// from within the runtime (the Local Service Discovery socket).
    fn udp_from_std(socket: std::net::UdpSocket) -> std::io::Result<Self::Udp>;
}

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
    if engine_config.listen_port == 0 {
        if let Some(a) = bound.first() {
            engine_config.listen_port = a.port();
        }
    }
    // Local Service Discovery, on loopback when the session only listens there (and always
    // when local-only: the policy allows multicast only through the loopback interface).
    let mut lsd_socket = None;
    if config.lsd {
        let loopback = policy.is_local_only() || !bound.is_empty() && bound.iter().all(|a| a.ip().is_loopback());
        let interface = if loopback { Ipv4Addr::LOCALHOST } else { Ipv4Addr::UNSPECIFIED };
        match io::lsd_socket::<R>(policy, interface, inputs_tx.clone()) {
            Ok(s) => lsd_socket = Some(s),
            Err(e) => tracing::warn!("Local Service Discovery cannot use UDP {}: {e}", shoal_core::lsd::PORT),
        }
    }
    engine_config.lsd = lsd_socket.is_some();
    let seed = config.seed.unwrap_or_else(random_seed);
    let mut engine = Engine::new(engine_config, seed, Instant::ZERO);
    // The DHT speaks UDP on the same addresses and port as the peer listeners.
    let mut dht_sockets = Vec::new();
    if let Some(dht) = &config.dht {
        for addr in &bound {
            match io::dht_socket::<R>(*addr, inputs_tx.clone()).await {
                Ok(s) => dht_sockets.push(s),
                Err(e) => tracing::warn!("DHT cannot use UDP {addr}: {e}"),
            }
        }
        if !dht_sockets.is_empty() {
            let mut dht_config = dht.config.clone();
            dht_config.ipv4 = bound.iter().any(|a| a.is_ipv4());
            dht_config.ipv6 = bound.iter().any(|a| a.is_ipv6());
            engine.enable_dht(dht_config, dht.saved.as_deref(), Instant::ZERO);
            for node in &dht.nodes {
                engine.add_dht_node(*node, Instant::ZERO);
            }
        }
    }
    let (commands_tx, commands) = async_channel::unbounded();
    let mut task = EngineTask::new(engine, inputs_tx, inputs, commands, listeners, dht_sockets, lsd_socket)
        .map_err(SessionError::Threads)?;
    task.sparse_files = config.sparse_files;
    Ok((Handle::new(commands_tx), bound, task))
}

/// A seed from the OS's hash randomness (the core itself never draws randomness).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}
