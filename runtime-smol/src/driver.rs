//! The engine task: feeds the engine its inputs and carries out its outputs.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::future;
use shoal_core::engine::{DiskJobKind, Engine, Event, JobResult, Output, TrackerJob};
use shoal_core::{ConnId, Instant, JobId, TorrentId};

use crate::disk::{sha1_matches, Storage};
use crate::net::{self, Conn};
use crate::tracker::{self, UdpTracker};
use crate::{Command, Handle, SessionConfig, SessionError};

/// Everything that happens around the engine, reported to its task.
pub(crate) enum Input {
    Incoming(async_net::TcpStream, SocketAddr),
    Connected(ConnId),
    Data(ConnId, Vec<u8>),
    Sent(ConnId, usize),
    Closed(ConnId),
    Job(JobId, JobResult),
    TrackerHttp(JobId, Result<Vec<u8>, String>),
    TrackerUdp(JobId, Result<Vec<u8>, String>),
}

/// Inputs handled before outputs are drained again, so a busy socket cannot starve the rest.
const BATCH: usize = 64;

struct Driver {
    engine: Engine,
    origin: std::time::Instant,
    inputs_tx: Sender<Input>,
    inputs: Receiver<Input>,
    commands: Receiver<Command>,
    conns: HashMap<ConnId, Conn>,
    storages: HashMap<TorrentId, Arc<Storage>>,
    udp: HashMap<JobId, UdpTracker>,
    agent: ureq::Agent,
    subscribers: Vec<Sender<Event>>,
    jobs_in_flight: usize,
    shutdown_waiters: Vec<Sender<()>>,
    shutting_down: bool,
    _listeners: Vec<smol::Task<()>>,
}

pub(crate) async fn start(config: SessionConfig) -> Result<(Handle, Vec<SocketAddr>, smol::Task<()>), SessionError> {
    let (inputs_tx, inputs) = async_channel::bounded(1024);
    let port = config.engine.listen_port;
    let addrs = if config.listen.is_empty() {
        vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))]
    } else {
        config.listen.clone()
    };
    let mut listeners = Vec::new();
    let mut bound = Vec::new();
    for addr in addrs {
        match net::listen(addr, inputs_tx.clone()).await {
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
    let seed = config.seed.unwrap_or_else(random_seed);
    let origin = std::time::Instant::now();
    let engine = Engine::new(engine_config, seed, Instant::ZERO);
    let (commands_tx, commands) = async_channel::unbounded();
    let driver = Driver {
        engine,
        origin,
        inputs_tx,
        inputs,
        commands,
        conns: HashMap::new(),
        storages: HashMap::new(),
        udp: HashMap::new(),
        agent: tracker::agent(),
        subscribers: Vec::new(),
        jobs_in_flight: 0,
        shutdown_waiters: Vec::new(),
        shutting_down: false,
        _listeners: listeners,
    };
    let task = smol::spawn(driver.run());
    Ok((Handle { commands: commands_tx }, bound, task))
}

/// A seed from the OS's hash randomness (the core itself never draws randomness).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

enum Next {
    Command(Option<Command>),
    Input(Input),
    Timeout,
}

impl Driver {
    fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }

    async fn run(mut self) {
        loop {
            self.drain_outputs();
            if self.shutting_down && self.engine.is_shut_down() && self.jobs_in_flight == 0 {
                break;
            }
            let deadline = self.engine.poll_timeout();
            let timer = match self.origin.checked_add(Duration::from_micros(deadline.as_micros())) {
                Some(at) => async_io::Timer::at(at),
                None => async_io::Timer::never(),
            };
            let next = future::or(
                async { Next::Command(self.commands.recv().await.ok()) },
                future::or(
                    async {
                        match self.inputs.recv().await {
                            Ok(i) => Next::Input(i),
                            // We hold a sender ourselves, so the channel never closes.
                            Err(_) => future::pending().await,
                        }
                    },
                    async {
                        timer.await;
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
                    let now = self.now();
                    self.engine.handle_timeout(now);
                }
            }
        }
        let storages: Vec<Arc<Storage>> = self.storages.drain().map(|(_, s)| s).collect();
        let _ = blocking::unblock(move || {
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
        }
    }

    fn command(&mut self, c: Command) {
        let now = self.now();
        match c {
            Command::Add(params, storage, reply) => {
                let r = self.engine.add_torrent(*params, now).map_err(SessionError::from);
                if let Ok(id) = r {
                    self.storages.insert(id, storage);
                }
                let _ = reply.try_send(r);
            }
            Command::Pause(t, reply) => {
                let _ = reply.try_send(self.engine.pause(t, now).map_err(Into::into));
            }
            Command::Resume(t, reply) => {
                let _ = reply.try_send(self.engine.resume(t, now).map_err(Into::into));
            }
            Command::Recheck(t, reply) => {
                let _ = reply.try_send(self.engine.recheck(t, now).map_err(Into::into));
            }
            Command::Remove(t, reply) => {
                let _ = reply.try_send(self.engine.remove(t, now).map_err(Into::into));
            }
            Command::AddPeers(t, peers, reply) => {
                let _ = reply.try_send(self.engine.add_peers(t, &peers, now).map_err(Into::into));
            }
            Command::SetFilePriority(t, file, p, reply) => {
                let _ = reply.try_send(self.engine.set_file_priority(t, file, p, now).map_err(Into::into));
            }
            Command::Stats(t, reply) => {
                let _ = reply.try_send(self.engine.stats(t));
            }
            Command::List(reply) => {
                let _ = reply.try_send(self.engine.torrents());
            }
            Command::Peers(t, reply) => {
                let _ = reply.try_send(self.engine.peers(t));
            }
            Command::Subscribe(tx) => self.subscribers.push(tx),
            Command::Shutdown(reply) => {
                self.shutdown_waiters.push(reply);
                self.begin_shutdown();
            }
        }
    }

    fn input(&mut self, i: Input) {
        let now = self.now();
        match i {
            Input::Incoming(stream, addr) => match self.engine.handle_incoming(addr, now) {
                Some(conn) => {
                    let c = net::accepted(conn, stream, self.inputs_tx.clone());
                    self.conns.insert(conn, c);
                }
                None => drop(stream),
            },
            Input::Connected(conn) => self.engine.handle_connected(conn, now),
            Input::Data(conn, data) => self.engine.handle_peer_data(conn, &data, now),
            Input::Sent(conn, n) => self.engine.handle_sent(conn, n, now),
            Input::Closed(conn) => {
                if self.conns.remove(&conn).is_some() {
                    self.engine.handle_closed(conn, now);
                }
            }
            Input::Job(id, result) => {
                if std::env::var_os("SHOAL_TRACE").is_some() {
                    eprintln!("trace: job done {id:?}");
                }
                self.jobs_in_flight -= 1;
                self.engine.handle_job(id, result, now);
            }
            Input::TrackerHttp(id, result) => self.engine.handle_tracker_http(id, result, now),
            Input::TrackerUdp(id, result) => match result {
                Ok(data) => self.engine.handle_tracker_udp(id, Ok(&data), now),
                Err(e) => self.engine.handle_tracker_udp(id, Err(e), now),
            },
        }
    }

    fn drain_outputs(&mut self) {
        while let Some(o) = self.engine.poll_output() {
            if std::env::var_os("SHOAL_TRACE").is_some() {
                trace_output(&o);
            }
            match o {
                Output::Connect { conn, addr } => {
                    let c = net::connect(conn, addr, self.inputs_tx.clone());
                    self.conns.insert(conn, c);
                }
                Output::Send { conn, data } => {
                    if let Some(c) = self.conns.get(&conn) {
                        c.send(data);
                    }
                }
                Output::Close { conn } => {
                    self.conns.remove(&conn);
                }
                Output::Disk(job) => {
                    let Some(storage) = self.storages.get(&job.torrent).cloned() else { continue };
                    self.jobs_in_flight += 1;
                    let inputs = self.inputs_tx.clone();
                    let id = job.id;
                    smol::spawn(async move {
                        let result = blocking::unblock(move || run_disk(job.kind, &storage)).await;
                        let _ = inputs.send(Input::Job(id, result)).await;
                    })
                    .detach();
                }
                Output::Hash(job) => {
                    self.jobs_in_flight += 1;
                    let inputs = self.inputs_tx.clone();
                    smol::spawn(async move {
                        let id = job.id;
                        let result = blocking::unblock(move || {
                            let ok = sha1_matches(&job.data, &job.expected);
                            JobResult::Hashed { ok, data: job.data }
                        })
                        .await;
                        let _ = inputs.send(Input::Job(id, result)).await;
                    })
                    .detach();
                }
                Output::Tracker(TrackerJob::HttpGet { id, url }) => {
                    tracker::http_get(self.agent.clone(), id, url, self.inputs_tx.clone());
                }
                Output::Tracker(TrackerJob::UdpSend { id, host, port, data }) => {
                    let inputs = self.inputs_tx.clone();
                    self.udp.entry(id).or_insert_with(|| UdpTracker::new(id, host, port, inputs)).send(data);
                }
                Output::Tracker(TrackerJob::UdpClose { id }) => {
                    self.udp.remove(&id);
                }
                Output::Event(e) => {
                    if let Event::Removed { torrent } = &e {
                        self.storages.remove(torrent);
                    }
                    self.subscribers.retain(|s| s.try_send(e.clone()).is_ok() || !s.is_closed() && !s.is_full());
                }
            }
        }
    }
}

fn run_disk(kind: DiskJobKind, storage: &Storage) -> JobResult {
    match kind {
        DiskJobKind::Write { spans, data, .. } => JobResult::Written(storage.write(&spans, &data)),
        DiskJobKind::Read { spans, .. } => JobResult::Read(storage.read(&spans)),
        DiskJobKind::Verify { spans, expected, .. } => JobResult::Verified(storage.verify(&spans, &expected)),
    }
}

/// Prints an output without its payload (debugging aid, `SHOAL_TRACE=1`).
fn trace_output(o: &Output) {
    match o {
        Output::Send { conn, data } => eprintln!("trace: send {conn:?} {} bytes", data.len()),
        Output::Disk(j) => eprintln!("trace: disk {:?} {:?}", j.id, std::mem::discriminant(&j.kind)),
        Output::Hash(j) => eprintln!("trace: hash {:?} piece {}", j.id, j.piece),
        other => eprintln!("trace: {other:?}"),
    }
}
