//! `shoal daemon`: a session that runs until stopped, driven over the Tribler 7.x REST API.
//!
//! State directory: `<state>/triblerd.conf` (settings, Tribler's INI layout) and
//! `<state>/node_id` (the stable id shown as `public_key` in `events_start`). The directory
//! is private (0700, files 0600) and locked by the running daemon (`<state>/lock`).

mod access;
mod api;
mod background;
mod conn;
mod debug;
mod debug_monitor;
mod debug_proc;
mod docs;
mod downloads;
mod events;
mod fdbudget;
mod fsutil;
mod handlers;
mod health;
mod knowledge;
mod metadata;
mod routes;
mod settings;
mod state;
mod store;
mod tools;
mod ui;
mod uri;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::Receiver;
use futures_lite::future;
use serde_json::Value;
use shoal_core::Config;

use crate::session::{start_session, Plan, Runtime};
use downloads::Library;
use events::EventBus;
use settings::Settings;
use state::{Daemon, VERSION};

/// The engine's default peer port (a free one is used if it is taken).
const DEFAULT_PEER_PORT: u16 = 6881;

/// Options of `shoal daemon`; each flag wins over its environment variable, which wins over
/// `triblerd.conf`.
#[derive(clap::Args)]
pub struct DaemonArgs {
    /// State directory (settings, resume data) [default: $XDG_DATA_HOME/shoal or
    /// ~/.local/share/shoal]
    #[arg(long, env = "TSTATEDIR")]
    state_dir: Option<PathBuf>,
    /// REST API port (0 picks a free one) [default: [api] http_port of triblerd.conf, else 8085]
    #[arg(long, env = "CORE_API_PORT")]
    http_port: Option<u16>,
    /// REST API key [default: [api] key of triblerd.conf; generated and stored there if absent]
    #[arg(long, env = "CORE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// TCP port for peers (0 picks a free one); refused if taken [default: [libtorrent] port of
    /// triblerd.conf; else 6881, or a free port if 6881 is taken, stored there for next time]
    #[arg(long, env = "SHOAL_LISTEN_PORT")]
    listen_port: Option<u16>,
    /// The port announced to trackers and the DHT instead of the peer port (one forwarded by
    /// hand, or a VPN's); it wins over a UPnP/NAT-PMP mapping's.
    #[arg(long, env = "SHOAL_ANNOUNCE_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    announce_port: Option<u16>,
    /// The async runtime the daemon runs on.
    #[arg(long, value_enum, env = "SHOAL_RUNTIME", default_value_t = Runtime::Smol)]
    runtime: Runtime,
    /// Bind every socket (peers, trackers, DHT/uTP, LSD, port mapping, proxy) to this network
    /// interface (SO_BINDTODEVICE, Linux; a VPN's, say): traffic never leaves by another one,
    /// and a missing interface fails connections with an error naming it.
    #[arg(long, value_name = "NAME", env = "SHOAL_BIND_INTERFACE")]
    bind_interface: Option<String>,
}

/// `$XDG_DATA_HOME/shoal`, `~/.local/share/shoal` (or the platform's data directory).
fn default_state_dir() -> Result<PathBuf, String> {
    dirs::data_dir()
        .map(|d| d.join("shoal"))
        .ok_or_else(|| "cannot find the user's data directory: pass --state-dir or set TSTATEDIR".into())
}

fn random_hex(bytes: usize) -> String {
    use rand::{RngCore, SeedableRng};
    let mut buf = vec![0u8; bytes];
    rand::rngs::StdRng::from_os_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stable id of this state directory (64 hex), created on first start.
fn node_id(state_dir: &Path) -> Result<String, String> {
    let path = state_dir.join("node_id");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() == 64 && s.trim().bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Ok(s.trim().to_ascii_lowercase())
        }
        Ok(_) => tracing::warn!("{} is malformed; making a new id", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let id = random_hex(32);
    fsutil::write_atomic(&path, format!("{id}\n").as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(id)
}

/// The engine's configuration from the settings, with its peer connections held to the
/// engine's share of the descriptor budget.
fn engine_config(settings: &Settings, budget: &fdbudget::FdBudget) -> Config {
    let (down, up) = settings::rate_limits(settings);
    let utp = settings.get("libtorrent", "utp").as_bool().unwrap_or(true);
    Config {
        net_policy: crate::run::net_policy(),
        max_download_rate: down,
        max_upload_rate: up,
        encryption: settings::encryption(settings),
        utp,
        ..Config::default()
    }
    .with_limits(shoal_core::ConnectionLimits::for_peers(budget.engine))
}

/// Where the peer port comes from, which decides what happens when it is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortSource {
    /// `--listen-port` or `SHOAL_LISTEN_PORT`: exactly this port, or an error.
    Flag,
    /// `[libtorrent] port` of the settings: a free port for this run if it is taken.
    Settings,
    /// Nothing chosen: 6881, else a free port, which is then stored in the settings so that
    /// peers find us at the same port after a restart.
    Default,
}

/// Runs the daemon until Ctrl-C, SIGTERM or `PUT /shutdown`.
pub fn run(args: DaemonArgs, log: Option<crate::logging::LogLines>) -> Result<(), String> {
    if let Some(name) = &args.bind_interface {
        shoal_host::bind_to_interface(name)?;
    }
    let state_dir = match args.state_dir {
        Some(d) => d,
        None => default_state_dir()?,
    };
    fsutil::make_private(&state_dir, &["triblerd.conf", "node_id", "dht.dat"])
        .map_err(|e| format!("cannot create {} (mode 0700): {e}", state_dir.display()))?;
    // Held until the process ends: a second daemon on this directory would overwrite our files.
    let _lock = fsutil::StateLock::acquire(&state_dir)?;
    tracing::info!("state directory {}", state_dir.display());
    // Only now, with the lock held, is no other writer's temporary file among these.
    for dir in [state_dir.clone(), state_dir.join("dlcheckpoints")] {
        for stray in fsutil::remove_stray_temps(&dir) {
            tracing::info!("removed {}, left by an interrupted write", stray.display());
        }
    }
    let budget = fdbudget::raise_and_budget();
    tracing::info!(
        "open file limit {}: up to {} REST connections, {} descriptors for peers",
        budget.limit,
        budget.rest,
        budget.engine
    );

    let (mut settings, warnings, config_error) = Settings::load(&state_dir)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    if let Some(e) = &config_error {
        tracing::warn!("{}; starting on default settings (the file was moved to {})", e.message, e.kept.display());
    }
    let conf = settings.path().display().to_string();
    let stored_key = settings.get("api", "key").as_str().filter(|k| !k.is_empty()).map(str::to_string);
    let key = match (args.api_key.filter(|k| !k.is_empty()), stored_key) {
        (Some(k), _) => {
            tracing::info!("API key from --api-key/CORE_API_KEY");
            k
        }
        (None, Some(k)) => {
            tracing::info!("API key from {conf} ([api] key)");
            k
        }
        (None, None) => {
            let k = random_hex(16);
            settings.set("api", "key", Value::from(k.as_str()))?;
            settings.save()?;
            tracing::info!("generated an API key; it is stored in {conf} ([api] key)");
            k
        }
    };
    let public_key = node_id(&state_dir)?;
    let store = Arc::new(store::Store::open(&state_dir)?);

    let http_port = match args.http_port {
        Some(p) => p,
        None => settings.get("api", "http_port").as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(8085),
    };
    let http_ip: IpAddr =
        settings.get("api", "http_host").as_str().and_then(|s| s.parse().ok()).unwrap_or(Ipv4Addr::LOCALHOST.into());
    let allowed_hosts = settings.get("api", "allowed_hosts").as_str().map(access::host_list).unwrap_or_default();
    let stored_port = settings.get("libtorrent", "port").as_u64().and_then(|p| u16::try_from(p).ok());
    let (peer_port, port_source) = match (args.listen_port, stored_port) {
        (Some(p), _) => (p, PortSource::Flag),
        (None, Some(p)) => (p, PortSource::Settings),
        (None, None) => (DEFAULT_PEER_PORT, PortSource::Default),
    };
    tracing::debug!(peer_port, ?port_source, conf = %conf, "peer port chosen");

    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let signal_tx = stop_tx.clone();
    ctrlc::set_handler(move || {
        let _ = signal_tx.try_send(());
    })
    .map_err(|e| format!("cannot install the signal handler: {e}"))?;

    let base_config = Config { announce_port: args.announce_port, ..engine_config(&settings, &budget) };
    let dht_on = settings.get("libtorrent", "dht").as_bool().unwrap_or(true)
        && settings.get("dht", "enabled").as_bool().unwrap_or(true);
    let dht_file = state_dir.join("dht.dat");
    let dht = crate::run::dht_settings(dht_on, std::fs::read(&dht_file).ok());
    let lsd = crate::run::lsd_enabled(settings.get("libtorrent", "lsd").as_bool().unwrap_or(true));
    let port_mapping = crate::run::port_mapping(
        settings.get("libtorrent", "upnp").as_bool().unwrap_or(true),
        settings.get("libtorrent", "natpmp").as_bool().unwrap_or(true),
        // Tribler has no PCP setting: PCP is NAT-PMP's version 2 and follows `natpmp`.
        true,
        None,
    );
    // A proxy that cannot be set up keeps the daemon from starting: it must not go direct.
    let (proxy_type, proxy_server, proxy_auth) = settings::proxy_settings(&settings);
    let policy = base_config.net_policy;
    let proxy = crate::proxy::from_settings(proxy_type, &proxy_server, &proxy_auth, policy)
        .map_err(|e| format!("{conf}: {e}"))?;
    if let Some(p) = &proxy {
        tracing::info!(
            "proxy: SOCKS5 at {}{} for peers, trackers, the DHT and uTP; Local Service Discovery off",
            p.addr,
            if p.auth.is_some() { " with username and password" } else { "" }
        );
    }
    tracing::debug!(
        net_policy = ?base_config.net_policy,
        max_download_rate = base_config.max_download_rate,
        max_upload_rate = base_config.max_upload_rate,
        encryption = ?base_config.encryption,
        dht = dht.is_some(),
        dht_nodes_saved = std::fs::metadata(&dht_file).is_ok(),
        lsd,
        upnp = port_mapping.as_ref().is_some_and(|p| p.upnp),
        natpmp = port_mapping.as_ref().is_some_and(|p| p.natpmp),
        announce_port = ?base_config.announce_port,
        "engine configuration"
    );
    let runtime = args.runtime;
    let rt = runtime.rt();
    runtime.block_on(async move {
        let plan = Plan {
            runtime,
            engine: base_config.clone(),
            bind: None,
            port: peer_port,
            port_fallback: port_source != PortSource::Flag,
            dht,
            lsd,
            sparse_files: false,
            port_mapping,
            proxy: proxy.clone(),
        };
        let session = start_session(plan, |e| tracing::warn!("{e}; using a free port for peers instead")).await?;
        if port_source == PortSource::Default {
            // 6881 was taken: keep the free port picked instead, so peers that learnt it (from
            // trackers, the DHT) find us there after a restart.
            if let Some(bound) = session.listen_addrs().first().map(|a| a.port()).filter(|&p| p != DEFAULT_PEER_PORT) {
                settings.set("libtorrent", "port", Value::from(bound))?;
                settings.save()?;
                tracing::info!("peer port {bound} stored in {conf} ([libtorrent] port) for the next start");
            }
        }
        let listener = match async_net::TcpListener::bind(SocketAddr::new(http_ip, http_port)).await {
            Ok(l) => l,
            Err(e) => {
                session.handle().shutdown().await;
                return Err(format!("cannot listen on {}: {e}", SocketAddr::new(http_ip, http_port)));
            }
        };
        let http_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let routes = routes::table();
        let events = Arc::new(EventBus::new(public_key, VERSION.to_string(), rt));
        if let Some(e) = config_error {
            events.report_config_error(&format!(
                "{}\nShoal started on default settings; the file was moved to {}.",
                e.message,
                e.kept.display()
            ));
        }
        let (library, _library_task) =
            Library::start(&state_dir, session.handle(), events.clone(), store.clone(), rt).await?;
        let (monitor, _monitor_task) = debug_monitor::Monitor::start(log, rt);
        let daemon = Arc::new(Daemon {
            settings: Mutex::new(settings),
            key,
            allowed_hosts,
            http_addr,
            peer_addrs: session.listen_addrs().to_vec(),
            events,
            swagger: docs::swagger(&routes, VERSION),
            stop: stop_tx,
            engine_config: base_config,
            library: library.clone(),
            rt,
            store,
            state_dir: state_dir.clone(),
            monitor,
            proxy,
        });
        library.load().await;
        let keeper = rt.spawn(background::run(daemon.clone()));
        let checker = rt.spawn(health::run(daemon.clone()));
        let peers: Vec<String> = daemon.peer_addrs.iter().map(|a| a.to_string()).collect();
        tracing::info!("peers on {}", peers.join(", "));
        let server = rt.spawn(routes::serve_http(rt, listener, routes::app(daemon.clone(), &routes), budget.rest));
        // The sign-in link carries the API key, so it goes only to the terminal of whoever
        // started the daemon: never into the log, which `/debug/log` serves and a service's
        // journal keeps. Both come before "REST API on", the line that says start-up is over.
        tracing::info!("web UI on {} (sign in with the API key)", ui::page_link(http_addr));
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            println!("web UI, signed in: {}", ui::sign_in_link(http_addr, &daemon.key));
        }
        tracing::info!("REST API on http://{http_addr} (Ctrl-C or PUT /shutdown to stop)");

        wait_for_stop(&stop_rx).await;
        tracing::info!("shutting down");
        drop(keeper);
        drop(checker);
        daemon.events.shutdown_state("Checkpointing Downloads...");
        daemon.library.checkpoint_all().await;
        // The entries of downloads added just before go to disk with their checkpoints.
        if let Err(e) = daemon.store.committed().await {
            tracing::warn!("{e}");
        }
        background::save_dht(&daemon).await;
        daemon.events.shutdown_state("Shutting down Downloads...");
        // Say goodbye to trackers and flush files, but never hang on a dead tracker.
        future::or(session.handle().shutdown(), rt.sleep(Duration::from_secs(15))).await;
        daemon.library.mark_clean();
        daemon.events.shutdown_state("Saving configuration...");
        daemon.events.close();
        // Let open event streams deliver their last frames before the process ends.
        let deadline = Instant::now() + Duration::from_secs(2);
        while daemon.events.live_streams() > 0 && Instant::now() < deadline {
            rt.sleep(Duration::from_millis(10)).await;
        }
        rt.sleep(Duration::from_millis(50)).await;
        drop(server);
        tracing::info!("stopped");
        Ok(())
    })
}

async fn wait_for_stop(stop: &Receiver<()>) {
    let _ = stop.recv().await;
}
