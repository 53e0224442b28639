//! The memory floor beside `pipeline`: per packet only what the DRAM must do for a flow-cache
//! hit (rx copy-in of the packet, then `LINES_PER_LOOKUP` random prefetched line reads from a
//! table as large as the flow cache's bucket array), at the same flows (1k and 1M), burst size
//! and flow-cache size as `pipeline/{1k,1M}-flows`. One iteration is one burst, so
//! `pipeline / floor` of the same size is the ratio `ecmpfwd bench --floor` reports. The floor's
//! loop is `ecmpfwd::bench::floor::Floor`, the one `ecmpfwd bench --floor` times.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ecmp_benches::per_burst;
use ecmp_dataplane::flowcache::LINES_PER_LOOKUP;
use ecmpfwd::bench::floor::Floor;
use ecmpfwd::bench::{BenchOptions, BenchSetup};

/// `pipeline.rs`'s options for `flows` flows with the rewrite action.
fn options(flows: usize) -> BenchOptions {
    BenchOptions {
        flows,
        packets: 0,
        ..BenchOptions::default()
    }
}

fn floor(c: &mut Criterion) {
    for (flows, name) in [(1_000usize, "1k"), (1_000_000, "1M")] {
        let opts = options(flows);
        // The flow cache exactly as the pipeline bench sizes it, then freed before the floor's
        // table of the same size is allocated.
        let setup = BenchSetup::new(&opts).expect("bench set-up");
        let frame_len = setup.frames().next().map_or(opts.frame_len, <[u8]>::len);
        let capacity = setup.into_worker().expect("bench worker").cache_capacity();
        let mut f = Floor::new(flows, capacity, frame_len, opts.seed).expect("floor");
        f.run(flows as u64);
        let mut g = c.benchmark_group(format!("floor/{name}-flows"));
        g.throughput(per_burst());
        g.bench_function(format!("{LINES_PER_LOOKUP}-lines"), |b| {
            b.iter(|| black_box(f.burst()))
        });
        g.finish();
        eprintln!(
            "floor/{name}-flows: {} KiB table, {} packets, {} lines read, checksum {:#x}",
            f.table_bytes() >> 10,
            f.packets(),
            f.lines_read(),
            f.checksum()
        );
    }
}

criterion_group! {
    name = benches;
    config = ecmp_benches::criterion();
    targets = floor
}
criterion_main!(benches);
