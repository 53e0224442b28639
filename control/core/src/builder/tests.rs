//! The scenarios driven through `Rib` + `Builder`, the publishing rules (Arc sharing, no
//! empty snapshots, id reuse), and the RIB/FIB agreement as a property. Operator commands
//! (drain, static routes) are in `operator`.

mod operator;
mod order;
mod reload;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecmp_proto::{
    Announce, Attributes, Community, FeedEvent, Neighbor, Nlri, PathId, Prefix, SessionState,
    Update,
};
use ecmp_tables::group::GroupMode;
use ecmp_tables::nexthop::{Action, Encap, EncapKind, HopState, NextHop, PortId, PortInfo};
use ecmp_tables::{Fib4, ResilientGroup, TableError};
use proptest::prelude::*;

use super::*;
use crate::rib::{HopSet, Rib, RibConfig};

type Resolve = fn(IpAddr) -> Option<(PortId, [u8; 6])>;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

/// Every address resolves on port 0 to a MAC ending in the address's last byte.
fn resolve_all(addr: IpAddr) -> Option<(PortId, [u8; 6])> {
    let last = match addr {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    Some((0, [2, 0, 0, 0, 1, last]))
}

fn ports() -> Vec<PortInfo> {
    vec![PortInfo {
        mac: [2, 0, 0, 0, 0, 9],
        mtu: 1500,
    }]
}

fn config(policy: GroupPolicy) -> BuilderConfig {
    BuilderConfig {
        policies: Vec::new(),
        default_policy: policy,
        ports: ports(),
        seed: 7,
        max_tbl8: 16,
        statics: StaticTables::default(),
    }
}

fn auto(buckets: u32) -> GroupPolicy {
    GroupPolicy {
        mode: GroupMode::AutoRecovery,
        buckets,
        ..GroupPolicy::default()
    }
}

fn builder(policy: GroupPolicy) -> Builder<Resolve> {
    Builder::new(config(policy), resolve_all as Resolve).unwrap()
}

/// A config with one static hop (192.0.2.254), one static group and `10.0.0.0/8` -> it.
fn with_static(policy: GroupPolicy) -> BuilderConfig {
    let hop = NextHop {
        id: 1,
        addr: ip("192.0.2.254"),
        port: 0,
        mac: [2, 0, 0, 0, 0, 0xfe],
        weight: 1,
        action: Action::Rewrite,
    };
    let mut g = ResilientGroup::new(16, GroupMode::Manual, 7).unwrap();
    g.add_member(1, 1).unwrap();
    g.clear();
    BuilderConfig {
        statics: StaticTables {
            hops: vec![hop],
            groups: vec![g],
            routes: vec![(pfx("10.0.0.0/8"), 1)],
            ..StaticTables::default()
        },
        ..config(policy)
    }
}

fn announce(peer: &str, prefix: &str, hop: &str, gshut: bool) -> FeedEvent {
    FeedEvent::Update {
        neighbor: Neighbor::new(ip(peer)),
        update: Update {
            attributes: Attributes {
                as_path: vec![],
                communities: if gshut {
                    vec![Community::GRACEFUL_SHUTDOWN]
                } else {
                    vec![]
                },
                ..Attributes::default()
            },
            announce: vec![Announce {
                next_hop: ip(hop),
                nlri: Nlri {
                    prefix: pfx(prefix),
                    path_id: None,
                },
            }],
            withdraw: vec![],
            skipped_families: 0,
        },
    }
}

fn withdraw(peer: &str, prefix: &str) -> FeedEvent {
    FeedEvent::Update {
        neighbor: Neighbor::new(ip(peer)),
        update: Update {
            withdraw: vec![Nlri {
                prefix: pfx(prefix),
                path_id: None,
            }],
            ..Update::default()
        },
    }
}

fn down(peer: &str) -> FeedEvent {
    FeedEvent::State {
        neighbor: Neighbor::new(ip(peer)),
        state: SessionState::Down { reason: None },
    }
}

struct Lab {
    rib: Rib,
    b: Builder<Resolve>,
    now: Instant,
}

impl Lab {
    fn new(b: Builder<Resolve>) -> Lab {
        Lab {
            rib: Rib::new(RibConfig::default()),
            b,
            now: Instant::now(),
        }
    }

    fn feed(&mut self, event: FeedEvent) -> Option<Snapshot> {
        let changes = self.rib.apply(&event, self.now);
        self.b.apply(&changes)
    }

    /// Hop id of `addr` in `prefix`'s group.
    fn hop(&self, prefix: &str, addr: &str) -> HopId {
        let route = self.b.route(&pfx(prefix)).unwrap();
        route
            .members
            .iter()
            .find(|m| m.addr == ip(addr))
            .map(|m| m.hop)
            .unwrap()
    }

    fn owners(&self, prefix: &str) -> Vec<HopId> {
        let gid = self.b.group_id(&pfx(prefix)).unwrap();
        self.b.group(gid).unwrap().bucket_owners().to_vec()
    }

    /// Traffic has used every bucket of every group: from now on the resilient rules apply
    /// (before any traffic the stateful modes rebuild their canonical table on every change).
    fn busy(&self) {
        for gid in 1..self.b.snapshot().groups.len() as GroupId {
            if let Some(g) = self.b.group(gid)
                && let Some(a) = g.activity()
            {
                (0..g.bucket_count() as usize).for_each(|bucket| a.touch(bucket, 0));
            }
        }
    }

    fn state(&self, prefix: &str, addr: &str) -> HopState {
        let route = self.b.route(&pfx(prefix)).unwrap();
        route
            .members
            .iter()
            .find(|m| m.addr == ip(addr))
            .map(|m| m.state)
            .unwrap()
    }
}

const P: &str = "10.1.0.0/24";
const SERVERS: [(&str, &str); 3] = [
    ("198.51.100.1", "192.0.2.1"),
    ("198.51.100.2", "192.0.2.2"),
    ("198.51.100.3", "192.0.2.3"),
];

/// Three servers announce `P`, each with itself as next hop, within one publishing batch; then
/// traffic uses every bucket.
fn three_servers(policy: GroupPolicy) -> (Lab, Snapshot) {
    let mut lab = Lab::new(builder(policy));
    let changes = coalesce(
        SERVERS
            .iter()
            .flat_map(|(peer, hop)| lab.rib.apply(&announce(peer, P, hop, false), lab.now)),
    );
    assert_eq!(changes.len(), 1);
    let snap = lab.b.apply(&changes).unwrap();
    lab.busy();
    (lab, snap)
}

fn count(owners: &[HopId], hop: HopId) -> usize {
    owners.iter().filter(|&&o| o == hop).count()
}

#[test]
fn three_servers_make_one_balanced_group() {
    let (lab, snap) = three_servers(auto(64));
    let gid = lab.b.group_id(&pfx(P)).unwrap();
    assert_eq!(gid, 1);
    assert_eq!(snap.fib4.lookup_addr("10.1.0.77".parse().unwrap()), gid);
    assert_eq!(snap.fib4.lookup_addr("10.1.1.1".parse().unwrap()), 0);
    let group = snap.group(gid).unwrap();
    let live: Vec<_> = group.members().iter().filter(|m| m.hop != 0).collect();
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|m| m.state == HopState::Active));
    let owners = lab.owners(P);
    for (_, hop) in SERVERS {
        let id = lab.hop(P, hop);
        let n = count(&owners, id);
        assert!((21..=22).contains(&n), "{hop} owns {n} of 64");
        let nh = snap.hop(id).unwrap();
        assert_eq!(nh.addr, ip(hop));
        assert_eq!(nh.mac, resolve_all(ip(hop)).unwrap().1);
        assert_eq!(nh.action, Action::Rewrite);
    }
    let route = lab.b.route(&pfx(P)).unwrap();
    assert!(route.installed);
    assert!(route.buckets.iter().all(|b| !b.replaced));
}

#[test]
fn servers_announcing_one_by_one_under_traffic_follow_the_mode_until_clear() {
    let mut lab = Lab::new(builder(auto(64)));
    for (peer, hop) in SERVERS {
        lab.feed(announce(peer, P, hop, false)).unwrap();
        lab.busy();
    }
    let first = lab.hop(P, "192.0.2.1");
    assert_eq!(lab.b.route(&pfx(P)).unwrap().members.len(), 3);
    assert_eq!(
        count(&lab.owners(P), first),
        64,
        "auto-recovery: brand-new hops wait for clear once every bucket carries traffic"
    );
    let snap = lab.b.clear(&pfx(P)).unwrap();
    let owners = lab.owners(P);
    for (_, hop) in SERVERS {
        assert!((21..=22).contains(&count(&owners, lab.hop(P, hop))));
    }
    let gid = lab.b.group_id(&pfx(P)).unwrap();
    assert_eq!(snap.group(gid).unwrap(), &lab.b.group(gid).unwrap().table());
    assert!(lab.b.clear(&pfx("10.9.0.0/24")).is_none());
}

#[test]
fn coalesce_keeps_the_last_hop_set_and_the_removed_hops() {
    let mut rib = Rib::new(RibConfig::default());
    let now = Instant::now();
    let mut all = Vec::new();
    for event in [
        announce("198.51.100.1", P, "192.0.2.1", false),
        announce("198.51.100.2", P, "192.0.2.2", false),
        withdraw("198.51.100.1", P),
        announce("198.51.100.3", "10.2.0.0/24", "192.0.2.3", false),
    ] {
        all.extend(rib.apply(&event, now));
    }
    let merged = coalesce(all);
    assert_eq!(merged.len(), 2);
    assert_eq!(merged[0].prefix, pfx(P));
    assert_eq!(merged[0].hops, rib.hops(&pfx(P)));
    assert_eq!(merged[0].removed, vec![ip("192.0.2.1")]);
    assert_eq!(merged[1].hops, rib.hops(&pfx("10.2.0.0/24")));
}

/// `coalesce` as it was first written (a map keyed by prefix), the reference for the sort.
fn coalesce_by_map(changes: Vec<PrefixChange>) -> Vec<PrefixChange> {
    let mut merged: std::collections::BTreeMap<Prefix, PrefixChange> = Default::default();
    for change in changes {
        match merged.get_mut(&change.prefix) {
            None => {
                merged.insert(change.prefix, change);
            }
            Some(m) => {
                let mut removed: BTreeSet<IpAddr> = m.removed.iter().copied().collect();
                removed.extend(change.removed);
                m.hops = change.hops;
                m.removed = removed
                    .into_iter()
                    .filter(|a| !m.hops.contains_key(a))
                    .collect();
            }
        }
    }
    merged.into_values().collect()
}

proptest! {
    /// Same merge as the map it replaced, for any order and repetition of prefixes.
    #[test]
    fn coalesce_by_sorting_equals_coalesce_by_map(
        raw in prop::collection::vec(
            (0usize..4, prop::collection::btree_set(0usize..4, 0..3), prop::collection::vec(0usize..4, 0..3)),
            0..40,
        )
    ) {
        let prefixes = ["10.0.0.0/24", "10.0.1.0/24", "2001:db8::/64", "10.0.0.0/16"];
        let hops = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8:ffff::1"];
        let changes: Vec<PrefixChange> = raw
            .into_iter()
            .map(|(p, now, gone)| PrefixChange {
                prefix: pfx(prefixes[p]),
                hops: now.iter().map(|&h| (ip(hops[h]), NextHopState::Active)).collect(),
                removed: gone.iter().map(|&h| ip(hops[h])).collect(),
            })
            .collect();
        prop_assert_eq!(coalesce(changes.clone()), coalesce_by_map(changes));
    }
}

#[test]
fn a_withdrawn_server_loses_only_its_buckets() {
    let (mut lab, _) = three_servers(GroupPolicy {
        mode: GroupMode::Manual,
        buckets: 64,
        ..GroupPolicy::default()
    });
    let before = lab.owners(P);
    let gone = lab.hop(P, "192.0.2.2");
    let had = count(&before, gone);
    assert!(had > 0);
    let snap = lab.feed(withdraw("198.51.100.2", P)).unwrap();
    let after = lab.owners(P);
    let moved: Vec<usize> = (0..64).filter(|&b| before[b] != after[b]).collect();
    assert_eq!(moved.len(), had);
    assert!(moved.iter().all(|&b| before[b] == gone));
    assert_eq!(count(&after, gone), 0);
    assert_eq!(lab.state(P, "192.0.2.2"), HopState::Failed);
    let gid = lab.b.group_id(&pfx(P)).unwrap();
    let table = snap.group(gid).unwrap();
    assert!(
        table
            .members()
            .iter()
            .any(|m| m.hop == gone && m.state == HopState::Failed),
        "a failed hop stays listed until forget_failed"
    );
    let route = lab.b.route(&pfx(P)).unwrap();
    let replaced: Vec<usize> = (0..64).filter(|&b| route.buckets[b].replaced).collect();
    assert_eq!(
        replaced, moved,
        "the replaced marks are exactly the moved buckets"
    );
}

#[test]
fn bucket_moves_count_changed_owners_not_first_fills_and_go_with_the_group() {
    let (mut lab, _) = three_servers(GroupPolicy {
        mode: GroupMode::Manual,
        buckets: 64,
        ..GroupPolicy::default()
    });
    let gid = lab.b.group_id(&pfx(P)).unwrap();
    assert_eq!(lab.b.bucket_moves(), vec![], "the first fill moved nothing");
    let had = count(&lab.owners(P), lab.hop(P, "192.0.2.2"));
    lab.feed(withdraw("198.51.100.2", P)).unwrap();
    let moves = GroupMoves {
        group: gid,
        prefix: Some(pfx(P)),
        moves: had as u64,
    };
    assert_eq!(lab.b.bucket_moves(), vec![moves.clone()]);
    // Manual mode: the returning hop gets nothing until `clear`, so nothing moves...
    lab.feed(announce("198.51.100.2", P, "192.0.2.2", false));
    assert_eq!(lab.b.bucket_moves(), vec![moves]);
    // ...and every server withdrawn frees the group and its count.
    for (peer, _) in SERVERS {
        lab.feed(withdraw(peer, P));
    }
    assert_eq!(lab.b.group_id(&pfx(P)), None);
    assert_eq!(lab.b.bucket_moves(), vec![]);
}

#[test]
fn graceful_shutdown_drains_and_keeps_the_member() {
    let (mut lab, _) = three_servers(auto(64));
    let before = lab.owners(P);
    let hop = lab.hop(P, "192.0.2.3");
    lab.feed(announce("198.51.100.3", P, "192.0.2.3", true))
        .unwrap();
    let after = lab.owners(P);
    assert_eq!(lab.state(P, "192.0.2.3"), HopState::Draining);
    assert_eq!(count(&after, hop), 0);
    assert!((0..64).all(|b| before[b] == after[b] || before[b] == hop));
    // Back without the community: auto-recovery returns exactly its buckets.
    lab.feed(announce("198.51.100.3", P, "192.0.2.3", false))
        .unwrap();
    assert_eq!(lab.state(P, "192.0.2.3"), HopState::Active);
    assert_eq!(lab.owners(P), before);
}

fn announce_local_pref(peer: &str, hop: &str, local_pref: u32) -> FeedEvent {
    FeedEvent::Update {
        neighbor: Neighbor::new(ip(peer)),
        update: Update {
            attributes: Attributes {
                local_pref: Some(local_pref),
                ..Attributes::default()
            },
            announce: vec![Announce {
                next_hop: ip(hop),
                nlri: Nlri {
                    prefix: pfx(P),
                    path_id: None,
                },
            }],
            ..Update::default()
        },
    }
}

#[test]
fn a_de_preferred_path_drains_with_its_reason_and_returns_to_its_buckets() {
    use ecmp_proto::ctl::{Criterion, DrainReason};
    let (mut lab, _) = three_servers(auto(64));
    let before = lab.owners(P);
    let hop = lab.hop(P, "192.0.2.3");
    let reason = |lab: &Lab, addr: &str| {
        let route = lab.b.route(&pfx(P)).unwrap();
        route
            .members
            .iter()
            .find(|m| m.addr == ip(addr))
            .unwrap()
            .reason
    };
    lab.feed(announce_local_pref("198.51.100.3", "192.0.2.3", 1))
        .unwrap();
    assert_eq!(lab.state(P, "192.0.2.3"), HopState::Draining);
    assert_eq!(count(&lab.owners(P), hop), 0);
    assert!((0..64).all(|b| before[b] == lab.owners(P)[b] || before[b] == hop));
    let not_best = |value| {
        Some(DrainReason::NotBest {
            criterion: Criterion::LocalPref,
            value,
            best: 100,
        })
    };
    assert_eq!(reason(&lab, "192.0.2.3"), not_best(1));
    assert_eq!(reason(&lab, "192.0.2.1"), None);
    // Losing by another margin changes only the reason: nothing to publish.
    assert!(
        lab.feed(announce_local_pref("198.51.100.3", "192.0.2.3", 2))
            .is_none()
    );
    assert_eq!(reason(&lab, "192.0.2.3"), not_best(2));
    // An operator drain of an active member says so.
    lab.b.set_drained(ip("192.0.2.1"), true).unwrap();
    assert_eq!(reason(&lab, "192.0.2.1"), Some(DrainReason::Operator));
    lab.b.set_drained(ip("192.0.2.1"), false).unwrap();
    // Tied again: active, with exactly its old buckets (auto-recovery).
    lab.feed(announce_local_pref("198.51.100.3", "192.0.2.3", 100))
        .unwrap();
    assert_eq!(lab.state(P, "192.0.2.3"), HopState::Active);
    assert_eq!(reason(&lab, "192.0.2.3"), None);
    assert_eq!(lab.owners(P), before);
}

#[test]
fn a_vanished_peer_fails_its_hop_and_a_return_recovers_it() {
    let (mut lab, _) = three_servers(auto(64));
    let before = lab.owners(P);
    let hop = lab.hop(P, "192.0.2.1");
    lab.feed(down("198.51.100.1")).unwrap();
    assert_eq!(lab.state(P, "192.0.2.1"), HopState::Failed);
    assert_eq!(count(&lab.owners(P), hop), 0);
    lab.feed(announce("198.51.100.1", P, "192.0.2.1", false))
        .unwrap();
    assert_eq!(lab.hop(P, "192.0.2.1"), hop, "the hop id is stable");
    assert_eq!(lab.owners(P), before);
}

#[test]
fn a_withdrawn_prefix_gives_the_covering_static_route_back() {
    let b = Builder::new(with_static(auto(64)), resolve_all as Resolve).unwrap();
    let initial = b.snapshot();
    let addr = "10.1.0.5".parse().unwrap();
    assert_eq!(initial.fib4.lookup_addr(addr), 1);
    assert_eq!(initial.groups.len(), 2);
    let mut lab = Lab::new(b);
    for (peer, hop) in SERVERS {
        lab.feed(announce(peer, P, hop, false));
    }
    let gid = lab.b.group_id(&pfx(P)).unwrap();
    assert_eq!(gid, 2, "BGP groups follow the static ones");
    assert_eq!(lab.b.hop(1).unwrap().addr, ip("192.0.2.254"));
    assert!(
        lab.hop(P, "192.0.2.1") > 1,
        "BGP hops follow the static ones"
    );
    assert_eq!(lab.b.fib4().lookup_addr(addr), gid);
    let mut last = None;
    for (peer, _) in SERVERS {
        last = lab.feed(withdraw(peer, P)).or(last);
    }
    let snap = last.unwrap();
    assert_eq!(snap.fib4.lookup_addr(addr), 1);
    assert_eq!(snap.fib4.get("10.1.0.0".parse().unwrap(), 24), None);
    assert_eq!(lab.b.group_id(&pfx(P)), None);
    assert_eq!(
        snap.groups.len(),
        2,
        "the freed trailing group id is trimmed"
    );
    assert!(Arc::ptr_eq(&snap.groups[1], &initial.groups[1]));
    let hops = lab.b.hops();
    assert_eq!(hops.len(), 1, "only the static hop is left");
    assert!(hops[0].configured);
    assert_eq!(hops[0].groups, 1);
}

#[test]
fn a_static_route_wins_for_the_same_prefix() {
    let mut lab = Lab::new(Builder::new(with_static(auto(64)), resolve_all as Resolve).unwrap());
    let addr = "10.9.9.9".parse().unwrap();
    let snap = lab
        .feed(announce("198.51.100.1", "10.0.0.0/8", "192.0.2.1", false))
        .unwrap();
    assert_eq!(snap.fib4.lookup_addr(addr), 1);
    let route = lab.b.route(&pfx("10.0.0.0/8")).unwrap();
    assert!(!route.installed);
    assert_eq!(route.group, 2);
    lab.feed(withdraw("198.51.100.1", "10.0.0.0/8")).unwrap();
    assert_eq!(lab.b.fib4().lookup_addr(addr), 1);
    assert_eq!(lab.b.fib4().get("10.0.0.0".parse().unwrap(), 8), Some(1));
}

#[test]
fn group_ids_are_stable_and_reused_lowest_first() {
    let mut lab = Lab::new(builder(auto(16)));
    for (i, prefix) in ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"]
        .iter()
        .enumerate()
    {
        lab.feed(announce("198.51.100.1", prefix, "192.0.2.1", false));
        assert_eq!(lab.b.group_id(&pfx(prefix)), Some(i as GroupId + 1));
    }
    lab.feed(withdraw("198.51.100.1", "10.1.0.0/24")).unwrap();
    lab.feed(announce("198.51.100.2", "10.2.0.0/24", "192.0.2.2", false));
    assert_eq!(lab.b.group_id(&pfx("10.2.0.0/24")), Some(2), "stable");
    let snap = lab
        .feed(announce("198.51.100.1", "10.4.0.0/24", "192.0.2.1", false))
        .unwrap();
    assert_eq!(lab.b.group_id(&pfx("10.4.0.0/24")), Some(1), "reused");
    assert_eq!(snap.fib4.lookup_addr("10.4.0.1".parse().unwrap()), 1);
    assert_eq!(snap.fib4.lookup_addr("10.1.0.1".parse().unwrap()), 0);
    let snap = lab.feed(withdraw("198.51.100.1", "10.3.0.0/24")).unwrap();
    assert_eq!(snap.groups.len(), 3, "ids 0..=2 remain");
    lab.feed(announce("198.51.100.1", "10.5.0.0/24", "192.0.2.1", false));
    assert_eq!(lab.b.group_id(&pfx("10.5.0.0/24")), Some(3));
}

#[test]
fn hop_ids_are_shared_across_prefixes_and_keyed_by_action() {
    let encap = ActionTemplate::Encap {
        kind: EncapKind::Gue { port: 6080 },
        src: ip("203.0.113.1"),
    };
    let mut cfg = config(auto(16));
    cfg.policies.push(PrefixPolicy {
        range: pfx("10.8.0.0/13"),
        group: GroupPolicy {
            action: encap,
            ..auto(16)
        },
    });
    let mut lab = Lab::new(Builder::new(cfg, resolve_all as Resolve).unwrap());
    for prefix in ["10.1.0.0/24", "10.2.0.0/24", "10.9.0.0/24"] {
        lab.feed(announce("198.51.100.1", prefix, "192.0.2.1", false));
        lab.feed(announce("198.51.100.2", prefix, "192.0.2.2", false));
    }
    let a = lab.hop("10.1.0.0/24", "192.0.2.1");
    assert_eq!(lab.hop("10.2.0.0/24", "192.0.2.1"), a);
    let e = lab.hop("10.9.0.0/24", "192.0.2.1");
    assert_ne!(e, a, "another action is another hop");
    assert_eq!(
        lab.b.hop(e).unwrap().action,
        Action::Encap(Encap {
            kind: EncapKind::Gue { port: 6080 },
            src: ip("203.0.113.1"),
            dst: ip("192.0.2.1"),
        })
    );
    let hops = lab.b.hops();
    assert_eq!(hops.len(), 4);
    assert_eq!(hops.iter().find(|h| h.hop.id == a).unwrap().groups, 2);
    assert_eq!(hops.iter().find(|h| h.hop.id == e).unwrap().groups, 1);
    // The last group listing a hop frees its id; the next new hop takes it.
    lab.feed(withdraw("198.51.100.1", "10.9.0.0/24")).unwrap();
    assert_eq!(
        lab.b.forget_failed().map(|s| s.hops[e as usize].mac),
        Some([0; 6])
    );
    assert!(lab.b.hop(e).is_none());
    lab.feed(announce("198.51.100.3", "10.1.0.0/24", "192.0.2.3", false));
    assert_eq!(lab.hop("10.1.0.0/24", "192.0.2.3"), e);
}

#[test]
fn untouched_groups_and_fibs_keep_their_arcs() {
    let mut lab = Lab::new(builder(auto(16)));
    lab.feed(announce("198.51.100.1", "10.1.0.0/24", "192.0.2.1", false));
    let s1 = lab
        .feed(announce("198.51.100.1", "10.2.0.0/24", "192.0.2.1", false))
        .unwrap();
    let g1 = lab.b.group_id(&pfx("10.1.0.0/24")).unwrap() as usize;
    let g2 = lab.b.group_id(&pfx("10.2.0.0/24")).unwrap() as usize;
    // A new member of one group: no route changes.
    let s2 = lab
        .feed(announce("198.51.100.2", "10.2.0.0/24", "192.0.2.2", false))
        .unwrap();
    assert!(Arc::ptr_eq(&s1.groups[g1], &s2.groups[g1]));
    assert!(!Arc::ptr_eq(&s1.groups[g2], &s2.groups[g2]));
    assert!(Arc::ptr_eq(&s1.fib4, &s2.fib4));
    assert!(Arc::ptr_eq(&s1.fib6, &s2.fib6));
    // A new route: the IPv4 FIB changes (copied, since s2 still holds it), the rest is shared.
    let s3 = lab
        .feed(announce("198.51.100.1", "10.3.0.0/24", "192.0.2.1", false))
        .unwrap();
    assert!(!Arc::ptr_eq(&s2.fib4, &s3.fib4));
    assert!(Arc::ptr_eq(&s2.fib6, &s3.fib6));
    assert!(Arc::ptr_eq(&s2.groups[g1], &s3.groups[g1]));
    assert!(Arc::ptr_eq(&s2.groups[g2], &s3.groups[g2]));
    assert_eq!(s2.fib4.lookup_addr("10.3.0.1".parse().unwrap()), 0);
    assert_eq!(s3.fib4.lookup_addr("10.3.0.1".parse().unwrap()), 3);
    // No one holds the published FIB any more: the next change happens in place.
    drop((s1, s2));
    let before: *const Fib4 = &*s3.fib4;
    drop(s3);
    let s4 = lab
        .feed(announce("198.51.100.1", "10.4.0.0/24", "192.0.2.1", false))
        .unwrap();
    assert!(std::ptr::eq(before, &*s4.fib4));
}

#[test]
fn nothing_changed_publishes_nothing() {
    let (mut lab, _) = three_servers(auto(16));
    assert!(lab.b.apply(&[]).is_none());
    let change = PrefixChange {
        prefix: pfx(P),
        hops: lab.rib.hops(&pfx(P)),
        removed: vec![],
    };
    assert!(lab.b.apply(&[change]).is_none(), "the same hop set again");
    let unknown = PrefixChange {
        prefix: pfx("10.7.0.0/24"),
        hops: HopSet::new(),
        removed: vec![],
    };
    assert!(lab.b.apply(&[unknown]).is_none());
    assert!(lab.b.forget_failed().is_none());
    assert!(lab.b.refresh_resolution().is_none());
    assert!(lab.b.take_errors().is_empty());
}

#[test]
fn forget_failed_removes_failed_members_without_moving_buckets() {
    let (mut lab, _) = three_servers(auto(64));
    lab.feed(withdraw("198.51.100.2", P)).unwrap();
    let before = lab.owners(P);
    let gone = lab.hop(P, "192.0.2.2");
    let snap = lab.b.forget_failed().unwrap();
    assert_eq!(lab.owners(P), before);
    let route = lab.b.route(&pfx(P)).unwrap();
    assert_eq!(route.members.len(), 2);
    let gid = route.group;
    assert!(
        snap.group(gid)
            .unwrap()
            .members()
            .iter()
            .all(|m| m.hop != gone)
    );
    assert!(lab.b.hop(gone).is_none());
}

#[test]
fn policies_pick_mode_buckets_hash_and_action_by_longest_range() {
    let mut cfg = config(auto(16));
    let hash = HashPolicy {
        symmetric: true,
        ..HashPolicy::default()
    };
    cfg.policies = vec![
        PrefixPolicy {
            range: pfx("10.0.0.0/8"),
            group: GroupPolicy {
                mode: GroupMode::Maglev,
                buckets: 128,
                ..GroupPolicy::default()
            },
        },
        PrefixPolicy {
            range: pfx("10.1.0.0/16"),
            group: GroupPolicy {
                mode: GroupMode::Manual,
                buckets: 32,
                hash,
                action: ActionTemplate::Encap {
                    kind: EncapKind::IpIp,
                    src: ip("203.0.113.1"),
                },
            },
        },
    ];
    let mut lab = Lab::new(Builder::new(cfg, resolve_all as Resolve).unwrap());
    let snap = lab
        .feed(announce("198.51.100.1", "10.1.2.0/24", "192.0.2.1", false))
        .unwrap();
    let route = lab.b.route(&pfx("10.1.2.0/24")).unwrap();
    assert_eq!(route.policy.mode, GroupMode::Manual);
    assert_eq!(route.buckets.len(), 32);
    assert_eq!(snap.group(route.group).unwrap().policy, hash);
    lab.feed(announce("198.51.100.1", "10.2.0.0/24", "192.0.2.1", false));
    let route = lab.b.route(&pfx("10.2.0.0/24")).unwrap();
    assert_eq!(route.policy.mode, GroupMode::Maglev);
    assert_eq!(route.buckets.len(), 128);
    lab.feed(announce(
        "198.51.100.1",
        "172.16.0.0/24",
        "192.0.2.1",
        false,
    ));
    assert_eq!(lab.b.route(&pfx("172.16.0.0/24")).unwrap().policy, auto(16));
    // IP-in-IP from an IPv4 source cannot reach an IPv6 next hop: the hop is left out.
    lab.feed(announce(
        "198.51.100.2",
        "10.1.2.0/24",
        "2001:db8::2",
        false,
    ));
    assert_eq!(lab.b.route(&pfx("10.1.2.0/24")).unwrap().members.len(), 1);
    assert_eq!(
        lab.b.take_errors(),
        vec![BuildError::EncapFamily {
            prefix: pfx("10.1.2.0/24"),
            next_hop: ip("2001:db8::2"),
        }]
    );
}

#[test]
fn unresolved_hops_are_kept_and_resolved_later() {
    let subnets = vec![(pfx("192.0.2.0/24"), 0)];
    let mut b = Builder::new(config(auto(16)), ConnectedResolver::new(subnets)).unwrap();
    let mut rib = Rib::new(RibConfig::default());
    let now = Instant::now();
    let changes = rib.apply(&announce("198.51.100.1", P, "192.0.2.1", false), now);
    let snap = b.apply(&changes).unwrap();
    let id = b.route(&pfx(P)).unwrap().members[0].hop;
    assert_eq!(
        snap.hop(id).unwrap().mac,
        [0; 6],
        "unresolved: dropped as such"
    );
    assert!(!b.hops()[0].resolved);
    let changes = rib.apply(&announce("198.51.100.2", P, "198.18.0.1", false), now);
    b.apply(&changes).unwrap();
    b.resolver_mut()
        .set_neighbor(ip("192.0.2.1"), [2, 0, 0, 0, 0, 1]);
    let snap = b.refresh_resolution().unwrap();
    assert_eq!(snap.hop(id).unwrap().mac, [2, 0, 0, 0, 0, 1]);
    assert!(b.refresh_resolution().is_none());
    // A resolver naming a port that does not exist leaves the hop unresolved, reported.
    let bad: Resolve = |_| Some((5, [2, 0, 0, 0, 0, 1]));
    let mut b = Builder::new(config(auto(16)), bad).unwrap();
    let changes =
        Rib::new(RibConfig::default()).apply(&announce("198.51.100.1", P, "192.0.2.1", false), now);
    let snap = b.apply(&changes).unwrap();
    let id = b.route(&pfx(P)).unwrap().members[0].hop;
    assert_eq!(snap.hop(id).unwrap().mac, [0; 6]);
    assert_eq!(
        b.take_errors(),
        vec![BuildError::UnknownPort {
            next_hop: ip("192.0.2.1"),
            port: 5
        }]
    );
}

#[test]
fn what_if_counts_without_changing_anything() {
    let (lab, _) = three_servers(auto(64));
    let owners = lab.owners(P);
    let hop = lab.hop(P, "192.0.2.2");
    let w = lab.b.what_if_remove(ip("192.0.2.2"));
    assert_eq!(
        w,
        vec![WhatIf {
            group: 1,
            prefix: Some(pfx(P)),
            static_route: false,
            buckets: count(&owners, hop),
        }]
    );
    assert!(lab.b.what_if_remove(ip("192.0.2.99")).is_empty());
    assert_eq!(
        lab.b.what_if_add(&pfx(P), ip("192.0.2.9")),
        Some(0),
        "auto-recovery: a brand-new hop waits for clear"
    );
    assert_eq!(
        lab.b.what_if_add(&pfx("10.9.0.0/24"), ip("192.0.2.9")),
        None
    );
    assert_eq!(lab.owners(P), owners);

    let mut idle = Lab::new(builder(GroupPolicy {
        mode: GroupMode::Idle {
            idle_timer_ms: 1000,
            unbalanced_timer_ms: 0,
        },
        buckets: 64,
        ..GroupPolicy::default()
    }));
    idle.feed(announce("198.51.100.1", P, "192.0.2.1", false));
    assert_eq!(idle.b.what_if_add(&pfx(P), ip("192.0.2.2")), Some(32));
}

#[test]
fn bad_config_is_refused() {
    let err = Builder::new(config(auto(100)), resolve_all as Resolve).unwrap_err();
    assert_eq!(
        err,
        BuildError::Policy {
            range: None,
            source: TableError::BucketCount(100)
        }
    );
    assert_eq!(
        err.to_string(),
        "policy default: bucket count 100 is not a power of two in 1..=65536"
    );
    let mut cfg = config(auto(16));
    cfg.policies.push(PrefixPolicy {
        range: pfx("10.0.0.0/8"),
        group: auto(0),
    });
    assert!(matches!(
        Builder::new(cfg, resolve_all as Resolve),
        Err(BuildError::Policy { range: Some(_), .. })
    ));
    let mut cfg = with_static(auto(16));
    cfg.statics.hops[0].id = 2;
    assert_eq!(
        Builder::new(cfg, resolve_all as Resolve).unwrap_err(),
        BuildError::StaticHopId { index: 0, id: 2 }
    );
    let mut cfg = with_static(auto(16));
    cfg.statics.routes.push((pfx("10.1.0.0/16"), 2));
    assert!(matches!(
        Builder::new(cfg, resolve_all as Resolve),
        Err(BuildError::StaticRouteGroup { group: 2, .. })
    ));
    let mut cfg = with_static(auto(16));
    cfg.statics.hops.clear();
    assert_eq!(
        Builder::new(cfg, resolve_all as Resolve).unwrap_err(),
        BuildError::StaticMember { group: 1, hop: 1 }
    );
    let mut cfg = with_static(auto(16));
    cfg.max_tbl8 = 0;
    cfg.statics.routes.push((pfx("10.1.0.0/25"), 1));
    assert!(matches!(
        Builder::new(cfg, resolve_all as Resolve),
        Err(BuildError::StaticRoute {
            source: TableError::Tbl8Exhausted { max: 0 },
            ..
        })
    ));
}

#[test]
fn a_refused_route_is_skipped_and_reported() {
    let mut cfg = config(auto(16));
    cfg.max_tbl8 = 0;
    let mut lab = Lab::new(Builder::new(cfg, resolve_all as Resolve).unwrap());
    // The hop allocated for the prefix and freed with it may still publish (its slot stays).
    let _ = lab.feed(announce("198.51.100.1", "10.1.0.0/25", "192.0.2.1", false));
    assert!(lab.b.fib4().is_empty());
    assert_eq!(lab.b.group_id(&pfx("10.1.0.0/25")), None);
    assert!(lab.b.hops().is_empty(), "its hops were released");
    assert_eq!(
        lab.b.take_errors(),
        vec![BuildError::Table {
            prefix: pfx("10.1.0.0/25"),
            source: TableError::Tbl8Exhausted { max: 0 },
        }]
    );
}

#[test]
fn ipv6_prefixes_use_the_ipv6_fib() {
    let mut lab = Lab::new(builder(auto(16)));
    let s = lab
        .feed(announce(
            "2001:db8:ffff::1",
            "2001:db8:1::/48",
            "2001:db8:ffff::1",
            false,
        ))
        .unwrap();
    let gid = lab.b.group_id(&pfx("2001:db8:1::/48")).unwrap();
    assert_eq!(s.fib6.lookup_addr("2001:db8:1::42".parse().unwrap()), gid);
    assert!(s.fib4.is_empty());
    let s = lab
        .feed(withdraw("2001:db8:ffff::1", "2001:db8:1::/48"))
        .unwrap();
    assert!(s.fib6.is_empty());
}

// The property: after any sequence of feed events, the builder agrees with the RIB.

const PREFIXES: [&str; 4] = ["10.1.0.0/24", "10.2.0.0/24", "10.0.0.0/8", "2001:db8::/64"];

#[derive(Debug, Clone)]
enum Ev {
    Announce {
        peer: u8,
        prefix: usize,
        hop: u8,
        path: u32,
        gshut: bool,
    },
    Withdraw {
        peer: u8,
        prefix: usize,
        path: u32,
    },
    Down {
        peer: u8,
    },
    Forget,
    /// Operator drain (`on`) or undrain of hop `hop` of `PREFIXES[prefix]`'s family.
    Drain {
        prefix: usize,
        hop: u8,
        on: bool,
    },
}

fn peer_addr(peer: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, peer + 1])
}

fn hop_addr(prefix: &Prefix, hop: u8) -> IpAddr {
    match prefix.addr() {
        IpAddr::V4(_) => IpAddr::from([192, 0, 2, hop + 1]),
        IpAddr::V6(_) => IpAddr::from([0x2001, 0xdb8, 0xff, 0, 0, 0, 0, u16::from(hop) + 1]),
    }
}

fn events() -> impl Strategy<Value = Vec<Ev>> {
    let ev = prop_oneof![
        5 => (0u8..3, 0..PREFIXES.len(), 0u8..4, 0u32..2, proptest::bool::weighted(0.25)).prop_map(
            |(peer, prefix, hop, path, gshut)| Ev::Announce { peer, prefix, hop, path, gshut }
        ),
        3 => (0u8..3, 0..PREFIXES.len(), 0u32..2)
            .prop_map(|(peer, prefix, path)| Ev::Withdraw { peer, prefix, path }),
        1 => (0u8..3).prop_map(|peer| Ev::Down { peer }),
        1 => Just(Ev::Forget),
        1 => (0..PREFIXES.len(), 0u8..4, proptest::bool::ANY)
            .prop_map(|(prefix, hop, on)| Ev::Drain { prefix, hop, on }),
    ];
    proptest::collection::vec(ev, 1..40)
}

fn feed_event(ev: &Ev) -> Option<FeedEvent> {
    match *ev {
        Ev::Announce {
            peer,
            prefix,
            hop,
            path,
            gshut,
        } => {
            let prefix = pfx(PREFIXES[prefix]);
            Some(FeedEvent::Update {
                neighbor: Neighbor::new(peer_addr(peer)),
                update: Update {
                    attributes: Attributes {
                        as_path: vec![],
                        communities: if gshut {
                            vec![Community::GRACEFUL_SHUTDOWN]
                        } else {
                            vec![]
                        },
                        ..Attributes::default()
                    },
                    announce: vec![Announce {
                        next_hop: hop_addr(&prefix, hop),
                        nlri: Nlri {
                            prefix,
                            path_id: Some(PathId(path)),
                        },
                    }],
                    withdraw: vec![],
                    skipped_families: 0,
                },
            })
        }
        Ev::Withdraw { peer, prefix, path } => Some(FeedEvent::Update {
            neighbor: Neighbor::new(peer_addr(peer)),
            update: Update {
                withdraw: vec![Nlri {
                    prefix: pfx(PREFIXES[prefix]),
                    path_id: Some(PathId(path)),
                }],
                ..Update::default()
            },
        }),
        Ev::Down { peer } => Some(FeedEvent::State {
            neighbor: Neighbor::new(peer_addr(peer)),
            state: SessionState::Down { reason: None },
        }),
        Ev::Forget | Ev::Drain { .. } => None,
    }
}

fn check_agreement(rib: &Rib, b: &Builder<Resolve>) -> Result<(), TestCaseError> {
    let snap = b.snapshot();
    let drained: BTreeSet<IpAddr> = b.drained().into_iter().collect();
    let in_rib: BTreeSet<Prefix> = rib.routes().map(|(p, _)| p).collect();
    let mut listed: BTreeMap<HopId, u32> = BTreeMap::new();
    for (prefix, hops) in rib.routes() {
        let gid = b.group_id(&prefix);
        prop_assert!(gid.is_some(), "{prefix} has no group");
        let gid = gid.unwrap_or(0);
        let fib = match prefix.addr() {
            IpAddr::V4(a) => snap.fib4.get(a, prefix.len()),
            IpAddr::V6(a) => snap.fib6.get(a, prefix.len()),
        };
        prop_assert_eq!(fib, Some(gid));
        let group = b.group(gid).expect("a live group");
        prop_assert_eq!(
            &*snap.groups[gid as usize],
            &group.table(),
            "published = built"
        );
        let mut active = BTreeSet::new();
        let mut draining = BTreeSet::new();
        for m in group.members().iter().filter(|m| m.hop != 0) {
            *listed.entry(m.hop).or_default() += 1;
            let addr = snap.hops[m.hop as usize].addr;
            match m.state {
                HopState::Active => active.insert(addr),
                HopState::Draining => draining.insert(addr),
                HopState::Failed => {
                    prop_assert!(!hops.contains_key(&addr), "{addr} failed but in the RIB");
                    false
                }
            };
        }
        // The operator's drain turns what the RIB wants active into draining.
        let want = |s: HopState| -> BTreeSet<IpAddr> {
            hops.iter()
                .filter(|&(a, &v)| effective(HopState::from(v), drained.contains(a)) == s)
                .map(|(a, _)| *a)
                .collect()
        };
        prop_assert_eq!(&active, &want(HopState::Active), "{}", prefix);
        prop_assert_eq!(&draining, &want(HopState::Draining), "{}", prefix);
        let active_ids: BTreeSet<HopId> = group
            .members()
            .iter()
            .filter(|m| m.hop != 0 && m.state == HopState::Active)
            .map(|m| m.hop)
            .collect();
        for &owner in group.bucket_owners() {
            if active_ids.is_empty() {
                prop_assert_eq!(owner, 0);
            } else {
                prop_assert!(active_ids.contains(&owner), "bucket owned by {owner}");
            }
        }
    }
    for (prefix, gid) in b.routes() {
        prop_assert!(
            in_rib.contains(&prefix),
            "{prefix} (group {gid}) not in the RIB"
        );
    }
    for p in PREFIXES.iter().map(|p| pfx(p)) {
        if !in_rib.contains(&p) {
            let fib = match p.addr() {
                IpAddr::V4(a) => snap.fib4.get(a, p.len()),
                IpAddr::V6(a) => snap.fib6.get(a, p.len()),
            };
            prop_assert_eq!(fib, None, "{} withdrawn but routed", p);
        }
    }
    let counted: BTreeMap<HopId, u32> = b.hops().iter().map(|h| (h.hop.id, h.groups)).collect();
    prop_assert_eq!(counted, listed, "hop reference counts");
    prop_assert_eq!(
        snap.groups.len(),
        b.routes().map(|(_, g)| g as usize + 1).max().unwrap_or(1)
    );
    Ok(())
}

proptest! {
    #[test]
    fn builder_agrees_with_the_rib(evs in events()) {
        let mut cfg = config(auto(16));
        cfg.policies = vec![
            PrefixPolicy { range: pfx("10.1.0.0/16"), group: GroupPolicy { mode: GroupMode::Manual, ..auto(8) } },
            PrefixPolicy { range: pfx("10.2.0.0/16"), group: GroupPolicy { mode: GroupMode::Maglev, ..auto(32) } },
            PrefixPolicy {
                range: pfx("2001:db8::/32"),
                group: GroupPolicy {
                    mode: GroupMode::Idle { idle_timer_ms: 10, unbalanced_timer_ms: 0 },
                    ..auto(16)
                },
            },
        ];
        let mut b = Builder::new(cfg, resolve_all as Resolve).unwrap();
        let mut rib = Rib::new(RibConfig::default());
        let now = Instant::now();
        for ev in &evs {
            match (feed_event(ev), ev) {
                (Some(event), _) => {
                    let changes = rib.apply(&event, now);
                    let snap = b.apply(&changes);
                    if b.drained().is_empty() {
                        prop_assert_eq!(snap.is_some(), !changes.is_empty());
                    } else {
                        // A drained hop's RIB state may change without changing its group.
                        prop_assert!(snap.is_none() || !changes.is_empty());
                    }
                }
                (None, &Ev::Drain { prefix, hop, on }) => {
                    let addr = hop_addr(&pfx(PREFIXES[prefix]), hop);
                    let was = b.drained().contains(&addr);
                    let before = b.snapshot();
                    let snap = b.set_drained(addr, on);
                    if was == on {
                        prop_assert!(snap.is_none(), "a repeated (un)drain publishes nothing");
                    }
                    // Only groups listing the address change.
                    for (gid, table) in before.groups.iter().enumerate().skip(1) {
                        let lists = table.members().iter().any(|m| {
                            m.hop != 0 && before.hops[m.hop as usize].addr == addr
                        });
                        if !lists {
                            prop_assert!(Arc::ptr_eq(table, &b.snapshot().groups[gid]));
                        }
                    }
                }
                (None, _) => {
                    b.forget_failed();
                }
            }
            prop_assert!(b.take_errors().is_empty());
            check_agreement(&rib, &b)?;
        }
    }
}

#[test]
fn maglev_tables_agree_across_instances_that_learnt_hops_in_another_order() {
    let maglev = GroupPolicy {
        mode: GroupMode::Maglev,
        buckets: 1024,
        ..GroupPolicy::default()
    };
    // Instance A learns the three servers for P directly; instance B first learns them, in
    // reverse order, for another prefix, so its local hop ids differ.
    let mut a = Lab::new(builder(maglev));
    let mut b = Lab::new(builder(maglev));
    for (peer, hop) in SERVERS.iter().rev() {
        b.feed(announce(peer, "10.2.0.0/24", hop, false));
    }
    for (peer, hop) in SERVERS {
        a.feed(announce(peer, P, hop, false));
        b.feed(announce(peer, P, hop, false));
    }
    let by_addr = |lab: &Lab| -> Vec<IpAddr> {
        let route = lab.b.route(&pfx(P)).unwrap();
        lab.owners(P)
            .iter()
            .map(|h| route.members.iter().find(|m| m.hop == *h).unwrap().addr)
            .collect()
    };
    assert_ne!(
        a.hop(P, SERVERS[0].1),
        b.hop(P, SERVERS[0].1),
        "the hop ids do differ"
    );
    assert_eq!(by_addr(&a), by_addr(&b));
}

#[test]
fn config_hops_without_a_mac_are_resolved_and_keep_their_port() {
    let mut cfg = with_static(auto(16));
    cfg.statics.hops[0].mac = [0; 6];
    cfg.statics.hops[0].port = 1;
    cfg.ports.push(ports()[0]);
    // The resolver would pick port 0 by subnet; the config's port 1 must stay.
    let subnets = vec![(pfx("192.0.2.0/24"), 0)];
    let mut b = Builder::new(cfg, ConnectedResolver::new(subnets)).unwrap();
    assert_eq!(b.snapshot().hop(1).unwrap().mac, [0; 6]);
    assert!(b.refresh_resolution().is_none(), "nothing known yet");
    b.resolver_mut()
        .set_neighbor(ip("192.0.2.254"), [2, 0, 0, 0, 0, 7]);
    let snap = b.refresh_resolution().unwrap();
    assert_eq!(snap.hop(1).unwrap().mac, [2, 0, 0, 0, 0, 7]);
    assert_eq!(snap.hop(1).unwrap().port, 1);
    // A changed MAC follows; a forgotten one goes back to unresolved.
    b.resolver_mut()
        .set_neighbor(ip("192.0.2.254"), [2, 0, 0, 0, 0, 8]);
    assert_eq!(
        b.refresh_resolution().unwrap().hop(1).unwrap().mac,
        [2, 0, 0, 0, 0, 8]
    );
    b.resolver_mut().remove_neighbor(ip("192.0.2.254"));
    assert_eq!(b.refresh_resolution().unwrap().hop(1).unwrap().mac, [0; 6]);
    // A config hop with a MAC is never touched by the resolver.
    let mut b = Builder::new(
        with_static(auto(16)),
        ConnectedResolver::new(vec![(pfx("192.0.2.0/24"), 0)]),
    )
    .unwrap();
    b.resolver_mut()
        .set_neighbor(ip("192.0.2.254"), [2, 0, 0, 0, 0, 9]);
    assert!(b.refresh_resolution().is_none());
}

#[test]
fn upkeep_moves_only_idle_buckets_to_a_joined_hop_in_idle_groups() {
    let idle = GroupPolicy {
        mode: GroupMode::Idle {
            idle_timer_ms: 10_000,
            unbalanced_timer_ms: 0,
        },
        ..auto(16)
    };
    let mut lab = Lab::new(builder(idle));
    lab.feed(announce("198.51.100.1", P, "192.0.2.1", false))
        .unwrap();
    // Traffic in the process's first second used every bucket.
    lab.busy();
    let snap = lab
        .feed(announce("198.51.100.2", P, "192.0.2.2", false))
        .unwrap();
    let first = lab.hop(P, "192.0.2.1");
    let second = lab.hop(P, "192.0.2.2");
    assert_eq!(
        count(&lab.owners(P), second),
        0,
        "idle: a joining hop waits for busy buckets"
    );
    // Workers used buckets 0..4 at t = 20 s (through the published table: the activity is
    // shared with the builder's group).
    let table = snap.group(lab.b.group_id(&pfx(P)).unwrap()).unwrap();
    for hash in 0..4 {
        table.touch(hash, 20);
    }
    // At t = 25 s only buckets idle for 10 s may move: 12 of 16 are (never used).
    let before = lab.owners(P);
    let snap = lab.b.upkeep(25_000).expect("buckets moved");
    let after = lab.owners(P);
    for (b, owner) in after.iter().enumerate().take(4) {
        assert_eq!(*owner, first, "bucket {b} is busy and stays");
    }
    assert_eq!(
        count(&after, second),
        8,
        "the joined hop gets its share from idle buckets"
    );
    assert!(
        after
            .iter()
            .zip(&before)
            .all(|(a, b)| a == b || (*b == first && *a == second)),
        "only moves from the over-share hop to the joined one"
    );
    let gid = lab.b.group_id(&pfx(P)).unwrap();
    assert_eq!(snap.group(gid).unwrap(), &lab.b.group(gid).unwrap().table());
    // Balanced now: nothing more to do.
    assert!(lab.b.upkeep(60_000).is_none());
    // Groups in other modes have no activity and never move in upkeep.
    let (mut other, _) = three_servers(auto(16));
    assert!(other.b.upkeep(1_000_000).is_none());
}
