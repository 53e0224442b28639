//! A whole worker (pipeline + memory ports) for one config, driven a frame or a burst at a time,
//! with every frame accounted for: each input is either sent on exactly one port or counted
//! under exactly one drop reason, and every frame goes back to the pool.
//!
//! Frames enter on port [`INGRESS`]; the clock advances one millisecond per poll so flow-cache
//! timeouts behave as in a running daemon, yet every run is reproducible.

use std::sync::Arc;

use ecmp_dataplane::counters::SharedCounters;
use ecmp_dataplane::drop::DropReason;
use ecmp_dataplane::pipeline::Pipeline;
use ecmp_dataplane::worker::Worker;
use ecmp_port::memory::{FramePool, MemoryPort, TxMode};
use ecmp_port::{BURST, PortId};
use ecmp_tables::snapshot::{Snapshot, SnapshotCell};
use ecmpfwd::config::Config;
use ecmpfwd::setup;
use ecmpfwd::setup::pipeline_config;

use crate::TestsError;

/// The port test frames are received on (the first `[[port]]` of the config).
pub const INGRESS: PortId = 0;
/// Frames in a rig's pool: a few bursts' worth for every port's queues.
pub const POOL_FRAMES: usize = 16 * BURST;
/// Simulated time per poll.
const POLL_NS: u64 = 1_000_000;

/// A worker for `cfg` over one memory port per `[[port]]` (index = port id), all drawing from
/// `pool`, with tables built by `ecmpfwd::setup::build` and pipeline settings from
/// `ecmpfwd::setup::pipeline_config`, as `ecmpfwd run` builds them.
pub fn build_worker(
    cfg: &Config,
    pool: &FramePool,
    tx_mode: TxMode,
) -> Result<Worker<MemoryPort>, TestsError> {
    let tables = setup::build(cfg)?;
    let cell = Arc::new(SnapshotCell::new(tables.snapshot, 1));
    let ports = cfg
        .ports
        .iter()
        .map(|_| MemoryPort::with_tx_mode(pool.clone(), tx_mode))
        .collect();
    let counters = Arc::new(SharedCounters::default());
    Ok(Worker::new(ports, &pipeline_config(cfg), cell, counters)?)
}

/// A bare pipeline and the snapshot it reads, for `cfg` (benches of the pipeline stage alone).
pub fn build_pipeline(cfg: &Config) -> Result<(Pipeline, Arc<Snapshot>), TestsError> {
    let tables = setup::build(cfg)?;
    let mut pipeline = Pipeline::new(&pipeline_config(cfg))?;
    pipeline.on_new_snapshot(&tables.snapshot);
    Ok((pipeline, Arc::new(tables.snapshot)))
}

/// What became of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent on `port` as `frame`.
    Tx {
        /// The egress port.
        port: PortId,
        /// The bytes sent.
        frame: Vec<u8>,
    },
    /// Dropped for this reason.
    Drop(DropReason),
}

/// What a burst of frames became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurstOutcome {
    /// Frames sent, per port id, in order.
    pub sent: Vec<Vec<Vec<u8>>>,
    /// Drops counted during the burst, per reason (indexed by `DropReason as usize`).
    pub drops: [u64; DropReason::COUNT],
}

impl BurstOutcome {
    /// Frames sent on all ports.
    pub fn sent_total(&self) -> usize {
        self.sent.iter().map(Vec::len).sum()
    }

    /// Drops of all reasons.
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// A worker with collecting memory ports and its pool.
pub struct Rig {
    worker: Worker<MemoryPort>,
    pool: FramePool,
    now_ns: u64,
}

impl Rig {
    /// A rig for `cfg` with a pool of [`POOL_FRAMES`] frames.
    pub fn new(cfg: &Config) -> Result<Self, TestsError> {
        let pool = FramePool::new(POOL_FRAMES);
        let worker = build_worker(cfg, &pool, TxMode::Collect)?;
        Ok(Rig {
            worker,
            pool,
            now_ns: 0,
        })
    }

    /// The frame pool (to check that nothing leaked: `outstanding() == 0` between runs).
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// The worker.
    pub fn worker(&self) -> &Worker<MemoryPort> {
        &self.worker
    }

    fn ingress(&mut self) -> Result<&mut MemoryPort, TestsError> {
        self.worker
            .ports_mut()
            .get_mut(usize::from(INGRESS))
            .ok_or(TestsError::NoIngressPort)
    }

    /// Receives `frames` on [`INGRESS`], polls until every one went through the pipeline,
    /// drains the tx batches, and collects what was sent and dropped.
    pub fn run_burst(&mut self, frames: &[&[u8]]) -> Result<BurstOutcome, TestsError> {
        let before = self.worker.pipeline().counters().drops;
        for f in frames {
            self.ingress()?.inject(f)?;
        }
        // Each poll takes at most one burst from the ingress port.
        let mut polls = 0;
        while self.ingress()?.rx_pending() > 0 {
            if polls > frames.len() {
                return Err(TestsError::Stuck {
                    pending: self.ingress()?.rx_pending(),
                });
            }
            self.now_ns += POLL_NS;
            self.worker.poll(self.now_ns);
            polls += 1;
        }
        self.worker.drain();
        let after = self.worker.pipeline().counters().drops;
        let mut drops = [0u64; DropReason::COUNT];
        for (d, (a, b)) in drops.iter_mut().zip(after.iter().zip(before.iter())) {
            *d = a.saturating_sub(*b);
        }
        let sent = self
            .worker
            .ports_mut()
            .iter_mut()
            .map(MemoryPort::take_sent)
            .collect();
        Ok(BurstOutcome { sent, drops })
    }

    /// Runs one frame; it must be sent exactly once or dropped exactly once.
    pub fn run(&mut self, frame: &[u8]) -> Result<Outcome, TestsError> {
        let out = self.run_burst(&[frame])?;
        let (sent, drops) = (out.sent_total(), out.drops_total());
        if (sent, drops) == (1, 0) {
            for (port, mut frames) in out.sent.into_iter().enumerate() {
                if let (Some(frame), Ok(port)) = (frames.pop(), PortId::try_from(port)) {
                    return Ok(Outcome::Tx { port, frame });
                }
            }
        }
        if (sent, drops) == (0, 1) {
            for (reason, n) in DropReason::ALL.iter().zip(out.drops.iter()) {
                if *n == 1 {
                    return Ok(Outcome::Drop(*reason));
                }
            }
        }
        Err(TestsError::Unaccounted { sent, drops })
    }
}
