//! Encapsulating next hops in `ecmpfwd run` (`scripts/lab`, needs root and tshark): the VIP's
//! only next hop is backend 1 with an `encap` action. VXLAN is decapsulated for real by a kernel
//! VXLAN device in backend 1; every kind is also checked by an independent decoder (tshark, or
//! byte checks for GUE, which tshark cannot dissect) on what arrived at backend 1's b0.

mod lab_common;

use std::path::Path;

use lab_common::*;

const SENT: u64 = 1000;

/// Writes the sink's hex dump lines of tunnelled frames from `src_mac` as a pcap file (Ethernet); returns
/// the frames. The frames are shorter than the dump's 128-byte cut, so they are whole.
fn dump_to_pcap(dump: &Path, src_mac: &[u8], pcap: &Path) -> Vec<Vec<u8>> {
    let frames: Vec<Vec<u8>> = std::fs::read_to_string(dump)
        .expect("dump")
        .lines()
        .map(unhex)
        // The forwarder namespace's kernel may also send on fb1 (e.g. IPv6 multicast listener
        // reports right after the link came up): only IPv4 from fb1's address to backend 1's.
        .filter(|f| {
            f.len() >= 34
                && f[6..12] == *src_mac
                && f[12..14] == [0x08, 0x00]
                && f[26..34] == [198, 18, 1, 254, 198, 18, 1, 1]
        })
        .collect();
    let mut out = Vec::new();
    // Magic, version 2.4 (two little-endian u16s), zone, sigfigs, snaplen, Ethernet.
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        assert!(f.len() < 128, "frame cut by the dump: {} bytes", f.len());
        for w in [0u32, i as u32, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    std::fs::write(pcap, out).expect("write pcap");
    frames
}

/// tshark's view of every frame: (protocols, IP checksum statuses, malformed marker).
fn tshark(pcap: &Path, extra: &[&str]) -> Vec<(String, String, String)> {
    let out = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args(["-o", "ip.check_checksum:TRUE"])
        .args(extra)
        .args(["-T", "fields", "-E", "separator=|"])
        .args(["-e", "frame.protocols", "-e", "ip.checksum.status"])
        .args(["-e", "_ws.malformed"])
        .output()
        .expect("run tshark (scripts/test installs it)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut it = l.split('|').map(str::to_owned);
            (
                it.next().unwrap_or_default(),
                it.next().unwrap_or_default(),
                it.next().unwrap_or_default(),
            )
        })
        .collect()
}

/// Starts the lab with backend 1 as the VIP's only next hop, encapsulating with `encap` (the
/// body of an inline table); sends `SENT` UDP packets over 50 flows to the VIP; returns the
/// frames that left fb1 as seen on b1's b0 (and written to `pcap`). `setup` runs in the lab
/// before the forwarder starts; `inner` optionally adds a sink on another interface of backend
/// 1 whose report is returned too.
fn run_encap(
    tag: &str,
    encap: &str,
    setup: impl FnOnce(&Lab),
    inner: Option<&str>,
    pcap: &Path,
) -> (Vec<Vec<u8>>, Option<serde_json::Value>) {
    let lab = Lab::up(tag, 4);
    setup(&lab);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let opts = ConfigOpts {
        b1_extra: format!("encap = {{ {encap} }}\n"),
        vip_members: Some(vec![1]),
        ..ConfigOpts::default()
    };
    let cfg = write(dir.path(), "c.toml", &config(&opts, &ctl));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);

    let dump = dir.path().join("b0.hex");
    let outer = Sink::start_with(
        &lab.b(1),
        "b0",
        dir.path(),
        "outer",
        &["--dump", dump.to_str().expect("path")],
    );
    let inner_sink = inner.map(|iface| Sink::start(&lab.b(1), iface, dir.path(), "inner"));
    send(&lab, "198.18.0.1", VIP4, 50, SENT, &["--dst-port", "9000"]);
    fw.wait_tx(&["fb1".to_owned()], SENT);
    let inner_report = inner_sink.map(Sink::finish);
    outer.finish();
    let frames = dump_to_pcap(&dump, &mac_bytes(lab.env("LAB_FB1_MAC")), pcap);
    assert_eq!(frames.len() as u64, SENT, "frames from fb1 at b0");
    for f in &frames {
        assert_eq!(
            f[0..6],
            mac_bytes(lab.env("LAB_B1_MAC"))[..],
            "outer dst MAC"
        );
        check_outer_ipv4(f);
    }
    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
    (frames, inner_report)
}

/// The outer IPv4 header: fb1's address to backend 1's, TTL 64, valid header checksum.
fn check_outer_ipv4(f: &[u8]) {
    assert_eq!(f[12..14], [0x08, 0x00]);
    let ip: &[u8; 20] = f[14..34].try_into().expect("ip");
    assert!(
        ecmp_wire::checksum::verify_ipv4_header(ip),
        "outer checksum"
    );
    assert_eq!(ip[8], 64, "outer TTL");
    assert_eq!(ip[12..16], [198, 18, 1, 254], "outer source");
    assert_eq!(ip[16..20], [198, 18, 1, 1], "outer destination");
}

/// Every frame dissected as `want`, with good IP checksums and nothing malformed.
fn assert_dissected(pcap: &Path, extra: &[&str], want: &str) {
    let rows = tshark(pcap, extra);
    assert_eq!(rows.len() as u64, SENT);
    for (protocols, csum, malformed) in rows {
        assert_eq!(protocols, want);
        assert!(
            csum.split(',').all(|s| s == "1"),
            "IP checksum status {csum:?} ({protocols})"
        );
        assert!(malformed.is_empty(), "malformed: {protocols}");
    }
}

#[test]
fn vxlan_is_decapsulated_by_the_kernel_of_backend_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("vxlan.pcap");
    let inner_mac = "02:ef:00:00:01:aa";
    let (frames, inner) = run_encap(
        "lev",
        &format!(
            "kind = \"vxlan\", src = \"198.18.1.254\", vni = 4242, inner_mac = \"{inner_mac}\""
        ),
        |lab| {
            let b1 = lab.b(1);
            lab.sh(
                &b1,
                &[
                    "ip",
                    "link",
                    "add",
                    "vx0",
                    "address",
                    inner_mac,
                    "type",
                    "vxlan",
                    "id",
                    "4242",
                    "local",
                    "198.18.1.1",
                    "dstport",
                    "4789",
                    "nolearning",
                ],
            );
            lab.sh(&b1, &["ip", "addr", "add", "198.18.250.1/24", "dev", "vx0"]);
            lab.sh(
                &b1,
                &["sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/vx0/rp_filter"],
            );
            lab.sh(&b1, &["ip", "link", "set", "vx0", "up"]);
        },
        Some("vx0"),
        &pcap,
    );
    // The kernel took every packet out of its tunnel: the inner frames, counted by their tags.
    let inner = inner.expect("inner report");
    assert_eq!(inner["packets"], SENT, "{inner}");
    assert_eq!(inner["flows"].as_object().expect("flows").len(), 50);
    let f = unhex(inner["first_packet"].as_str().expect("first_packet"));
    assert_eq!(f[0..6], mac_bytes(inner_mac)[..], "inner dst MAC");
    check_ipv4(&f, 63, 17);
    // The outer UDP header: port 4789, VXLAN header with the I flag and VNI 4242.
    let f = &frames[0];
    assert_eq!(f[23], 17);
    assert_eq!(u16::from_be_bytes([f[36], f[37]]), 4789);
    assert_eq!(f[42..46], [0x08, 0, 0, 0]);
    assert_eq!(f[46..50], [0x00, 0x10, 0x92, 0x00]);
    assert_dissected(
        &pcap,
        &[],
        "eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:udp:data",
    );
}

#[test]
fn ip_in_ip_dissects_as_ip_in_ip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("ipip.pcap");
    let (frames, _) = run_encap(
        "lei",
        "kind = \"ipip\", src = \"198.18.1.254\"",
        |_| {},
        None,
        &pcap,
    );
    assert_eq!(frames[0][23], 4, "outer protocol IPIP");
    let mut inner = frames[0][..14].to_vec();
    inner.extend_from_slice(&frames[0][34..]);
    check_ipv4(&inner, 63, 17);
    assert_dissected(&pcap, &[], "eth:ethertype:ip:ip:udp:data");
}

#[test]
fn gre_with_key_dissects_as_gre() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("gre.pcap");
    let (frames, _) = run_encap(
        "leg",
        "kind = \"gre\", src = \"198.18.1.254\", key = 77",
        |_| {},
        None,
        &pcap,
    );
    let f = &frames[0];
    assert_eq!(f[23], 47, "outer protocol GRE");
    // K flag, protocol IPv4, key 77.
    assert_eq!(f[34..42], [0x20, 0x00, 0x08, 0x00, 0, 0, 0, 77]);
    assert_dissected(&pcap, &[], "eth:ethertype:ip:gre:ip:udp:data");
    let keys = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&pcap)
        .args(["-T", "fields", "-e", "gre.key"])
        .output()
        .expect("tshark");
    let text = String::from_utf8_lossy(&keys.stdout);
    assert!(
        text.lines().all(|l| l.trim() == "0x0000004d"),
        "GRE keys: {text}"
    );
}

#[test]
fn gue_variant_0_carries_the_inner_packet_after_its_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("gue.pcap");
    let (frames, _) = run_encap(
        "leu",
        "kind = \"gue\", src = \"198.18.1.254\", udp_port = 6080",
        |_| {},
        None,
        &pcap,
    );
    for f in &frames {
        assert_eq!(f[23], 17);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 6080, "GUE port");
        let udp_len = usize::from(u16::from_be_bytes([f[38], f[39]]));
        assert_eq!(udp_len, f.len() - 34, "UDP length");
        // Version 0, C 0, no optional fields, protocol 4 (IPv4), no flags.
        assert_eq!(f[42..46], [0x00, 0x04, 0x00, 0x00]);
        let mut inner = f[..14].to_vec();
        inner.extend_from_slice(&f[46..]);
        check_ipv4(&inner, 63, 17);
    }
    // tshark has no GUE dissector: the outer headers must still be well formed.
    assert_dissected(&pcap, &[], "eth:ethertype:ip:udp:data");
}

#[test]
fn mpls_over_udp_dissects_as_mpls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mpls.pcap");
    let (frames, _) = run_encap(
        "lem",
        "kind = \"mpls-udp\", src = \"198.18.1.254\", label = 1000",
        |_| {},
        None,
        &pcap,
    );
    let f = &frames[0];
    assert_eq!(u16::from_be_bytes([f[36], f[37]]), 6635);
    // Label 1000, TC 0, bottom of stack, TTL 63 (the inner one, decremented).
    let entry = u32::from_be_bytes(f[42..46].try_into().expect("entry"));
    assert_eq!(entry >> 12, 1000);
    assert_eq!(entry & 0x100, 0x100);
    assert_eq!(entry & 0xff, 63);
    let rows = tshark(&pcap, &[]);
    assert_eq!(rows.len() as u64, SENT);
    for (protocols, _, malformed) in &rows {
        assert!(
            protocols.starts_with("eth:ethertype:ip:udp:mpls:") && protocols.contains(":ip:udp"),
            "{protocols}"
        );
        assert!(malformed.is_empty(), "malformed: {protocols}");
    }
}
