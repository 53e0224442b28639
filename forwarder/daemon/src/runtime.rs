//! `ecmpfwd run`: one pinned worker thread per `[[worker]]`, each polling its own ports, until
//! SIGINT/SIGTERM (or, for pcap replay, until every input capture has been forwarded). AF_XDP
//! configs run in [`crate::live`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ecmp_dataplane::counters::{Counters, SharedCounters};
use ecmp_dataplane::flowcache::FlowCacheConfig;
use ecmp_dataplane::pipeline::PipelineConfig;
use ecmp_dataplane::worker::Worker;
use ecmp_io::pcap::PcapPort;
use ecmp_port::memory::FramePool;
use ecmp_tables::snapshot::SnapshotCell;

use crate::config::{Config, PortKind};
use crate::setup;
use crate::stats;

/// Frames per worker pool: enough for every rx burst, tx batch and in-flight ring.
const FRAMES_PER_WORKER: usize = 8192;

/// The flow-cache settings of `cfg` in the data path's terms.
pub fn pipeline_config(cfg: &Config) -> PipelineConfig {
    let fc = &cfg.flow_cache;
    PipelineConfig {
        seed: cfg.instance.seed,
        rss_key: cfg.instance.rss_key,
        flow_cache: FlowCacheConfig {
            capacity: fc.capacity,
            idle_timeout_ms: fc.idle_timeout.as_millis() as u64,
            embryonic_timeout_ms: fc.embryonic_timeout.as_millis() as u64,
            fin_timeout_ms: fc.fin_timeout.as_millis() as u64,
        },
    }
}

/// Runs the configured workers until `stop` is set or every pcap input is exhausted; returns the
/// summed counters.
pub fn run(cfg: &Config, stop: Arc<AtomicBool>) -> Result<Counters> {
    if cfg
        .ports
        .iter()
        .any(|p| matches!(p.kind, PortKind::AfXdp { .. }))
    {
        return crate::live::run(cfg, stop);
    }
    let tables = setup::build(cfg)?;
    if cfg.workers.is_empty() {
        bail!("{}: no [[worker]] configured", cfg.origin);
    }
    for w in &cfg.workers {
        // A worker forwards to any port, so it needs a queue on each (l3fwd's layout).
        for (pi, p) in cfg.ports.iter().enumerate() {
            if !w.ports.iter().any(|q| q.port == pi) {
                bail!(
                    "{}:{}: worker on core {} does not serve port {:?}; every worker must serve \
                     every port it may forward to",
                    cfg.origin,
                    w.line,
                    w.core,
                    p.name
                );
            }
        }
    }
    for p in &cfg.ports {
        match &p.kind {
            PortKind::Pcap { .. } => {}
            PortKind::Memory => bail!(
                "{}:{}: port {:?}: memory ports only exist inside tests and `ecmpfwd bench`",
                cfg.origin,
                p.line,
                p.name
            ),
            // Sent to crate::live above; kept as an error rather than a panic.
            PortKind::AfXdp { .. } => bail!(
                "{}:{}: port {:?}: AF_XDP ports cannot be mixed with pcap ports",
                cfg.origin,
                p.line,
                p.name
            ),
        }
    }
    if cfg.workers.len() > 1 {
        bail!(
            "{}: pcap ports are read by one worker; configure a single [[worker]]",
            cfg.origin
        );
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
            .spawn(move || -> Result<()> {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                pcap_worker(&ports, &pcfg, cell, counters, &stop)
            })?;
        handles.push(h);
    }
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(anyhow::anyhow!("a worker thread panicked")),
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
) -> Result<()> {
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
        port.finish().context("writing the output capture")?;
    }
    // Give the stats reader a last consistent view.
    thread::sleep(Duration::from_millis(1));
    Ok(())
}
