//! `ecmpfwd run` over a real veth lab (`scripts/lab`, needs root) with VLAN-tagged traffic from
//! the client: 802.1ad + 802.1Q (QinQ) and 802.1Q-in-802.1Q frames reach ecmpfwd through its XDP
//! program instead of the kernel and leave for the backends untagged (the rewrite strips the
//! tags, README "What a packet goes through"); a QinQ frame the parser rejects is counted by
//! its drop reason.

mod lab_common;

use std::io::Write;
use std::process::{Command, Stdio};

use ecmp_testkit::frames::{FrameSpec, TPID_QINQ, TPID_VLAN};
use lab_common::*;
use serde_json::Value;

const BACKENDS: u32 = 2;
/// Packets of each tagged round.
const SENT: u64 = 600;
/// Corrupt QinQ frames sent raw.
const BAD: u64 = 25;

/// Sends `SENT` packets over 60 flows from the client to `dst` behind the tags `vlans`
/// (`TPID:VID`, outermost first) and returns the backends' sinks' reports; `base` is what the
/// backend ports had sent before.
fn tagged_round(
    lab: &Lab,
    fw: &Forwarder,
    dir: &std::path::Path,
    round: &str,
    base: u64,
    (src, dst): (&str, &str),
    vlans: [&str; 2],
) -> Vec<Value> {
    let sinks: Vec<Sink> = (1..=BACKENDS)
        .map(|i| Sink::start(&lab.b(i), "b0", dir, &format!("{round}-b{i}")))
        .collect();
    send(
        lab,
        src,
        dst,
        60,
        SENT,
        &["--vlan", vlans[0], "--vlan", vlans[1], "--size", "160"],
    );
    fw.wait_tx(&backend_ports(BACKENDS), base + SENT);
    sinks.into_iter().map(Sink::finish).collect()
}

/// Every flow arrived, spread over both backends, and each backend's first frame is untagged,
/// addressed from its forwarder port to it, one hop older, with valid checksums.
fn check_untagged(lab: &Lab, reports: &[Value], v6: bool) {
    let packets: Vec<u64> = reports
        .iter()
        .map(|r| r["packets"].as_u64().expect("packets"))
        .collect();
    assert_eq!(packets.iter().sum::<u64>(), SENT, "{reports:?}");
    assert!(packets.iter().all(|&n| n > 0), "{reports:?}");
    assert_eq!(single_backend(&flow_map(reports)).len(), 60);
    for (i, r) in reports.iter().enumerate() {
        let b = i + 1;
        let f = unhex(r["first_packet"].as_str().expect("first_packet"));
        assert_eq!(
            f[0..6],
            mac_bytes(lab.env(&format!("LAB_B{b}_MAC")))[..],
            "backend {b}: dst MAC"
        );
        assert_eq!(
            f[6..12],
            mac_bytes(lab.env(&format!("LAB_FB{b}_MAC")))[..],
            "backend {b}: src MAC"
        );
        // check_ipv4/check_ipv6 read the EtherType at 12: IP there means no tag is left.
        if v6 {
            check_ipv6(&f, 63, 17);
        } else {
            check_ipv4(&f, 63, 17);
        }
    }
}

/// Sends `frames` out of the client's cl0 as they are (a raw packet socket, from Python: the
/// tests of this crate hold no unsafe code).
fn send_raw(lab: &Lab, frames: &[Vec<u8>]) {
    const SENDER: &str = "import socket, sys\n\
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
        s.bind(('cl0', 0))\n\
        for line in sys.stdin.read().split():\n    s.send(bytes.fromhex(line))\n";
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let mut child = Proc(
        Command::new("timeout")
            .args(["10", "ip", "netns", "exec", &lab.cl(), python, "-c", SENDER])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python"),
    );
    let hex: Vec<String> = frames
        .iter()
        .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let mut stdin = child.0.stdin.take().expect("stdin");
    stdin
        .write_all(hex.join("\n").as_bytes())
        .expect("write frames");
    drop(stdin);
    let status = child.wait(std::time::Duration::from_secs(15));
    assert!(status.success(), "raw sender failed: {status}");
}

#[test]
fn qinq_and_double_802_1q_traffic_is_forwarded_untagged_and_bad_qinq_is_counted() {
    let lab = Lab::up("lq", BACKENDS);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let opts = ConfigOpts {
        backends: BACKENDS,
        ..ConfigOpts::default()
    };
    let cfg = write(dir.path(), "c.toml", &config(&opts, &ctl));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    let ports = backend_ports(BACKENDS);

    // 802.1ad S-tag 100 around 802.1Q C-tag 200, IPv4.
    let reports = tagged_round(
        &lab,
        &fw,
        dir.path(),
        "qinq4",
        0,
        ("198.18.0.1", VIP4),
        ["0x88a8:100", "0x8100:200"],
    );
    check_untagged(&lab, &reports, false);

    // 802.1Q in 802.1Q, IPv6.
    let base = fw.tx_packets(&ports);
    let reports = tagged_round(
        &lab,
        &fw,
        dir.path(),
        "qq6",
        base,
        (lab.env("LAB_CL_IP6"), VIP6),
        ["0x8100:300", "0x8100:400"],
    );
    check_untagged(&lab, &reports, true);

    // QinQ IPv4 with a corrupt header checksum: the program takes it for IP and redirects it,
    // the parser rejects it, and ecmpfwd counts it instead of the kernel dropping it unseen.
    let mut bad = FrameSpec::udp(ip("198.18.0.1"), ip(VIP4), 4000, 80, 0)
        .payload_len(32)
        .macs(
            mac_array(lab.env("LAB_CL_MAC")),
            mac_array(lab.env("LAB_FC_MAC")),
        )
        .vlans(&[(TPID_QINQ, 100), (TPID_VLAN, 200)])
        .build()
        .expect("frame");
    // Offset 22 is the IPv4 header behind two tags; 10 its checksum.
    bad[22 + 10] ^= 0x5a;
    send_raw(&lab, &vec![bad; BAD as usize]);

    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
    let counters: Value = serde_json::from_str(&stopped.stdout).expect("counters JSON");
    assert_eq!(counters["drops"]["bad_ipv4_checksum"], BAD, "{counters}");
    let count = |k: &str| counters[k].as_u64().unwrap_or_else(|| panic!("{k}"));
    let drops: u64 = counters["drops"]
        .as_object()
        .expect("drops")
        .values()
        .map(|v| v.as_u64().expect("drop count"))
        .sum();
    // Both tagged rounds (and the backends' ICMP replies), then the corrupt frames: all seen,
    // every one forwarded but those.
    assert!(count("rx_packets") >= 2 * SENT + BAD, "{counters}");
    assert_eq!(drops, BAD, "{counters}");
    assert_eq!(count("rx_packets"), count("tx_packets") + BAD, "{counters}");
}

/// `aa:bb:..` -> six bytes.
fn mac_array(s: &str) -> [u8; 6] {
    mac_bytes(s).try_into().expect("six bytes")
}
