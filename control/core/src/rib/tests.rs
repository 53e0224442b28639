//! RIB scenarios from the issue, and the RIB against a naive flat model.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ecmp_proto::{
    Announce, Attributes, Community, Family, FeedEvent, Neighbor, Nlri, PathId, Prefix,
    SessionState, Update,
};
use ecmp_tables::nexthop::HopState;
use proptest::prelude::*;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn nlri(prefix: &str, id: Option<u32>) -> Nlri {
    Nlri {
        prefix: pfx(prefix),
        path_id: id.map(PathId),
    }
}

fn announce(peer: &str, routes: &[(&str, &str, Option<u32>)], gshut: bool) -> FeedEvent {
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
            announce: routes
                .iter()
                .map(|&(prefix, hop, id)| Announce {
                    next_hop: ip(hop),
                    nlri: nlri(prefix, id),
                })
                .collect(),
            withdraw: vec![],
            skipped_families: 0,
        },
    }
}

fn withdraw(peer: &str, routes: &[(&str, Option<u32>)]) -> FeedEvent {
    FeedEvent::Update {
        neighbor: Neighbor::new(ip(peer)),
        update: Update {
            withdraw: routes.iter().map(|&(p, id)| nlri(p, id)).collect(),
            ..Update::default()
        },
    }
}

fn state(peer: &str, state: SessionState) -> FeedEvent {
    FeedEvent::State {
        neighbor: Neighbor::new(ip(peer)),
        state,
    }
}

fn down(peer: &str) -> FeedEvent {
    state(
        peer,
        SessionState::Down {
            reason: Some("closing connection".into()),
        },
    )
}

fn eor(peer: &str, family: Family) -> FeedEvent {
    FeedEvent::EndOfRib {
        neighbor: Neighbor::new(ip(peer)),
        family,
    }
}

fn hops(list: &[(&str, NextHopState)]) -> HopSet {
    list.iter().map(|&(h, s)| (ip(h), s)).collect()
}

fn change(prefix: &str, now: &[(&str, NextHopState)], removed: &[&str]) -> PrefixChange {
    PrefixChange {
        prefix: pfx(prefix),
        hops: hops(now),
        removed: removed.iter().map(|h| ip(h)).collect(),
    }
}

const P: &str = "192.0.2.10/32";
const A: NextHopState = NextHopState::Active;
const D: NextHopState = NextHopState::Draining(DrainReason::GracefulShutdown);

fn stale_rib(secs: u64) -> Rib {
    Rib::new(RibConfig {
        stale_time: Duration::from_secs(secs),
        refresh_timeout: Duration::from_secs(30),
    })
}

/// Three servers each announce the prefix (one ADD-PATH path each, via one companion peer per
/// server).
fn three_servers(rib: &mut Rib, t: Instant) {
    assert_eq!(
        rib.apply(
            &announce("127.0.0.2", &[(P, "198.51.100.2", Some(2))], false),
            t
        ),
        vec![change(P, &[("198.51.100.2", A)], &[])]
    );
    assert_eq!(
        rib.apply(
            &announce("127.0.0.3", &[(P, "198.51.100.3", Some(3))], false),
            t
        ),
        vec![change(P, &[("198.51.100.2", A), ("198.51.100.3", A)], &[])]
    );
    assert_eq!(
        rib.apply(
            &announce("127.0.0.4", &[(P, "198.51.100.4", Some(4))], false),
            t
        ),
        vec![change(
            P,
            &[
                ("198.51.100.2", A),
                ("198.51.100.3", A),
                ("198.51.100.4", A)
            ],
            &[]
        )]
    );
}

#[test]
fn three_servers_then_one_withdraws() {
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    three_servers(&mut rib, t);
    assert_eq!(rib.path_count(), 3);
    assert_eq!(
        rib.apply(&withdraw("127.0.0.3", &[(P, Some(3))]), t),
        vec![change(
            P,
            &[("198.51.100.2", A), ("198.51.100.4", A)],
            &["198.51.100.3"]
        )]
    );
    // Withdrawing what is not there changes nothing.
    assert_eq!(
        rib.apply(&withdraw("127.0.0.3", &[(P, Some(3))]), t),
        vec![]
    );
    assert_eq!(
        rib.apply(&withdraw("127.0.0.2", &[(P, Some(9))]), t),
        vec![]
    );
    // The last paths go: the prefix's hop set becomes empty.
    rib.apply(&withdraw("127.0.0.2", &[(P, Some(2))]), t);
    assert_eq!(
        rib.apply(&withdraw("127.0.0.4", &[(P, Some(4))]), t),
        vec![change(P, &[], &["198.51.100.4"])]
    );
    assert_eq!(rib.prefix_count(), 0);
    assert_eq!(rib.path_count(), 0);
}

#[test]
fn graceful_shutdown_makes_a_hop_draining() {
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    three_servers(&mut rib, t);
    assert_eq!(
        rib.apply(
            &announce("127.0.0.3", &[(P, "198.51.100.3", Some(3))], true),
            t
        ),
        vec![change(
            P,
            &[
                ("198.51.100.2", A),
                ("198.51.100.3", D),
                ("198.51.100.4", A)
            ],
            &[]
        )]
    );
    assert_eq!(
        HopState::from(rib.hops(&pfx(P))[&ip("198.51.100.3")]),
        HopState::Draining
    );
    // Re-announcing the same thing reports nothing.
    assert_eq!(
        rib.apply(
            &announce("127.0.0.3", &[(P, "198.51.100.3", Some(3))], true),
            t
        ),
        vec![]
    );
    // A second path to the same hop without the community keeps the hop active.
    assert_eq!(
        rib.apply(
            &announce("127.0.0.5", &[(P, "198.51.100.3", Some(3))], false),
            t
        ),
        vec![change(
            P,
            &[
                ("198.51.100.2", A),
                ("198.51.100.3", A),
                ("198.51.100.4", A)
            ],
            &[]
        )]
    );
    // ... until it goes: draining again, not removed.
    assert_eq!(
        rib.apply(&withdraw("127.0.0.5", &[(P, Some(3))]), t),
        vec![change(
            P,
            &[
                ("198.51.100.2", A),
                ("198.51.100.3", D),
                ("198.51.100.4", A)
            ],
            &[]
        )]
    );
    // Withdrawn after draining: now failed (removed).
    assert_eq!(
        rib.apply(&withdraw("127.0.0.3", &[(P, Some(3))]), t),
        vec![change(
            P,
            &[("198.51.100.2", A), ("198.51.100.4", A)],
            &["198.51.100.3"]
        )]
    );
}

/// One path of `peer` to `P` via 198.51.100.`n` (path id `n`) with `attributes`.
fn announce_with(peer: &str, n: u8, attributes: Attributes) -> FeedEvent {
    FeedEvent::Update {
        neighbor: Neighbor::new(ip(peer)),
        update: Update {
            attributes,
            announce: vec![Announce {
                next_hop: IpAddr::from([198, 51, 100, n]),
                nlri: nlri(P, Some(u32::from(n))),
            }],
            ..Update::default()
        },
    }
}

fn local_pref(lp: u32) -> Attributes {
    Attributes {
        local_pref: Some(lp),
        ..Attributes::default()
    }
}

fn not_best(criterion: ecmp_proto::ctl::Criterion, value: u32, best: u32) -> NextHopState {
    NextHopState::Draining(DrainReason::NotBest {
        criterion,
        value,
        best,
    })
}

#[test]
fn a_de_preferred_path_drains_and_returns_when_it_ties_again() {
    use ecmp_proto::ctl::Criterion::LocalPref;
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    // iBGP servers announce with an explicit LOCAL_PREF 100: the same as none.
    rib.apply(&announce_with("127.0.0.2", 2, local_pref(100)), t);
    rib.apply(&announce_with("127.0.0.3", 3, Attributes::default()), t);
    rib.apply(&announce_with("127.0.0.4", 4, local_pref(100)), t);
    let all = [
        ("198.51.100.2", A),
        ("198.51.100.3", A),
        ("198.51.100.4", A),
    ];
    assert_eq!(rib.hops(&pfx(P)), hops(&all));
    // The operator's route-map sets LOCAL_PREF 1 on server 2: still listed, no longer best.
    assert_eq!(
        rib.apply(&announce_with("127.0.0.2", 2, local_pref(1)), t),
        vec![change(
            P,
            &[
                ("198.51.100.2", not_best(LocalPref, 1, 100)),
                ("198.51.100.3", A),
                ("198.51.100.4", A)
            ],
            &[]
        )]
    );
    // A higher preference elsewhere drains every other hop.
    assert_eq!(
        rib.apply(&announce_with("127.0.0.4", 4, local_pref(200)), t),
        vec![change(
            P,
            &[
                ("198.51.100.2", not_best(LocalPref, 1, 200)),
                ("198.51.100.3", not_best(LocalPref, 100, 200)),
                ("198.51.100.4", A)
            ],
            &[]
        )]
    );
    // The best path withdrawn: the rest are selected among themselves, not left draining.
    assert_eq!(
        rib.apply(&withdraw("127.0.0.4", &[(P, Some(4))]), t),
        vec![change(
            P,
            &[
                ("198.51.100.2", not_best(LocalPref, 1, 100)),
                ("198.51.100.3", A)
            ],
            &["198.51.100.4"]
        )]
    );
    rib.apply(&announce_with("127.0.0.4", 4, local_pref(100)), t);
    // Back to 100: active again.
    assert_eq!(
        rib.apply(&announce_with("127.0.0.2", 2, local_pref(100)), t),
        vec![change(P, &all, &[])]
    );
}

#[test]
fn as_path_origin_and_med_de_prefer_too() {
    use ecmp_proto::ctl::Criterion::{AsPathLength, Med, Origin as ByOrigin};
    use ecmp_proto::{AsPathSegment, Origin, SegmentKind};
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    let path = |asns: &[u32]| Attributes {
        as_path: vec![AsPathSegment {
            kind: SegmentKind::Sequence,
            asns: asns.to_vec(),
        }],
        ..Attributes::default()
    };
    rib.apply(&announce_with("127.0.0.2", 2, path(&[65001])), t);
    rib.apply(
        &announce_with("127.0.0.3", 3, path(&[65001, 65001, 65001])),
        t,
    );
    rib.apply(
        &announce_with(
            "127.0.0.4",
            4,
            Attributes {
                origin: Some(Origin::Incomplete),
                ..path(&[65002])
            },
        ),
        t,
    );
    rib.apply(
        &announce_with(
            "127.0.0.5",
            5,
            Attributes {
                med: Some(50),
                ..path(&[65001])
            },
        ),
        t,
    );
    // A MED from another neighbour AS (65003) is not compared with 65001's.
    rib.apply(
        &announce_with(
            "127.0.0.6",
            6,
            Attributes {
                med: Some(70),
                ..path(&[65003])
            },
        ),
        t,
    );
    assert_eq!(
        rib.hops(&pfx(P)),
        hops(&[
            ("198.51.100.2", A),
            ("198.51.100.3", not_best(AsPathLength, 3, 1)),
            ("198.51.100.4", not_best(ByOrigin, 2, 0)),
            ("198.51.100.5", not_best(Med, 50, 0)),
            ("198.51.100.6", A),
        ])
    );
    let view = rib
        .paths()
        .find(|p| p.next_hop == ip("198.51.100.3"))
        .expect("path to hop 3");
    assert_eq!(view.rank.as_path_len, 3);
}

#[test]
fn a_hop_is_active_when_any_of_its_paths_is_selected() {
    use ecmp_proto::ctl::Criterion::LocalPref;
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    rib.apply(&announce_with("127.0.0.2", 2, local_pref(100)), t);
    // A second peer's path to the same next hop, de-preferred: the hop stays active.
    rib.apply(&announce_with("127.0.0.9", 2, local_pref(1)), t);
    rib.apply(&announce_with("127.0.0.3", 3, local_pref(100)), t);
    assert_eq!(
        rib.hops(&pfx(P)),
        hops(&[("198.51.100.2", A), ("198.51.100.3", A)])
    );
    // Its selected path de-preferred too: draining, with its closest loss.
    assert_eq!(
        rib.apply(&announce_with("127.0.0.2", 2, local_pref(50)), t),
        vec![change(
            P,
            &[
                ("198.51.100.2", not_best(LocalPref, 50, 100)),
                ("198.51.100.3", A)
            ],
            &[]
        )]
    );
}

#[test]
fn graceful_shutdown_paths_are_not_candidates() {
    use ecmp_proto::ctl::Criterion::LocalPref;
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    let gshut = |lp: u32| Attributes {
        communities: vec![Community::GRACEFUL_SHUTDOWN],
        ..local_pref(lp)
    };
    // A GRACEFUL_SHUTDOWN path with a higher preference does not push the others out.
    rib.apply(&announce_with("127.0.0.2", 2, gshut(200)), t);
    rib.apply(&announce_with("127.0.0.3", 3, local_pref(100)), t);
    rib.apply(&announce_with("127.0.0.4", 4, local_pref(50)), t);
    assert_eq!(
        rib.hops(&pfx(P)),
        hops(&[
            ("198.51.100.2", D),
            ("198.51.100.3", A),
            ("198.51.100.4", not_best(LocalPref, 50, 100)),
        ])
    );
    // The only non-GRACEFUL_SHUTDOWN path left is selected whatever its preference.
    rib.apply(&announce_with("127.0.0.3", 3, gshut(100)), t);
    assert_eq!(
        rib.hops(&pfx(P)),
        hops(&[
            ("198.51.100.2", D),
            ("198.51.100.3", D),
            ("198.51.100.4", A),
        ])
    );
    // Every path under GRACEFUL_SHUTDOWN: every hop drains, as before path selection.
    rib.apply(&announce_with("127.0.0.4", 4, gshut(50)), t);
    assert_eq!(
        rib.hops(&pfx(P)),
        hops(&[
            ("198.51.100.2", D),
            ("198.51.100.3", D),
            ("198.51.100.4", D),
        ])
    );
}

#[test]
fn announce_replaces_by_key() {
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    rib.apply(
        &announce("127.0.0.2", &[(P, "198.51.100.2", Some(1))], false),
        t,
    );
    // Same (peer, prefix, path id), new next hop: the old hop loses its only path.
    assert_eq!(
        rib.apply(
            &announce("127.0.0.2", &[(P, "198.51.100.7", Some(1))], false),
            t
        ),
        vec![change(P, &[("198.51.100.7", A)], &["198.51.100.2"])]
    );
    // Without ADD-PATH the key has no path id, distinct from any path id.
    rib.apply(
        &announce("127.0.0.2", &[(P, "198.51.100.8", None)], false),
        t,
    );
    assert_eq!(rib.path_count(), 2);
    assert_eq!(rib.hops(&pfx(P)).len(), 2);
}

#[test]
fn withdraw_then_announce_in_one_update_is_one_batch() {
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    rib.apply(
        &announce("127.0.0.2", &[(P, "198.51.100.2", Some(1))], false),
        t,
    );
    let mut event = announce("127.0.0.2", &[(P, "198.51.100.2", Some(1))], false);
    if let FeedEvent::Update { update, .. } = &mut event {
        update.withdraw.push(nlri(P, Some(1)));
    }
    // Withdrawn then re-announced: no net change, nothing reported.
    assert_eq!(rib.apply(&event, t), vec![]);
    assert_eq!(rib.path_count(), 1);
}

#[test]
fn peer_down_with_zero_stale_time_removes_at_once() {
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    three_servers(&mut rib, t);
    rib.apply(
        &announce(
            "127.0.0.2",
            &[("192.0.2.11/32", "198.51.100.2", Some(2))],
            false,
        ),
        t,
    );
    assert_eq!(
        rib.apply(&down("127.0.0.2"), t),
        vec![
            change(
                P,
                &[("198.51.100.3", A), ("198.51.100.4", A)],
                &["198.51.100.2"]
            ),
            change("192.0.2.11/32", &[], &["198.51.100.2"]),
        ]
    );
    assert_eq!(rib.next_deadline(), None);
}

#[test]
fn peer_down_paths_stale_then_gone_after_stale_time() {
    let t = Instant::now();
    let mut rib = stale_rib(10);
    three_servers(&mut rib, t);
    assert_eq!(rib.apply(&down("127.0.0.2"), t), vec![]);
    let summary = rib.peers();
    let peer = &summary[0];
    assert_eq!(peer.neighbor.peer, ip("127.0.0.2"));
    assert_eq!(peer.state, PeerState::Down);
    assert_eq!(peer.last_down_reason.as_deref(), Some("closing connection"));
    assert_eq!((peer.paths, peer.stale), (1, 1));
    assert_eq!(rib.hops(&pfx(P)).len(), 3, "stale paths keep forwarding");
    assert_eq!(rib.next_deadline(), Some(t + Duration::from_secs(10)));
    assert_eq!(rib.expire(t + Duration::from_secs(9)), vec![]);
    assert_eq!(
        rib.expire(t + Duration::from_secs(10)),
        vec![change(
            P,
            &[("198.51.100.3", A), ("198.51.100.4", A)],
            &["198.51.100.2"]
        )]
    );
    assert_eq!(rib.next_deadline(), None);
    assert_eq!(rib.peers()[0].paths, 0);
}

#[test]
fn reannounced_stale_path_survives_the_deadline() {
    let t = Instant::now();
    let mut rib = stale_rib(10);
    rib.apply(
        &announce(
            "127.0.0.2",
            &[
                (P, "198.51.100.2", Some(2)),
                ("192.0.2.11/32", "198.51.100.2", Some(2)),
            ],
            false,
        ),
        t,
    );
    rib.apply(&down("127.0.0.2"), t);
    let t1 = t + Duration::from_secs(1);
    rib.apply(&state("127.0.0.2", SessionState::Connected), t1);
    assert_eq!(rib.apply(&state("127.0.0.2", SessionState::Up), t1), vec![]);
    assert_eq!(rib.peers()[0].refreshing, Family::ALL.to_vec());
    assert_eq!(
        rib.apply(
            &announce("127.0.0.2", &[(P, "198.51.100.2", Some(2))], false),
            t1
        ),
        vec![]
    );
    // No End-of-RIB: the stale deadline still removes the path that did not come back.
    assert_eq!(
        rib.expire(t + Duration::from_secs(10)),
        vec![change("192.0.2.11/32", &[], &["198.51.100.2"])]
    );
    assert_eq!(rib.hops(&pfx(P)), hops(&[("198.51.100.2", A)]));
    assert_eq!(rib.peers()[0].stale, 0);
}

#[test]
fn refresh_replaces_a_peers_paths_atomically() {
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    let other = "127.0.0.9";
    rib.apply(
        &announce(other, &[("192.0.2.12/32", "198.51.100.9", Some(1))], false),
        t,
    );
    rib.apply(
        &announce(
            "127.0.0.2",
            &[
                (P, "198.51.100.2", Some(2)),
                ("192.0.2.11/32", "198.51.100.2", Some(2)),
                ("192.0.2.12/32", "198.51.100.2", Some(2)),
                ("2001:db8::10/128", "2001:db8:ffff::1", Some(1)),
            ],
            false,
        ),
        t,
    );
    rib.begin_refresh(ip("127.0.0.2"), t);
    // The resend: one path back unchanged, one moved to a new next hop.
    assert_eq!(
        rib.apply(
            &announce("127.0.0.2", &[(P, "198.51.100.2", Some(2))], false),
            t
        ),
        vec![]
    );
    assert_eq!(
        rib.apply(
            &announce(
                "127.0.0.2",
                &[("192.0.2.11/32", "198.51.100.5", Some(2))],
                false
            ),
            t
        ),
        vec![change(
            "192.0.2.11/32",
            &[("198.51.100.5", A)],
            &["198.51.100.2"]
        )]
    );
    // End-of-RIB for IPv4: the IPv4 path not resent goes; IPv6 still awaits its own End-of-RIB.
    assert_eq!(
        rib.apply(&eor("127.0.0.2", Family::Ipv4Unicast), t),
        vec![change(
            "192.0.2.12/32",
            &[("198.51.100.9", A)],
            &["198.51.100.2"]
        )]
    );
    assert_eq!(rib.hops(&pfx("2001:db8::10/128")).len(), 1);
    assert_eq!(rib.peers()[0].refreshing, vec![Family::Ipv6Unicast]);
    // A second End-of-RIB for the same family does nothing.
    assert_eq!(rib.apply(&eor("127.0.0.2", Family::Ipv4Unicast), t), vec![]);
    assert_eq!(
        rib.apply(&eor("127.0.0.2", Family::Ipv6Unicast), t),
        vec![change("2001:db8::10/128", &[], &["2001:db8:ffff::1"])]
    );
    assert_eq!(rib.path_count(), 3);
}

#[test]
fn refresh_end_removes_every_missing_path_in_one_batch() {
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    let routes: Vec<(String, &str, Option<u32>)> = (0..5)
        .map(|i| (format!("192.0.2.{i}/32"), "198.51.100.2", Some(1)))
        .collect();
    let routes: Vec<(&str, &str, Option<u32>)> = routes
        .iter()
        .map(|(p, h, i)| (p.as_str(), *h, *i))
        .collect();
    rib.apply(&announce("127.0.0.2", &routes, false), t);
    rib.begin_refresh_all(t);
    rib.apply(&announce("127.0.0.2", &routes[..2], false), t);
    let batch = rib.end_refresh(ip("127.0.0.2"), None);
    assert_eq!(
        batch,
        (2..5)
            .map(|i| change(&format!("192.0.2.{i}/32"), &[], &["198.51.100.2"]))
            .collect::<Vec<_>>()
    );
    assert_eq!(rib.path_count(), 2);
    // No refresh in progress: ending one again does nothing.
    assert_eq!(rib.end_refresh(ip("127.0.0.2"), None), vec![]);
}

#[test]
fn refresh_times_out_without_end_of_rib() {
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig {
        stale_time: Duration::ZERO,
        refresh_timeout: Duration::from_secs(5),
    });
    rib.apply(
        &announce(
            "127.0.0.2",
            &[
                (P, "198.51.100.2", Some(2)),
                ("192.0.2.11/32", "198.51.100.2", Some(2)),
            ],
            false,
        ),
        t,
    );
    rib.begin_refresh(ip("127.0.0.2"), t);
    rib.apply(
        &announce("127.0.0.2", &[(P, "198.51.100.2", Some(2))], false),
        t,
    );
    assert_eq!(rib.next_deadline(), Some(t + Duration::from_secs(5)));
    assert_eq!(rib.expire(t + Duration::from_secs(4)), vec![]);
    assert_eq!(
        rib.expire(t + Duration::from_secs(5)),
        vec![change("192.0.2.11/32", &[], &["198.51.100.2"])]
    );
    assert_eq!(rib.next_deadline(), None);
}

#[test]
fn flapping_peer_keeps_its_first_stale_deadline() {
    let t = Instant::now();
    let mut rib = stale_rib(10);
    rib.apply(
        &announce("127.0.0.2", &[(P, "198.51.100.2", Some(2))], false),
        t,
    );
    rib.apply(&down("127.0.0.2"), t);
    let t5 = t + Duration::from_secs(5);
    rib.apply(&state("127.0.0.2", SessionState::Up), t5);
    rib.apply(&down("127.0.0.2"), t5);
    assert_eq!(rib.next_deadline(), Some(t + Duration::from_secs(10)));
    assert_eq!(
        rib.expire(t + Duration::from_secs(10)),
        vec![change(P, &[], &["198.51.100.2"])]
    );
}

#[test]
fn companion_shutdown_downs_every_peer() {
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    three_servers(&mut rib, t);
    assert_eq!(
        rib.apply(&FeedEvent::Shutdown, t),
        vec![change(
            P,
            &[],
            &["198.51.100.2", "198.51.100.3", "198.51.100.4"]
        )]
    );
    assert!(rib.peers().iter().all(|p| p.state == PeerState::Down
        && p.last_down_reason.as_deref() == Some("companion shutdown")));
}

#[test]
fn peer_summaries_count_paths() {
    let t = Instant::now();
    let mut rib = Rib::new(RibConfig::default());
    let mut up = state("127.0.0.2", SessionState::Up);
    if let FeedEvent::State { neighbor, .. } = &mut up {
        neighbor.peer_as = Some(65001);
    }
    rib.apply(&up, t);
    rib.apply(
        &announce(
            "127.0.0.2",
            &[
                (P, "198.51.100.2", Some(2)),
                ("2001:db8::10/128", "2001:db8:ffff::1", None),
            ],
            false,
        ),
        t,
    );
    rib.apply(&state("127.0.0.3", SessionState::Connected), t);
    let peers = rib.peers();
    assert_eq!(peers.len(), 2);
    // Updates carry no ASN; the one learned from the state line is replaced by what the latest
    // line printed.
    assert_eq!(peers[0].neighbor, Neighbor::new(ip("127.0.0.2")));
    assert_eq!(
        (peers[0].state, peers[0].paths, peers[0].stale),
        (PeerState::Up, 2, 0)
    );
    assert!(peers[0].refreshing.is_empty());
    assert_eq!((peers[1].state, peers[1].paths), (PeerState::Connected, 0));
    let views: Vec<PathView> = rib.paths().collect();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].nlri, nlri(P, Some(2)));
    assert_eq!(views[0].next_hop, ip("198.51.100.2"));
    assert_eq!(rib.routes().count(), 2);
}

// ---- the RIB against a naive model ----

const PEERS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
const PREFIXES: [&str; 4] = [
    "192.0.2.10/32",
    "192.0.2.0/24",
    "2001:db8::10/128",
    "2001:db8::/32",
];
const HOPS4: [&str; 3] = ["198.51.100.2", "198.51.100.3", "198.51.100.4"];
const HOPS6: [&str; 3] = ["2001:db8:ffff::1", "2001:db8:ffff::2", "2001:db8:ffff::3"];
const STALE: u64 = 5;
const REFRESH: u64 = 7;

#[derive(Debug, Clone)]
enum Op {
    Announce(
        usize,
        Vec<(usize, Option<u32>, usize)>,
        bool,
        Vec<(usize, Option<u32>)>,
    ),
    Down(usize),
    Up(usize),
    BeginRefresh(usize),
    Eor(usize, usize),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let route = (
        0..PREFIXES.len(),
        proptest::option::of(0u32..2),
        0..HOPS4.len(),
    );
    let key = (0..PREFIXES.len(), proptest::option::of(0u32..2));
    prop_oneof![
        6 => (0..PEERS.len(), proptest::collection::vec(route, 0..4), any::<bool>(),
              proptest::collection::vec(key, 0..3))
            .prop_map(|(p, r, g, w)| Op::Announce(p, r, g, w)),
        1 => (0..PEERS.len()).prop_map(Op::Down),
        1 => (0..PEERS.len()).prop_map(Op::Up),
        1 => (0..PEERS.len()).prop_map(Op::BeginRefresh),
        1 => (0..PEERS.len(), 0usize..2).prop_map(|(p, f)| Op::Eor(p, f)),
        2 => (0u64..8).prop_map(Op::Tick),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MPath {
    hop: IpAddr,
    gshut: bool,
    stale_until: Option<u64>,
    pending: bool,
}

/// Flat model: one map of every path, scanned in full for every question.
#[derive(Default)]
struct Model {
    paths: BTreeMap<(IpAddr, Prefix, Option<PathId>), MPath>,
    refresh: BTreeMap<IpAddr, [Option<u64>; 2]>,
}

impl Model {
    fn remove_where(&mut self, f: impl Fn(&(IpAddr, Prefix, Option<PathId>), &MPath) -> bool) {
        self.paths.retain(|k, v| !f(k, v));
    }

    fn begin_refresh(&mut self, peer: IpAddr, now: u64) {
        if let Some(r) = self.refresh.get_mut(&peer) {
            *r = [Some(now + REFRESH); 2];
            for (k, v) in self.paths.iter_mut() {
                if k.0 == peer {
                    v.pending = true;
                }
            }
        }
    }

    fn end_refresh(&mut self, peer: IpAddr, family: usize) {
        let Some(r) = self.refresh.get_mut(&peer) else {
            return;
        };
        if r[family].take().is_some() {
            self.remove_where(|k, v| k.0 == peer && k.1.family().index() == family && v.pending);
        }
    }

    fn hops(&self) -> BTreeMap<Prefix, HopSet> {
        let mut out: BTreeMap<Prefix, HopSet> = BTreeMap::new();
        for ((_, prefix, _), p) in &self.paths {
            let state = if p.gshut { D } else { A };
            let set = out.entry(*prefix).or_default();
            let cur = set.entry(p.hop).or_insert(state);
            if state == A {
                *cur = A;
            }
        }
        out
    }
}

fn run(ops: Vec<Op>, stale: u64) -> Result<(), TestCaseError> {
    let t0 = Instant::now();
    let secs = |s: u64| t0 + Duration::from_secs(s);
    let mut rib = Rib::new(RibConfig {
        stale_time: Duration::from_secs(stale),
        refresh_timeout: Duration::from_secs(REFRESH),
    });
    let mut model = Model::default();
    let mut mirror: BTreeMap<Prefix, HopSet> = BTreeMap::new();
    let mut now = 0u64;
    for op in ops {
        let changes = match &op {
            Op::Announce(p, routes, gshut, withdrawn) => {
                let peer = ip(PEERS[*p]);
                let route = |(i, id, h): (usize, Option<u32>, usize)| {
                    let prefix = pfx(PREFIXES[i]);
                    let hops = match prefix.family() {
                        Family::Ipv4Unicast => HOPS4,
                        Family::Ipv6Unicast => HOPS6,
                    };
                    (prefix, id.map(PathId), ip(hops[h]))
                };
                let event = FeedEvent::Update {
                    neighbor: Neighbor::new(peer),
                    update: Update {
                        attributes: Attributes {
                            as_path: vec![],
                            communities: if *gshut {
                                vec![Community::GRACEFUL_SHUTDOWN]
                            } else {
                                vec![]
                            },
                            ..Attributes::default()
                        },
                        announce: routes
                            .iter()
                            .map(|&r| {
                                let (prefix, path_id, next_hop) = route(r);
                                Announce {
                                    next_hop,
                                    nlri: Nlri { prefix, path_id },
                                }
                            })
                            .collect(),
                        withdraw: withdrawn
                            .iter()
                            .map(|&(i, id)| Nlri {
                                prefix: pfx(PREFIXES[i]),
                                path_id: id.map(PathId),
                            })
                            .collect(),
                        skipped_families: 0,
                    },
                };
                model.refresh.entry(peer).or_default();
                for &(i, id) in withdrawn {
                    model
                        .paths
                        .remove(&(peer, pfx(PREFIXES[i]), id.map(PathId)));
                }
                for &r in routes {
                    let (prefix, path_id, hop) = route(r);
                    model.paths.insert(
                        (peer, prefix, path_id),
                        MPath {
                            hop,
                            gshut: *gshut,
                            stale_until: None,
                            pending: false,
                        },
                    );
                }
                rib.apply(&event, secs(now))
            }
            Op::Down(p) => {
                let peer = ip(PEERS[*p]);
                model.refresh.insert(peer, [None; 2]);
                if stale == 0 {
                    model.remove_where(|k, _| k.0 == peer);
                } else {
                    for (k, v) in model.paths.iter_mut() {
                        if k.0 == peer {
                            v.stale_until.get_or_insert(now + stale);
                            v.pending = false;
                        }
                    }
                }
                rib.apply(&down(PEERS[*p]), secs(now))
            }
            Op::Up(p) => {
                let peer = ip(PEERS[*p]);
                model.refresh.entry(peer).or_default();
                if model.paths.keys().any(|k| k.0 == peer) {
                    model.begin_refresh(peer, now);
                }
                rib.apply(&state(PEERS[*p], SessionState::Up), secs(now))
            }
            Op::BeginRefresh(p) => {
                let peer = ip(PEERS[*p]);
                model.begin_refresh(peer, now);
                rib.begin_refresh(peer, secs(now));
                vec![]
            }
            Op::Eor(p, f) => {
                model.end_refresh(ip(PEERS[*p]), *f);
                rib.apply(&eor(PEERS[*p], Family::ALL[*f]), secs(now))
            }
            Op::Tick(dt) => {
                now += dt;
                let peers: Vec<IpAddr> = model.refresh.keys().copied().collect();
                for peer in peers {
                    for f in 0..2 {
                        if model.refresh[&peer][f].is_some_and(|d| d <= now) {
                            model.end_refresh(peer, f);
                        }
                    }
                }
                model.remove_where(|_, v| v.stale_until.is_some_and(|d| d <= now));
                rib.expire(secs(now))
            }
        };

        // Every reported change is real, complete and correctly split into hops and removed.
        let mut last = None;
        for c in &changes {
            prop_assert!(last < Some(c.prefix), "changes ascending and unique");
            last = Some(c.prefix);
            let before = mirror.get(&c.prefix).cloned().unwrap_or_default();
            prop_assert_ne!(&before, &c.hops, "reported a non-change for {}", c.prefix);
            let removed: Vec<IpAddr> = before
                .keys()
                .filter(|h| !c.hops.contains_key(h))
                .copied()
                .collect();
            prop_assert_eq!(&removed, &c.removed);
            if c.hops.is_empty() {
                mirror.remove(&c.prefix);
            } else {
                mirror.insert(c.prefix, c.hops.clone());
            }
        }
        let want = model.hops();
        prop_assert_eq!(&mirror, &want, "after {:?}", op);
        prop_assert_eq!(rib.routes().collect::<BTreeMap<_, _>>(), want);

        let got: BTreeMap<_, _> = rib
            .paths()
            .map(|v| {
                (
                    (v.peer, v.nlri.prefix, v.nlri.path_id),
                    MPath {
                        hop: v.next_hop,
                        gshut: v.graceful_shutdown,
                        stale_until: v.stale_until.map(|t| (t - t0).as_secs()),
                        pending: v.refresh_pending,
                    },
                )
            })
            .collect();
        prop_assert_eq!(&got, &model.paths);
        prop_assert_eq!(rib.path_count(), model.paths.len());
        for summary in rib.peers() {
            let peer = summary.neighbor.peer;
            let mine = model.paths.iter().filter(|(k, _)| k.0 == peer);
            prop_assert_eq!(summary.paths, mine.clone().count());
            prop_assert_eq!(
                summary.stale,
                mine.filter(|(_, v)| v.stale_until.is_some()).count()
            );
        }
        // `next_deadline` is never later than the earliest thing due.
        let due = model
            .paths
            .values()
            .filter_map(|v| v.stale_until)
            .chain(model.refresh.values().flatten().flatten().copied())
            .min();
        if let Some(due) = due {
            prop_assert!(rib.next_deadline().is_some_and(|d| d <= secs(due)));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Announces and withdraws only: the RIB equals a flat map of paths.
    #[test]
    fn announces_and_withdraws_match_model(
        ops in proptest::collection::vec(
            (0..PEERS.len(), proptest::collection::vec(
                (0..PREFIXES.len(), proptest::option::of(0u32..2), 0..HOPS4.len()), 0..4),
             any::<bool>(),
             proptest::collection::vec((0..PREFIXES.len(), proptest::option::of(0u32..2)), 0..3))
                .prop_map(|(p, r, g, w)| Op::Announce(p, r, g, w)),
            0..60,
        ),
    ) {
        run(ops, 0)?;
    }

    /// With peer down/up, refreshes, End-of-RIB and time passing, for both stale-time kinds.
    #[test]
    fn full_lifecycle_matches_model(
        ops in proptest::collection::vec(op(), 0..80),
        stale in prop::sample::select(vec![0u64, STALE]),
    ) {
        run(ops, stale)?;
    }
}

proptest! {
    /// The lone-path shortcut of `hop_set` says what the full selection says, whatever the
    /// path's attributes.
    #[test]
    fn a_lone_path_gets_what_selection_gives_it(
        local_pref in 0u32..3,
        as_path_len in 0u32..3,
        med in 0u32..3,
        gshut in any::<bool>(),
        hop in 0usize..3,
    ) {
        let rank = PathRank {
            local_pref,
            as_path_len,
            med,
            ..PathRank::default()
        };
        let mut paths = Paths::default();
        paths.insert(
            (ip(PEERS[0]), None),
            PathEntry {
                next_hop: ip(HOPS4[hop]),
                rank,
                graceful_shutdown: gshut,
                stale_until: None,
                refresh_pending: false,
            },
        );
        prop_assert_eq!(hop_set(&paths), selected_hop_set(&paths));
    }
}
