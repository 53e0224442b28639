//! One AF_XDP worker thread: pins itself, builds its UMEM and one socket per port on its own
//! core (the memory is then local to it), registers the sockets with the XDP programs, and polls
//! until stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use ecmp_mem::Placement;
use std::time::Instant;

use ecmp_dataplane::capture::CaptureTap;
use ecmp_dataplane::counters::{Counter, SharedCounters, SharedHopPackets};
use ecmp_dataplane::pipeline::PipelineConfig;
use ecmp_dataplane::worker::Worker;
use ecmp_io::tsc;
use ecmp_io::xdp::{BindMode, Umem, UmemConfig, XdpProgram, XskConfig, XskPort};
use ecmp_port::{Port, PortStats};
use ecmp_tables::snapshot::SnapshotCell;

use super::view::{
    Answer, Mailbox, Query, SharedPortStats, SharedUmemStats, UmemReading, answer_flows,
};
use super::{AfXdpError, LivePort};

/// Ring sizes per socket: 1024 descriptors keep a 32-packet burst loop fed at line rate on veth
/// while bounding the UMEM (every port's fill ring is kept full).
const RING: u32 = 1024;
/// Published port counters are refreshed this often (ns).
const STATS_EVERY_NS: u64 = 1_000_000;

/// What a worker thread needs.
pub(super) struct Job {
    pub ports: Vec<LivePort>,
    /// Queue id per port.
    pub queues: Vec<u32>,
    pub programs: Vec<Arc<XdpProgram>>,
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
    /// Where it says where its UMEM's frames are.
    pub umem: Arc<SharedUmemStats>,
    pub stop: Arc<AtomicBool>,
    /// The process-wide clock (shared with the control thread's idle timers).
    pub epoch: Instant,
}

fn open(job: &Job) -> Result<(Umem, Vec<XskPort>), AfXdpError> {
    let ring = XskConfig {
        rx_size: RING,
        tx_size: RING,
        fill_size: RING,
        comp_size: RING,
        ..XskConfig::default()
    };
    // Per port: a full fill ring plus a full tx ring in flight; plus the bursts in hand.
    let frames = job.ports.len() as u32 * (ring.fill_size + ring.tx_size) + 1024;
    let umem = Umem::new(UmemConfig {
        frame_count: frames,
        hugepages: ecmp_mem::policy(),
    })
    .map_err(AfXdpError::Umem)?;
    let mut sockets = Vec::new();
    for ((p, &queue), prog) in job.ports.iter().zip(&job.queues).zip(&job.programs) {
        let mode = if p.zero_copy {
            BindMode::Auto
        } else {
            BindMode::Copy
        };
        let sock = XskPort::open(&umem, &p.ifname, queue, mode, &ring).map_err(|source| {
            AfXdpError::OpenSocket {
                port: p.name.clone(),
                queue,
                source,
            }
        })?;
        if p.zero_copy && !sock.zero_copy() {
            tracing::warn!(
                "port {:?}: {} cannot do zero-copy; using copy mode",
                p.name,
                p.ifname
            );
        }
        prog.register_socket(queue, std::os::fd::AsFd::as_fd(&sock))
            .map_err(|source| AfXdpError::Register {
                port: p.name.clone(),
                queue,
                source,
            })?;
        sockets.push(sock);
    }
    Ok((umem, sockets))
}

/// Empty polls in a row after which the worker offers its core to other runnable threads
/// (`sched_yield`) on each further empty poll. The kernel's share of AF_XDP forwarding (copy-mode
/// transmit, the veth peers' receive) can land in ksoftirqd on the worker's core; a thread that
/// never yields leaves it waiting for the scheduler tick, which showed as milliseconds of
/// latency at low load. At full load polls are never empty, so this costs nothing there.
const YIELD_AFTER_EMPTY_POLLS: u32 = 8;

/// Where the UMEM's frames are now: every frame not free is with the kernel or in the worker's
/// batches, unless one leaked (`outstanding - kernel_held - in_worker` is the leak).
fn umem_reading(umem: &Umem, worker: &mut Worker<XskPort>) -> UmemReading {
    let kernel_held: u64 = worker
        .ports_mut()
        .iter()
        .map(|p| u64::from(p.kernel_held()))
        .sum();
    UmemReading {
        frames: u64::from(umem.frame_count()),
        outstanding: umem.outstanding() as u64,
        kernel_held,
        in_worker: worker.frames_held() as u64,
    }
}

/// The worker thread's body; reports start-up success (with where its flow cache and UMEM
/// live) or failure on `ready`.
pub(super) fn run(
    job: Job,
    ready: Sender<Result<Vec<Placement>, AfXdpError>>,
) -> Result<(), AfXdpError> {
    if !crate::affinity::pin_to(job.core) {
        tracing::warn!(
            core = job.core,
            "could not pin the worker to its core; it runs where the scheduler puts it"
        );
    }
    let started = open(&job).and_then(|(umem, sockets)| {
        Worker::new(sockets, &job.pipeline, Arc::clone(&job.cell), job.counters)
            .map(|w| (umem, w))
            .map_err(AfXdpError::Pipeline)
    });
    let (umem, mut worker) = match started {
        Ok(x) => x,
        Err(e) => return start_failed(&ready, e),
    };
    worker.set_capture_tap(Arc::clone(&job.tap));
    worker.set_hop_sink(Arc::clone(&job.hops));
    let mut memory = worker.pipeline().flow_cache().memory().to_vec();
    memory.extend(umem.placement());
    let _ = ready.send(Ok(memory));
    let polling = Polling {
        core: job.core,
        stop: &job.stop,
        mailbox: &job.mailbox,
        port_stats: &job.port_stats,
        epoch: job.epoch,
    };
    poll_until_stopped(&mut worker, &polling, XskPort::stats, |worker| {
        job.umem.publish(umem_reading(&umem, worker));
    });
    // SIGTERM: what is batched goes out, completions are reaped, then the sockets close.
    worker.drain();
    for p in worker.ports_mut() {
        p.flush();
    }
    publish_ports(&mut worker, &job.port_stats, XskPort::stats);
    job.umem.publish(umem_reading(&umem, &mut worker));
    for (prog, &queue) in job.programs.iter().zip(&job.queues) {
        // The program is detached right after; a failure here only means it is gone already.
        let _ = prog.unregister_socket(queue);
    }
    drop(worker);
    drop(umem);
    Ok(())
}

/// A worker's start-up failure: the starter reports it; it comes back as this thread's result
/// only if the starter stopped waiting.
pub(crate) fn start_failed<T, E>(ready: &Sender<Result<T, E>>, e: E) -> Result<(), E> {
    match ready.send(Err(e)) {
        Ok(()) => Ok(()),
        Err(std::sync::mpsc::SendError(Err(e))) => Err(e),
        Err(std::sync::mpsc::SendError(Ok(_))) => Ok(()),
    }
}

/// What a worker's poll loop shares with the control side, whatever its ports.
pub(crate) struct Polling<'a> {
    /// The core it is pinned to (named in its log lines).
    pub core: usize,
    /// Set when it must stop.
    pub stop: &'a AtomicBool,
    /// Questions from the control socket and a reload's timeouts.
    pub mailbox: &'a Mailbox,
    /// Where its ports' counters are published, per port id.
    pub port_stats: &'a [Arc<SharedPortStats>],
    /// The process-wide clock (shared with the control thread's idle timers).
    pub epoch: Instant,
}

/// Polls `worker` until `polling.stop`: counts busy cycles, yields the core after empty polls,
/// answers the mailbox between polls, and every [`STATS_EVERY_NS`] publishes its ports'
/// counters (read with `stats`) and whatever `publish` adds (the backend's buffer accounting).
/// Shared by the AF_XDP and DPDK runtimes: only the ports differ.
pub(crate) fn poll_until_stopped<P: Port>(
    worker: &mut Worker<P>,
    polling: &Polling<'_>,
    stats: fn(&P) -> PortStats,
    mut publish: impl FnMut(&mut Worker<P>),
) {
    let start = polling.epoch;
    let mut last_stats = 0u64;
    let mut empty_polls = 0u32;
    while !polling.stop.load(Ordering::Relaxed) {
        let now = start.elapsed().as_nanos() as u64;
        // Busy cycles: whole polls that received or sent frames, their tx and kicks included
        // (a poll that only drains a partial batch after a burst pays a kick for it).
        let tsc0 = tsc::cycles();
        let sent0 = worker.pipeline().counters().get(Counter::TxPackets);
        let received = worker.poll(now);
        if received > 0 || worker.pipeline().counters().get(Counter::TxPackets) != sent0 {
            worker.add_busy_cycles(tsc::cycles().wrapping_sub(tsc0));
        }
        if received == 0 {
            empty_polls = empty_polls.saturating_add(1);
            if empty_polls >= YIELD_AFTER_EMPTY_POLLS {
                std::thread::yield_now();
            }
        } else {
            empty_polls = 0;
        }
        if polling.mailbox.pending() {
            if let Some(timeouts) = polling.mailbox.take_timeouts()
                && let Err(e) = worker.set_flow_timeouts(timeouts)
            {
                // The reload checked them as the cache does; kept only for a bug's sake.
                tracing::warn!(
                    "worker on core {}: flow cache timeouts not applied: {e}",
                    polling.core
                );
            }
            let now_ms = now / 1_000_000;
            let snap = Arc::clone(worker.snapshot());
            let pipeline = worker.pipeline();
            polling.mailbox.serve(|q| match q {
                Query::Flows { top } => answer_flows(pipeline.flow_cache(), now_ms, top),
                Query::Trace { ingress, frame } => {
                    Answer::Trace(pipeline.trace(&snap, ingress, &frame, now_ms))
                }
            });
        }
        if now.saturating_sub(last_stats) >= STATS_EVERY_NS {
            last_stats = now;
            publish_ports(worker, polling.port_stats, stats);
            publish(worker);
        }
    }
}

/// Publishes every port's counters.
pub(crate) fn publish_ports<P: Port>(
    worker: &mut Worker<P>,
    shared: &[Arc<SharedPortStats>],
    stats: fn(&P) -> PortStats,
) {
    for (p, s) in worker.ports_mut().iter().zip(shared) {
        s.publish(&stats(p));
    }
}
