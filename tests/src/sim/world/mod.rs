//! The simulated world: hosts (engines and adversaries), links, disks, trackers and one
//! virtual clock that jumps from event to event.
//!
//! Everything that happens is an [`Ev`] in one queue ordered by (time, sequence number). One
//! [`World::step`] pops one event, feeds it to whoever it concerns, drains that engine's
//! output (turning it into more events) and checks the bounds oracles: job bytes, send
//! backlogs and disk reads after every drain; the request oracle ([`super::oracle`]) on the
//! connection each step moved bytes on, and on every connection each 8192 steps; peers per
//! torrent every second. A run is a pure function of the seed: one ChaCha8 RNG, BTreeMaps
//! wherever order matters.
//!
//! Speed matters (a 50-peer, 64 MiB swarm must run 100× faster than real time), so the hot
//! path avoids events nobody needs: the kernel's "accepted into the send buffer" is told to
//! the engine as soon as the bytes are, and bytes leaving a send buffer only wake the world
//! when a sender waits for the room.
//!
//! This file holds [`World::new`], [`World::step`] and the dispatch of events and engine
//! output; `hosts` the hosts' lifecycle, `faults` the fault scheduler and simulated user,
//! `jobs` the disk-job model, `bounds` the bounds oracle, `net` the links. The types they share
//! are leaves they import: `state` ([`World`] and its bounds), `event` (the queue's events),
//! `host`, `conn` and `trace` (the trace hash).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};
use shoal_core::FileLayout;
use shoal_core::{
    Bitfield, CloseReason, Config, Event, FilePriority, HashJob, Input, Instant, JobResult, Output, PeerIo,
    TransportError, UdpIo, BLOCK_SIZE,
};
use shoal_netsim::tracker::Tracker;
use shoal_netsim::{Nat, Partitions};

use super::adversary::{AdvKind, Adversary, SQUATS_PER_TARGET};
use super::disk::SimDisk;
use super::queue::EventQueue;
use super::torrent::SimTorrent;

mod bounds;
mod conn;
mod datagrams;
mod event;
mod faults;
mod host;
mod hosts;
mod jobs;
mod net;
mod state;
mod trace;

use super::params::{HashMode, Params};
use conn::{End, Local};
use event::Ev;
use host::EngineConn;
pub use host::{EngineHost, Host, HostKind, NetParams};
use state::Bounds;
pub use state::World;
pub use trace::Trace;

/// Every this many steps the request oracle checks every connection; in between, after each
/// step, it checks the connection that step moved bytes on.
const REQUEST_SWEEP_EVERY: u64 = 8192;

impl World {
    /// Builds the world of `params`: torrent, hosts, faults scheduled.
    pub fn new(params: Params, tt: SimTorrent) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0x005e_ed0f_5111);
        let config = Config {
            max_in_flight_bytes: params.max_in_flight.max(tt.meta.info.piece_length as u64 * 2),
            // Hosts that speak uTP turn it on (`start_engine`); the others are today's hosts.
            utp: false,
            ..Config::default()
        };
        let bounds = Bounds {
            // The engine checks its backlog before starting a read of up to 16 merged blocks.
            send: config.max_send_buffer + 17 * BLOCK_SIZE as u64 + 64 * 1024 + tt.pieces() as u64 / 8,
            in_flight: config.max_in_flight_bytes + 2 * tt.meta.info.piece_length as u64,
            reads: config.max_peers_per_torrent * (config.max_send_buffer / BLOCK_SIZE as u64 + 2) as usize,
            peers: config.max_peers_per_torrent,
        };
        let layout = FileLayout::new(&tt.meta.info);
        let mut w = World {
            now: Instant::ZERO,
            hosts: Vec::new(),
            tracker: Tracker::default(),
            violations: Vec::new(),
            steps: 0,
            trace: Trace(0xcbf2_9ce4_8422_2325),
            step_hashes: None,
            faults_on: true,
            counters: BTreeMap::new(),
            config,
            bounds,
            layout,
            rng: ChaCha8Rng::seed_from_u64(0),
            queue: EventQueue::default(),
            conns: vec![None],
            live_conns: 0,
            sent: Vec::new(),
            partitions: Partitions::default(),
            by_addr: BTreeMap::new(),
            next_port: 40000,
            pending_target: BTreeMap::new(),
            squats: BTreeMap::new(),
            completion_changes: 0,
            request_checks: 0,
            udp_bytes: BTreeMap::new(),
            tt: Rc::new(tt),
            params: params.clone(),
        };
        for i in 0..params.peers {
            let mut net = w.draw_net(&mut rng, false);
            if let Some(link) = params.links.get(&i) {
                (net.up, net.down, net.up_lat, net.down_lat) = (link.up, link.down, link.latency, link.latency);
            }
            let seeder = i < params.seeders;
            let mut disk = if seeder { SimDisk::full(&w.tt) } else { SimDisk::default() };
            if !seeder && params.faults.disk {
                disk.faults.read_eio = 0.002;
                disk.faults.write_eio = 0.01;
                disk.faults.corrupt_read = 0.002;
                if rng.random_bool(0.3) {
                    disk.faults.capacity = Some(w.tt.len() / 3);
                }
            }
            let host = EngineHost {
                engine: None,
                torrent: None,
                disk,
                seeder,
                resume: Bitfield::new(w.tt.pieces()),
                finished_at: None,
                timer_at: None,
                jobs: BTreeMap::new(),
                job_bytes: 0,
                reads: 0,
                conns: BTreeMap::new(),
                restarts: 0,
            };
            w.push_host(net, HostKind::Engine(Box::new(host)));
            if params.unlisted.contains(&i) {
                w.tracker.hide(w.hosts[i].addr);
            }
        }
        for kind in params.faults.adversaries.clone() {
            let mut net = w.draw_net(&mut rng, true);
            if kind == AdvKind::Slow {
                net.up = 2_000;
                net.up_lat = Duration::from_millis(800);
            }
            let i = w.push_host(net, HostKind::Adversary(Adversary::new(kind, &w.tt)));
            w.hosts[i].online = true;
            let addr = w.hosts[i].addr;
            w.tracker.register(w.tt.meta.info_hash.0, addr);
            w.schedule(Duration::from_secs(1), Ev::AdvTick { host: i });
            if kind == AdvKind::Squatter {
                // Seeders too: theirs are the slots leechers need.
                for target in 0..params.peers {
                    for _ in 0..SQUATS_PER_TARGET {
                        let at = Duration::from_millis(rng.random_range(0..2000));
                        w.schedule(at, Ev::AdvDial { host: i, target });
                    }
                }
                continue;
            }
            for target in params.seeders..params.peers {
                let at = Duration::from_millis(rng.random_range(100..5000));
                w.schedule(at, Ev::AdvDial { host: i, target });
            }
        }
        w.rng = rng;
        for i in 0..params.peers {
            // Staggered arrivals. Hosts behind a NAT come after the others: one that announced
            // first would hear of no one to dial until its next announce, half an hour away.
            let mut at = Duration::from_millis(w.rng.random_range(0..2000));
            if params.behind_nat.contains(&i) {
                at += Duration::from_secs(2);
                w.hosts[i].nat = Some(Nat::default());
            }
            let at = params.joins.get(&i).copied().unwrap_or(at);
            w.schedule(at, Ev::Rejoin { host: i });
        }
        w.schedule(Duration::from_secs(1), Ev::Checkpoint);
        w.schedule_faults();
        w
    }

    fn schedule(&mut self, after: Duration, ev: Ev) {
        let at = self.now + after;
        self.schedule_at(at, ev);
    }

    fn schedule_at(&mut self, at: Instant, ev: Ev) {
        self.queue.push(at, ev);
    }

    fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }

    fn partitioned(&self, a: usize, b: usize) -> Option<Instant> {
        self.partitions.cut_until(a, b, net::virtual_time(self.now)).map(net::instant)
    }

    fn lat(&self, from: usize, to: usize) -> Duration {
        self.hosts[from].net.up_lat + self.hosts[to].net.down_lat
    }

    /// Time of the next event.
    pub fn next_event(&self) -> Option<Instant> {
        self.queue.peek_time()
    }

    /// Processes one event; false if there is none.
    pub fn step(&mut self) -> bool {
        let Some((at, ev)) = self.queue.pop() else { return false };
        debug_assert!(at >= self.now);
        self.now = at;
        self.steps += 1;
        self.trace.mix(at.as_micros());
        self.apply(ev);
        if self.steps.is_multiple_of(REQUEST_SWEEP_EVERY) {
            for c in 1..self.conns.len() as u64 {
                self.check_requests(c);
            }
        }
        if let Some(h) = &mut self.step_hashes {
            h.push(self.trace.0);
        }
        true
    }

    fn apply(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Timer { host, epoch } => {
                if !self.alive(host, epoch) {
                    return;
                }
                let h = self.eh(host);
                if h.timer_at != Some(now) {
                    return; // superseded
                }
                h.timer_at = None;
                self.trace.mix(1);
                if let Some(e) = &mut self.eh(host).engine {
                    e.handle_timeout(now);
                }
                self.drain(host);
            }
            Ev::DialArrive { c } => self.dial_arrive(c),
            Ev::Connected { c } => {
                let Some(end) = self.end(c, 0) else { return };
                self.trace.mix(2);
                match end.local {
                    Local::Engine(conn) => {
                        if let Some(e) = &mut self.eh(end.host).engine {
                            e.handle(Input::Connected(conn), now);
                        }
                        self.drain(end.host);
                    }
                    Local::Adv => {
                        let HostKind::Adversary(a) = &mut self.hosts[end.host].kind else { return };
                        for act in a.on_open(c, true) {
                            self.adv_act(end.host, c, act);
                        }
                    }
                }
            }
            Ev::Refused { c } => {
                self.trace.mix(3);
                self.close_local(c, 0, CloseReason::DialFailed(ErrorKind::ConnectionRefused));
            }
            Ev::Room { c, side } => {
                let Some(conn) = self.conn_mut(c) else { return };
                conn.dirs[side].waking = false;
                let sender = conn.ends[side];
                self.pump(c, side);
                // The engine learns what its kernel buffer took.
                if let Some(End { host, local: Local::Engine(_), .. }) = sender {
                    if !self.sent.is_empty() {
                        self.drain(host);
                    }
                }
                self.check_requests(c);
            }
            Ev::Deliver { c, side, data, pieces, counts } => self.deliver(c, side, data, pieces, counts),
            Ev::Datagram { src, to, from, data, queued } => self.deliver_datagram(src, to, from, data, queued),
            Ev::Fin { c, side } => {
                self.trace.mix(5);
                self.close_local(c, 1 - side, CloseReason::PeerClosed);
            }
            Ev::Job { host, epoch, job, result } => {
                if !self.alive(host, epoch) {
                    return;
                }
                self.trace.mix(6 ^ job.0 << 8);
                let h = self.eh(host);
                match h.jobs.remove(&job) {
                    Some(bytes) => h.job_bytes -= bytes,
                    None if matches!(result, JobResult::Read(_)) => h.reads -= 1,
                    None => {}
                }
                if let Some(e) = &mut h.engine {
                    e.handle(Input::Job(job, result), now);
                }
                self.drain(host);
            }
            Ev::Http { host, epoch, job, result } => {
                if !self.alive(host, epoch) {
                    return;
                }
                self.trace.mix(7 ^ job.0 << 8);
                if let Some(e) = &mut self.eh(host).engine {
                    e.handle(Input::Http(job, result), now);
                }
                self.drain(host);
            }
            Ev::Udp { host, epoch, job, data } => {
                if !self.alive(host, epoch) {
                    return;
                }
                self.trace.mix(8 ^ job.0 << 8);
                if let Some(e) = &mut self.eh(host).engine {
                    e.handle(Input::Exchange(job, Ok(&data)), now);
                }
                self.drain(host);
            }
            Ev::Resume { host, epoch } => {
                if !self.alive(host, epoch) {
                    return;
                }
                let h = self.eh(host);
                if let (Some(e), Some(t)) = (&mut h.engine, h.torrent) {
                    let _ = e.resume(t, now);
                }
                self.drain(host);
            }
            Ev::Checkpoint => self.checkpoint(),
            Ev::AdvTick { host } => {
                let HostKind::Adversary(a) = &mut self.hosts[host].kind else { return };
                let actions = a.on_tick(&mut self.rng);
                for (c, act) in actions {
                    self.adv_act(host, c, act);
                }
                self.schedule(Duration::from_secs(2), Ev::AdvTick { host });
            }
            Ev::AdvDial { host, target } => {
                let c = self.new_conn(host, Local::Adv);
                if matches!(&self.hosts[host].kind, HostKind::Adversary(a) if a.kind == AdvKind::Squatter) {
                    self.squats.insert(c, target);
                }
                self.dial(c, host, self.hosts[target].addr);
            }
            Ev::Crash { host, clean } => self.crash(host, clean),
            Ev::Rejoin { host } => self.start_engine(host),
            Ev::Partition { a, b, until } => {
                self.count("partitions");
                self.partitions.cut(a, b, net::virtual_time(until));
            }
            Ev::ResetRandom => {
                if self.live_conns == 0 {
                    return;
                }
                let k = self.rng.random_range(0..self.live_conns);
                let c = (0..self.conns.len() as u64)
                    .filter(|c| self.conns[*c as usize].is_some())
                    .nth(k)
                    .expect("index below the live count");
                self.count("resets");
                self.reset(c);
            }
            Ev::Command { host } => self.command(host),
            Ev::FaultsOff => {
                self.faults_on = false;
                self.partitions.heal_all();
                for i in 0..self.params.peers {
                    self.undo_commands(i);
                    let h = self.eh(i);
                    h.disk.faults = Default::default();
                    if !self.hosts[i].online {
                        self.schedule(Duration::ZERO, Ev::Rejoin { host: i });
                    }
                }
            }
        }
    }

    // ---- engines' output ----

    fn drain(&mut self, host: usize) {
        let now = self.now;
        loop {
            while let Some(out) = self.eh(host).engine.as_mut().and_then(|e| e.poll_output()) {
                self.execute(host, out);
            }
            if self.sent.is_empty() {
                break;
            }
            // What the kernel took while we drained: tell the engine, which may send more.
            let mut sent = std::mem::take(&mut self.sent);
            for (conn, n) in sent.drain(..) {
                self.trace.mix(4 ^ n << 8);
                let h = self.eh(host);
                if let Some(ec) = h.conns.get_mut(&conn) {
                    ec.unacked = ec.unacked.saturating_sub(n);
                }
                if let Some(e) = &mut h.engine {
                    e.handle(Input::Sent(conn, n as usize), now);
                }
            }
            self.sent = sent;
        }
        // The engine's books agree with its state after every input (a drift shows where it began).
        if let Some(Err(e)) = self.eh(host).engine.as_ref().map(|e| e.check_invariants()) {
            panic!("host {host}: engine invariant violated at {now:?}: {e}");
        }
        let epoch = self.hosts[host].epoch;
        let h = self.eh(host);
        if let Some(e) = &h.engine {
            let t = e.poll_timeout().map(|t| t.max(now));
            if t != h.timer_at {
                h.timer_at = t;
                if let Some(t) = t {
                    self.schedule_at(t, Ev::Timer { host, epoch });
                }
            }
        }
        self.check_bounds(host);
    }

    fn execute(&mut self, host: usize, out: Output) {
        let epoch = self.hosts[host].epoch;
        match out {
            Output::Peer(PeerIo::Connect { conn, addr }) => {
                self.trace.mix(0x10 ^ conn.0 << 8);
                if self.speaks_utp(host) {
                    // A host with uTP dials TCP only after its uTP dial failed.
                    self.count("tcp_fallbacks");
                }
                let c = self.new_conn(host, Local::Engine(conn));
                self.eh(host).conns.insert(conn, EngineConn { c, side: 0, unacked: 0 });
                self.dial(c, host, addr);
            }
            Output::Peer(PeerIo::Send { conn, data }) => {
                self.trace.mix(0x11 ^ conn.0 << 8);
                self.trace.bytes(&data);
                let bound = self.bounds.send;
                let Some(ec) = self.eh(host).conns.get_mut(&conn) else { return };
                ec.unacked += data.len() as u64;
                let (c, side, unacked) = (ec.c, ec.side, ec.unacked);
                if unacked > bound {
                    self.violation(format!("host {host}: {unacked} bytes queued to one peer, bound {bound}"));
                }
                self.enqueue(c, side, data);
            }
            Output::Peer(PeerIo::Close { conn, .. }) => {
                self.trace.mix(0x12 ^ conn.0 << 8);
                if let Some(ec) = self.eh(host).conns.remove(&conn) {
                    self.close_from(ec.c, ec.side);
                }
            }
            Output::Disk(job) => self.disk_job(host, job),
            Output::Hash(HashJob { id, piece, data, expected, write, .. }) => {
                self.trace.mix(0x13 ^ id.0 << 8 ^ (piece as u64) << 40);
                let ok = match self.params.hash {
                    HashMode::Real => <[u8; 20]>::from(Sha1::digest(&data)) == expected,
                    HashMode::Oracle => {
                        let range = self.tt.piece_range(piece);
                        self.tt.meta.info.pieces.get(piece as usize) == Some(&expected)
                            && data.len() as u64 == range.end - range.start
                            && self.tt.matches(range.start, &data)
                    }
                };
                let h = self.eh(host);
                h.jobs.insert(id, data.len() as u64);
                h.job_bytes += data.len() as u64;
                let mut after = self.params.hash_latency;
                // A matching piece is written in the same job, as the runtimes do.
                let written = if ok {
                    let (written, latency) = self.hash_write(host, piece, &data, write);
                    after += latency;
                    Some(written)
                } else {
                    None
                };
                self.schedule(after, Ev::Job { host, epoch, job: id, result: JobResult::Hashed { ok, data, written } });
            }
            Output::Http { id, url } => {
                self.trace.mix(0x14 ^ id.0 << 8);
                let ip = self.hosts[host].addr.ip();
                let rtt = self.lat(host, host) * 2 + Duration::from_millis(5);
                let roll: f64 = self.rng.random();
                let (after, result) = if self.faults_on && self.params.faults.tracker && roll < 0.15 {
                    self.count("tracker_failures");
                    (rtt, Err(TransportError::Failed("connection refused".to_string())))
                } else if self.faults_on && self.params.faults.tracker && roll < 0.3 {
                    self.count("tracker_timeouts");
                    (Duration::from_secs(30), Err(TransportError::TimedOut("timed out".to_string())))
                } else if self.faults_on && self.params.faults.tracker && roll < 0.45 {
                    (Duration::from_millis(self.rng.random_range(2000..20_000)), Ok(self.tracker.http(ip, &url)))
                } else {
                    (rtt, Ok(self.tracker.http(ip, &url)))
                };
                self.schedule(after, Ev::Http { host, epoch, job: id, result });
            }
            Output::Udp(UdpIo::Exchange { exchange, host: th, port, data }) => {
                self.trace.mix(0x15 ^ exchange.0 << 8);
                if th != "tracker.sim" || port != 6969 {
                    return; // nobody there: the exchange times out
                }
                if self.faults_on && self.params.faults.tracker && self.rng.random_bool(0.25) {
                    self.count("udp_drops");
                    return;
                }
                let ip = self.hosts[host].addr.ip();
                if let Some(reply) = super::tracker::udp(&mut self.tracker, ip, &data) {
                    let rtt = self.lat(host, host) * 2 + Duration::from_millis(2);
                    self.schedule(rtt, Ev::Udp { host, epoch, job: exchange, data: reply });
                }
            }
            Output::Udp(UdpIo::EndExchange { exchange }) => self.trace.mix(0x16 ^ exchange.0 << 8),
            // The simulated hosts run no DHT: what their UDP socket sends is uTP.
            Output::Udp(UdpIo::Dht { to, data }) => self.send_datagram(host, to, data),
            Output::Udp(UdpIo::Lsd { .. }) | Output::Resolve { .. } => {}
            Output::Event(ev) => self.on_event(host, ev),
        }
    }

    fn on_event(&mut self, host: usize, ev: Event) {
        if let Event::PeerClosed { .. } = ev {
            // Kept out of the trace hash, which predates it: what it reports follows from
            // hashed steps (the `Close` beside it, or the input that ended the connection).
            self.count("peers_closed");
            return;
        }
        self.trace.mix(0x20);
        let epoch = self.hosts[host].epoch;
        match ev {
            Event::Finished { .. } => {
                self.count("finished");
                self.completion_changes += 1;
                // Finished means every wanted piece is verified on disk: a user may have skipped
                // files, so the oracle holds it to the pieces it says it has, and to all of them
                // when nothing is skipped.
                let h = self.engine_host(host).expect("an engine host finished");
                let (e, t) = (h.engine.as_ref().expect("running"), h.torrent.expect("added"));
                let have = e.stats(t).expect("torrent exists").have;
                let wrong: Vec<u32> = have.iter_ones().filter(|p| !h.disk.is_source(*p)).take(8).collect();
                let skips = e.file_priorities(t).is_some_and(|ps| ps.contains(&FilePriority::Skip));
                let short = !skips && !h.disk.is_complete(&self.tt);
                self.eh(host).finished_at = Some(self.now);
                if !wrong.is_empty() || short {
                    self.violation(format!(
                        "host {host} finished but its disk differs from the source (pieces {wrong:?}, incomplete: {short})"
                    ));
                }
            }
            Event::Error { .. } => {
                self.count("torrent_errors");
                let after = Duration::from_secs(5);
                self.schedule(after, Ev::Resume { host, epoch });
            }
            Event::HashFailed { .. } => self.count("hash_failures"),
            Event::PeerBanned { addr, .. } => {
                self.count("bans");
                let banned = self.by_addr.iter().find(|(a, _)| a.ip() == addr.ip()).map(|(_, i)| *i);
                if let Some(b) = banned.filter(|b| *b < self.params.peers) {
                    // Honest peers share blame for pieces a corrupt peer spoiled (and a flaky
                    // disk makes a peer dishonest); otherwise banning one is an engine bug.
                    self.count("honest_banned");
                    if !self.params.faults.disk && !self.params.faults.adversaries.contains(&AdvKind::Corrupt) {
                        self.violation(format!("host {host} banned honest host {b}"));
                    }
                }
            }
            _ => {}
        }
    }
}
