//! An independent reading of the golden outputs: every expected output frame goes into a pcap
//! and tshark (Wireshark's dissectors, not ours) must decode it without a malformed packet or an
//! expert warning, with every IPv4 header checksum and every non-zero UDP checksum and TCP
//! checksum good, and with the encapsulation fields the golden config asks for. The expected
//! field values come from the config and the input frame, never from the output.
//!
//! tshark has no GUE dissector: the GUE base header is checked here, and the packet after it is
//! handed to tshark as a second record behind an Ethernet header (`-d udp.port==6080,ip` would
//! make tshark read the 4-byte GUE header as an IP header and call it malformed).
//!
//! A missing tshark fails the test (scripts/test installs it); it is never skipped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecmp_io::pcap::PcapWriter;
use ecmp_tables::nexthop::{Action, EncapKind};
use ecmp_tests::{Expected, GoldenCase, golden_cases, golden_config};
use ecmp_wire::{IpVersion, ethertype, gue, ip_proto, ipv4, ipv6, parse_frame, udp};
use ecmpfwd::config::Config;

/// tshark normally reads a few hundred packets in about a second; this only stops a hang.
const TSHARK_TIMEOUT: Duration = Duration::from_secs(60);
/// `_ws.expert.severity` of a warning (PI_WARN); errors (PI_ERROR) are above it.
const EXPERT_WARN: u32 = 0x0060_0000;
/// tshark's `*.checksum.status` values.
const CHECKSUM_GOOD: &str = "1";
const CHECKSUM_UNVERIFIED: &str = "2";
const CHECKSUM_NOT_PRESENT: &str = "3";
/// Expected status of an outer UDP checksum over IPv4, which may be sent as zero (RFC 768;
/// RFC 7348, RFC 7510 and GUE allow it): good when present, "not present" when zero.
const CHECKSUM_OPTIONAL: &str = "1 or 3";

/// The fields asked of tshark, in column order.
const FIELDS: [&str; 26] = [
    "frame.number",
    "_ws.malformed",
    "_ws.expert.severity",
    "_ws.expert.message",
    "eth.src",
    "eth.dst",
    "vlan.id",
    "ip.src",
    "ip.dst",
    "ip.proto",
    "ip.ttl",
    "ip.checksum.status",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.nxt",
    "ipv6.hlim",
    "udp.dstport",
    "udp.checksum",
    "udp.checksum.status",
    "tcp.checksum.status",
    "gre.key",
    "gre.proto",
    "vxlan.vni",
    "mpls.label",
    "mpls.bottom",
    "mpls.ttl",
];

/// Fields compared exactly with what the config and input predict (outer occurrence first).
const EXACT: [&str; 20] = [
    "eth.src",
    "eth.dst",
    "vlan.id",
    "ip.src",
    "ip.dst",
    "ip.proto",
    "ip.ttl",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.nxt",
    "ipv6.hlim",
    "udp.dstport",
    "gre.key",
    "gre.proto",
    "vxlan.vni",
    "mpls.label",
    "mpls.bottom",
    "mpls.ttl",
    "ip.checksum.status",
    "tcp.checksum.status",
];

type Fields = BTreeMap<&'static str, Vec<String>>;

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The inner packet as the input carried it.
struct Inner {
    version: IpVersion,
    src: IpAddr,
    dst: IpAddr,
    /// The IP header's protocol / next-header field (44 for IPv6 with a fragment header).
    next: u8,
    /// TTL after forwarding.
    ttl: u8,
    /// The L4 protocol, when tshark sees an L4 header (not in a later fragment).
    l4: Option<u8>,
    /// A fragment: tshark cannot verify an L4 checksum over part of a datagram.
    fragment: bool,
}

impl Inner {
    fn of(case: &GoldenCase) -> Inner {
        let m = parse_frame(&case.input).expect("golden input parses");
        let l3 = usize::from(m.l3_offset);
        let next = match m.version {
            IpVersion::V4 => case.input[l3 + 9],
            IpVersion::V6 => case.input[l3 + 6],
        };
        Inner {
            version: m.version,
            src: m.src_ip(),
            dst: m.dst_ip(),
            next,
            ttl: m.ttl - 1,
            l4: (!m.is_later_fragment()).then_some(m.protocol),
            fragment: m.fragment,
        }
    }

    /// Adds the inner IP header's and L4 header's fields.
    fn expect_into(&self, f: &mut Fields) {
        let (src, dst, proto, ttl) = match self.version {
            IpVersion::V4 => ("ip.src", "ip.dst", "ip.proto", "ip.ttl"),
            IpVersion::V6 => ("ipv6.src", "ipv6.dst", "ipv6.nxt", "ipv6.hlim"),
        };
        push(f, src, self.src);
        push(f, dst, self.dst);
        push(f, proto, self.next);
        push(f, ttl, self.ttl);
        let sum = if self.fragment {
            CHECKSUM_UNVERIFIED
        } else {
            CHECKSUM_GOOD
        };
        match self.l4 {
            Some(ip_proto::UDP) => {
                push(f, "udp.dstport", 4242);
                push(f, "udp.checksum.status", sum);
            }
            Some(ip_proto::TCP) => push(f, "tcp.checksum.status", sum),
            _ => {}
        }
    }
}

fn push(f: &mut Fields, field: &'static str, v: impl ToString) {
    f.entry(field).or_default().push(v.to_string());
}

/// One pcap record and what tshark must find in it.
struct Record {
    case: String,
    frame: Vec<u8>,
    expect: Fields,
}

impl Record {
    /// Every IPv4 header expected (outer and inner) must have a good header checksum.
    fn new(case: String, frame: Vec<u8>, mut expect: Fields) -> Record {
        let v4_headers = expect.get("ip.src").map_or(0, Vec::len);
        expect.insert(
            "ip.checksum.status",
            vec![CHECKSUM_GOOD.to_owned(); v4_headers],
        );
        expect.entry("udp.checksum.status").or_default();
        Record {
            case,
            frame,
            expect,
        }
    }
}

fn hop_action(cfg: &Config, case: &GoldenCase) -> (Action, [u8; 6], [u8; 6]) {
    let hop_name = case.hop().expect("a forwarded case names its hop");
    let hop = &cfg.nexthops[cfg.nexthop_index(hop_name).expect("hop in config")];
    (
        hop.action.into(),
        hop.mac.expect("golden configs give every hop a MAC").0,
        cfg.ports[hop.port].port_info().mac,
    )
}

/// The records for one forwarded case: its output, plus the GUE payload as its own frame.
fn records(cfg: &Config, case: &GoldenCase, out: &[u8]) -> Vec<Record> {
    let inner = Inner::of(case);
    let (action, hop_mac, port_mac) = hop_action(cfg, case);
    let mut f = Fields::new();
    for field in EXACT {
        f.insert(field, Vec::new());
    }
    push(&mut f, "eth.src", mac(port_mac));
    push(&mut f, "eth.dst", mac(hop_mac));
    let e = match action {
        Action::Rewrite => {
            inner.expect_into(&mut f);
            return vec![Record::new(case.name.clone(), out.to_vec(), f)];
        }
        Action::Encap(e) => e,
    };

    let inner_proto = match inner.version {
        IpVersion::V4 => ip_proto::IPV4,
        IpVersion::V6 => ip_proto::IPV6,
    };
    let outer_proto = match e.kind {
        EncapKind::IpIp => inner_proto,
        EncapKind::Gre { .. } => ip_proto::GRE,
        _ => ip_proto::UDP,
    };
    let (outer_hdr, names) = match e.dst {
        IpAddr::V4(_) => (
            ipv4::MIN_HEADER_LEN,
            ("ip.src", "ip.dst", "ip.proto", "ip.ttl"),
        ),
        IpAddr::V6(_) => (
            ipv6::HEADER_LEN,
            ("ipv6.src", "ipv6.dst", "ipv6.nxt", "ipv6.hlim"),
        ),
    };
    push(&mut f, names.0, e.src);
    push(&mut f, names.1, e.dst);
    push(&mut f, names.2, outer_proto);
    push(&mut f, names.3, 64);
    let outer_udp_sum = if e.dst.is_ipv4() {
        CHECKSUM_OPTIONAL
    } else {
        CHECKSUM_GOOD
    };
    let inner_ethertype = match inner.version {
        IpVersion::V4 => ethertype::IPV4,
        IpVersion::V6 => ethertype::IPV6,
    };
    let mut extra = Vec::new();
    match e.kind {
        EncapKind::IpIp => {}
        EncapKind::Gre { key } => {
            push(&mut f, "gre.proto", format!("{inner_ethertype:#06x}"));
            if let Some(k) = key {
                push(&mut f, "gre.key", format!("{k:#010x}"));
            }
        }
        EncapKind::Vxlan {
            vni,
            inner_dst_mac,
            port,
        } => {
            push(&mut f, "udp.dstport", port);
            push(&mut f, "udp.checksum.status", outer_udp_sum);
            push(&mut f, "vxlan.vni", vni);
            push(&mut f, "eth.src", mac(port_mac));
            push(&mut f, "eth.dst", mac(inner_dst_mac.unwrap_or(hop_mac)));
        }
        EncapKind::MplsUdp { label, port } => {
            push(&mut f, "udp.dstport", port);
            push(&mut f, "udp.checksum.status", outer_udp_sum);
            push(&mut f, "mpls.label", label);
            push(&mut f, "mpls.bottom", 1);
            push(&mut f, "mpls.ttl", inner.ttl);
        }
        EncapKind::Gue { port } => {
            push(&mut f, "udp.dstport", port);
            push(&mut f, "udp.checksum.status", outer_udp_sum);
            // tshark shows the UDP payload as data; check the GUE header here and give tshark
            // the packet behind it as a frame of its own.
            let u = 14 + outer_hdr;
            let g = u + udp::HEADER_LEN;
            let packet = &out[g + gue::BASE_HEADER_LEN..];
            assert_eq!(
                &out[g..g + gue::BASE_HEADER_LEN],
                &[0, inner_proto, 0, 0],
                "{}: GUE header (version 0, C 0, hlen 0, proto, no flags)",
                case.name
            );
            let udp_len = usize::from(u16::from_be_bytes([out[u + 4], out[u + 5]]));
            assert_eq!(
                udp_len,
                udp::HEADER_LEN + gue::BASE_HEADER_LEN + packet.len(),
                "{}: UDP length",
                case.name
            );
            let mut frame = Vec::with_capacity(14 + packet.len());
            frame.extend_from_slice(&hop_mac);
            frame.extend_from_slice(&port_mac);
            frame.extend_from_slice(&inner_ethertype.to_be_bytes());
            frame.extend_from_slice(packet);
            let mut g = Fields::new();
            for field in EXACT {
                g.insert(field, Vec::new());
            }
            push(&mut g, "eth.src", mac(port_mac));
            push(&mut g, "eth.dst", mac(hop_mac));
            inner.expect_into(&mut g);
            extra.push(Record::new(
                format!("{} (GUE payload)", case.name),
                frame,
                g,
            ));
        }
    }
    if !matches!(e.kind, EncapKind::Gue { .. }) {
        inner.expect_into(&mut f);
    }
    let mut v = vec![Record::new(case.name.clone(), out.to_vec(), f)];
    v.extend(extra);
    v
}

/// Runs tshark on `pcap` with stdout to `out`, killing it past [`TSHARK_TIMEOUT`].
fn run_tshark(pcap: &Path, out: &Path) -> String {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n")
        .arg("-r")
        .arg(pcap)
        .args(["-o", "ip.check_checksum:TRUE"])
        .args(["-o", "udp.check_checksum:TRUE"])
        .args(["-o", "tcp.check_checksum:TRUE"])
        // Each record is judged on its own: no reassembly or TCP analysis across cases that
        // happen to share addresses and identifiers.
        .args(["-o", "ip.defragment:FALSE"])
        .args(["-o", "ipv6.defragment:FALSE"])
        .args(["-o", "tcp.analyze_sequence_numbers:FALSE"])
        .args(["-d", "udp.port==6635,mpls"])
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"])
        .args(["-E", "aggregator=;"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let stdout = File::create(out).expect("tshark output file");
    let mut child = match cmd.stdout(stdout).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "tshark is not installed: `apt-get install tshark` (Debian package `tshark`; \
             scripts/test installs it). This test never skips."
        ),
        Err(e) => panic!("cannot run tshark: {e}"),
    };
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("waiting for tshark") {
            Some(s) => break s,
            None if start.elapsed() > TSHARK_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tshark did not finish within {TSHARK_TIMEOUT:?}");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(status.success(), "tshark failed ({status}): {stderr}");
    std::fs::read_to_string(out).expect("tshark output")
}

#[test]
fn tshark_decodes_every_golden_output_as_the_config_says() {
    let cfg = golden_config().expect("golden config");
    let mut recs = Vec::new();
    for case in golden_cases() {
        if let Expected::Tx { frame, .. } = &case.expected {
            recs.extend(records(&cfg, &case, frame));
        }
    }
    assert!(recs.len() > 150, "only {} records", recs.len());

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let pcap = dir.join(format!("golden-outputs-{}.pcap", std::process::id()));
    let text = dir.join(format!("golden-outputs-{}.txt", std::process::id()));
    let mut w = PcapWriter::create(&pcap).expect("pcap");
    for (i, r) in recs.iter().enumerate() {
        w.write_packet(i as u64 * 1_000, &r.frame)
            .expect("pcap record");
    }
    w.into_inner().expect("pcap flush");
    let output = run_tshark(&pcap, &text);

    let rows: Vec<&str> = output.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), recs.len(), "tshark rows vs records");
    let mut failures = Vec::new();
    for (i, (row, rec)) in rows.iter().zip(&recs).enumerate() {
        let cols: Vec<&str> = row.split('|').collect();
        assert_eq!(cols.len(), FIELDS.len(), "row {}: {row}", i + 1);
        let got: BTreeMap<&str, Vec<&str>> = FIELDS
            .iter()
            .zip(&cols)
            .map(|(f, c)| (*f, c.split(';').filter(|v| !v.is_empty()).collect()))
            .collect();
        let mut fail =
            |what: String| failures.push(format!("{} (record {}): {what}", rec.case, i + 1));

        if got["frame.number"] != [(i + 1).to_string()] {
            fail(format!("row out of order: {row}"));
            continue;
        }
        if !got["_ws.malformed"].is_empty() {
            fail(format!("malformed: {:?}", got["_ws.expert.message"]));
        }
        for (sev, msg) in got["_ws.expert.severity"].iter().zip(
            got["_ws.expert.message"]
                .iter()
                .chain(std::iter::repeat(&"?")),
        ) {
            if sev.parse::<u32>().map_or(true, |s| s >= EXPERT_WARN) {
                fail(format!("expert info of severity {sev}: {msg}"));
            }
        }
        for field in EXACT {
            let want = &rec.expect[field];
            if got[field] != *want {
                fail(format!(
                    "{field}: tshark {:?}, expected {want:?}",
                    got[field]
                ));
            }
        }
        // UDP checksums: as predicted; where zero is allowed, "not present" exactly when zero.
        let sums = &got["udp.checksum"];
        let status = &got["udp.checksum.status"];
        let want = &rec.expect["udp.checksum.status"];
        let ok = sums.len() == want.len()
            && status.len() == want.len()
            && sums.iter().zip(status).zip(want).all(|((sum, st), w)| {
                if w == CHECKSUM_OPTIONAL {
                    *st == if *sum == "0x0000" {
                        CHECKSUM_NOT_PRESENT
                    } else {
                        CHECKSUM_GOOD
                    }
                } else {
                    st == w
                }
            });
        if !ok {
            fail(format!(
                "udp checksums {sums:?}: status {status:?}, expected {want:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} tshark mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let _ = std::fs::remove_file(&pcap);
    let _ = std::fs::remove_file(&text);
}
