//! A whole simulated swarm in one thread, in memory, no kernel: one seeder and four leechers
//! of a 32 MiB torrent on shoal-core engines driven by the deterministic simulator
//! (`shoal_tests::sim`, with oracle hashing so SHA-1 does not dominate). Throughput is the
//! payload every leecher received, so criterion prints the swarm's MB/s through the engines.
//!
//! `cargo bench -p shoal-benches -- swarm` (figures, never assertions; each iteration is one
//! whole run from the same seed, about a tenth of a second).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoal_tests::sim::{self, HashMode, Params};

/// The benchmarked swarm: fixed seed, so every iteration simulates exactly the same run.
fn params() -> Params {
    let mut p = Params::new(1);
    p.peers = 5;
    p.seeders = 1;
    p.pieces = 128;
    p.piece_size = 256 * 1024;
    p.hash = HashMode::Oracle;
    p
}

fn swarm(c: &mut Criterion) {
    let p = params();
    // One run up front: the payload delivered (the torrent is a little under pieces × size)
    // and a check that the swarm completes, so the figure measures a whole download.
    let first = sim::run(p.clone());
    assert!(first.ok(), "{}", first.describe());
    let size = sim::build_torrent(&p).len();
    let leechers = (p.peers - p.seeders) as u64;
    let mut g = c.benchmark_group("swarm");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(size * leechers));
    let name = format!("1 seeder + {leechers} leechers, {:.1} MiB, oracle hashing", size as f64 / (1 << 20) as f64);
    g.bench_function(BenchmarkId::new("sim", name), |b| {
        b.iter(|| {
            let r = sim::run(p.clone());
            std::hint::black_box(r.trace)
        })
    });
    g.finish();
}

criterion_group!(benches, swarm);
criterion_main!(benches);
