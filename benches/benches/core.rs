//! Hot paths of the core: wire decoding, piece verification.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shoal_core::types::BlockRef;
use shoal_core::wire::{Decoder, Limits, Message};

fn wire_decode(c: &mut Criterion) {
    let mut stream = Vec::new();
    for i in 0..256u32 {
        Message::Piece { piece: i, offset: 0, data: vec![7u8; 16384] }.encode(&mut stream);
        Message::Request(BlockRef { piece: i, offset: 16384, len: 16384 }).encode(&mut stream);
    }
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function(BenchmarkId::new("decode", "256 pieces + requests"), |b| {
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
    g.finish();
}

criterion_group!(benches, wire_decode);
criterion_main!(benches);
