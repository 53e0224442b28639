//! The `ecmpfwd` binary end to end: `run` forwards a capture through pcap ports, `check`
//! validates configs and names file, line and key on errors.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ecmp_io::pcap::{PcapReader, PcapWriter};
use ecmp_pktgen::traffic::Rng;
use ecmp_testkit::frames::FrameSpec;

const BIN: &str = env!("CARGO_BIN_EXE_ecmpfwd");

/// Runs the binary with a time bound (a hung daemon fails the test instead of hanging CI).
fn run(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ecmpfwd");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("ecmpfwd {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config(dir: &Path) -> String {
    format!(
        r#"
[instance]
name = "pcap-run"

[[port]]
name = "uplink"
kind = "pcap"
mac = "02:00:00:00:00:01"
input = "{dir}/in.pcap"
output = "{dir}/uplink-out.pcap"

[[port]]
name = "servers"
kind = "pcap"
mac = "02:00:00:00:00:02"
output = "{dir}/servers-out.pcap"

[[worker]]
core = 0
ports = ["uplink", "servers"]

[[nexthop]]
name = "s1"
address = "198.18.1.1"
port = "servers"
mac = "02:be:00:00:00:01"

[[nexthop]]
name = "s2"
address = "198.18.1.2"
port = "servers"
mac = "02:be:00:00:00:02"

[[group]]
name = "vip"
members = ["s1", "s2"]

[[route]]
prefix = "192.0.2.10/32"
group = "vip"
"#,
        dir = dir.display()
    )
}

#[test]
fn run_forwards_a_capture_through_pcap_ports() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = PcapWriter::create(dir.path().join("in.pcap")).unwrap();
    let mut rng = Rng::new(9);
    for i in 0..1000u64 {
        let src: IpAddr = format!("198.18.0.{}", 1 + rng.below(250)).parse().unwrap();
        let dst: IpAddr = if i % 10 == 9 {
            "203.0.113.1"
        } else {
            "192.0.2.10"
        }
        .parse()
        .unwrap();
        let f = FrameSpec::udp(src, dst, 1024 + i as u16, 53, 60)
            .build()
            .unwrap();
        w.write_packet(i * 1000, &f).unwrap();
    }
    drop(w.into_inner().unwrap());
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, config(dir.path())).unwrap();

    let out = run(&["run", "--config", cfg.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["rx_packets"], 1000);
    assert_eq!(stats["tx_packets"], 900);
    assert_eq!(stats["drops"]["no_route"], 100);

    let sent: Vec<_> = PcapReader::open(dir.path().join("servers-out.pcap"))
        .unwrap()
        .map(|p| p.unwrap().data)
        .collect();
    assert_eq!(sent.len(), 900);
    let mut per_hop = [0usize; 3];
    for f in &sent {
        assert_eq!(
            &f[6..12],
            &[2, 0, 0, 0, 0, 2],
            "source MAC is the egress port's"
        );
        assert_eq!(&f[0..5], &[2, 0xbe, 0, 0, 0]);
        per_hop[usize::from(f[5])] += 1;
        assert_eq!(f[14 + 8], 63, "TTL decremented");
        let ip = ecmp_wire::ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum(), "IPv4 checksum updated");
    }
    assert!(
        per_hop[1] > 300 && per_hop[2] > 300,
        "both servers get flows: {per_hop:?}"
    );
    let back = PcapReader::open(dir.path().join("uplink-out.pcap"))
        .unwrap()
        .count();
    assert_eq!(back, 0);
}

#[test]
fn check_accepts_every_example_and_names_file_line_and_key() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = run(&["check", "--config", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains(": ok:"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = config(dir.path()).replace(
        "port = \"servers\"\nmac = \"02:be:00:00:00:02\"",
        "port = \"nowhere\"\nmac = \"02:be:00:00:00:02\"",
    );
    std::fs::write(&bad, &text).unwrap();
    let line = text.lines().position(|l| l.contains("nowhere")).unwrap() + 1;
    let out = run(&["check", "--config", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("bad.toml:{line}: nexthop[1].port")),
        "{err}"
    );
}

#[test]
fn a_missing_config_file_is_reported_once() {
    let out = run(&["check", "--config", "/nonexistent/ecmpfwd.toml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "ecmpfwd: /nonexistent/ecmpfwd.toml: cannot read: No such file or directory (os error 2)",
    );
}
