//! `ecmpfwd bench --workers N`: N workers at once, one pinned thread each, as RSS would give a
//! multi-queue NIC's flows to them.
//!
//! The set-up's flows are split by the Toeplitz (RSS) hash of their 5-tuple with the pipeline's
//! RSS key, through a [`RETA_SIZE`]-entry indirection table filled round-robin (a NIC's
//! default), so each worker sees a disjoint share. Each worker builds, on its own core, its own
//! rig (memory ports replaying its share, its own frame pool) and its own flow cache, sized for
//! its share as the one-worker run is sized for all flows (or `--cache-capacity` each); the
//! tables are shared, as the daemon's workers share one snapshot. Each replays its share once
//! (warm-up), then all start together (a barrier) and each times `packets / N` packets. The
//! aggregate rate is all packets over the window from the first start to the last end.
//!
//! Cost: a copy of each share's frames and one flow cache per worker, all alive at once.

use std::sync::Barrier;
use std::time::Instant;

use ecmp_dataplane::counters::Counter;
use ecmp_dataplane::flowcache::FlowCacheConfig;
use ecmp_dataplane::hash::FlowHasher;
use ecmp_dataplane::pipeline::PipelineConfig;
use ecmp_tables::policy::HashPolicy;
use serde::Serialize;

use super::{BenchError, BenchSetup, BenchWorker, default_capacity, rig};
use crate::rig::INGRESS;

/// Entries of the RSS indirection table the flows are split by (a common NIC default).
pub const RETA_SIZE: usize = 128;

/// One worker of a `--workers` run.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerReport {
    /// The core it was pinned to.
    pub core: usize,
    /// Flows of its share.
    pub flows: usize,
    /// Its flow cache's capacity.
    pub cache_capacity: usize,
    /// Packets it timed.
    pub packets: u64,
    /// Its own wall time, seconds.
    pub seconds: f64,
    /// Its own nanoseconds per packet.
    pub ns_per_packet: f64,
    /// Frames it sent.
    pub tx_packets: u64,
    /// Frames it dropped (any reason).
    pub drops: u64,
    /// Its flow-cache hits.
    pub cache_hits: u64,
    /// Its flow-cache misses.
    pub cache_misses: u64,
}

/// What a `--workers` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct WorkersReport {
    /// Workers run at once.
    pub workers: usize,
    /// Packets timed, all workers.
    pub packets: u64,
    /// Frames sent, all workers (equals `packets` when nothing is dropped).
    pub tx_packets: u64,
    /// Frames dropped, all workers.
    pub drops: u64,
    /// The window from the first worker's start to the last one's end, seconds.
    pub seconds: f64,
    /// Aggregate millions of packets per second: `packets / seconds`.
    pub mpps: f64,
    /// The one-worker run's Mpps, made in the same invocation just before.
    pub one_worker_mpps: f64,
    /// `mpps / one_worker_mpps`.
    pub scaling: f64,
    /// Each worker.
    pub per_worker: Vec<WorkerReport>,
}

/// The worker (index below `workers`) that RSS gives the flow of `frame`.
fn queue_of(
    hasher: &FlowHasher,
    frame: &[u8],
    index: usize,
    workers: usize,
) -> Result<usize, BenchError> {
    let meta = ecmp_wire::parse_frame(frame).map_err(|e| BenchError::Unforwardable {
        index,
        reason: e.into(),
    })?;
    let rss = hasher.toeplitz_hash(&meta, &HashPolicy::default());
    Ok((rss as usize % RETA_SIZE) % workers)
}

/// The set-up's frame indices (replay order) of each of `workers` workers.
pub fn split(setup: &BenchSetup, workers: usize) -> Result<Vec<Vec<usize>>, BenchError> {
    let hasher = FlowHasher::new(setup.pipeline.seed, &setup.pipeline.rss_key);
    let mut shares = vec![Vec::new(); workers.max(1)];
    for (index, frame) in setup.frames().enumerate() {
        shares[queue_of(&hasher, frame, index, workers.max(1))?].push(index);
    }
    Ok(shares)
}

/// Runs one worker per core of `cores` at once (see the module doc); `packets` in all. The
/// scaling is over `one_worker_mpps`.
pub fn run(
    setup: &BenchSetup,
    cores: &[usize],
    cache_capacity: Option<usize>,
    packets: u64,
    one_worker_mpps: f64,
) -> Result<WorkersReport, BenchError> {
    let n = cores.len().max(1);
    let shares = split(setup, n)?;
    let each = packets / n as u64;
    let barrier = Barrier::new(n);
    let results: Vec<Result<Timed, BenchError>> = std::thread::scope(|s| {
        let handles: Vec<_> = cores
            .iter()
            .zip(&shares)
            .map(|(&core, share)| {
                let barrier = &barrier;
                s.spawn(move || {
                    let ready = super::pin(core)
                        .and_then(|()| build(setup, share, core, cache_capacity))
                        .map(|mut w| {
                            // Warm-up: every flow of the share seen once, and sent, so
                            // that the timed part sends exactly what it receives.
                            w.run(share.len() as u64);
                            w.drain();
                            w
                        });
                    // Every worker reaches the barrier, ready or not, so none waits forever.
                    barrier.wait();
                    let mut w = ready?;
                    Ok(time(&mut w, core, share.len(), each))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut timed = Vec::with_capacity(n);
    for r in results {
        timed.push(r?);
    }
    let (Some(first), Some(last)) = (
        timed.iter().map(|t| t.start).min(),
        timed.iter().map(|t| t.end).max(),
    ) else {
        return Err(BenchError::ZeroSize);
    };
    let seconds = last.duration_since(first).as_secs_f64();
    let per_worker: Vec<WorkerReport> = timed.into_iter().map(|t| t.report).collect();
    let packets = per_worker.iter().map(|w| w.packets).sum::<u64>();
    let mpps = packets as f64 / seconds / 1e6;
    Ok(WorkersReport {
        workers: n,
        packets,
        tx_packets: per_worker.iter().map(|w| w.tx_packets).sum(),
        drops: per_worker.iter().map(|w| w.drops).sum(),
        seconds,
        mpps,
        one_worker_mpps,
        scaling: mpps / one_worker_mpps,
        per_worker,
    })
}

/// One worker's timed part and when it ran.
struct Timed {
    start: Instant,
    end: Instant,
    report: WorkerReport,
}

/// A bench worker replaying the frames of `share` with a flow cache sized for them.
fn build(
    setup: &BenchSetup,
    share: &[usize],
    core: usize,
    cache_capacity: Option<usize>,
) -> Result<BenchWorker, BenchError> {
    if share.is_empty() {
        return Err(BenchError::EmptyShare { core });
    }
    let pipeline = PipelineConfig {
        flow_cache: FlowCacheConfig {
            capacity: cache_capacity.unwrap_or_else(|| default_capacity(share.len())),
            ..setup.pipeline.flow_cache
        },
        ..setup.pipeline.clone()
    };
    let frame_len = setup.frame_len;
    let mut r = rig(setup.snapshot.clone(), &pipeline)?;
    r.replay(
        INGRESS,
        share
            .iter()
            .map(|&i| &setup.frames[i * frame_len..(i + 1) * frame_len]),
    )?;
    Ok(BenchWorker::new(r))
}

/// Times `packets` packets on `w` (already warm).
fn time(w: &mut BenchWorker, core: usize, flows: usize, packets: u64) -> Timed {
    let before = w.counters().clone();
    let start = Instant::now();
    w.run(packets);
    w.drain();
    let end = Instant::now();
    let after = w.counters();
    let d = |c: Counter| after.get(c) - before.get(c);
    let done = d(Counter::RxPackets);
    let seconds = end.duration_since(start).as_secs_f64();
    Timed {
        start,
        end,
        report: WorkerReport {
            core,
            flows,
            cache_capacity: w.cache_capacity(),
            packets: done,
            seconds,
            ns_per_packet: seconds * 1e9 / done.max(1) as f64,
            tx_packets: d(Counter::TxPackets),
            drops: after.total_drops() - before.total_drops(),
            cache_hits: d(Counter::CacheHits),
            cache_misses: d(Counter::CacheMisses),
        },
    }
}
