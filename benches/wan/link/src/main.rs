//! `wan-link`: the delay and loss of a WAN-like path, for the benchmarks in `benches/wan/`.
//!
//! The kernel these machines run has no `netem`, so a router namespace sends every forwarded
//! packet to an NFQUEUE (`iptables -A FORWARD -j NFQUEUE --queue-num N`) and this program
//! decides each one: dropped with probability `--loss`, or accepted `--delay-ms` after it
//! arrived. The delay is the same for every packet, so the order is kept (a FIFO); the rate is
//! the job of a `tbf` qdisc on the router's links. Loss draws come from a ChaCha RNG seeded by
//! `--seed`, so a run's pattern of losses repeats.
//!
//! It runs until killed and prints its counts to stderr every 10 seconds.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use nfq::{Message, Queue, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Longest wait between two looks at the queue while packets are held (the release jitter).
const TICK: Duration = Duration::from_micros(200);

/// Packets the kernel may hold for us before it drops new ones (a bandwidth-delay product of
/// 100 Mbit/s x 150 ms is about 1,300 full-size packets).
const QUEUE_MAX: u32 = 16_384;

/// What the command line asks for.
struct Args {
    queue: u16,
    delay: Duration,
    loss: f64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { queue: 0, delay: Duration::from_millis(25), loss: 0.0, seed: 1 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value:?}");
        match flag.as_str() {
            "--queue" => args.queue = value.parse().map_err(|_| bad())?,
            "--delay-ms" => args.delay = Duration::from_secs_f64(value.parse::<f64>().map_err(|_| bad())? / 1000.0),
            "--loss" => args.loss = value.parse().map_err(|_| bad())?,
            "--seed" => args.seed = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown flag {flag} (--queue N --delay-ms MS --loss P --seed S)")),
        }
    }
    if !(0.0..1.0).contains(&args.loss) {
        return Err(format!("--loss must be in [0, 1): {}", args.loss));
    }
    Ok(args)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("wan-link: {e}");
        std::process::exit(2)
    });
    if let Err(e) = run(&args) {
        eprintln!("wan-link: {e}");
        std::process::exit(1)
    }
}

fn run(args: &Args) -> std::io::Result<()> {
    let mut queue = Queue::open()?;
    queue.bind(args.queue)?;
    queue.set_queue_max_len(args.queue, QUEUE_MAX)?;
    // A full queue drops rather than letting packets past the link unharmed.
    queue.set_fail_open(args.queue, false)?;
    queue.set_nonblocking(true);
    println!("ready");
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut held: VecDeque<(Instant, Message)> = VecDeque::new();
    let (mut passed, mut dropped) = (0u64, 0u64);
    let mut report = Instant::now() + Duration::from_secs(10);
    loop {
        loop {
            match queue.recv() {
                Ok(mut msg) => {
                    if args.loss > 0.0 && rng.random::<f64>() < args.loss {
                        msg.set_verdict(Verdict::Drop);
                        queue.verdict(msg)?;
                        dropped += 1;
                    } else {
                        held.push_back((Instant::now() + args.delay, msg));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            let Some((_, mut msg)) = held.pop_front() else { break };
            msg.set_verdict(Verdict::Accept);
            queue.verdict(msg)?;
            passed += 1;
        }
        if now >= report {
            eprintln!("wan-link: passed {passed}, dropped {dropped}, held {}", held.len());
            report = now + Duration::from_secs(10);
        }
        // Idle: the next packet's release, or a short look for new arrivals.
        let next = held.front().map_or(TICK, |(due, _)| due.saturating_duration_since(now));
        std::thread::sleep(next.min(TICK));
    }
}
