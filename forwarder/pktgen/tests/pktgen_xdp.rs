//! `ecmpfwd-pktgen` with the AF_XDP driver over a real veth lab (`scripts/lab`, needs root): the
//! client sends on cl0 through an AF_XDP socket, and a sink on the forwarder's fc0 counts what
//! arrived, through AF_XDP (with the XDP program attached) or AF_PACKET.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ecmp_testkit::lab::{self, Lab};
use ecmp_testkit::proc::Proc;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ecmpfwd-pktgen");
/// Packets per run and the flows they are spread over.
const COUNT: u64 = 2000;
const FLOWS: u32 = 32;

/// `ecmpfwd-pktgen ARGS` in namespace `ns`, its stdout and stderr discarded.
fn pktgen(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, BIN])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// Whether an XDP program is attached to fc0 in the lab's forwarder namespace.
fn fc0_has_xdp(lab: &Lab) -> bool {
    lab::has_xdp(lab.env("LAB_NS_FW"), "fc0")
}

/// Starts a sink (`sink_driver`) on fc0 expecting [`COUNT`] packets, sends them from cl0 with
/// the AF_XDP driver over [`FLOWS`] flows, and returns the sender's and the sink's JSON.
fn send_and_sink(lab: &Lab, dir: &Path, sink_driver: &str) -> (Value, Value) {
    let ready = dir.join("sink.ready");
    let sink_out = dir.join("sink.json");
    let send_out = dir.join("send.json");
    let count = COUNT.to_string();
    let flows = FLOWS.to_string();
    let mut sink = Proc::spawn(&mut pktgen(
        lab.env("LAB_NS_FW"),
        &[
            "sink",
            "--iface",
            "fc0",
            "--driver",
            sink_driver,
            "--count",
            &count,
            "--duration",
            "6",
            "--out",
            sink_out.to_str().expect("path"),
            "--ready-file",
            ready.to_str().expect("path"),
        ],
    ));
    sink.wait_for_file(&ready, Duration::from_secs(3));
    let mut sender = Proc::spawn(&mut pktgen(
        lab.env("LAB_NS_CL"),
        &[
            "send",
            "--driver",
            "afxdp",
            "--iface",
            "cl0",
            "--dst-mac",
            lab.env("LAB_FC_MAC"),
            "--src-ip",
            "198.18.0.1",
            "--dst-ip",
            lab.env("LAB_VIP4"),
            "--flows",
            &flows,
            "--count",
            &count,
            "--duration",
            "5",
            "--out",
            send_out.to_str().expect("path"),
        ],
    ));
    assert!(sender.wait(Duration::from_secs(6)).success(), "send failed");
    assert!(sink.wait(Duration::from_secs(6)).success(), "sink failed");
    (read_json(&send_out), read_json(&sink_out))
}

/// Every packet sent arrived, on its flow, in order: round-robin gives each of the 32 flows
/// 2000 / 32 = 62 packets, and the first 2000 % 32 = 16 flows one more.
fn assert_exact(summary: &Value, report: &Value) {
    assert_eq!(summary["packets"], COUNT, "{summary}");
    assert_eq!(summary["unconfirmed"], 0, "{summary}");
    assert_eq!(summary["stalled"], false, "{summary}");
    assert_eq!(report["packets"], COUNT, "{report}");
    assert_eq!(report["reordered"], 0, "{report}");
    let flows = report["flows"].as_object().expect("flows");
    assert_eq!(flows.len(), FLOWS as usize, "{report}");
    for id in 0..FLOWS {
        let want = if id < 16 { 63 } else { 62 };
        assert_eq!(flows[&id.to_string()], want, "flow {id}: {report}");
    }
}

#[test]
fn afxdp_sender_to_afxdp_sink_counts_every_flow() {
    let lab = Lab::up("xa", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, report) = send_and_sink(&lab, dir.path(), "afxdp");
    assert_exact(&summary, &report);
    // The sink's program went with it.
    assert!(!fc0_has_xdp(&lab));
}

#[test]
fn afxdp_sender_to_afpacket_sink_counts_every_flow() {
    let lab = Lab::up("xp", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, report) = send_and_sink(&lab, dir.path(), "afpacket");
    assert_exact(&summary, &report);
}

#[test]
fn afxdp_sender_to_xdp_drop_sink_counts_every_packet() {
    let lab = Lab::up("xd", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, report) = send_and_sink(&lab, dir.path(), "xdp-drop");
    assert_eq!(summary["packets"], COUNT, "{summary}");
    assert_eq!(report["packets"], COUNT, "{report}");
    assert_eq!(report["bytes"], summary["bytes"], "{report} {summary}");
    // Totals only: the program drops what it counts.
    assert!(report["flows"].as_object().expect("flows").is_empty());
    assert!(report["latency_ns"].is_null());
    assert!(!fc0_has_xdp(&lab), "the drop sink's program went with it");
}

#[test]
fn afxdp_sink_detaches_its_program_on_sigterm() {
    let lab = Lab::up("xt", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready");
    let out = dir.path().join("sink.json");
    let mut sink = Proc::spawn(&mut pktgen(
        lab.env("LAB_NS_FW"),
        &[
            "sink",
            "--iface",
            "fc0",
            "--driver",
            "afxdp",
            "--xdp-mode",
            "driver",
            "--duration",
            "30",
            "--out",
            out.to_str().expect("path"),
            "--ready-file",
            ready.to_str().expect("path"),
        ],
    ));
    sink.wait_for_file(&ready, Duration::from_secs(3));
    assert!(fc0_has_xdp(&lab), "no XDP program while the sink runs");
    // The program passes the interface's own traffic to the host: fc0 still answers pings.
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.env("LAB_NS_CL"),
            "ping",
            "-c",
            "1",
            "-W",
            "2",
        ])
        .arg(lab.env("LAB_FC_IP4"))
        .stdout(Stdio::null())
        .status()
        .expect("ping");
    assert!(ping.success(), "fc0 stopped answering pings under the sink");
    assert!(sink.signal("TERM"));
    assert!(sink.wait(Duration::from_secs(3)).success());
    assert!(!fc0_has_xdp(&lab), "XDP program left on fc0 after SIGTERM");
    // It stopped cleanly: the report was written.
    assert_eq!(read_json(&out)["packets"], 0);
}
