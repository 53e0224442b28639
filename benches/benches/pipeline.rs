//! The whole pipeline as `ecmpfwd bench` runs it: a worker over two memory ports (port 0 replays
//! one 64-byte frame per flow in random order, port 1 counts and recycles), 100k IPv4 routes
//! over 64 groups of 16 hops, 1024 buckets each. One iteration is one poll: one burst received,
//! parsed, hashed, looked up, rewritten or encapsulated and handed to tx. Every flow has been
//! seen once before timing starts (flow cache warm, as in `ecmpfwd bench`).
//!
//! `pipeline/golden` replays the golden fixtures of `tests/golden/` instead (every case, forwarded
//! and dropped alike, cycled in name order): IPv4 and IPv6, VLAN and QinQ, fragments, options,
//! every action and drop reason, through the worker built for `tests/golden/golden.toml`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use ecmp_benches::per_burst;
use ecmp_dataplane::counters::{Counter, Counters};
use ecmp_port::BURST;
use ecmp_port::memory::TxMode;
use ecmpfwd::bench::{BenchAction, BenchOptions, BenchSetup};
use ecmpfwd::rig::{INGRESS, RigOptions};

fn options(flows: usize, action: BenchAction) -> BenchOptions {
    BenchOptions {
        flows,
        // Criterion decides how many packets are timed.
        packets: 0,
        action,
        ..BenchOptions::default()
    }
}

fn pipeline(c: &mut Criterion) {
    for (flows, name) in [(1_000usize, "1k"), (1_000_000, "1M")] {
        let mut g = c.benchmark_group(format!("pipeline/{name}-flows"));
        g.throughput(per_burst());
        for (action, action_name) in [
            (BenchAction::Rewrite, "rewrite"),
            (BenchAction::Vxlan, "vxlan"),
        ] {
            let mut w = BenchSetup::new(&options(flows, action))
                .and_then(BenchSetup::into_worker)
                .expect("bench set-up");
            w.run(flows as u64);
            let before = w.counters().clone();
            g.bench_function(action_name, |b| b.iter(|| black_box(w.poll())));
            w.drain();
            report(
                &format!("pipeline/{name}-flows/{action_name}"),
                &before,
                w.counters(),
            );
        }
        g.finish();
    }
}

fn golden(c: &mut Criterion) {
    let cases = ecmp_tests::golden_cases();
    let opts = RigOptions {
        pool_frames: 16 * BURST * 4,
        tx_mode: TxMode::Count,
        ..RigOptions::default()
    };
    let mut rig = ecmp_tests::golden_rig_with(opts).expect("golden rig");
    // Port 0 is `uplink`, where every fixture's input arrives.
    rig.replay(INGRESS, cases.iter().map(|c| c.input.as_slice()))
        .expect("fixtures fit a frame");
    let start = Instant::now();
    let clock = |start: Instant| start.elapsed().as_nanos() as u64;
    // One pass over every case first, so the flow cache holds the forwarded flows.
    while rig.counter(Counter::RxPackets) < cases.len() as u64 {
        rig.poll_at(clock(start));
    }
    let before = rig.counters().clone();

    let mut g = c.benchmark_group("pipeline/golden");
    g.throughput(per_burst());
    g.bench_function(format!("{}-cases", cases.len()), |b| {
        b.iter(|| black_box(rig.poll_at(clock(start))))
    });
    g.finish();
    rig.drain();
    let drop_cases = cases
        .iter()
        .filter(|c| matches!(c.expected, ecmp_tests::Expected::Drop(_)))
        .count();
    eprintln!(
        "pipeline/golden: {drop_cases} of {} cases are drops",
        cases.len()
    );
    report("pipeline/golden", &before, rig.counters());
}

/// What the timed polls did: a run with drops or unexpected misses would not measure the path
/// it claims to, so say it beside the figure.
fn report(id: &str, before: &Counters, after: &Counters) {
    let d = |c: Counter| after.get(c) - before.get(c);
    let rx = d(Counter::RxPackets);
    eprintln!(
        "{id}: {rx} packets, {} tx, {} drops, cache hits {:.2}%",
        d(Counter::TxPackets),
        after.total_drops() - before.total_drops(),
        100.0 * d(Counter::CacheHits) as f64 / rx.max(1) as f64
    );
}

criterion_group! {
    name = benches;
    config = ecmp_benches::criterion();
    targets = pipeline, golden
}
criterion_main!(benches);
