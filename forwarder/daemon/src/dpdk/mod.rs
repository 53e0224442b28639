//! `ecmpfwd run` on DPDK ports (cargo feature `dpdk`): the forwarder over devices DPDK drives
//! (a NIC by PCI address, or a vdev: `net_pcap`, `net_null`, `net_ring`, `net_af_xdp`).
//!
//! Start-up, in order, each step failing with an error that names the config item and DPDK's
//! cause:
//! 1. every port must be `kind = "dpdk"`; the EAL is initialised once from `[dpdk]` (it pins
//!    the calling thread to its main lcore: the main thread then takes its own mask back, and
//!    keeps itself and the control threads off the workers' cores as the AF_XDP runtime does);
//! 2. one mbuf pool per worker, then every device opened with one rx and one tx queue per
//!    `queues`, queue q receiving into the pool of the worker that polls it, RSS keyed with
//!    `[instance] rss_key`, and the mbufs' headroom checked against the longest encapsulation
//!    ([`MAX_ENCAP_PUSH`]);
//! 3. the control plane over the config's MACs, MTUs and addresses (no kernel interface, so
//!    neighbours are the static ones: `[[neighbor]]` and `[[nexthop]] mac`);
//! 4. one thread per `[[worker]]`: pinned to its core, registered as a DPDK lcore (so its mbuf
//!    frees and allocations go through the pools' per-lcore caches), polling its queues;
//! 5. the same control thread, control socket, feed, metrics, reload, systemd notifications and
//!    stats as the AF_XDP runtime ([`crate::afxdp`]'s shared pieces).
//!
//! Frames are the received mbufs (no copy); frames a tx queue refuses are freed and counted
//! (`tx_refused`) by the worker. Received frames larger than one mbuf (2 KiB of data with
//! DPDK's default pool) arrive chained and are dropped by the port.
//!
//! Stopping: as the AF_XDP runtime (announcement grace, control thread, then workers drain and
//! drop their ports); then the devices are stopped and closed, and every pool must have all its
//! mbufs back: one still out is a leak, reported as an error. One driver is the exception:
//! net_af_xdp (DPDK 22.11) does not give back the mbufs of its fill ring at close (it fills the
//! ring from the pool at start and tops it up only when half empty), so a pool serving such
//! devices may keep at most what they took at start; the check is then a bound, not exact.

// Start-up errors carry DPDK's and the control plane's errors whole; they are returned once
// per run, never on the data path.
#![allow(clippy::result_large_err)]

mod error;
mod worker;

pub use error::DpdkRunError;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use ecmp_control::builder::{Builder, ConnectedResolver};
use ecmp_dataplane::action::MAX_ENCAP_PUSH;
use ecmp_dataplane::counters::{Counters, SharedCounters};
use ecmp_io::dpdk::{DeviceConfig, DpdkDevice, Eal, Mempool, PoolConfig};
use ecmp_port::BURST;
use ecmp_tables::snapshot::SnapshotCell;

use ecmp_proto::ctl::DeviceState;

use crate::afxdp::view::{self, DeviceReader, Mailbox, SharedPortStats, WorkerShared};
use crate::afxdp::{self, ControlExtras, ControlUpkeep, IdleTimers, PortL3};
use crate::config::{Config, PortKind};
use crate::setup::{self, pipeline_config};
use crate::stats;

/// Rx and tx descriptors asked for per queue (DPDK rounds them to what the device allows).
const DESCRIPTORS: u16 = 1024;
/// Mbufs each worker's pool keeps per lcore cache.
const POOL_CACHE: u32 = 256;

/// One DPDK port of the config.
struct DpdkPortSpec<'a> {
    name: &'a str,
    device: &'a str,
    queues: u16,
    line: usize,
}

/// The config's ports, all of which must be DPDK ports (step 1).
fn dpdk_ports(cfg: &Config) -> Result<Vec<DpdkPortSpec<'_>>, DpdkRunError> {
    cfg.ports
        .iter()
        .map(|p| match &p.kind {
            PortKind::Dpdk { device, queues } => Ok(DpdkPortSpec {
                name: &p.name,
                device,
                queues: *queues,
                line: p.line,
            }),
            other => Err(DpdkRunError::MixedPorts {
                origin: cfg.origin.clone(),
                line: p.line,
                port: p.name.clone(),
                kind: match other {
                    PortKind::Memory => "memory",
                    PortKind::Pcap { .. } => "pcap",
                    _ => "afxdp",
                },
            }),
        })
        .collect()
}

/// Mbufs a worker's pool needs: every rx and tx ring of its ports full, plus what its bursts
/// and batches hold and the lcore caches; rounded to 2^n - 1 (DPDK's most compact size).
const fn pool_mbufs(ports: usize) -> u32 {
    let rings = ports * 2 * DESCRIPTORS as usize;
    let in_hand = (ports + 1) * 2 * BURST + 2 * POOL_CACHE as usize;
    ((rings + in_hand).next_power_of_two() - 1) as u32
}

// For up to 8 ports a worker's pool holds every ring and burst of its ports, at DPDK's compact
// 2^n - 1 size.
const _: () = {
    let mut ports = 1;
    while ports <= 8 {
        let n = pool_mbufs(ports) as usize;
        assert!(n >= ports * 2 * DESCRIPTORS as usize + (ports + 1) * 2 * BURST);
        assert!((n + 1).is_power_of_two());
        ports += 1;
    }
};

/// Initialises the EAL from `[dpdk]` and restores the main thread's mask, which the EAL pins to
/// its main lcore (step 1).
fn init_eal(cfg: &Config) -> Result<&'static Eal, DpdkRunError> {
    let before = crate::affinity::allowed_cores();
    let args = cfg.dpdk.eal_args();
    let eal = Eal::init(&args).map_err(|source| DpdkRunError::Eal {
        origin: cfg.origin.clone(),
        args,
        source,
    })?;
    if let Some(cores) = before
        && !crate::affinity::restrict_to(&cores)
    {
        tracing::warn!("could not take the main thread off the EAL's main lcore");
    }
    Ok(eal)
}

/// Whether a device spec names DPDK's AF_XDP driver, whose fill ring keeps its mbufs at close.
fn is_af_xdp(device: &str) -> bool {
    device.starts_with("net_af_xdp")
}

/// Opens every port's device with one queue per `queues`, queue q receiving into the pool of
/// the worker that polls it (step 2). Also returns, per pool, the mbufs net_af_xdp devices took
/// from it at start (their fill rings; nothing polls yet, so the pool's count moves only by
/// what opening a device takes).
fn open_devices(
    cfg: &Config,
    eal: &Eal,
    ports: &[DpdkPortSpec<'_>],
    pools: &[Arc<Mempool>],
) -> Result<(Vec<DpdkDevice>, Vec<u32>), DpdkRunError> {
    let mut kept = vec![0u32; pools.len()];
    let config = DeviceConfig {
        rx_desc: DESCRIPTORS,
        tx_desc: DESCRIPTORS,
        rss_key: Some(cfg.instance.rss_key),
        min_headroom: MAX_ENCAP_PUSH,
        promiscuous: true,
    };
    let mut out = Vec::with_capacity(ports.len());
    for (pi, p) in ports.iter().enumerate() {
        let queue_pools: Vec<Arc<Mempool>> = (0..p.queues)
            .map(|q| {
                let wi = cfg
                    .workers
                    .iter()
                    .position(|w| w.ports.iter().any(|pq| pq.port == pi && pq.queue == q))
                    // A queue no worker polls still needs a pool to set it up.
                    .unwrap_or(0);
                Arc::clone(&pools[wi])
            })
            .collect();
        let before: Vec<u32> = pools.iter().map(|pool| pool.in_use()).collect();
        let dev = DpdkDevice::open(eal, p.device, &config, &queue_pools).map_err(|source| {
            DpdkRunError::Open {
                origin: cfg.origin.clone(),
                line: p.line,
                port: p.name.to_owned(),
                device: p.device.to_owned(),
                source,
            }
        })?;
        match dev.link() {
            Ok(link) => tracing::info!(
                "port {:?}: DPDK device {:?} (port id {}), {} queue(s), RSS {}, link {} {} Mb/s",
                p.name,
                p.device,
                dev.port_id(),
                dev.queues(),
                if dev.rss() { "keyed" } else { "off" },
                if link.up { "up" } else { "down" },
                link.speed_mbps
            ),
            Err(e) => tracing::warn!("port {:?}: {e}", p.name),
        }
        if is_af_xdp(p.device) {
            for ((k, pool), b) in kept.iter_mut().zip(pools).zip(before) {
                *k += pool.in_use().saturating_sub(b);
            }
        }
        out.push(dev);
    }
    Ok((out, kept))
}

/// The control plane's builder over the config's ports (step 3), with the static neighbours
/// loaded.
fn builder(cfg: &Config) -> Result<Builder<ConnectedResolver>, DpdkRunError> {
    let ports: Vec<PortL3> = cfg
        .ports
        .iter()
        .map(|p| PortL3 {
            // Validation requires a MAC on every port but AF_XDP ones.
            mac: p.mac.map_or([0; 6], |m| m.0),
            mtu: p.mtu,
            addrs: p
                .addresses
                .iter()
                .flatten()
                .map(|a| (a.addr, a.len))
                .collect(),
        })
        .collect();
    let mut builder = afxdp::builder_over(cfg, &ports)?;
    for (addr, mac) in afxdp::static_neighbours(cfg) {
        builder.resolver_mut().set_neighbor(addr, mac);
    }
    // The first snapshot must already carry the statics' MACs.
    let _ = builder.refresh_resolution();
    Ok(builder)
}

/// Runs the forwarder on DPDK ports until `stop`; returns the summed counters.
pub fn run(cfg: &Config, stop: Arc<AtomicBool>) -> Result<Counters, DpdkRunError> {
    setup::check_workers(cfg)?;
    let ports = dpdk_ports(cfg)?;
    let eal = init_eal(cfg)?;
    // Before any thread is spawned, so every non-worker thread inherits the mask.
    let worker_cores: Vec<usize> = cfg.workers.iter().map(|w| w.core).collect();
    match crate::affinity::keep_off_worker_cores(&worker_cores) {
        Some(cores) => {
            tracing::info!("control threads on cores {cores:?}, off the workers' {worker_cores:?}")
        }
        None => tracing::info!(
            "control threads share the workers' cores {worker_cores:?} (no other core to use)"
        ),
    }
    let pool_config = PoolConfig {
        mbufs: pool_mbufs(ports.len()),
        cache: POOL_CACHE,
        ..PoolConfig::default()
    };
    let pools = cfg
        .workers
        .iter()
        .map(|w| {
            Mempool::create(eal, &format!("worker{}", w.core), &pool_config)
                .map(Arc::new)
                .map_err(|source| DpdkRunError::Pool {
                    origin: cfg.origin.clone(),
                    line: w.line,
                    core: w.core,
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (devices, kept) = open_devices(cfg, eal, &ports, &pools)?;
    let builder = builder(cfg)?;
    let epoch = std::time::Instant::now();
    let cell = Arc::new(SnapshotCell::new(builder.snapshot(), cfg.workers.len()));

    let result = serve(cfg, eal, &devices, builder, &cell, epoch, &stop);
    // The workers have dropped their ports; closing the devices hands back the mbufs their
    // rings held, so every pool must now be whole.
    drop(devices);
    let totals = result?;
    let mut in_fill_rings = 0;
    for ((w, pool), &kept) in cfg.workers.iter().zip(&pools).zip(&kept) {
        let in_use = pool.in_use();
        if in_use > kept {
            return Err(DpdkRunError::MbufLeak {
                core: w.core,
                in_use,
                kept,
            });
        }
        in_fill_rings += in_use;
    }
    if in_fill_rings == 0 {
        tracing::info!(
            "every mbuf is back in its pool ({} pool(s) of {} mbufs)",
            pools.len(),
            pool_config.mbufs
        );
    } else {
        tracing::info!(
            "every mbuf is back in its pool ({} pool(s) of {} mbufs) but the {in_fill_rings} \
             net_af_xdp's fill rings held at close, at most the {} they took at start",
            pools.len(),
            pool_config.mbufs,
            kept.iter().sum::<u32>()
        );
    }
    Ok(totals)
}

/// The ports' devices, read for `ecmpctl stats` on the control thread. Holding the handles
/// keeps nothing open longer than the run: the control thread is joined before the devices
/// close.
#[derive(Debug)]
struct Devices(Vec<(String, DpdkDevice)>);

impl DeviceReader for Devices {
    fn read(&self) -> Vec<DeviceState> {
        self.0
            .iter()
            .map(|(port, dev)| {
                let mut state = DeviceState {
                    port: port.clone(),
                    device: dev.spec().to_owned(),
                    ..DeviceState::default()
                };
                let read = dev.link().and_then(|link| {
                    state.link_up = link.up;
                    state.speed_mbps = link.speed_mbps;
                    state.full_duplex = link.full_duplex;
                    let s = dev.stats()?;
                    state.ipackets = s.ipackets;
                    state.opackets = s.opackets;
                    state.imissed = s.imissed;
                    state.ierrors = s.ierrors;
                    state.oerrors = s.oerrors;
                    state.rx_nombuf = s.rx_nombuf;
                    state.xstats = dev.xstats()?;
                    Ok(())
                });
                if let Err(e) = read {
                    state.error = Some(e.to_string());
                }
                state
            })
            .collect()
    }
}

type WorkerHandle = thread::JoinHandle<Result<(), DpdkRunError>>;

/// Steps 4 and 5 and the stop: the workers, the control thread, and the wait for `stop`.
fn serve(
    cfg: &Config,
    eal: &'static Eal,
    devices: &[DpdkDevice],
    builder: Builder<ConnectedResolver>,
    cell: &Arc<SnapshotCell>,
    epoch: std::time::Instant,
    stop: &AtomicBool,
) -> Result<Counters, DpdkRunError> {
    let workers_stop = Arc::new(AtomicBool::new(false));
    let pcfg = pipeline_config(cfg);
    let mut view_workers = Vec::new();
    let mut handles: Vec<WorkerHandle> = Vec::new();
    let stop_workers = |handles: Vec<WorkerHandle>| {
        workers_stop.store(true, Ordering::Relaxed);
        let mut failure = None;
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = Some(e),
                Err(_) => failure = Some(DpdkRunError::WorkerPanicked),
            }
        }
        failure
    };
    for w in &cfg.workers {
        let mut ws = WorkerShared {
            counters: Arc::new(SharedCounters::default()),
            ports: cfg
                .ports
                .iter()
                .map(|_| Arc::new(SharedPortStats::default()))
                .collect(),
            mailbox: Arc::new(Mailbox::default()),
            cpu: Some(w.core),
            memory: Vec::new(),
            tap: Arc::default(),
            hops: Arc::default(),
            umem: None,
        };
        // The worker's queue of every port, taken here so that a missing one is named before
        // its thread starts.
        let mut ports = Vec::with_capacity(devices.len());
        for (pi, dev) in devices.iter().enumerate() {
            let queue = w.ports.iter().find(|q| q.port == pi).map_or(0, |q| q.queue);
            match dev.port(queue) {
                Some(p) => ports.push(p),
                None => {
                    let _ = stop_workers(handles);
                    return Err(DpdkRunError::NoQueue {
                        origin: cfg.origin.clone(),
                        line: w.line,
                        core: w.core,
                        port: cfg.ports[pi].name.clone(),
                        queue,
                    });
                }
            }
        }
        let job = worker::Job {
            eal,
            ports,
            core: w.core,
            pipeline: pcfg.clone(),
            cell: Arc::clone(cell),
            counters: Arc::clone(&ws.counters),
            port_stats: ws.ports.clone(),
            mailbox: Arc::clone(&ws.mailbox),
            tap: Arc::clone(&ws.tap),
            hops: Arc::clone(&ws.hops),
            stop: Arc::clone(&workers_stop),
            epoch,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = thread::Builder::new()
            .name(format!("ecmpfwd-w{}", w.core))
            .spawn(move || worker::run(job, ready_tx))
            .map_err(DpdkRunError::Spawn)?;
        handles.push(handle);
        // One worker at a time, so an error names the first worker that failed.
        let started = match ready_rx.recv_timeout(afxdp::WORKER_START) {
            Ok(Ok(memory)) => {
                ws.memory = memory;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(DpdkRunError::StartTimeout(afxdp::WORKER_START.as_secs())),
        };
        if let Err(e) = started {
            let _ = stop_workers(handles);
            return Err(DpdkRunError::WorkerStart {
                origin: cfg.origin.clone(),
                line: w.line,
                core: w.core,
                source: Box::new(e),
            });
        }
        view_workers.push(ws);
    }
    let shared: Vec<Arc<SharedCounters>> = view_workers
        .iter()
        .map(|w| Arc::clone(&w.counters))
        .collect();
    let notifier = afxdp::notifier();
    if let Err(e) = stats::log_memory(view::table_memory(&cell.load(), &view_workers)) {
        let _ = stop_workers(handles);
        return Err(DpdkRunError::Memory(e));
    }
    let upkeep = ControlUpkeep {
        inner: Box::new(IdleTimers::new(epoch)),
        watchdog: afxdp::watchdog(&shared),
    };
    let reload = Arc::new(AtomicBool::new(false));
    let sighup = match signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
    {
        Ok(id) => id,
        Err(e) => {
            let _ = stop_workers(handles);
            return Err(DpdkRunError::Signal(e));
        }
    };
    let started = afxdp::start_control(
        cfg,
        cfg.ports.iter().map(|p| p.name.clone()).collect(),
        cell,
        view_workers,
        builder,
        ControlExtras {
            upkeep,
            reload,
            epoch,
            devices: Some(Box::new(Devices(
                cfg.ports
                    .iter()
                    .map(|p| p.name.clone())
                    .zip(devices.iter().cloned())
                    .collect(),
            ))),
        },
    );
    let control = match started {
        Ok(c) => c,
        Err(e) => {
            signal_hook::low_level::unregister(sighup);
            let _ = stop_workers(handles);
            return Err(e.into());
        }
    };
    afxdp::supervise(cfg, cell, stop, notifier.as_ref(), &control, || {
        handles.iter().any(|h| h.is_finished())
    });
    // No publication after this; then the workers drain and drop their ports.
    let control_result = control.join();
    signal_hook::low_level::unregister(sighup);
    if let Some(e) = stop_workers(handles) {
        return Err(DpdkRunError::WorkerStopped(Box::new(e)));
    }
    control_result?;
    Ok(stats::sum(&shared))
}
