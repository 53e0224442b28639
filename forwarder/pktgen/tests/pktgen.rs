//! `ecmpfwd-pktgen send` and `sink` over a real veth lab (`scripts/lab`, needs root): the client
//! sends tagged flows on cl0, the sink counts them on the forwarder's fc0.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecmp_testkit::lab::Lab;
use ecmp_testkit::proc::Proc;
use ecmp_wire::checksum;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ecmpfwd-pktgen");

fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, BIN]).args(args);
    c
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn mac_bytes(s: &str) -> Vec<u8> {
    s.split(':')
        .map(|p| u8::from_str_radix(p, 16).expect("mac"))
        .collect()
}

/// Starts a sink on the forwarder's fc0, runs `send_args` on the client's cl0, and returns the
/// sender's summary and the sink's report.
fn run(lab: &Lab, dir: &Path, name: &str, count: u64, send_args: &[&str]) -> (Value, Value) {
    let ready = dir.join(format!("{name}.ready"));
    let out = dir.join(format!("{name}.json"));
    let fw = lab.env("LAB_NS_FW");
    let count_s = count.to_string();
    let mut sink = Proc::spawn(
        in_ns(
            fw,
            &[
                "sink",
                "--iface",
                "fc0",
                "--count",
                &count_s,
                "--duration",
                "8",
                "--out",
                out.to_str().expect("path"),
                "--ready-file",
                ready.to_str().expect("path"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null()),
    );
    sink.wait_for_file(&ready, Duration::from_secs(5));

    let summary_path = dir.join(format!("{name}.send.json"));
    let mut args = vec![
        "send",
        "--iface",
        "cl0",
        "--count",
        &count_s,
        "--duration",
        "8",
    ];
    args.extend_from_slice(&["--out", summary_path.to_str().expect("path")]);
    args.extend_from_slice(send_args);
    let cl = lab.env("LAB_NS_CL");
    let mut sender = Proc::spawn(in_ns(cl, &args).stdout(Stdio::null()));
    assert!(
        sender.wait(Duration::from_secs(10)).success(),
        "send failed"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).expect("send output"))
            .expect("send JSON");

    assert!(sink.wait(Duration::from_secs(10)).success(), "sink failed");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("sink output")).expect("JSON");
    (summary, report)
}

#[test]
fn sink_counts_every_flow_the_client_sends() {
    let lab = Lab::up("tp", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let fc_mac = lab.env("LAB_FC_MAC");
    let cl_mac = lab.env("LAB_CL_MAC");
    let vip4 = lab.env("LAB_VIP4");
    let vip6 = lab.env("LAB_VIP6");

    // IPv4 UDP, 1000 packets over 16 flows.
    let (summary, report) = run(
        &lab,
        dir.path(),
        "v4",
        1000,
        &[
            "--dst-mac",
            fc_mac,
            "--src-ip",
            "198.18.0.1",
            "--dst-ip",
            vip4,
            "--flows",
            "16",
            "--size",
            "128",
        ],
    );
    assert_eq!(summary["packets"], 1000);
    assert_eq!(summary["bytes"], 128_000);
    assert_eq!(report["packets"], 1000, "{report}");
    assert_eq!(report["bytes"], 128_000);
    assert_eq!(report["reordered"], 0);
    let flows = report["flows"].as_object().expect("flows");
    assert_eq!(flows.len(), 16, "{report}");
    // Round-robin: 1000 = 16 * 62 + 8, so flows 0..8 carry 63 packets and 8..16 carry 62.
    for id in 0..16u32 {
        let want = if id < 8 { 63 } else { 62 };
        assert_eq!(flows[&id.to_string()], want, "flow {id}");
    }
    // Every packet carries a transmit stamp on the sink's clock, so every one is measured.
    let lat = &report["latency_ns"];
    let field = |k: &str| {
        lat[k]
            .as_u64()
            .unwrap_or_else(|| panic!("latency {k}: {lat}"))
    };
    assert_eq!(field("count"), 1000, "{lat}");
    let bucketed: u64 = lat["buckets"]
        .as_array()
        .expect("latency buckets")
        .iter()
        .map(|b| b[1].as_u64().expect("bucket count"))
        .sum();
    assert_eq!(bucketed, 1000, "{lat}");
    let (p50, p99, max) = (field("p50"), field("p99"), field("max"));
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "{lat}");

    // The first frame as it arrived: MACs of the lab, TTL 64, a valid IPv4 header checksum.
    let f = unhex(report["first_packet"].as_str().expect("first_packet"));
    assert_eq!(f.len(), 128);
    assert_eq!(f[0..6], mac_bytes(fc_mac)[..]);
    assert_eq!(f[6..12], mac_bytes(cl_mac)[..]);
    assert_eq!(f[12..14], [0x08, 0x00]);
    assert_eq!(f[22], 64);
    assert_eq!(f[23], 17);
    let ip: [u8; 20] = f[14..34].try_into().expect("ip header");
    assert!(checksum::verify_ipv4_header(&ip));
    assert_eq!(f[30..34], vip4.parse::<Ipv4Addr>().expect("vip").octets());

    // IPv6 TCP with varying source addresses, rate-limited: 400 packets at 20 kpps.
    let (summary, report) = run(
        &lab,
        dir.path(),
        "v6",
        400,
        &[
            "--dst-mac",
            fc_mac,
            "--src-ip",
            "2001:2::100",
            "--dst-ip",
            vip6,
            "--proto",
            "tcp",
            "--flows",
            "5",
            "--vary",
            "addr",
            "--rate",
            "20000",
            "--ttl",
            "9",
        ],
    );
    assert_eq!(summary["packets"], 400);
    assert!(
        summary["seconds"].as_f64().expect("seconds") >= 0.015,
        "{summary}"
    );
    assert_eq!(report["packets"], 400, "{report}");
    let flows = report["flows"].as_object().expect("flows");
    assert_eq!(flows.len(), 5);
    assert!(flows.values().all(|n| n == 80), "{report}");
    let f = unhex(report["first_packet"].as_str().expect("first_packet"));
    assert_eq!(f[12..14], [0x86, 0xdd]);
    assert_eq!(f[20], 6);
    assert_eq!(f[21], 9);
}

#[test]
fn sink_stops_on_sigterm_and_reports() {
    let lab = Lab::up("ts", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready");
    let fw = lab.env("LAB_NS_FW");
    let mut sink = Proc::spawn(
        in_ns(
            fw,
            &[
                "sink",
                "--iface",
                "fc0",
                "--duration",
                "30",
                "--ready-file",
                ready.to_str().expect("path"),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null()),
    );
    sink.wait_for_file(&ready, Duration::from_secs(5));
    let t = Instant::now();
    assert!(sink.signal("TERM"));
    assert!(sink.wait(Duration::from_secs(3)).success());
    assert!(t.elapsed() < Duration::from_secs(3));
    let mut out = String::new();
    use std::io::Read;
    sink.0
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    let report: Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(report["packets"], 0);
    assert!(report["flows"].as_object().expect("flows").is_empty());
    assert!(report["first_packet"].is_null());
}
