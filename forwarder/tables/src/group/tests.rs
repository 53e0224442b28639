use super::*;
use proptest::prelude::*;

mod order;
mod rendezvous;

const NEW_HOP: HopId = 100;

fn sticky_modes() -> impl Strategy<Value = GroupMode> {
    prop_oneof![
        Just(GroupMode::Manual),
        Just(GroupMode::AutoRecovery),
        Just(GroupMode::Idle {
            idle_timer_ms: 1000,
            unbalanced_timer_ms: 0
        }),
    ]
}

/// Bucket count and the weights of hops 1..=n.
fn shape() -> impl Strategy<Value = (u32, Vec<u32>)> {
    (
        (0u32..=9).prop_map(|k| 1 << k),
        prop::collection::vec(1u32..=10, 1..=8),
    )
}

fn build(mode: GroupMode, buckets: u32, weights: &[u32]) -> ResilientGroup {
    build_seeded(mode, buckets, weights, 7)
}

/// Hops 1..=n with `weights`, balanced together, then every bucket used by a flow: the
/// resilient rules under traffic (before traffic the stateful modes keep the canonical
/// table instead; see `fresh`).
fn build_seeded(mode: GroupMode, buckets: u32, weights: &[u32], seed: u64) -> ResilientGroup {
    let g = fresh(mode, buckets, weights, seed);
    busy(&g);
    g
}

/// Hops 1..=n with `weights`, balanced together, before any traffic.
fn fresh(mode: GroupMode, buckets: u32, weights: &[u32], seed: u64) -> ResilientGroup {
    let mut g = ResilientGroup::new(buckets, mode, seed).unwrap();
    for (hop, &w) in (1..).zip(weights) {
        g.add_member(hop, w).unwrap();
    }
    g.clear();
    g
}

/// Marks every bucket used (a no-op for groups that keep no activity).
fn busy(g: &ResilientGroup) {
    if let Some(a) = g.activity() {
        (0..g.bucket_count() as usize).for_each(|b| a.touch(b, 1));
    }
}

#[derive(Debug, Clone)]
enum Ev {
    Add(HopId, u32),
    State(HopId, HopState),
    Weight(HopId, u32),
    Remove(HopId),
    Clear,
}

fn events() -> impl Strategy<Value = Vec<Ev>> {
    let hop = 1u32..=10;
    let state = prop_oneof![
        Just(HopState::Active),
        Just(HopState::Draining),
        Just(HopState::Failed)
    ];
    let ev = prop_oneof![
        2 => (hop.clone(), 1u32..=10).prop_map(|(h, w)| Ev::Add(h, w)),
        4 => (hop.clone(), state).prop_map(|(h, s)| Ev::State(h, s)),
        1 => (hop.clone(), 1u32..=10).prop_map(|(h, w)| Ev::Weight(h, w)),
        1 => hop.prop_map(Ev::Remove),
        1 => Just(Ev::Clear),
    ];
    prop::collection::vec(ev, 0..20)
}

fn apply(g: &mut ResilientGroup, events: &[Ev]) {
    for ev in events {
        // Events on hops that are not members are refused; that is part of the sequence.
        let _ = match *ev {
            Ev::Add(h, w) => g.add_member(h, w),
            Ev::State(h, s) => g.set_state(h, s),
            Ev::Weight(h, w) => g.set_weight(h, w),
            Ev::Remove(h) => g.remove_member(h),
            Ev::Clear => {
                g.clear();
                Ok(())
            }
        };
    }
}

fn active(g: &ResilientGroup) -> Vec<Member> {
    g.members()
        .iter()
        .filter(|m| m.hop != 0 && m.state == HopState::Active)
        .copied()
        .collect()
}

fn owned(owners: &[HopId], hop: HopId) -> usize {
    owners.iter().filter(|&&h| h == hop).count()
}

fn changed(a: &[HopId], b: &[HopId]) -> Vec<usize> {
    (0..a.len()).filter(|&i| a[i] != b[i]).collect()
}

/// `count * W - B * w`: positive above the exact weighted share, scaled by the total weight.
fn excess(g: &ResilientGroup, owners: &[HopId], m: &Member) -> i64 {
    let total: i64 = active(g).iter().map(|m| i64::from(m.weight)).sum();
    owned(owners, m.hop) as i64 * total - i64::from(g.bucket_count()) * i64::from(m.weight)
}

/// Every active hop owns within one bucket of its exact weighted share.
fn within_one(g: &ResilientGroup) -> Result<(), TestCaseError> {
    let total: i64 = active(g).iter().map(|m| i64::from(m.weight)).sum();
    for m in active(g) {
        let e = excess(g, g.bucket_owners(), &m);
        prop_assert!(
            e.abs() < total,
            "hop {} owns {} of {}: {:?}",
            m.hop,
            owned(g.bucket_owners(), m.hop),
            g.bucket_count(),
            active(g)
        );
    }
    if !active(g).is_empty() {
        prop_assert!(!g.bucket_owners().contains(&0));
    }
    Ok(())
}

fn active_hop_at(g: &ResilientGroup, pick: usize) -> Option<HopId> {
    let a = active(g);
    (!a.is_empty()).then(|| a[pick % a.len()].hop)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn failure_moves_only_that_hops_buckets_spread_by_weight(
        mode in sticky_modes(),
        (buckets, weights) in shape(),
        history in events(),
        from_clear in any::<bool>(),
        pick in any::<usize>(),
        leave in prop_oneof![Just(HopState::Failed), Just(HopState::Draining)],
    ) {
        let mut g = build(mode, buckets, &weights);
        if !from_clear {
            apply(&mut g, &history);
        }
        let Some(victim) = active_hop_at(&g, pick) else { return Ok(()) };
        let before = g.bucket_owners().to_vec();
        let predicted = g.what_if_remove(victim);
        g.set_state(victim, leave).unwrap();
        let moved = changed(&before, g.bucket_owners());
        let expected: Vec<usize> = (0..before.len()).filter(|&b| before[b] == victim).collect();
        prop_assert_eq!(&moved, &expected);
        prop_assert_eq!(predicted, moved.len());
        let others = active(&g);
        for &b in &moved {
            let now = g.bucket_owners()[b];
            prop_assert!(others.iter().any(|m| m.hop == now) || (others.is_empty() && now == 0));
        }
        if from_clear {
            within_one(&g)?;
        }
    }

    #[test]
    fn auto_recovery_returns_exactly_the_old_buckets(
        (buckets, weights) in shape(),
        history in events(),
        pick in any::<usize>(),
        second in prop::option::of(any::<usize>()),
        leave in prop_oneof![Just(HopState::Failed), Just(HopState::Draining)],
    ) {
        let mut g = build(GroupMode::AutoRecovery, buckets, &weights);
        apply(&mut g, &history);
        let Some(victim) = active_hop_at(&g, pick) else { return Ok(()) };
        let before = g.bucket_owners().to_vec();
        g.set_state(victim, leave).unwrap();
        // Another hop may fail while the victim is away (not the last one: a hop joining a
        // group with no active owner takes every bucket, by design).
        if let Some(other) = second.filter(|_| active(&g).len() >= 2).and_then(|p| active_hop_at(&g, p)) {
            g.set_state(other, HopState::Failed).unwrap();
        }
        let mid = g.bucket_owners().to_vec();
        prop_assert_eq!(g.what_if_add(victim, 1), owned(&before, victim));
        g.set_state(victim, HopState::Active).unwrap();
        let old: Vec<usize> = (0..before.len()).filter(|&b| before[b] == victim).collect();
        prop_assert_eq!(changed(&mid, g.bucket_owners()), old.clone());
        prop_assert!(old.iter().all(|&b| g.bucket_owners()[b] == victim));
        if second.is_none() {
            prop_assert_eq!(g.bucket_owners(), &before[..]);
        }
    }

    #[test]
    fn manual_joins_move_nothing_until_clear(
        mode in prop_oneof![Just(GroupMode::Manual), Just(GroupMode::AutoRecovery)],
        (buckets, weights) in shape(),
        history in events(),
        weight in 1u32..=10,
        pick in any::<usize>(),
    ) {
        let mut g = build(mode, buckets, &weights);
        apply(&mut g, &history);
        if g.bucket_owners().contains(&0) {
            return Ok(());
        }
        let before = g.bucket_owners().to_vec();
        prop_assert_eq!(g.what_if_add(NEW_HOP, weight), 0);
        g.add_member(NEW_HOP, weight).unwrap();
        prop_assert_eq!(g.bucket_owners(), &before[..]);
        if mode == GroupMode::Manual {
            // A returning hop waits for clear too.
            let away: Vec<HopId> = g.members().iter()
                .filter(|m| m.hop != 0 && m.state != HopState::Active).map(|m| m.hop).collect();
            if !away.is_empty() {
                g.set_state(away[pick % away.len()], HopState::Active).unwrap();
                prop_assert_eq!(g.bucket_owners(), &before[..]);
            }
        }
        g.clear();
        within_one(&g)?;
        prop_assert!(owned(g.bucket_owners(), NEW_HOP) > 0 || u64::from(buckets) * u64::from(weight)
            < active(&g).iter().map(|m| u64::from(m.weight)).sum::<u64>());
    }

    #[test]
    fn clear_balances_moving_the_fewest_over_share_buckets(
        mode in sticky_modes(),
        (buckets, weights) in shape(),
        history in events(),
    ) {
        let mut g = build(mode, buckets, &weights);
        apply(&mut g, &history);
        let before = g.bucket_owners().to_vec();
        let total: i64 = active(&g).iter().map(|m| i64::from(m.weight)).sum();
        // Least moves any balanced table needs: buckets above the rounded-up shares (plus
        // ownerless ones) must leave, buckets below the rounded-down shares must arrive.
        let (mut leave, mut arrive) = (owned(&before, 0) as i64, 0);
        for m in active(&g) {
            let share = i64::from(buckets) * i64::from(m.weight);
            let (floor, ceil) = (share / total, (share + total - 1) / total);
            let c = owned(&before, m.hop) as i64;
            leave += (c - ceil).max(0);
            arrive += (floor - c).max(0);
        }
        g.clear();
        within_one(&g)?;
        let moved = changed(&before, g.bucket_owners());
        if total > 0 {
            prop_assert_eq!(moved.len() as i64, leave.max(arrive));
        }
        for &b in &moved {
            let was = before[b];
            let m = active(&g).into_iter().find(|m| m.hop == was);
            prop_assert!(was == 0 || m.is_some_and(|m| excess(&g, &before, &m) > 0),
                "bucket {} left hop {} which was not over its share", b, was);
        }
        prop_assert!((0..before.len()).all(|b| !g.replaced(b)));
    }

    #[test]
    fn idle_busy_buckets_wait_for_the_timers(
        (buckets, weights) in shape(),
        forced_after in prop_oneof![Just(0u64), Just(5000u64)],
        weight in 1u32..=10,
        ages in prop::collection::vec(0u64..2000, 512),
    ) {
        let mode = GroupMode::Idle { idle_timer_ms: 1000, unbalanced_timer_ms: forced_after };
        let mut g = build(mode, buckets, &weights);
        g.add_member(NEW_HOP, weight).unwrap();
        let now = 1_000_000;
        let used: Vec<u64> = (0..buckets as usize).map(|b| now - ages[b]).collect();
        let before = g.bucket_owners().to_vec();
        let targets = g.targets(&g.counts());
        let n = g.upkeep(now, &used).unwrap();
        let moved = changed(&before, g.bucket_owners());
        prop_assert_eq!(n, moved.len());
        for &b in &moved {
            prop_assert!(ages[b] >= 1000, "busy bucket {} moved", b);
            let from = g.slot(before[b]).unwrap();
            let to = g.slot(g.bucket_owners()[b]).unwrap();
            prop_assert!(owned(&before, before[b]) as u32 > targets[from]);
            prop_assert!((owned(&before, g.bucket_owners()[b]) as u32) < targets[to]);
        }
        // From now on every bucket is busy: only the unbalanced timer may move them.
        let busy_at = |t: u64| vec![t; buckets as usize];
        let settled = g.bucket_owners().to_vec();
        let t = now + forced_after.max(1_000_000_000) - 1;
        let late = if forced_after == 0 { t } else { now + forced_after - 1 };
        prop_assert_eq!(g.upkeep(late, &busy_at(late)).unwrap(), 0);
        prop_assert_eq!(g.bucket_owners(), &settled[..]);
        if forced_after != 0 {
            g.upkeep(now + forced_after, &busy_at(now + forced_after)).unwrap();
        } else {
            g.upkeep(late + 1000, &busy_at(0)).unwrap();
        }
        within_one(&g)?;
    }

    #[test]
    fn maglev_table_depends_only_on_the_end_state(
        seed in any::<u64>(),
        buckets in (0u32..=12).prop_map(|k| 1 << k),
        history in events(),
        order in prop::collection::vec(any::<u32>(), 10),
    ) {
        let mut g = ResilientGroup::new(buckets, GroupMode::Maglev, seed).unwrap();
        apply(&mut g, &history);
        let mut end: Vec<Member> = g.members().iter().filter(|m| m.hop != 0).copied().collect();
        end.sort_by_key(|m| order[m.hop as usize % order.len()]);
        let mut fresh = ResilientGroup::new(buckets, GroupMode::Maglev, seed).unwrap();
        for m in &end {
            fresh.add_member(m.hop, m.weight).unwrap();
            fresh.set_state(m.hop, m.state).unwrap();
        }
        prop_assert_eq!(g.bucket_owners(), fresh.bucket_owners());
        prop_assert_eq!(g.bucket_owners().contains(&0), active(&g).is_empty());
    }

    #[test]
    fn maglev_shares_follow_weights_and_failures_move_little(
        seed in any::<u64>(),
        weights in prop::collection::vec(1u32..=10, 2..=10),
        pick in any::<usize>(),
    ) {
        let g = build_seeded(GroupMode::Maglev, 4096, &weights, seed);
        let total: u32 = weights.iter().sum();
        for (hop, &w) in (1..).zip(&weights) {
            let ideal = 4096.0 * f64::from(w) / f64::from(total);
            let got = owned(g.bucket_owners(), hop) as f64;
            prop_assert!((got - ideal).abs() <= 0.01 * ideal + 2.0, "hop {} weight {}: {} vs {:.1}", hop, w, got, ideal);
        }
        let mut h = g.clone();
        let victim = active_hop_at(&g, pick).unwrap();
        h.set_state(victim, HopState::Failed).unwrap();
        let collateral = changed(g.bucket_owners(), h.bucket_owners()).iter()
            .filter(|&&b| g.bucket_owners()[b] != victim).count();
        // Maglev bounds disruption only statistically: with linear walks over a power-of-two
        // table some seeds correlate two hops' walks, and one failure then moves up to ~15%
        // of the other buckets (worst of 18k surveyed cases: 636 of 4096). The typical case
        // is pinned by `maglev_failures_move_little_over_many_seeds`.
        prop_assert!(collateral <= 4096 / 4, "{} buckets of surviving hops moved (seed {})", collateral, seed);
    }
}

/// The distribution the property above only bounds loosely: over a fixed sample of seeds
/// and weights (every hop failed in turn), the buckets of surviving hops that move.
#[test]
fn maglev_failures_move_little_over_many_seeds() {
    const BUCKETS: usize = 4096;
    let mut state = 0x5eed_u64;
    let mut draw = || {
        state = mix(state);
        state
    };
    let mut moved = Vec::new();
    for _ in 0..200 {
        let seed = draw();
        let n = 2 + (draw() % 9) as usize;
        let weights: Vec<u32> = (0..n).map(|_| 1 + (draw() % 10) as u32).collect();
        let g = build_seeded(GroupMode::Maglev, BUCKETS as u32, &weights, seed);
        for victim in (1..).take(n) {
            let mut h = g.clone();
            h.set_state(victim, HopState::Failed).unwrap();
            let collateral = changed(g.bucket_owners(), h.bucket_owners())
                .iter()
                .filter(|&&b| g.bucket_owners()[b] != victim)
                .count();
            moved.push(collateral);
        }
    }
    moved.sort_unstable();
    let mean = moved.iter().sum::<usize>() / moved.len();
    let p90 = moved[moved.len() * 9 / 10];
    assert!(
        mean <= BUCKETS / 64,
        "mean {mean} buckets of surviving hops moved per failure"
    );
    assert!(
        p90 <= BUCKETS / 32,
        "90th percentile {p90} buckets of surviving hops moved per failure"
    );
}

#[test]
fn table_picks_by_mask_and_members_keep_their_index() {
    let mut g = ResilientGroup::new(8, GroupMode::Manual, 0).unwrap();
    g.add_member(10, 1).unwrap();
    g.add_member(20, 1).unwrap();
    g.add_member(30, 1).unwrap();
    assert!(
        g.bucket_owners().iter().all(|&h| h == 10),
        "the first hop takes an empty group"
    );
    g.clear();
    let t = g.table();
    assert_eq!(t.bucket_count(), 8);
    for hash in [0u32, 5, 0xffff_fff9] {
        let (idx, hop) = t.pick(hash).unwrap();
        assert_eq!(hop, g.bucket_owners()[(hash & 7) as usize]);
        assert_eq!(t.member(idx).map(|m| m.hop), Some(hop));
    }
    // Removing 20 leaves a hole; 30 keeps index 2 and a new hop reuses index 1.
    g.remove_member(20).unwrap();
    let t = g.table();
    assert!(t.member(1).is_none());
    assert!(t.still_member(2, 30));
    assert!(!t.still_member(1, 20));
    g.add_member(40, 1).unwrap();
    assert_eq!(g.members()[1].hop, 40);
    assert!(!g.table().still_member(1, 20));
    g.set_state(30, HopState::Draining).unwrap();
    let t = g.table();
    assert!(
        t.still_member(2, 30),
        "draining hops keep their cached flows"
    );
    assert!(
        t.slots.iter().all(|s| s.hop != 30),
        "draining hops own no buckets"
    );
    g.set_state(30, HopState::Failed).unwrap();
    assert!(!g.table().still_member(2, 30));
}

#[test]
fn replaced_marks_the_buckets_moved_since_clear() {
    let mut g = build(GroupMode::Manual, 4, &[1, 1, 1]);
    assert_eq!(g.bucket_owners(), &[1, 1, 2, 3]);
    g.set_state(2, HopState::Failed).unwrap();
    // Sticky ECMP: only the failed path's bucket is replaced, by the path with the least.
    assert_eq!(g.bucket_owners(), &[1, 1, 3, 3]);
    assert_eq!(
        (0..5).map(|b| g.replaced(b)).collect::<Vec<_>>(),
        [false, false, true, false, false]
    );
    g.clear();
    assert!((0..4).all(|b| !g.replaced(b)));
}

#[test]
fn maglev_tables_agree_across_instances_with_different_hop_ids() {
    // Two instances learnt the same three next hops (keys 100, 200, 300) in different orders,
    // so their local hop ids differ; their tables must still map every bucket to the same key.
    let build = |hops: &[(HopId, u64)]| {
        let mut g = ResilientGroup::new(1024, GroupMode::Maglev, 7).unwrap();
        for &(hop, key) in hops {
            g.add_member(hop, 1).unwrap();
            g.set_maglev_key(hop, key).unwrap();
        }
        let keys: std::collections::HashMap<HopId, u64> = hops.iter().copied().collect();
        g.bucket_owners()
            .iter()
            .map(|h| keys[h])
            .collect::<Vec<u64>>()
    };
    let a = build(&[(1, 100), (2, 200), (3, 300)]);
    let b = build(&[(9, 300), (4, 100), (6, 200)]);
    assert_eq!(a, b);
    let mut g = ResilientGroup::new(16, GroupMode::Maglev, 7).unwrap();
    assert_eq!(g.set_maglev_key(5, 1), Err(TableError::UnknownHop(5)));
    g.add_member(5, 1).unwrap();
    g.remove_member(5).unwrap();
    assert!(
        g.maglev_keys.is_empty(),
        "a removed hop's key is forgotten with it"
    );
}

#[test]
fn empty_groups_and_bad_input() {
    assert_eq!(
        ResilientGroup::new(0, GroupMode::Manual, 0).err(),
        Some(TableError::BucketCount(0))
    );
    assert_eq!(
        ResilientGroup::new(6, GroupMode::Manual, 0).err(),
        Some(TableError::BucketCount(6))
    );
    assert!(ResilientGroup::new(1 << 17, GroupMode::Maglev, 0).is_err());
    let mut g = ResilientGroup::new(1, GroupMode::Maglev, 0).unwrap();
    assert_eq!(g.table().pick(0), None);
    assert_eq!(g.add_member(0, 1), Err(TableError::ZeroHop));
    assert_eq!(g.add_member(1, 0), Err(TableError::ZeroWeight(1)));
    assert_eq!(
        g.set_state(1, HopState::Failed),
        Err(TableError::UnknownHop(1))
    );
    assert_eq!(g.what_if_remove(1), 0);
    assert_eq!(g.what_if_add(1, 1), 1);
    g.add_member(1, 1).unwrap();
    assert_eq!(g.table().pick(u32::MAX), Some((0, 1)));
    g.set_state(1, HopState::Failed).unwrap();
    assert_eq!(g.table().pick(0), None, "no active hop: no owner");
    let mut idle = ResilientGroup::new(
        4,
        GroupMode::Idle {
            idle_timer_ms: 0,
            unbalanced_timer_ms: 0,
        },
        0,
    )
    .unwrap();
    assert_eq!(
        idle.upkeep(0, &[0; 3]),
        Err(TableError::LastUsedLength {
            expected: 4,
            got: 3
        })
    );
}

#[test]
fn idle_tables_share_their_groups_bucket_activity() {
    let mode = GroupMode::Idle {
        idle_timer_ms: 1000,
        unbalanced_timer_ms: 0,
    };
    let mut g = ResilientGroup::new(8, mode, 1).unwrap();
    g.add_member(1, 1).unwrap();
    g.clear();
    let old = g.table();
    old.touch(3, 7);
    old.touch(8 + 5, 9); // hashes wrap onto the bucket mask
    g.add_member(2, 1).unwrap();
    let new = g.table();
    new.touch(6, 11);
    let mut used = Vec::new();
    g.activity().unwrap().last_used_ms(&mut used);
    assert_eq!(used, [0, 0, 0, 7000, 0, 9000, 11_000, 0]);
    // Activity never makes two tables differ.
    let mut h = ResilientGroup::new(8, mode, 1).unwrap();
    h.add_member(1, 1).unwrap();
    h.clear();
    assert_eq!(h.table(), old);
    // A use in the process's first second counts as a use.
    assert!(!g.activity().unwrap().used(0));
    new.touch(0, 0);
    assert!(g.activity().unwrap().used(0));
    // The stateless modes keep no activity; touching their tables does nothing.
    for mode in [GroupMode::Maglev, GroupMode::Rendezvous] {
        let m = ResilientGroup::new(8, mode, 1).unwrap();
        assert!(m.activity().is_none());
        m.table().touch(1, 5);
    }
}
