//! `Builder::reload`: the configured tables moved to a new file's, matched by name, with the
//! group modes' semantics; operator state and BGP routes kept; a refused reload changes nothing.

use ecmp_proto::ctl::ReloadCounts;

use super::operator::assert_published;
use super::*;

fn chop(name: &str, last: u8, weight: u32) -> ConfigHop {
    ConfigHop {
        name: name.to_owned(),
        hop: NextHop {
            id: 0,
            addr: IpAddr::from([192, 0, 2, last]),
            port: 0,
            mac: [2, 0, 0, 0, 0, last],
            weight,
            action: Action::Rewrite,
        },
        state: HopState::Active,
    }
}

fn cgroup(name: &str, mode: GroupMode, members: &[usize]) -> ConfigGroup {
    ConfigGroup {
        name: name.to_owned(),
        mode,
        buckets: 64,
        hash: Default::default(),
        members: members
            .iter()
            .map(|&hop| ConfigMember { hop, weight: 1 })
            .collect(),
    }
}

/// Hops a..d (192.0.2.1..4); group "web" (a, b, c) routed from 10.0.0.0/8, group "db" (d)
/// routed from 172.16.0.0/12.
fn base() -> ConfigTables {
    ConfigTables {
        hops: vec![
            chop("a", 1, 1),
            chop("b", 2, 1),
            chop("c", 3, 1),
            chop("d", 4, 1),
        ],
        groups: vec![
            cgroup("web", GroupMode::AutoRecovery, &[0, 1, 2]),
            cgroup("db", GroupMode::AutoRecovery, &[3]),
        ],
        routes: vec![(pfx("10.0.0.0/8"), 0), (pfx("172.16.0.0/12"), 1)],
        policies: Vec::new(),
        default_policy: auto(64),
    }
}

fn loaded(desired: &ConfigTables) -> Builder<Resolve> {
    let mut b = builder(auto(64));
    let s = b.reload(desired).unwrap();
    assert!(s.snapshot.is_some());
    b
}

fn counts(added: usize, removed: usize, changed: usize) -> ReloadCounts {
    ReloadCounts {
        added,
        removed,
        changed,
    }
}

fn gid_of(b: &Builder<Resolve>, route: &str) -> GroupId {
    b.static_route(&pfx(route)).unwrap().route.group
}

fn hop_id(b: &Builder<Resolve>, last: u8) -> HopId {
    b.hops()
        .iter()
        .find(|h| h.configured && h.hop.addr == IpAddr::from([192, 0, 2, last]))
        .unwrap()
        .hop
        .id
}

#[test]
fn a_first_reload_adds_everything_and_the_same_file_again_changes_nothing() {
    let mut b = builder(auto(64));
    let s = b.reload(&base()).unwrap();
    assert_eq!(s.hops, counts(4, 0, 0));
    assert_eq!(s.groups, counts(2, 0, 0));
    assert_eq!(s.routes, counts(2, 0, 0));
    let snap = s.snapshot.unwrap();
    let web = gid_of(&b, "10.0.0.0/8");
    assert_eq!(snap.fib4.lookup_addr("10.1.2.3".parse().unwrap()), web);
    assert_eq!(b.hops().iter().filter(|h| h.configured).count(), 4);
    let again = b.reload(&base()).unwrap();
    assert_eq!(again.hops, ReloadCounts::default());
    assert_eq!(again.groups, ReloadCounts::default());
    assert_eq!(again.routes, ReloadCounts::default());
    assert!(
        again.snapshot.is_none(),
        "nothing changed, nothing published"
    );
}

#[test]
fn an_unchanged_group_keeps_its_table_and_a_new_member_joins_only_its_group() {
    let mut b = loaded(&base());
    let before = b.snapshot();
    let (web, db) = (gid_of(&b, "10.0.0.0/8"), gid_of(&b, "172.16.0.0/12"));
    let web_owners = b.group(web).unwrap().bucket_owners().to_vec();
    let db_owners = b.group(db).unwrap().bucket_owners().to_vec();
    // Flows used every bucket of "db": a joining hop gets none of them (auto-recovery).
    for bucket in 0..64 {
        before.groups[db as usize].touch(bucket, 1);
    }
    let mut next = base();
    next.hops.push(chop("e", 5, 1));
    next.groups[1]
        .members
        .push(ConfigMember { hop: 4, weight: 1 });
    let s = b.reload(&next).unwrap();
    assert_eq!(s.hops, counts(1, 0, 0));
    assert_eq!(s.groups, counts(0, 0, 1));
    assert_eq!(s.routes, ReloadCounts::default());
    let snap = s.snapshot.unwrap();
    assert!(Arc::ptr_eq(
        &snap.groups[web as usize],
        &before.groups[web as usize]
    ));
    assert_eq!(b.group(web).unwrap().bucket_owners(), &web_owners[..]);
    assert_eq!(b.group(db).unwrap().bucket_owners(), &db_owners[..]);
    let e = hop_id(&b, 5);
    assert!(b.group(db).unwrap().member(e).is_some());
    assert!(Arc::ptr_eq(&snap.fib4, &before.fib4), "no route changed");
    // On an untouched group the new hop takes its share at once.
    let mut fresh = loaded(&base());
    fresh.reload(&next).unwrap();
    let owners = fresh.group(db).unwrap().bucket_owners();
    assert_eq!(count(owners, hop_id(&fresh, 5)), 32);
}

#[test]
fn a_removed_member_moves_only_its_buckets_and_its_hop_id_is_freed() {
    let mut b = loaded(&base());
    let web = gid_of(&b, "10.0.0.0/8");
    let c = hop_id(&b, 3);
    // Under traffic (before it the table is the member set's canonical one).
    let table = Arc::clone(&b.snapshot().groups[web as usize]);
    for bucket in 0..64 {
        table.touch(bucket, 1);
    }
    let before = b.group(web).unwrap().bucket_owners().to_vec();
    let mut next = base();
    next.groups[0].members.pop();
    next.hops.remove(2);
    for g in &mut next.groups {
        for m in &mut g.members {
            if m.hop > 2 {
                m.hop -= 1;
            }
        }
    }
    let s = b.reload(&next).unwrap();
    assert_eq!(s.hops, counts(0, 1, 0));
    assert_eq!(s.groups, counts(0, 0, 1));
    let after = b.group(web).unwrap().bucket_owners();
    for (i, (&old, &new)) in before.iter().zip(after).enumerate() {
        if old == c {
            assert_ne!(new, c, "bucket {i} left the removed hop");
        } else {
            assert_eq!(new, old, "bucket {i} of a remaining hop stayed");
        }
    }
    assert!(b.hop(c).is_none(), "the removed hop's id is free");
    assert_eq!(b.hops().iter().filter(|h| h.configured).count(), 3);
    assert_published(&b, &s.snapshot.unwrap());
}

#[test]
fn hop_changes_groups_and_routes_are_counted_and_applied() {
    let mut b = loaded(&base());
    let a = hop_id(&b, 1);
    let mut next = base();
    next.hops[0].hop.weight = 3;
    next.groups[0].members[0].weight = 3;
    next.groups.push(cgroup("new", GroupMode::Maglev, &[0, 3]));
    next.routes[1].1 = 2;
    next.routes.push((pfx("192.168.0.0/16"), 0));
    let s = b.reload(&next).unwrap();
    assert_eq!(s.hops, counts(0, 0, 1));
    // "web" changed its weight; "db" lost its route but not its members.
    assert_eq!(s.groups, counts(1, 0, 1));
    assert_eq!(s.routes, counts(1, 0, 1));
    let snap = s.snapshot.unwrap();
    let new = gid_of(&b, "172.16.0.0/12");
    assert_eq!(b.group(new).unwrap().mode(), GroupMode::Maglev);
    assert_eq!(snap.fib4.lookup_addr("172.16.0.1".parse().unwrap()), new);
    assert_eq!(
        snap.fib4.lookup_addr("192.168.1.1".parse().unwrap()),
        gid_of(&b, "10.0.0.0/8")
    );
    assert_eq!(b.hop(a).unwrap().weight, 3);
    // A removed group and route: the route's addresses fall back to nothing.
    let mut fewer = next.clone();
    fewer.groups.remove(1);
    fewer.routes.retain(|r| r.0 != pfx("192.168.0.0/16"));
    fewer.routes[1].1 = 1;
    let s = b.reload(&fewer).unwrap();
    assert_eq!(s.groups, counts(0, 1, 0));
    assert_eq!(s.routes, counts(0, 1, 0));
    let snap = s.snapshot.unwrap();
    assert_eq!(snap.fib4.lookup_addr("192.168.1.1".parse().unwrap()), 0);
    assert_published(&b, &snap);
}

#[test]
fn operator_drains_bgp_routes_and_operator_routes_survive() {
    let mut lab = Lab::new(loaded(&base()));
    let changes = coalesce(
        SERVERS
            .iter()
            .flat_map(|(peer, hop)| lab.rib.apply(&announce(peer, P, hop, false), lab.now)),
    );
    lab.b.apply(&changes).unwrap();
    lab.b.set_drained(ip("192.0.2.2"), true).unwrap();
    lab.b
        .add_static_route(pfx("10.9.0.0/16"), &[ip("192.0.2.9")])
        .unwrap();
    let bgp = lab.b.group_id(&pfx(P)).unwrap();
    let mut next = base();
    next.hops[1].hop.weight = 2;
    next.groups[0].members[1].weight = 2;
    let s = lab.b.reload(&next).unwrap();
    assert_eq!(s.groups, counts(0, 0, 1));
    let web = gid_of(&lab.b, "10.0.0.0/8");
    let b_hop = hop_id(&lab.b, 2);
    let member = *lab.b.group(web).unwrap().member(b_hop).unwrap();
    assert_eq!((member.state, member.weight), (HopState::Draining, 2));
    assert_eq!(lab.b.group_id(&pfx(P)), Some(bgp));
    assert!(lab.b.static_route(&pfx("10.9.0.0/16")).is_some());
    // A configured route over the operator's is refused, and changes nothing.
    let before = lab.b.snapshot();
    let mut clash = next.clone();
    clash.routes.push((pfx("10.9.0.0/16"), 0));
    clash.hops.push(chop("x", 99, 1));
    let e = lab.b.reload(&clash).unwrap_err();
    assert_eq!(
        e,
        BuildError::OperatorRoute {
            prefix: pfx("10.9.0.0/16")
        }
    );
    assert_eq!(lab.b.snapshot().hops, before.hops);
    assert!(Arc::ptr_eq(&lab.b.snapshot().fib4, &before.fib4));
}

#[test]
fn a_refused_reload_changes_nothing() {
    let mut b = builder(auto(64));
    // 16 tbl8 groups: the 17th /25 under its own /24 does not fit.
    let mut desired = base();
    let mut routes: Vec<(Prefix, usize)> = (0..17u8)
        .map(|i| (pfx(&format!("10.{i}.0.0/25")), 0))
        .collect();
    desired.routes.clear();
    desired.routes.append(&mut routes);
    let fits = ConfigTables {
        routes: desired.routes[..16].to_vec(),
        ..desired.clone()
    };
    b.reload(&fits).unwrap();
    let before = b.snapshot();
    let hops = b.hops();
    let e = b.reload(&desired).unwrap_err();
    assert!(matches!(e, BuildError::StaticRoute { .. }), "{e}");
    assert_eq!(b.hops(), hops);
    for i in 0..16u8 {
        let a = std::net::Ipv4Addr::new(10, i, 0, 1);
        assert_eq!(b.fib4().lookup_addr(a), before.fib4.lookup_addr(a));
    }
    // A bad index and a bad policy are refused before anything is looked at.
    let mut bad = base();
    bad.groups[0]
        .members
        .push(ConfigMember { hop: 9, weight: 1 });
    assert!(matches!(
        b.reload(&bad),
        Err(BuildError::ConfigIndex { index: 9, .. })
    ));
    let mut bad = base();
    bad.default_policy.buckets = 3;
    assert!(matches!(b.reload(&bad), Err(BuildError::Policy { .. })));
    assert_eq!(b.hops(), hops);
}

#[test]
fn a_new_bgp_policy_reshapes_learnt_groups() {
    let mut lab = Lab::new(loaded(&base()));
    let changes = coalesce(
        SERVERS
            .iter()
            .flat_map(|(peer, hop)| lab.rib.apply(&announce(peer, P, hop, false), lab.now)),
    );
    lab.b.apply(&changes).unwrap();
    let gid = lab.b.group_id(&pfx(P)).unwrap();
    let mut next = base();
    next.policies.push(PrefixPolicy {
        range: pfx("10.1.0.0/16"),
        group: GroupPolicy {
            mode: GroupMode::Maglev,
            buckets: 128,
            ..GroupPolicy::default()
        },
    });
    let s = lab.b.reload(&next).unwrap();
    assert!(s.policies);
    assert!(s.snapshot.is_some());
    let g = lab.b.group(gid).unwrap();
    assert_eq!((g.mode(), g.bucket_count()), (GroupMode::Maglev, 128));
    assert_eq!(lab.b.route(&pfx(P)).unwrap().members.len(), 3);
}
