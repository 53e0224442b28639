//! `ecmpfwd-pktgen` with the AF_XDP driver over a real veth lab (`scripts/lab`, needs root): the
//! client sends on cl0 through an AF_XDP socket, and a sink on the forwarder's fc0 counts what
//! arrived, through AF_XDP (with the XDP program attached) or AF_PACKET.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ecmpfwd-pktgen");
/// Packets per run and the flows they are spread over.
const COUNT: u64 = 2000;
const FLOWS: u32 = 32;

fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lab")
}

/// A lab from `scripts/lab up`; `scripts/lab down` on drop, on panic too.
struct Lab {
    prefix: String,
}

impl Lab {
    fn up(tag: &str) -> Lab {
        let lab = Lab {
            prefix: format!("x{tag}{}", std::process::id()),
        };
        let st = Command::new(lab_script())
            .args(["up", "--prefix", &lab.prefix, "--backends", "1"])
            .stderr(Stdio::null())
            .status()
            .expect("run scripts/lab");
        assert!(st.success(), "scripts/lab up failed");
        lab
    }

    /// The value of `KEY` in `scripts/lab env`.
    fn env(&self, key: &str) -> String {
        let out = Command::new(lab_script())
            .args(["env", "--prefix", &self.prefix, "--backends", "1"])
            .output()
            .expect("run scripts/lab env");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
            .unwrap_or_else(|| panic!("{key} missing from scripts/lab env:\n{text}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(lab_script())
            .args(["down", "--prefix", &self.prefix])
            .stderr(Stdio::null())
            .status();
    }
}

/// A spawned process, killed by pid on drop if still running.
struct Proc(Child);

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        Proc(cmd.spawn().expect("spawn ecmpfwd-pktgen"))
    }

    /// Waits up to `limit` for the exit; panics past it (the drop then kills the process).
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.0.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "pid {} did not exit",
                self.0.id()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `ecmpfwd-pktgen ARGS` in namespace `ns`, its stdout and stderr discarded.
fn pktgen(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, BIN])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn wait_for_file(path: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// Whether an XDP program is attached to fc0 in the lab's forwarder namespace.
fn fc0_has_xdp(lab: &Lab) -> bool {
    let out = Command::new("ip")
        .args(["-n", &lab.env("LAB_NS_FW"), "-d", "link", "show", "fc0"])
        .output()
        .expect("ip link show");
    assert!(out.status.success(), "ip link show fc0 failed");
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

/// Starts a sink (`sink_driver`) on fc0 expecting [`COUNT`] packets, sends them from cl0 with
/// the AF_XDP driver over [`FLOWS`] flows, and returns the sender's and the sink's JSON.
fn send_and_sink(lab: &Lab, dir: &Path, sink_driver: &str) -> (Value, Value) {
    let ready = dir.join("sink.ready");
    let sink_out = dir.join("sink.json");
    let send_out = dir.join("send.json");
    let count = COUNT.to_string();
    let flows = FLOWS.to_string();
    let mut sink = Proc::spawn(pktgen(
        &lab.env("LAB_NS_FW"),
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
    wait_for_file(&ready, Duration::from_secs(3));
    let mut sender = Proc::spawn(pktgen(
        &lab.env("LAB_NS_CL"),
        &[
            "send",
            "--driver",
            "afxdp",
            "--iface",
            "cl0",
            "--dst-mac",
            &lab.env("LAB_FC_MAC"),
            "--src-ip",
            "198.18.0.1",
            "--dst-ip",
            &lab.env("LAB_VIP4"),
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
    let lab = Lab::up("a");
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, report) = send_and_sink(&lab, dir.path(), "afxdp");
    assert_exact(&summary, &report);
    // The sink's program went with it.
    assert!(!fc0_has_xdp(&lab));
}

#[test]
fn afxdp_sender_to_afpacket_sink_counts_every_flow() {
    let lab = Lab::up("p");
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, report) = send_and_sink(&lab, dir.path(), "afpacket");
    assert_exact(&summary, &report);
}

#[test]
fn afxdp_sink_detaches_its_program_on_sigterm() {
    let lab = Lab::up("t");
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready");
    let out = dir.path().join("sink.json");
    let mut sink = Proc::spawn(pktgen(
        &lab.env("LAB_NS_FW"),
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
    wait_for_file(&ready, Duration::from_secs(3));
    assert!(fc0_has_xdp(&lab), "no XDP program while the sink runs");
    // The program passes the interface's own traffic to the host: fc0 still answers pings.
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.env("LAB_NS_CL"),
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
    let st = Command::new("kill")
        .args(["-TERM", &sink.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    assert!(sink.wait(Duration::from_secs(3)).success());
    assert!(!fc0_has_xdp(&lab), "XDP program left on fc0 after SIGTERM");
    // It stopped cleanly: the report was written.
    assert_eq!(read_json(&out)["packets"], 0);
}
