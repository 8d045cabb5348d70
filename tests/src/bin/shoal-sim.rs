//! `shoal-sim`: runs the deterministic swarm simulator.
//!
//! ```text
//! shoal-sim --seed S [--peers N] [--seeders K] [--pieces P] [--piece-size B] [--faults LIST]
//!           [--hash real|oracle] [--bandwidth LO:HI] [--max-in-flight BYTES] [--fault-window SECS] [--check-determinism]
//!           [--utp] [-v]
//! shoal-sim --seeds A..B [--utp]  # configurations drawn from each seed; prints failing seeds
//! ```
//! `--utp` turns uTP on in every world (each host drawn TCP-only, uTP-only or both, with lossy,
//! duplicating, reordering datagram paths); without it a share of the drawn worlds speak uTP.
//! The last line of a single run is `seed=S peers=N completed=K/N sim_time=…s wall=…s trace=<hex>`.

use std::process::ExitCode;

use shoal_tests::sim::{self, Faults, HashMode, Params};

fn usage() -> ExitCode {
    eprintln!(
        "usage: shoal-sim --seed S [--peers N] [--seeders K] [--pieces P] [--piece-size B] [--faults LIST]\n\
         \x20                [--hash real|oracle] [--bandwidth LO:HI] [--fault-window SECS] [--check-determinism] [--utp] [-v]\n\
         \x20      shoal-sim --seeds A..B [--check-determinism] [--utp]\n\
         faults: none, all, net, partition, churn, crash, disk, tracker, commands, adversaries,\n\
         \x20       corrupt, liar, garbage, flood, silent, vanish, slow, squatter"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seed = None;
    let mut seeds = None;
    let mut check = false;
    let mut verbose = false;
    let mut utp = false;
    let mut set: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let mut val = || {
            i += 1;
            args.get(i).cloned()
        };
        match a {
            "--seed" => seed = val().and_then(|v| v.parse::<u64>().ok()),
            "--seeds" => {
                seeds = val().and_then(|v| {
                    let (a, b) = v.split_once("..")?;
                    Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
                })
            }
            "--check-determinism" => check = true,
            "--utp" => utp = true,
            "-v" | "--verbose" => verbose = true,
            "--peers" | "--seeders" | "--pieces" | "--piece-size" | "--faults" | "--hash" | "--bandwidth"
            | "--max-in-flight" | "--fault-window" => {
                let Some(v) = val() else { return usage() };
                set.push((a.to_string(), v));
            }
            _ => return usage(),
        }
        i += 1;
    }
    if let Some((a, b)) = seeds {
        return sweep(a, b, check, utp);
    }
    let Some(seed) = seed else { return usage() };
    let mut p = Params::new(seed);
    if utp {
        p.draw_utp(true);
    }
    for (k, v) in set {
        let ok = match k.as_str() {
            "--peers" => v.parse().map(|n| p.peers = n).is_ok(),
            "--seeders" => v.parse().map(|n| p.seeders = n).is_ok(),
            "--pieces" => v.parse().map(|n| p.pieces = n).is_ok(),
            "--piece-size" => v.parse().map(|n| p.piece_size = n).is_ok(),
            "--max-in-flight" => v.parse().map(|n| p.max_in_flight = n).is_ok(),
            "--faults" => Faults::parse(&v).map(|f| p.faults = f).map_err(|e| eprintln!("{e}")).is_ok(),
            "--hash" => match v.as_str() {
                "real" => {
                    p.hash = HashMode::Real;
                    true
                }
                "oracle" => {
                    p.hash = HashMode::Oracle;
                    true
                }
                _ => false,
            },
            "--fault-window" => v.parse().map(|secs| p.fault_window = std::time::Duration::from_secs(secs)).is_ok(),
            "--bandwidth" => match v.split_once(':').map(|(a, b)| (a.parse(), b.parse())) {
                Some((Ok(lo), Ok(hi))) if lo <= hi && lo > 0 => {
                    p.bandwidth = (lo, hi);
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !ok {
            return usage();
        }
    }
    if p.peers < 2 || p.seeders == 0 || p.seeders >= p.peers || p.pieces == 0 || p.piece_size < 16384 {
        eprintln!("need peers >= 2, 1 <= seeders < peers, pieces >= 1, piece size >= 16384");
        return ExitCode::from(2);
    }
    let r = sim::run_with(p.clone(), check);
    if verbose || !r.ok() {
        print!("{}", r.describe());
    }
    let mut code = if r.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    if check {
        let again = sim::run_with(p, true);
        match first_divergence(&r, &again) {
            None => println!("determinism: two runs identical over {} steps", r.steps),
            Some(step) => {
                println!(
                    "determinism: runs diverge at step {step} (first run {} steps, second {})",
                    r.steps, again.steps
                );
                code = ExitCode::FAILURE;
            }
        }
    }
    println!("{}", r.line());
    code
}

/// The first step after which the two runs' trace hashes differ.
fn first_divergence(a: &sim::Report, b: &sim::Report) -> Option<u64> {
    let (ha, hb) = (a.step_hashes.as_deref().unwrap_or(&[]), b.step_hashes.as_deref().unwrap_or(&[]));
    if let Some(i) = ha.iter().zip(hb).position(|(x, y)| x != y) {
        return Some(i as u64 + 1);
    }
    (ha.len() != hb.len() || a.trace != b.trace).then(|| ha.len().min(hb.len()) as u64 + 1)
}

fn sweep(a: u64, b: u64, check: bool, utp: bool) -> ExitCode {
    let mut failing = Vec::new();
    let start = std::time::Instant::now();
    for seed in a..b {
        let p = if utp { Params::from_seed_utp(seed) } else { Params::from_seed(seed) };
        let r = sim::run_with(p.clone(), check);
        let mut bad = !r.ok();
        if check {
            let again = sim::run_with(p, true);
            if let Some(step) = first_divergence(&r, &again) {
                println!("seed {seed}: runs diverge at step {step}");
                bad = true;
            }
        }
        if bad {
            print!("{}", r.describe());
            failing.push(seed);
        }
        println!("{}", r.line());
    }
    println!("seeds {a}..{b}: {} failing {:?} (wall {:.1}s)", failing.len(), failing, start.elapsed().as_secs_f64());
    if failing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
