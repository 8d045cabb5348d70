//! The deterministic swarm simulator (`shoal_tests::sim`): determinism, faults, adversaries,
//! crash recovery and a small seed sweep. Each run is a pure function of its seed, so a
//! failure here replays exactly with `shoal-sim --seed S` (see the report it prints).

use std::time::Duration;

use shoal_tests::sim::world::World;
use shoal_tests::sim::{self, AccessLink, AdvKind, Datagrams, Faults, HashMode, Params, Trackers, Transport};

fn assert_ok(r: &sim::Report) {
    assert!(r.ok(), "{}", r.describe());
}

fn counter(r: &sim::Report, name: &str) -> u64 {
    r.counters.iter().find(|(k, _)| *k == name).map_or(0, |(_, v)| *v)
}

fn with_faults(seed: u64, list: &str) -> Params {
    let mut p = Params::new(seed);
    p.faults = Faults::parse(list).expect("valid fault list");
    p.fault_window = Duration::from_secs(40);
    p
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let p = with_faults(5, "all");
    let a = sim::run_with(p.clone(), true);
    let b = sim::run_with(p, true);
    assert_ok(&a);
    assert!(a.steps > 1000, "a real swarm ran: {} steps", a.steps);
    assert_eq!(a.step_hashes, b.step_hashes, "two runs of one seed diverge");
    assert_eq!((a.trace, a.sim_time), (b.trace, b.sim_time));
    let c = sim::run(with_faults(6, "all"));
    assert_ne!(a.trace, c.trace, "another seed gives another run");
}

#[test]
fn faulty_swarm_still_completes_byte_exact() {
    for (seed, trackers) in [(11, Trackers::Http), (12, Trackers::Udp), (13, Trackers::Both)] {
        let mut p = with_faults(seed, "net,partition,churn,crash,disk,tracker");
        p.trackers = trackers;
        p.peers = 10;
        let r = sim::run(p);
        assert_ok(&r);
        assert!(counter(&r, "resets") + counter(&r, "refused") > 0, "network faults happened: {:?}", r.counters);
    }
}

#[test]
fn each_adversary_is_survived() {
    for (i, kind) in AdvKind::ALL.into_iter().enumerate() {
        let mut p = Params::new(100 + i as u64);
        p.faults.adversaries = vec![kind];
        p.fault_window = Duration::from_secs(45);
        let r = sim::run(p);
        assert_ok(&r);
        if kind == AdvKind::Corrupt {
            assert!(counter(&r, "hash_failures") > 0 && counter(&r, "bans") > 0, "{kind:?}: {:?}", r.counters);
        }
    }
}

/// Issue #14 finding 1: idle handshaked peers and silent sockets that reconnect when closed
/// filled every peer and pending-handshake slot, and honest leechers got nothing. With
/// squatters holding hundreds of sockets at every honest host (seeders included) from the
/// start, the leechers must all complete while the squatting goes on, and the squatters must
/// have been pushed out (and come back) many times.
#[test]
fn squatters_do_not_lock_honest_peers_out() {
    // Seeds whose runs leave hosts incomplete without connection replacement (checked).
    for seed in [301, 304, 306] {
        let mut p = with_faults(seed, "squatter");
        p.fault_window = Duration::from_secs(60);
        let window = p.fault_window;
        let r = sim::run(p);
        assert_ok(&r);
        assert!(r.sim_time <= window, "completed while squatted, not after: {:?}", r.sim_time);
        assert!(counter(&r, "squats_closed") > 1000, "squatters were pushed out: {:?}", r.counters);
    }
}

#[test]
fn crashed_hosts_restart_from_resume_data_and_complete() {
    let mut p = with_faults(21, "crash");
    p.peers = 8;
    p.pieces = 64;
    p.bandwidth = (50_000, 200_000); // slow enough that crashes land mid-download
    p.fault_window = Duration::from_secs(60);
    let r = sim::run(p);
    assert_ok(&r);
    assert!(counter(&r, "crashes") > 0, "crashes happened: {:?}", r.counters);
}

#[test]
fn real_sha1_and_oracle_hashing_agree() {
    let mut p = with_faults(31, "corrupt,net");
    p.hash = HashMode::Real;
    let real = sim::run(p.clone());
    p.hash = HashMode::Oracle;
    let oracle = sim::run(p);
    assert_ok(&real);
    assert_eq!(real.trace, oracle.trace, "the hash oracle answers as SHA-1 does");
}

#[test]
fn seed_sweep() {
    let failing: Vec<String> =
        (0..20).map(|seed| sim::run(Params::from_seed(seed))).filter(|r| !r.ok()).map(|r| r.describe()).collect();
    assert!(failing.is_empty(), "failing seeds:\n{}", failing.join("\n"));
}

/// uTP in the world. With every host uTP-only, TCP dials are refused, so every byte crosses
/// lossy, duplicating, reordering datagram paths over uTP (dials and incoming connections).
/// With a TCP-only seeder and uTP-only leechers, the leechers reach the seeder only by the
/// uTP -> TCP fallback. Then a few worlds of the uTP-heavy sweep, faults and all.
#[test]
fn utp_worlds_complete_over_lossy_datagram_paths() {
    let mut p = Params::new(21);
    p.transports = vec![Transport::Utp; p.peers];
    p.datagrams = Datagrams { loss: 0.02, duplicate: 0.01, jitter: Duration::from_millis(30) };
    let r = sim::run(p.clone());
    assert_ok(&r);
    assert!(counter(&r, "datagrams_sent") > 1000, "uTP carried the swarm: {:?}", r.counters);
    assert!(counter(&r, "datagrams_lost") > 0, "the paths lost datagrams: {:?}", r.counters);

    p.transports[0] = Transport::Tcp;
    let r = sim::run(p);
    assert_ok(&r);
    assert!(counter(&r, "tcp_fallbacks") > 0, "leechers fell back to TCP for the seeder: {:?}", r.counters);

    let failing: Vec<String> =
        (0..8).map(|seed| sim::run(Params::from_seed_utp(seed))).filter(|r| !r.ok()).map(|r| r.describe()).collect();
    assert!(failing.is_empty(), "failing uTP seeds:\n{}", failing.join("\n"));
}

/// BEP 55 between two simulated NATs (port-restricted cones: only endpoints a host sent to
/// get in). Seeder S (host 0) and leecher L (host 2) sit behind one each; relay R (host 1, a
/// leecher on a 5 kB/s link both ways, so it stays one) is public. L is on no tracker list and S joins at 30 s, so
/// each learns of the other only through R's PEX: L a minute after it connected to R (at
/// about 61 s), S a minute after S did (about 90 s). L's dial of S dies at S's NAT; L asks R
/// for a rendezvous, both open uTP at once, and L downloads from S, all before S could have
/// heard of L any other way. With hole punching off, the same world leaves L without S.
#[test]
fn hole_punching_connects_two_peers_behind_nats_through_a_relay() {
    let world = |holepunch: bool| {
        let mut p = Params::new(55);
        p.peers = 3;
        p.transports = vec![Transport::Both; 3];
        p.behind_nat = [0, 2].into();
        p.unlisted = [2].into();
        p.joins = [(1, Duration::ZERO), (2, Duration::from_secs(1)), (0, Duration::from_secs(30))].into();
        p.links.insert(1, AccessLink { up: 5_000, down: 5_000, latency: Duration::from_millis(20) });
        p.holepunch = holepunch;
        p
    };
    // Before R's PEX could tell S of L (a minute after S joined).
    let horizon = Duration::from_secs(85);
    let run_to_horizon = |p: Params| {
        let mut w = World::new(p.clone(), sim::build_torrent(&p));
        while shoal_core::Instant::ZERO + horizon > w.now && w.step() {}
        w
    };
    let (s, l) = (0, 2);

    let w = run_to_horizon(world(true));
    let len = w.tt.len();
    let from_s = w.udp_bytes.get(&(s, l)).copied().unwrap_or(0);
    assert!(w.is_complete(l), "L completed byte-exact by {horizon:?}: {}", w.host_summary(l));
    assert!(from_s > len, "L's torrent came from S over the punched uTP path: {from_s} bytes of {len}");
    assert!(w.counters.get("nat_drops").copied().unwrap_or(0) > 0, "the NATs dropped the direct dials");

    let w = run_to_horizon(world(false));
    assert_eq!(w.udp_bytes.get(&(s, l)), None, "without hole punching nothing from S reaches L");
    assert!(!w.is_complete(l), "L has only R's trickle: {}", w.host_summary(l));

    // The punched world runs on to completion, byte-exact everywhere.
    assert_ok(&sim::run(world(true)));
}

/// Found by the simulator (seed 42, 50 peers, 64 MiB, slow uplinks): one leecher stalls for
/// good at 136/256 pieces with 49 unchoking peers. `max_in_flight_bytes` counts partial-piece
/// buffers, and once it is reached `Torrent::fill_requests` sends no request at all, not even
/// for blocks that would complete those partial pieces. With the cap above the torrent size
/// the same run completes. Fixed: over the cap, the engine still requests blocks of pieces
/// that already hold a buffer.
#[test]
fn regression_in_flight_cap_deadlock_seed_42() {
    let mut p = Params::new(42);
    p.peers = 50;
    p.pieces = 256;
    p.piece_size = 256 * 1024;
    p.hash = HashMode::Oracle;
    p.bandwidth = (20_000, 200_000);
    assert_ok(&sim::run(p));
}

/// Found by `shoal-sim --seeds 2000..40000` (with 4931, 6697, 7943, 8508, 21175, 32982 and
/// 36515): a host's last piece was verified while a read error had put its torrent in error.
/// The engine marked it finished without saying so, and after the resume it seeded without
/// ever sending `Finished`, so the liveness oracle saw a host that never completed.
#[test]
fn regression_piece_finished_while_in_error_seed_2563() {
    for seed in [2563, 4931] {
        let mut p = Params::from_seed(seed);
        // As drawn when the seeds were found.
        p.faults.commands = false;
        p.bandwidth = Params::new(seed).bandwidth;
        assert_ok(&sim::run(p));
    }
}

/// Found by `shoal-sim --seeds 1500..12000` once drawn configurations included slow uplinks
/// (10-500 KB/s): a leecher whose user skipped every missing piece finished with requests
/// still out, and cancelled them without telling its picker, so when the user wanted the
/// pieces again the picker saw their blocks as on their way from three peers and asked no one
/// (2728, 6356, 1801). A liar that repeated UNCHOKE every two seconds kept the one real
/// request queue it held from ever timing out.
#[test]
fn regression_requests_cancelled_at_finish_are_asked_again_seed_2728() {
    for seed in [2728, 6356, 1801] {
        let p = Params::from_seed(seed);
        assert!(p.bandwidth.0 <= 50_000, "seed {seed} draws slow uplinks");
        assert_ok(&sim::run(p));
    }
}

/// Found with the slow-uplink draws (seed 5458): a partition replaced by a shorter one let
/// bytes sent later overtake bytes still stalled by the first, so one end read requests out
/// of order and the request oracle saw requests that were nowhere. The simulated stream now
/// resumes no earlier than its earliest stalled chunk, as TCP does.
#[test]
fn regression_a_stream_stays_in_order_across_partitions_seed_5458() {
    let p = Params::from_seed(5458);
    assert!(p.faults.partition && p.bandwidth.0 <= 50_000, "seed 5458 draws partitions and slow uplinks");
    assert_ok(&sim::run(p));
}

/// A user at every honest host pauses and resumes, rechecks, skips and re-wants files and
/// switches sequential mode and deadline pieces while the swarm runs; once that stops, every
/// host completes byte-exact. The drawn seeds are the ones that found, with these commands,
/// a pause that lost half-received pieces yet kept their blocks as received (honest seeders
/// banned for the hash failures that followed: 785), a tracker left unannounced for 30
/// minutes after a pause and resume (4393), and the peers of a tracker answer dropped because
/// it arrived during a recheck (11760).
#[test]
fn a_users_commands_are_survived() {
    let mut seen = std::collections::BTreeMap::new();
    for seed in [21, 22, 23] {
        let mut p = with_faults(seed, "commands");
        p.peers = 10;
        let r = sim::run(p);
        assert_ok(&r);
        for c in ["user_pauses", "user_rechecks", "user_skips", "user_wants"] {
            *seen.entry(c).or_insert(0) += counter(&r, c);
        }
    }
    // Every kind of command was exercised (how many of each a run draws depends on its length).
    assert!(seen.values().all(|n| *n > 0), "{seen:?}");
    for seed in [785, 4393, 11760] {
        let mut p = Params::from_seed(seed);
        assert!(p.faults.commands, "seed {seed} draws user commands");
        p.bandwidth = Params::new(seed).bandwidth; // as drawn when the seeds were found
        assert_ok(&sim::run(p));
    }
}

/// The request oracle (sim::oracle) runs on every connection between engines during a swarm,
/// and fires when a bound is broken or a request goes missing: the figures of a real run are
/// fed to it with a deliberately tighter bound and with one request taken away.
#[test]
fn request_oracle_checks_every_step_and_fires() {
    use shoal_tests::sim::oracle::{check_requests, End, Limits, MessageCounts};

    let r = sim::run(Params::new(3));
    assert_ok(&r);
    assert!(counter(&r, "request_checks") > r.steps / 4, "checked after most steps: {:?}", r.counters);

    let limits = Limits { max_requests_per_peer: 512, max_peer_requests: 500 };
    let leecher = End { queued: 0, outstanding: 64 };
    let seeder = End { queued: 40, outstanding: 0 };
    let to_seeder = MessageCounts { requests: 20, ..Default::default() };
    let to_leecher = MessageCounts { pieces: 4, ..Default::default() };
    let names: [&dyn std::fmt::Display; 2] = [&"leecher", &"seeder"];
    assert!(check_requests(limits, names, [leecher, seeder], to_seeder, to_leecher).is_empty());
    // A bound set below what the engine does.
    let broken = Limits { max_requests_per_peer: 63, ..limits };
    let v = check_requests(broken, names, [leecher, seeder], to_seeder, to_leecher);
    assert!(v.len() == 1 && v[0].contains("64 requests outstanding"), "{v:?}");
    let broken = Limits { max_peer_requests: 39, ..limits };
    let v = check_requests(broken, names, [leecher, seeder], to_seeder, to_leecher);
    assert!(v.iter().any(|v| v.contains("holds 40 requests")), "{v:?}");
    // A request the seeder dropped without a word.
    let lossy = End { queued: 39, ..seeder };
    let v = check_requests(limits, names, [leecher, lossy], to_seeder, to_leecher);
    assert!(v.len() == 1 && v[0].contains("1 requests were lost"), "{v:?}");
}

/// Issue #17: early on a slow, distant path one seeder held about 150 outstanding blocks, 20 s
/// of its rate, while a fast seeder could have sent them. A leecher between a fast seeder and a
/// slow one (32 kB/s, 300 ms round trip) keeps at most a few seconds of the slow one's rate
/// requested from it once its rate is known, and the download completes.
#[test]
fn a_slow_distant_seeder_holds_seconds_of_its_rate_not_tens() {
    use shoal_core::BLOCK_SIZE;
    use shoal_tests::sim::world::World;
    use shoal_tests::sim::AccessLink;

    const SLOW_UP: u64 = 32_000;
    const MS: Duration = Duration::from_millis(1);
    let mut p = Params::new(1717);
    (p.peers, p.seeders) = (3, 2);
    (p.pieces, p.piece_size) = (64, 128 * 1024);
    p.hash = HashMode::Oracle;
    let (fast, leecher) = (AccessLink { up: 400_000, down: 4_000_000, latency: 10 * MS }, 2);
    p.links.insert(0, fast);
    p.links.insert(1, AccessLink { up: SLOW_UP, down: 1_000_000, latency: 150 * MS });
    p.links.insert(leecher, AccessLink { up: 400_000, down: 10_000_000, latency: 10 * MS });
    let mut w = World::new(p.clone(), sim::build_torrent(&p));
    let slow_ip = w.hosts[1].addr.ip();

    // The slow seeder's whole uplink goes to the one leecher: at most this many blocks are
    // `SECS` seconds of its rate.
    const SECS: u64 = 6;
    let bound = (SECS * SLOW_UP / u64::from(BLOCK_SIZE)) as usize;
    let (mut worst, mut samples, mut next) = ((0, Duration::ZERO), 0, Duration::from_secs(5));
    let deadline = Duration::from_secs(300);
    while !w.all_complete() {
        assert!(w.step(), "the world ran out of events");
        let now = Duration::from_micros(w.now.as_micros());
        assert!(now < deadline, "not complete after {deadline:?}");
        // Sampled every 100 ms, after the first five seconds (slow start, the first tick).
        if now < next {
            continue;
        }
        next = now + 100 * MS;
        let Some(h) = w.engine_host(leecher) else { continue };
        let (Some(e), Some(t)) = (&h.engine, h.torrent) else { continue };
        let held = e.peers(t).iter().filter(|q| q.addr.ip() == slow_ip).map(|q| q.outstanding_requests).sum();
        samples += 1;
        if held > worst.0 {
            worst = (held, now);
        }
    }
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    assert!(samples > 50, "the download ran long enough to sample ({samples} samples)");
    assert!(
        worst.0 <= bound,
        "the slow seeder held {} requests at {:?}: {:.1} s of its {SLOW_UP} B/s (bound {SECS} s, {bound} blocks)",
        worst.0,
        worst.1,
        worst.0 as f64 * f64::from(BLOCK_SIZE) / SLOW_UP as f64
    );
}
