//! The golden fixtures of `tests/golden/`: every input through the whole worker, output bytes
//! and verdict compared exactly. `UPDATE_GOLDEN=1 cargo test -p ecmp-tests --test golden`
//! rewrites the expected files from what the code does now; review the diff before committing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Once;

use ecmp_dataplane::drop::DropReason;
use ecmp_port::BURST;
use ecmp_tables::nexthop::{Action, EncapKind};
use ecmp_tests::golden::{
    FORWARDING_HOPS, UPDATE_ENV, golden_inputs, regenerate, try_golden_cases,
};
use ecmp_tests::rig::Outcome;
use ecmp_tests::{Expected, GoldenCase, golden_cases, golden_config};
use ecmp_wire::{IpVersion, ParseError, parse_frame, parse_inner};
use ecmpfwd::config::{ActionSpec, Config};

fn expected_outcome(case: &GoldenCase) -> Outcome {
    match &case.expected {
        Expected::Tx { port, frame, .. } => Outcome::Tx {
            port: *port,
            frame: frame.clone(),
        },
        Expected::Drop(r) => Outcome::Drop(*r),
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Tx { port, frame } => format!("tx port {port}, {} bytes", frame.len()),
        Outcome::Drop(r) => format!("drop {}", r.name()),
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// With `UPDATE_GOLDEN=1`, rewrites the fixtures once, before any test of this binary reads them.
fn fixtures_ready() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var(UPDATE_ENV).is_ok_and(|v| v == "1") {
            let n = regenerate().expect("regenerating the golden fixtures");
            eprintln!("rewrote {n} golden fixtures in tests/golden/");
        }
    });
}

#[test]
fn golden_fixtures_match_the_pipeline() {
    fixtures_ready();
    let cfg = golden_config().expect("golden config");
    let inputs = golden_inputs(&cfg).expect("golden inputs");
    let cases = try_golden_cases().expect("golden fixtures");

    // The files and the case definitions must agree, or the files are stale.
    let defined: BTreeMap<_, _> = inputs.iter().map(|i| (i.name.as_str(), i)).collect();
    let on_disk: BTreeSet<_> = cases.iter().map(|c| c.name.as_str()).collect();
    let defined_names: BTreeSet<_> = defined.keys().copied().collect();
    assert_eq!(
        on_disk, defined_names,
        "fixture files and golden_inputs() disagree: run UPDATE_GOLDEN=1 cargo test -p ecmp-tests"
    );
    for case in &cases {
        let def = defined[case.name.as_str()];
        assert_eq!(
            case.input, def.frame,
            "{}: the .in.hex differs from its definition: run UPDATE_GOLDEN=1",
            case.name
        );
        // The verdict file must say what the case list declares, not merely what the code did
        // when the files were last regenerated.
        let on_file = match &case.expected {
            Expected::Tx { .. } => None,
            Expected::Drop(r) => Some(*r),
        };
        assert_eq!(
            on_file, def.drop,
            "{}: the .verdict contradicts the case's declaration",
            case.name
        );
    }

    let mut rig = ecmp_tests::rig::for_config(&cfg).expect("rig");
    let mut failures = Vec::new();
    for case in &cases {
        let got = rig
            .run(&case.input)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        if let Err(e) = defined[case.name.as_str()].check(&got) {
            failures.push(e.to_string());
        }
        let want = expected_outcome(case);
        if got != want {
            let detail = match (&got, &want) {
                (Outcome::Tx { frame: g, .. }, Outcome::Tx { frame: w, .. }) => {
                    format!(
                        " (first differing byte at offset {:?})",
                        first_difference(g, w)
                    )
                }
                _ => String::new(),
            };
            failures.push(format!(
                "{}: got {}, want {}{detail}",
                case.name,
                describe(&got),
                describe(&want)
            ));
        }
        assert_eq!(rig.pool().outstanding(), 0, "{}: a frame leaked", case.name);
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The same cases in full bursts, mixed: per-port output order and drop counts must match what
/// the cases say one by one (the pipeline's stages run over the whole burst at once).
#[test]
fn golden_cases_in_mixed_bursts_give_the_same_results() {
    fixtures_ready();
    let cfg = golden_config().expect("golden config");
    let cases = golden_cases();
    let mut rig = ecmp_tests::rig::for_config(&cfg).expect("rig");
    for chunk in cases.chunks(BURST) {
        let frames: Vec<&[u8]> = chunk.iter().map(|c| c.input.as_slice()).collect();
        let out = rig.run_burst(&frames).expect("burst");
        let mut want_sent = vec![Vec::new(); cfg.ports.len()];
        let mut want_drops = [0u64; DropReason::COUNT];
        for case in chunk {
            match &case.expected {
                Expected::Tx { port, frame, .. } => {
                    want_sent[usize::from(*port)].push(frame.clone())
                }
                Expected::Drop(r) => want_drops[*r as usize] += 1,
            }
        }
        let names: Vec<_> = chunk.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(out.drops, want_drops, "drops of the burst {names:?}");
        for (port, (got, want)) in out.sent.iter().zip(&want_sent).enumerate() {
            assert!(
                got == want,
                "port {port}: outputs of the burst {names:?} differ"
            );
        }
        assert_eq!(rig.pool().outstanding(), 0);
    }
}

/// `ip_out` is `ip_in` forwarded: the same length and bytes except the TTL / hop limit, one
/// lower, and (IPv4) the header checksum, which must be valid for the new header.
fn assert_forwarded_ip_packet(name: &str, version: IpVersion, ip_in: &[u8], ip_out: &[u8]) {
    assert_eq!(ip_out.len(), ip_in.len(), "{name}: IP packet length");
    let (ttl_at, sum_at) = match version {
        IpVersion::V4 => (8, Some(10..12)),
        IpVersion::V6 => (7, None),
    };
    assert_eq!(ip_out[ttl_at], ip_in[ttl_at] - 1, "{name}: TTL / hop limit");
    for (i, (a, b)) in ip_in.iter().zip(ip_out).enumerate() {
        let allowed = i == ttl_at || sum_at.as_ref().is_some_and(|r| r.contains(&i));
        assert!(a == b || allowed, "{name}: IP byte {i} changed");
    }
    if version == IpVersion::V4 {
        let h = usize::from(ip_out[0] & 0x0f) * 4;
        assert!(
            ecmp_wire::checksum::verify(&ip_out[..h]),
            "{name}: IPv4 header checksum"
        );
    }
}

fn hop_spec<'a>(cfg: &'a Config, name: &str) -> &'a ecmpfwd::config::NextHopSpec {
    let i = cfg.nexthop_index(name).expect("hop in config");
    &cfg.nexthops[i]
}

/// A guard against freezing a bug with UPDATE_GOLDEN: checks, from the config and the input
/// alone, what every forwarded output must look like (the tshark test checks the rest).
#[test]
fn forwarded_cases_leave_through_their_hop_with_ttl_decremented() {
    fixtures_ready();
    let cfg = golden_config().expect("golden config");
    for case in golden_cases() {
        let Some(hop_name) = case.hop() else {
            continue;
        };
        let hop = hop_spec(&cfg, hop_name);
        let port = &cfg.ports[hop.port];
        let Expected::Tx {
            port: out_port,
            frame: out,
            ..
        } = &case.expected
        else {
            panic!("{}: a forwarding case is not sent", case.name);
        };
        assert_eq!(
            usize::from(*out_port),
            hop.port,
            "{}: egress port",
            case.name
        );
        let hop_mac = hop.mac.expect("golden configs give every hop a MAC").0;
        assert_eq!(&out[..6], &hop_mac, "{}: destination MAC", case.name);
        assert_eq!(
            &out[6..12],
            &port.port_info().mac,
            "{}: source MAC",
            case.name
        );

        let input = parse_frame(&case.input).expect("input parses");
        let outer = parse_frame(out).unwrap_or_else(|e| panic!("{}: output: {e:?}", case.name));
        assert_eq!(outer.vlan_depth, 0, "{}: VLAN tags left", case.name);
        assert_eq!(
            out.len(),
            14 + usize::from(outer.ip_len),
            "{}: trailing bytes (padding kept?)",
            case.name
        );
        let l3_in = usize::from(input.l3_offset);
        let ip_in = &case.input[l3_in..l3_in + usize::from(input.ip_len)];
        match hop.action {
            ActionSpec::Rewrite => {
                assert_eq!(outer.ttl, input.ttl - 1, "{}: TTL", case.name);
                assert_eq!((outer.src, outer.dst), (input.src, input.dst));
                assert_forwarded_ip_packet(&case.name, input.version, ip_in, &out[14..]);
            }
            ActionSpec::Encap(e) => {
                assert_eq!(outer.src_ip(), e.src, "{}: outer source", case.name);
                assert_eq!(outer.dst_ip(), e.dst, "{}: outer destination", case.name);
                assert_eq!(outer.ttl, 64, "{}: outer TTL", case.name);
                // The encap action never copies the inner packet: it is the input's, TTL
                // decremented, at the end of the frame.
                let inner = &out[out.len() - ip_in.len()..];
                assert_forwarded_ip_packet(&case.name, input.version, ip_in, inner);
                // Where the wire crate can look inside (IP-in-IP, GRE, VXLAN), it must agree.
                if let Some(m) = parse_inner(out, &outer) {
                    assert_eq!((m.src, m.dst, m.ttl), (input.src, input.dst, input.ttl - 1));
                }
            }
        }
    }
}

#[test]
fn fixtures_cover_every_action_and_drop_reason() {
    fixtures_ready();
    let cfg = golden_config().expect("golden config");
    let cases = golden_cases();

    let mut kinds = BTreeSet::new();
    for hop in FORWARDING_HOPS {
        let spec = hop_spec(&cfg, hop);
        let action: Action = spec.action.into();
        let kind = match action {
            Action::Rewrite => "rewrite".to_owned(),
            Action::Encap(e) => {
                let k = match e.kind {
                    EncapKind::IpIp => "ipip",
                    EncapKind::Gre { key: None } => "gre",
                    EncapKind::Gre { key: Some(_) } => "gre-key",
                    EncapKind::Vxlan {
                        inner_dst_mac: Some(_),
                        ..
                    } => "vxlan-inner-mac",
                    EncapKind::Vxlan { .. } => "vxlan",
                    EncapKind::Gue { .. } => "gue",
                    EncapKind::MplsUdp { .. } => "mpls-udp",
                };
                let family = if e.dst.is_ipv4() { "v4" } else { "v6" };
                format!("{k}/{family}")
            }
        };
        kinds.insert(kind);
        for variant in [
            "v4-udp",
            "v4-tcp",
            "v6-udp",
            "v6-tcp",
            "v4-vlan",
            "v4-qinq",
            "v4-padded",
            "v4-options",
            "v4-frag-first",
            "v4-frag-later",
            "v6-frag-first",
            "v6-frag-later",
        ] {
            let name = format!("{hop}__{variant}");
            let case = cases.iter().find(|c| c.name == name);
            assert!(
                matches!(case.map(|c| &c.expected), Some(Expected::Tx { .. })),
                "{name}: missing or not forwarded"
            );
        }
    }
    for k in [
        "rewrite",
        "ipip/v4",
        "ipip/v6",
        "gre/v4",
        "gre-key/v4",
        "gre-key/v6",
        "vxlan-inner-mac/v4",
        "vxlan/v6",
        "gue/v4",
        "gue/v6",
        "mpls-udp/v4",
        "mpls-udp/v6",
    ] {
        assert!(kinds.contains(k), "no forwarding hop does {k}");
    }

    let drops: HashSet<_> = cases
        .iter()
        .filter_map(|c| match c.expected {
            Expected::Drop(r) => Some(r),
            Expected::Tx { .. } => None,
        })
        .collect();
    let mut wanted: Vec<DropReason> = ParseError::ALL.iter().map(|&e| e.into()).collect();
    wanted.extend([
        DropReason::NotForUs,
        DropReason::TtlExpired,
        DropReason::NoRoute,
        DropReason::NoNextHop,
        DropReason::MtuExceeded,
    ]);
    for r in wanted {
        assert!(drops.contains(&r), "no golden case drops for {}", r.name());
    }
    // Drop cases say so in their name, and only they are dropped.
    for c in &cases {
        let is_drop = matches!(c.expected, Expected::Drop(_));
        assert_eq!(c.hop().is_none(), is_drop, "{}", c.name);
    }
    // ... and only they declare a drop reason.
    for i in golden_inputs(&cfg).expect("golden inputs") {
        assert_eq!(
            i.name.starts_with("drop__"),
            i.drop.is_some(),
            "{}: a drop__ case must declare its reason, and only drop cases do",
            i.name
        );
    }
}
