//! `shoal download` and `shoal seed`: one torrent in a session of its own.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use futures_lite::{future, FutureExt, StreamExt};
use shoal_core::magnet::Magnet;
use shoal_core::TorrentId;
use shoal_core::{Config, Event, TorrentState, TorrentStats};
use shoal_smol::{AddOptions, Handle, MagnetOptions};

use crate::failure::Failure;
use crate::progress::{eprint_line, human_bytes, human_duration, Progress};
use crate::session::{self, Plan, Runtime, Session};

/// Session options shared by `download` and `seed`.
#[derive(clap::Args)]
pub struct NetArgs {
    /// The async runtime the session runs on.
    #[arg(long, value_enum, env = "SHOAL_RUNTIME", default_value_t = Runtime::Smol)]
    runtime: Runtime,
    /// TCP port to accept peers on (0 picks a free one).
    #[arg(long, default_value_t = 6881)]
    listen_port: u16,
    /// Address to listen on (default: every IPv4 and IPv6 address).
    #[arg(long)]
    bind: Option<IpAddr>,
    /// A peer to connect to, besides those the trackers return (repeatable).
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<SocketAddr>,
    /// Do not use the DHT (it is on by default; `SHOAL_LOCAL_ONLY=1` keeps it on loopback).
    #[arg(long)]
    no_dht: bool,
    /// Do not use Local Service Discovery (multicast on the LAN; on by default, off with
    /// `SHOAL_LOCAL_ONLY=1`).
    #[arg(long)]
    no_lsd: bool,
    /// Do not use uTP (BEP 29; on by default: dials try uTP first and fall back to TCP, and
    /// peers may connect over uTP on the listen port's UDP socket).
    #[arg(long)]
    no_utp: bool,
    /// Let new files grow as pieces arrive instead of allocating their full size up front.
    #[arg(long)]
    sparse: bool,
    /// Do not ask the router to forward the listen port by UPnP IGD (on by default; off with
    /// `SHOAL_LOCAL_ONLY` unless `SHOAL_PORTMAP=1`).
    #[arg(long)]
    no_upnp: bool,
    /// Do not ask the router to forward the listen port by NAT-PMP or PCP, its version 2 (on by
    /// default; off with `SHOAL_LOCAL_ONLY` unless `SHOAL_PORTMAP=1`).
    #[arg(long)]
    no_natpmp: bool,
    /// Use NAT-PMP (version 0) without trying PCP (RFC 6887) first. By default PCP is asked
    /// first and NAT-PMP used when the router answers that it does not speak PCP.
    #[arg(long)]
    no_pcp: bool,
    /// Bind every socket (peers, trackers, DHT/uTP, LSD, port mapping, proxy) to this network
    /// interface (SO_BINDTODEVICE, Linux; a VPN's, say): traffic never leaves by another one,
    /// and a missing interface fails connections with an error naming it.
    #[arg(long, value_name = "NAME", env = "SHOAL_BIND_INTERFACE")]
    bind_interface: Option<String>,
    /// The router NAT-PMP and PCP requests go to (default: the default gateway).
    #[arg(long, value_name = "IP")]
    natpmp_gateway: Option<std::net::Ipv4Addr>,
    /// The port announced to trackers and the DHT instead of the listen port (one forwarded
    /// by hand, or a VPN's); it wins over a port mapping's.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    announce_port: Option<u16>,
    /// Send every outgoing connection (peers, trackers) through this SOCKS5 proxy:
    /// `socks5://[user:password@]host:port`. A failing proxy fails the connection; nothing goes
    /// direct. The DHT and uTP go through its UDP relay (UDP ASSOCIATE); Local Service
    /// Discovery is off (multicast cannot go through a proxy).
    #[arg(long, value_parser = parse_proxy)]
    proxy: Option<shoal_host::Proxy>,
    /// Encryption of peer connections (MSE/PE): `enabled` dials encrypted, retries a peer
    /// without it in plaintext and accepts both; `forced` never speaks plaintext BitTorrent;
    /// `disabled` never encrypts.
    #[arg(long, value_enum, env = "SHOAL_ENCRYPTION", default_value_t = EncryptionArg::Enabled)]
    encryption: EncryptionArg,
    /// What an encrypted connection's payload stream may be after the handshake: `both`
    /// (plaintext when the other side allows it too, as libtorrent), `rc4` (RC4 only, like
    /// libtorrent's `allowed_enc_level` = RC4), or `plaintext` (only the handshake is encrypted).
    #[arg(long, value_enum, env = "SHOAL_ENCRYPTION_LEVEL", default_value_t = LevelArg::Both)]
    encryption_level: LevelArg,
}

/// `--encryption-level`: [`shoal_core::mse::Levels`] by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    /// Plaintext after an encrypted handshake.
    Plaintext,
    /// RC4 only.
    Rc4,
    /// Either.
    Both,
}

impl From<LevelArg> for shoal_core::mse::Levels {
    fn from(l: LevelArg) -> Self {
        match l {
            LevelArg::Plaintext => shoal_core::mse::Levels::Plaintext,
            LevelArg::Rc4 => shoal_core::mse::Levels::Rc4,
            LevelArg::Both => shoal_core::mse::Levels::Both,
        }
    }
}

/// `--encryption`: [`shoal_core::Encryption`] by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EncryptionArg {
    /// Plain BitTorrent only.
    Disabled,
    /// Encrypted preferred, plaintext accepted (libtorrent's default).
    Enabled,
    /// Encrypted only.
    Forced,
}

impl From<EncryptionArg> for shoal_core::Encryption {
    fn from(e: EncryptionArg) -> Self {
        match e {
            EncryptionArg::Disabled => shoal_core::Encryption::Disabled,
            EncryptionArg::Enabled => shoal_core::Encryption::Enabled,
            EncryptionArg::Forced => shoal_core::Encryption::Forced,
        }
    }
}

/// `--proxy`, resolved once at start as the network policy allows.
fn parse_proxy(s: &str) -> Result<shoal_host::Proxy, String> {
    crate::proxy::from_url(s, net_policy())
}

/// Peers given with `--peer`: `HOST:PORT`, resolved once at start (as the network policy
/// allows: with `SHOAL_LOCAL_ONLY=1` no name server is asked). An address is taken as it is:
/// the policy refuses it when it would be dialled.
fn parse_peer(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("bad peer address {s:?}: HOST:PORT expected"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad peer address {s:?}: invalid port"))?;
    let policy = net_policy();
    shoal_host::resolve_blocking(policy, host, port)
        .map_err(|e| format!("bad peer address {s:?}: {e}"))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("peer address {s:?} resolves to nothing"))
}

/// What a session is asked to fetch: a torrent whose metadata we have, or a magnet link's.
enum Source {
    /// From a .torrent file.
    Torrent(Box<shoal_core::Metainfo>),
    /// From a magnet link: the metadata comes from peers first.
    Magnet(Magnet),
}

impl Source {
    /// A magnet link if `arg` starts with `magnet:` (the file name a link could collide with
    /// would be a strange one), else the .torrent file at that path.
    fn load(arg: &Path) -> Result<Source, String> {
        let text = arg.to_str().unwrap_or_default();
        let is_magnet = text.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("magnet:"));
        if is_magnet {
            return Magnet::parse(text).map(Source::Magnet).map_err(|e| format!("bad magnet link: {e}"));
        }
        crate::info::load(arg).map(|m| Source::Torrent(Box::new(m)))
    }
}

/// `shoal download`: `torrent` is a .torrent file or a magnet link.
pub fn download(torrent: &Path, output: &Path, net: &NetArgs, keep_seeding: bool) -> Result<(), Failure> {
    let source = Source::load(torrent)?;
    net.runtime.block_on(run(source, output, net, keep_seeding, false))
}

/// `shoal seed`: checks the data of `torrent` under `dir`, then seeds it until stopped.
///
/// Refuses when none of the torrent's files is there: seeding is for data we have, and
/// starting would silently download the whole torrent into `dir`. Data that is only partly
/// there is checked; what verifies is seeded and the rest is fetched from peers (said on stderr).
pub fn seed(torrent: &Path, dir: &Path, net: &NetArgs) -> Result<(), Failure> {
    let meta = crate::info::load(torrent)?;
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()).into());
    }
    if !any_file_present(&meta, dir) {
        return Err(format!(
            "no data to seed: {} does not exist (seed shares data that is already there; \
             `shoal download` fetches it)",
            dir.join(&meta.info.name).display()
        )
        .into());
    }
    net.runtime.block_on(run(Source::Torrent(Box::new(meta)), dir, net, true, true))
}

/// Whether any (non-pad) file of the torrent exists under `dir`.
fn any_file_present(meta: &shoal_core::Metainfo, dir: &Path) -> bool {
    meta.info
        .files
        .iter()
        .filter(|f| !f.is_pad())
        .any(|f| std::fs::symlink_metadata(f.path.iter().fold(dir.to_path_buf(), |p, c| p.join(c))).is_ok())
}

enum Step {
    Event(Option<Event>),
    Tick,
    Stop,
}

/// `SHOAL_LOCAL_ONLY=1` (set by the test suite) keeps Shoal on loopback: it listens on
/// 127.0.0.1 and ::1 only and never dials a peer outside 127.0.0.0/8 or ::1.
/// `SHOAL_LOCAL_ONLY=netns` also allows private addresses, for a test that runs Shoal inside
/// network namespaces of its own; Shoal refuses to start with it in the host's namespace.
pub fn net_policy() -> shoal_core::NetPolicy {
    static POLICY: std::sync::OnceLock<shoal_core::NetPolicy> = std::sync::OnceLock::new();
    *POLICY.get_or_init(|| match std::env::var("SHOAL_LOCAL_ONLY").as_deref() {
        Err(_) | Ok("") | Ok("0") => shoal_core::NetPolicy::Open,
        Ok("netns") if in_own_netns() => shoal_core::NetPolicy::Namespace,
        Ok("netns") => {
            eprintln!("shoal: SHOAL_LOCAL_ONLY=netns, but this process runs in the host's network namespace");
            std::process::exit(2)
        }
        Ok(_) => shoal_core::NetPolicy::LocalOnly,
    })
}

/// Whether this process runs in a named network namespace (`ip netns add`, which a test
/// creates and `ip netns exec` enters): the namespace's file under /run/netns is the one this
/// process is in. The host's namespace has no such file.
fn in_own_netns() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(own) = std::fs::metadata("/proc/self/ns/net") else { return false };
    let Ok(named) = std::fs::read_dir("/run/netns") else { return false };
    named
        .flatten()
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .any(|m| m.dev() == own.dev() && m.ino() == own.ino())
}

/// Whether the network policy refuses anything (`SHOAL_LOCAL_ONLY` set): public DHT routers,
/// Local Service Discovery and port mapping stay off unless a test asks for them.
pub fn local_only() -> bool {
    net_policy().is_contained()
}

/// The DHT settings of a session: `None` when `enabled` is false or `SHOAL_DHT=0`.
///
/// This is the one place where the public bootstrap routers can be switched off: with
/// `SHOAL_LOCAL_ONLY=1` (the test suite's setting) no router is used, and only nodes named in
/// `SHOAL_DHT_BOOTSTRAP=ip:port,…` that are on loopback are contacted.
pub fn dht_settings(enabled: bool, saved: Option<Vec<u8>>) -> Option<shoal_smol::DhtSettings> {
    if !enabled || std::env::var("SHOAL_DHT").is_ok_and(|v| v == "0") {
        return None;
    }
    let local = local_only();
    let mut config = shoal_core::dht::DhtConfig::default();
    if local {
        config.bootstrap.clear();
    }
    let nodes = std::env::var("SHOAL_DHT_BOOTSTRAP")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.trim().parse::<SocketAddr>().ok())
        .filter(|a| !local || net_policy().allows(*a))
        .collect();
    Some(shoal_smol::DhtSettings { config, nodes, saved })
}

/// Whether Local Service Discovery (BEP 14) runs, `enabled` being the user's choice (on by
/// default). It multicasts on the LAN, so `SHOAL_LOCAL_ONLY=1` (tests and CI) turns it off,
/// unless `SHOAL_LSD=1` asks for it explicitly (a test inside its own network namespace).
/// `SHOAL_LSD=0` turns it off too.
pub fn lsd_enabled(enabled: bool) -> bool {
    let env = std::env::var("SHOAL_LSD").ok();
    match env.as_deref() {
        Some("0") => false,
        Some("1") => enabled,
        _ => enabled && !local_only(),
    }
}

/// The port-mapping settings of a session, `upnp` and `natpmp` being the user's choices (on by
/// default; `natpmp` covers PCP, its version 2, unless `pcp` is false): `None` when both are off. They talk to the LAN's router, so `SHOAL_LOCAL_ONLY`
/// (tests and CI) turns them off, unless `SHOAL_PORTMAP=1` asks for them explicitly (a test
/// inside network namespaces of its own, with `SHOAL_LOCAL_ONLY=netns`). `SHOAL_PORTMAP=0`
/// turns them off too.
pub fn port_mapping(
    upnp: bool,
    natpmp: bool,
    pcp: bool,
    gateway: Option<std::net::Ipv4Addr>,
) -> Option<shoal_smol::PortMapSettings> {
    let on = match std::env::var("SHOAL_PORTMAP").ok().as_deref() {
        Some("0") => false,
        Some("1") => true,
        _ => !local_only(),
    };
    (on && (upnp || natpmp)).then_some(shoal_smol::PortMapSettings { upnp, natpmp, pcp: natpmp && pcp, gateway })
}

/// The descriptors this process may hold (soft `RLIMIT_NOFILE`), which bound its peer
/// connections (`MAX_DESCRIPTORS` if unlimited).
pub fn nofile_limit() -> u64 {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current.unwrap_or(shoal_core::MAX_DESCRIPTORS)
}

async fn start_session(net: &NetArgs) -> Result<Session, String> {
    if let Some(name) = &net.bind_interface {
        shoal_host::bind_to_interface(name)?;
    }
    let plan = Plan {
        runtime: net.runtime,
        engine: Config {
            net_policy: net_policy(),
            encryption: net.encryption.into(),
            encryption_levels: net.encryption_level.into(),
            announce_port: net.announce_port,
            utp: !net.no_utp,
            ..Config::default()
        }
        .with_descriptors(nofile_limit()),
        bind: net.bind,
        port: net.listen_port,
        // The default port is taken (another client?): any free port will do.
        port_fallback: net.listen_port == 6881,
        dht: dht_settings(!net.no_dht, None),
        lsd: lsd_enabled(!net.no_lsd),
        sparse_files: net.sparse,
        port_mapping: port_mapping(!net.no_upnp, !net.no_natpmp, !net.no_pcp, net.natpmp_gateway),
        proxy: net.proxy.clone(),
    };
    session::start_session(plan, |e| eprint_line(&format!("note: {e}; using a free port instead"))).await
}

/// Adds `source` to the session; returns its id, name and size (both provisional for a
/// magnet until its metadata arrives).
async fn add(handle: &Handle, source: Source, dir: &Path, net: &NetArgs) -> Result<(TorrentId, String, u64), String> {
    match source {
        Source::Torrent(meta) => {
            let (name, total) = (meta.info.name.clone(), meta.info.total_length);
            let mut opts = AddOptions::new(*meta, dir.to_path_buf());
            opts.peers = net.peers.clone();
            let id = handle.add(opts).await.map_err(|e| e.to_string())?;
            Ok((id, name, total))
        }
        Source::Magnet(magnet) => {
            let name = magnet.display_name.clone().unwrap_or_else(|| magnet.info_hash.to_hex());
            let opts =
                MagnetOptions { magnet, destination: dir.to_path_buf(), paused: false, peers: net.peers.clone() };
            let id = handle.add_magnet(opts).await.map_err(|e| e.to_string())?;
            Ok((id, name, 0))
        }
    }
}

/// One line about metadata that just arrived from peers.
fn metadata_line(info: &[u8], stats: Option<&TorrentStats>) -> String {
    match shoal_core::Info::from_bytes(info) {
        Ok(info) => {
            let files = info.files.iter().filter(|f| !f.is_pad()).count();
            let mut line = format!(
                "metadata received: {} ({} in {files} file{})",
                info.name,
                human_bytes(info.total_length),
                if files == 1 { "" } else { "s" }
            );
            if let Some(s) = stats.filter(|s| s.wanted_bytes < info.total_length) {
                line.push_str(&format!("; {} selected", human_bytes(s.wanted_bytes)));
            }
            line
        }
        // The engine parsed it before reporting it; this cannot happen, and is not fatal.
        Err(e) => format!("metadata received ({e})"),
    }
}

/// What a session uploaded while it ran: the totals `seed` prints when it stops.
struct Served {
    /// Peers seen receiving payload from us.
    peers: HashSet<SocketAddr>,
    /// When seeding began (after the check, or when the download completed).
    since: Option<Instant>,
}

impl Served {
    /// Notes the peers that have received payload so far (connected ones only: the engine
    /// reports no per-peer totals after a disconnection, so a peer served for less than the
    /// one-second polling interval can go uncounted).
    async fn note(&mut self, handle: &Handle, id: TorrentId) {
        for p in handle.peers(id).await {
            if p.uploaded > 0 {
                self.peers.insert(p.addr);
            }
        }
    }
}

/// Runs one torrent until it completes (`download`), or until stopped when `keep_seeding`.
async fn run(source: Source, dir: &Path, net: &NetArgs, keep_seeding: bool, seed_mode: bool) -> Result<(), Failure> {
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    })
    .map_err(|e| format!("cannot install the signal handler: {e}"))?;

    let session = start_session(net).await?;
    let addrs: Vec<String> = session.listen_addrs().iter().map(|a| a.to_string()).collect();
    eprint_line(&format!("listening on {}", addrs.join(", ")));
    let handle = session.handle();
    let events = handle.subscribe().await;
    let magnet = matches!(source, Source::Magnet(_));
    let started = Instant::now();
    let (id, mut name, mut total) = match add(&handle, source, dir, net).await {
        Ok(added) => added,
        Err(e) => {
            handle.shutdown().await;
            return Err(e.into());
        }
    };

    let mut progress = Progress::new();
    if magnet {
        progress.fetching_metadata(&name);
    }
    let mut served = Served { peers: HashSet::new(), since: None };
    let mut outcome: Result<bool, String> = Ok(false);
    let mut interrupted = false;
    // One timer for the whole run: events (a piece every few milliseconds at full speed) must
    // not push the next redraw back, or the display never updates while data flows.
    let mut ticker = async_io::Timer::interval(Duration::from_secs(1));
    loop {
        let step = async { Step::Event(events.recv().await.ok()) }
            .or(async { stop_rx.recv().await.map_or(Step::Tick, |_| Step::Stop) })
            .or(async {
                ticker.next().await;
                Step::Tick
            })
            .await;
        match &step {
            // The info dictionary itself is no reading matter.
            Step::Event(Some(Event::MetadataReceived { torrent, info })) => {
                tracing::debug!(?torrent, bytes = info.len(), "engine event: metadata received")
            }
            Step::Event(Some(event)) => tracing::debug!(?event, "engine event"),
            _ => {}
        }
        match step {
            Step::Event(Some(event)) => match event {
                Event::HashFailed { piece, .. } => progress.println(&format!("hash check failed for piece {piece}")),
                Event::PeerBanned { addr, .. } => {
                    progress.println(&format!("banned peer {addr} (sent data that failed hash checks)"))
                }
                Event::Checked { have, total, .. } => {
                    progress.println(&format!("checked existing data: {have} of {total} pieces valid"));
                    if seed_mode && have < total {
                        progress.println("the data is incomplete: downloading the missing pieces before seeding");
                    }
                }
                Event::TrackerError { url, error, .. } => progress.println(&format!("tracker {url}: {error}")),
                Event::MetadataReceived { torrent, info } if torrent == id => {
                    let stats = handle.stats(id).await;
                    if let Some(s) = &stats {
                        (name, total) = (s.name.clone(), s.wanted_bytes);
                    }
                    progress.println(&metadata_line(&info, stats.as_ref()));
                }
                Event::Error { error, .. } => {
                    outcome = Err(error.to_string());
                    break;
                }
                Event::Finished { torrent } if torrent == id => {
                    if !keep_seeding {
                        outcome = Ok(true);
                        break;
                    }
                    served.since.get_or_insert_with(Instant::now);
                    progress.println(&format!("{name}: complete, seeding (Ctrl-C to stop)"));
                }
                _ => {}
            },
            Step::Event(None) => {
                outcome = Err("the session stopped unexpectedly".into());
                break;
            }
            Step::Tick => {
                if let Some(s) = handle.stats(id).await {
                    progress.update(&s);
                    if s.state == TorrentState::Seeding {
                        served.since.get_or_insert_with(Instant::now);
                    }
                    if let TorrentState::Error(e) = s.state {
                        outcome = Err(e);
                        break;
                    }
                }
                if keep_seeding {
                    served.note(&handle, id).await;
                }
            }
            Step::Stop => {
                interrupted = true;
                break;
            }
        }
    }
    progress.finish();
    if keep_seeding {
        served.note(&handle, id).await;
    }
    let stats = handle.stats(id).await;
    // Say goodbye to trackers and flush files, but never hang on a dead tracker.
    future::or(handle.shutdown(), async {
        async_io::Timer::after(Duration::from_secs(15)).await;
    })
    .await;
    drop(session);
    let complete = stats.as_ref().is_some_and(|s| s.wanted_bytes > 0 && s.have_bytes == s.wanted_bytes);
    match outcome {
        Ok(true) => {
            let secs = started.elapsed().as_secs_f64();
            let got = stats.map_or(0, |s| s.downloaded);
            eprint_line(&format!(
                "{name}: complete, {} verified; received {} in {secs:.1}s ({}/s)",
                human_bytes(total),
                human_bytes(got),
                human_bytes((got as f64 / secs.max(0.001)) as u64)
            ));
            Ok(())
        }
        Ok(false) if interrupted && !seed_mode && !complete => {
            // A download stopped before its data was complete: the work is not done, which the
            // exit code says (130, as for any program stopped by Ctrl-C), without calling it an
            // error. (`seed` is meant to run until stopped: that is its normal end.)
            let have = stats.as_ref().map_or(0, |s| s.have_bytes);
            let want = stats.as_ref().map_or(total, |s| s.wanted_bytes);
            Err(Failure::Interrupted(if stats.as_ref().is_some_and(|s| s.state == TorrentState::Metadata) {
                format!("{name}: stopped before its metadata arrived")
            } else {
                format!(
                    "{name}: {} of {} verified; the same command resumes from there",
                    human_bytes(have),
                    human_bytes(want)
                )
            }))
        }
        Ok(false) => {
            // Seeding, stopped by Ctrl-C or SIGTERM: its normal end.
            eprint_line(&seed_totals(&name, stats.as_ref(), &served, started));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The line `seed` (and `download --seed`) prints when it stops: what it gave the swarm.
fn seed_totals(name: &str, stats: Option<&TorrentStats>, served: &Served, started: Instant) -> String {
    let uploaded = stats.map_or(0, |s| s.uploaded);
    let seeding = served.since.map_or(Duration::ZERO, |t| t.elapsed());
    let peers = served.peers.len();
    format!(
        "{name}: stopped; uploaded {} ({uploaded} bytes) to {peers} peer{} in {} of seeding ({} running)",
        human_bytes(uploaded),
        if peers == 1 { "" } else { "s" },
        human_duration(seeding.as_secs()),
        human_duration(started.elapsed().as_secs()),
    )
}
