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
//! ([`stages`]), and the report lists the stages beside the whole pipeline. With `--floor`, the
//! memory floor ([`floor`]) is then timed at the same flows and flow-cache size, and the report
//! gives `pipeline_over_floor`. With `--workers N` (N > 1), N workers are then timed at once on
//! their own cores ([`workers`]), and the report gives their aggregate rate and its scaling over
//! this run, which is one worker on the first of those cores.
//!
//! With `--io dpdk` (cargo feature `dpdk`; [`dpdk`]), the same set-up and timed loop run over
//! two DPDK devices instead of memory ports (by default `net_null` vdevs): each frame is a real
//! mbuf from a real mempool, received by the device's rx burst and sent by its tx burst, so the
//! report adds DPDK's I/O cost to the same measured work. Built without the feature, `--io dpdk`
//! fails with [`BenchError::NoDpdk`].
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

#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod floor;
pub mod stages;
pub mod workers;

use floor::Floor;
use stages::{Stage, StageReport};
use workers::WorkersReport;

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
    /// `--core` or `--cores` names a core this machine does not have.
    #[error("core {0} does not exist")]
    NoSuchCore(usize),
    /// `--workers` is 0.
    #[error("workers must be at least 1")]
    ZeroWorkers,
    /// `--workers N` needs N cores: the machine, or the `--cores` list, has fewer.
    #[error("{workers} workers need {workers} cores, but only {available} are available")]
    TooFewCores {
        /// Workers asked for.
        workers: usize,
        /// Cores available (on the machine from `--core` upward, or in `--cores`).
        available: usize,
    },
    /// `--cores` names a core twice: each worker needs its own.
    #[error("core {0} is listed twice")]
    DuplicateCore(usize),
    /// The RSS split gave a worker no flow (fewer flows than workers, or a skewed split).
    #[error("the worker on core {core} got no flow")]
    EmptyShare {
        /// That worker's core.
        core: usize,
    },
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
    /// `--io dpdk` on a binary built without the cargo feature `dpdk`.
    #[error("--io dpdk: this ecmpfwd was built without DPDK (build it with `--features dpdk`)")]
    NoDpdk,
    /// An option the DPDK bench does not offer (it times one worker, the whole pipeline).
    #[error("--io dpdk does not support {0}")]
    DpdkUnsupported(&'static str),
    /// A DPDK step of `--io dpdk` failed (EAL, pool, device).
    #[cfg(feature = "dpdk")]
    #[error("--io dpdk: {what}: {source}")]
    Dpdk {
        /// The step.
        what: String,
        /// DPDK's error.
        source: ecmp_io::dpdk::DpdkError,
    },
    /// After `--io dpdk`, with the worker and the devices gone, mbufs were still out of the pool.
    #[error("--io dpdk: {in_use} of {mbufs} mbufs are not back in the pool (leaked)")]
    MbufLeak {
        /// Mbufs still out.
        in_use: u32,
        /// The pool's size.
        mbufs: u32,
    },
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

/// `--io`: the ports the bench's frames come from and go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchIo {
    /// In-memory ports: a replaying port 0 and a counting port 1.
    Memory,
    /// Two DPDK devices (feature `dpdk`): `--dpdk-rx` and `--dpdk-tx`.
    Dpdk,
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
    /// Pin the bench thread to this core (with `--workers N`: the first of N cores from here).
    #[arg(long, conflicts_with = "cores")]
    pub core: Option<usize>,
    /// The cores of the workers, comma-separated (default: from `--core`, or 0, upward).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Then also run N workers at once, one per core, each with its own ports and flow cache
    /// and an RSS share of the flows, and report their aggregate rate and scaling over this run
    /// (one worker, on the first core).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Then also time the memory floor at the same flows and flow-cache size, and report
    /// pipeline / floor.
    #[arg(long)]
    pub floor: bool,
    /// How the flow cache and FIB tables are backed (set for the whole process).
    #[arg(long, value_enum, default_value_t = BenchHugePages::Auto)]
    pub hugepages: BenchHugePages,
    /// PRNG seed for routes and flows.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The ports: in-memory, or DPDK devices (needs the cargo feature `dpdk`).
    #[arg(long, value_enum, default_value_t = BenchIo::Memory)]
    pub io: BenchIo,
    /// With `--io dpdk`: the device frames are received from, a vdev spec or a PCI address
    /// (default `net_null0,size=FRAME_LEN`). Each received mbuf gets the next flow's frame.
    #[arg(long)]
    pub dpdk_rx: Option<String>,
    /// With `--io dpdk`: the device every next hop sends through (`no-rx=1`: net_null's rx
    /// queue stays empty, as an idle NIC queue, and is still polled).
    #[arg(long, default_value = "net_null1,no-rx=1")]
    pub dpdk_tx: String,
    /// With `--io dpdk`: EAL arguments, whitespace-separated, after the bench's own `-l CORE
    /// --file-prefix ecmpfwd-bench-PID`.
    #[arg(
        long,
        allow_hyphen_values = true,
        default_value = "--no-huge -m 256 --no-pci --no-telemetry --no-shconf --log-level lib.eal:error"
    )]
    pub eal: String,
}

impl Default for BenchOptions {
    /// The command line's defaults (`ecmpfwd bench` with no option), from the `#[arg]`
    /// attributes above, so that code building options names only what it changes.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            options: BenchOptions,
        }
        <Defaults as clap::Parser>::parse_from(["bench"]).options
    }
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
    /// With `--io dpdk`: the devices, their counters and the mbuf pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpdk: Option<DpdkBenchReport>,
    /// With `--floor`: the memory floor of this run, its keys at the top level of the JSON.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub floor: Option<FloorReport>,
    /// With `--workers N`, N > 1: the N workers run at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<WorkersReport>,
}

/// What `--io dpdk` adds to the report.
#[derive(Debug, Clone, Serialize)]
pub struct DpdkBenchReport {
    /// The EAL arguments used.
    pub eal_args: Vec<String>,
    /// The rx device, then the tx device, with their counters over the timed part.
    pub devices: Vec<DpdkDeviceCounters>,
    /// Mbufs in the pool both devices use.
    pub pool_mbufs: u32,
    /// Mbufs not back in the pool once the worker and the devices were gone (0, or the run
    /// fails with [`BenchError::MbufLeak`]).
    pub pool_in_use_at_end: u32,
    /// Received mbufs too small for the flow's frame (their tailroom could not take it): sent
    /// on as they were, so the pipeline drops them.
    pub rx_short: u64,
}

/// One device's own counters (`rte_eth_stats`) over the timed part.
#[derive(Debug, Clone, Serialize)]
pub struct DpdkDeviceCounters {
    /// The device spec.
    pub device: String,
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Packets dropped for want of an rx descriptor.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// The memory floor measured beside a pipeline run ([`floor`]).
#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    /// Nanoseconds per packet of the floor.
    pub floor_ns_per_packet: f64,
    /// The pipeline's ns/packet over the floor's.
    pub pipeline_over_floor: f64,
    /// Random table lines the floor reads per packet (the flow cache's lines per lookup).
    pub floor_lines_per_packet: usize,
    /// Bytes of the floor's table (the flow cache's bucket array).
    pub floor_table_bytes: usize,
    /// Packets the floor timed.
    pub floor_packets: u64,
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

/// The flow cache capacity for `flows` flows when `--cache-capacity` is not given.
fn default_capacity(flows: usize) -> usize {
    (flows * 2).next_power_of_two().max(1024)
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
            fib_changed: 0,
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
            .unwrap_or_else(|| default_capacity(opts.flows));
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

    /// Flows its flow cache holds (the configured capacity, rounded up as the cache rounds it).
    pub fn cache_capacity(&self) -> usize {
        self.rig.worker().pipeline().flow_cache().capacity()
    }
}

/// Pins the calling thread to `core`, one of the cores [`worker_cores`] checked. (Not checked
/// against `core_affinity::get_core_ids` here: that lists the calling thread's own affinity,
/// which a thread spawned by a pinned one inherits, so it would only ever name that one core.)
fn pin(core: usize) -> Result<(), BenchError> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(BenchError::NoSuchCore(core))
    }
}

/// The cores `opts` runs on, given the machine's `available` core ids: one per worker, from
/// `--cores` or from `--core` (or 0) upward. Empty when nothing asks for pinning (one worker,
/// no `--core`, no `--cores`): the run then stays where the scheduler puts it.
pub fn worker_cores(opts: &BenchOptions, available: &[usize]) -> Result<Vec<usize>, BenchError> {
    let n = opts.workers;
    if n == 0 {
        return Err(BenchError::ZeroWorkers);
    }
    let cores: Vec<usize> = if !opts.cores.is_empty() {
        if opts.cores.len() < n {
            return Err(BenchError::TooFewCores {
                workers: n,
                available: opts.cores.len(),
            });
        }
        opts.cores[..n].to_vec()
    } else if n == 1 {
        opts.core.into_iter().collect()
    } else {
        let first = opts.core.unwrap_or(0);
        let cores: Vec<usize> = (first..first + n).collect();
        let present = cores.iter().filter(|c| available.contains(c)).count();
        if present < n {
            return Err(BenchError::TooFewCores {
                workers: n,
                available: present,
            });
        }
        cores
    };
    for (i, c) in cores.iter().enumerate() {
        if !available.contains(c) {
            return Err(BenchError::NoSuchCore(*c));
        }
        if cores[..i].contains(c) {
            return Err(BenchError::DuplicateCore(*c));
        }
    }
    Ok(cores)
}

/// What [`time_floor`] measured.
#[derive(Debug, Clone, Copy)]
pub struct FloorTiming {
    /// Packets timed (whole bursts).
    pub packets: u64,
    /// Nanoseconds per packet.
    pub ns_per_packet: f64,
    /// Bytes of the floor's table.
    pub table_bytes: usize,
}

/// Times the memory floor for `flows` flows of `frame_len`-byte packets over a flow cache of
/// `cache_capacity` flows: one warm-up pass over every flow, then `packets` packets.
pub fn time_floor(
    flows: usize,
    cache_capacity: usize,
    frame_len: usize,
    seed: u64,
    packets: u64,
) -> Result<FloorTiming, BenchError> {
    let mut f = Floor::new(flows, cache_capacity, frame_len, seed)?;
    f.run(flows as u64);
    let before = f.packets();
    let t0 = Instant::now();
    f.run(packets);
    let seconds = t0.elapsed().as_secs_f64();
    // The checksum depends on every line read, so no read can be left out as unused.
    std::hint::black_box(f.checksum());
    let done = f.packets() - before;
    Ok(FloorTiming {
        packets: done,
        ns_per_packet: seconds * 1e9 / done as f64,
        table_bytes: f.table_bytes(),
    })
}

/// The FIBs' and the worker's flow cache's memory, read back from the kernel.
fn table_memory(w: &BenchWorker) -> Vec<(Option<usize>, TableMemory)> {
    stats::worker_memory(w.worker())
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
    if opts.io == BenchIo::Dpdk {
        if !cfg!(feature = "dpdk") {
            return Err(BenchError::NoDpdk);
        }
        if with_stages {
            return Err(BenchError::DpdkUnsupported("--stages"));
        }
        if opts.workers > 1 {
            return Err(BenchError::DpdkUnsupported("--workers"));
        }
    }
    let available: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let cores = worker_cores(opts, &available)?;
    if let Some(&core) = cores.first() {
        pin(core)?;
    }
    // Before any table is built; the flow cache is then written first on the pinned core.
    ecmp_mem::set_policy(opts.hugepages.into())?;
    let setup = BenchSetup::new(opts)?;
    if opts.io == BenchIo::Dpdk {
        return measure_dpdk(opts, setup, cores.first().copied());
    }
    let frame_len = setup.frame_len;
    let (mut w, kept) = if with_stages || opts.workers > 1 {
        (setup.worker()?, Some(setup))
    } else {
        (setup.into_worker()?, None)
    };
    let cache_capacity = w.cache_capacity();

    w.run(opts.flows as u64);
    // The warm-up's last batch goes out now, so that what is sent while timed is what was
    // received while timed.
    w.drain();
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
    let mpps = packets as f64 / seconds / 1e6;
    let stages = match &kept {
        Some(setup) if with_stages => {
            let mut s = stages::measure(setup, opts.packets)?;
            s.push(StageReport {
                stage: Stage::Pipeline,
                ns_per_packet,
                packets,
            });
            s
        }
        _ => Vec::new(),
    };
    let floor = floor_report(opts, cache_capacity, frame_len, ns_per_packet)?;
    let workers = match &kept {
        Some(setup) if opts.workers > 1 => Some(workers::run(
            setup,
            &cores,
            opts.cache_capacity,
            opts.packets,
            mpps,
        )?),
        _ => None,
    };
    Ok(BenchReport {
        options: opts.clone(),
        packets,
        seconds,
        mpps,
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
        dpdk: None,
        floor,
        workers,
    })
}

/// With `--floor`: the memory floor at `opts`' flows and the worker's flow-cache size, beside
/// a pipeline run of `ns_per_packet`.
fn floor_report(
    opts: &BenchOptions,
    cache_capacity: usize,
    frame_len: usize,
    ns_per_packet: f64,
) -> Result<Option<FloorReport>, BenchError> {
    if !opts.floor {
        return Ok(None);
    }
    let f = time_floor(
        opts.flows,
        cache_capacity,
        frame_len,
        opts.seed,
        opts.packets,
    )?;
    Ok(Some(FloorReport {
        floor_ns_per_packet: f.ns_per_packet,
        pipeline_over_floor: ns_per_packet / f.ns_per_packet,
        floor_lines_per_packet: ecmp_dataplane::flowcache::LINES_PER_LOOKUP,
        floor_table_bytes: f.table_bytes,
        floor_packets: f.packets,
    }))
}

/// `--io dpdk`: the DPDK bench ([`dpdk::run`]) on `setup`, on `core`, then the floor.
#[cfg(feature = "dpdk")]
fn measure_dpdk(
    opts: &BenchOptions,
    setup: BenchSetup,
    core: Option<usize>,
) -> Result<BenchReport, BenchError> {
    let frame_len = setup.frame_len;
    let (mut r, cache_capacity) = dpdk::run(opts, setup, core)?;
    r.floor = floor_report(opts, cache_capacity, frame_len, r.ns_per_packet)?;
    Ok(r)
}

/// Built without DPDK: `measure` refused `--io dpdk` before getting here.
#[cfg(not(feature = "dpdk"))]
fn measure_dpdk(
    _opts: &BenchOptions,
    _setup: BenchSetup,
    _core: Option<usize>,
) -> Result<BenchReport, BenchError> {
    Err(BenchError::NoDpdk)
}

/// The lines `--floor` and `--workers` add to the text report (empty without them).
pub fn render_extras(r: &BenchReport) -> String {
    let mut out = String::new();
    if let Some(f) = &r.floor {
        let table = if f.floor_table_bytes >= 1 << 20 {
            format!("{} MiB", f.floor_table_bytes >> 20)
        } else {
            format!("{} KiB", f.floor_table_bytes >> 10)
        };
        out += &format!(
            "floor: {:.1} ns/packet ({} random lines/packet from {table}); pipeline/floor {:.2}\n",
            f.floor_ns_per_packet, f.floor_lines_per_packet, f.pipeline_over_floor
        );
    }
    if let Some(w) = &r.workers {
        let per: Vec<String> = w
            .per_worker
            .iter()
            .map(|p| format!("core {}: {:.1}", p.core, p.ns_per_packet))
            .collect();
        out += &format!(
            "workers: {} at once, {:.2} Mpps aggregate ({} packets in {:.3} s, {} drops); \
             ns/packet {}; scaling over 1 worker {:.2}x\n",
            w.workers,
            w.mpps,
            w.packets,
            w.seconds,
            w.drops,
            per.join(", "),
            w.scaling
        );
    }
    out
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
            packets: 10_000,
            action,
            seed: 7,
            ..BenchOptions::default()
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
            assert_eq!(r.tx_packets, r.packets, "forwarded == timed");
            assert_eq!(r.cache_hits + r.cache_misses, r.packets);
            // 300 flows in a 1024-entry cache: only 4-way bucket overflow can miss.
            assert!(r.cache_hits > r.packets * 9 / 10, "{r:?}");
        }
    }

    /// The bench's options as `ecmpfwd bench` parses them from `args`.
    fn parse(args: &[&str]) -> Result<BenchOptions, clap::Error> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            options: BenchOptions,
        }
        <Cli as clap::Parser>::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .map(|c| c.options)
    }

    #[test]
    fn floor_and_workers_are_off_by_default_and_parse() {
        let o = parse(&[]).unwrap();
        assert!(!o.floor);
        assert_eq!(o.workers, 1);
        assert!(o.cores.is_empty() && o.core.is_none());
        let o = parse(&["--floor", "--workers", "2", "--cores", "3,1"]).unwrap();
        assert!(o.floor);
        assert_eq!(o.workers, 2);
        assert_eq!(o.cores, vec![3, 1]);
        let o = parse(&["--workers", "2", "--core", "1"]).unwrap();
        assert_eq!((o.workers, o.core), (2, Some(1)));
        assert!(parse(&["--core", "0", "--cores", "0,1"]).is_err());
        assert!(parse(&["--workers", "two"]).is_err());
    }

    #[test]
    fn workers_get_cores_from_the_list_or_from_core_upward() {
        let machine = [0, 1, 2, 3];
        let with = |args: &[&str]| worker_cores(&parse(args).unwrap(), &machine);
        assert_eq!(
            with(&[]).unwrap(),
            Vec::<usize>::new(),
            "unpinned as before"
        );
        assert_eq!(with(&["--core", "2"]).unwrap(), vec![2]);
        assert_eq!(with(&["--workers", "2"]).unwrap(), vec![0, 1]);
        assert_eq!(
            with(&["--workers", "2", "--core", "2"]).unwrap(),
            vec![2, 3]
        );
        assert_eq!(
            with(&["--workers", "2", "--cores", "3,1,0"]).unwrap(),
            vec![3, 1]
        );
        assert!(matches!(
            with(&["--workers", "2", "--core", "3"]),
            Err(BenchError::TooFewCores {
                workers: 2,
                available: 1
            })
        ));
        assert!(matches!(
            with(&["--workers", "5"]),
            Err(BenchError::TooFewCores {
                workers: 5,
                available: 4
            })
        ));
        assert!(matches!(
            with(&["--workers", "3", "--cores", "0,1"]),
            Err(BenchError::TooFewCores {
                workers: 3,
                available: 2
            })
        ));
        assert!(matches!(
            with(&["--workers", "2", "--cores", "1,1"]),
            Err(BenchError::DuplicateCore(1))
        ));
        assert!(matches!(
            with(&["--cores", "7"]),
            Err(BenchError::NoSuchCore(7))
        ));
        assert!(matches!(
            with(&["--workers", "0"]),
            Err(BenchError::ZeroWorkers)
        ));
    }

    #[test]
    fn floor_reports_beside_the_pipeline() {
        let o = BenchOptions {
            floor: true,
            ..small(BenchAction::Rewrite)
        };
        let r = run(&o).unwrap();
        let f = r.floor.as_ref().expect("a floor report");
        assert!(f.floor_packets >= 10_000 && f.floor_packets < 10_000 + 32);
        assert_eq!(
            f.floor_lines_per_packet,
            ecmp_dataplane::flowcache::LINES_PER_LOOKUP
        );
        // 300 flows: a 1024-flow cache, whose bucket array the floor's table matches.
        assert_eq!(
            f.floor_table_bytes,
            1024 / ecmp_dataplane::flowcache::WAYS * 64
        );
        assert!(f.floor_ns_per_packet > 0.0);
        assert!((f.pipeline_over_floor - r.ns_per_packet / f.floor_ns_per_packet).abs() < 1e-9);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["floor_ns_per_packet"].is_f64());
        assert!(json["pipeline_over_floor"].is_f64());
        assert!(json.get("workers").is_none());
        assert!(render_extras(&r).starts_with("floor: "));
        let plain = run(&small(BenchAction::Rewrite)).unwrap();
        assert!(
            serde_json::to_value(&plain)
                .unwrap()
                .get("floor_ns_per_packet")
                .is_none()
        );
        assert_eq!(render_extras(&plain), "");
    }

    #[test]
    fn the_rss_split_is_disjoint_and_covers_every_flow() {
        let setup = BenchSetup::new(&small(BenchAction::Rewrite)).unwrap();
        let shares = workers::split(&setup, 2).unwrap();
        assert_eq!(shares.len(), 2);
        let mut all: Vec<usize> = shares.concat();
        all.sort_unstable();
        assert_eq!(all, (0..300).collect::<Vec<_>>());
        // A Toeplitz split of 300 random flows is near even.
        assert!(
            shares.iter().all(|s| s.len() > 100),
            "{:?}",
            shares.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(workers::split(&setup, 1).unwrap()[0].len(), 300);
    }

    #[test]
    fn two_workers_forward_every_packet_and_their_counters_add_up() {
        let available = core_affinity::get_core_ids().unwrap_or_default().len();
        let o = BenchOptions {
            workers: 2,
            packets: 20_000,
            ..small(BenchAction::Rewrite)
        };
        if available < 2 {
            assert!(matches!(run(&o), Err(BenchError::TooFewCores { .. })));
            return;
        }
        let r = run(&o).unwrap();
        let w = r.workers.as_ref().expect("a workers report");
        assert_eq!(w.workers, 2);
        assert_eq!(w.per_worker.len(), 2);
        assert_eq!(
            w.per_worker.iter().map(|p| p.core).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(w.per_worker.iter().map(|p| p.flows).sum::<usize>(), 300);
        for p in &w.per_worker {
            // Each does half the packets, in whole bursts.
            assert!(p.packets >= 10_000 && p.packets < 10_000 + 32, "{p:?}");
            assert_eq!(p.tx_packets, p.packets, "{p:?}");
            assert_eq!(p.drops, 0);
            assert_eq!(p.cache_hits + p.cache_misses, p.packets);
            assert_eq!(p.cache_capacity, 1024);
        }
        assert_eq!(
            w.packets,
            w.per_worker.iter().map(|p| p.packets).sum::<u64>()
        );
        assert_eq!(w.tx_packets, w.packets, "forwarded == packets");
        assert_eq!(w.drops, 0);
        assert!(w.seconds >= w.per_worker.iter().map(|p| p.seconds).fold(0.0, f64::max));
        assert!((w.mpps - w.packets as f64 / w.seconds / 1e6).abs() < 1e-9);
        assert!((w.scaling - w.mpps / r.mpps).abs() < 1e-9);
        assert_eq!(w.one_worker_mpps, r.mpps);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["workers"]["per_worker"].as_array().map(Vec::len),
            Some(2)
        );
        assert!(json["workers"]["scaling"].is_f64());
        assert!(render_extras(&r).starts_with("workers: 2 at once"));
    }

    #[test]
    fn fewer_flows_than_workers_is_an_error_not_a_hang() {
        if core_affinity::get_core_ids().unwrap_or_default().len() < 2 {
            return;
        }
        let o = BenchOptions {
            flows: 1,
            workers: 2,
            ..small(BenchAction::Rewrite)
        };
        assert!(matches!(run(&o), Err(BenchError::EmptyShare { .. })));
    }

    #[test]
    fn io_dpdk_parses_and_without_the_feature_says_so() {
        let o = parse(&["--io", "dpdk", "--eal", "--no-huge -m 64"]).unwrap();
        assert_eq!(o.io, BenchIo::Dpdk);
        assert_eq!(o.eal, "--no-huge -m 64");
        assert_eq!(parse(&[]).unwrap().io, BenchIo::Memory);
        let o = BenchOptions {
            io: BenchIo::Dpdk,
            ..small(BenchAction::Rewrite)
        };
        if cfg!(feature = "dpdk") {
            // Refused before the EAL would be initialised.
            assert!(matches!(
                run_with_stages(&o),
                Err(BenchError::DpdkUnsupported("--stages"))
            ));
        } else {
            let e = run(&o).unwrap_err();
            assert!(matches!(e, BenchError::NoDpdk));
            assert!(e.to_string().contains("built without DPDK"), "{e}");
        }
    }

    #[test]
    fn zero_sizes_are_refused() {
        let mut o = small(BenchAction::Rewrite);
        o.groups = 0;
        assert!(matches!(run(&o), Err(BenchError::ZeroSize)));
    }
}
