//! Tables that do not depend on arrival order, and start-up without `clear` (issue 12 item 3):
//! before traffic, a group's table is a function of its member set only.

use super::*;

fn policy(mode: GroupMode, buckets: u32) -> GroupPolicy {
    GroupPolicy {
        mode,
        buckets,
        ..GroupPolicy::default()
    }
}

fn modes() -> impl Strategy<Value = GroupMode> {
    prop_oneof![
        Just(GroupMode::AutoRecovery),
        Just(GroupMode::Idle {
            idle_timer_ms: 1000,
            unbalanced_timer_ms: 0
        }),
        Just(GroupMode::Maglev),
        Just(GroupMode::Rendezvous),
    ]
}

/// `P`'s bucket owners by address (None: no owner, every server draining).
fn by_addr(lab: &Lab) -> Vec<Option<IpAddr>> {
    let route = lab.b.route(&pfx(P)).unwrap();
    lab.owners(P)
        .iter()
        .map(|h| route.members.iter().find(|m| m.hop == *h).map(|m| m.addr))
        .collect()
}

/// Server `i` (peer 198.51.100.i+1, next hop 192.0.2.i+1) announces `P`, draining or not.
fn server(i: usize, gshut: bool) -> FeedEvent {
    announce(
        &format!("198.51.100.{}", i + 1),
        P,
        &format!("192.0.2.{}", i + 1),
        gshut,
    )
}

/// One instance: it first learns `decoys` servers for another prefix (so its hop ids differ
/// from another instance's), then the announcements of `order`, published in batches cut
/// after the positions in `cuts`.
fn instance(mode: GroupMode, decoys: usize, order: &[usize], gshut: &[bool], cuts: &[bool]) -> Lab {
    let mut lab = Lab::new(builder(policy(mode, 256)));
    for i in (0..decoys).rev() {
        let hop = format!("192.0.2.{}", i + 1);
        lab.feed(announce("198.51.100.99", "10.2.0.0/24", &hop, false));
    }
    let mut batch = Vec::new();
    for (n, &i) in order.iter().enumerate() {
        batch.extend(lab.rib.apply(&server(i, gshut[i]), lab.now));
        if cuts[n % cuts.len()] || n + 1 == order.len() {
            lab.b.apply(&coalesce(std::mem::take(&mut batch)));
        }
    }
    assert!(lab.b.take_errors().is_empty());
    lab
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Permutations and batch splits of the same announcements give the same table, in every
    /// mode but manual (`manual` agrees when the members arrive together: see below).
    #[test]
    fn permutations_and_batch_splits_of_the_same_announcements_give_the_same_table(
        mode in modes(),
        servers in 2usize..=8,
        draws in prop::collection::vec(any::<u64>(), 8),
        gshut in prop::collection::vec(prop::bool::weighted(0.2), 8),
        cuts_a in prop::collection::vec(any::<bool>(), 1..5),
        cuts_b in prop::collection::vec(any::<bool>(), 1..5),
        decoys in 0usize..4,
    ) {
        let in_order: Vec<usize> = (0..servers).collect();
        let mut shuffled = in_order.clone();
        for i in (1..servers).rev() {
            shuffled.swap(i, (draws[i] % (i as u64 + 1)) as usize);
        }
        let a = instance(mode, 0, &in_order, &gshut, &cuts_a);
        let b = instance(mode, decoys, &shuffled, &gshut, &cuts_b);
        prop_assert_eq!(by_addr(&a), by_addr(&b));
        if mode != GroupMode::Manual {
            // ... and the same table as when they all arrive in one batch.
            let c = instance(mode, 0, &shuffled, &gshut, &[false]);
            prop_assert_eq!(by_addr(&a), by_addr(&c));
        }
        let manual_a = instance(GroupMode::Manual, 0, &in_order, &gshut, &[false]);
        let manual_b = instance(GroupMode::Manual, decoys, &shuffled, &gshut, &[false]);
        prop_assert_eq!(by_addr(&manual_a), by_addr(&manual_b));
    }
}

/// The start-up: four servers whose BGP sessions come up 3 s apart end at 64 buckets
/// each with no `clear`, as the control thread's upkeep runs between them; manual keeps the
/// IOS-XR rule (the first server keeps everything until `clear`).
#[test]
fn four_servers_announcing_3_s_apart_end_at_64_buckets_each_without_clear() {
    let idle = GroupMode::Idle {
        idle_timer_ms: 1000,
        unbalanced_timer_ms: 0,
    };
    for mode in [
        GroupMode::AutoRecovery,
        idle,
        GroupMode::Rendezvous,
        GroupMode::Maglev,
        GroupMode::Manual,
    ] {
        let mut lab = Lab::new(builder(policy(mode, 256)));
        for i in 0..4 {
            let at = lab.now + Duration::from_secs(3 * i as u64);
            let changes = lab.rib.apply(&server(i, false), at);
            lab.b.apply(&changes).unwrap();
            lab.b.upkeep(3000 * i as u64);
        }
        let owners = lab.owners(P);
        let counts: Vec<usize> = (0..4)
            .map(|i| count(&owners, lab.hop(P, &format!("192.0.2.{}", i + 1))))
            .collect();
        match mode {
            GroupMode::Manual => assert_eq!(counts, [256, 0, 0, 0], "manual waits for clear"),
            // Rendezvous balances statistically.
            GroupMode::Rendezvous => {
                assert!(counts.iter().all(|&c| (40..=90).contains(&c)), "{counts:?}")
            }
            _ => assert_eq!(counts, [64; 4], "{mode:?}"),
        }
    }
}
