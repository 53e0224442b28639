//! Summing and printing the workers' published counters.

use std::fmt::Write as _;
use std::sync::Arc;

use ecmp_dataplane::counters::{Counter, Counters, SharedCounters};
use ecmp_dataplane::drop::DropReason;
use ecmp_dataplane::worker::Worker;
use ecmp_mem::{MemError, TableMemory};
use ecmp_port::Port;
use ecmp_proto::ctl::TableBacking;

/// The FIBs' and `worker`'s flow cache's memory, read back from the kernel (one smaps read), each
/// with the worker index it belongs to (`None` for the shared FIBs, `Some(0)` for this worker).
pub fn worker_memory<P: Port>(worker: &Worker<P>) -> Vec<(Option<usize>, TableMemory)> {
    let snap = worker.snapshot();
    let placed: Vec<_> = snap
        .fib4
        .memory()
        .into_iter()
        .chain(snap.fib6.memory())
        .map(|p| (None, p))
        .chain(
            worker
                .pipeline()
                .flow_cache()
                .memory()
                .map(|p| (Some(0), p)),
        )
        .collect();
    let read = ecmp_mem::read_back(&placed.iter().map(|(_, p)| *p).collect::<Vec<_>>());
    placed.iter().map(|(wi, _)| *wi).zip(read).collect()
}

/// Logs each big table's memory as the kernel backs it (`worker` = its owner, none for the
/// shared FIBs), then, under `require`, refuses a big table off the hugetlb pool.
pub fn log_memory(tables: Vec<(Option<usize>, TableMemory)>) -> Result<(), MemError> {
    for (worker, t) in &tables {
        match worker {
            Some(w) => tracing::info!("memory: worker {w} {t}"),
            None => tracing::info!("memory: {t}"),
        }
    }
    let tables: Vec<_> = tables.into_iter().map(|(_, t)| t).collect();
    ecmp_mem::check_required(ecmp_mem::policy(), &tables)
}

/// What `ecmpctl stats` and the bench report show of a table's memory.
pub fn table_backing(worker: Option<usize>, t: TableMemory) -> TableBacking {
    TableBacking {
        worker,
        bytes: t.bytes as u64,
        backing: t.backing.kind().to_owned(),
        huge_bytes: t.backing.huge_bytes(t.bytes) as u64,
        name: t.name,
    }
}

/// Sums every worker's published counters.
pub fn sum(shared: &[Arc<SharedCounters>]) -> Counters {
    let mut total = Counters::default();
    for s in shared {
        total.merge(&s.read());
    }
    total
}

const SHOWN: [(Counter, &str); 13] = [
    (Counter::RxPackets, "rx_packets"),
    (Counter::RxBytes, "rx_bytes"),
    (Counter::TxPackets, "tx_packets"),
    (Counter::TxBytes, "tx_bytes"),
    (Counter::CacheHits, "flow_cache_hits"),
    (Counter::CacheMisses, "flow_cache_misses"),
    (Counter::Repicks, "flow_repicks"),
    (Counter::NotCached, "flows_not_cached"),
    (Counter::Evictions, "flow_evictions"),
    (Counter::Generations, "table_generations"),
    (Counter::Polls, "polls"),
    (Counter::BusyPolls, "busy_polls"),
    (Counter::BusyCycles, "busy_cycles"),
];

/// Human-readable counters: totals first, then every non-zero drop reason.
pub fn human(c: &Counters) -> String {
    let mut out = String::new();
    for (counter, name) in SHOWN {
        let _ = writeln!(out, "{name:<22} {}", c.get(counter));
    }
    let _ = writeln!(out, "{:<22} {}", "drops", c.total_drops());
    for r in DropReason::ALL {
        let n = c.drops(r);
        if n > 0 {
            let _ = writeln!(out, "  {:<20} {n}", r.name());
        }
    }
    out
}

/// The counters as one JSON object (drop reasons under "drops", zeros included).
pub fn json(c: &Counters) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    for (counter, name) in SHOWN {
        obj.insert(name.into(), c.get(counter).into());
    }
    let drops: serde_json::Map<_, _> = DropReason::ALL
        .iter()
        .map(|r| (r.name().to_string(), c.drops(*r).into()))
        .collect();
    obj.insert("drops".into(), drops.into());
    obj.into()
}
