//! Bucket selection: `GroupTable::pick` of a 16-way resilient group, random hashes, for table
//! sizes from L1-resident (256 buckets) to L2-sized (65536 buckets).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ecmp_benches::{Bursts, SEED, per_burst};
use ecmp_pktgen::traffic::Rng;
use ecmp_tables::group::{GroupMode, ResilientGroup};

/// Members per group.
const WAYS: u32 = 16;
/// Random hashes walked in order.
const HASHES: usize = 1 << 20;

fn pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("bucket/16-way");
    g.throughput(per_burst());
    let mut rng = Rng::new(SEED);
    let hashes: Vec<u32> = (0..HASHES).map(|_| rng.next_u64() as u32).collect();
    for buckets in [256u32, 4096, 65536] {
        let mut group =
            ResilientGroup::new(buckets, GroupMode::AutoRecovery, SEED).expect("valid group");
        for hop in 1..=WAYS {
            group.add_member(hop, 1).expect("room for the member");
        }
        group.clear();
        let table = group.table();
        let mut bursts = Bursts::new(&hashes).expect("pool holds a burst");
        g.bench_function(buckets.to_string(), |b| {
            b.iter(|| {
                for &h in bursts.next_burst() {
                    black_box(table.pick(black_box(h)));
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = ecmp_benches::criterion();
    targets = pick
}
criterion_main!(benches);
