//! `ecmpfwd run` over pcap ports: one worker replays every input capture through the pipeline
//! and writes one output capture per egress port, then stops (or stops at SIGINT/SIGTERM). The
//! AF_XDP runtime is [`crate::afxdp`]; `main` picks one by the config's port kinds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ecmp_dataplane::counters::{Counters, SharedCounters};
use ecmp_dataplane::error::DataplaneError;
use ecmp_dataplane::pipeline::PipelineConfig;
use ecmp_dataplane::worker::Worker;
use ecmp_io::IoError;
use ecmp_io::pcap::PcapPort;
use ecmp_port::memory::FramePool;
use ecmp_tables::snapshot::SnapshotCell;

use crate::config::{Config, PortKind};
use crate::setup::{self, SetupError, pipeline_config};
use crate::stats;

/// Why a pcap replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The tables or the workers of the config are not usable.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A port of the config is not a pcap port.
    #[error("{origin}:{line}: port {port:?}: {why}")]
    PortKind {
        /// The config file.
        origin: String,
        /// The port's line.
        line: usize,
        /// The port's name.
        port: String,
        /// Why that kind cannot be replayed.
        why: &'static str,
    },
    /// More than one worker is configured.
    #[error("{origin}: pcap ports are read by one worker; configure a single [[worker]]")]
    OneWorker {
        /// The config file.
        origin: String,
    },
    /// A capture could not be opened, read or written.
    #[error(transparent)]
    Capture(#[from] IoError),
    /// Writing the output capture at the end failed.
    #[error("writing the output capture")]
    Finish(#[source] IoError),
    /// The worker could not be built.
    #[error(transparent)]
    Pipeline(#[from] DataplaneError),
    /// The worker thread could not be started.
    #[error("starting the worker thread")]
    Spawn(#[source] std::io::Error),
    /// The worker thread panicked.
    #[error("a worker thread panicked")]
    Panicked,
    /// `[memory] hugepages = "require"` and a big table is not on hugetlb pages.
    #[error(transparent)]
    Memory(ecmp_mem::MemError),
}

/// Frames per worker pool: enough for every rx burst, tx batch and in-flight ring.
const FRAMES_PER_WORKER: usize = 8192;

/// Runs the configured workers until `stop` is set or every pcap input is exhausted; returns the
/// summed counters.
pub fn run(cfg: &Config, stop: Arc<AtomicBool>) -> Result<Counters, ReplayError> {
    let tables = setup::build(cfg)?;
    setup::check_workers(cfg)?;
    for p in &cfg.ports {
        let why = match &p.kind {
            PortKind::Pcap { .. } => continue,
            PortKind::Memory => "memory ports only exist inside tests and `ecmpfwd bench`",
            PortKind::AfXdp { .. } => "AF_XDP ports cannot be mixed with pcap ports",
            PortKind::Dpdk { .. } if cfg!(feature = "dpdk") => {
                "DPDK ports cannot be mixed with pcap ports"
            }
            PortKind::Dpdk { .. } => {
                "DPDK ports need an ecmpfwd built with the cargo feature `dpdk` \
                 (cargo build --release -p ecmpfwd --features dpdk); this one was built without"
            }
        };
        return Err(ReplayError::PortKind {
            origin: cfg.origin.clone(),
            line: p.line,
            port: p.name.clone(),
            why,
        });
    }
    if cfg.workers.len() > 1 {
        return Err(ReplayError::OneWorker {
            origin: cfg.origin.clone(),
        });
    }

    let cell = Arc::new(SnapshotCell::new(tables.snapshot, cfg.workers.len()));
    let pcfg = pipeline_config(cfg);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::new();
    let mut shared = Vec::new();
    for w in &cfg.workers {
        let counters = Arc::new(SharedCounters::default());
        shared.push(Arc::clone(&counters));
        let core = cores.iter().copied().find(|c| c.id == w.core);
        let (cell, stop, pcfg) = (Arc::clone(&cell), Arc::clone(&stop), pcfg.clone());
        let ports: Vec<_> = cfg.ports.iter().map(|p| p.kind.clone()).collect();
        let name = format!("ecmpfwd-w{}", w.core);
        let h = thread::Builder::new()
            .name(name)
            .spawn(move || -> Result<(), ReplayError> {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                pcap_worker(&ports, &pcfg, cell, counters, &stop)
            })
            .map_err(ReplayError::Spawn)?;
        handles.push(h);
    }
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(ReplayError::Panicked),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(stats::sum(&shared))
}

/// A worker over pcap ports: the pool and ports are built on the worker's own thread.
fn pcap_worker(
    kinds: &[PortKind],
    pcfg: &PipelineConfig,
    cell: Arc<SnapshotCell>,
    counters: Arc<SharedCounters>,
    stop: &AtomicBool,
) -> Result<(), ReplayError> {
    let pool = FramePool::new(FRAMES_PER_WORKER);
    let mut ports = Vec::with_capacity(kinds.len());
    for k in kinds {
        let (input, output) = match k {
            PortKind::Pcap { input, output } => (input.as_deref(), output.as_deref()),
            _ => (None, None),
        };
        ports.push(PcapPort::open(pool.clone(), input, output)?);
    }
    let mut worker = Worker::new(ports, pcfg, cell, counters)?;
    stats::log_memory(stats::worker_memory(&worker)).map_err(ReplayError::Memory)?;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = start.elapsed().as_nanos() as u64;
        if worker.poll(now) == 0 && worker.ports_mut().iter().all(|p| p.rx_done()) {
            break;
        }
    }
    worker.drain();
    worker.poll(start.elapsed().as_nanos() as u64);
    for port in worker.into_ports() {
        port.finish().map_err(ReplayError::Finish)?;
    }
    // Give the stats reader a last consistent view.
    thread::sleep(Duration::from_millis(1));
    Ok(())
}
