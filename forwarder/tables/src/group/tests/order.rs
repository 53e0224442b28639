//! Order independence of the stateful modes before traffic, and what joining hops get once
//! traffic has used some buckets (issue 12 item 3).

use super::*;

/// Members as instances learn them: (member key, weight, final state).
fn member_set() -> impl Strategy<Value = Vec<(u64, u32, HopState)>> {
    let state = prop_oneof![
        6 => Just(HopState::Active),
        1 => Just(HopState::Draining),
        1 => Just(HopState::Failed),
    ];
    prop::collection::btree_map(any::<u64>(), (1u32..=10, state), 1..=12)
        .prop_map(|m| m.into_iter().map(|(k, (w, s))| (k, w, s)).collect())
}

fn stateful_modes() -> impl Strategy<Value = GroupMode> {
    prop_oneof![
        Just(GroupMode::AutoRecovery),
        Just(GroupMode::Idle {
            idle_timer_ms: 1000,
            unbalanced_timer_ms: 0
        }),
    ]
}

/// One instance: it numbers hops by arrival (`first_hop`, `first_hop + 1`, ...) as the builder
/// does, learns `members` in `order`, split into batches after the positions in `cuts` (each
/// batch: the adds with their keys, then the batch's members' states, set together), clearing
/// after the first batch's adds as the builder does for a new prefix. Returns each bucket's owner as a key.
fn learn(
    mode: GroupMode,
    buckets: u32,
    seed: u64,
    members: &[(u64, u32, HopState)],
    order: &[usize],
    cuts: &[bool],
    first_hop: HopId,
) -> Vec<Option<u64>> {
    let mut g = ResilientGroup::new(buckets, mode, seed).unwrap();
    let mut keys = std::collections::HashMap::new();
    let mut batch = Vec::new();
    let mut first = true;
    for (n, &k) in order.iter().enumerate() {
        let (key, weight, state) = members[k];
        let hop = first_hop + n as HopId;
        g.add_member(hop, weight).unwrap();
        g.set_maglev_key(hop, key).unwrap();
        keys.insert(hop, key);
        batch.push((hop, state));
        if cuts[n % cuts.len()] || n + 1 == order.len() {
            if first {
                g.clear();
                first = false;
            }
            g.set_states(&batch).unwrap();
            batch.clear();
        }
    }
    g.bucket_owners()
        .iter()
        .map(|h| keys.get(h).copied())
        .collect()
}

fn shuffled(len: usize, draws: &[u64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        order.swap(i, (draws[i % draws.len()] % (i as u64 + 1)) as usize);
    }
    order
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Before traffic, permutations and batch splits of the same announcements give the same
    /// table, whatever hop ids each instance gave the members.
    #[test]
    fn stateful_tables_before_traffic_depend_only_on_the_member_set(
        mode in stateful_modes(),
        buckets in (0u32..=10).prop_map(|k| 1 << k),
        seed in any::<u64>(),
        members in member_set(),
        draws in prop::collection::vec(any::<u64>(), 12),
        cuts_a in prop::collection::vec(any::<bool>(), 1..6),
        cuts_b in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let in_order: Vec<usize> = (0..members.len()).collect();
        let a = learn(mode, buckets, seed, &members, &in_order, &cuts_a, 1);
        let b = learn(mode, buckets, seed, &members, &shuffled(members.len(), &draws), &cuts_b, 40);
        prop_assert_eq!(&a, &b);
        // And the table is balanced over the active members.
        let total: u64 = members.iter().filter(|m| m.2 == HopState::Active).map(|m| u64::from(m.1)).sum();
        for &(key, weight, state) in &members {
            let got = a.iter().filter(|&&o| o == Some(key)).count() as u64;
            if state != HopState::Active {
                prop_assert_eq!(got, 0);
            } else {
                let share = u64::from(buckets) * u64::from(weight);
                prop_assert!(got * total < share + total && share < (got + 1) * total,
                    "key {} weight {} owns {} of {}", key, weight, got, buckets);
            }
        }
        prop_assert_eq!(a.contains(&None), total == 0);
    }

    /// Manual mode: members listed together (the config, or one BGP batch) give the same table
    /// in any order; a member joining later waits for `clear`, which before traffic yields the
    /// same table again.
    #[test]
    fn manual_tables_of_members_listed_together_ignore_their_order(
        buckets in (0u32..=10).prop_map(|k| 1 << k),
        seed in any::<u64>(),
        members in member_set(),
        draws in prop::collection::vec(any::<u64>(), 12),
    ) {
        let together = [false];
        let in_order: Vec<usize> = (0..members.len()).collect();
        let shuffled = shuffled(members.len(), &draws);
        let a = learn(GroupMode::Manual, buckets, seed, &members, &in_order, &together, 1);
        let b = learn(GroupMode::Manual, buckets, seed, &members, &shuffled, &together, 40);
        prop_assert_eq!(&a, &b);
        // One by one: the first active member keeps everything until clear.
        let mut g = ResilientGroup::new(buckets, GroupMode::Manual, seed).unwrap();
        for (hop, &k) in (1..).zip(&shuffled) {
            let (key, weight, _) = members[k];
            g.add_member(hop, weight).unwrap();
            g.set_maglev_key(hop, key).unwrap();
        }
        prop_assert!(g.bucket_owners().iter().all(|&h| h == 1));
        g.clear();
        let states: Vec<(HopId, HopState)> = (1..).zip(&shuffled).map(|(hop, &k)| (hop, members[k].2)).collect();
        g.set_states(&states).unwrap();
        let keys: Vec<Option<u64>> = g.bucket_owners().iter()
            .map(|&h| (h != 0).then(|| members[shuffled[h as usize - 1]].0)).collect();
        prop_assert_eq!(keys, a);
    }

    /// Under traffic a joining hop takes only buckets no flow has used, from hops above their
    /// share; used buckets stay where they are (Idle may move them later through `upkeep`).
    #[test]
    fn joining_hops_take_only_unused_buckets_under_traffic(
        mode in stateful_modes(),
        (buckets, weights) in shape(),
        weight in 1u32..=10,
        used in prop::collection::vec(any::<bool>(), 512),
    ) {
        let g0 = fresh(mode, buckets, &weights, 7);
        let a = g0.activity().unwrap();
        for b in (0..buckets as usize).filter(|&b| used[b]) {
            a.touch(b, 5);
        }
        let mut g = g0.clone();
        let before = g.bucket_owners().to_vec();
        g.add_member(NEW_HOP, weight).unwrap();
        let moved = changed(&before, g.bucket_owners());
        if used[..buckets as usize].iter().any(|&u| u) {
            for &b in &moved {
                prop_assert!(!used[b], "used bucket {} moved", b);
                prop_assert_eq!(g.bucket_owners()[b], NEW_HOP);
            }
            // The new hop reaches its share, unless the hops above theirs have no unused bucket
            // left to give.
            let total: u64 = active(&g).iter().map(|m| u64::from(m.weight)).sum();
            let share = |w: u32| u64::from(buckets) * u64::from(w);
            let mine = owned(g.bucket_owners(), NEW_HOP) as u64;
            if mine * total + total <= share(weight) {
                for m in active(&g).iter().filter(|m| m.hop != NEW_HOP) {
                    let count = owned(g.bucket_owners(), m.hop) as u64;
                    if count * total >= share(m.weight) + total {
                        prop_assert!((0..buckets as usize).all(|b| g.bucket_owners()[b] != m.hop || used[b]),
                            "hop {} is above its share with an unused bucket", m.hop);
                    }
                }
            }
        } else {
            // No traffic yet: the canonical table of the new member set.
            within_one(&g)?;
        }
    }
}

/// The start-up: four servers joining one by one (3 s apart) before traffic end at 64
/// buckets each in every mode but manual, with no `clear`.
#[test]
fn servers_joining_one_by_one_before_traffic_end_balanced() {
    let idle = GroupMode::Idle {
        idle_timer_ms: 1000,
        unbalanced_timer_ms: 0,
    };
    for mode in [GroupMode::AutoRecovery, idle] {
        let mut g = ResilientGroup::new(256, mode, 7).unwrap();
        for (hop, at_ms) in (1..=4).zip((0..).step_by(3000)) {
            g.add_member(hop, 1).unwrap();
            g.set_maglev_key(hop, mix(u64::from(hop))).unwrap();
            let used = vec![0; 256];
            g.upkeep(at_ms, &used).unwrap();
        }
        for hop in 1..=4 {
            assert_eq!(owned(g.bucket_owners(), hop), 64, "{mode:?} hop {hop}");
        }
    }
    let mut g = ResilientGroup::new(256, GroupMode::Manual, 7).unwrap();
    for hop in 1..=4 {
        g.add_member(hop, 1).unwrap();
    }
    assert_eq!(owned(g.bucket_owners(), 1), 256, "manual waits for clear");
    g.clear();
    assert!((1..=4).all(|hop| owned(g.bucket_owners(), hop) == 64));
}
