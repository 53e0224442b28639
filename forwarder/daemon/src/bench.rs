//! `ecmpfwd bench`: the whole pipeline on synthetic traffic over in-memory ports, in-process.
//!
//! It runs on the memory rig ([`crate::rig`]) with counting ports, polled on the wall clock:
//! port 0 replays a prepared list of frames (one per flow, in random order, cycled); port 1
//! counts and recycles what is sent. The list is replayed once as warm-up (every flow inserted in
//! the flow cache, tables and caches warm), then `packets` frames are timed. What is measured is
//! rx copy-in (as a NIC's DMA would write the frame), parse, hash, flow cache, LPM, bucket pick,
//! rewrite/encap and tx hand-off: everything but the wire.
//!
//! With `--stages` ([`run_with_stages`]), each stage is then also timed alone on the same set-up
//! ([`stages`]), and the report lists the stages beside the whole pipeline.
//!
//! The set-up ([`BenchSetup`]: tables and frames) and the timed loop ([`BenchWorker`]) are public
//! so the criterion benches in `benches/` measure exactly what this command measures. Everything
//! set up is a pure function of the options: the same options and seed give the same tables and
//! the same frames in the same order. Counts that depend on the clock (which entry a full flow
//! cache bucket evicts, when a partial tx batch is drained) can still differ slightly run to run.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use ecmp_dataplane::counters::{Counter, Counters};
use ecmp_dataplane::drop::DropReason;
use ecmp_dataplane::error::DataplaneError;
use ecmp_dataplane::flowcache::FlowCacheConfig;
use ecmp_dataplane::pipeline::PipelineConfig;
use ecmp_dataplane::worker::Worker;
use ecmp_mem::{HugePages, MemError, TableMemory};
use ecmp_port::PortError;
use ecmp_port::memory::{MemoryPort, TxMode};
use ecmp_proto::ctl::TableBacking;
use ecmp_tables::TableError;
use ecmp_tables::group::{GroupMode, ResilientGroup};
use ecmp_tables::nexthop::{Action, Encap, EncapKind, NextHop, PortInfo};
use ecmp_tables::snapshot::{Snapshot, SnapshotCell};
use ecmp_tables::{Fib4, Fib6};
use serde::Serialize;

use ecmp_pktgen::traffic::Rng;
use ecmp_testkit::frames::{FrameError, FrameSpec};

use crate::rig::{INGRESS, Rig, RigError, RigOptions};
use crate::stats;

pub mod stages;

use stages::{Stage, StageReport};

/// Why a bench could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// One of flows, routes, group size or groups is zero.
    #[error("flows, routes, group size and groups must all be at least 1")]
    ZeroSize,
    /// A flow's frame could not be built.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// `--hugepages require` and the hugetlb pool cannot back the tables.
    #[error(transparent)]
    Memory(#[from] MemError),
    /// `--core` names a core this machine does not have.
    #[error("core {0} does not exist")]
    NoSuchCore(usize),
    /// A table refused the generated groups or routes (e.g. buckets not a power of two).
    #[error("tables: {0}")]
    Table(#[from] TableError),
    /// The memory ports refused the frames (e.g. a frame longer than a pool buffer).
    #[error("ports: {0}")]
    Port(#[from] PortError),
    /// The worker could not be built (e.g. a flow cache capacity out of range).
    #[error("worker: {0}")]
    Dataplane(#[from] DataplaneError),
    /// The rig failed otherwise (its port and worker errors are [`Self::Port`] and
    /// [`Self::Dataplane`]).
    #[error(transparent)]
    Rig(RigError),
    /// A frame of the set-up would not be forwarded, so a stage could not be given its inputs
    /// (e.g. a frame length that does not parse).
    #[error("frame {index} of the set-up would be dropped: {}", reason.name())]
    Unforwardable {
        /// The frame's position in replay order.
        index: usize,
        /// Why the pipeline would drop it.
        reason: DropReason,
    },
}

impl From<RigError> for BenchError {
    fn from(e: RigError) -> Self {
        match e {
            RigError::Port(e) => Self::Port(e),
            RigError::Dataplane(e) => Self::Dataplane(e),
            other => Self::Rig(other),
        }
    }
}

/// The action every next hop of the bench applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchAction {
    /// MAC rewrite and TTL decrement.
    Rewrite,
    /// IPv4-in-IPv4.
    Ipip,
    /// GRE with a key.
    Gre,
    /// VXLAN.
    Vxlan,
    /// GUE.
    Gue,
    /// MPLS over UDP.
    MplsUdp,
}

/// The group mode of the bench's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchMode {
    /// Manual.
    Manual,
    /// Auto-recovery.
    AutoRecovery,
    /// Maglev.
    Maglev,
}

/// `--hugepages`: how the bench's big tables are backed (`[memory] hugepages` of the daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchHugePages {
    /// The hugetlb pool if it has room, else transparent huge pages.
    Auto,
    /// The hugetlb pool or an error.
    Require,
    /// Small pages only.
    Off,
}

impl From<BenchHugePages> for HugePages {
    fn from(h: BenchHugePages) -> Self {
        match h {
            BenchHugePages::Auto => HugePages::Auto,
            BenchHugePages::Require => HugePages::Require,
            BenchHugePages::Off => HugePages::Off,
        }
    }
}

/// What to run.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct BenchOptions {
    /// Distinct flows (5-tuples).
    #[arg(long, default_value_t = 1_000_000)]
    pub flows: usize,
    /// IPv4 routes in the FIB (random prefixes /16../32, most /24).
    #[arg(long, default_value_t = 100_000)]
    pub routes: usize,
    /// Next hops per group.
    #[arg(long, default_value_t = 16)]
    pub group_size: usize,
    /// Groups the routes are spread over.
    #[arg(long, default_value_t = 64)]
    pub groups: usize,
    /// Buckets per group (power of two).
    #[arg(long, default_value_t = 1024)]
    pub buckets: u32,
    /// Group mode.
    #[arg(long, value_enum, default_value_t = BenchMode::AutoRecovery)]
    pub mode: BenchMode,
    /// Timed packets (after one warm-up pass over every flow).
    #[arg(long, default_value_t = 20_000_000)]
    pub packets: u64,
    /// Frame length without FCS (60 = a 64-byte frame on the wire).
    #[arg(long, default_value_t = 60)]
    pub frame_len: usize,
    /// What next hops do to packets.
    #[arg(long, value_enum, default_value_t = BenchAction::Rewrite)]
    pub action: BenchAction,
    /// Flow cache capacity (default: the next power of two >= 2 x flows, at least 1024).
    #[arg(long)]
    pub cache_capacity: Option<usize>,
    /// Pin the bench thread to this core.
    #[arg(long)]
    pub core: Option<usize>,
    /// How the flow cache and FIB tables are backed (set for the whole process).
    #[arg(long, value_enum, default_value_t = BenchHugePages::Auto)]
    pub hugepages: BenchHugePages,
    /// PRNG seed for routes and flows.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The options the run used.
    pub options: BenchOptions,
    /// Packets timed.
    pub packets: u64,
    /// Wall time of the timed part, seconds.
    pub seconds: f64,
    /// Millions of packets per second.
    pub mpps: f64,
    /// Nanoseconds per packet.
    pub ns_per_packet: f64,
    /// Frames sent (should equal packets).
    pub tx_packets: u64,
    /// Frames dropped (any reason) during the timed part.
    pub drops: u64,
    /// Flow-cache hits during the timed part.
    pub cache_hits: u64,
    /// Flow-cache misses during the timed part.
    pub cache_misses: u64,
    /// The big tables (FIBs, then the flow cache, worker 0) and how the kernel backed them at
    /// the end of the timed part.
    pub memory: Vec<TableBacking>,
    /// With `--stages`: each stage timed alone, then the whole pipeline (this run); left out of
    /// the JSON when empty, so the report reads as before without `--stages`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageReport>,
}

/// Frames in the memory ports' pool: enough for a burst in flight on each of the two ports and
/// the tx batch, with room to spare.
const POOL_FRAMES: usize = 4096;
/// The MAC of port 0, which the replayed frames are addressed to.
const INGRESS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The MAC of port 1, which every next hop sends through.
const EGRESS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn encap_for(action: BenchAction, hop_addr: Ipv4Addr) -> Action {
    let kind = match action {
        BenchAction::Rewrite => return Action::Rewrite,
        BenchAction::Ipip => EncapKind::IpIp,
        BenchAction::Gre => EncapKind::Gre { key: Some(42) },
        BenchAction::Vxlan => EncapKind::Vxlan {
            vni: 4242,
            inner_dst_mac: None,
            port: 4789,
        },
        BenchAction::Gue => EncapKind::Gue { port: 6080 },
        BenchAction::MplsUdp => EncapKind::MplsUdp {
            label: 1000,
            port: 6635,
        },
    };
    Action::Encap(Encap {
        kind,
        src: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
        dst: IpAddr::V4(hop_addr),
    })
}

/// `n` distinct random IPv4 route prefixes `(address in host order, length)`: ~70% /24, 15%
/// /16../23, 15% /25../32, host bits clear, none in 0/8, 127/8, 169.254/16 or multicast.
pub fn random_routes(rng: &mut Rng, n: usize) -> Vec<(u32, u8)> {
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = rng.below(100);
        let len = if r < 70 {
            24
        } else if r < 85 {
            16 + rng.below(8) as u8
        } else {
            25 + rng.below(8) as u8
        };
        // Keep clear of 0/8, 127/8, link-local and multicast so every destination is a plain
        // unicast one that the input checks admit (no route here is shorter than /16).
        let addr = (1 + rng.below(222) as u32) << 24 | (rng.next_u64() as u32 & 0x00FF_FFFF);
        let addr = addr & (u32::MAX << (32 - u32::from(len)));
        if addr >> 24 != 127 && addr >> 16 != 0xA9FE && seen.insert((addr, len)) {
            out.push((addr, len));
        }
    }
    out
}

/// A random address inside the route `(addr, len)`.
pub fn address_in(rng: &mut Rng, (addr, len): (u32, u8)) -> u32 {
    let host = if len == 32 {
        0
    } else {
        rng.next_u64() as u32 & (u32::MAX >> len)
    };
    addr | host
}

/// Everything a bench run needs before the clock starts: the tables and one frame per flow.
pub struct BenchSetup {
    /// Hop 0 and group 0 are the unset entries (rule 8); groups `1..=groups` each hold
    /// `group_size` hops, all on port 1; routes are spread round-robin over the groups.
    pub snapshot: Snapshot,
    /// The IPv4 routes installed in `snapshot.fib4`, in insertion order.
    pub routes: Vec<(u32, u8)>,
    /// The pipeline configuration (seed, RSS key, flow cache sized for the flows).
    pub pipeline: PipelineConfig,
    /// Frames back to back, `frame_len` bytes each, in replay order: one per flow.
    frames: Vec<u8>,
    frame_len: usize,
}

impl BenchSetup {
    /// Builds the tables and the frames `opts` describes (`packets`, `core` are not used here).
    pub fn new(opts: &BenchOptions) -> Result<Self, BenchError> {
        if opts.flows == 0 || opts.routes == 0 || opts.group_size == 0 || opts.groups == 0 {
            return Err(BenchError::ZeroSize);
        }
        let mut rng = Rng::new(opts.seed);

        let mut hops = vec![NextHop::UNSET];
        let mut groups = vec![Arc::new(
            ResilientGroup::new(1, GroupMode::Manual, 0)?.table(),
        )];
        let mode = match opts.mode {
            BenchMode::Manual => GroupMode::Manual,
            BenchMode::AutoRecovery => GroupMode::AutoRecovery,
            BenchMode::Maglev => GroupMode::Maglev,
        };
        for _ in 0..opts.groups {
            let mut g = ResilientGroup::new(opts.buckets, mode, opts.seed)?;
            for _ in 0..opts.group_size {
                let id = hops.len() as u32;
                let addr = Ipv4Addr::from(0xC612_0000 | id); // 198.18.x.y
                hops.push(NextHop {
                    id,
                    addr: IpAddr::V4(addr),
                    port: 1,
                    mac: [0x02, 0xbe, 0, 0, (id >> 8) as u8, id as u8],
                    weight: 1,
                    action: encap_for(opts.action, addr),
                });
                g.add_member(id, 1)?;
            }
            g.clear();
            groups.push(Arc::new(g.table()));
        }

        let routes = random_routes(&mut rng, opts.routes);
        let mut fib4 = Fib4::new(opts.routes / 4 + 1024);
        for (i, &(addr, len)) in routes.iter().enumerate() {
            fib4.insert(Ipv4Addr::from(addr), len, (i % opts.groups) as u32 + 1)?;
        }
        let snapshot = Snapshot {
            generation: 0,
            fib4: Arc::new(fib4),
            fib6: Arc::new(Fib6::new()),
            groups: groups.into(),
            hops,
            ports: vec![
                PortInfo {
                    mac: INGRESS_MAC,
                    mtu: 1500,
                },
                PortInfo {
                    mac: EGRESS_MAC,
                    mtu: 1500,
                },
            ],
        };

        // One frame per flow, destinations inside random routes, in random order.
        let mut spec = FrameSpec::udp(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            0,
            0,
            opts.frame_len,
        );
        spec.dst_mac = INGRESS_MAC;
        // Every frame has the same headers, so the same length (frame_len or the headers).
        let frame_len = spec.build()?.len();
        let mut frames = vec![0u8; opts.flows * frame_len];
        for buf in frames.chunks_exact_mut(frame_len) {
            let route = routes[rng.below(routes.len() as u64) as usize];
            let mut s = spec.clone();
            s.dst = IpAddr::V4(Ipv4Addr::from(address_in(&mut rng, route)));
            s.src = IpAddr::V4(Ipv4Addr::from(
                0xC612_0000 | (rng.next_u64() as u32 & 0x1_FFFF),
            ));
            s.src_port = 1024 + rng.below(64_000) as u16;
            s.dst_port = [53, 80, 443, 8080][rng.below(4) as usize];
            buf.copy_from_slice(&s.build()?);
        }

        let capacity = opts
            .cache_capacity
            .unwrap_or_else(|| (opts.flows * 2).next_power_of_two().max(1024));
        let pipeline = PipelineConfig {
            seed: opts.seed ^ 0x5eed,
            rss_key: ecmp_dataplane::hash::DEFAULT_RSS_KEY,
            flow_cache: FlowCacheConfig {
                capacity,
                ..FlowCacheConfig::default()
            },
        };
        Ok(Self {
            snapshot,
            routes,
            pipeline,
            frames,
            frame_len,
        })
    }

    /// The frames, one per flow, in replay order.
    pub fn frames(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.frames.chunks_exact(self.frame_len)
    }

    /// A worker over two memory ports: port 0 replays the frames forever, port 1 counts and
    /// recycles what is sent. Consumes the set-up so the frames are not held twice (the port
    /// keeps its own copy, as a NIC ring would be filled from outside).
    pub fn into_worker(self) -> Result<BenchWorker, BenchError> {
        let mut rig = rig(self.snapshot, &self.pipeline)?;
        rig.replay(INGRESS, self.frames.chunks_exact(self.frame_len))?;
        drop(self.frames);
        Ok(BenchWorker::new(rig))
    }

    /// [`Self::into_worker`] keeping the set-up (the frames are then held twice), for a run that
    /// measures more on the same set-up afterwards.
    pub fn worker(&self) -> Result<BenchWorker, BenchError> {
        let mut rig = rig(self.snapshot.clone(), &self.pipeline)?;
        rig.replay(INGRESS, self.frames())?;
        Ok(BenchWorker::new(rig))
    }
}

/// The bench's rig: one counting memory port per port of `snapshot` (port 0 receives, every
/// hop sends through port 1).
fn rig(snapshot: Snapshot, pipeline: &PipelineConfig) -> Result<Rig, BenchError> {
    let ports = snapshot.ports.len();
    let cell = Arc::new(SnapshotCell::new(snapshot, 1));
    let opts = RigOptions {
        pool_frames: POOL_FRAMES,
        tx_mode: TxMode::Count,
        ..RigOptions::default()
    };
    Ok(Rig::new(ports, pipeline, cell, opts)?)
}

/// A bench worker and its clock: polls the replay port with the time since it was built.
pub struct BenchWorker {
    rig: Rig,
    start: Instant,
}

impl BenchWorker {
    fn new(rig: Rig) -> Self {
        BenchWorker {
            rig,
            start: Instant::now(),
        }
    }

    /// One poll (one rx burst from the replay port, through the pipeline, into the tx batch);
    /// returns the frames received. Reads the clock once, as a daemon worker does.
    #[inline]
    pub fn poll(&mut self) -> usize {
        self.rig.poll_at(self.start.elapsed().as_nanos() as u64)
    }

    /// Polls until at least `packets` more frames were received (whole bursts: may overshoot by
    /// less than a burst).
    pub fn run(&mut self, packets: u64) {
        let target = self.received() + packets;
        while self.received() < target {
            self.poll();
        }
    }

    /// Frames received so far.
    #[inline]
    pub fn received(&self) -> u64 {
        self.counters().get(Counter::RxPackets)
    }

    /// The pipeline's counters so far.
    #[inline]
    pub fn counters(&self) -> &Counters {
        self.rig.counters()
    }

    /// Sends the partial tx batches.
    pub fn drain(&mut self) {
        self.rig.drain();
    }

    /// The worker, e.g. to inspect its flow cache.
    pub fn worker(&self) -> &Worker<MemoryPort> {
        self.rig.worker()
    }
}

/// The FIBs' and the worker's flow cache's memory, read back from the kernel.
fn table_memory(w: &BenchWorker) -> Vec<(Option<usize>, TableMemory)> {
    let worker = w.worker();
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

/// Builds the tables and the frames, runs, and reports.
pub fn run(opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    measure(opts, false)
}

/// [`run`], then each stage alone on the same set-up ([`stages::measure`]); the report's
/// `stages` lists them and, last, the whole pipeline of this run.
pub fn run_with_stages(opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    measure(opts, true)
}

fn measure(opts: &BenchOptions, with_stages: bool) -> Result<BenchReport, BenchError> {
    if let Some(core) = opts.core {
        let id = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.id == core)
            .ok_or(BenchError::NoSuchCore(core))?;
        core_affinity::set_for_current(id);
    }
    // Before any table is built; the flow cache is then written first on the pinned core.
    ecmp_mem::set_policy(opts.hugepages.into())?;
    let setup = BenchSetup::new(opts)?;
    let (mut w, kept) = if with_stages {
        (setup.worker()?, Some(setup))
    } else {
        (setup.into_worker()?, None)
    };

    w.run(opts.flows as u64);
    let before = w.counters().clone();
    let t0 = Instant::now();
    w.run(opts.packets);
    w.drain();
    let seconds = t0.elapsed().as_secs_f64();
    let after = w.counters().clone();
    let d = |c: Counter| after.get(c) - before.get(c);
    let packets = d(Counter::RxPackets);
    let memory = table_memory(&w);
    stats::log_memory(memory.clone())?;
    // The worker's flow cache is as large as the one the stages build: free it first.
    drop(w);
    let ns_per_packet = seconds * 1e9 / packets as f64;
    let stages = match kept {
        Some(setup) => {
            let mut s = stages::measure(&setup, opts.packets)?;
            s.push(StageReport {
                stage: Stage::Pipeline,
                ns_per_packet,
                packets,
            });
            s
        }
        None => Vec::new(),
    };
    Ok(BenchReport {
        options: opts.clone(),
        packets,
        seconds,
        mpps: packets as f64 / seconds / 1e6,
        ns_per_packet,
        tx_packets: d(Counter::TxPackets),
        drops: after.total_drops() - before.total_drops(),
        cache_hits: d(Counter::CacheHits),
        cache_misses: d(Counter::CacheMisses),
        memory: memory
            .into_iter()
            .map(|(wi, t)| stats::table_backing(wi, t))
            .collect(),
        stages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecmp_wire::parse_frame;

    pub(super) fn small(action: BenchAction) -> BenchOptions {
        BenchOptions {
            flows: 300,
            routes: 500,
            group_size: 4,
            groups: 8,
            buckets: 64,
            mode: BenchMode::AutoRecovery,
            packets: 10_000,
            frame_len: 60,
            action,
            cache_capacity: None,
            core: None,
            hugepages: BenchHugePages::Auto,
            seed: 7,
        }
    }

    #[test]
    fn every_frame_parses_and_has_a_route() {
        let setup = BenchSetup::new(&small(BenchAction::Rewrite)).unwrap();
        assert_eq!(setup.frames().len(), 300);
        for f in setup.frames() {
            assert_eq!(f.len(), 60);
            let m = parse_frame(f).unwrap();
            let dst = u32::from_be_bytes([m.dst[0], m.dst[1], m.dst[2], m.dst[3]]);
            let g = setup.snapshot.fib4.lookup(dst);
            assert!((1..=8).contains(&g), "destination {dst:#x} -> group {g}");
        }
    }

    #[test]
    fn setup_is_a_pure_function_of_the_options() {
        let a = BenchSetup::new(&small(BenchAction::Vxlan)).unwrap();
        let b = BenchSetup::new(&small(BenchAction::Vxlan)).unwrap();
        assert!(a.frames().eq(b.frames()));
        assert_eq!(a.routes, b.routes);
    }

    #[test]
    fn run_forwards_every_packet_and_hits_the_cache_after_warm_up() {
        for action in [BenchAction::Rewrite, BenchAction::Vxlan] {
            let r = run(&small(action)).unwrap();
            assert!(
                r.packets >= 10_000 && r.packets < 10_000 + 32,
                "{}",
                r.packets
            );
            assert_eq!(r.drops, 0);
            assert_eq!(r.cache_hits + r.cache_misses, r.packets);
            // 300 flows in a 1024-entry cache: only 4-way bucket overflow can miss.
            assert!(r.cache_hits > r.packets * 9 / 10, "{r:?}");
        }
    }

    #[test]
    fn zero_sizes_are_refused() {
        let mut o = small(BenchAction::Rewrite);
        o.groups = 0;
        assert!(matches!(run(&o), Err(BenchError::ZeroSize)));
    }
}
