//! Seed corpora of the fuzz targets, kept in `fuzz/seeds/<target>/` and derived from sources
//! that live elsewhere, so they are regenerated rather than edited:
//! - `parse_frame`: every frame of the wire crate's regression corpus
//!   (`forwarder/wire/tests/corpus/*.hex`, copied as binary under the same stem) and the valid
//!   frames of [`extra_frames`];
//! - `pipeline`: each of those frames as a one-record input, and the multi-record inputs of
//!   [`pipeline_scenarios`] (several flows, barriers that expire flow-cache entries, hops that
//!   fail and come back, routes added and removed);
//! - `feed_line`: the ExaBGP lines of [`FEED_LINES`] (5.0 and 4.x shapes, every line type);
//! - `ctl_request`: one request line per command, [`REQUESTS`];
//! - `config`: every example config under `configs/`, the pipeline harness's config and the
//!   broken configs of [`BAD_CONFIGS`].
//!
//! The test `seed_dirs_match_their_sources` fails when a seed directory lacks a file this module
//! generates or holds different bytes under its name; `ECMPFWD_WRITE_SEEDS=1 cargo test` in
//! `fuzz/` (re)writes them. Files it does not generate (crash inputs committed as regression
//! seeds, named `crash-*`) are left alone.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ecmp_testkit::frames::{FrameSpec, TcpFlags};
use ecmp_wire::ip_proto;

use crate::input::{barrier, encode_addressed, hop_state, route};

/// Every fuzz target, as `cargo fuzz list` names them.
pub const TARGETS: [&str; 5] = [
    "parse_frame",
    "pipeline",
    "feed_line",
    "ctl_request",
    "config",
];

/// The fuzz crate's directory.
fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The wire crate's regression corpus: (file stem, frame), sorted by name.
pub fn wire_corpus() -> io::Result<Vec<(String, Vec<u8>)>> {
    let dir = crate_dir().join("../forwarder/wire/tests/corpus");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "hex") {
            continue;
        }
        let text = fs::read_to_string(&path)?;
        let frame = decode_hex(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        out.push((stem(&path), frame));
    }
    out.sort();
    Ok(out)
}

/// The files of `fuzz/seeds/<target>/`: (file name, bytes), sorted by name.
pub fn seed_dir(target: &str) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(crate_dir().join("seeds").join(target))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, fs::read(&path)?));
    }
    out.sort();
    Ok(out)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The corpus format: `#` comment lines, otherwise hex digits with any whitespace.
fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.bytes())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).map_err(|e| e.to_string())?;
            u8::from_str_radix(s, 16).map_err(|e| format!("{s:?}: {e}"))
        })
        .collect()
}

const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xee, 0x01];

/// The frame of `spec` between the seed MACs.
fn built(spec: FrameSpec) -> Vec<u8> {
    spec.macs(SRC_MAC, DST_MAC)
        .build()
        .expect("seed frame specs are well-formed")
}

/// The bare IP packet of `spec` (a tunnel's inner packet).
fn inner_ip(spec: FrameSpec) -> Vec<u8> {
    spec.build_ip().expect("seed frame specs are well-formed")
}

fn v6(prefix: u16, last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(prefix, 0x0db8, 0, 0, 0, 0, 0, last))
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;
const FIN_ACK: TcpFlags = TcpFlags::FIN.union(TcpFlags::ACK);

/// Valid frames beyond the wire corpus, aimed at the routes and hops of the pipeline target's
/// config (see `harness::CONFIG`): (name, frame).
pub fn extra_frames() -> Vec<(String, Vec<u8>)> {
    let client = v4(198, 51, 100, 7);
    let tcp =
        |dst, sport, dport, flags| FrameSpec::udp(client, dst, sport, dport, 0).with_tcp(flags);
    let inner_syn = inner_ip(tcp(v4(10, 0, 0, 80), 40000, 80, SYN));
    // GRE with the key bit set, key 42, carrying IPv4.
    let mut gre = vec![0x20, 0x00, 0x08, 0x00, 0, 0, 0, 42];
    gre.extend_from_slice(&inner_syn);
    let inner6 = inner_ip(FrameSpec::udp(v6(0x2001, 1), v6(0x2001, 2), 5353, 53, 0).data(b"query"));
    // SCTP common header (ports 3000 -> 3001, tag 1, checksum 0), then a bare 4-byte chunk.
    let sctp = [0x0b, 0xb8, 0x0b, 0xb9, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 4];
    vec![
        (
            "valid__ipv4_ack_to_tunnels_v4".into(),
            built(tcp(v4(70, 1, 2, 3), 40001, 443, ACK)),
        ),
        (
            "valid__ipv4_udp_1200_to_web".into(),
            built(FrameSpec::udp(client, v4(10, 0, 0, 9), 40002, 9000, 0).data(&[0x5a; 1200])),
        ),
        (
            "valid__ipv4_ttl_1".into(),
            built(tcp(v4(10, 0, 0, 9), 40003, 80, SYN).ttl(1)),
        ),
        (
            "valid__ipv4_fin_to_dead_group".into(),
            built(tcp(v4(172, 16, 0, 1), 40004, 80, FIN_ACK)),
        ),
        (
            "valid__ipv4_options_sctp_to_lbkey".into(),
            built(
                FrameSpec::raw(client, v4(192, 0, 2, 7), 132, &sctp).options(&[0x94, 0x04, 0, 0]),
            ),
        ),
        (
            "valid__gre_key_ipv4_in_ipv4".into(),
            built(FrameSpec::raw(client, v4(70, 9, 9, 9), ip_proto::GRE, &gre)),
        ),
        (
            "valid__ipv6_in_ipv4_to_mixed".into(),
            built(FrameSpec::raw(
                client,
                v4(192, 168, 3, 3),
                ip_proto::IPV6,
                &inner6,
            )),
        ),
        (
            "valid__ipv6_syn_to_tunnels_v6".into(),
            built(FrameSpec::udp(v6(0x2001, 7), v6(0x2001, 0x500), 40005, 443, 0).with_tcp(SYN)),
        ),
        (
            "valid__ipv6_udp_to_tunnels_v4".into(),
            built(FrameSpec::udp(v6(0x2001, 7), v6(0x4001, 1), 40006, 53, 0).data(b"q")),
        ),
    ]
}

/// The stages of the route-churn scenario, each one input: (routes changed first, then the
/// two probe frames of [`route_probes`]). Groups by selector: 0 `web`, 5 `dead`.
pub fn route_churn_stages() -> Vec<Vec<u8>> {
    let net4 = v4(200, 1, 0, 0);
    let sub4 = v4(200, 1, 2, 0);
    let net6 = v6(0x8000, 0);
    let probes = route_probes();
    let probes = encode_addressed(probes.iter().map(|f| (0, &f[..])));
    let stage = |changes: &[Vec<u8>]| {
        let mut input = changes.concat();
        input.extend_from_slice(&probes);
        input
    };
    vec![
        // No route for either probe.
        stage(&[]),
        // Both routed to `web`.
        stage(&[route(true, net4, 16, 0), route(true, net6, 16, 0)]),
        // A more specific IPv4 route to `dead`, whose only hop failed.
        stage(&[route(true, sub4, 24, 5)]),
        // The /24 gone (IPv4 back on `web`), the IPv6 route gone.
        stage(&[route(false, sub4, 24, 0), route(false, net6, 16, 0)]),
        // The /16 gone: no route again.
        stage(&[route(false, net4, 16, 0)]),
    ]
}

/// The probe frames of [`route_churn_stages`]: a UDP packet to 200.1.2.3, another to
/// 8000:db8::1 (neither covered by the harness config's routes).
pub fn route_probes() -> [Vec<u8>; 2] {
    [
        built(FrameSpec::udp(v4(198, 51, 100, 9), v4(200, 1, 2, 3), 41000, 80, 0).data(b"r")),
        built(FrameSpec::udp(v6(0x2001, 9), v6(0x8000, 1), 41000, 80, 0).data(b"r")),
    ]
}

/// Multi-record inputs for the pipeline target: (name, input).
pub fn pipeline_scenarios() -> Vec<(String, Vec<u8>)> {
    let valid: Vec<Vec<u8>> = wire_corpus()
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, _)| n.starts_with("ok__"))
        .map(|(_, f)| f)
        .chain(extra_frames().into_iter().map(|(_, f)| f))
        .collect();
    let on_both_ports = |frames: &[Vec<u8>]| {
        encode_addressed(frames.iter().enumerate().map(|(i, f)| (i % 2, &f[..])))
    };

    // Every valid frame, twice around a long barrier (cache hits, then expiries), then again
    // after hops 1..=6 failed and came back.
    let mut mixed = on_both_ports(&valid);
    mixed.extend_from_slice(&barrier(0));
    mixed.extend(on_both_ports(&valid));
    mixed.extend_from_slice(&barrier(3));
    for hop in 0..6 {
        mixed.extend_from_slice(&hop_state(hop, 2, false));
    }
    mixed.extend(on_both_ports(&valid));
    for hop in 0..6 {
        mixed.extend_from_slice(&hop_state(hop, 0, hop % 2 == 0));
    }
    mixed.extend(on_both_ports(&valid));

    // One TCP flow to the web group: SYN, ACK, FIN, with the clock past each timeout between.
    let flow = |flags| {
        built(FrameSpec::udp(v4(198, 51, 100, 9), v4(10, 0, 0, 10), 41000, 80, 0).with_tcp(flags))
    };
    let mut lifecycle = encode_addressed([(0, &flow(SYN)[..])]);
    lifecycle.extend_from_slice(&barrier(2));
    lifecycle.extend(encode_addressed([(0, &flow(SYN)[..]), (0, &flow(ACK)[..])]));
    lifecycle.extend_from_slice(&hop_state(0, 1, false));
    lifecycle.extend(encode_addressed([
        (1, &flow(ACK)[..]),
        (0, &flow(FIN_ACK)[..]),
    ]));
    lifecycle.extend_from_slice(&barrier(2));
    lifecycle.extend(encode_addressed([(0, &flow(ACK)[..])]));
    lifecycle.extend_from_slice(&hop_state(0, 0, true));

    // More flows than the 64-entry flow cache holds, from many sources to every IPv4 route
    // (the symmetric address-only hash of tunnels-v6 needs many address pairs to reach all
    // of its hops).
    let many: Vec<Vec<u8>> = (0..80u16)
        .map(|i| {
            let first = [10, 70, 130, 192][usize::from(i % 4)];
            let second = if first == 192 { 168 } else { 0 };
            built(
                FrameSpec::udp(
                    v4(198, 51, 100, i as u8),
                    v4(first, second, (i >> 2) as u8, i as u8),
                    20000 + i,
                    4500,
                    0,
                )
                .data(b"x"),
            )
        })
        .collect();
    let crowd = on_both_ports(&many);

    // Routes added and removed between bursts, with the flows cached in between.
    let mut churn = Vec::new();
    for stage in route_churn_stages() {
        churn.extend(stage);
        churn.extend_from_slice(&barrier(0));
    }

    vec![
        ("scenario__route_churn".into(), churn),
        ("scenario__mixed_barriers_hop_failures".into(), mixed),
        ("scenario__tcp_lifecycle_timeouts".into(), lifecycle),
        ("scenario__cache_overflow".into(), crowd),
    ]
}

/// Feed lines: verbatim ExaBGP 5.0 and 4.x output of every type the decoder handles, and lines
/// it must reject. (file stem, line)
pub const FEED_LINES: &[(&str, &str)] = &[
    (
        "state_up_50",
        r#"{ "exabgp": "5.0.0", "time": 1795310632.684011, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 2, "type": "state", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "state": "up" } }"#,
    ),
    (
        "state_down_50",
        r#"{ "exabgp": "5.0.0", "time": 1795310644.5298004, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 10, "type": "state", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "state": "down", "reason": "closing connection" } }"#,
    ),
    (
        "announce_50",
        r#"{ "exabgp": "5.0.0", "time": 1795310634.8154979, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 6, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "update": { "attribute": { "origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65001]}} }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } } } } } }"#,
    ),
    (
        "withdraw_50",
        r#"{ "exabgp": "5.0.0", "time": 1795310636.7733183, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 9, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "update": { "withdraw": { "ipv4 unicast": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } } } } }"#,
    ),
    (
        "ibgp_med_community_50",
        r#"{ "exabgp": "5.0.0", "time": 1796631829.8502533, "host" : "vm", "pid" : 20727, "ppid" : 20722, "counter": 5, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65000 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "update": { "attribute": { "origin": "incomplete", "as-path": {"0": {"element": "as-sequence", "value": [65010, 65011]}}, "med": 50, "local-preference": 100, "community": [ [ 65535, 0 ], [ 65001, 100 ] ] }, "announce": { "ipv4 unicast": { "198.51.100.3": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.3" }, { "nlri": "192.0.2.11/32", "path-information": "0.0.0.3" } ] } } } } } }"#,
    ),
    (
        "announce_v6_50",
        r#"{ "exabgp": "5.0.0", "time": 1795310634.8, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 6, "type": "update", "neighbor": { "address": { "local": "::1", "peer": "::2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "update": { "attribute": { "origin": "egp", "as-path": {"0": {"element": "as-sequence", "value": [65001]}, "1": {"element": "as-set", "value": [65002, 65003]}} }, "announce": { "ipv6 unicast": { "2001:db8:ffff::1": [ { "nlri": "2001:db8::10/128", "path-information": "0.0.0.1" } ] } } } } } }"#,
    ),
    (
        "announce_42",
        r#"{ "exabgp": "4.0.1", "time": 1678544034.886104, "host" : "vm", "pid" : 3167756, "ppid" : 1, "counter": 4, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 } , "direction": "receive", "message": { "update": { "attribute": { "origin": "igp", "as-path": [ 65001, 65002 ], "confederation-path": [], "med": 7, "local-preference": 200 }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32" } ] } } } } } }"#,
    ),
    (
        "eor_v4_50",
        r#"{ "exabgp": "5.0.0", "time": 1795310634.8, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 6, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "eor": { "afi" : "ipv4", "safi" : "unicast" } } } }"#,
    ),
    (
        "sent_update_50",
        r#"{ "exabgp": "5.0.0", "time": 1795310634.8, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 6, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "direction": "send", "message": { "update": { "withdraw": { "ipv4 unicast": [ { "nlri": "192.0.2.10/32" } ] } } } } }"#,
    ),
    (
        "notification_shutdown",
        r#"{ "exabgp": "5.0.0", "time": 1795310650.1, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 11, "type": "notification", "notification": "shutdown" }"#,
    ),
    ("bad__done", "done"),
    (
        "bad__prefix",
        r#"{ "exabgp": "5.0.0", "type": "update", "neighbor": { "address": { "peer": "127.0.0.2" }, "direction": "receive", "message": { "update": { "withdraw": { "ipv4 unicast": [ { "nlri": "192.0.2.300/33" } ] } } } } }"#,
    ),
];

/// Control-socket requests: one line per command, then malformed ones. (file stem, line)
pub const REQUESTS: &[(&str, &str)] = &[
    ("routes", r#"{"cmd":"routes"}"#),
    ("route", r#"{"cmd":"route","prefix":"10.0.0.0/8"}"#),
    ("nexthops", r#"{"cmd":"nexthops"}"#),
    ("flows", r#"{"cmd":"flows","top":10}"#),
    ("stats", r#"{"cmd":"stats"}"#),
    (
        "trace",
        r#"{"cmd":"trace","src":"192.0.2.1","dst":"2001:db8::1","proto":6,"sport":1234,"dport":80}"#,
    ),
    ("drain", r#"{"cmd":"drain","hop":"10.1.0.1"}"#),
    ("undrain", r#"{"cmd":"undrain","hop":"2001:db8::2"}"#),
    ("clear", r#"{"cmd":"clear","prefix":"2001:db8::/32"}"#),
    (
        "route_add",
        r#"{"cmd":"route-add","prefix":"198.51.100.0/24","via":["10.1.0.1","10.1.0.2"]}"#,
    ),
    (
        "route_del",
        r#"{"cmd":"route-del","prefix":"198.51.100.0/24"}"#,
    ),
    (
        "what_if_remove",
        r#"{"cmd":"what-if-remove","hop":"10.1.0.1"}"#,
    ),
    (
        "what_if_add",
        r#"{"cmd":"what-if-add","prefix":"10.0.0.0/8","hop":"10.1.0.3"}"#,
    ),
    ("peers", r#"{"cmd":"peers"}"#),
    ("convergence", r#"{"cmd":"convergence"}"#),
    ("route_events", r#"{"cmd":"route-events","last":5}"#),
    ("reload", r#"{"cmd":"reload"}"#),
    (
        "capture",
        r#"{"cmd":"capture","port":"uplink","rx":true,"drops":true,"count":10,"seconds":5,"snaplen":128,"filter":"udp"}"#,
    ),
    ("bad__unknown_field", r#"{"cmd":"routes","extra":1}"#),
    ("bad__unknown_cmd", r#"{"cmd":"reboot"}"#),
];

/// Configs the loader must reject, each for a different layer (TOML syntax, schema,
/// validation). (file stem, text)
pub const BAD_CONFIGS: &[(&str, &str)] = &[
    ("bad__syntax", "[instance\nname = \"x\"\n"),
    ("bad__unknown_key", "[instance]\nname = \"x\"\nbogus = 1\n"),
    (
        "bad__bad_mac",
        "[[port]]\nname = \"p\"\nkind = \"memory\"\nmac = \"zz\"\n",
    ),
    (
        "bad__unknown_port",
        "[[worker]]\ncore = 0\nports = [\"nope\"]\n",
    ),
];

/// The example configs under `configs/`: (file stem, text), sorted by name.
pub fn example_configs() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(crate_dir().join("../configs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            out.push((stem(&path), fs::read(&path)?));
        }
    }
    out.sort();
    Ok(out)
}

/// Every generated seed: (target, file name, bytes).
pub fn generated() -> io::Result<Vec<(&'static str, String, Vec<u8>)>> {
    let mut out = Vec::new();
    let frames = wire_corpus()?
        .into_iter()
        .chain(extra_frames())
        .collect::<Vec<_>>();
    for (name, frame) in &frames {
        out.push(("parse_frame", format!("{name}.bin"), frame.clone()));
        out.push((
            "pipeline",
            format!("{name}.bin"),
            encode_addressed([(0, &frame[..])]),
        ));
    }
    for (name, input) in pipeline_scenarios() {
        out.push(("pipeline", format!("{name}.bin"), input));
    }
    for (name, line) in FEED_LINES {
        out.push((
            "feed_line",
            format!("{name}.json"),
            line.as_bytes().to_vec(),
        ));
    }
    for (name, line) in REQUESTS {
        out.push((
            "ctl_request",
            format!("{name}.json"),
            line.as_bytes().to_vec(),
        ));
    }
    for (name, text) in example_configs()? {
        out.push(("config", format!("{name}.toml"), text));
    }
    out.push((
        "config",
        "fuzz_pipeline.toml".into(),
        crate::harness::CONFIG.as_bytes().to_vec(),
    ));
    for (name, text) in BAD_CONFIGS {
        out.push(("config", format!("{name}.toml"), text.as_bytes().to_vec()));
    }
    Ok(out)
}

/// Writes every generated seed under `fuzz/seeds/`.
pub fn write_all() -> io::Result<usize> {
    let seeds = generated()?;
    for (target, name, bytes) in &seeds {
        let dir = crate_dir().join("seeds").join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)?;
    }
    Ok(seeds.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecmp_wire::parse_frame;

    #[test]
    fn extra_frames_parse_and_tunnels_have_inner_packets() {
        for (name, f) in extra_frames() {
            let m = parse_frame(&f).unwrap_or_else(|e| panic!("{name}: {e}"));
            let inner = crate::wire_checks::check_accepted(&f, &m);
            let tunnel = name.contains("gre") || name.contains("in_ipv4");
            assert_eq!(inner.is_some(), tunnel, "{name}");
        }
    }

    #[test]
    fn corpus_decodes_with_every_verdict() {
        let corpus = wire_corpus().expect("corpus readable");
        assert!(corpus.iter().any(|(n, _)| n.starts_with("ok__")));
        assert!(corpus.iter().any(|(n, _)| n.starts_with("truncated__")));
        assert_eq!(decode_hex("# c\n0a 0B\n"), Ok(vec![0x0a, 0x0b]));
        assert!(decode_hex("abc").is_err());
    }

    #[test]
    fn seed_dirs_match_their_sources() {
        if std::env::var_os("ECMPFWD_WRITE_SEEDS").is_some() {
            write_all().expect("seeds written");
        }
        let generated = generated().expect("sources readable");
        for target in TARGETS {
            let on_disk = seed_dir(target).expect("seed dir readable");
            for (t, name, bytes) in generated.iter().filter(|(t, _, _)| *t == target) {
                let found = on_disk.iter().find(|(n, _)| n == name);
                assert_eq!(
                    found.map(|(_, b)| b),
                    Some(bytes),
                    "{t}/{name} missing or stale: run ECMPFWD_WRITE_SEEDS=1 cargo test"
                );
            }
        }
    }
}
