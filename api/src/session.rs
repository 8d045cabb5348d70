//! Starting a session, for the CLI and the daemon alike: on either runtime, with the
//! free-port fallback (the local-only listen policy is the session's own).

use std::net::{IpAddr, SocketAddr};

use shoal_core::Config;
use shoal_smol::{DhtSettings, Handle, PortMapSettings, SessionConfig, SessionError};

use crate::rt::Rt;

/// The runtimes a session can run on; what drives it sees only the shared [`Handle`].
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Runtime {
    /// smol (shoal-smol).
    Smol,
    /// tokio (shoal-tokio).
    Tokio,
}

impl Runtime {
    /// Spawning, blocking work and timers of this runtime.
    pub fn rt(self) -> Rt {
        match self {
            Runtime::Smol => Rt::of::<shoal_smol::Smol>(),
            Runtime::Tokio => Rt::of::<shoal_tokio::Tokio>(),
        }
    }

    /// Runs `fut` to completion on this runtime's executor.
    pub fn block_on<T, E: From<String>>(self, fut: impl std::future::Future<Output = Result<T, E>>) -> Result<T, E> {
        match self {
            Runtime::Smol => shoal_smol::block_on(fut),
            Runtime::Tokio => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
                let result = rt.block_on(fut);
                // Files are flushed by now; a tracker request still on the blocking pool must not
                // hold the exit up.
                rt.shutdown_background();
                result
            }
        }
    }
}

/// A session on either runtime.
pub enum Session {
    /// On smol.
    Smol(shoal_smol::Session),
    /// On tokio.
    Tokio(shoal_tokio::Session),
}

impl Session {
    async fn start(runtime: Runtime, config: SessionConfig) -> Result<Session, SessionError> {
        match runtime {
            Runtime::Smol => shoal_smol::Session::start(config).await.map(Session::Smol),
            Runtime::Tokio => shoal_tokio::Session::start(config).await.map(Session::Tokio),
        }
    }

    /// A handle to drive the session.
    pub fn handle(&self) -> Handle {
        match self {
            Session::Smol(s) => s.handle(),
            Session::Tokio(s) => s.handle(),
        }
    }

    /// The addresses the session listens on.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        match self {
            Session::Smol(s) => s.listen_addrs(),
            Session::Tokio(s) => s.listen_addrs(),
        }
    }
}

/// What a session is started with.
pub struct Plan {
    /// The runtime.
    pub runtime: Runtime,
    /// The engine's configuration (its `listen_port` is set from `port`).
    pub engine: Config,
    /// The one address to listen on; `None`: every address, or loopback only when the engine
    /// is local-only.
    pub bind: Option<IpAddr>,
    /// The peer port.
    pub port: u16,
    /// Whether a free port will do when `port` is taken.
    pub port_fallback: bool,
    /// The DHT, if on.
    pub dht: Option<DhtSettings>,
    /// Local Service Discovery.
    pub lsd: bool,
    /// New files grow as pieces arrive instead of being allocated up front.
    pub sparse_files: bool,
    /// Port mapping of the listen port (UPnP, NAT-PMP), if on.
    pub port_mapping: Option<PortMapSettings>,
    /// The SOCKS5 proxy everything outgoing goes through, if any.
    pub proxy: Option<shoal_host::Proxy>,
}

impl Plan {
    fn config(&self, port: u16) -> SessionConfig {
        SessionConfig {
            engine: Config { listen_port: port, ..self.engine.clone() },
            // None: the session's own policy (every address, loopback only when local-only).
            listen: self.bind.map(|ip| SocketAddr::new(ip, port)).into_iter().collect(),
            seed: None,
            dht: self.dht.clone(),
            lsd: self.lsd,
            sparse_files: self.sparse_files,
            port_mapping: self.port_mapping.clone(),
            proxy: self.proxy.clone(),
        }
    }
}

/// Starts a session; when the port is taken and `port_fallback` allows, `note` is told why
/// and a free port is used instead.
pub async fn start_session(plan: Plan, note: impl FnOnce(&SessionError)) -> Result<Session, String> {
    match Session::start(plan.runtime, plan.config(plan.port)).await {
        Ok(s) => Ok(s),
        Err(e) if plan.port_fallback && plan.port != 0 => {
            note(&e);
            Session::start(plan.runtime, plan.config(0)).await.map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}
