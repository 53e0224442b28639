//! Operator commands: drain/undrain (an override per address that persists and composes with
//! what the RIB or the config wants) and static routes added and removed at run time.

use super::*;

const Q: &str = "10.2.0.0/24";

/// Three servers announce `P` and `Q` (one batch each), under a config whose static group 1
/// (auto-recovery, 16 buckets, routed from 10.0.0.0/8) lists 192.0.2.2 (hop 1) and
/// 192.0.2.254 (hop 2).
fn shared_lab() -> Lab {
    let hop = |id, last| NextHop {
        id,
        addr: IpAddr::from([192, 0, 2, last]),
        port: 0,
        mac: [2, 0, 0, 0, 0, last],
        weight: 1,
        action: Action::Rewrite,
    };
    let mut g = ResilientGroup::new(16, GroupMode::AutoRecovery, 7).unwrap();
    g.add_member(1, 1).unwrap();
    g.add_member(2, 1).unwrap();
    g.clear();
    let cfg = BuilderConfig {
        statics: StaticTables {
            hops: vec![hop(1, 2), hop(2, 254)],
            groups: vec![g],
            routes: vec![(pfx("10.0.0.0/8"), 1)],
            ..StaticTables::default()
        },
        ..config(auto(64))
    };
    let mut lab = Lab::new(Builder::new(cfg, resolve_all as Resolve).unwrap());
    for prefix in [P, Q] {
        let changes =
            coalesce(SERVERS.iter().flat_map(|(peer, hop)| {
                lab.rib.apply(&announce(peer, prefix, hop, false), lab.now)
            }));
        lab.b.apply(&changes).unwrap();
    }
    lab
}

/// Every published group table is the one its builder holds now, byte for byte.
pub(super) fn assert_published(b: &Builder<Resolve>, snap: &Snapshot) {
    assert_eq!(snap.groups.len(), b.snapshot().groups.len());
    for gid in 1..snap.groups.len() as GroupId {
        match b.group(gid) {
            Some(g) => assert_eq!(*snap.groups[gid as usize], g.table(), "group {gid}"),
            None => assert!(Arc::ptr_eq(
                &snap.groups[gid as usize],
                &b.snapshot().groups[0]
            )),
        }
    }
    assert_eq!(snap.hops, b.snapshot().hops);
}

/// The member states and bucket owners of group `gid`, by hop id.
fn states(b: &Builder<Resolve>, gid: GroupId) -> Vec<(HopId, HopState)> {
    let mut out: Vec<_> = b
        .group(gid)
        .unwrap()
        .members()
        .iter()
        .filter(|m| m.hop != 0)
        .map(|m| (m.hop, m.state))
        .collect();
    out.sort_unstable_by_key(|&(hop, _)| hop);
    out
}

/// Everything an operator command could change, to show a refused one changed nothing.
#[derive(Debug, PartialEq)]
struct Observed {
    groups: Vec<GroupTable>,
    hops: Vec<NextHop>,
    fib: Vec<(usize, usize, usize)>,
    lookups: Vec<GroupId>,
    routes: Vec<(Prefix, GroupId)>,
    statics: Vec<StaticRouteInfo>,
    in_use: Vec<HopInfo>,
    drained: Vec<IpAddr>,
}

fn observe(b: &Builder<Resolve>) -> Observed {
    let s = b.snapshot();
    Observed {
        groups: s.groups.iter().map(|g| (**g).clone()).collect(),
        hops: s.hops.clone(),
        fib: vec![(s.fib4.len(), s.fib4.tbl8_in_use(), s.fib6.len())],
        lookups: ["10.1.0.1", "10.2.0.1", "10.5.0.1", "10.5.0.201", "10.9.9.9"]
            .iter()
            .map(|a| s.fib4.lookup_addr(a.parse().unwrap()))
            .collect(),
        routes: b.routes().collect(),
        statics: b.static_routes(),
        in_use: b.hops(),
        drained: b.drained(),
    }
}

#[test]
fn a_drain_reaches_every_group_listing_the_address_and_moves_only_its_buckets() {
    let mut lab = shared_lab();
    let addr = ip("192.0.2.2");
    let (gp, gq) = (
        lab.b.group_id(&pfx(P)).unwrap(),
        lab.b.group_id(&pfx(Q)).unwrap(),
    );
    assert_eq!((gp, gq), (2, 3), "BGP groups follow the static one");
    let bgp_hop = lab.hop(P, "192.0.2.2");
    assert_eq!(lab.hop(Q, "192.0.2.2"), bgp_hop, "shared by both prefixes");
    let before: Vec<Vec<HopId>> = (1..=3)
        .map(|g| lab.b.group(g).unwrap().bucket_owners().to_vec())
        .collect();
    let prev = lab.b.snapshot();

    let snap = lab.b.set_drained(addr, true).unwrap();
    assert_published(&lab.b, &snap);
    assert_eq!(lab.b.drained(), vec![addr]);
    assert_eq!(lab.state(P, "192.0.2.2"), HopState::Draining);
    assert_eq!(lab.state(Q, "192.0.2.2"), HopState::Draining);
    assert_eq!(
        states(&lab.b, 1),
        vec![(1, HopState::Draining), (2, HopState::Active)],
        "the configured group's hop at that address drains too"
    );
    for (g, hop) in [(1, 1), (gp, bgp_hop), (gq, bgp_hop)] {
        let was = &before[g as usize - 1];
        let now = lab.b.group(g).unwrap().bucket_owners();
        assert!(count(was, hop) > 0);
        assert_eq!(
            count(now, hop),
            0,
            "group {g}: a draining hop owns no bucket"
        );
        assert!(
            (0..was.len()).all(|b| was[b] == now[b] || was[b] == hop),
            "group {g}: only the drained hop's buckets moved"
        );
        let table = snap.group(g).unwrap();
        assert!(
            table
                .members()
                .iter()
                .any(|m| m.hop == hop && m.state == HopState::Draining)
        );
    }
    let hops = lab.b.hops();
    assert!(
        hops.iter()
            .filter(|h| h.hop.addr == addr)
            .all(|h| h.drained)
    );
    assert!(
        hops.iter()
            .filter(|h| h.hop.addr != addr)
            .all(|h| !h.drained)
    );
    assert!(Arc::ptr_eq(&snap.fib4, &prev.fib4), "no route changed");
    assert!(lab.b.set_drained(addr, true).is_none(), "already drained");

    // Undrain: auto-recovery hands back exactly the buckets each group had.
    let snap = lab.b.set_drained(addr, false).unwrap();
    assert_published(&lab.b, &snap);
    assert!(lab.b.drained().is_empty());
    for g in 1..=3 {
        assert_eq!(
            lab.b.group(g).unwrap().bucket_owners(),
            &before[g as usize - 1][..]
        );
        assert!(
            states(&lab.b, g)
                .iter()
                .all(|&(_, s)| s == HopState::Active)
        );
    }
    assert!(
        lab.b.set_drained(addr, false).is_none(),
        "never drained now"
    );
    assert!(lab.b.set_drained(ip("192.0.2.77"), false).is_none());
    assert!(lab.b.take_errors().is_empty());
}

#[test]
fn a_drain_persists_for_groups_created_and_hops_added_later() {
    let mut lab = Lab::new(builder(auto(64)));
    let addr = ip("192.0.2.3");
    assert!(
        lab.b.set_drained(addr, true).is_none(),
        "no group lists it yet: recorded, nothing to publish"
    );
    assert_eq!(lab.b.drained(), vec![addr]);
    let changes = coalesce(
        SERVERS
            .iter()
            .flat_map(|(peer, hop)| lab.rib.apply(&announce(peer, P, hop, false), lab.now)),
    );
    let snap = lab.b.apply(&changes).unwrap();
    assert_published(&lab.b, &snap);
    assert_eq!(lab.state(P, "192.0.2.3"), HopState::Draining);
    let owners = lab.owners(P);
    assert_eq!(count(&owners, lab.hop(P, "192.0.2.3")), 0);
    for hop in ["192.0.2.1", "192.0.2.2"] {
        assert_eq!(
            count(&owners, lab.hop(P, hop)),
            32,
            "{hop}: the rest share evenly"
        );
    }
    // A hop joining an existing group while drained joins draining.
    lab.feed(announce("198.51.100.1", Q, "192.0.2.1", false))
        .unwrap();
    let snap = lab
        .feed(announce("198.51.100.3", Q, "192.0.2.3", false))
        .unwrap();
    assert_published(&lab.b, &snap);
    assert_eq!(lab.state(Q, "192.0.2.3"), HopState::Draining);
    assert_eq!(count(&lab.owners(Q), lab.hop(Q, "192.0.2.3")), 0);
    // Undrain under traffic. Both groups balanced their members before draining (before
    // traffic a group's table depends only on its members, not on which batch brought them),
    // so auto-recovery gives the hop back its share from then in both.
    lab.busy();
    let owners_q = lab.owners(Q);
    let snap = lab.b.set_drained(addr, false).unwrap();
    assert_published(&lab.b, &snap);
    assert_eq!(lab.state(P, "192.0.2.3"), HopState::Active);
    assert_eq!(lab.state(Q, "192.0.2.3"), HopState::Active);
    let after = lab.owners(P);
    assert!((21..=22).contains(&count(&after, lab.hop(P, "192.0.2.3"))));
    assert!(
        (0..64).all(|b| after[b] == owners[b] || after[b] == lab.hop(P, "192.0.2.3")),
        "only buckets going back to the undrained hop moved"
    );
    let after_q = lab.owners(Q);
    let hop_q = lab.hop(Q, "192.0.2.3");
    assert_eq!(count(&after_q, hop_q), 32);
    assert!((0..64).all(|b| after_q[b] == owners_q[b] || after_q[b] == hop_q));
    assert!(lab.b.take_errors().is_empty());
}

#[test]
fn undrain_restores_what_the_rib_wants() {
    let (mut lab, _) = three_servers(auto(64));
    let addr = ip("192.0.2.3");
    let before = lab.owners(P);
    // Graceful shutdown from BGP first: the operator drain changes no table.
    lab.feed(announce("198.51.100.3", P, "192.0.2.3", true))
        .unwrap();
    let drained_by_rib = lab.owners(P);
    assert!(lab.b.set_drained(addr, true).is_none());
    assert!(lab.b.set_drained(addr, false).is_none());
    assert_eq!(
        lab.state(P, "192.0.2.3"),
        HopState::Draining,
        "the RIB still drains it"
    );
    // Drained by both; the RIB lets go first: still draining, nothing to publish.
    lab.b.set_drained(addr, true);
    assert!(
        lab.feed(announce("198.51.100.3", P, "192.0.2.3", false))
            .is_none()
    );
    assert_eq!(lab.state(P, "192.0.2.3"), HopState::Draining);
    assert_eq!(lab.owners(P), drained_by_rib);
    let snap = lab.b.set_drained(addr, false).unwrap();
    assert_published(&lab.b, &snap);
    assert_eq!(lab.state(P, "192.0.2.3"), HopState::Active);
    assert_eq!(lab.owners(P), before);
}

#[test]
fn a_failed_hop_stays_failed_whether_drained_or_not() {
    let (mut lab, _) = three_servers(auto(64));
    let addr = ip("192.0.2.2");
    let before = lab.owners(P);
    lab.feed(withdraw("198.51.100.2", P)).unwrap();
    let failed = lab.owners(P);
    assert!(lab.b.set_drained(addr, true).is_none());
    assert_eq!(lab.state(P, "192.0.2.2"), HopState::Failed);
    assert!(lab.b.set_drained(addr, false).is_none());
    assert_eq!(lab.state(P, "192.0.2.2"), HopState::Failed);
    assert_eq!(lab.owners(P), failed);
    // It returns while drained: draining, no bucket; undrained: its old buckets.
    lab.b.set_drained(addr, true);
    lab.feed(announce("198.51.100.2", P, "192.0.2.2", false))
        .unwrap();
    assert_eq!(lab.state(P, "192.0.2.2"), HopState::Draining);
    assert_eq!(lab.owners(P), failed);
    lab.b.set_drained(addr, false).unwrap();
    assert_eq!(lab.state(P, "192.0.2.2"), HopState::Active);
    assert_eq!(lab.owners(P), before);
}

#[test]
fn a_static_route_gets_its_own_group_and_shares_hops() {
    let mut lab = Lab::new(builder(auto(16)));
    let prefix = pfx("10.5.0.0/24");
    let via = [ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.1")];
    let snap = lab.b.add_static_route(prefix, &via).unwrap().unwrap();
    assert_published(&lab.b, &snap);
    assert_eq!(snap.fib4.lookup_addr("10.5.0.9".parse().unwrap()), 1);
    assert_eq!(lab.b.group_id(&prefix), None, "not a BGP route");
    let info = lab.b.static_route(&prefix).unwrap();
    assert!(!info.configured);
    assert_eq!(info.route.group, 1);
    assert!(info.route.installed);
    assert_eq!(info.route.policy, auto(16));
    let members: Vec<(IpAddr, HopState, usize)> = info
        .route
        .members
        .iter()
        .map(|m| (m.addr, m.state, m.buckets))
        .collect();
    assert_eq!(
        members,
        vec![
            (ip("192.0.2.1"), HopState::Active, 8),
            (ip("192.0.2.2"), HopState::Active, 8),
        ],
        "duplicates count once; balanced together"
    );
    for m in &info.route.members {
        assert_eq!(snap.hop(m.hop).unwrap().mac, resolve_all(m.addr).unwrap().1);
    }
    assert_eq!(lab.b.static_routes(), vec![info.clone()]);
    // A BGP prefix through the same next hop shares its hop id.
    lab.feed(announce("198.51.100.1", P, "192.0.2.1", false))
        .unwrap();
    assert_eq!(lab.hop(P, "192.0.2.1"), info.route.members[0].hop);
    let hops = lab.b.hops();
    assert_eq!(hops[0].groups, 2);
    assert!(!hops[0].configured);
    // The same set again changes nothing.
    assert_eq!(
        lab.b
            .add_static_route(prefix, &via[..2])
            .map(|s| s.is_some()),
        Ok(false)
    );
    assert!(lab.b.take_errors().is_empty());
}

#[test]
fn a_static_route_takes_over_a_bgp_prefix_and_gives_it_back() {
    let (mut lab, first) = three_servers(auto(64));
    let addr = "10.1.0.77".parse().unwrap();
    let bgp = lab.b.group_id(&pfx(P)).unwrap();
    let snap = lab
        .b
        .add_static_route(pfx(P), &[ip("192.0.2.7")])
        .unwrap()
        .unwrap();
    assert_published(&lab.b, &snap);
    let stat = lab.b.static_route(&pfx(P)).unwrap().route.group;
    assert_eq!(stat, 2);
    assert_eq!(snap.fib4.lookup_addr(addr), stat);
    assert!(!lab.b.route(&pfx(P)).unwrap().installed);
    assert!(
        Arc::ptr_eq(&snap.groups[bgp as usize], &first.groups[bgp as usize]),
        "the BGP group stays as it was"
    );
    // BGP changes go on in the uninstalled group without touching the FIB.
    let s = lab.feed(withdraw("198.51.100.2", P)).unwrap();
    assert!(Arc::ptr_eq(&s.fib4, &snap.fib4));
    assert_eq!(s.fib4.lookup_addr(addr), stat);
    let what_if = lab.b.what_if_remove(ip("192.0.2.7"));
    assert_eq!(
        what_if,
        vec![WhatIf {
            group: stat,
            prefix: Some(pfx(P)),
            static_route: true,
            buckets: 64,
        }],
        "what_if_remove sees operator groups"
    );
    let hop7 = lab.b.static_route(&pfx(P)).unwrap().route.members[0].hop;

    let snap = lab.b.remove_static_route(&pfx(P)).unwrap().unwrap();
    assert_published(&lab.b, &snap);
    assert_eq!(snap.fib4.lookup_addr(addr), bgp);
    assert!(lab.b.route(&pfx(P)).unwrap().installed);
    assert_eq!(lab.b.static_route(&pfx(P)), None);
    assert_eq!(
        snap.groups.len(),
        2,
        "the freed trailing group id is trimmed"
    );
    assert!(lab.b.hop(hop7).is_none(), "its hop was released");
    assert_eq!(
        lab.b.remove_static_route(&pfx(P)).map(|s| s.is_some()),
        Err(BuildError::NoStaticRoute { prefix: pfx(P) })
    );

    // Added first, then BGP arrives and leaves: the static route keeps the FIB entry.
    let other = pfx("10.5.0.0/24");
    lab.b.add_static_route(other, &[ip("192.0.2.7")]).unwrap();
    let stat = lab.b.static_route(&other).unwrap().route.group;
    lab.feed(announce("198.51.100.1", "10.5.0.0/24", "192.0.2.1", false))
        .unwrap();
    assert!(!lab.b.route(&other).unwrap().installed);
    assert_eq!(
        lab.b.fib4().get("10.5.0.0".parse().unwrap(), 24),
        Some(stat)
    );
    lab.feed(withdraw("198.51.100.1", "10.5.0.0/24")).unwrap();
    assert_eq!(
        lab.b.fib4().get("10.5.0.0".parse().unwrap(), 24),
        Some(stat)
    );
    // Without a BGP route, removal removes the FIB entry.
    let snap = lab.b.remove_static_route(&other).unwrap().unwrap();
    assert_eq!(snap.fib4.get("10.5.0.0".parse().unwrap(), 24), None);
    assert!(lab.b.take_errors().is_empty());
}

#[test]
fn replacing_a_static_route_moves_only_the_changed_hops_buckets() {
    let mut lab = Lab::new(builder(auto(64)));
    let prefix = pfx("10.5.0.0/24");
    let [a, b, c, d] = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"].map(ip);
    lab.b.add_static_route(prefix, &[a, b, c]).unwrap().unwrap();
    let gid = lab.b.static_route(&prefix).unwrap().route.group;
    let owners = |lab: &Lab| lab.b.group(gid).unwrap().bucket_owners().to_vec();
    let hop_of = |lab: &Lab, addr| {
        let info = lab.b.static_route(&prefix).unwrap();
        let m = info.route.members.iter().find(|m| m.addr == addr).unwrap();
        (m.hop, m.state)
    };
    lab.busy();
    let before = owners(&lab);
    let (hc, _) = hop_of(&lab, c);

    let snap = lab.b.add_static_route(prefix, &[a, b]).unwrap().unwrap();
    assert_published(&lab.b, &snap);
    let after = owners(&lab);
    assert_eq!(
        hop_of(&lab, c),
        (hc, HopState::Failed),
        "left out: failed, listed"
    );
    assert_eq!(count(&after, hc), 0);
    assert!((0..64).all(|i| after[i] == before[i] || before[i] == hc));
    // Put back before forget_failed: auto-recovery returns exactly its buckets.
    lab.b.add_static_route(prefix, &[a, b, c]).unwrap().unwrap();
    assert_eq!(owners(&lab), before);
    // Swapped for a new hop: c's buckets move; d waits for clear (auto-recovery).
    lab.b.add_static_route(prefix, &[a, b, d]).unwrap().unwrap();
    let (hd, state) = hop_of(&lab, d);
    assert_eq!(state, HopState::Active);
    assert_eq!(count(&owners(&lab), hd), 0);
    let snap = lab.b.clear(&prefix).unwrap();
    assert_published(&lab.b, &snap);
    assert!((21..=22).contains(&count(&owners(&lab), hd)));
    let kept = owners(&lab);
    let snap = lab.b.forget_failed().unwrap();
    assert_published(&lab.b, &snap);
    assert_eq!(owners(&lab), kept);
    assert_eq!(lab.b.static_route(&prefix).unwrap().route.members.len(), 3);
    assert!(
        lab.b.hop(hc).is_none(),
        "c's hop was freed with its last group"
    );
}

#[test]
fn a_drain_reaches_static_routes_added_before_and_after() {
    let mut lab = Lab::new(builder(auto(16)));
    let [a, b] = ["192.0.2.1", "192.0.2.2"].map(ip);
    let p1 = pfx("10.5.0.0/24");
    lab.b.add_static_route(p1, &[a, b]).unwrap();
    let before = lab.b.group(1).unwrap().bucket_owners().to_vec();
    let snap = lab.b.set_drained(b, true).unwrap();
    assert_published(&lab.b, &snap);
    let p2 = pfx("10.6.0.0/24");
    lab.b.add_static_route(p2, &[a, b]).unwrap();
    for p in [p1, p2] {
        let info = lab.b.static_route(&p).unwrap();
        let m = info.route.members.iter().find(|m| m.addr == b).unwrap();
        assert_eq!((m.state, m.buckets), (HopState::Draining, 0), "{p}");
    }
    lab.b.set_drained(b, false).unwrap();
    assert_eq!(lab.b.group(1).unwrap().bucket_owners(), &before[..]);
    let info = lab.b.static_route(&p2).unwrap();
    assert!(
        info.route
            .members
            .iter()
            .all(|m| m.state == HopState::Active)
    );
    assert_eq!(
        info.route.members[1].buckets, 8,
        "its share from the joint balance"
    );
}

#[test]
fn configured_static_routes_are_shown_and_cannot_be_changed_here() {
    let mut lab = Lab::new(Builder::new(with_static(auto(16)), resolve_all as Resolve).unwrap());
    let info = lab.b.static_route(&pfx("10.0.0.0/8")).unwrap();
    assert!(info.configured);
    assert_eq!(info.route.group, 1);
    assert!(info.route.installed);
    assert_eq!(info.route.policy.mode, GroupMode::Manual);
    assert_eq!(info.route.policy.buckets, 16);
    assert_eq!(info.route.members.len(), 1);
    assert_eq!(info.route.members[0].addr, ip("192.0.2.254"));
    assert_eq!(info.route.members[0].buckets, 16);
    lab.b
        .add_static_route(pfx("10.5.0.0/24"), &[ip("192.0.2.1")])
        .unwrap();
    let all: Vec<(Prefix, bool)> = lab
        .b
        .static_routes()
        .iter()
        .map(|s| (s.route.prefix, s.configured))
        .collect();
    assert_eq!(
        all,
        vec![(pfx("10.0.0.0/8"), true), (pfx("10.5.0.0/24"), false)]
    );
    // Its only hop drained: no bucket has an owner. Undrained into a group with no active
    // owner, it takes every bucket at once, even in manual mode.
    lab.b.set_drained(ip("192.0.2.254"), true).unwrap();
    assert_eq!(lab.b.group(1).unwrap().bucket_owners(), &[0; 16][..]);
    let snap = lab.b.set_drained(ip("192.0.2.254"), false).unwrap();
    assert_published(&lab.b, &snap);
    assert_eq!(lab.b.group(1).unwrap().bucket_owners(), &[1; 16][..]);
    // `clear` reaches configured groups too (already balanced: nothing moves).
    let snap = lab.b.clear(&pfx("10.0.0.0/8")).unwrap();
    assert_published(&lab.b, &snap);
    assert_eq!(lab.b.group(1).unwrap().bucket_owners(), &[1; 16][..]);
}

#[test]
fn refused_operator_commands_change_nothing() {
    let encap = ActionTemplate::Encap {
        kind: EncapKind::IpIp,
        src: ip("203.0.113.1"),
    };
    let mut cfg = with_static(auto(16));
    cfg.max_tbl8 = 0;
    cfg.policies.push(PrefixPolicy {
        range: pfx("10.5.0.0/16"),
        group: GroupPolicy {
            action: encap,
            ..auto(16)
        },
    });
    let mut lab = Lab::new(Builder::new(cfg, resolve_all as Resolve).unwrap());
    lab.feed(announce("198.51.100.1", P, "192.0.2.1", false))
        .unwrap();
    lab.b
        .add_static_route(pfx("10.5.0.0/24"), &[ip("192.0.2.2")])
        .unwrap();
    lab.b.set_drained(ip("192.0.2.9"), true);
    let before = observe(&lab.b);
    let held = lab.b.snapshot();
    let refusals: Vec<(Result<Option<Snapshot>, BuildError>, BuildError)> = vec![
        (
            lab.b.add_static_route(pfx("10.6.0.0/24"), &[]),
            BuildError::NoNextHops {
                prefix: pfx("10.6.0.0/24"),
            },
        ),
        (
            lab.b
                .add_static_route(pfx("10.0.0.0/8"), &[ip("192.0.2.1")]),
            BuildError::ConfiguredStaticRoute {
                prefix: pfx("10.0.0.0/8"),
            },
        ),
        (
            lab.b.remove_static_route(&pfx("10.0.0.0/8")),
            BuildError::ConfiguredStaticRoute {
                prefix: pfx("10.0.0.0/8"),
            },
        ),
        (
            lab.b.remove_static_route(&pfx(P)),
            BuildError::NoStaticRoute { prefix: pfx(P) },
        ),
        (
            lab.b
                .add_static_route(pfx("10.5.1.0/24"), &[ip("192.0.2.3"), ip("2001:db8::1")]),
            BuildError::EncapFamily {
                prefix: pfx("10.5.1.0/24"),
                next_hop: ip("2001:db8::1"),
            },
        ),
        (
            // Replacing an existing route's set with a bad hop refuses the whole set.
            lab.b
                .add_static_route(pfx("10.5.0.0/24"), &[ip("192.0.2.4"), ip("2001:db8::1")]),
            BuildError::EncapFamily {
                prefix: pfx("10.5.0.0/24"),
                next_hop: ip("2001:db8::1"),
            },
        ),
    ];
    for (got, want) in refusals {
        assert_eq!(got.map(|s| s.is_some()), Err(want));
        assert_eq!(observe(&lab.b), before);
        assert!(Arc::ptr_eq(&lab.b.snapshot().fib4, &held.fib4));
    }
    // The FIB refuses a /25 (no tbl8 left): the group id and hops taken are given back.
    let got = lab
        .b
        .add_static_route(pfx("10.7.0.0/25"), &[ip("192.0.2.5")]);
    assert_eq!(
        got.map(|s| s.is_some()),
        Err(BuildError::StaticRoute {
            prefix: pfx("10.7.0.0/25"),
            source: TableError::Tbl8Exhausted { max: 0 },
        })
    );
    assert_eq!(observe(&lab.b), before);
    assert!(lab.b.take_errors().is_empty());
    // Still usable: the next route takes the next group id.
    let next = lab.b.snapshot().groups.len() as GroupId;
    lab.b
        .add_static_route(pfx("10.7.0.0/24"), &[ip("192.0.2.5")])
        .unwrap()
        .unwrap();
    assert_eq!(
        lab.b.static_route(&pfx("10.7.0.0/24")).unwrap().route.group,
        next
    );
    assert_eq!(
        BuildError::ConfiguredStaticRoute {
            prefix: pfx("10.0.0.0/8")
        }
        .to_string(),
        "static route 10.0.0.0/8 is configured; change it in the config"
    );
}
