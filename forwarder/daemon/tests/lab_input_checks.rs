//! The router input checks in `ecmpfwd run` over a real veth lab (`scripts/lab`, needs root):
//! traffic toward the VIP from a martian source, or sent to another host's MAC, reaches the
//! workers through the XDP program and is dropped there, and `ecmpctl stats` shows the counts
//! under `martian_source` and `not_for_us` while ordinary traffic is still forwarded.

mod lab_common;

use std::process::Command;
use std::time::{Duration, Instant};

use ecmp_proto::ctl::Request;
use lab_common::*;

/// The count of drop reason `reason` in a stats reply (0 when it is not listed).
fn drops(stats: &serde_json::Value, reason: &str) -> u64 {
    stats["drops"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d[0] == reason)
        .and_then(|d| d[1].as_u64())
        .unwrap_or(0)
}

#[test]
fn martian_sources_and_frames_for_other_hosts_are_counted_in_ecmpctl_stats() {
    let lab = Lab::up("ic", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let opts = ConfigOpts {
        backends: 1,
        ..ConfigOpts::default()
    };
    let cfg = write(dir.path(), "c.toml", &config(&opts, &ctl));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    let fc_mac = lab.env("LAB_FC_MAC").to_owned();

    // Ordinary traffic still goes through.
    let sink = Sink::start(&lab.b(1), "b0", dir.path(), "b1");
    send(
        &lab,
        "198.18.0.1",
        "198.19.0.1",
        4,
        100,
        &["--proto", "udp"],
    );
    fw.wait_tx(&backend_ports(1), 100);
    assert_eq!(sink.finish()["packets"], 100);

    // From loopback, to the forwarder's MAC; and from a good source to another host's MAC.
    send_to_mac(&lab, &fc_mac, "127.0.0.1", "198.19.0.1", 60);
    send_to_mac(&lab, "02:00:00:00:77:77", "198.18.0.1", "198.19.0.1", 40);
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = fw.ctl_ok(&Request::Stats {});
        if drops(&stats, "martian_source") == 60 && drops(&stats, "not_for_us") == 40 {
            break;
        }
        assert!(Instant::now() < end, "drops not counted: {stats}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fw.tx_packets(&backend_ports(1)), 100, "nothing more sent");

    // The worker accounted its polls and the cycles of those that moved frames.
    let stats = fw.ctl_ok(&Request::Stats {});
    let w = &stats["workers"][0];
    let n = |k: &str| w[k].as_u64().unwrap_or_else(|| panic!("{k}: {stats}"));
    assert!(
        n("busy_polls") > 0 && n("polls") >= n("busy_polls"),
        "{stats}"
    );
    assert!(n("busy_cycles") > 0, "{stats}");
    let hz = stats["tsc_hz"].as_f64().expect("tsc_hz");
    assert!((1e8..1e10).contains(&hz), "{stats}");
    // Less than a second of busy time went into 200 packets.
    assert!((n("busy_cycles") as f64) < hz, "{stats}");

    // What an operator sees.
    let out = Command::new(ecmpctl())
        .arg("--socket")
        .arg(&ctl)
        .arg("stats")
        .output()
        .expect("run ecmpctl");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |reason: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(reason))
            .map(|l| l.split_whitespace().last().unwrap_or("").to_owned())
    };
    assert_eq!(line("martian_source").as_deref(), Some("60"), "{text}");
    assert_eq!(line("not_for_us").as_deref(), Some("40"), "{text}");
    assert!(text.contains("cycles/pkt"), "{text}");

    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
}
