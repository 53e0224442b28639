//! `parse_frame` on 64-byte frames of each kind: one pass from Ethernet to a `PacketMeta`,
//! IPv4 header checksum verified.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ecmp_benches::{Bursts, FrameKind, SEED, frames, per_burst};
use ecmp_pktgen::traffic::Rng;
use ecmp_wire::PacketMeta;
use ecmp_wire::parse::parse_frame_into;

/// Distinct frames per kind: more than L1 holds, as in a stream of different flows.
const POOL: usize = 4096;

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(per_burst());
    let mut rng = Rng::new(SEED);
    for kind in FrameKind::ALL {
        let pool = frames(kind, POOL, &mut rng).expect("frames build");
        let mut bursts = Bursts::new(&pool).expect("pool holds a burst");
        // As the pipeline does it: each packet's meta parsed in place into the burst's array.
        let mut metas = [PacketMeta::default(); ecmp_benches::BATCH];
        g.bench_function(kind.name(), |b| {
            b.iter(|| {
                for (f, m) in bursts.next_burst().iter().zip(metas.iter_mut()) {
                    let _ = black_box(parse_frame_into(black_box(f), m));
                }
                black_box(&metas);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = ecmp_benches::criterion();
    targets = parse
}
criterion_main!(benches);
