//! Decoder tests on the verbatim ExaBGP lines of `shared/reference/bgp-feed.md`.

use std::net::{IpAddr, Ipv4Addr};

use ecmp_proto::{
    Announce, AsPathSegment, Attributes, Community, Family, FeedEvent, Neighbor, Nlri, Origin,
    PathId, SegmentKind, SessionState, Update,
};
use proptest::prelude::*;

use super::{FeedError, decode_line};

// ExaBGP 5.0.15, verbatim.
const UP_50: &str = r#"{ "exabgp": "5.0.0", "time": 1795310632.684011, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 2, "type": "state", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "state": "up" } }"#;
const ANNOUNCE_50: &str = r#"{ "exabgp": "5.0.0", "time": 1795310634.8154979, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 6, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "update": { "attribute": { "origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65001]}} }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } } } } } }"#;
const WITHDRAW_50: &str = r#"{ "exabgp": "5.0.0", "time": 1795310636.7733183, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 9, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "update": { "withdraw": { "ipv4 unicast": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } } } } }"#;
// ExaBGP 5.0.15, verbatim: an iBGP session (AS 65000 both ends) whose announcer sent
// `... local-preference 1`, then `... origin incomplete as-path [ 65010 65011 ] med 50`.
const IBGP_LOCAL_PREF_50: &str = r#"{ "exabgp": "5.0.0", "time": 1796631829.8497837, "host" : "vm", "pid" : 20727, "ppid" : 20722, "counter": 4, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65000 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "update": { "attribute": { "origin": "igp", "local-preference": 1 }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } } } } } }"#;
const IBGP_MED_50: &str = r#"{ "exabgp": "5.0.0", "time": 1796631829.8502533, "host" : "vm", "pid" : 20727, "ppid" : 20722, "counter": 5, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65000 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "update": { "attribute": { "origin": "incomplete", "as-path": {"0": {"element": "as-sequence", "value": [65010, 65011]}}, "med": 50, "local-preference": 100 }, "announce": { "ipv4 unicast": { "198.51.100.3": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.3" } ] } } } } } }"#;
const DOWN_50: &str = r#"{ "exabgp": "5.0.0", "time": 1795310644.5298004, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 10, "type": "state", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "state": "down", "reason": "closing connection" } }"#;

/// The verbatim framing around the fragments the reference quotes ("also seen").
fn state_line(state: &str) -> String {
    format!(
        r#"{{ "exabgp": "5.0.0", "time": 1795310632.1, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 1, "type": "state", "neighbor": {{ "address": {{ "local": "127.0.0.1", "peer": "127.0.0.2" }}, "asn": {{ "local": 65000, "peer": 65001 }}, "router-id": "127.0.0.1" , {state} }} }}"#
    )
}

fn message_line(message: &str) -> String {
    format!(
        r#"{{ "exabgp": "5.0.0", "time": 1795310634.8, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 6, "type": "update", "neighbor": {{ "address": {{ "local": "127.0.0.1", "peer": "127.0.0.2" }}, "asn": {{ "local": 65000, "peer": 65001 }}, "router-id": "127.0.0.1" , "direction": "receive", "message": {message} }} }}"#
    )
}

/// ExaBGP 4.2 framing: version 4.0.1, no router-id, as-path as a list.
fn line_42(body: &str) -> String {
    format!(
        r#"{{ "exabgp": "4.0.1", "time": 1678544034.886104, "host" : "vm", "pid" : 3167756, "ppid" : 1, "counter": 4, "type": "update", "neighbor": {{ "address": {{ "local": "127.0.0.1", "peer": "127.0.0.2" }}, "asn": {{ "local": 65000, "peer": 65001 }} , "direction": "receive", "message": {{ "update": {body} }} }} }}"#
    )
}

fn neighbor() -> Neighbor {
    Neighbor {
        peer: ip("127.0.0.2"),
        local: Some(ip("127.0.0.1")),
        peer_as: Some(65001),
        local_as: Some(65000),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn nlri(prefix: &str, path_id: Option<u32>) -> Nlri {
    Nlri {
        prefix: prefix.parse().unwrap(),
        path_id: path_id.map(PathId),
    }
}

fn sequence(asns: &[u32]) -> Vec<AsPathSegment> {
    vec![AsPathSegment {
        kind: SegmentKind::Sequence,
        asns: asns.to_vec(),
    }]
}

fn update(line: &str) -> Update {
    match decode_line(line) {
        Ok(Some(FeedEvent::Update {
            neighbor: n,
            update,
        })) => {
            assert_eq!(n, neighbor());
            update
        }
        other => panic!("not an update: {other:?}"),
    }
}

#[test]
fn verbatim_50_state_up() {
    assert_eq!(
        decode_line(UP_50),
        Ok(Some(FeedEvent::State {
            neighbor: neighbor(),
            state: SessionState::Up,
        }))
    );
}

#[test]
fn verbatim_50_announce() {
    assert_eq!(
        decode_line(ANNOUNCE_50),
        Ok(Some(FeedEvent::Update {
            neighbor: neighbor(),
            update: Update {
                attributes: Attributes {
                    origin: Some(Origin::Igp),
                    as_path: sequence(&[65001]),
                    communities: vec![],
                    ..Attributes::default()
                },
                announce: vec![Announce {
                    next_hop: ip("198.51.100.2"),
                    nlri: nlri("192.0.2.10/32", Some(2)),
                }],
                withdraw: vec![],
                skipped_families: 0,
            },
        }))
    );
}

#[test]
fn verbatim_50_withdraw() {
    assert_eq!(
        decode_line(WITHDRAW_50),
        Ok(Some(FeedEvent::Update {
            neighbor: neighbor(),
            update: Update {
                withdraw: vec![nlri("192.0.2.10/32", Some(2))],
                ..Update::default()
            },
        }))
    );
}

#[test]
fn verbatim_50_down_with_reason() {
    assert_eq!(
        decode_line(DOWN_50),
        Ok(Some(FeedEvent::State {
            neighbor: neighbor(),
            state: SessionState::Down {
                reason: Some("closing connection".into()),
            },
        }))
    );
}

#[test]
fn connected_and_other_down_reasons() {
    assert_eq!(
        decode_line(&state_line(r#""state": "connected""#)),
        Ok(Some(FeedEvent::State {
            neighbor: neighbor(),
            state: SessionState::Connected,
        }))
    );
    for reason in ["notification sent (4,0)", "notification received (6,2)"] {
        let line = state_line(&format!(r#""state": "down", "reason": "{reason}""#));
        assert_eq!(
            decode_line(&line),
            Ok(Some(FeedEvent::State {
                neighbor: neighbor(),
                state: SessionState::Down {
                    reason: Some(reason.into()),
                },
            }))
        );
    }
    assert_eq!(
        decode_line(&state_line(r#""state": "down""#)),
        Ok(Some(FeedEvent::State {
            neighbor: neighbor(),
            state: SessionState::Down { reason: None },
        }))
    );
    // A state the control plane does not track is ignored, not an error.
    assert_eq!(decode_line(&state_line(r#""state": "idle""#)), Ok(None));
}

#[test]
fn end_of_rib() {
    let line = message_line(r#"{ "eor": { "afi" : "ipv4", "safi" : "unicast" } }"#);
    assert_eq!(
        decode_line(&line),
        Ok(Some(FeedEvent::EndOfRib {
            neighbor: neighbor(),
            family: Family::Ipv4Unicast,
        }))
    );
    let line = message_line(r#"{ "eor": { "afi" : "ipv6", "safi" : "unicast" } }"#);
    assert_eq!(
        decode_line(&line),
        Ok(Some(FeedEvent::EndOfRib {
            neighbor: neighbor(),
            family: Family::Ipv6Unicast,
        }))
    );
    let line = message_line(r#"{ "eor": { "afi" : "ipv4", "safi" : "flow" } }"#);
    assert_eq!(decode_line(&line), Ok(None));
}

#[test]
fn ipv6_announce() {
    let line = message_line(
        r#"{ "update": { "attribute": { "origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65001]}} }, "announce": { "ipv6 unicast": { "2001:db8:ffff::1": [ { "nlri": "2001:db8::10/128", "path-information": "0.0.0.1" } ] } } } }"#,
    );
    assert_eq!(
        update(&line).announce,
        vec![Announce {
            next_hop: ip("2001:db8:ffff::1"),
            nlri: nlri("2001:db8::10/128", Some(1)),
        }]
    );
}

#[test]
fn without_add_path_there_is_no_path_id() {
    let line = message_line(
        r#"{ "update": { "attribute": { "origin": "igp" }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32" } ] } } } }"#,
    );
    let u = update(&line);
    assert_eq!(u.announce[0].nlri, nlri("192.0.2.10/32", None));
    assert_eq!(
        u.attributes,
        Attributes {
            origin: Some(Origin::Igp),
            ..Attributes::default()
        }
    );
    let line = message_line(
        r#"{ "update": { "withdraw": { "ipv4 unicast": [ { "nlri": "192.0.2.10/32" } ] } } }"#,
    );
    assert_eq!(update(&line).withdraw, vec![nlri("192.0.2.10/32", None)]);
}

#[test]
fn many_prefixes_per_next_hop_and_many_next_hops() {
    let line = message_line(
        r#"{ "update": { "attribute": { "origin": "igp" }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" }, { "nlri": "192.0.2.11/32", "path-information": "0.0.0.2" }, { "nlri": "192.0.2.12/32", "path-information": "0.0.0.2" } ], "198.51.100.3": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.3" } ] } } } }"#,
    );
    let mut got = update(&line).announce;
    got.sort_by_key(|a| (a.next_hop, a.nlri));
    let a = |hop: &str, prefix: &str, id| Announce {
        next_hop: ip(hop),
        nlri: nlri(prefix, Some(id)),
    };
    assert_eq!(
        got,
        vec![
            a("198.51.100.2", "192.0.2.10/32", 2),
            a("198.51.100.2", "192.0.2.11/32", 2),
            a("198.51.100.2", "192.0.2.12/32", 2),
            a("198.51.100.3", "192.0.2.10/32", 3),
        ]
    );
}

#[test]
fn ibgp_local_preference_origin_and_med() {
    let ibgp = Neighbor {
        peer_as: Some(65000),
        ..neighbor()
    };
    let decoded = |line: &str| match decode_line(line) {
        Ok(Some(FeedEvent::Update {
            neighbor: n,
            update,
        })) => {
            assert_eq!(n, ibgp);
            update
        }
        other => panic!("not an update: {other:?}"),
    };
    let u = decoded(IBGP_LOCAL_PREF_50);
    assert_eq!(
        u.attributes,
        Attributes {
            origin: Some(Origin::Igp),
            local_pref: Some(1),
            ..Attributes::default()
        }
    );
    assert_eq!(
        u.announce,
        vec![Announce {
            next_hop: ip("198.51.100.2"),
            nlri: nlri("192.0.2.10/32", Some(2)),
        }]
    );
    assert_eq!(
        decoded(IBGP_MED_50).attributes,
        Attributes {
            origin: Some(Origin::Incomplete),
            as_path: sequence(&[65010, 65011]),
            med: Some(50),
            local_pref: Some(100),
            communities: vec![],
        }
    );
    // Without the attributes (an eBGP path carries no LOCAL_PREF) they stay absent: the
    // defaults are path selection's business.
    let bare = update(&message_line(
        r#"{ "update": { "attribute": { "origin": "egp" }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32" } ] } } } }"#,
    ));
    assert_eq!(bare.attributes.origin, Some(Origin::Egp));
    assert_eq!(
        (bare.attributes.med, bare.attributes.local_pref),
        (None, None)
    );
    // ExaBGP 4.x prints the same keys.
    let line = line_42(
        r#"{ "attribute": { "origin": "igp", "as-path": [ 65001 ], "confederation-path": [], "med": 7, "local-preference": 200 }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } } }"#,
    );
    let u = update(&line);
    assert_eq!(
        (u.attributes.med, u.attributes.local_pref),
        (Some(7), Some(200))
    );
}

#[test]
fn graceful_shutdown_community() {
    let line = message_line(
        r#"{ "update": { "attribute": { "origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65001]}}, "community": [ [ 65535, 0 ], [ 65001, 100 ] ] }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } } } }"#,
    );
    let u = update(&line);
    assert_eq!(
        u.attributes.communities,
        vec![
            Community::GRACEFUL_SHUTDOWN,
            Community {
                asn: 65001,
                value: 100
            }
        ]
    );
    assert!(u.attributes.graceful_shutdown());
}

#[test]
fn exabgp_42_shapes() {
    let line = line_42(
        r#"{ "attribute": { "origin": "igp", "as-path": [ 65001, 65002 ], "confederation-path": [], "community": [ [ 65535, 0 ] ] }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } } }"#,
    );
    let u = update(&line);
    assert_eq!(u.attributes.as_path, sequence(&[65001, 65002]));
    assert!(u.attributes.graceful_shutdown());
    assert_eq!(
        u.announce,
        vec![Announce {
            next_hop: ip("198.51.100.2"),
            nlri: nlri("192.0.2.10/32", Some(2)),
        }]
    );
    let line = line_42(
        r#"{ "withdraw": { "ipv4 unicast": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } }"#,
    );
    assert_eq!(update(&line).withdraw, vec![nlri("192.0.2.10/32", Some(2))]);
    // 4.x state lines have no router-id.
    let up = r#"{ "exabgp": "4.0.1", "time": 1678544034.8, "host" : "vm", "pid" : 1, "ppid" : 1, "counter": 1, "type": "state", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 } , "state": "up" } }"#;
    assert_eq!(
        decode_line(up),
        Ok(Some(FeedEvent::State {
            neighbor: neighbor(),
            state: SessionState::Up,
        }))
    );
}

#[test]
fn as_path_segments_in_position_order() {
    let line = message_line(
        r#"{ "update": { "attribute": { "as-path": {"10": {"element": "as-set", "value": [11, 12]}, "2": {"element": "as-sequence", "value": [2]}, "0": {"element": "as-sequence", "value": [0, 1]}} }, "announce": {} } }"#,
    );
    assert_eq!(
        update(&line).attributes.as_path,
        vec![
            AsPathSegment {
                kind: SegmentKind::Sequence,
                asns: vec![0, 1]
            },
            AsPathSegment {
                kind: SegmentKind::Sequence,
                asns: vec![2]
            },
            AsPathSegment {
                kind: SegmentKind::Set,
                asns: vec![11, 12]
            },
        ]
    );
    let line = line_42(r#"{ "attribute": { "as-path": [ 1, 2, [ 3, 4 ], 5 ] } }"#);
    assert_eq!(
        update(&line).attributes.as_path,
        vec![
            AsPathSegment {
                kind: SegmentKind::Sequence,
                asns: vec![1, 2]
            },
            AsPathSegment {
                kind: SegmentKind::Set,
                asns: vec![3, 4]
            },
            AsPathSegment {
                kind: SegmentKind::Sequence,
                asns: vec![5]
            },
        ]
    );
}

#[test]
fn announce_and_withdraw_in_one_update() {
    let line = message_line(
        r#"{ "update": { "attribute": { "origin": "igp" }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32" } ] } }, "withdraw": { "ipv6 unicast": [ { "nlri": "2001:db8::10/128" } ] } } }"#,
    );
    let u = update(&line);
    assert_eq!(u.announce.len(), 1);
    assert_eq!(u.withdraw, vec![nlri("2001:db8::10/128", None)]);
}

#[test]
fn other_families_are_skipped_and_counted() {
    let line = message_line(
        r#"{ "update": { "announce": { "ipv4 flow": { "no-nexthop": [ { "destination-ipv4": [ "10.0.0.0/8" ] } ] }, "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32" } ] } }, "withdraw": { "l2vpn evpn": [ {} ] } } }"#,
    );
    let u = update(&line);
    assert_eq!(u.skipped_families, 2);
    assert_eq!(u.announce.len(), 1);
}

#[test]
fn shutdown_notification() {
    let line = r#"{ "exabgp": "5.0.0", "time": 1795310650.1, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 11, "type": "notification", "notification": "shutdown"}"#;
    assert_eq!(decode_line(line), Ok(Some(FeedEvent::Shutdown)));
    // A peer's NOTIFICATION message: its `down` state line follows, so it is ignored here.
    let line = message_line(r#"{ "notification": { "code": 6, "subcode": 2, "data": "" } }"#)
        .replace(r#""type": "update""#, r#""type": "notification""#);
    assert_eq!(decode_line(&line), Ok(None));
}

#[test]
fn done_and_other_non_json_lines() {
    for line in [
        "done",
        "",
        " ",
        "error",
        "{ \"type\": \"state\"",
        "shutdown",
    ] {
        assert_eq!(decode_line(line), Err(FeedError::NotJson), "{line:?}");
    }
}

#[test]
fn unknown_types_and_sent_updates_are_ignored() {
    for kind in [
        "open",
        "keepalive",
        "refresh",
        "operational",
        "negotiated",
        "fsm",
        "signal",
    ] {
        let line = UP_50.replace(r#""type": "state""#, &format!(r#""type": "{kind}""#));
        assert_eq!(decode_line(&line), Ok(None), "{kind}");
    }
    let sent = ANNOUNCE_50.replace(r#""direction": "receive""#, r#""direction": "send""#);
    assert_eq!(decode_line(&sent), Ok(None));
}

#[test]
fn malformed_known_lines_are_errors() {
    let cases = [
        (
            ANNOUNCE_50.replace("192.0.2.10/32", "192.0.2.10/33"),
            FeedError::Invalid {
                field: "nlri",
                value: "192.0.2.10/33".into(),
            },
        ),
        (
            // An IPv6 prefix under the IPv4 family key.
            ANNOUNCE_50.replace("192.0.2.10/32", "2001:db8::/32"),
            FeedError::Invalid {
                field: "nlri",
                value: "2001:db8::/32".into(),
            },
        ),
        (
            ANNOUNCE_50.replace("198.51.100.2", "not-an-address"),
            FeedError::Invalid {
                field: "next-hop",
                value: "not-an-address".into(),
            },
        ),
        (
            ANNOUNCE_50.replace("\"0.0.0.2\"", "\"zero\""),
            FeedError::Invalid {
                field: "path-information",
                value: "zero".into(),
            },
        ),
        (
            ANNOUNCE_50.replace("\"value\": [65001]", "\"value\": [-1]"),
            FeedError::Invalid {
                field: "as-path",
                value: r#"{"0":{"element":"as-sequence","value":[-1]}}"#.into(),
            },
        ),
        (
            ANNOUNCE_50.replace("\"origin\": \"igp\"", "\"community\": [ [ 65536, 0 ] ]"),
            FeedError::Invalid {
                field: "community",
                value: "[65536,0]".into(),
            },
        ),
        (
            ANNOUNCE_50.replace("\"igp\"", "\"bgp\""),
            FeedError::Invalid {
                field: "origin",
                value: "bgp".into(),
            },
        ),
        (
            IBGP_MED_50.replace("\"med\": 50", "\"med\": -50"),
            FeedError::Invalid {
                field: "med",
                value: "-50".into(),
            },
        ),
        (
            IBGP_LOCAL_PREF_50.replace(
                "\"local-preference\": 1",
                "\"local-preference\": 4294967296",
            ),
            FeedError::Invalid {
                field: "local-preference",
                value: "4294967296".into(),
            },
        ),
        (UP_50.replace("\"peer\": \"127.0.0.2\"", "\"peer\": 7"), {
            FeedError::Invalid {
                field: "peer",
                value: "7".into(),
            }
        }),
        (
            UP_50.replace("\"peer\": \"127.0.0.2\"", "\"via\": \"127.0.0.2\""),
            FeedError::Field("peer"),
        ),
        (
            UP_50.replace("\"state\": \"up\"", "\"state\": 1"),
            FeedError::Field("state"),
        ),
        ("{}".to_owned(), FeedError::Field("type")),
        ("[1, 2]".to_owned(), FeedError::Field("type")),
        (
            r#"{ "type": "update", "neighbor": { "address": { "peer": "127.0.0.2" } } }"#
                .to_owned(),
            FeedError::Field("message"),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(decode_line(&line), Err(want), "{line}");
    }
}

#[test]
fn error_excerpts_are_bounded() {
    let long = "9".repeat(500);
    let line = ANNOUNCE_50.replace("\"0.0.0.2\"", &format!("\"{long}\""));
    match decode_line(&line) {
        Err(FeedError::Invalid { field, value }) => {
            assert_eq!(field, "path-information");
            assert_eq!(value.len(), super::MAX_EXCERPT);
        }
        other => panic!("{other:?}"),
    }
}

/// Renders an ExaBGP 5.0 announce line the way the companion prints it.
fn render_announce(routes: &[(Ipv4Addr, Ipv4Addr, u8, Option<u32>)], gshut: bool) -> String {
    let mut by_hop: std::collections::BTreeMap<Ipv4Addr, Vec<String>> = Default::default();
    for &(hop, addr, len, id) in routes {
        let entry = match id {
            Some(id) => format!(
                r#"{{ "nlri": "{addr}/{len}", "path-information": "{}" }}"#,
                Ipv4Addr::from(id)
            ),
            None => format!(r#"{{ "nlri": "{addr}/{len}" }}"#),
        };
        by_hop.entry(hop).or_default().push(entry);
    }
    let hops: Vec<String> = by_hop
        .iter()
        .map(|(hop, entries)| format!(r#""{hop}": [ {} ]"#, entries.join(", ")))
        .collect();
    let community = if gshut {
        r#", "community": [ [ 65535, 0 ] ]"#
    } else {
        ""
    };
    message_line(&format!(
        r#"{{ "update": {{ "attribute": {{ "origin": "igp"{community} }}, "announce": {{ "ipv4 unicast": {{ {} }} }} }} }}"#,
        hops.join(", ")
    ))
}

/// Byte-level mutations of a verbatim line: (position, replacement char, delete?).
fn mutate(line: &str, edits: &[(usize, char, u8)]) -> String {
    let mut chars: Vec<char> = line.chars().collect();
    for &(pos, c, op) in edits {
        if chars.is_empty() {
            chars.push(c);
            continue;
        }
        let pos = pos % chars.len();
        match op % 3 {
            0 => chars[pos] = c,
            1 => {
                chars.remove(pos);
            }
            _ => chars.insert(pos, c),
        }
    }
    chars.into_iter().collect()
}

fn verbatim_lines() -> Vec<String> {
    vec![
        UP_50.to_owned(),
        ANNOUNCE_50.to_owned(),
        WITHDRAW_50.to_owned(),
        DOWN_50.to_owned(),
        line_42(
            r#"{ "attribute": { "as-path": [ 65001, [ 1, 2 ] ], "community": [ [ 65535, 0 ] ] }, "announce": { "ipv6 unicast": { "2001:db8:ffff::1": [ { "nlri": "2001:db8::10/128", "path-information": "0.0.0.1" } ] } } }"#,
        ),
        message_line(r#"{ "eor": { "afi" : "ipv4", "safi" : "unicast" } }"#),
        IBGP_MED_50.to_owned(),
    ]
}

/// The outcome's class must follow from whether the line is JSON at all.
fn check_outcome(line: &str) {
    let is_json = serde_json::from_str::<serde_json::Value>(line).is_ok();
    let got = decode_line(line);
    assert_eq!(matches!(got, Err(FeedError::NotJson)), !is_json, "{line:?}");
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(line in any::<String>()) {
        check_outcome(&line);
    }

    #[test]
    fn json_looking_strings_never_panic(line in r#"[{}\[\]",:0-9a-z. -]{0,200}"#) {
        check_outcome(&line);
    }

    #[test]
    fn mutated_verbatim_lines_never_panic(
        which in 0usize..7,
        edits in proptest::collection::vec(
            (any::<usize>(), prop::sample::select(vec!['{', '}', '[', ']', '"', ',', ':', '0', '9', '-', 'x', '.', '/', ' ']), any::<u8>()),
            1..6,
        ),
    ) {
        let lines = verbatim_lines();
        check_outcome(&mutate(&lines[which], &edits));
    }

    /// Any value dropped in place of a known field's value decodes or errs, never panics.
    #[test]
    fn substituted_values_never_panic(
        which in 0usize..7,
        field in prop::sample::select(vec![
            "\"0.0.0.2\"", "\"192.0.2.10/32\"", "\"198.51.100.2\"", "[65001]", "\"up\"",
            "\"127.0.0.2\"", "65001", "\"receive\"", "\"ipv4\"", "[ [ 65535, 0 ] ]",
            "\"incomplete\"", "50",
        ]),
        value in prop::sample::select(vec![
            "null", "true", "-1", "1e400", "18446744073709551616", "\"\"", "[]", "{}",
            "[[]]", "[[1]]", "[[1,2,3]]", "{\"0\":{}}", "\"::/0\"", "\"0.0.0.0/0\"",
            "4294967296", "1.5", "[null]", "{\"nlri\":{}}",
        ]),
    ) {
        let lines = verbatim_lines();
        check_outcome(&lines[which].replace(field, value));
    }

    /// Lines rendered the way ExaBGP prints them decode to exactly the routes rendered.
    #[test]
    fn rendered_announces_decode_exactly(
        routes in proptest::collection::vec(
            (any::<u32>(), any::<u32>(), 0u8..=32, proptest::option::of(any::<u32>())),
            1..20,
        ),
        gshut in any::<bool>(),
    ) {
        let routes: Vec<(Ipv4Addr, Ipv4Addr, u8, Option<u32>)> = routes
            .into_iter()
            .map(|(h, a, l, id)| (Ipv4Addr::from(h), Ipv4Addr::from(a), l, id))
            .collect();
        let u = update(&render_announce(&routes, gshut));
        prop_assert_eq!(u.attributes.graceful_shutdown(), gshut);
        let mut got: Vec<(IpAddr, Nlri)> = u.announce.iter().map(|a| (a.next_hop, a.nlri)).collect();
        let mut want: Vec<(IpAddr, Nlri)> = routes
            .iter()
            .map(|&(h, a, l, id)| {
                (
                    IpAddr::V4(h),
                    Nlri {
                        prefix: ecmp_proto::Prefix::new(IpAddr::V4(a), l).unwrap(),
                        path_id: id.map(PathId),
                    },
                )
            })
            .collect();
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
    }
}
