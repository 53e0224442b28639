//! The product's promises, end to end through one worker: only a failed hop's flows move,
//! draining keeps established flows, recovery per mode, a full flow cache never drops packets,
//! and every drop is counted by reason with no frame leaked.

mod common;

use common::*;
use ecmp_dataplane::counters::Counter;
use ecmp_dataplane::drop::DropReason;
use ecmp_tables::nexthop::HopState;

#[test]
fn a_failed_hop_moves_only_its_own_flows() {
    let mut lab = Lab::new(&vip_config(8, "auto-recovery", 256, 1 << 14));
    let fl = flows(4000, 1);
    let before = placement(&mut lab, &fl, true);
    assert_eq!(tally(&before).len(), 8, "every hop gets flows");

    lab.set_state(3, HopState::Failed);
    let after = placement(&mut lab, &fl, false);
    let mut moved = 0;
    for (b, a) in before.iter().zip(&after) {
        if *b == 3 {
            assert_ne!(*a, 3, "a flow stayed on the failed hop");
            moved += 1;
        } else {
            assert_eq!(b, a, "a flow of a healthy hop moved");
        }
    }
    assert_eq!(moved, tally(&before)[&3]);
    assert!(lab.counter(Counter::Repicks) >= moved as u64);
    // The failed hop's flows spread over all survivors, not onto one.
    let spread = tally(
        &after
            .iter()
            .zip(&before)
            .filter(|(_, b)| **b == 3)
            .map(|(a, _)| *a)
            .collect::<Vec<_>>(),
    );
    assert_eq!(spread.len(), 7);
}

#[test]
fn draining_keeps_established_flows_and_takes_no_new_ones() {
    let mut lab = Lab::new(&vip_config(8, "auto-recovery", 256, 1 << 14));
    let old = flows(3000, 2);
    let before = placement(&mut lab, &old, true);
    lab.set_state(5, HopState::Draining);
    assert_eq!(
        placement(&mut lab, &old, false),
        before,
        "no established flow moves on drain"
    );
    let new = flows(3000, 3);
    let fresh = placement(&mut lab, &new, true);
    assert!(!fresh.contains(&5), "the draining hop took a new flow");
    assert_eq!(tally(&fresh).len(), 7);
}

#[test]
fn auto_recovery_returns_the_buckets_and_keeps_moved_flows_where_they_are() {
    let mut lab = Lab::new(&vip_config(8, "auto-recovery", 256, 1 << 14));
    let owners_before = lab.tables.groups[0].bucket_owners().to_vec();
    let fl = flows(3000, 4);
    let before = placement(&mut lab, &fl, true);
    lab.set_state(2, HopState::Failed);
    let during = placement(&mut lab, &fl, false);
    lab.set_state(2, HopState::Active);
    assert_eq!(lab.tables.groups[0].bucket_owners(), &owners_before[..]);
    // Established flows stay on the hop they are on now (moving them back would reset them again).
    assert_eq!(placement(&mut lab, &fl, false), during);
    // New flows use the returned buckets again: the same 5-tuples as new SYNs after their cache
    // entries are gone land exactly where they did before the failure.
    lab.advance_ms(301_000);
    assert_eq!(placement(&mut lab, &fl, true), before);
}

#[test]
fn manual_mode_gives_a_returning_hop_nothing_until_clear() {
    let mut lab = Lab::new(&vip_config(4, "manual", 64, 1 << 14));
    lab.set_state(1, HopState::Failed);
    lab.set_state(1, HopState::Active);
    let fl = flows(2000, 5);
    assert!(
        !placement(&mut lab, &fl, true).contains(&1),
        "hop 1 got buckets before clear"
    );
    lab.tables.group_mut(1).unwrap().clear();
    lab.publish();
    lab.advance_ms(301_000);
    let after = placement(&mut lab, &fl, true);
    assert_eq!(
        tally(&after).len(),
        4,
        "after clear every hop takes new flows"
    );
}

#[test]
fn a_full_flow_cache_still_forwards_every_packet() {
    // 16 entries for 2000 flows: most flows cannot be cached, none may be dropped.
    let mut lab = Lab::new(&vip_config(4, "auto-recovery", 64, 16));
    let fl = flows(2000, 6);
    let p = placement(&mut lab, &fl, false);
    assert_eq!(p.len(), 2000);
    assert!(lab.counter(Counter::NotCached) + lab.counter(Counter::Evictions) > 0);
    assert_eq!(lab.counters().total_drops(), 0);
}

#[test]
fn embryonic_flows_never_evict_established_ones() {
    let mut lab = Lab::new(&vip_config(4, "auto-recovery", 64, 64));
    let est = flows(16, 7);
    placement(&mut lab, &est, false);
    let cached = lab.rig.worker().pipeline().flow_cache().len();
    let flood = flows(5000, 8);
    placement(&mut lab, &flood, true);
    // Every established flow is still a cache hit.
    let hits = lab.counter(Counter::CacheHits);
    placement(&mut lab, &est, false);
    let est_cached = cached.min(16) as u64;
    assert!(
        lab.counter(Counter::CacheHits) - hits >= est_cached,
        "a SYN flood evicted established flows"
    );
}

#[test]
fn drops_are_counted_by_reason_and_never_leak_frames() {
    let mut lab = Lab::new(&vip_config(2, "auto-recovery", 64, 1024));
    let ttl1 =
        ecmp_testkit::frames::FrameSpec::udp("198.18.0.1".parse().unwrap(), VIP.into(), 1, 2, 60)
            .ttl(1)
            .build()
            .unwrap();
    let no_route = ecmp_testkit::frames::FrameSpec::udp(
        "198.18.0.1".parse().unwrap(),
        "203.0.113.1".parse().unwrap(),
        1,
        2,
        60,
    )
    .build()
    .unwrap();
    let mut arp = vec![0u8; 60];
    arp[12] = 0x08;
    arp[13] = 0x06;
    let truncated = no_route[..20].to_vec();
    let out = lab.send(&[ttl1, no_route, arp, truncated]);
    assert!(out.is_empty());
    let c = lab.counters();
    assert_eq!(c.drops(DropReason::TtlExpired), 1);
    assert_eq!(c.drops(DropReason::NoRoute), 1);
    assert_eq!(c.drops(DropReason::UnknownEthertype), 1);
    assert_eq!(c.drops(DropReason::Truncated), 1);
    assert_eq!(c.get(Counter::RxPackets), 4);
    assert_eq!(lab.rig.pool().outstanding(), 0, "a dropped frame leaked");
}

#[test]
fn all_hops_failed_is_counted_not_panicked() {
    let mut lab = Lab::new(&vip_config(2, "auto-recovery", 64, 1024));
    lab.set_state(1, HopState::Failed);
    lab.set_state(2, HopState::Failed);
    let fl = flows(10, 9);
    let frames: Vec<_> = fl.iter().map(|f| f.syn.clone()).collect();
    assert!(lab.send(&frames).is_empty());
    assert_eq!(lab.counters().drops(DropReason::NoNextHop), 10);
    assert_eq!(lab.rig.pool().outstanding(), 0);
}

#[test]
fn workers_report_the_generation_they_use() {
    let mut lab = Lab::new(&vip_config(2, "auto-recovery", 64, 1024));
    lab.set_state(1, HopState::Draining);
    let generation = lab.rig.cell().generation();
    assert!(lab.rig.cell().min_reported() < generation);
    lab.send(&[flows(1, 10)[0].syn.clone()]);
    assert_eq!(lab.rig.cell().min_reported(), generation);
}
