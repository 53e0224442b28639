//! One poll-mode worker's loop body, generic over the port type: rx bursts through the pipeline
//! into per-port tx batches, flushed when full or when the drain timer fires.
//!
//! The worker owns its ports, its pipeline and its tx batches; nothing here is shared with other
//! threads except the snapshot cell (read once per poll) and the published counters.

use std::sync::Arc;

use ecmp_tables::snapshot::{ReaderId, Snapshot, SnapshotCell};

use crate::counters::{Counter, SharedCounters};
use crate::error::DataplaneError;
use crate::pipeline::{Pipeline, PipelineConfig, Verdict};
use crate::port::{BURST, Burst, Port};

/// Partial tx batches wait at most this long before they are sent (DPDK l3fwd uses ~100 us).
pub const TX_DRAIN_NS: u64 = 100_000;

/// A worker: ports, pipeline, tx batches, and its view of the published tables.
pub struct Worker<P: Port> {
    ports: Vec<P>,
    tx: Vec<Burst<P::Frame>>,
    rx: Burst<P::Frame>,
    verdicts: [Verdict; BURST],
    pipeline: Pipeline,
    cell: Arc<SnapshotCell>,
    reader: ReaderId,
    snapshot: Arc<Snapshot>,
    generation: u64,
    shared: Arc<SharedCounters>,
    last_drain_ns: u64,
}

impl<P: Port> Worker<P> {
    /// Builds a worker over `ports` (index = port id) reading tables from `cell`.
    pub fn new(
        ports: Vec<P>,
        cfg: &PipelineConfig,
        cell: Arc<SnapshotCell>,
        shared: Arc<SharedCounters>,
    ) -> Result<Self, DataplaneError> {
        let reader = cell.register_reader()?;
        let snapshot = cell.load();
        let generation = snapshot.generation;
        let mut pipeline = Pipeline::new(cfg)?;
        pipeline.on_new_snapshot(&snapshot);
        cell.report(reader, generation);
        let tx = ports.iter().map(|_| Burst::new()).collect();
        Ok(Worker {
            ports,
            tx,
            rx: Burst::new(),
            verdicts: [Verdict::Tx(0); BURST],
            pipeline,
            cell,
            reader,
            snapshot,
            generation,
            shared,
            last_drain_ns: 0,
        })
    }

    /// The pipeline (counters, flow cache).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The ports, e.g. for a test to inspect what was sent.
    pub fn ports_mut(&mut self) -> &mut [P] {
        &mut self.ports
    }

    /// Stops the worker: sends what is batched and hands the ports back (e.g. to flush a capture).
    pub fn into_ports(mut self) -> Vec<P> {
        self.drain();
        std::mem::take(&mut self.ports)
    }

    /// The snapshot currently in use.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// One pass over every port: returns how many frames were received. `now_ns` is a monotonic
    /// clock read once per poll by the caller.
    pub fn poll(&mut self, now_ns: u64) -> usize {
        // One atomic load per poll; the Arc is replaced only when a new generation was published.
        let generation = self.cell.generation();
        if generation != self.generation {
            self.snapshot = self.cell.load();
            self.generation = self.snapshot.generation;
            self.pipeline.on_new_snapshot(&self.snapshot);
        }
        let now_ms = now_ns / 1_000_000;

        let mut received = 0;
        for p in 0..self.ports.len() {
            let n = self.ports[p].rx_burst(&mut self.rx);
            if n == 0 {
                continue;
            }
            received += n;
            self.pipeline
                .process(&self.snapshot, &mut self.rx, &mut self.verdicts, now_ms);
            if self.forward_whole_burst() {
                continue;
            }
            for (frame, verdict) in self.rx.drain(..).zip(self.verdicts.iter()) {
                match *verdict {
                    Verdict::Tx(out) => {
                        let out = out as usize;
                        if self.tx[out].is_full() {
                            send(&mut self.ports, &mut self.tx, out, &mut self.pipeline);
                        }
                        // A batch that stayed full after send had every frame released, so
                        // there is room now.
                        self.tx[out].push(frame);
                    }
                    Verdict::Drop(_) => self.ports[p].release(frame),
                }
            }
        }

        // Full batches went out above; partial ones go when idle or when the drain timer fires.
        if received == 0 || now_ns.saturating_sub(self.last_drain_ns) >= TX_DRAIN_NS {
            self.drain();
            self.last_drain_ns = now_ns;
        }
        self.cell.report(self.reader, self.generation);
        self.pipeline.counters().publish(&self.shared);
        received
    }

    /// The common case in one move: every frame of the rx burst goes to the same port. Does
    /// what the per-frame loop would (send a full batch first, then append in order) when that
    /// port's batch is then empty, by swapping the whole burst in; returns false, having done
    /// nothing, otherwise.
    #[inline]
    fn forward_whole_burst(&mut self) -> bool {
        let n = self.rx.len();
        let Some(&Verdict::Tx(out)) = self.verdicts.first() else {
            return false;
        };
        let out = usize::from(out);
        if n == 0
            || out >= self.tx.len()
            || !self.verdicts[..n.min(BURST)]
                .iter()
                .all(|v| *v == Verdict::Tx(out as u16))
        {
            return false;
        }
        if self.tx[out].is_full() {
            send(&mut self.ports, &mut self.tx, out, &mut self.pipeline);
        }
        if !self.tx[out].is_empty() {
            return false;
        }
        std::mem::swap(&mut self.rx, &mut self.tx[out]);
        true
    }

    /// Sends every partial tx batch and flushes every port.
    pub fn drain(&mut self) {
        for out in 0..self.tx.len() {
            if !self.tx[out].is_empty() {
                send(&mut self.ports, &mut self.tx, out, &mut self.pipeline);
            }
        }
        for port in &mut self.ports {
            port.flush();
        }
    }
}

impl<P: Port> Drop for Worker<P> {
    fn drop(&mut self) {
        // Frames still batched go out (or back to their pool): nothing leaks on shutdown.
        self.drain();
        self.cell
            .report(self.reader, ecmp_tables::snapshot::OFFLINE);
    }
}

/// Hands port `out` its batch; whatever it refuses is released and counted, never leaked.
fn send<P: Port>(ports: &mut [P], tx: &mut [Burst<P::Frame>], out: usize, pipeline: &mut Pipeline) {
    let batch = &mut tx[out];
    let bytes: u64 = batch
        .iter()
        .map(|f| crate::port::Frame::data(f).len() as u64)
        .sum();
    let before = batch.len();
    let sent = ports[out].tx_burst(batch);
    let c = pipeline.counters_mut();
    c.add(Counter::TxPackets, sent as u64);
    if sent == before {
        c.add(Counter::TxBytes, bytes);
    } else {
        let unsent: u64 = batch
            .iter()
            .map(|f| crate::port::Frame::data(f).len() as u64)
            .sum();
        c.add(Counter::TxBytes, bytes - unsent);
        for frame in batch.drain(..) {
            c.drop(crate::drop::DropReason::TxRefused);
            ports[out].release(frame);
        }
    }
}
