//! Flow hashing: the flow-cache hash of a 5-tuple key and the group hash of every algorithm
//! (five-tuple fields), over IPv4 and IPv6 flows.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ecmp_benches::{Bursts, FrameKind, SEED, frames, metas, per_burst};
use ecmp_dataplane::flow::FlowKey;
use ecmp_dataplane::hash::{DEFAULT_RSS_KEY, FlowHasher};
use ecmp_pktgen::traffic::Rng;
use ecmp_tables::policy::{HashAlgo, HashFields, HashPolicy};

/// Distinct flows per address family.
const POOL: usize = 4096;

const ALGOS: [(HashAlgo, &str); 4] = [
    (HashAlgo::Fast, "fast"),
    (HashAlgo::Crc32c, "crc32c"),
    (HashAlgo::Toeplitz, "toeplitz"),
    (HashAlgo::LbKey, "lb-key"),
];

fn hash(c: &mut Criterion) {
    let hasher = FlowHasher::new(SEED, &DEFAULT_RSS_KEY);
    let mut rng = Rng::new(SEED);
    let mut g = c.benchmark_group("hash");
    g.throughput(per_burst());
    for (kind, family) in [(FrameKind::Ipv4Udp, "v4"), (FrameKind::Ipv6Udp, "v6")] {
        let pool = frames(kind, POOL, &mut rng).expect("frames build");
        let metas = metas(&pool).expect("generated frames parse");
        let keys: Vec<FlowKey> = metas.iter().map(FlowKey::from_meta).collect();

        let mut bursts = Bursts::new(&keys).expect("pool holds a burst");
        g.bench_function(format!("cache/{family}"), |b| {
            b.iter(|| {
                for k in bursts.next_burst() {
                    black_box(hasher.cache_hash(black_box(k)));
                }
            })
        });

        for (algo, name) in ALGOS {
            let policy = HashPolicy {
                fields: HashFields::FiveTuple,
                algo,
                symmetric: false,
                inner: false,
            };
            let mut bursts = Bursts::new(&metas).expect("pool holds a burst");
            g.bench_function(format!("group/{name}/{family}"), |b| {
                b.iter(|| {
                    for m in bursts.next_burst() {
                        black_box(hasher.group_hash(black_box(m), &policy));
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = ecmp_benches::criterion();
    targets = hash
}
criterion_main!(benches);
