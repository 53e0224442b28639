//! The per-worker flow cache at 1k and 1M flows (capacity: the next power of two >= 2 x flows,
//! as `ecmpfwd bench` sizes it).
//!
//! - `hit`: lookups of cached flows in random order (the cache's own lines miss the CPU caches
//!   at 1M flows: 128 MiB of buckets and keys).
//! - `hit-prefetched`: the same, with the whole burst's buckets prefetched first, as the
//!   pipeline does.
//! - `miss-insert`: a flow never seen: lookup (miss) then insert. Each timed chunk of new flows
//!   is removed again, untimed, so the cache stays at its fill level instead of filling up;
//!   an insert that finds its bucket full evicts a resident flow (rare at this fill level), so
//!   the fill level drifts down slightly over a run.
//!
//! Hashes are precomputed: hashing is measured by the `hash` bench.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ecmp_benches::{BATCH, Bursts, SEED, flow_keys, per_burst};
use ecmp_dataplane::flow::FlowKey;
use ecmp_dataplane::flowcache::{CachedHop, FlowCache, FlowCacheConfig};
use ecmp_dataplane::hash::{DEFAULT_RSS_KEY, FlowHasher};
use ecmp_pktgen::traffic::Rng;

/// The clock every operation sees: far from every timeout, so nothing expires.
const NOW_MS: u64 = 1_000;
/// TCP flags of the packets: none (UDP), so flows are established at once.
const FLAGS: u8 = 0;
/// What every flow is cached with.
fn hop() -> CachedHop {
    CachedHop {
        group: 1,
        member: 3,
        hop: 4,
        ..CachedHop::default()
    }
}
/// New flows timed between two untimed clean-ups (bounded by a quarter of the flows).
const CHUNK: usize = 4096;
/// Most distinct new flows cycled through by `miss-insert`.
const MAX_FRESH: usize = 1 << 20;

fn flowcache(c: &mut Criterion) {
    let hasher = FlowHasher::new(SEED, &DEFAULT_RSS_KEY);
    let hop = hop();
    for (flows, name) in [(1_000usize, "1k"), (1_000_000, "1M")] {
        let mut g = c.benchmark_group(format!("flowcache/{name}"));
        g.throughput(per_burst());

        let fresh_n = (flows * 4).clamp(CHUNK * 4, MAX_FRESH);
        let mut rng = Rng::new(SEED);
        let keyed: Vec<(FlowKey, u64)> = flow_keys(flows + fresh_n, &mut rng)
            .into_iter()
            .map(|k| (k, hasher.cache_hash(&k)))
            .collect();
        let (resident, fresh) = keyed.split_at(flows);

        let mut cache = FlowCache::new(FlowCacheConfig {
            capacity: (flows * 2).next_power_of_two().max(1024),
            ..FlowCacheConfig::default()
        })
        .expect("valid flow cache");
        for (k, h) in resident {
            cache.insert(k, *h, hop, NOW_MS, FLAGS);
        }
        // Flows whose 4-way bucket overflowed were evicted: look up only the ones cached.
        let mut cached: Vec<(FlowKey, u64)> = resident
            .iter()
            .filter(|(k, h)| cache.peek(k, *h, NOW_MS).is_some())
            .copied()
            .collect();
        rng.shuffle(&mut cached);
        eprintln!(
            "flowcache/{name}: {} of {flows} flows cached (capacity {})",
            cached.len(),
            cache.capacity()
        );

        let mut bursts = Bursts::new(&cached).expect("pool holds a burst");
        g.bench_function("hit", |b| {
            b.iter(|| {
                for (k, h) in bursts.next_burst() {
                    black_box(cache.lookup(k, *h, NOW_MS, FLAGS));
                }
            })
        });
        g.bench_function("hit-prefetched", |b| {
            b.iter(|| {
                let burst = bursts.next_burst();
                for (_, h) in burst {
                    cache.prefetch(*h);
                }
                for (k, h) in burst {
                    black_box(cache.lookup(k, *h, NOW_MS, FLAGS));
                }
            })
        });

        // Whole bursts per chunk, at most a quarter of the flows, so the fill level stays put.
        let chunk = (CHUNK.min(flows / 4) / BATCH).max(1) * BATCH;
        let mut next = 0;
        g.bench_function("miss-insert", |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters as usize * BATCH;
                while left > 0 {
                    let n = chunk.min(left);
                    if next + n > fresh.len() {
                        next = 0;
                    }
                    let flows = &fresh[next..next + n];
                    next += n;
                    left -= n;
                    let t = Instant::now();
                    for (k, h) in flows {
                        if cache.lookup(k, *h, NOW_MS, FLAGS).is_none() {
                            black_box(cache.insert(k, *h, hop, NOW_MS, FLAGS));
                        }
                    }
                    timed += t.elapsed();
                    for (k, h) in flows {
                        cache.remove(k, *h);
                    }
                }
                timed
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = ecmp_benches::criterion();
    targets = flowcache
}
criterion_main!(benches);
