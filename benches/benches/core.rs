//! Hot paths of the core: wire codec, piece picker at scale, piece verification, metainfo parsing.
//!
//! `cargo bench -p shoal-benches` (figures, never assertions).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};
use shoal_core::create::TorrentBuilder;
use shoal_core::picker::{BlockOutcome, Picker};
use shoal_core::wire::{Decoder, Limits, Message};
use shoal_core::{Bitfield, Metainfo};
use shoal_core::{BlockRef, ConnId};

fn wire(c: &mut Criterion) {
    let mut stream = Vec::new();
    for i in 0..256u32 {
        Message::Piece { piece: i, offset: 0, data: vec![7u8; 16384] }.encode(&mut stream);
        Message::Request(BlockRef { piece: i, offset: 16384, len: 16384 }).encode(&mut stream);
        Message::Have { piece: i }.encode(&mut stream);
    }
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function(BenchmarkId::new("decode", "256 x (piece+request+have), 64 KiB reads"), |b| {
        b.iter(|| {
            let mut d = Decoder::new(Limits::default());
            d.set_piece_count(1024);
            for chunk in stream.chunks(64 * 1024) {
                d.feed(chunk);
                while let Ok(Some(m)) = d.next_message() {
                    std::hint::black_box(m);
                }
            }
        })
    });
    let requests: Vec<Message> = (0..1024u32)
        .map(|i| Message::Request(BlockRef { piece: i / 16, offset: (i % 16) * 16384, len: 16384 }))
        .collect();
    g.throughput(Throughput::Elements(requests.len() as u64));
    g.bench_function(BenchmarkId::new("encode", "1024 requests into a reused buffer"), |b| {
        let mut out = Vec::with_capacity(32 * 1024);
        b.iter(|| {
            out.clear();
            for m in &requests {
                m.encode(&mut out);
            }
            std::hint::black_box(out.len());
        })
    });
    g.finish();
}

const PIECES: u32 = 100_000;
const PEERS: u64 = 200;

/// A picker with 100,000 pieces and 200 peers that each have a random 90% of them.
fn big_picker() -> (Picker, Vec<Bitfield>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut picker = Picker::new(PIECES, 262_144, PIECES as u64 * 262_144, 1);
    let mut fields = Vec::new();
    for _ in 0..PEERS {
        let mut bf = Bitfield::new(PIECES);
        for p in 0..PIECES {
            if rng.random_range(0..10) != 0 {
                bf.set(p, true);
            }
        }
        picker.peer_bitfield(&bf);
        fields.push(bf);
    }
    (picker, fields)
}

fn picker(c: &mut Criterion) {
    let mut g = c.benchmark_group("picker 100k pieces x 200 peers");
    let (base, fields) = big_picker();
    g.throughput(Throughput::Elements(1));
    g.bench_function("pick 16 blocks for one peer, receive them", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |p| {
                let mut out = Vec::with_capacity(16);
                for peer in 0..32u64 {
                    out.clear();
                    let conn = ConnId(peer);
                    p.pick(conn, &fields[peer as usize], false, 16, &mut out);
                    for blk in &out {
                        if let BlockOutcome::Accepted { piece_complete: true, .. } = p.block_received(conn, *blk) {
                            p.hash_passed(blk.piece);
                        }
                    }
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("HAVE from one peer (availability update)", |b| {
        let mut p = base.clone();
        let mut i = 0u32;
        b.iter(|| {
            p.peer_has_piece(i % PIECES);
            i = i.wrapping_add(7919);
        })
    });
    g.finish();
}

fn verify(c: &mut Criterion) {
    let piece = vec![0x5au8; 256 * 1024];
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Bytes(piece.len() as u64));
    g.bench_function("sha1 of a 256 KiB piece", |b| b.iter(|| std::hint::black_box(Sha1::digest(&piece))));
    g.finish();
}

fn metainfo(c: &mut Criterion) {
    let mut builder = TorrentBuilder::new("many".into());
    builder.set_piece_length(262_144);
    let mut total = 0u64;
    for i in 0..10_000u64 {
        let len = 1000 + i * 37;
        total += len;
        builder.add_file(vec![format!("dir{}", i / 100), format!("file-{i}.bin")], len);
    }
    let pieces = vec![[0u8; 20]; total.div_ceil(262_144) as usize];
    let bytes = builder.build(pieces).expect("a valid torrent");
    let mut g = c.benchmark_group("metainfo");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("parse a 10,000-file torrent", |b| {
        b.iter(|| std::hint::black_box(Metainfo::from_bytes(&bytes).expect("parses")))
    });
    g.finish();
}

criterion_group!(benches, wire, picker, verify, metainfo);
criterion_main!(benches);
