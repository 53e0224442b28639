//! `ecmpfwd bench --io dpdk` (cargo feature `dpdk`): the bench's set-up and timed loop over two
//! DPDK devices instead of memory ports.
//!
//! Layout: port 0 is `--dpdk-rx` (default `net_null0,size=FRAME_LEN`), port 1 is `--dpdk-tx`
//! (default `net_null1,no-rx=1`), each with one rx and one tx queue receiving into one mempool.
//! The worker is the daemon's [`Worker`] over [`ReplayPort`]s, on the calling thread, which the
//! EAL makes its main lcore (`-l CORE`), so mbuf frees and allocations go through the pool's
//! lcore cache as a daemon worker's do.
//!
//! What one packet costs here, and why it matches the memory bench's model: the rx burst from
//! the device hands out a real mbuf from the real pool (net_null allocates it in bulk and sets its
//! length: the DPDK I/O cost a NIC's rx path has, minus the DMA); the bench then writes the
//! prepared frame of the next flow into it and sets its length, the same copy-in the memory bench
//! charges in place of the NIC's DMA (net_null's own frames are never-written buffers, which the
//! pipeline would drop as unknown ethertypes); then the pipeline runs and the tx burst goes to
//! the device, which frees the mbufs (net_null) or sends them (a NIC). Port 1's rx queue is
//! polled every loop and is empty (`no-rx=1`), as an idle NIC queue is. net_ring with a refill
//! thread was not used: the refill would run on a second core and add a ring hand-off per packet
//! that neither a NIC nor the memory bench has.
//!
//! Invariant checked at the end: with the worker and the devices gone, every mbuf is back in the
//! pool, or the run fails with [`BenchError::MbufLeak`] (the daemon's DPDK runtime checks the
//! same at exit).

use std::sync::Arc;
use std::time::Instant;

use ecmp_dataplane::action::MAX_ENCAP_PUSH;
use ecmp_dataplane::counters::{Counter, SharedCounters};
use ecmp_dataplane::worker::Worker;
use ecmp_io::dpdk::{
    DeviceConfig, DeviceStats, DpdkDevice, DpdkFrame, DpdkPort, Eal, Mempool, PoolConfig,
};
use ecmp_port::{Burst, Frame, Port};
use ecmp_tables::snapshot::SnapshotCell;

use super::{
    BenchError, BenchOptions, BenchReport, BenchSetup, DpdkBenchReport, DpdkDeviceCounters,
};
use crate::stats;

/// Mbufs in the bench's pool: net_null holds none between bursts (it allocates at rx and frees
/// at tx), so a burst in hand, a tx batch per port and the lcore cache are what is ever out; a
/// NIC's rx and tx rings ([`DESCRIPTORS`] each per device) are covered too. 2^n - 1, DPDK's
/// compact size.
const POOL_MBUFS: u32 = 8191;
/// Mbufs the pool keeps in the lcore cache of the bench thread.
const POOL_CACHE: u32 = 256;
/// Rx and tx descriptors asked for per queue (what the daemon's runtime asks for).
const DESCRIPTORS: u16 = 1024;
const _: () = assert!(
    POOL_MBUFS as usize
        >= 2 * 2 * DESCRIPTORS as usize + 3 * ecmp_port::BURST + POOL_CACHE as usize
);

/// The frames port 0 writes into what it receives: one per flow, back to back, cycled.
struct Replay {
    frames: Vec<u8>,
    frame_len: usize,
    /// Byte offset of the next frame in `frames`.
    next: usize,
    /// Received mbufs whose tailroom could not take the frame.
    short: u64,
}

/// A DPDK port; port 0's received mbufs are overwritten with the next prepared frames (the
/// module doc says why).
pub struct ReplayPort {
    port: DpdkPort,
    replay: Option<Replay>,
}

impl ReplayPort {
    /// The tailroom check and the copy, for the frames `out[from..]` just received.
    #[inline]
    fn fill(r: &mut Replay, out: &mut [DpdkFrame]) {
        for f in out {
            let src = &r.frames[r.next..r.next + r.frame_len];
            r.next += r.frame_len;
            if r.next == r.frames.len() {
                r.next = 0;
            }
            let len = f.data().len();
            let fits = if len >= src.len() {
                f.truncate(src.len());
                true
            } else {
                f.append(src.len() - len)
            };
            if fits {
                f.data_mut().copy_from_slice(src);
            } else {
                r.short += 1;
            }
        }
    }
}

impl Port for ReplayPort {
    type Frame = DpdkFrame;

    #[inline]
    fn rx_burst(&mut self, out: &mut Burst<DpdkFrame>) -> usize {
        let from = out.len();
        let n = self.port.rx_burst(out);
        if let Some(r) = &mut self.replay {
            Self::fill(r, &mut out[from..]);
        }
        n
    }

    #[inline]
    fn tx_burst(&mut self, frames: &mut Burst<DpdkFrame>) -> usize {
        self.port.tx_burst(frames)
    }

    #[inline]
    fn release(&mut self, frame: DpdkFrame) {
        self.port.release(frame);
    }

    #[inline]
    fn flush(&mut self) {
        self.port.flush();
    }
}

fn dpdk_err(what: impl Into<String>) -> impl FnOnce(ecmp_io::dpdk::DpdkError) -> BenchError {
    let what = what.into();
    move |source| BenchError::Dpdk { what, source }
}

/// The EAL arguments of a run on `core`: the bench's own first, then `--eal`'s.
fn eal_args(opts: &BenchOptions, core: Option<usize>) -> Vec<String> {
    let mut args = vec![
        "-l".to_owned(),
        core.unwrap_or(0).to_string(),
        "--file-prefix".to_owned(),
        format!("ecmpfwd-bench-{}", std::process::id()),
    ];
    args.extend(opts.eal.split_whitespace().map(str::to_owned));
    args
}

fn delta(spec: &str, before: DeviceStats, after: DeviceStats) -> DpdkDeviceCounters {
    DpdkDeviceCounters {
        device: spec.to_owned(),
        ipackets: after.ipackets - before.ipackets,
        opackets: after.opackets - before.opackets,
        imissed: after.imissed - before.imissed,
        ierrors: after.ierrors - before.ierrors,
        oerrors: after.oerrors - before.oerrors,
        rx_nombuf: after.rx_nombuf - before.rx_nombuf,
    }
}

/// Runs the bench over DPDK devices on the calling thread (pinned to `core` by the caller, if
/// given); returns the report (no floor yet) and the worker's flow-cache capacity.
pub fn run(
    opts: &BenchOptions,
    setup: BenchSetup,
    core: Option<usize>,
) -> Result<(BenchReport, usize), BenchError> {
    let args = eal_args(opts, core);
    let before_mask = crate::affinity::allowed_cores();
    let eal = Eal::init(&args).map_err(dpdk_err("initialising the EAL"))?;
    // The EAL pins its main thread to `-l`'s core: the caller's own pinning (or none) stands.
    if core.is_none()
        && let Some(cores) = before_mask
    {
        crate::affinity::restrict_to(&cores);
    }
    let pool_config = PoolConfig {
        mbufs: POOL_MBUFS,
        cache: POOL_CACHE,
        ..PoolConfig::default()
    };
    let pool = Arc::new(
        Mempool::create(eal, "bench", &pool_config).map_err(dpdk_err("creating the mbuf pool"))?,
    );
    let frame_len = setup.frame_len;
    let rx_spec = opts
        .dpdk_rx
        .clone()
        .unwrap_or_else(|| format!("net_null0,size={frame_len}"));
    let tx_spec = opts.dpdk_tx.clone();
    let config = DeviceConfig {
        rx_desc: DESCRIPTORS,
        tx_desc: DESCRIPTORS,
        rss_key: None,
        min_headroom: MAX_ENCAP_PUSH,
        promiscuous: true,
    };
    let open = |spec: &str| {
        DpdkDevice::open(eal, spec, &config, std::slice::from_ref(&pool))
            .map_err(dpdk_err(format!("opening {spec:?}")))
    };
    let rx_dev = open(&rx_spec)?;
    let tx_dev = open(&tx_spec)?;
    let port = |dev: &DpdkDevice| {
        dev.port(0)
            .ok_or(BenchError::DpdkUnsupported("a device without queue 0"))
    };
    let ports = vec![
        ReplayPort {
            port: port(&rx_dev)?,
            replay: Some(Replay {
                frames: setup.frames,
                frame_len,
                next: 0,
                short: 0,
            }),
        },
        ReplayPort {
            port: port(&tx_dev)?,
            replay: None,
        },
    ];
    let cell = Arc::new(SnapshotCell::new(setup.snapshot, 1));
    let mut w = Worker::new(
        ports,
        &setup.pipeline,
        cell,
        Arc::new(SharedCounters::default()),
    )?;
    let cache_capacity = w.pipeline().flow_cache().capacity();
    let start = Instant::now();
    let received = |w: &Worker<ReplayPort>| w.pipeline().counters().get(Counter::RxPackets);
    let run = |w: &mut Worker<ReplayPort>, packets: u64| {
        let target = received(w) + packets;
        while received(w) < target {
            w.poll(start.elapsed().as_nanos() as u64);
        }
    };

    run(&mut w, opts.flows as u64);
    // The warm-up's last batch goes out now, so that what is sent while timed is what was
    // received while timed.
    w.drain();
    let stats = |dev: &DpdkDevice| {
        dev.stats()
            .map_err(dpdk_err(format!("reading {:?}'s counters", dev.spec())))
    };
    let (rx0, tx0) = (stats(&rx_dev)?, stats(&tx_dev)?);
    let before = w.pipeline().counters().clone();
    let t0 = Instant::now();
    run(&mut w, opts.packets);
    w.drain();
    let seconds = t0.elapsed().as_secs_f64();
    let after = w.pipeline().counters().clone();
    let devices = vec![
        delta(&rx_spec, rx0, stats(&rx_dev)?),
        delta(&tx_spec, tx0, stats(&tx_dev)?),
    ];
    let d = |c: Counter| after.get(c) - before.get(c);
    let packets = d(Counter::RxPackets);
    let memory = stats::worker_memory(&w);
    stats::log_memory(memory.clone())?;
    let rx_short = w.ports_mut()[0].replay.as_ref().map_or(0, |r| r.short);
    // Ports, then devices: closing a device hands back what its rings hold.
    drop(w);
    drop(rx_dev);
    drop(tx_dev);
    let in_use = pool.in_use();
    if in_use != 0 {
        return Err(BenchError::MbufLeak {
            in_use,
            mbufs: POOL_MBUFS,
        });
    }
    let report = BenchReport {
        options: opts.clone(),
        packets,
        seconds,
        mpps: packets as f64 / seconds / 1e6,
        ns_per_packet: seconds * 1e9 / packets as f64,
        tx_packets: d(Counter::TxPackets),
        drops: after.total_drops() - before.total_drops(),
        cache_hits: d(Counter::CacheHits),
        cache_misses: d(Counter::CacheMisses),
        memory: memory
            .into_iter()
            .map(|(wi, t)| stats::table_backing(wi, t))
            .collect(),
        stages: Vec::new(),
        dpdk: Some(DpdkBenchReport {
            eal_args: args,
            devices,
            pool_mbufs: POOL_MBUFS,
            pool_in_use_at_end: in_use,
            rx_short,
        }),
        floor: None,
        workers: None,
    };
    Ok((report, cache_capacity))
}
