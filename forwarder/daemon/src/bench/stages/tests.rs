use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ecmp_dataplane::pipeline::{Pipeline, Verdict};

use super::*;
use crate::bench::{BenchAction, BenchOptions, run_with_stages};
use ecmp_testkit::frames::FrameSpec;

// Counts this thread's allocations, so the tests can check the timed loops make none.
#[global_allocator]
static GLOBAL: ecmp_port::alloc_count::CountingAllocator =
    ecmp_port::alloc_count::CountingAllocator;

fn tiny(action: BenchAction) -> BenchOptions {
    BenchOptions {
        flows: 1_000,
        routes: 2_000,
        seed: 11,
        ..super::super::tests::small(action)
    }
}

const TIMED: [Stage; 6] = [
    Stage::Parse,
    Stage::Hash,
    Stage::Lpm,
    Stage::FlowCache,
    Stage::Bucket,
    Stage::Action,
];

#[test]
fn bursts_cover_exactly_the_packets_asked_cycling_over_the_inputs() {
    for (len, packets) in [
        (1_000usize, 10_000u64),
        (7, 100),
        (100, 33),
        (64, 64),
        (5, 0),
    ] {
        let mut seen = vec![0u64; len];
        let mut total = 0;
        for r in Bursts::new(len, packets) {
            assert!(!r.is_empty() && r.len() <= BURST && r.end <= len, "{r:?}");
            for i in r {
                seen[i] += 1;
                total += 1;
            }
        }
        assert_eq!(total, packets);
        // Replay order: every input once per pass, earlier inputs first in a partial pass.
        let passes = packets / len as u64;
        let rest = (packets % len as u64) as usize;
        for (i, &n) in seen.iter().enumerate() {
            assert_eq!(n, passes + u64::from(i < rest), "input {i}");
        }
    }
    assert_eq!(Bursts::new(0, 10).count(), 0);
}

/// Every stage was timed, in order, over `packets` packets, and no timed loop allocated.
fn assert_every_stage_timed(m: &Measured, packets: u64) {
    let stages: Vec<Stage> = m.reports.iter().map(|r| r.stage).collect();
    assert_eq!(stages, TIMED);
    for r in &m.reports {
        assert_eq!(r.packets, packets, "{r:?}");
        assert!(
            r.ns_per_packet.is_finite() && r.ns_per_packet > 0.0,
            "{r:?}"
        );
    }
    assert_eq!(m.allocations, 0, "the timed loops allocated");
}

#[test]
fn every_stage_is_timed_over_the_packets_asked_without_allocating() {
    for action in [BenchAction::Rewrite, BenchAction::Vxlan] {
        let opts = tiny(action);
        let setup = BenchSetup::new(&opts).unwrap();
        let m = measure_all(&setup, opts.packets).unwrap();
        assert_every_stage_timed(&m, 10_000);
        // Every flow was inserted by the warm-up, so lookups find them (1000 flows in a
        // 2048-flow cache: only a flow whose two candidate buckets overflowed is missing).
        assert!(m.cache_hits > 9_000, "{} hits", m.cache_hits);
    }
}

/// Length of every frame of [`mixed_setup`] (the shorter ones padded).
const MIXED_FRAME_LEN: usize = 128;

/// An outer IP header (`src` to `dst`, carrying the IP packet `inner`) and Ethernet, padded
/// to [`MIXED_FRAME_LEN`]: IPv4-in-IPv4 or IPv6-in-IPv6, one tunnel whatever the inner flow.
fn tunnelled(src: IpAddr, dst: IpAddr, inner: &[u8]) -> Vec<u8> {
    let protocol = if src.is_ipv4() { 4 } else { 41 };
    let mut f = FrameSpec::raw(src, dst, protocol, inner).build().unwrap();
    f.resize(MIXED_FRAME_LEN, 0);
    f
}

/// What the bench generator does not make: group 1 takes IPv4 10.1/16, group 2 IPv6
/// 2001:db8:2::/48, and group 3, whose policy hashes inner headers, the tunnel endpoints
/// 10.3/16 and 2001:db8:3::/48. `flows` flows of each kind, interleaved.
fn mixed_setup(flows: u16) -> BenchSetup {
    let opts = BenchOptions {
        groups: 3,
        routes: 1,
        ..tiny(BenchAction::Rewrite)
    };
    let mut setup = BenchSetup::new(&opts).unwrap();
    let snap = &mut setup.snapshot;
    let mut fib4 = ecmp_tables::Fib4::new(16);
    fib4.insert(Ipv4Addr::new(10, 1, 0, 0), 16, 1).unwrap();
    fib4.insert(Ipv4Addr::new(10, 3, 0, 0), 16, 3).unwrap();
    let mut fib6 = ecmp_tables::Fib6::new();
    fib6.insert("2001:db8:2::".parse().unwrap(), 48, 2).unwrap();
    fib6.insert("2001:db8:3::".parse().unwrap(), 48, 3).unwrap();
    snap.fib4 = Arc::new(fib4);
    snap.fib6 = Arc::new(fib6);
    let mut inner = (*snap.groups[3]).clone();
    inner.policy.inner = true;
    assert!(snap.groups.set(3, Arc::new(inner)));
    setup.routes = vec![(0x0a01_0000, 16), (0x0a03_0000, 16)];

    let v4 = |s: u16| {
        let (src, dst) = (Ipv4Addr::new(172, 16, 0, 1), Ipv4Addr::new(10, 1, 0, 1));
        FrameSpec::udp(src.into(), dst.into(), 1000 + s, 53, 0)
    };
    let v6 = |s: u16| {
        let src: Ipv6Addr = "2001:db8:ffff::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
        FrameSpec::udp(src.into(), dst.into(), 1000 + s, 53, 0)
    };
    let padded = |spec: FrameSpec| spec.frame_len(MIXED_FRAME_LEN);
    let (tun4_src, tun4_dst) = (Ipv4Addr::new(172, 16, 9, 9), Ipv4Addr::new(10, 3, 0, 1));
    let tun6_src: Ipv6Addr = "2001:db8:ffff::9".parse().unwrap();
    let tun6_dst: Ipv6Addr = "2001:db8:3::1".parse().unwrap();
    let mut frames = Vec::new();
    for i in 0..flows {
        frames.extend(padded(v4(i)).build().unwrap());
        frames.extend(padded(v6(i)).build().unwrap());
        let inner4 = v4(i).build_ip().unwrap();
        let inner6 = v6(i).build_ip().unwrap();
        frames.extend(tunnelled(tun4_src.into(), tun4_dst.into(), &inner4));
        frames.extend(tunnelled(tun6_src.into(), tun6_dst.into(), &inner6));
    }
    setup.frames = frames;
    setup.frame_len = MIXED_FRAME_LEN;
    setup
}

/// Kinds of the flows of [`mixed_setup`], in frame order, and each kind's group.
const MIXED_KINDS: [(&str, GroupId); 4] = [("ipv4", 1), ("ipv6", 2), ("inner4", 3), ("inner6", 3)];

#[test]
fn resolve_agrees_with_the_pipeline_for_ipv4_ipv6_and_inner_hashing() {
    let setup = mixed_setup(32);
    let snap = &setup.snapshot;
    let hasher = FlowHasher::new(setup.pipeline.seed, &setup.pipeline.rss_key);
    let pool = FramePool::new(4);
    let mut hops: Vec<BTreeSet<HopId>> = vec![BTreeSet::new(); MIXED_KINDS.len()];
    let mut outer_hashes: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); MIXED_KINDS.len()];
    for (i, frame) in setup.frames().enumerate() {
        let (kind, group) = MIXED_KINDS[i % MIXED_KINDS.len()];
        let r = resolve(snap, &hasher, frame).unwrap();
        assert_eq!(r.miss.group, group, "{kind}");
        // Group 3 hashes inner headers, so its flows are keyed by the group's policy; the
        // other groups hash the outer 5-tuple and keep the outer key.
        let policy_keyed = kind.starts_with("inner");
        assert_eq!(r.key.key.group, if policy_keyed { 3 } else { 0 }, "{kind}");

        // A pipeline that has seen nothing, so the flow takes its miss path; the flows of a
        // tunnel share their outer headers but each is cached under its inner key.
        let mut p = Pipeline::new(&setup.pipeline).unwrap();
        p.on_new_snapshot(snap);
        let mut frames = [pool.frame_from(frame).unwrap()];
        let mut verdicts = [Verdict::Drop(DropReason::NoRoute)];
        p.process(snap, INGRESS, &mut frames, &mut verdicts, NOW_MS);
        let [f] = frames;
        pool.release(f);
        assert_eq!(verdicts[0], Verdict::Tx(1), "{kind}");
        let sent: Vec<usize> = (0..p.hop_packets().len())
            .filter(|&h| p.hop_packets()[h] == 1)
            .collect();
        assert_eq!(sent, [r.miss.hop as usize], "{kind}");
        assert_eq!(
            p.flow_cache().peek(&r.key.key, r.hash, NOW_MS),
            Some(r.miss.cached_hop(snap.generation as u32)),
            "{kind}"
        );

        hops[i % MIXED_KINDS.len()].insert(r.miss.hop);
        outer_hashes[i % MIXED_KINDS.len()].insert(hasher.group_hash(&r.meta, &r.miss.policy));
    }
    for ((kind, _), (hops, outer)) in MIXED_KINDS.iter().zip(hops.iter().zip(&outer_hashes)) {
        // 32 flows over a group of 4 hops: more than one hop used...
        assert!(hops.len() > 1, "{kind}: {hops:?}");
        // ...which for a tunnel is the inner hash at work: on its outer headers every flow
        // hashes alike.
        if kind.starts_with("inner") {
            assert_eq!(outer.len(), 1, "{kind}");
        }
    }
}

#[test]
fn every_stage_runs_on_ipv6_and_inner_hashed_flows_without_allocating() {
    let setup = mixed_setup(32);
    let m = measure_all(&setup, 10_000).unwrap();
    assert_every_stage_timed(&m, 10_000);
    assert_eq!(m.cache_hits, 10_000);
}

#[test]
fn stage_packets_are_capped() {
    assert_eq!(stage_packets(10), 10);
    assert_eq!(stage_packets(u64::MAX), MAX_STAGE_PACKETS);
}

#[test]
fn the_report_carries_every_stage_and_the_pipeline() {
    let opts = tiny(BenchAction::Rewrite);
    let r = run_with_stages(&opts).unwrap();
    let names: Vec<&str> = r.stages.iter().map(|s| s.stage.name()).collect();
    assert_eq!(
        names,
        [
            "parse",
            "hash",
            "lpm",
            "flow_cache",
            "bucket",
            "action",
            "pipeline"
        ]
    );
    for s in &r.stages {
        assert!(
            s.ns_per_packet.is_finite() && s.ns_per_packet > 0.0,
            "{s:?}"
        );
    }
    // The six stages each time exactly the packets asked; the pipeline entry is the main
    // run's own count (whole bursts, so up to a burst more).
    let timed: u64 = r.stages[..6].iter().map(|s| s.packets).sum();
    assert_eq!(timed, 6 * opts.packets);
    let pipeline = r.stages[6];
    assert_eq!(pipeline.packets, r.packets);
    assert_eq!(pipeline.ns_per_packet, r.ns_per_packet);
    assert!(r.packets >= opts.packets && r.packets < opts.packets + BURST as u64);

    let json = serde_json::to_value(&r).unwrap();
    let stages = json["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 7);
    assert_eq!(stages[3]["stage"], "flow_cache");
    assert_eq!(stages[3]["packets"], 10_000);

    let table = render(&r.stages);
    for name in names {
        assert!(table.lines().any(|l| l.starts_with(name)), "{table}");
    }
}

#[test]
fn without_stages_the_report_has_no_stages_field() {
    let r = crate::bench::run(&tiny(BenchAction::Rewrite)).unwrap();
    assert!(r.stages.is_empty());
    let json = serde_json::to_value(&r).unwrap();
    assert!(json.get("stages").is_none(), "{json}");
    assert!(json.get("ns_per_packet").is_some());
}
