//! `ecmpfwd demo`: the resilient-table story, told on the real pipeline and checked as it goes.
//!
//! One forwarder (the config's tables, one worker over in-memory ports on this thread: the memory
//! rig, [`crate::rig`]) gets
//! synthetic TCP flows toward the first route whose group has at least three active next hops.
//! The demo then fails one hop, drains another and brings the first one back, publishing each
//! change as a new snapshot exactly as the control plane does, and replays traffic after each.
//!
//! Every number it prints is measured, and every claim is checked against what the ports actually
//! sent, the group's bucket table and the worker's counters:
//! - a frame is attributed to its flow by the customer packet it carries: rewrite and every
//!   encapsulation only prepend headers, so the last `ip_len` bytes of any output frame are the
//!   packet that was sent in (TTL decremented);
//! - a frame is attributed to its next hop by egress port, destination MAC and, for tunnels, the
//!   outer destination address; the demo refuses to start if two members look alike on the wire.
//!
//! Invariants: flows are distinct 5-tuples; time is simulated (1 us per poll), so no flow-cache
//! timeout expires during a run and the same seed always prints the same numbers; a claim that
//! does not hold is reported as failed (and [`DemoReport::passed`] is false), never hidden, while
//! anything that keeps the demo from running at all is a [`DemoError`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::Arc;

use ecmp_dataplane::counters::{Counter, Counters};
use ecmp_dataplane::hash::FlowHasher;
use ecmp_dataplane::pipeline::PipelineConfig;
use ecmp_port::PortId;
use ecmp_port::memory::TxMode;
use ecmp_tables::TableError;
use ecmp_tables::group::{GroupMode, ResilientGroup};
use ecmp_tables::nexthop::{Action, GroupId, HopId, HopState};
use ecmp_tables::snapshot::{Snapshot, SnapshotCell};
use ecmp_wire::{ParseError, ethertype, parse_frame, parse_inner};
use serde::Serialize;

use crate::config::Config;
use crate::rig::{Rig, RigError, RigOptions};
use crate::setup::pipeline_config;
use crate::setup::{self, SetupError, Tables};
use crate::stats;
use ecmp_pktgen::traffic::Rng;
use ecmp_testkit::frames::{FrameError, FrameSpec, TcpFlags};

/// Frames injected per round trip through the worker: the output of a chunk stays on the ports
/// until read, so a chunk plus the bursts in flight must fit the pool.
const CHUNK: usize = 1024;
/// Frames in the worker's pool.
const POOL_FRAMES: usize = 4 * CHUNK;
/// Simulated time per poll.
const POLL_NS: u64 = 1_000;
/// The port synthetic traffic arrives on.
const INGRESS: PortId = 0;
/// Length of the synthetic frames (a 64-byte frame on the wire for IPv4; IPv6 headers need more).
const FRAME_LEN: usize = 60;
/// Destination ports of the synthetic flows.
const DST_PORTS: [u16; 2] = [80, 443];
/// Most flows per round (the demo keeps three rounds of flows and their frames' tuples).
pub const MAX_FLOWS: usize = 1_000_000;
/// Column at which verdicts, titles and notes wrap.
const TEXT_WIDTH: usize = 100;
/// Width of the share bars.
const BAR_WIDTH: usize = 24;
/// Random draws per flow before giving up on finding an address routed to the group.
const ADDRESS_TRIES: usize = 64;

/// What the demo runs.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct DemoOptions {
    /// Flows per round of traffic (the baseline, then each round of new flows).
    #[arg(long, default_value_t = 10_000)]
    pub flows: usize,
    /// The next hop to fail (default: the third active member of the group, or the first).
    #[arg(long)]
    pub fail: Option<String>,
    /// The next hop to drain (default: the fifth active member, or the second).
    #[arg(long)]
    pub drain: Option<String>,
    /// PRNG seed of the flows' addresses and ports.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            flows: 10_000,
            fail: None,
            drain: None,
            seed: 1,
        }
    }
}

/// Why the demo could not run (a claim that does not hold is not an error: see [`Check`]).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The config's tables could not be built.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A flow's frame could not be built.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// A group refused a state change the demo makes.
    #[error("group update: {0}")]
    Table(#[from] TableError),
    /// The forwarder could not be built, refused a frame or stopped taking frames.
    #[error(transparent)]
    Rig(#[from] RigError),
    /// A synthetic frame did not parse (a bug in the traffic builder, not in the config).
    #[error("a synthetic frame did not parse: {0}")]
    Parse(#[from] ParseError),
    /// `--flows` is out of range.
    #[error("--flows must be in 1..={max}, got {flows}")]
    Flows {
        /// What was asked.
        flows: usize,
        /// The largest accepted.
        max: usize,
    },
    /// No route leads to a group the demo can use.
    #[error(
        "{origin}: no route leads to a group with at least 3 active next hops (the demo fails \
         one, drains another and needs a survivor)"
    )]
    NoRoute {
        /// The config file.
        origin: String,
    },
    /// `--fail` or `--drain` names a hop that is not an active member of the demo's group.
    #[error("{option} {name:?}: not an active member of group {group:?} (active: {active})")]
    NotMember {
        /// `--fail` or `--drain`.
        option: &'static str,
        /// The name given.
        name: String,
        /// The demo's group.
        group: String,
        /// The active members, comma-separated.
        active: String,
    },
    /// `--fail` and `--drain` name the same hop.
    #[error("--fail and --drain both name {0:?}")]
    SameHop(String),
    /// Every address of the route's prefix is covered by more-specific routes to other groups.
    #[error("no address inside {0} routes to its own group (more-specific routes cover it)")]
    NoAddress(String),
    /// Two members leave on the same port with the same MAC and outer address.
    #[error(
        "next hops {a:?} and {b:?} leave on the same port with the same MAC and outer address: \
         their frames cannot be told apart"
    )]
    Indistinguishable {
        /// One member.
        a: String,
        /// The other.
        b: String,
    },
    /// A port sent a frame that is not one of the demo's flows toward one of the group's members.
    #[error("port {port} sent a frame the demo cannot attribute: {why}")]
    Unattributed {
        /// The port id.
        port: usize,
        /// What did not match.
        why: &'static str,
    },
}

/// One member of the demo's group and the flows a round sent to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HopRow {
    /// Next-hop name.
    pub hop: String,
    /// Its address.
    pub address: IpAddr,
    /// Its state in the group when the round ran.
    pub state: &'static str,
    /// Its weight.
    pub weight: u32,
    /// Buckets it owned when the round ran.
    pub buckets: usize,
    /// Flows of the round it carried.
    pub flows: usize,
    /// Flows it took over from the failed hop (the failover round only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gained: Option<usize>,
}

/// One claim and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Whether the claim held.
    pub ok: bool,
    /// The claim, with the measured numbers.
    pub claim: String,
}

/// One step of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What the step does.
    pub title: String,
    /// What was done and measured, one line each.
    pub notes: Vec<String>,
    /// Which flows `spread` counts.
    pub spread_of: String,
    /// Where those flows went, per member (empty for steps without traffic of their own).
    pub spread: Vec<HopRow>,
    /// The claims of the step.
    pub checks: Vec<Check>,
}

/// The measured numbers the claims rest on (also what tests assert).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// The hop failed in step 2 and returned in step 4.
    pub failed: String,
    /// The hop drained in step 3.
    pub drained: String,
    /// Baseline flows on the failed hop.
    pub failed_hop_flows: usize,
    /// Established flows that changed hop when it failed.
    pub moved_on_failure: usize,
    /// Of those, flows that were not on the failed hop.
    pub moved_from_others: usize,
    /// Flows plain `hash % n` over the weighted members would have moved on the failure.
    pub modulo_moved: usize,
    /// Buckets the failed hop owned before it failed.
    pub failed_hop_buckets: usize,
    /// Buckets that changed owner on the failure.
    pub buckets_moved_on_failure: usize,
    /// Flows a second forwarder with a cold flow cache sent elsewhere than the first.
    pub cold_forwarder_disagreements: usize,
    /// Flows the expected-disagreement count allows (flows in buckets moved between survivors).
    pub cold_forwarder_expected: usize,
    /// Flows cached on the drained hop when it started draining.
    pub drained_hop_flows: usize,
    /// Established flows that changed hop when it started draining.
    pub moved_on_drain: usize,
    /// New flows sent to the draining or the failed hop.
    pub new_flows_to_unavailable: usize,
    /// Buckets the failed hop owns after it returned.
    pub returned_hop_buckets: usize,
    /// Whether those are exactly the buckets it owned before it failed.
    pub same_buckets_after_return: bool,
    /// Established flows that changed hop when it returned.
    pub moved_on_return: usize,
    /// New flows sent to it after it returned.
    pub new_flows_to_returned: usize,
    /// Packets the first forwarder received.
    pub rx_packets: u64,
    /// Packets it dropped.
    pub drops: u64,
}

/// Everything the demo did, measured and checked.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// The instance name.
    pub instance: String,
    /// The config file.
    pub config: String,
    /// The route the traffic follows.
    pub route: String,
    /// Its group.
    pub group: String,
    /// The group's mode.
    pub mode: &'static str,
    /// The group's bucket count.
    pub buckets: u32,
    /// Flows per round.
    pub flows: usize,
    /// Where the flows come from and go to.
    pub traffic: String,
    /// The numbers behind the claims.
    pub facts: Facts,
    /// The steps in order.
    pub steps: Vec<Step>,
    /// The first forwarder's counters at the end (as `ecmpfwd run --json` prints them).
    pub counters: serde_json::Value,
}

impl DemoReport {
    /// Every claim of every step.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.steps.iter().flat_map(|s| s.checks.iter())
    }

    /// How many claims did not hold.
    pub fn failures(&self) -> usize {
        self.checks().filter(|c| !c.ok).count()
    }

    /// Whether every claim held.
    pub fn passed(&self) -> bool {
        self.failures() == 0
    }

    /// The report for a terminal: aligned tables and one verdict line per claim.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ecmpfwd demo: instance {} ({})",
            self.instance, self.config
        );
        let _ = writeln!(
            out,
            "route {} -> group {:?}: {}, {} buckets; one worker over in-memory ports",
            self.route, self.group, self.mode, self.buckets
        );
        let _ = writeln!(out, "{}", self.traffic);
        for (i, step) in self.steps.iter().enumerate() {
            out.push('\n');
            wrap(&mut out, &format!("{}. ", i + 1), "   ", &step.title);
            for note in &step.notes {
                wrap(&mut out, "   ", "     ", note);
            }
            if !step.spread.is_empty() {
                let _ = writeln!(out, "   {}:", step.spread_of);
                out.push_str(&render_rows(&step.spread));
            }
            for c in &step.checks {
                let verdict = if c.ok { "   OK    " } else { "   FAIL  " };
                wrap(&mut out, verdict, "         ", &c.claim);
            }
        }
        let total = self.checks().count();
        let failed = self.failures();
        if failed == 0 {
            let _ = writeln!(out, "\nverdict: all {total} claims hold");
        } else {
            let _ = writeln!(out, "\nverdict: {failed} of {total} claims FAILED");
        }
        out
    }
}

/// Appends `text` word-wrapped to [`TEXT_WIDTH`] columns: `first` before the first line,
/// `rest` before the others (the counters' two-space alignment inside a line is kept).
fn wrap(out: &mut String, first: &str, rest: &str, text: &str) {
    let mut line = String::from(first);
    let mut empty = true;
    for word in text.split(' ') {
        if !empty && line.len() + 1 + word.len() > TEXT_WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from(rest);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// An aligned table of member rows with a share bar.
fn render_rows(rows: &[HopRow]) -> String {
    let total: usize = rows.iter().map(|r| r.flows).sum();
    let max = rows.iter().map(|r| r.flows).max().unwrap_or(0).max(1);
    let name_w = rows.iter().map(|r| r.hop.len()).max().unwrap_or(0).max(3);
    let addr_w = rows
        .iter()
        .map(|r| r.address.to_string().len())
        .max()
        .unwrap_or(0)
        .max(7);
    let gained = rows.iter().any(|r| r.gained.is_some());
    let mut out = String::new();
    let _ = write!(
        out,
        "   {:<name_w$}  {:<addr_w$}  {:<8}  {:>6}  {:>7}  {:>7}  {:>6}",
        "hop", "address", "state", "weight", "buckets", "flows", "share"
    );
    if gained {
        let _ = write!(out, "  {:>6}", "gained");
    }
    out.push('\n');
    for r in rows {
        let mut line = String::new();
        let share = if total == 0 {
            0.0
        } else {
            100.0 * r.flows as f64 / total as f64
        };
        let _ = write!(
            line,
            "   {:<name_w$}  {:<addr_w$}  {:<8}  {:>6}  {:>7}  {:>7}  {:>5.1}%",
            r.hop,
            r.address.to_string(),
            r.state,
            r.weight,
            r.buckets,
            r.flows,
            share
        );
        if gained {
            match r.gained {
                Some(g) if g > 0 => {
                    let _ = write!(line, "  {:>6}", format!("+{g}"));
                }
                _ => {
                    let _ = write!(line, "  {:>6}", "");
                }
            }
        }
        let bar = (r.flows * BAR_WIDTH).div_ceil(max);
        let _ = write!(line, "  {}", "#".repeat(bar));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A synthetic flow: its packet template and where the group's hash puts it.
struct Flow {
    spec: FrameSpec,
    /// The group hash, as the pipeline computes it.
    hash: u32,
    /// `hash & (buckets - 1)`.
    bucket: usize,
}

/// Source address, source port, destination address, destination port.
type Tuple = (IpAddr, u16, IpAddr, u16);

/// Every flow of the run (three rounds), and the index to find a flow from its tuple.
struct Traffic {
    flows: Vec<Flow>,
    index: HashMap<Tuple, usize>,
    /// Length of the customer IP packet every frame carries.
    ip_len: usize,
    /// The EtherType of that packet.
    ethertype: u16,
}

impl Traffic {
    /// `count` distinct TCP flows from random sources to random addresses of `route` that the
    /// FIB resolves to `gid`.
    #[allow(clippy::too_many_arguments)]
    fn generate(
        rng: &mut Rng,
        count: usize,
        route: (IpAddr, u8),
        gid: GroupId,
        snap: &Snapshot,
        hasher: &FlowHasher,
        group: &ResilientGroup,
        ingress_mac: [u8; 6],
    ) -> Result<Self, DemoError> {
        let policy = group.policy();
        let mask = group.bucket_count() - 1;
        let mut flows = Vec::with_capacity(count);
        let mut index = HashMap::with_capacity(count);
        let mut ip_len = 0;
        while flows.len() < count {
            let dst = routed_address(rng, route, gid, snap)?;
            let src = match dst {
                // RFC 2544's benchmarking range.
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(
                    0xC612_0000 | (rng.next_u64() as u32 & 0x1_FFFF),
                )),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(
                    (0x2001_0db8_ffff_u128 << 80) | u128::from(rng.next_u64()),
                )),
            };
            let src_port = 1024 + rng.below(u64::from(u16::MAX) - 1023) as u16;
            let dst_port = DST_PORTS[rng.below(DST_PORTS.len() as u64) as usize];
            let tuple = (src, src_port, dst, dst_port);
            if index.contains_key(&tuple) {
                continue;
            }
            let mut spec =
                FrameSpec::udp(src, dst, src_port, dst_port, FRAME_LEN).with_tcp(TcpFlags::ACK);
            spec.dst_mac = ingress_mac;
            let frame = spec.build()?;
            let meta = parse_frame(&frame)?;
            let hash_meta = if policy.inner {
                parse_inner(&frame, &meta).unwrap_or(meta)
            } else {
                meta
            };
            let hash = hasher.group_hash(&hash_meta, &policy);
            ip_len = usize::from(meta.ip_len);
            index.insert(tuple, flows.len());
            flows.push(Flow {
                spec,
                hash,
                bucket: (hash & mask) as usize,
            });
        }
        let ethertype = match route.0 {
            IpAddr::V4(_) => ethertype::IPV4,
            IpAddr::V6(_) => ethertype::IPV6,
        };
        Ok(Traffic {
            flows,
            index,
            ip_len,
            ethertype,
        })
    }

    /// The flow whose packet `frame` carries (at its end, whatever was prepended).
    fn flow_of(&self, frame: &[u8], scratch: &mut Vec<u8>) -> Option<usize> {
        let inner = frame.get(frame.len().checked_sub(self.ip_len)?..)?;
        scratch.clear();
        scratch.extend_from_slice(&[0; 12]);
        scratch.extend_from_slice(&self.ethertype.to_be_bytes());
        scratch.extend_from_slice(inner);
        let m = parse_frame(scratch).ok()?;
        self.index
            .get(&(m.src_ip(), m.src_port, m.dst_ip(), m.dst_port))
            .copied()
    }
}

/// A random address inside `route` that the FIB resolves to `gid` (a more-specific route to
/// another group would send the flow elsewhere).
fn routed_address(
    rng: &mut Rng,
    (addr, len): (IpAddr, u8),
    gid: GroupId,
    snap: &Snapshot,
) -> Result<IpAddr, DemoError> {
    for _ in 0..ADDRESS_TRIES {
        let (dst, found) = match addr {
            IpAddr::V4(a) => {
                let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                let d = (u32::from(a) & !host) | (rng.next_u64() as u32 & host);
                (IpAddr::V4(Ipv4Addr::from(d)), snap.fib4.lookup(d))
            }
            IpAddr::V6(a) => {
                let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
                let d = (u128::from(a) & !host) | (r & host);
                (IpAddr::V6(Ipv6Addr::from(d)), snap.fib6.lookup(d))
            }
        };
        if found == gid {
            return Ok(dst);
        }
    }
    Err(DemoError::NoAddress(format!("{addr}/{len}")))
}

/// How a member's frames look on the wire.
struct WireHop {
    hop: HopId,
    port: usize,
    mac: [u8; 6],
    /// The outer destination of a tunnel; `None` for a plain rewrite.
    outer: Option<IpAddr>,
}

/// Tells the group's members apart by what their frames look like.
struct Wire {
    hops: Vec<WireHop>,
}

impl Wire {
    fn new(snap: &Snapshot, members: &[HopId], names: &[String]) -> Result<Self, DemoError> {
        let hops: Vec<WireHop> = members
            .iter()
            .filter_map(|&h| snap.hop(h))
            .map(|h| WireHop {
                hop: h.id,
                port: usize::from(h.port),
                mac: h.mac,
                outer: match h.action {
                    Action::Rewrite => None,
                    Action::Encap(e) => Some(e.dst),
                },
            })
            .collect();
        for (i, a) in hops.iter().enumerate() {
            for b in &hops[i + 1..] {
                if (a.port, a.mac, a.outer) == (b.port, b.mac, b.outer) {
                    return Err(DemoError::Indistinguishable {
                        a: name_of(names, a.hop),
                        b: name_of(names, b.hop),
                    });
                }
            }
        }
        Ok(Wire { hops })
    }

    /// The member a frame sent on `port` went to. A tunnel matches on its outer destination
    /// first, so a rewrite hop sharing a tunnel's port and MAC does not capture its frames.
    fn hop_of(&self, port: usize, frame: &[u8]) -> Option<HopId> {
        let mac = frame.get(..6)?;
        let outer = parse_frame(frame).ok().map(|m| m.dst_ip());
        let on_link = |w: &&WireHop| w.port == port && w.mac == mac;
        self.hops
            .iter()
            .filter(on_link)
            .find(|w| w.outer.is_some() && w.outer == outer)
            .or_else(|| self.hops.iter().filter(on_link).find(|w| w.outer.is_none()))
            .map(|w| w.hop)
    }
}

fn name_of(names: &[String], hop: HopId) -> String {
    (hop as usize)
        .checked_sub(1)
        .and_then(|i| names.get(i))
        .cloned()
        .unwrap_or_else(|| format!("hop {hop}"))
}

/// One forwarder: the memory rig, and what its ports sent per hop.
struct Forwarder {
    rig: Rig,
    /// Packets per hop id, as the ports saw them.
    seen: Vec<u64>,
    scratch: Vec<u8>,
}

impl Forwarder {
    fn new(
        ports: usize,
        hops: usize,
        pcfg: &PipelineConfig,
        cell: Arc<SnapshotCell>,
    ) -> Result<Self, DemoError> {
        let opts = RigOptions {
            pool_frames: POOL_FRAMES,
            tx_mode: TxMode::Collect,
            start_ns: 0,
            step_ns: POLL_NS,
        };
        Ok(Forwarder {
            rig: Rig::new(ports.max(1), pcfg, cell, opts)?,
            seen: vec![0; hops],
            scratch: Vec::new(),
        })
    }

    /// Polls once with nothing to receive; returns the generation the worker then holds.
    fn tick(&mut self) -> u64 {
        self.rig.poll();
        self.rig.snapshot().generation
    }

    fn counters(&self) -> &Counters {
        self.rig.counters()
    }

    /// Sends one packet with `flags` for each flow of `range`; returns the hop each went to
    /// (0 when none of the ports sent it).
    fn send(
        &mut self,
        traffic: &Traffic,
        wire: &Wire,
        range: Range<usize>,
        flags: TcpFlags,
    ) -> Result<Vec<HopId>, DemoError> {
        let mut hops = vec![0; range.len()];
        let mut start = range.start;
        while start < range.end {
            let end = (start + CHUNK).min(range.end);
            let frames = traffic.flows[start..end]
                .iter()
                .map(|f| f.spec.clone().with_tcp(flags).build())
                .collect::<Result<Vec<_>, _>>()?;
            self.rig.inject_all(INGRESS, &frames)?;
            self.rig.settle()?;
            let mut bad = None;
            let (seen, scratch) = (&mut self.seen, &mut self.scratch);
            self.rig.for_each_sent(|p, data| {
                let p = usize::from(p);
                let Some(flow) = traffic.flow_of(data, scratch) else {
                    bad = Some((p, "not one of the demo's flows"));
                    return;
                };
                let Some(hop) = wire.hop_of(p, data) else {
                    bad = Some((p, "not addressed to a member of the group"));
                    return;
                };
                match flow.checked_sub(range.start).and_then(|i| hops.get_mut(i)) {
                    Some(slot) if *slot == 0 => *slot = hop,
                    Some(_) => bad = Some((p, "a flow's packet was sent twice")),
                    None => bad = Some((p, "a flow that sent nothing this round")),
                }
                if let Some(c) = seen.get_mut(hop as usize) {
                    *c += 1;
                }
            });
            if let Some((port, why)) = bad {
                return Err(DemoError::Unattributed { port, why });
            }
            start = end;
        }
        Ok(hops)
    }

    /// A new flow's handshake: SYN then ACK for every flow of `range`. Returns the ACKs' hops
    /// and how many flows lost a packet or had their two packets sent to different hops.
    fn open(
        &mut self,
        traffic: &Traffic,
        wire: &Wire,
        range: Range<usize>,
    ) -> Result<(Vec<HopId>, usize, usize), DemoError> {
        let syn = self.send(traffic, wire, range.clone(), TcpFlags::SYN)?;
        let ack = self.send(traffic, wire, range, TcpFlags::ACK)?;
        let lost = syn
            .iter()
            .zip(&ack)
            .filter(|(s, a)| **s == 0 || **a == 0)
            .count();
        let split = syn
            .iter()
            .zip(&ack)
            .filter(|(s, a)| **s != 0 && **a != 0 && s != a)
            .count();
        Ok((ack, lost, split))
    }
}

/// Mid-connection packets of established flows.
const ESTABLISHED: TcpFlags = TcpFlags::ACK.union(TcpFlags::PSH);

fn state_name(s: HopState) -> &'static str {
    match s {
        HopState::Active => "active",
        HopState::Draining => "draining",
        HopState::Failed => "failed",
    }
}

fn mode_name(m: GroupMode) -> &'static str {
    match m {
        GroupMode::Manual => "manual",
        GroupMode::AutoRecovery => "auto-recovery",
        GroupMode::Idle { .. } => "idle",
        GroupMode::Maglev => "maglev",
        GroupMode::Rendezvous => "rendezvous",
    }
}

/// What the demo needs to describe the group's members.
struct View<'a> {
    tables: &'a Tables,
    gi: usize,
}

impl View<'_> {
    fn group(&self) -> &ResilientGroup {
        &self.tables.groups[self.gi]
    }

    fn name(&self, hop: HopId) -> String {
        name_of(&self.tables.hop_names, hop)
    }

    /// One row per listed member: where `hops` (one per flow) went, and optionally how many
    /// flows each took over (`prev` -> `hops` changes).
    fn rows(&self, hops: &[HopId], prev: Option<&[HopId]>) -> Vec<HopRow> {
        let g = self.group();
        g.members()
            .iter()
            .filter(|m| m.hop != 0)
            .map(|m| HopRow {
                hop: self.name(m.hop),
                address: self
                    .tables
                    .snapshot
                    .hop(m.hop)
                    .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |h| h.addr),
                state: state_name(m.state),
                weight: m.weight,
                buckets: g.bucket_owners().iter().filter(|&&o| o == m.hop).count(),
                flows: hops.iter().filter(|&&h| h == m.hop).count(),
                gained: prev.map(|p| {
                    p.iter()
                        .zip(hops)
                        .filter(|(a, b)| a != b && **b == m.hop)
                        .count()
                }),
            })
            .collect()
    }
}

/// Weighted `hash % n`: the hop of slot `hash % total weight` over the members in order.
fn modulo_pick(members: &[(HopId, u32)], hash: u32) -> HopId {
    let total: u64 = members.iter().map(|&(_, w)| u64::from(w)).sum();
    if total == 0 {
        return 0;
    }
    let mut slot = u64::from(hash) % total;
    for &(hop, w) in members {
        if slot < u64::from(w) {
            return hop;
        }
        slot -= u64::from(w);
    }
    0
}

/// Flows of `range` whose hop is not the owner of their bucket in `owners`.
fn off_bucket(traffic: &Traffic, range: Range<usize>, hops: &[HopId], owners: &[HopId]) -> usize {
    traffic.flows[range]
        .iter()
        .zip(hops)
        .filter(|(f, h)| owners.get(f.bucket) != Some(h))
        .count()
}

fn owned(owners: &[HopId], hop: HopId) -> Vec<usize> {
    (0..owners.len()).filter(|&b| owners[b] == hop).collect()
}

fn check(ok: bool, claim: String) -> Check {
    Check { ok, claim }
}

/// The first route whose group has at least three active members: (route index, group id).
fn pick_route(cfg: &Config, tables: &Tables) -> Option<(usize, GroupId)> {
    cfg.routes.iter().enumerate().find_map(|(ri, r)| {
        let gid = r.group as GroupId + 1;
        let g = tables.groups.get(r.group)?;
        let active = g
            .members()
            .iter()
            .filter(|m| m.hop != 0 && m.state == HopState::Active)
            .count();
        (active >= 3).then_some((ri, gid))
    })
}

/// Runs the demo on `cfg`'s tables and returns what it measured and checked.
pub fn run(cfg: &Config, opts: &DemoOptions) -> Result<DemoReport, DemoError> {
    let n = opts.flows;
    if n == 0 || n > MAX_FLOWS {
        return Err(DemoError::Flows {
            flows: n,
            max: MAX_FLOWS,
        });
    }
    let mut tables = setup::build(cfg)?;
    let (ri, gid) = pick_route(cfg, &tables).ok_or_else(|| DemoError::NoRoute {
        origin: cfg.origin.clone(),
    })?;
    let gi = gid as usize - 1;
    let route = &cfg.routes[ri];
    let group_name = tables.group_names[gi].clone();
    let mode = tables.groups[gi].mode();
    let bucket_count = tables.groups[gi].bucket_count();
    let active: Vec<HopId> = tables.groups[gi]
        .members()
        .iter()
        .filter(|m| m.hop != 0 && m.state == HopState::Active)
        .map(|m| m.hop)
        .collect();
    let members: Vec<HopId> = tables.groups[gi]
        .members()
        .iter()
        .filter(|m| m.hop != 0)
        .map(|m| m.hop)
        .collect();
    let pick = |option: &'static str, given: &Option<String>, default: usize| {
        let hop = match given {
            None => active.get(default).or(active.first()).copied(),
            Some(name) => tables.hop_id(name).filter(|h| active.contains(h)),
        };
        hop.ok_or_else(|| DemoError::NotMember {
            option,
            name: given.clone().unwrap_or_default(),
            group: group_name.clone(),
            active: active
                .iter()
                .map(|&h| name_of(&tables.hop_names, h))
                .collect::<Vec<_>>()
                .join(", "),
        })
    };
    let fail = pick("--fail", &opts.fail, 2)?;
    let drain = match (&opts.drain, active.get(4)) {
        (None, Some(&h)) if h != fail => h,
        (None, _) => active.iter().copied().find(|&h| h != fail).unwrap_or(fail),
        (Some(_), _) => pick("--drain", &opts.drain, 4)?,
    };
    if drain == fail {
        return Err(DemoError::SameHop(name_of(&tables.hop_names, fail)));
    }
    let (fail_name, drain_name) = (
        name_of(&tables.hop_names, fail),
        name_of(&tables.hop_names, drain),
    );

    let pcfg = pipeline_config(cfg);
    let hasher = FlowHasher::new(pcfg.seed, &pcfg.rss_key);
    let wire = Wire::new(&tables.snapshot, &members, &tables.hop_names)?;
    let ingress_mac = cfg
        .ports
        .get(usize::from(INGRESS))
        .map_or([0; 6], |p| p.port_info().mac);
    let mut rng = Rng::new(opts.seed);
    let traffic = Traffic::generate(
        &mut rng,
        3 * n,
        (route.prefix.addr, route.prefix.len),
        gid,
        &tables.snapshot,
        &hasher,
        &tables.groups[gi],
        ingress_mac,
    )?;
    let (base, new1, new2) = (0..n, n..2 * n, 2 * n..3 * n);
    let hop_slots = tables.snapshot.hops.len();
    let cell = Arc::new(SnapshotCell::new(tables.rebuild_snapshot(), 1));
    let mut fwd = Forwarder::new(cfg.ports.len(), hop_slots, &pcfg, Arc::clone(&cell))?;
    let mut steps = Vec::new();
    let mut facts = Facts {
        failed: fail_name.clone(),
        drained: drain_name.clone(),
        ..Facts::default()
    };

    // 1. Baseline.
    let (hop1, lost, split) = fwd.open(&traffic, &wire, base.clone())?;
    let owners0 = tables.groups[gi].bucket_owners().to_vec();
    let off = off_bucket(&traffic, base.clone(), &hop1, &owners0);
    let view = View {
        tables: &tables,
        gi,
    };
    steps.push(Step {
        title: format!("Baseline: {n} new TCP flows, one SYN then one ACK each"),
        notes: Vec::new(),
        spread_of: format!("where the {n} flows went"),
        spread: view.rows(&hop1, None),
        checks: vec![
            check(
                lost == 0 && split == 0,
                format!(
                    "all {n} flows forwarded, both packets of each to the same hop \
                     ({lost} lost a packet, {split} split)"
                ),
            ),
            check(
                off == 0,
                format!(
                    "every flow went to the owner of its bucket, hash & {} ({off} elsewhere)",
                    bucket_count - 1
                ),
            ),
        ],
    });

    // 2. Fail one hop.
    let weighted_before: Vec<(HopId, u32)> = tables.groups[gi]
        .members()
        .iter()
        .filter(|m| m.hop != 0 && m.state == HopState::Active)
        .map(|m| (m.hop, m.weight))
        .collect();
    let weighted_after: Vec<(HopId, u32)> = weighted_before
        .iter()
        .copied()
        .filter(|&(h, _)| h != fail)
        .collect();
    let failed_buckets = owned(&owners0, fail);
    set_state(&mut tables, gi, fail, HopState::Failed)?;
    let owners_f = tables.groups[gi].bucket_owners().to_vec();
    let gen2 = cell.publish(tables.rebuild_snapshot());
    let seen2 = fwd.tick();
    let repicks_before = fwd.counters().get(Counter::Repicks);
    let hop2 = fwd.send(&traffic, &wire, base.clone(), ESTABLISHED)?;
    let repicks = fwd.counters().get(Counter::Repicks) - repicks_before;
    let on_f = hop1.iter().filter(|&&h| h == fail).count();
    let moved: Vec<usize> = (0..n).filter(|&i| hop2[i] != hop1[i]).collect();
    let moved_others = moved.iter().filter(|&&i| hop1[i] != fail).count();
    let lost2 = hop2.iter().filter(|&&h| h == 0).count();
    let misplaced = moved
        .iter()
        .filter(|&&i| owners_f.get(traffic.flows[i].bucket) != Some(&hop2[i]))
        .count();
    let modulo_moved = traffic.flows[base.clone()]
        .iter()
        .filter(|f| modulo_pick(&weighted_before, f.hash) != modulo_pick(&weighted_after, f.hash))
        .count();
    let changed: Vec<usize> = (0..owners0.len())
        .filter(|&b| owners0[b] != owners_f[b])
        .collect();
    let changed_others = changed.iter().filter(|&&b| owners0[b] != fail).count();
    // A second forwarder of the cluster with the same config and the same failure but no flow
    // state: what it does with the same flows shows what the table alone guarantees.
    let mut tables_b = setup::build(cfg)?;
    // The stateful modes' tables depend on which buckets flows have used (before any, a change
    // rebuilds the canonical table), so the second forwarder is given the first one's bucket
    // use: it saw the same traffic, and only its flow cache is cold.
    if let (Some(a), Some(b)) = (tables.groups[gi].activity(), tables_b.groups[gi].activity()) {
        (0..bucket_count as usize)
            .filter(|&b| a.used(b))
            .for_each(|bucket| b.touch(bucket, 0));
    }
    set_state(&mut tables_b, gi, fail, HopState::Failed)?;
    let cell_b = Arc::new(SnapshotCell::new(tables_b.rebuild_snapshot(), 1));
    let mut fwd_b = Forwarder::new(cfg.ports.len(), hop_slots, &pcfg, cell_b)?;
    let hop_b = fwd_b.send(&traffic, &wire, base.clone(), ESTABLISHED)?;
    let disagree = (0..n).filter(|&i| hop_b[i] != hop2[i]).count();
    let expected_disagree = (0..n)
        .filter(|&i| {
            let b = traffic.flows[i].bucket;
            hop1[i] != fail && owners0.get(b) != owners_f.get(b)
        })
        .count();
    facts.failed_hop_flows = on_f;
    facts.moved_on_failure = moved.len();
    facts.moved_from_others = moved_others;
    facts.modulo_moved = modulo_moved;
    facts.failed_hop_buckets = failed_buckets.len();
    facts.buckets_moved_on_failure = changed.len();
    facts.cold_forwarder_disagreements = disagree;
    facts.cold_forwarder_expected = expected_disagree;
    let view = View {
        tables: &tables,
        gi,
    };
    let table_claim = if mode == GroupMode::Maglev {
        check(
            changed.len() >= failed_buckets.len()
                && changed_others + failed_buckets.len() == changed.len(),
            format!(
                "all {} of {fail_name}'s buckets changed owner; Maglev recomputed the table and \
                 also moved {changed_others} buckets between survivors",
                failed_buckets.len()
            ),
        )
    } else {
        check(
            changed.len() == failed_buckets.len() && changed_others == 0,
            format!(
                "only {fail_name}'s {} buckets changed owner ({} of {bucket_count} changed)",
                failed_buckets.len(),
                changed.len()
            ),
        )
    };
    let cold_claim = if mode == GroupMode::Maglev {
        format!(
            "a second forwarder, same config and failure but a cold flow cache, differs only on \
             the {expected_disagree} flows in buckets Maglev moved between survivors \
             ({disagree} differ)"
        )
    } else {
        format!(
            "a second forwarder, same config, traffic and failure but a cold flow cache, sends \
             all {n} flows to the same hops ({disagree} differ)"
        )
    };
    steps.push(Step {
        title: format!(
            "{fail_name} fails: set_state(Failed), generation {gen2} published; the same {n} \
             flows replayed"
        ),
        notes: vec![
            format!(
                "{} flows moved: {} from {fail_name}, {moved_others} from the other hops; \
                 {lost2} lost",
                moved.len(),
                moved.len() - moved_others
            ),
            format!(
                "plain hash % n ({} weighted slots -> {}) would have moved {modulo_moved} of \
                 {n} flows ({:.1}%)",
                weighted_before
                    .iter()
                    .map(|&(_, w)| u64::from(w))
                    .sum::<u64>(),
                weighted_after
                    .iter()
                    .map(|&(_, w)| u64::from(w))
                    .sum::<u64>(),
                100.0 * modulo_moved as f64 / n as f64
            ),
        ],
        spread_of: format!("where the {n} flows are now (gained = taken over from {fail_name})"),
        spread: view.rows(&hop2, Some(&hop1)),
        checks: vec![
            check(
                moved.len() == on_f && moved_others == 0 && lost2 == 0,
                format!(
                    "only the failed hop's {on_f} flows moved (plain hash % n would have moved \
                     {modulo_moved} of {n})"
                ),
            ),
            check(
                misplaced == 0,
                format!(
                    "each of {fail_name}'s flows went to its bucket's new owner ({misplaced} \
                     elsewhere)"
                ),
            ),
            table_claim,
            check(
                seen2 == gen2 && repicks == on_f as u64,
                format!(
                    "the worker held generation {seen2} after its next poll and re-picked \
                     exactly {fail_name}'s {on_f} cached flows ({repicks} re-picks)"
                ),
            ),
            check(disagree == expected_disagree, cold_claim),
        ],
    });

    // 3. Drain another hop.
    set_state(&mut tables, gi, drain, HopState::Draining)?;
    let owners_d = tables.groups[gi].bucket_owners().to_vec();
    let gen3 = cell.publish(tables.rebuild_snapshot());
    let seen3 = fwd.tick();
    let hop3 = fwd.send(&traffic, &wire, base.clone(), ESTABLISHED)?;
    let on_d = hop2.iter().filter(|&&h| h == drain).count();
    let kept_d = (0..n)
        .filter(|&i| hop2[i] == drain && hop3[i] == drain)
        .count();
    let moved3 = (0..n).filter(|&i| hop3[i] != hop2[i]).count();
    let (hopn1, lost3, split3) = fwd.open(&traffic, &wire, new1.clone())?;
    let to_dead = hopn1.iter().filter(|&&h| h == drain || h == fail).count();
    let off3 = off_bucket(&traffic, new1.clone(), &hopn1, &owners_d);
    let drain_buckets = owned(&owners_d, drain).len();
    facts.drained_hop_flows = on_d;
    facts.moved_on_drain = moved3;
    facts.new_flows_to_unavailable = to_dead;
    let view = View {
        tables: &tables,
        gi,
    };
    steps.push(Step {
        title: format!(
            "{drain_name} drains: set_state(Draining), generation {gen3} published; the {n} \
             established flows replayed, then {n} new flows"
        ),
        notes: vec![format!(
            "{drain_name} now owns {drain_buckets} buckets and keeps {kept_d} of its {on_d} \
             cached flows"
        )],
        spread_of: format!("where the {n} new flows went"),
        spread: view.rows(&hopn1, None),
        checks: vec![
            check(
                moved3 == 0 && kept_d == on_d && seen3 == gen3,
                format!(
                    "{moved3} of {n} established flows moved (generation {seen3} in use): \
                     {drain_name} keeps its {on_d} flows while draining"
                ),
            ),
            check(
                to_dead == 0 && lost3 == 0 && split3 == 0,
                format!(
                    "none of the {n} new flows went to {drain_name} (draining) or {fail_name} \
                     (failed): {to_dead} did, {lost3} lost, {split3} split"
                ),
            ),
            check(
                off3 == 0,
                format!("every new flow went to the owner of its bucket ({off3} elsewhere)"),
            ),
        ],
    });

    // 4. The failed hop returns.
    set_state(&mut tables, gi, fail, HopState::Active)?;
    let owners_r = tables.groups[gi].bucket_owners().to_vec();
    let returned = owned(&owners_r, fail);
    let same = returned == failed_buckets;
    // Buckets no flow has used yet go to hops below their share at once (not in manual mode).
    let unused: Vec<usize> = tables.groups[gi].activity().map_or_else(Vec::new, |a| {
        (0..bucket_count as usize).filter(|&b| !a.used(b)).collect()
    });
    let extra: Vec<usize> = returned
        .iter()
        .copied()
        .filter(|b| !failed_buckets.contains(b))
        .collect();
    let extra_unused = extra.iter().all(|b| unused.contains(b));
    let bucket_claim = match mode {
        GroupMode::AutoRecovery => check(
            failed_buckets.iter().all(|b| returned.contains(b)) && extra_unused,
            format!(
                "{fail_name} owns the {} buckets it owned before it failed, plus {} that no \
                 flow had used ({} of {bucket_count} unused)",
                failed_buckets.len(),
                extra.len(),
                unused.len()
            ),
        ),
        GroupMode::Rendezvous => {
            let mut fresh = setup::build(cfg)?;
            set_state(&mut fresh, gi, drain, HopState::Draining)?;
            let equal = fresh.groups[gi].bucket_owners() == owners_r.as_slice();
            check(
                equal && failed_buckets.iter().all(|b| returned.contains(b)),
                format!(
                    "{fail_name} owns all {} buckets it owned before it failed, and {} of \
                     {drain_name}'s (draining) that it ranks first on; the table equals one \
                     built from scratch for the same members (rendezvous)",
                    failed_buckets.len(),
                    extra.len()
                ),
            )
        }
        GroupMode::Maglev => {
            let mut fresh = setup::build(cfg)?;
            set_state(&mut fresh, gi, drain, HopState::Draining)?;
            let equal = fresh.groups[gi].bucket_owners() == owners_r.as_slice();
            check(
                equal,
                format!(
                    "the table equals one built from scratch for the same members (Maglev); \
                     {fail_name} owns {} buckets",
                    returned.len()
                ),
            )
        }
        GroupMode::Manual => check(
            returned.is_empty(),
            format!(
                "{fail_name} owns no buckets until the operator's clear (manual mode; owns {})",
                returned.len()
            ),
        ),
        GroupMode::Idle { .. } => check(
            returned.iter().all(|b| unused.contains(b)),
            format!(
                "{fail_name} owns only buckets no flow had used ({} of {} unused); idle mode \
                 hands the busy ones back through upkeep as they go idle",
                returned.len(),
                unused.len()
            ),
        ),
    };
    let gen4 = cell.publish(tables.rebuild_snapshot());
    let seen4 = fwd.tick();
    let established = 0..2 * n;
    let hop4 = fwd.send(&traffic, &wire, established.clone(), ESTABLISHED)?;
    let prev: Vec<HopId> = hop3.iter().chain(&hopn1).copied().collect();
    let moved4 = (0..2 * n).filter(|&i| hop4[i] != prev[i]).count();
    let (hopn2, lost4, split4) = fwd.open(&traffic, &wire, new2.clone())?;
    let to_f = hopn2.iter().filter(|&&h| h == fail).count();
    let off4 = off_bucket(&traffic, new2.clone(), &hopn2, &owners_r);
    facts.returned_hop_buckets = returned.len();
    facts.same_buckets_after_return = same;
    facts.moved_on_return = moved4;
    facts.new_flows_to_returned = to_f;
    let view = View {
        tables: &tables,
        gi,
    };
    let new_claim = if returned.is_empty() {
        check(
            to_f == 0 && off4 == 0 && lost4 == 0 && split4 == 0,
            format!(
                "{fail_name} took {to_f} of the {n} new flows (it owns no buckets); every new \
                 flow went to its bucket's owner ({off4} elsewhere)"
            ),
        )
    } else {
        check(
            to_f > 0 && off4 == 0 && lost4 == 0 && split4 == 0,
            format!(
                "{fail_name} took {to_f} of the {n} new flows, each in one of its {} buckets; \
                 every new flow went to its bucket's owner ({off4} elsewhere)",
                returned.len()
            ),
        )
    };
    steps.push(Step {
        title: format!(
            "{fail_name} returns: set_state(Active), generation {gen4} published ({} mode); \
             all {} established flows replayed, then {n} new flows",
            mode_name(mode),
            2 * n
        ),
        notes: Vec::new(),
        spread_of: format!("where the {n} newest flows went"),
        spread: view.rows(&hopn2, None),
        checks: vec![
            bucket_claim,
            check(
                moved4 == 0 && seen4 == gen4,
                format!(
                    "{moved4} of {} established flows moved (generation {seen4} in use): the \
                     flows {fail_name} lost stay on the survivors that took them (cached)",
                    2 * n
                ),
            ),
            new_claim,
        ],
    });

    // 5. The worker's counters.
    let c = fwd.counters().clone();
    let rx = c.get(Counter::RxPackets);
    let tx = c.get(Counter::TxPackets);
    let hits = c.get(Counter::CacheHits);
    let misses = c.get(Counter::CacheMisses);
    let repicks_total = c.get(Counter::Repicks);
    let drops = c.total_drops();
    let flows_total = 3 * n as u64;
    let per_hop = fwd.rig.worker().pipeline().hop_packets();
    let hop_mismatch = (0..hop_slots)
        .filter(|&h| per_hop.get(h).copied().unwrap_or(0) != fwd.seen[h])
        .count();
    facts.rx_packets = rx;
    facts.drops = drops;
    steps.push(Step {
        title: "The worker's counters".into(),
        notes: stats::human(&c).lines().map(str::to_owned).collect(),
        spread_of: String::new(),
        spread: Vec::new(),
        checks: vec![
            check(
                drops == 0,
                format!("no packet dropped ({drops} drops of {rx} packets)"),
            ),
            check(
                rx == tx,
                format!("every packet received was sent ({rx} rx, {tx} tx)"),
            ),
            check(
                misses == flows_total
                    && repicks_total == on_f as u64
                    && hits + misses + repicks_total == rx,
                format!(
                    "each of the {flows_total} flows was picked from the buckets once \
                     ({misses} misses), {repicks_total} re-picked on the failure, the other \
                     {hits} packets hit the flow cache"
                ),
            ),
            check(
                hop_mismatch == 0,
                format!(
                    "the worker's per-hop packet counters match what the ports sent \
                     ({hop_mismatch} hops differ)"
                ),
            ),
        ],
    });

    Ok(DemoReport {
        instance: cfg.instance.name.clone(),
        config: cfg.origin.clone(),
        route: format!("{}/{}", route.prefix.addr, route.prefix.len),
        group: group_name,
        mode: mode_name(mode),
        buckets: bucket_count,
        flows: n,
        traffic: format!(
            "{n} TCP flows per round from random sources to {} ports {}",
            route_target(route.prefix.addr, route.prefix.len),
            DST_PORTS.map(|p| p.to_string()).join("/")
        ),
        facts,
        steps,
        counters: stats::json(&c),
    })
}

fn route_target(addr: IpAddr, len: u8) -> String {
    let full = if addr.is_ipv4() { 32 } else { 128 };
    if len == full {
        addr.to_string()
    } else {
        format!("addresses in {addr}/{len}")
    }
}

/// Sets `hop`'s state in group index `gi` (validated by [`pick_route`]; every `Tables` built
/// from the same config has the same groups).
fn set_state(tables: &mut Tables, gi: usize, hop: HopId, state: HopState) -> Result<(), DemoError> {
    tables.groups[gi].set_state(hop, state)?;
    Ok(())
}
