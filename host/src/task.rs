//! The engine task: feeds the engine its inputs and carries out its outputs.
//!
//! One loop: drain the engine's outputs, then wait for the first of a handle's command, a
//! report from a socket task or worker (with up to [`BATCH`] more that are already queued), or
//! the engine's next deadline. Outputs become socket writes, jobs on the worker threads and
//! tracker requests, with one exception: a disk read the page cache can serve is done inline,
//! since a memcpy costs less than two thread hand-offs on a seeder's hottest path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::future;
use shoal_core::health::{HealthCheckId, HealthReport};
use shoal_core::{AddMagnet, AddTorrent, DiskJobKind, Engine, Event, FilePriority, JobResult, Output, PeerIo, UdpIo};
use shoal_core::{ConnId, ExchangeId, Instant, NetPolicy, TorrentId};

use crate::association::RelayedSocket;
use crate::command::{Command, Reply};
use crate::disk::Storage;
use crate::input::{Input, Prepared};
use crate::io::{self, Link};
use crate::pool::BufPool;
use crate::proxy::{FailureLog, Proxied, Proxy};
use crate::runtime::Runtime;
use crate::session::SessionError;
use crate::session::{AddOptions, Checkpoint, MagnetOptions};
use crate::workers::Workers;

/// Inputs handled before outputs are drained again, so a busy socket cannot starve the rest.
const BATCH: usize = 64;

/// The engine and everything it has asked for that is still running. Spawn [`EngineTask::run`]
/// on the runtime's executor; it ends after [`crate::Handle::shutdown`] (or when every handle
/// is gone).
pub struct EngineTask<R: Runtime> {
    engine: Engine,
    origin: std::time::Instant,
    inputs_tx: Sender<Input<R>>,
    inputs: Receiver<Input<R>>,
    commands: Receiver<Command>,
    conns: HashMap<ConnId, Link<R>>,
    storages: HashMap<TorrentId, Arc<Storage>>,
    /// [`crate::SessionConfig::sparse_files`].
    pub(crate) sparse_files: bool,
    /// Destinations of magnets still fetching their metadata.
    magnet_dests: HashMap<TorrentId, std::path::PathBuf>,
    udp: HashMap<ExchangeId, Link<R>>,
    /// Where the engine's outputs may go (checked again here, on resolved addresses).
    policy: NetPolicy,
    /// The proxy every outgoing connection goes through, if set.
    proxy: Option<Arc<Proxied>>,
    agent: ureq::Agent,
    subscribers: Vec<Sender<Event>>,
    /// Who waits for which health check's report.
    health_waiters: HashMap<HealthCheckId, Reply<Result<HealthReport, SessionError>>>,
    /// Disk, hash and storage-setup work not yet reported back.
    jobs_in_flight: usize,
    shutdown_waiters: Vec<Sender<()>>,
    shutting_down: bool,
    _listeners: Vec<R::Task>,
    /// The DHT's UDP sockets (one per bound address), with their reader tasks.
    dht_sockets: Vec<io::DatagramSocket<R>>,
    /// With a proxy: the DHT/uTP socket through its UDP relay, in place of `dht_sockets`.
    relayed: Option<RelayedSocket<R>>,
    /// The Local Service Discovery sockets (IPv4, IPv6 or both), with their tasks, when on.
    lsd_sockets: Vec<io::DatagramSocket<R>>,
    /// The port-mapping driver, when on: told to remove its mappings at shutdown.
    pub(crate) portmap: Option<crate::portmap::PortMapTask<R>>,
    /// Block-data buffers reused by the socket and disk tasks.
    pool: Arc<BufPool>,
    /// The threads that run disk and hash jobs.
    workers: Workers,
    /// The sleep until the engine's next deadline, kept while the deadline stays the same:
    /// arming a timer on every pass cost a `timerfd_settime` per wake-up.
    sleep: Option<(std::time::Instant, Sleep)>,
}

/// A pending [`Runtime::sleep_until`].
type Sleep = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

enum Next<R: Runtime> {
    Command(Option<Command>),
    Input(Input<R>),
    Timeout,
}

/// The sockets a session opened before its engine task: listeners, the DHT's, LSD's.
pub(crate) struct Sockets<R: Runtime> {
    /// The accept loops.
    pub(crate) listeners: Vec<R::Task>,
    /// The DHT's sockets (one per bound address).
    pub(crate) dht: Vec<io::DatagramSocket<R>>,
    /// The DHT/uTP socket through the proxy's UDP relay, when a proxy is set.
    pub(crate) relayed: Option<RelayedSocket<R>>,
    /// The Local Service Discovery sockets (IPv4, IPv6 or both), when on.
    pub(crate) lsd: Vec<io::DatagramSocket<R>>,
}

impl<R: Runtime> EngineTask<R> {
    pub(crate) fn new(
        engine: Engine,
        inputs_tx: Sender<Input<R>>,
        inputs: Receiver<Input<R>>,
        commands: Receiver<Command>,
        sockets: Sockets<R>,
        proxy: Option<Proxy>,
    ) -> std::io::Result<Self> {
        let policy = engine.config().net_policy();
        let agent = io::http_agent(policy, proxy.as_ref());
        let proxy = proxy.map(|proxy| Arc::new(Proxied { proxy, log: FailureLog::new() }));
        Ok(EngineTask {
            engine,
            origin: std::time::Instant::now(),
            inputs_tx,
            inputs,
            commands,
            conns: HashMap::new(),
            pool: Arc::default(),
            workers: Workers::start()?,
            storages: HashMap::new(),
            sparse_files: false,
            magnet_dests: HashMap::new(),
            udp: HashMap::new(),
            policy,
            proxy,
            agent,
            subscribers: Vec::new(),
            health_waiters: HashMap::new(),
            jobs_in_flight: 0,
            shutdown_waiters: Vec::new(),
            shutting_down: false,
            _listeners: sockets.listeners,
            dht_sockets: sockets.dht,
            relayed: sockets.relayed,
            lsd_sockets: sockets.lsd,
            portmap: None,
            sleep: None,
        })
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }

    /// Runs the engine until it has shut down, then flushes the files.
    pub async fn run(mut self) {
        loop {
            self.drain_outputs();
            if self.shutting_down && self.engine.is_shut_down() && self.jobs_in_flight == 0 {
                break;
            }
            let deadline =
                self.engine.poll_timeout().and_then(|t| self.origin.checked_add(Duration::from_micros(t.as_micros())));
            match deadline {
                Some(at) if self.sleep.as_ref().is_none_or(|(d, _)| *d != at) => {
                    self.sleep = Some((at, Box::pin(R::sleep_until(at))));
                }
                None => self.sleep = None,
                _ => {}
            }
            let (commands, inputs, sleep) = (&self.commands, &self.inputs, &mut self.sleep);
            let next = future::or(
                async { Next::Command(commands.recv().await.ok()) },
                future::or(
                    async {
                        match inputs.recv().await {
                            Ok(i) => Next::Input(i),
                            // We hold a sender ourselves, so the channel never closes.
                            Err(_) => future::pending().await,
                        }
                    },
                    async {
                        match sleep {
                            Some((_, s)) => s.await,
                            None => future::pending().await,
                        }
                        Next::Timeout
                    },
                ),
            )
            .await;
            match next {
                Next::Command(Some(c)) => self.command(c),
                Next::Command(None) => self.begin_shutdown(),
                Next::Input(i) => {
                    self.input(i);
                    for _ in 0..BATCH {
                        match self.inputs.try_recv() {
                            Ok(i) => self.input(i),
                            Err(_) => break,
                        }
                    }
                }
                Next::Timeout => {
                    self.sleep = None;
                    let now = self.now();
                    self.engine.handle_timeout(now);
                }
            }
        }
        if let Some(p) = self.portmap.take() {
            p.stopped().await;
        }
        let storages: Vec<Arc<Storage>> = self.storages.drain().map(|(_, s)| s).collect();
        io::unblock::<R, _>(move || {
            for s in storages {
                let _ = s.sync();
            }
        })
        .await;
        for w in self.shutdown_waiters.drain(..) {
            let _ = w.try_send(());
        }
    }

    fn begin_shutdown(&mut self) {
        if !self.shutting_down {
            self.shutting_down = true;
            let now = self.now();
            self.engine.shutdown(now);
            // The mappings are removed while the trackers hear `stopped`.
            if let Some(p) = &self.portmap {
                p.begin_stop();
            }
        }
    }

    fn command(&mut self, c: Command) {
        let now = self.now();
        match c {
            Command::Engine(call) => call(&mut self.engine, now),
            Command::Add(opts, reply) => self.prepare(opts, reply),
            Command::AddMagnet(opts, reply) => {
                let result = if self.shutting_down {
                    Err(SessionError::Stopped)
                } else {
                    let MagnetOptions { magnet, destination, paused, peers } = *opts;
                    // No check once the files are known: a check closes the peers that just sent
                    // the metadata, and a new magnet has no data yet.
                    let params = AddMagnet { paused, peers, check_existing: false, ..AddMagnet::new(magnet) };
                    self.engine.add_magnet(params, now).map_err(SessionError::from).inspect(|id| {
                        self.magnet_dests.insert(*id, destination);
                    })
                };
                let _ = reply.try_send(result);
            }
            Command::Recheck(t, reply) => {
                // The check reads the files as they are now, not through handles that keep a
                // deleted file alive.
                if let Some(storage) = self.storages.get(&t) {
                    storage.reopen();
                }
                let _ = reply.try_send(self.engine.recheck(t, now).map_err(Into::into));
            }
            Command::SetFilePriority(t, file, p, reply) => {
                let result = self.engine.set_file_priority(t, file, p, now);
                self.follow_priorities(t);
                let _ = reply.try_send(result.map_err(Into::into));
            }
            Command::Checkpoint(t, reply) => self.checkpoint(t, reply),
            Command::Subscribe(tx) => self.subscribers.push(tx),
            Command::CheckHealth(info_hash, trackers, timeout, reply) => {
                match self.engine.check_health(info_hash, &trackers, timeout, now) {
                    Ok(id) => {
                        self.health_waiters.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.try_send(Err(e.into()));
                    }
                }
            }
            Command::Shutdown(reply) => {
                self.shutdown_waiters.push(reply);
                self.begin_shutdown();
            }
        }
    }

    /// Snapshots the torrent's verified pieces, then syncs its files on the blocking pool and
    /// answers: every piece in the snapshot was written before the sync began.
    fn checkpoint(&mut self, t: TorrentId, reply: Reply<Option<Checkpoint>>) {
        let (Some(stats), Some(storage)) = (self.engine.stats(t), self.storages.get(&t).cloned()) else {
            let _ = reply.try_send(None);
            return;
        };
        let snapshot = Checkpoint { state: stats.state, have: stats.have };
        R::spawn_blocking(move || {
            let answer = storage.sync().ok().map(|_| snapshot);
            let _ = reply.send_blocking(answer);
        });
    }

    /// Preallocates the files of `t` that are wanted (unless the session keeps files sparse).
    fn follow_priorities(&self, t: TorrentId) {
        let (Some(storage), Some(priorities)) = (self.storages.get(&t), self.engine.file_priorities(t)) else {
            return;
        };
        for (file, p) in priorities.iter().enumerate() {
            storage.set_preallocate(file, !self.sparse_files && *p != FilePriority::Skip);
        }
    }

    /// Maps the files of a magnet whose metadata just arrived (the paths were validated when
    /// the info dictionary was parsed; only zero-length files are created here).
    fn map_magnet(&mut self, t: TorrentId) {
        let (Some(dest), Some(meta)) = (self.magnet_dests.remove(&t), self.engine.metainfo(t)) else { return };
        let lengths: Vec<u64> = meta.info.files.iter().map(|f| f.length).collect();
        match Storage::new(&dest, &meta.info).and_then(|s| s.create_empty_files(&lengths).map(|_| s)) {
            Ok(storage) => {
                self.storages.insert(t, Arc::new(storage));
                self.follow_priorities(t);
            }
            Err(e) => tracing::warn!("cannot map the files of torrent {}: {e}", meta.info_hash),
        }
    }

    /// Maps a new torrent's files on the blocking pool; it joins the engine when that is done.
    fn prepare(&mut self, opts: Box<AddOptions>, reply: Reply<Result<TorrentId, SessionError>>) {
        self.jobs_in_flight += 1;
        let inputs = self.inputs_tx.clone();
        let dest = opts.destination.clone();
        let info = opts.metainfo.info.clone();
        R::spawn_blocking(move || {
            let prepared = Storage::new(&dest, &info).and_then(|storage| {
                let existed = storage.any_exists();
                let lengths: Vec<u64> = info.files.iter().map(|f| f.length).collect();
                storage.create_empty_files(&lengths)?;
                Ok(Prepared { storage, existed })
            });
            let _ = inputs.send_blocking(Input::Prepared(opts, Box::new(prepared), reply));
        });
    }

    fn add(&mut self, opts: AddOptions, prepared: Prepared, now: Instant) -> Result<TorrentId, SessionError> {
        if self.shutting_down {
            return Err(SessionError::Stopped);
        }
        let mut params = AddTorrent::new(opts.metainfo);
        params.check_existing = prepared.existed;
        params.paused = opts.paused;
        params.peers = opts.peers;
        params.file_priorities = opts.file_priorities;
        params.have = opts.have;
        params.verify_unverified = opts.verify_unverified;
        let id = self.engine.add_torrent(params, now)?;
        self.storages.insert(id, Arc::new(prepared.storage));
        self.follow_priorities(id);
        Ok(id)
    }

    fn input(&mut self, i: Input<R>) {
        let now = self.now();
        match i {
            Input::Incoming(stream, addr) => match self.engine.accept(addr, now) {
                Some(conn) => {
                    let link = io::accepted::<R>(conn, stream, self.inputs_tx.clone(), self.pool.clone());
                    self.conns.insert(conn, link);
                }
                None => drop(stream),
            },
            Input::PeerBytes(conn, buf, n) => {
                self.engine.handle(shoal_core::Input::PeerBytes(conn, buf.get(..n).unwrap_or(&buf)), now);
                self.pool.put(buf);
            }
            Input::Engine(shoal_core::Input::Closed(conn, reason)) => {
                // A link the engine already closed reports its end too: the engine forgot it.
                if self.conns.remove(&conn).is_some() {
                    tracing::debug!("{conn:?} closed: {reason}");
                    self.engine.handle(shoal_core::Input::Closed(conn, reason), now);
                }
            }
            Input::Engine(job @ shoal_core::Input::Job(..)) => {
                tracing::trace!("job done {job:?}");
                self.jobs_in_flight -= 1;
                self.engine.handle(job, now);
            }
            Input::Engine(input) => self.engine.handle(input, now),
            Input::Datagram(socket, from, data) => {
                self.engine.handle(shoal_core::Input::Datagram { socket, from, data: &data }, now)
            }
            Input::Exchange(exchange, Ok(data)) => {
                self.engine.handle(shoal_core::Input::Exchange(exchange, Ok(&data)), now)
            }
            Input::Exchange(exchange, Err(e)) => self.engine.handle(shoal_core::Input::Exchange(exchange, Err(e)), now),
            Input::Resolved(addrs) => self.engine.handle(shoal_core::Input::Resolved(&addrs), now),
            Input::Prepared(opts, prepared, reply) => {
                self.jobs_in_flight -= 1;
                let r = (*prepared).map_err(SessionError::from).and_then(|p| self.add(*opts, p, now));
                let _ = reply.try_send(r);
            }
        }
    }

    fn drain_outputs(&mut self) {
        while let Some(o) = self.engine.poll_output() {
            // The check is cached per call site: nothing to pay when tracing is off.
            if tracing::enabled!(tracing::Level::TRACE) {
                trace_output(&o);
            }
            match o {
                Output::Peer(PeerIo::Connect { conn, addr }) => {
                    let (proxy, inputs) = (self.proxy.clone(), self.inputs_tx.clone());
                    let link = io::connect::<R>(conn, addr, self.policy, proxy, inputs, self.pool.clone());
                    self.conns.insert(conn, link);
                }
                Output::Peer(PeerIo::Send { conn, data }) => {
                    if let Some(c) = self.conns.get(&conn) {
                        c.send(data);
                    }
                }
                Output::Peer(PeerIo::Close { conn, reason }) => {
                    tracing::debug!("closing {conn:?}: {reason}");
                    self.conns.remove(&conn);
                }
                Output::Disk(job) => {
                    let Some(storage) = self.storages.get(&job.torrent).cloned() else {
                        let now = self.now();
                        self.engine.handle(shoal_core::Input::Job(job.id, job.fail(io::no_storage())), now);
                        continue;
                    };
                    // A read served from the page cache is a memcpy: done here, it saves two
                    // thread hand-offs per read (a seeder's hottest path).
                    if let DiskJobKind::Read { spans, len, .. } = &job.kind {
                        match storage.read_placed_cached(spans, *len, self.pool.take()) {
                            Ok(data) => {
                                let now = self.now();
                                self.engine.handle(shoal_core::Input::Job(job.id, JobResult::Read(Ok(data))), now);
                                continue;
                            }
                            Err(buf) => self.pool.put(buf),
                        }
                    }
                    self.jobs_in_flight += 1;
                    io::disk_job::<R>(&self.workers, job, storage, self.inputs_tx.clone(), self.pool.clone());
                }
                Output::Hash(job) => {
                    let storage = self.storages.get(&job.torrent).cloned();
                    self.jobs_in_flight += 1;
                    io::hash_job::<R>(&self.workers, job, storage, self.inputs_tx.clone());
                }
                Output::Http { id, url } => {
                    io::http_get::<R>(self.agent.clone(), self.proxy.clone(), id, url, self.inputs_tx.clone());
                }
                Output::Udp(UdpIo::Exchange { exchange, host, port, data }) => {
                    let (inputs, policy, proxy) = (self.inputs_tx.clone(), self.policy, self.proxy.clone());
                    self.udp
                        .entry(exchange)
                        .or_insert_with(|| io::udp_tracker::<R>(exchange, host, port, policy, proxy, inputs))
                        .send(data);
                }
                Output::Udp(UdpIo::EndExchange { exchange }) => {
                    self.udp.remove(&exchange);
                }
                Output::Udp(UdpIo::Dht { to, data }) => {
                    // The socket of the destination's family, if the policy allows it.
                    if !self.policy.allows(to) {
                        continue;
                    }
                    if let Some(r) = &self.relayed {
                        r.send(to, data);
                    } else if let Some(s) = self.dht_sockets.iter().find(|s| s.family_matches(&to)) {
                        s.send(to, data);
                    }
                }
                Output::Resolve { host, port } => io::dht_resolve::<R>(host, port, self.policy, self.inputs_tx.clone()),
                Output::Udp(UdpIo::Lsd { data, v6 }) => {
                    // To the group of the announce's family, if that family's socket is open.
                    let to = match v6 {
                        true => SocketAddr::from((shoal_core::lsd::GROUP_V6, shoal_core::lsd::PORT)),
                        false => SocketAddr::from((shoal_core::lsd::GROUP_V4, shoal_core::lsd::PORT)),
                    };
                    if let Some(s) = self.lsd_sockets.iter().find(|s| s.family_matches(&to)) {
                        s.send(to, data);
                    }
                }
                Output::Event(e) => {
                    if let Event::Removed { torrent } = &e {
                        self.storages.remove(torrent);
                        self.magnet_dests.remove(torrent);
                    }
                    if let Event::MetadataReceived { torrent, .. } = &e {
                        // Map the files now: the check or the writes that follow need them.
                        self.map_magnet(*torrent);
                    }
                    if let Event::HealthChecked { check, report } = &e {
                        if let Some(reply) = self.health_waiters.remove(check) {
                            let _ = reply.try_send(Ok(report.clone()));
                        }
                    }
                    self.subscribers.retain(|s| s.try_send(e.clone()).is_ok() || !s.is_closed() && !s.is_full());
                }
            }
        }
    }
}

/// Logs an output without its payload at `trace` level (debugging aid,
/// `RUST_LOG=shoal_host=trace` in the `shoal` binary).
fn trace_output(o: &Output) {
    match o {
        Output::Peer(PeerIo::Send { conn, data }) => tracing::trace!("send {conn:?} {} bytes", data.len()),
        Output::Disk(j) => tracing::trace!("disk {:?} {:?}", j.id, std::mem::discriminant(&j.kind)),
        Output::Hash(j) => tracing::trace!("hash {:?} piece {}", j.id, j.piece),
        other => tracing::trace!("{other:?}"),
    }
}
