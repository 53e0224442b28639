//! `ecmpctl capture` against `ecmpfwd run` over a real veth lab (`scripts/lab`, needs root): the
//! pcapng files it writes are read back by tshark with the expected frames, interfaces and
//! comments (received and sent frames, and drops with their reason), and a bad filter is
//! refused with libpcap's reason.

mod lab_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lab_common::*;

/// How long a capture may take before the test fails (and the guard kills ecmpctl).
const CAPTURE_LIMIT: Duration = Duration::from_secs(20);

/// Starts `ecmpctl capture ARGS -w FILE` and returns once the daemon has armed it (ecmpctl
/// creates the file only after the daemon's go-ahead).
fn start_capture(ctl: &Path, file: &Path, args: &[&str]) -> Proc {
    let mut p = Proc::spawn(
        Command::new(ecmpctl())
            .arg("--socket")
            .arg(ctl)
            .arg("capture")
            .args(args)
            .arg("-w")
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    p.wait_for_file(file, CAPTURE_LIMIT);
    p
}

/// `tshark -r FILE -T fields -e F...`: one Vec per frame.
fn tshark(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

#[test]
fn captures_read_back_by_tshark_hold_the_frames_and_the_drop_reasons() {
    let lab = Lab::up("cap", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let opts = ConfigOpts {
        backends: 1,
        ..ConfigOpts::default()
    };
    let cfg = write(dir.path(), "c.toml", &config(&opts, &ctl));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);

    // A bad filter: refused (exit 1) naming the filter, no file, nothing armed.
    let bad = dir.path().join("bad.pcapng");
    let out = Command::new(ecmpctl())
        .arg("--socket")
        .arg(&ctl)
        .args(["capture", "--rx", "-w"])
        .arg(&bad)
        .args(["udp", "port", "banana"])
        .output()
        .expect("run ecmpctl");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("udp port banana"),
        "{out:?}"
    );
    assert!(!bad.exists());

    // Received and sent frames of UDP to the VIP: 40 in on fc0, 40 out on fb1 (rewritten).
    let both = dir.path().join("both.pcapng");
    let mut cap = start_capture(
        &ctl,
        &both,
        &[
            "--rx", "--tx", "--count", "80", "udp", "and", "dst", "host", VIP4,
        ],
    );
    let sink = Sink::start(&lab.b(1), "b0", dir.path(), "b1");
    send(&lab, "198.18.0.1", VIP4, 4, 40, &["--proto", "udp"]);
    fw.wait_tx(&backend_ports(1), 40);
    assert_eq!(sink.finish()["packets"], 40);
    assert!(cap.wait(CAPTURE_LIMIT).success(), "ecmpctl capture failed");
    let frames = tshark(
        &both,
        &[
            "frame.interface_name",
            "frame.comment",
            "ip.src",
            "ip.dst",
            "ip.ttl",
            "eth.src",
        ],
    );
    assert_eq!(frames.len(), 80, "{frames:?}");
    let rx: Vec<_> = frames.iter().filter(|f| f[1] == "rx").collect();
    let tx: Vec<_> = frames.iter().filter(|f| f[1] == "tx").collect();
    assert_eq!((rx.len(), tx.len()), (40, 40), "{frames:?}");
    for f in &rx {
        assert_eq!(
            (f[0].as_str(), f[2].as_str(), f[3].as_str(), f[4].as_str()),
            ("fc0", "198.18.0.1", VIP4, "64"),
            "{f:?}"
        );
    }
    let fb1_mac = lab.env("LAB_FB1_MAC").to_lowercase();
    for f in &tx {
        assert_eq!(
            (f[0].as_str(), f[3].as_str(), f[4].as_str()),
            ("fb1", VIP4, "63"),
            "{f:?}"
        );
        assert_eq!(f[5], fb1_mac, "sent with the egress port's MAC: {f:?}");
    }

    // Drops: martian sources, each with its reason as the packet comment.
    let drops = dir.path().join("drops.pcapng");
    let mut cap = start_capture(&ctl, &drops, &["--drops", "--count", "30"]);
    let fc_mac = lab.env("LAB_FC_MAC").to_owned();
    send_to_mac(&lab, &fc_mac, "127.0.0.1", VIP4, 30);
    assert!(cap.wait(CAPTURE_LIMIT).success(), "ecmpctl capture failed");
    let frames = tshark(&drops, &["frame.interface_name", "frame.comment", "ip.src"]);
    assert_eq!(frames.len(), 30, "{frames:?}");
    for f in &frames {
        assert_eq!(
            f,
            &["fc0", "drop: martian_source", "127.0.0.1"],
            "{frames:?}"
        );
    }

    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
}
