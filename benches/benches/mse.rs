//! MSE/PE costs: the RC4 stream cipher every byte of an encrypted connection passes through
//! (once on the sender, once on the receiver), the copy the receiving engine makes before it
//! decrypts (its input is borrowed), and one whole handshake (two 768-bit modexps per side).
//!
//! `cargo bench -p shoal-benches --bench mse` (figures, never assertions). The block sizes
//! are the engine's: 16 KiB is one block, 256 KiB one read of the host's socket.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use shoal_core::mse::{req2, Cipher, Established, Levels, MseHandshake, MseStep, Secrets};
use shoal_core::InfoHash;

const SKEY: InfoHash = InfoHash([0xaa; 20]);

/// A machine, or what it came to.
enum Side {
    Running(Box<MseHandshake>),
    Done(Box<Established>),
}

impl Side {
    /// Feeds `data` to a running side, appending its answer to `out`.
    fn step(self, data: &[u8], out: &mut Vec<u8>) -> Side {
        let Side::Running(m) = self else { return self };
        let find = |h: &[u8; 20]| (*h == req2(&SKEY)).then_some(SKEY);
        match m.handle(data, out, find).expect("the handshake fails") {
            MseStep::Pending(m) => Side::Running(m),
            MseStep::Done(e) => Side::Done(Box::new(e)),
        }
    }
}

/// One whole handshake between two machines that allow `levels`: (initiator, responder).
fn handshake(levels: Levels, rng: &mut ChaCha8Rng) -> (Established, Established) {
    let (mut to_b, mut to_a) = (Vec::new(), Vec::new());
    let a = MseHandshake::initiator(SKEY, levels, Secrets::random(rng), &mut to_b);
    let b = MseHandshake::responder(levels, Secrets::random(rng), &mut to_a);
    let (mut a, mut b) = (Side::Running(Box::new(a)), Side::Running(Box::new(b)));
    for _ in 0..8 {
        if matches!((&a, &b), (Side::Done(_), Side::Done(_))) {
            break;
        }
        let data = std::mem::take(&mut to_a);
        a = a.step(&data, &mut to_b);
        let data = std::mem::take(&mut to_b);
        b = b.step(&data, &mut to_a);
    }
    match (a, b) {
        (Side::Done(a), Side::Done(b)) => (*a, *b),
        _ => panic!("the handshake never finished"),
    }
}

/// The RC4 payload cipher, as the engine runs it.
fn rc4_cipher() -> Cipher {
    let (a, _) = handshake(Levels::Rc4, &mut ChaCha8Rng::seed_from_u64(1));
    assert!(!a.send.is_plaintext(), "RC4 was not selected");
    a.send
}

fn cipher(c: &mut Criterion) {
    let mut g = c.benchmark_group("mse");
    for size in [16 << 10, 256 << 10] {
        let mut buf = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        let mut rc4 = rc4_cipher();
        g.bench_function(BenchmarkId::new("rc4 in place", format!("{} KiB", size >> 10)), |b| {
            b.iter(|| rc4.apply(std::hint::black_box(&mut buf)))
        });
    }
    // The receive path's copy into the engine's scratch buffer, before it decrypts there.
    let input = vec![0x5au8; 256 << 10];
    let mut scratch = Vec::with_capacity(input.len());
    g.bench_function(BenchmarkId::new("copy to scratch", "256 KiB"), |b| {
        b.iter(|| {
            scratch.clear();
            scratch.extend_from_slice(std::hint::black_box(&input));
            std::hint::black_box(scratch.len());
        })
    });
    g.throughput(Throughput::Elements(1));
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    g.bench_function(BenchmarkId::new("handshake", "both sides, rc4"), |b| b.iter(|| handshake(Levels::Rc4, &mut rng)));
    g.finish();
}

criterion_group!(benches, cipher);
criterion_main!(benches);
