//! The whole data path under fuzzing: the daemon's memory rig ([`ecmpfwd::rig`], one worker over
//! three memory ports), built once per thread from [`CONFIG`] through the daemon's own config
//! parser and table builder, fed the records of each input (see [`crate::input`]).
//!
//! What every input must leave true (checked at its end, on counter deltas, so that the state
//! the worker keeps between inputs — flow cache, hop states, clock — does not matter):
//! - every injected frame was received, and each was either sent or dropped and counted:
//!   `rx == tx + drops`, and the ports hold exactly `tx` sent frames;
//! - the pool has no outstanding frame once the sent frames are returned, and no frame was
//!   released to a foreign pool: nothing leaked, nothing was freed twice;
//! - every sent frame passes [`check_accepted`] (its outer headers parse and are consistent),
//!   leaves untagged and unpadded, fits the egress MTU, carries the egress port's MAC as source
//!   and the MAC of a next hop on that port as destination; an encapsulated frame carries that
//!   hop's tunnel endpoints and kind, and the tunnels `parse_inner` knows have an inner packet.
//!
//! Table changes between bursts: hop events (see [`crate::input`]) change group tables, route
//! records add and remove routes. The IPv4 FIB is 64 MiB, so routes are not changed on a copy
//! per snapshot: as the daemon's builder does, they go to a second copy of each FIB that no
//! snapshot holds, which is then published while the copy the worker just left becomes the
//! spare, catching up on the changes it missed before its next use. Each change is checked on
//! the FIB it was applied to (an add that succeeded is installed, a removed prefix is gone, a
//! refused change changed nothing).
//!
//! The worker is kept across inputs (the brief of a persistent fuzz target: building tables and
//! a flow cache per input would dominate the run), so a crash may depend on earlier inputs; the
//! per-input checks above never do.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ecmp_dataplane::counters::{Counter, Counters};
use ecmp_dataplane::drop::DropReason;
use ecmp_port::PortId;
use ecmp_port::memory::{MAX_PACKET, TxMode};
use ecmp_tables::Fib6;
use ecmp_tables::fib::Fib4;
use ecmp_tables::nexthop::{Action, EncapKind, GroupId, HopId, HopState};
use ecmp_tables::snapshot::Snapshot;
use ecmp_wire::meta::PacketMeta;
use ecmp_wire::{ethernet, ip_proto, parse_frame, udp_port};
use ecmpfwd::config::Config;
use ecmpfwd::rig::{Rig, RigOptions};
use ecmpfwd::setup::Tables;

use crate::input::{MAX_RECORDS, Record, Records};
use crate::wire_checks::check_accepted;

/// The forwarder under test. Routes cover most of both address families so that random
/// destinations get forwarded; hops cover rewrite and every encapsulation kind over both
/// underlay families; groups cover every mode, inner hashing and a group whose only hop failed.
/// Ports: 0 `uplink` (MTU 1500), 1 `fabric` (1400: big packets fail to encapsulate), 2 `edge`
/// (576). The flow cache is tiny and its timeouts short so that evictions and expiries happen.
pub const CONFIG: &str = r#"
[instance]
name = "fuzz"
seed = 20240917

[flow_cache]
capacity = 64
idle_timeout = "30s"
embryonic_timeout = "2s"
fin_timeout = "5s"

[[port]]
name = "uplink"
kind = "memory"
mac = "02:00:00:00:00:01"

[[port]]
name = "fabric"
kind = "memory"
mac = "02:00:00:00:00:02"
mtu = 1400

[[port]]
name = "edge"
kind = "memory"
mac = "02:00:00:00:00:03"
mtu = 576

[[worker]]
core = 0
ports = ["uplink", "fabric", "edge"]

[[nexthop]]
name = "web1"
address = "10.1.0.1"
port = "uplink"
mac = "02:00:00:00:10:01"

[[nexthop]]
name = "web2"
address = "10.1.0.2"
port = "uplink"
mac = "02:00:00:00:10:02"

[[nexthop]]
name = "web3"
address = "10.1.0.3"
port = "edge"
mac = "02:00:00:00:10:03"

[[nexthop]]
name = "ipip-v4"
address = "203.0.113.1"
port = "fabric"
mac = "02:00:00:00:20:01"
encap = { kind = "ipip", src = "203.0.113.254" }

[[nexthop]]
name = "gre-key-v4"
address = "203.0.113.2"
port = "fabric"
mac = "02:00:00:00:20:02"
encap = { kind = "gre", src = "203.0.113.254", key = 42 }

[[nexthop]]
name = "gre-v6"
address = "2001:db8:f::2"
port = "edge"
mac = "02:00:00:00:20:12"
encap = { kind = "gre", src = "2001:db8:f::fe" }

[[nexthop]]
name = "vxlan-v4"
address = "203.0.113.3"
port = "fabric"
mac = "02:00:00:00:20:03"
encap = { kind = "vxlan", src = "203.0.113.254", vni = 10010, inner_mac = "02:00:00:00:30:03" }

[[nexthop]]
name = "vxlan-v6"
address = "2001:db8:f::3"
port = "fabric"
mac = "02:00:00:00:20:13"
encap = { kind = "vxlan", src = "2001:db8:f::fe", vni = 77 }

[[nexthop]]
name = "gue-v6"
address = "2001:db8:f::4"
port = "fabric"
mac = "02:00:00:00:20:04"
encap = { kind = "gue", src = "2001:db8:f::fe", udp_port = 6080 }

[[nexthop]]
name = "mpls-v6"
address = "2001:db8:f::5"
port = "fabric"
mac = "02:00:00:00:20:05"
encap = { kind = "mpls-udp", src = "2001:db8:f::fe", dst = "2001:db8:f::100", label = 1000 }

[[nexthop]]
name = "ipip-v6"
address = "2001:db8:f::6"
port = "fabric"
mac = "02:00:00:00:20:06"
encap = { kind = "ipip", src = "2001:db8:f::fe" }

[[nexthop]]
name = "gone"
address = "10.9.9.9"
port = "uplink"
mac = "02:00:00:00:90:01"
state = "failed"

[[group]]
name = "web"
members = ["web1", "web2", "web3"]

[[group]]
name = "tunnels-v4"
mode = "manual"
members = ["ipip-v4", "gre-key-v4", { nexthop = "vxlan-v4", weight = 2 }]
hash = { inner = true }

[[group]]
name = "tunnels-v6"
mode = "maglev"
buckets = 256
members = ["gue-v6", "mpls-v6", "ipip-v6", "vxlan-v6"]
hash = { fields = "src-dst-ip", symmetric = true, algo = "crc32c" }

[[group]]
name = "mixed"
mode = "idle"
buckets = 64
members = ["web1", "ipip-v4", "gre-v6", "vxlan-v6", "mpls-v6"]
hash = { algo = "toeplitz", inner = true }

[[group]]
name = "lbkey"
members = ["web2", "web3"]
hash = { algo = "lb-key", fields = "dst-ip" }

[[group]]
name = "dead"
members = ["gone"]

[[route]]
prefix = "0.0.0.0/2"
group = "web"

[[route]]
prefix = "64.0.0.0/2"
group = "tunnels-v4"

[[route]]
prefix = "128.0.0.0/2"
group = "tunnels-v6"

[[route]]
prefix = "192.168.0.0/16"
group = "mixed"

[[route]]
prefix = "192.0.2.0/24"
group = "lbkey"

[[route]]
prefix = "172.16.0.0/12"
group = "dead"

[[route]]
prefix = "::/3"
group = "mixed"

[[route]]
prefix = "2000::/3"
group = "tunnels-v6"

[[route]]
prefix = "2001:db8:dead::/48"
group = "dead"

[[route]]
prefix = "4000::/2"
group = "tunnels-v4"
"#;

/// Frames the pool owns: every frame of an input may be in flight at once, and its sent copy
/// is held until the input's checks have run.
const POOL_FRAMES: usize = 2 * MAX_RECORDS + 64;
/// Clock advance per poll: much less than the tx drain timer, so both drain paths run.
const POLL_NS: u64 = 20_000;
/// The clock at the first poll.
const START_NS: u64 = 1_000_000_000 + POLL_NS;

/// What one input did, as counter deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Frames injected (and received).
    pub received: u64,
    /// Frames sent.
    pub sent: u64,
    /// Frames dropped, by reason (indexed by [`DropReason`]).
    pub drops: [u64; DropReason::COUNT],
}

impl Outcome {
    /// Drops for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }
}

/// One route change, replayed on each FIB copy in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteOp {
    /// Install `prefix/len` toward a group.
    Add4(Ipv4Addr, u8, GroupId),
    /// Remove `prefix/len`.
    Del4(Ipv4Addr, u8),
    /// Install `prefix/len` toward a group.
    Add6(Ipv6Addr, u8, GroupId),
    /// Remove `prefix/len`.
    Del6(Ipv6Addr, u8),
}

impl RouteOp {
    /// Applies the change and checks its effect on the exact prefix.
    fn apply(self, fib4: &mut Fib4, fib6: &mut Fib6) {
        match self {
            RouteOp::Add4(p, len, g) => {
                let before = fib4.get(p, len);
                let want = if fib4.insert(p, len, g).is_ok() {
                    Some(g)
                } else {
                    before
                };
                assert_eq!(fib4.get(p, len), want, "{self:?}");
            }
            RouteOp::Del4(p, len) => {
                let before = fib4.get(p, len);
                let want = if fib4.remove(p, len).is_ok() {
                    None
                } else {
                    before
                };
                assert_eq!(fib4.get(p, len), want, "{self:?}");
            }
            RouteOp::Add6(p, len, g) => {
                let before = fib6.get(p, len);
                let want = if fib6.insert(p, len, g).is_ok() {
                    Some(g)
                } else {
                    before
                };
                assert_eq!(fib6.get(p, len), want, "{self:?}");
            }
            RouteOp::Del6(p, len) => {
                let before = fib6.get(p, len);
                let want = if fib6.remove(p, len).is_ok() {
                    None
                } else {
                    before
                };
                assert_eq!(fib6.get(p, len), want, "{self:?}");
            }
        }
    }
}

/// The FIB copies no snapshot publishes (see the module doc).
struct SpareFibs {
    fib4: Arc<Fib4>,
    fib6: Arc<Fib6>,
    /// Changes the live copies got and these did not yet.
    behind: Vec<RouteOp>,
}

/// The rig (worker, ports, clock) and its tables.
pub struct Harness {
    rig: Rig,
    tables: Tables,
    /// Hop states or routes changed since the last publish.
    unpublished: bool,
    /// Route changes since the last publish, in order.
    routes: Vec<RouteOp>,
    spare: SpareFibs,
}

thread_local! {
    // A pool and its ports are `!Send` (one worker thread owns them), hence per thread rather
    // than a `static`; libFuzzer runs inputs on one thread, so this is built once.
    static HARNESS: RefCell<Harness> = RefCell::new(Harness::new());
}

/// Runs `input` through this thread's harness (built on first use); panics when a check fails.
pub fn run_one(input: &[u8]) -> Outcome {
    HARNESS.with_borrow_mut(|h| h.run(input))
}

impl Harness {
    /// Builds the worker from [`CONFIG`]. Panics if the config or tables do not build: that is
    /// a harness bug, found by the first input.
    pub fn new() -> Self {
        let cfg = match Config::parse(CONFIG, "fuzz/src/harness.rs") {
            Ok(c) => c,
            Err(e) => panic!("fuzz config: {e}"),
        };
        let opts = RigOptions {
            pool_frames: POOL_FRAMES,
            tx_mode: TxMode::Collect,
            start_ns: START_NS,
            step_ns: POLL_NS,
        };
        let (rig, tables) = match Rig::from_config(&cfg, opts) {
            Ok(r) => r,
            Err(e) => panic!("fuzz rig: {e}"),
        };
        // The one full copy of each FIB, made once per process.
        let spare = SpareFibs {
            fib4: Arc::new(Fib4::clone(&tables.snapshot.fib4)),
            fib6: Arc::new(Fib6::clone(&tables.snapshot.fib6)),
            behind: Vec::new(),
        };
        Harness {
            rig,
            tables,
            unpublished: false,
            routes: Vec::new(),
            spare,
        }
    }

    /// Feeds one input's records through the worker and checks what came out.
    pub fn run(&mut self, input: &[u8]) -> Outcome {
        let before = self.rig.counters().clone();
        let mut injected = 0u64;
        for record in Records::new(input) {
            match record {
                Record::Barrier(step_ns) => {
                    self.publish();
                    self.poll_until_idle();
                    self.rig.advance(step_ns);
                }
                Record::HopState {
                    hop_selector,
                    state,
                    clear,
                } => self.set_hop_state(hop_selector, state, clear),
                Record::Route {
                    add,
                    addr,
                    len,
                    group_selector,
                } => self.change_route(add, addr, len, group_selector),
                Record::Frame { port, bytes } => {
                    self.publish();
                    let bytes = &bytes[..bytes.len().min(MAX_PACKET)];
                    if let Err(e) = self.rig.inject(port as PortId, bytes) {
                        panic!("inject (the pool is sized for every record): {e}");
                    }
                    injected += 1;
                }
            }
        }
        self.publish();
        self.poll_until_idle();
        let sent = self.check_and_return_sent();
        let after = self.rig.counters().clone();
        let outcome = delta(&before, &after);
        assert_eq!(outcome.received, injected, "frames received vs injected");
        assert_eq!(
            outcome.received,
            outcome.sent + outcome.drops.iter().sum::<u64>(),
            "rx != tx + drops: {outcome:?}"
        );
        assert_eq!(outcome.sent, sent, "tx counter vs frames on the ports");
        assert_eq!(
            self.rig.pool().outstanding(),
            0,
            "frames leaked: {outcome:?}"
        );
        assert_eq!(
            self.rig.pool().stats().foreign_releases,
            0,
            "foreign release"
        );
        outcome
    }

    /// Polls until every injected frame went through and the tx batches were drained: the
    /// last poll receives nothing, and a poll that receives nothing drains every partial tx
    /// batch (and picks up a published snapshot even when no frame is queued).
    fn poll_until_idle(&mut self) {
        if let Err(e) = self.rig.run_pending() {
            panic!("{e}");
        }
        let received = self.rig.poll();
        assert_eq!(received, 0, "frames received after none were pending");
    }

    /// Publishes the hop-state and route changes made since the last call, as one snapshot.
    fn publish(&mut self) {
        if !self.unpublished {
            return;
        }
        if !self.routes.is_empty() {
            self.swap_fibs();
        }
        self.rig.publish(self.tables.rebuild_snapshot());
        self.unpublished = false;
    }

    /// Brings the spare FIBs up to date with the pending route changes and makes them the live
    /// ones (in `tables`, for the next snapshot); the live ones become the spare.
    fn swap_fibs(&mut self) {
        let spare_in_use = |s: &mut SpareFibs| {
            Arc::get_mut(&mut s.fib4).is_none() || Arc::get_mut(&mut s.fib6).is_none()
        };
        if spare_in_use(&mut self.spare) {
            // The worker still holds the snapshot the spare was last published in: it leaves it
            // at its next poll, after the frames injected so far went through on it.
            self.poll_until_idle();
        }
        // Never taken in practice once the worker polled; kept so that a harness change that
        // holds a snapshot longer costs a copy rather than a wrong FIB.
        let fib4 = Arc::make_mut(&mut self.spare.fib4);
        let fib6 = Arc::make_mut(&mut self.spare.fib6);
        for op in self.spare.behind.iter().chain(&self.routes) {
            op.apply(fib4, fib6);
        }
        std::mem::swap(&mut self.spare.fib4, &mut self.tables.snapshot.fib4);
        std::mem::swap(&mut self.spare.fib6, &mut self.tables.snapshot.fib6);
        self.spare.behind = std::mem::take(&mut self.routes);
    }

    /// Records a route change (applied by [`Self::publish`]).
    fn change_route(&mut self, add: bool, addr: IpAddr, len: u8, group_selector: u8) {
        let groups = self.tables.groups.len();
        let group = 1 + (usize::from(group_selector) % groups) as GroupId;
        let op = match (addr, add) {
            (IpAddr::V4(a), true) => RouteOp::Add4(a, len, group),
            (IpAddr::V4(a), false) => RouteOp::Del4(a, len),
            (IpAddr::V6(a), true) => RouteOp::Add6(a, len, group),
            (IpAddr::V6(a), false) => RouteOp::Del6(a, len),
        };
        self.routes.push(op);
        self.unpublished = true;
    }

    /// Moves one hop to a new state in every group it belongs to (published by [`Self::publish`]).
    fn set_hop_state(&mut self, selector: u8, state: u8, clear: bool) {
        let hop = 1 + (usize::from(selector) % self.tables.hop_names.len()) as HopId;
        let state =
            [HopState::Active, HopState::Draining, HopState::Failed][usize::from(state % 3)];
        for g in &mut self.tables.groups {
            if g.member(hop).is_some() {
                if let Err(e) = g.set_state(hop, state) {
                    panic!("set_state({hop}, {state:?}) on a member: {e}");
                }
                if clear {
                    g.clear();
                }
            }
        }
        self.unpublished = true;
    }

    /// Checks every frame the ports sent, returns them to the pool, and counts them.
    fn check_and_return_sent(&mut self) -> u64 {
        // Hop state changes only replace group tables; hops and ports stay as built.
        let snap = Arc::clone(self.rig.snapshot());
        let mut sent = 0;
        self.rig.for_each_sent(|port, frame| {
            check_sent(&snap, usize::from(port), frame);
            sent += 1;
        });
        sent
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

fn delta(before: &Counters, after: &Counters) -> Outcome {
    let get = |c: Counter| after.get(c) - before.get(c);
    let mut drops = [0; DropReason::COUNT];
    for r in DropReason::ALL {
        drops[r as usize] = after.drops(r) - before.drops(r);
    }
    Outcome {
        received: get(Counter::RxPackets),
        sent: get(Counter::TxPackets),
        drops,
    }
}

/// The checks on one frame sent on port `port` (see the module doc).
pub fn check_sent(snap: &Snapshot, port: usize, frame: &[u8]) {
    let meta = match parse_frame(frame) {
        Ok(m) => m,
        Err(e) => panic!("sent frame does not parse ({e}): {frame:02x?}"),
    };
    let inner = check_accepted(frame, &meta);
    assert_eq!(meta.vlan_depth, 0, "sent frame tagged: {meta:?}");
    assert_eq!(
        ethernet::HEADER_LEN + usize::from(meta.ip_len),
        frame.len(),
        "sent frame padded or cut: {meta:?}"
    );
    assert!(meta.ttl >= 1, "sent with TTL 0: {meta:?}");
    let Some(info) = snap.ports.get(port) else {
        panic!("sent on port {port}, which the snapshot does not have");
    };
    assert!(
        meta.ip_len <= info.mtu,
        "over the MTU of port {port}: {meta:?}"
    );
    assert_eq!(frame[6..12], info.mac, "source MAC of port {port}");
    let hop = snap
        .hops
        .iter()
        .skip(1)
        .find(|h| usize::from(h.port) == port && frame[..6] == h.mac);
    let Some(hop) = hop else {
        panic!("sent on port {port} to {:02x?}, no hop there", &frame[..6]);
    };
    let Action::Encap(encap) = hop.action else {
        return;
    };
    assert_eq!(
        (meta.src_ip(), meta.dst_ip()),
        (encap.src, encap.dst),
        "tunnel endpoints of hop {}",
        hop.id
    );
    let udp_to = |m: &PacketMeta, port: u16| m.protocol == ip_proto::UDP && m.dst_port == port;
    let (kind_ok, has_inner) = match encap.kind {
        EncapKind::IpIp => {
            let p = meta.protocol;
            (p == ip_proto::IPV4 || p == ip_proto::IPV6, true)
        }
        EncapKind::Gre { .. } => (meta.protocol == ip_proto::GRE, true),
        EncapKind::Vxlan { port, .. } => (udp_to(&meta, port), port == udp_port::VXLAN),
        EncapKind::Gue { port } | EncapKind::MplsUdp { port, .. } => (udp_to(&meta, port), false),
    };
    assert!(kind_ok, "outer headers of {:?}: {meta:?}", encap.kind);
    if has_inner {
        let Some(inner) = inner else {
            panic!("no inner packet under {:?}: {frame:02x?}", encap.kind);
        };
        assert!(inner.ttl >= 1, "inner TTL 0: {inner:?}");
        let family_ok = matches!(
            (encap.dst, meta.version),
            (IpAddr::V4(_), ecmp_wire::IpVersion::V4) | (IpAddr::V6(_), ecmp_wire::IpVersion::V6)
        );
        assert!(family_ok, "outer family of {:?}", encap.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{RX_PORT_MACS, barrier, encode_frames, hop_state, route};
    use crate::seeds;

    fn corpus_frame(name: &str) -> Vec<u8> {
        let corpus = seeds::wire_corpus().expect("corpus readable");
        corpus
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f)
            .expect("frame in the corpus")
    }

    #[test]
    fn config_builds_and_covers_every_action() {
        let h = Harness::new();
        let hops = &h.rig.snapshot().hops;
        let kinds: Vec<_> = hops
            .iter()
            .skip(1)
            .map(|h| match h.action {
                Action::Rewrite => "rewrite",
                Action::Encap(e) => match e.kind {
                    EncapKind::IpIp => "ipip",
                    EncapKind::Gre { .. } => "gre",
                    EncapKind::Vxlan { .. } => "vxlan",
                    EncapKind::Gue { .. } => "gue",
                    EncapKind::MplsUdp { .. } => "mpls-udp",
                },
            })
            .collect();
        for k in ["rewrite", "ipip", "gre", "vxlan", "gue", "mpls-udp"] {
            assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
        }
    }

    #[test]
    fn every_corpus_frame_is_sent_or_dropped_by_its_reason() {
        let mut h = Harness::new();
        for (name, frame) in seeds::wire_corpus().expect("corpus readable") {
            // On the port whose MAC the corpus frames are sent to (fabric, 02:00:00:00:00:02).
            let out = h.run(&encode_frames([(1, &frame[..])]));
            assert_eq!(out.received, 1, "{name}");
            let expected = name.split("__").next().expect("name has a verdict");
            if expected == "ok" {
                // Every valid corpus frame has a route in CONFIG, and is addressed to its port.
                assert_eq!(
                    out.dropped(DropReason::NoRoute),
                    0,
                    "{name} unrouted: {out:?}"
                );
                assert_eq!(out.dropped(DropReason::NotForUs), 0, "{name}: {out:?}");
            } else {
                let reason = DropReason::ALL
                    .into_iter()
                    .find(|r| r.name() == expected)
                    .expect("corpus verdict is a drop reason");
                assert_eq!(out.dropped(reason), 1, "{name}: {out:?}");
            }
        }
    }

    #[test]
    fn many_flows_in_one_input_across_timeouts_and_hop_failures() {
        let mut h = Harness::new();
        let syn = corpus_frame("ok__ipv4_tcp_syn");
        // The same SYN to destinations in every IPv4 route, from many source ports.
        let mut frames = Vec::new();
        for (i, dst) in [
            [10, 0, 0, 2],
            [70, 1, 2, 3],
            [130, 1, 2, 3],
            [192, 168, 1, 1],
        ]
        .iter()
        .enumerate()
        {
            for sport in 0..12u16 {
                let mut f = syn.clone();
                f[30..34].copy_from_slice(dst);
                f[34..36].copy_from_slice(&(1000 + sport).to_be_bytes());
                ecmp_wire::ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
                f[..6].copy_from_slice(&RX_PORT_MACS[i % 2]);
                frames.push((i % 2, f));
            }
        }
        let mut input = encode_frames(frames.iter().map(|(p, f)| (*p, &f[..])));
        input.extend_from_slice(&barrier(2));
        for hop in 0..12u8 {
            input.extend_from_slice(&hop_state(hop, 2, hop % 3 == 0));
        }
        input.extend(encode_frames(
            frames.iter().take(20).map(|(p, f)| (*p, &f[..])),
        ));
        input.extend_from_slice(&barrier(3));
        for hop in 0..12u8 {
            input.extend_from_slice(&hop_state(hop, 0, true));
        }
        let out = h.run(&input);
        assert_eq!(out.received, 68);
        assert!(out.sent >= 48, "the first round is routed: {out:?}");
        assert!(out.dropped(DropReason::NoNextHop) > 0, "every hop failed");
        // And the next input still forwards everything (hops are active again).
        let again = h.run(&encode_frames(frames.iter().map(|(p, f)| (*p, &f[..]))));
        assert_eq!((again.received, again.sent), (48, 48), "{again:?}");
    }

    #[test]
    fn routes_added_and_removed_between_bursts_steer_cached_flows() {
        let mut h = Harness::new();
        // Per stage: (sent, no route, no next hop) of the two probes.
        let want = [(0, 2, 0), (2, 0, 0), (1, 0, 1), (1, 1, 0), (0, 2, 0)];
        for (i, (stage, want)) in seeds::route_churn_stages().iter().zip(want).enumerate() {
            let out = h.run(stage);
            let got = (
                out.sent,
                out.dropped(DropReason::NoRoute),
                out.dropped(DropReason::NoNextHop),
            );
            assert_eq!(got, want, "stage {i}: {out:?}");
        }
        // The live FIB is back to the configured routes; the spare lacks only the last change,
        // which it gets before its next use.
        let live = &h.tables.snapshot.fib4;
        assert_eq!(live.lookup_addr(Ipv4Addr::new(200, 1, 2, 3)), 0);
        assert_eq!(live.lookup_addr(Ipv4Addr::new(10, 0, 0, 1)), 1);
        assert_eq!(h.spare.fib4.lookup_addr(Ipv4Addr::new(200, 1, 2, 3)), 1);
        assert_eq!(
            h.spare.behind,
            vec![RouteOp::Del4(Ipv4Addr::new(200, 1, 0, 0), 16)]
        );
        assert!(h.routes.is_empty());
    }

    #[test]
    fn route_changes_within_one_input_take_turns_on_both_copies() {
        let mut h = Harness::new();
        let probes = seeds::route_probes();
        let probe = encode_frames([(0, &probes[0][..])]);
        let net: IpAddr = "200.1.0.0".parse().expect("v4");
        // Four swaps in one input, each after a frame: the second needs the worker to leave the
        // copy it holds, so the frame before it goes through on the tables it was injected under.
        let mut input = Vec::new();
        for group in [0u8, 5, 0, 5] {
            input.extend(route(true, net, 16, group));
            input.extend_from_slice(&probe);
        }
        let out = h.run(&input);
        assert_eq!(out.received, 4);
        assert_eq!(
            (out.sent, out.dropped(DropReason::NoNextHop)),
            (2, 2),
            "{out:?}"
        );
    }

    #[test]
    fn check_sent_accepts_a_rewrite_and_rejects_wrong_macs() {
        let h = Harness::new();
        let snap = Arc::clone(h.rig.snapshot());
        let mut f = corpus_frame("ok__ipv4_tcp_syn");
        f[..6].copy_from_slice(&snap.hops[1].mac);
        f[6..12].copy_from_slice(&snap.ports[0].mac);
        check_sent(&snap, 0, &f);
        let on_wrong_port = std::panic::catch_unwind(|| check_sent(&snap, 1, &f));
        assert!(on_wrong_port.is_err(), "no hop of port 1 has that MAC");
        let mut g = f.clone();
        g[11] ^= 1;
        assert!(std::panic::catch_unwind(|| check_sent(&snap, 0, &g)).is_err());
        // An IP-in-IP hop's MAC on a plain packet: not the hop's tunnel.
        let ipip = snap
            .hops
            .iter()
            .find(|h| matches!(h.action, Action::Encap(e) if e.kind == EncapKind::IpIp))
            .expect("an IP-in-IP hop");
        let mut t = f.clone();
        t[..6].copy_from_slice(&ipip.mac);
        t[6..12].copy_from_slice(&snap.ports[usize::from(ipip.port)].mac);
        let port = usize::from(ipip.port);
        assert!(std::panic::catch_unwind(|| check_sent(&snap, port, &t)).is_err());
    }

    #[test]
    fn rx_port_macs_are_the_configs() {
        let h = Harness::new();
        let snap = h.rig.snapshot();
        for (port, mac) in RX_PORT_MACS.iter().enumerate() {
            assert_eq!(&snap.ports[port].mac, mac, "rx port {port}");
        }
    }

    #[test]
    fn oversized_and_empty_frames() {
        let mut h = Harness::new();
        let big = vec![0xAB; 2047];
        let out = h.run(&encode_frames([(0, &big[..]), (1, &[][..])]));
        assert_eq!((out.received, out.sent), (2, 0));
        assert_eq!(out.dropped(DropReason::Truncated), 1);
        assert_eq!(out.dropped(DropReason::UnknownEthertype), 1);
    }

    #[test]
    fn seeds_run_clean() {
        let mut h = Harness::new();
        for (name, input) in seeds::seed_dir("pipeline").expect("pipeline seeds") {
            let out = h.run(&input);
            // A minimized corpus may keep an input for the table events it drives alone.
            let generated = !name.starts_with("cmin-") && !name.starts_with("crash-");
            assert!(!generated || out.received > 0, "{name} injects nothing");
        }
        // The seeds reach every next hop but the failed one, so every action gets fuzzed.
        let sent = h.rig.worker().pipeline().hop_packets();
        let names = &h.tables.hop_names;
        let idle: Vec<_> = names
            .iter()
            .enumerate()
            .filter(|&(i, n)| n != "gone" && sent.get(i + 1).is_none_or(|&c| c == 0))
            .collect();
        assert!(idle.is_empty(), "hops no seed reaches: {idle:?} ({sent:?})");
    }
}
