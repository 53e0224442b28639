//! One DPDK worker thread: pins itself, registers with the EAL as an lcore, builds its pipeline
//! (the flow cache then lives on its core's node), and polls its queues until stopped.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::time::Instant;

use ecmp_dataplane::capture::CaptureTap;
use ecmp_dataplane::counters::{SharedCounters, SharedHopPackets};
use ecmp_dataplane::pipeline::PipelineConfig;
use ecmp_dataplane::worker::Worker;
use ecmp_io::dpdk::{DpdkPort, Eal};
use ecmp_mem::Placement;
use ecmp_tables::snapshot::SnapshotCell;

use super::DpdkRunError;
use crate::afxdp::view::{Mailbox, SharedPortStats};
use crate::afxdp::{Polling, poll_until_stopped, publish_ports, start_failed};

/// What a worker thread needs.
pub(super) struct Job {
    pub eal: &'static Eal,
    /// Its queue of every port, by port id.
    pub ports: Vec<DpdkPort>,
    pub core: usize,
    pub pipeline: PipelineConfig,
    pub cell: Arc<SnapshotCell>,
    pub counters: Arc<SharedCounters>,
    pub port_stats: Vec<Arc<SharedPortStats>>,
    pub mailbox: Arc<Mailbox>,
    /// Where `ecmpctl capture` arms this worker.
    pub tap: Arc<CaptureTap>,
    /// Where its per-hop packet counts are read.
    pub hops: Arc<SharedHopPackets>,
    pub stop: Arc<AtomicBool>,
    /// The process-wide clock (shared with the control thread's idle timers).
    pub epoch: Instant,
}

/// The worker thread's body; reports start-up success (with where its flow cache lives) or
/// failure on `ready`.
pub(super) fn run(
    job: Job,
    ready: Sender<Result<Vec<Placement>, DpdkRunError>>,
) -> Result<(), DpdkRunError> {
    if !crate::affinity::pin_to(job.core) {
        tracing::warn!(
            core = job.core,
            "could not pin the worker to its core; it runs where the scheduler puts it"
        );
    }
    // Pinned first: the EAL records the thread's affinity when it registers it.
    let started = job
        .eal
        .register_thread()
        .map_err(DpdkRunError::Register)
        .and_then(|()| {
            Worker::new(
                job.ports,
                &job.pipeline,
                Arc::clone(&job.cell),
                job.counters,
            )
            .map_err(DpdkRunError::Pipeline)
        });
    let mut worker = match started {
        Ok(w) => w,
        Err(e) => return start_failed(&ready, e),
    };
    worker.set_capture_tap(Arc::clone(&job.tap));
    worker.set_hop_sink(Arc::clone(&job.hops));
    let _ = ready.send(Ok(worker.pipeline().flow_cache().memory().to_vec()));
    let polling = Polling {
        core: job.core,
        stop: &job.stop,
        mailbox: &job.mailbox,
        port_stats: &job.port_stats,
        epoch: job.epoch,
    };
    poll_until_stopped(&mut worker, &polling, DpdkPort::stats, |_| {});
    // SIGTERM: what is batched goes out (or back to its pool), then the ports are dropped,
    // letting the devices close.
    worker.drain();
    publish_ports(&mut worker, &job.port_stats, DpdkPort::stats);
    drop(worker);
    Ok(())
}
