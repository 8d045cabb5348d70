//! A deterministic swarm simulator: many shoal-core engines in one thread on a virtual clock,
//! with a simulated network, disks, trackers, faults and hostile peers. A run is a pure
//! function of its seed; oracles check every step (see [`world`]).
//!
//! ```text
//! let report = sim::run(Params::from_seed(7));      // or Params::new(seed) and adjust
//! assert!(report.ok(), "{}", report.describe());
//! ```

pub mod adversary;
pub mod disk;
pub mod oracle;
pub mod params;
mod queue;
pub mod torrent;
pub mod tracker;
pub mod world;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use adversary::AdvKind;
pub use params::{AccessLink, Datagrams, Faults, HashMode, Params, Trackers, Transport};
use torrent::SimTorrent;
use world::World;

/// What a run found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Honest engines.
    pub peers: usize,
    /// Honest engines up, finished and byte-exact at the end.
    pub completed: usize,
    /// Virtual time simulated.
    pub sim_time: Duration,
    /// Real time it took.
    pub wall: Duration,
    /// Hash of the whole event trace.
    pub trace: u64,
    /// Events processed.
    pub steps: u64,
    /// Oracle violations (empty when all is well).
    pub violations: Vec<String>,
    /// A panic's message, if the run panicked.
    pub panic: Option<String>,
    /// Counters (hash failures, bans, crashes, …).
    pub counters: Vec<(&'static str, u64)>,
    /// The trace hash after every step, if asked for.
    pub step_hashes: Option<Vec<u64>>,
    /// Each host's transport, when the world speaks uTP (empty otherwise), and whether it is
    /// behind a NAT.
    pub transports: Vec<(Transport, bool)>,
    /// Datagram bytes delivered, by (sending host, receiving host).
    pub udp_bytes: std::collections::BTreeMap<(usize, usize), u64>,
}

impl Report {
    /// No violation, no panic, everyone completed.
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.panic.is_none() && self.completed == self.peers
    }

    /// The summary line the binary prints last.
    pub fn line(&self) -> String {
        format!(
            "seed={} peers={} completed={}/{} sim_time={:.3}s wall={:.3}s trace={:016x}",
            self.seed,
            self.peers,
            self.completed,
            self.peers,
            self.sim_time.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.trace
        ) + &self.transports_note()
    }

    /// ` utp=<one letter per host>` (t TCP, u uTP, b both; upper case behind a NAT) for a uTP
    /// world; empty otherwise.
    fn transports_note(&self) -> String {
        if self.transports.is_empty() {
            return String::new();
        }
        let letters = self.transports.iter().map(|(t, nat)| {
            let c = match t {
                Transport::Tcp => 't',
                Transport::Utp => 'u',
                Transport::Both => 'b',
            };
            if *nat {
                c.to_ascii_uppercase()
            } else {
                c
            }
        });
        format!(" utp={}", letters.collect::<String>())
    }

    /// Everything worth printing about a failure.
    pub fn describe(&self) -> String {
        let mut s = format!("{}\nsteps={} counters={:?}\n", self.line(), self.steps, self.counters);
        if let Some(p) = &self.panic {
            s += &format!("PANIC: {p}\n");
        }
        for v in &self.violations {
            s += &format!("violation: {v}\n");
        }
        s
    }
}

/// Builds the run's torrent.
pub fn build_torrent(p: &Params) -> SimTorrent {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed ^ 0x0707_7e47);
    let total = p.pieces as u64 * p.piece_size as u64 - rng.random_range(0..p.piece_size as u64);
    let files =
        if p.single_file { vec![("single.bin".to_string(), total)] } else { SimTorrent::layout(&mut rng, total) };
    let trackers = match p.trackers {
        Trackers::Http => vec![tracker::HTTP_TRACKER.to_string()],
        Trackers::Udp => vec![tracker::UDP_TRACKER.to_string()],
        Trackers::Both => vec![tracker::UDP_TRACKER.to_string(), tracker::HTTP_TRACKER.to_string()],
    };
    SimTorrent::new(p.seed, p.piece_size, &files, &trackers)
}

/// Runs one simulation to its end and reports; a panic anywhere is caught and reported.
pub fn run(p: Params) -> Report {
    run_with(p, false)
}

/// Like [`run`], optionally recording the trace hash after every step.
pub fn run_with(p: Params, record_steps: bool) -> Report {
    let start = std::time::Instant::now();
    let seed = p.seed;
    let peers = p.peers;
    let transports =
        if p.utp() { (0..peers).map(|i| (p.transport(i), p.behind_nat.contains(&i))).collect() } else { Vec::new() };
    let mut partial: Option<(u64, u64, Instant, Option<Vec<u64>>)> = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let tt = build_torrent(&p);
        let mut w = World::new(p.clone(), tt);
        if record_steps {
            w.step_hashes = Some(Vec::new());
        }
        drive(&mut w, &p, &mut partial);
        w
    }));
    let wall = start.elapsed();
    match result {
        Ok(w) => Report {
            seed,
            peers,
            completed: (0..peers).filter(|i| w.is_complete(*i)).count(),
            sim_time: Duration::from_micros(w.now.as_micros()),
            wall,
            trace: w.trace.0,
            steps: w.steps,
            violations: w.violations.clone(),
            panic: None,
            counters: w.counters.iter().map(|(k, v)| (*k, *v)).chain([("request_checks", w.request_checks)]).collect(),
            step_hashes: w.step_hashes,
            transports,
            udp_bytes: w.udp_bytes,
        },
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            let (steps, trace, now, hashes) = partial.unwrap_or((0, 0, Instant::ZERO, None));
            Report {
                seed,
                peers,
                completed: 0,
                sim_time: Duration::from_micros(now.as_micros()),
                wall,
                trace,
                steps,
                violations: Vec::new(),
                panic: Some(msg),
                counters: Vec::new(),
                step_hashes: hashes,
                transports,
                udp_bytes: Default::default(),
            }
        }
    }
}

use shoal_core::Instant;

/// Steps until everyone completed after faults stopped, or the liveness budget runs out.
fn drive(w: &mut World, p: &Params, partial: &mut Option<(u64, u64, Instant, Option<Vec<u64>>)>) {
    // Enough for every leecher to fetch the torrent at the slowest uplink a few times over.
    let transfer = Duration::from_secs(4 * w.tt.len() / p.bandwidth.0.max(1));
    let deadline = Instant::ZERO + p.fault_window + p.budget.max(transfer);
    let mut seen = (u64::MAX, true);
    loop {
        let now_state = (w.completion_changes, w.faults_on);
        if now_state != seen && (!w.faults_on || !p.faults.any()) {
            seen = now_state;
            if w.all_complete() {
                break;
            }
        }
        if w.now > deadline {
            let missing: Vec<usize> = (0..p.peers).filter(|i| !w.is_complete(*i)).collect();
            w.violations.push(format!(
                "liveness: hosts {missing:?} not complete {}s after faults stopped",
                (deadline - (Instant::ZERO + p.fault_window)).as_secs()
            ));
            // The seeders too: a stuck swarm is often a seeder that stopped serving.
            let seeders: Vec<usize> = (0..p.seeders).filter(|i| !missing.contains(i)).collect();
            for i in missing.into_iter().take(5).chain(seeders) {
                let line = w.host_summary(i);
                w.violations.push(line);
            }
            break;
        }
        if !w.step() {
            w.violations.push("the world ran out of events".into());
            break;
        }
        if w.steps & 0xfff == 0 {
            *partial = Some((w.steps, w.trace.0, w.now, None));
        }
    }
}
