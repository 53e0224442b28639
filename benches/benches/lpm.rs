//! Longest-prefix match on random destinations inside random routes: with 100k+ routes the
//! destinations spread over far more cache lines than the CPU caches hold, so this measures the
//! cache-miss cost of a lookup, not a warm loop. Lookups within a burst are independent, as in
//! the pipeline, so the CPU may overlap their misses.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, criterion_group, criterion_main};
use ecmp_benches::{Bursts, SEED, address_in6, fib6, per_burst, random_routes6};
use ecmp_pktgen::traffic::Rng;
use ecmp_tables::Fib4;
use ecmpfwd::bench::{address_in, random_routes};

/// Destinations per table: 4 MiB (v4) / 16 MiB (v6) of addresses, walked in order.
const DESTINATIONS: usize = 1 << 20;
/// Groups the routes are spread over (as `ecmpfwd bench`).
const GROUPS: u32 = 64;

fn fib4(c: &mut Criterion) {
    let mut g = c.benchmark_group("lpm/fib4");
    g.throughput(per_burst());
    for (routes_n, name) in [(100_000, "100k"), (1_000_000, "1M")] {
        let mut rng = Rng::new(SEED);
        let routes = random_routes(&mut rng, routes_n);
        let mut fib = Fib4::new(routes_n / 4 + 1024);
        for (i, &(addr, len)) in routes.iter().enumerate() {
            fib.insert(Ipv4Addr::from(addr), len, i as u32 % GROUPS + 1)
                .expect("generated route fits");
        }
        let dsts: Vec<u32> = (0..DESTINATIONS)
            .map(|_| {
                let route = routes[rng.below(routes.len() as u64) as usize];
                address_in(&mut rng, route)
            })
            .collect();
        let mut bursts = Bursts::new(&dsts).expect("pool holds a burst");
        g.bench_function(name, |b| {
            b.iter(|| {
                for &a in bursts.next_burst() {
                    black_box(fib.lookup(black_box(a)));
                }
            })
        });
    }
    g.finish();
}

fn fib6_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lpm/fib6");
    g.throughput(per_burst());
    for (routes_n, name) in [(10_000, "10k"), (100_000, "100k")] {
        let mut rng = Rng::new(SEED);
        let routes = random_routes6(&mut rng, routes_n);
        let fib = fib6(&routes, GROUPS).expect("generated routes fit");
        let dsts: Vec<u128> = (0..DESTINATIONS)
            .map(|_| {
                let route = routes[rng.below(routes.len() as u64) as usize];
                address_in6(&mut rng, route)
            })
            .collect();
        let mut bursts = Bursts::new(&dsts).expect("pool holds a burst");
        g.bench_function(name, |b| {
            b.iter(|| {
                for &a in bursts.next_burst() {
                    black_box(fib.lookup(black_box(a)));
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = ecmp_benches::criterion();
    targets = fib4, fib6_lookup
}
criterion_main!(benches);
