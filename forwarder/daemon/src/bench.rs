//! `ecmpfwd bench`: the whole pipeline on synthetic traffic over in-memory ports, in-process.
//!
//! Port 0 replays a prepared list of frames (one per flow, in random order, cycled); port 1
//! counts and recycles what is sent. The list is replayed once as warm-up (every flow inserted in
//! the flow cache, tables and caches warm), then `packets` frames are timed. What is measured is
//! rx copy-in (as a NIC's DMA would write the frame), parse, hash, flow cache, LPM, bucket pick,
//! rewrite/encap and tx hand-off: everything but the wire.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ecmp_dataplane::counters::{Counter, SharedCounters};
use ecmp_dataplane::flowcache::FlowCacheConfig;
use ecmp_dataplane::pipeline::PipelineConfig;
use ecmp_dataplane::worker::Worker;
use ecmp_io::memory::{FramePool, MemoryPort, TxMode};
use ecmp_tables::group::{GroupMode, ResilientGroup};
use ecmp_tables::nexthop::{Action, Encap, EncapKind, NextHop, PortInfo};
use ecmp_tables::snapshot::{Snapshot, SnapshotCell};
use ecmp_tables::{Fib4, Fib6};
use serde::Serialize;

use crate::traffic::{PacketSpec, Rng};

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
}

const EGRESS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const INGRESS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

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

/// Random route prefixes: ~70% /24, 15% /16../23, 15% /25../32; distinct.
fn random_routes(rng: &mut Rng, n: usize) -> Vec<(u32, u8)> {
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
        // Keep clear of 0/8, 127/8 and multicast so every destination is a plain unicast one.
        let addr = (1 + rng.below(222) as u32) << 24 | (rng.next_u64() as u32 & 0x00FF_FFFF);
        let addr = addr & (u32::MAX << (32 - u32::from(len)));
        if addr >> 24 != 127 && seen.insert((addr, len)) {
            out.push((addr, len));
        }
    }
    out
}

/// Builds the tables and the frames, runs, and reports.
pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    if opts.flows == 0 || opts.routes == 0 || opts.group_size == 0 || opts.groups == 0 {
        bail!("flows, routes, group size and groups must all be at least 1");
    }
    if let Some(core) = opts.core {
        let id = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.id == core)
            .with_context(|| format!("core {core} does not exist"))?;
        core_affinity::set_for_current(id);
    }
    let mut rng = Rng::new(opts.seed);

    let mut hops = vec![NextHop {
        id: 0,
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: 0,
        mac: [0; 6],
        weight: 0,
        action: Action::Rewrite,
    }];
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
    let port = PortInfo {
        mac: EGRESS_MAC,
        mtu: 1500,
    };
    let snapshot = Snapshot {
        generation: 0,
        fib4: Arc::new(fib4),
        fib6: Arc::new(Fib6::new()),
        groups,
        hops,
        ports: vec![
            PortInfo {
                mac: INGRESS_MAC,
                mtu: 1500,
            },
            port,
        ],
    };

    // One frame per flow, destinations inside random routes, in random order.
    let mut spec = PacketSpec::udp(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        0,
        0,
        opts.frame_len,
    );
    spec.dst_mac = INGRESS_MAC;
    let frames = (0..opts.flows).map(move |_| {
        let (addr, len) = routes[rng.below(routes.len() as u64) as usize];
        let host = if len == 32 {
            0
        } else {
            rng.next_u64() as u32 & (u32::MAX >> len)
        };
        let mut s = spec;
        s.dst = IpAddr::V4(Ipv4Addr::from(addr | host));
        s.src = IpAddr::V4(Ipv4Addr::from(
            0xC612_0000 | (rng.next_u64() as u32 & 0x1_FFFF),
        ));
        s.src_port = 1024 + rng.below(64_000) as u16;
        s.dst_port = [53, 80, 443, 8080][rng.below(4) as usize];
        s.build()
    });

    let pool = FramePool::new(4096);
    let mut rx = MemoryPort::with_tx_mode(pool.clone(), TxMode::Count);
    rx.replay(frames)?;
    let tx = MemoryPort::with_tx_mode(pool, TxMode::Count);

    let capacity = opts
        .cache_capacity
        .unwrap_or_else(|| (opts.flows * 2).next_power_of_two().max(1024));
    let pcfg = PipelineConfig {
        seed: opts.seed ^ 0x5eed,
        rss_key: ecmp_dataplane::hash::DEFAULT_RSS_KEY,
        flow_cache: FlowCacheConfig {
            capacity,
            ..FlowCacheConfig::default()
        },
    };
    let cell = Arc::new(SnapshotCell::new(snapshot, 1));
    let shared = Arc::new(SharedCounters::default());
    let mut worker = Worker::new(vec![rx, tx], &pcfg, cell, shared)?;

    let start = Instant::now();
    let rx_count = |w: &Worker<MemoryPort>| w.pipeline().counters().get(Counter::RxPackets);
    let warmup = opts.flows as u64;
    while rx_count(&worker) < warmup {
        worker.poll(start.elapsed().as_nanos() as u64);
    }
    let before = worker.pipeline().counters().clone();
    let t0 = Instant::now();
    let target = before.get(Counter::RxPackets) + opts.packets;
    while rx_count(&worker) < target {
        worker.poll(start.elapsed().as_nanos() as u64);
    }
    worker.drain();
    let seconds = t0.elapsed().as_secs_f64();
    let after = worker.pipeline().counters().clone();
    let d = |c: Counter| after.get(c) - before.get(c);
    let packets = d(Counter::RxPackets);
    Ok(BenchReport {
        options: opts.clone(),
        packets,
        seconds,
        mpps: packets as f64 / seconds / 1e6,
        ns_per_packet: seconds * 1e9 / packets as f64,
        tx_packets: d(Counter::TxPackets),
        drops: after.total_drops() - before.total_drops(),
        cache_hits: d(Counter::CacheHits),
        cache_misses: d(Counter::CacheMisses),
    })
}
