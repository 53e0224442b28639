//! The `ecmpfwd` binary end to end: `run` forwards a capture (pcap or pcapng) through pcap
//! ports, `check` validates configs and names file, line and key on errors.

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

/// The pcap ports both test configs use (uplink reads `in.pcap`) and the worker serving them.
fn pcap_ports(dir: &Path) -> String {
    format!(
        r#"
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
"#,
        dir = dir.display()
    )
}

fn config(dir: &Path) -> String {
    let ports = pcap_ports(dir);
    format!(
        r#"
[instance]
name = "pcap-run"

{ports}
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
"#
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

/// A capture as `ecmpctl capture` writes it (pcapng: an Ethernet interface with nanosecond
/// timestamps, enhanced packet blocks with a comment) replays like a classic pcap.
#[test]
fn run_replays_a_pcapng_capture() {
    use pcap_file::DataLink;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption,
    };
    use std::borrow::Cow;

    let dir = tempfile::tempdir().unwrap();
    // The config names in.pcap; the reader tells the format from the file's first bytes.
    let file = std::fs::File::create(dir.path().join("in.pcap")).unwrap();
    let mut w = PcapNgWriter::new(std::io::BufWriter::new(file)).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 65535,
        options: vec![InterfaceDescriptionOption::IfTsResol(9)],
    })
    .unwrap();
    for i in 0..100u64 {
        let dst: IpAddr = if i % 10 == 9 {
            "203.0.113.1"
        } else {
            "192.0.2.10"
        }
        .parse()
        .unwrap();
        let f = FrameSpec::udp("198.18.0.7".parse().unwrap(), dst, 1024 + i as u16, 53, 60)
            .build()
            .unwrap();
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_micros(i),
            original_len: f.len() as u32,
            data: Cow::Borrowed(&f),
            options: vec![EnhancedPacketOption::Comment(Cow::Borrowed("rx"))],
        })
        .unwrap();
    }
    std::io::Write::flush(w.get_mut()).unwrap();
    drop(w);
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, config(dir.path())).unwrap();

    let out = run(&["run", "--config", cfg.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["rx_packets"], 100);
    assert_eq!(stats["tx_packets"], 90);
    assert_eq!(stats["drops"]["no_route"], 10);
    let sent = PcapReader::open(dir.path().join("servers-out.pcap"))
        .unwrap()
        .count();
    assert_eq!(sent, 90);
}

/// `[memory] hugepages`: the start-up log says how each big table is backed, read back from the
/// kernel (`off`: 4 KiB pages, whatever THP is set to), and `require` without a hugetlb pool is
/// a start-up error.
#[test]
fn run_logs_each_tables_backing_and_require_needs_a_pool() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = PcapWriter::create(dir.path().join("in.pcap")).unwrap();
    let f = FrameSpec::udp(
        "198.18.0.1".parse().unwrap(),
        "192.0.2.10".parse().unwrap(),
        1024,
        53,
        60,
    )
    .build()
    .unwrap();
    w.write_packet(0, &f).unwrap();
    drop(w.into_inner().unwrap());
    let with = |policy: &str| {
        let cfg = dir.path().join(format!("{policy}.toml"));
        let text = format!(
            "{}\n[memory]\nhugepages = \"{policy}\"\n",
            config(dir.path())
        );
        std::fs::write(&cfg, text).unwrap();
        run(&["run", "--config", cfg.to_str().unwrap(), "--json"])
    };

    let out = with("off");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {log}");
    for line in [
        "memory: fib4 tbl24: 64.0 MiB on 4 KiB pages",
        "memory: fib6 root: 32.0 MiB on 4 KiB pages",
        "memory: worker 0 flow cache buckets: 32.0 MiB on 4 KiB pages",
        "memory: worker 0 flow cache ext: 32.0 MiB on 4 KiB pages",
    ] {
        assert!(log.contains(line), "{line:?} missing from: {log}");
    }

    let free: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let out = with("require");
    let log = String::from_utf8_lossy(&out.stderr);
    // `check` of the same file fails as `run` did when the pool cannot meet `require`.
    let cfg = dir.path().join("require.toml");
    let check = run(&["check", "--config", cfg.to_str().unwrap()]);
    if free == 0 {
        assert!(!out.status.success(), "stderr: {log}");
        assert!(
            log.contains("hugepages = \"require\" but the hugetlb pool is empty"),
            "{log}"
        );
        let check_log = String::from_utf8_lossy(&check.stderr);
        assert!(!check.status.success(), "check passed: {check_log}");
        assert!(
            check_log.contains("hugepages = \"require\" but the hugetlb pool is empty"),
            "{check_log}"
        );
    } else {
        // A pool exists: either every big table got it, or the one that did not is named.
        assert!(
            out.status.success() || log.contains("hugepages = \"require\" but the"),
            "{log}"
        );
    }
}

/// Four servers in one group hashing inner headers, at the tunnel endpoint 192.0.2.20.
fn inner_config(dir: &Path) -> String {
    let ports = pcap_ports(dir);
    let mut cfg = format!(
        r#"
[instance]
name = "pcap-inner"

{ports}
[[group]]
name = "tunnels"
members = ["s1", "s2", "s3", "s4"]
hash = {{ inner = true }}

[[route]]
prefix = "192.0.2.20/32"
group = "tunnels"
"#
    );
    for s in 1..=4 {
        cfg.push_str(&format!(
            "\n[[nexthop]]\nname = \"s{s}\"\naddress = \"198.18.1.{s}\"\nport = \"servers\"\n\
             mac = \"02:be:00:00:00:0{s}\"\n"
        ));
    }
    cfg
}

#[test]
fn run_spreads_one_tunnels_inner_flows_over_every_hop_of_an_inner_hashing_group() {
    let dir = tempfile::tempdir().unwrap();
    let (outer_src, endpoint): (IpAddr, IpAddr) = (
        "203.0.113.9".parse().unwrap(),
        "192.0.2.20".parse().unwrap(),
    );
    // Each tunnel kind: one outer 5-tuple carrying 60 inner UDP flows.
    let tunnel = |kind: usize, inner: &[u8]| -> Vec<u8> {
        match kind {
            0 => FrameSpec::raw(outer_src, endpoint, 4, inner),
            1 => {
                let mut gre = vec![0, 0, 0x08, 0x00];
                gre.extend_from_slice(inner);
                FrameSpec::raw(outer_src, endpoint, 47, &gre)
            }
            _ => {
                let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 7, 0];
                let mut eth = vec![2, 0, 0, 0, 0, 0xcc, 2, 0, 0, 0, 0, 0xdd, 0x08, 0x00];
                eth.extend_from_slice(inner);
                vxlan.extend_from_slice(&eth);
                FrameSpec::udp(outer_src, endpoint, 50_000, 4789, 0).data(&vxlan)
            }
        }
        .build()
        .unwrap()
    };
    const KINDS: usize = 3;
    const FLOWS: u16 = 60;
    let mut w = PcapWriter::create(dir.path().join("in.pcap")).unwrap();
    let mut t = 0;
    // Every inner flow twice, the second round after the whole first: a flow pinned by the
    // flow cache shows as a second packet on another hop than its first.
    for _round in 0..2 {
        for kind in 0..KINDS {
            for i in 0..FLOWS {
                let inner = FrameSpec::udp(
                    format!("10.9.{kind}.{}", 1 + i).parse().unwrap(),
                    "10.200.0.1".parse().unwrap(),
                    2000 + i,
                    443,
                    0,
                )
                .build_ip()
                .unwrap();
                w.write_packet(t, &tunnel(kind, &inner)).unwrap();
                t += 1000;
            }
        }
    }
    drop(w.into_inner().unwrap());
    let cfg = dir.path().join("inner.toml");
    std::fs::write(&cfg, inner_config(dir.path())).unwrap();

    let out = run(&["run", "--config", cfg.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = 2 * KINDS as u64 * u64::from(FLOWS);
    assert_eq!(stats["tx_packets"], total);
    // One flow-cache entry per inner flow: the first round misses, the second hits.
    assert_eq!(stats["flow_cache_misses"], total / 2);
    assert_eq!(stats["flow_cache_hits"], total / 2);

    // Per tunnel kind, the hops its inner flows took, and each inner flow's hops.
    let mut hops = vec![std::collections::BTreeSet::new(); KINDS];
    let mut per_flow =
        std::collections::BTreeMap::<(u8, u8), std::collections::BTreeSet<u8>>::new();
    let sent = PcapReader::open(dir.path().join("servers-out.pcap")).unwrap();
    for p in sent {
        let f = p.unwrap().data;
        let hop = f[5];
        let outer = ecmp_wire::parse_frame(&f).unwrap();
        let inner = ecmp_wire::parse_inner(&f, &outer).expect("the tunnel is forwarded as is");
        let (kind, flow) = (inner.src[2], inner.src[3]);
        hops[usize::from(kind)].insert(hop);
        per_flow.entry((kind, flow)).or_default().insert(hop);
    }
    for (kind, hops) in hops.iter().enumerate() {
        assert_eq!(hops.len(), 4, "tunnel kind {kind}: {hops:?}");
    }
    assert_eq!(per_flow.len(), KINDS * usize::from(FLOWS));
    assert!(
        per_flow.values().all(|h| h.len() == 1),
        "every inner flow stays on one hop"
    );
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

/// Built without the DPDK runtime, `run` refuses DPDK ports and says which feature adds it.
#[cfg(not(feature = "dpdk"))]
#[test]
fn run_without_the_dpdk_feature_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("dpdk.toml");
    std::fs::write(
        &cfg,
        "[instance]\nname = \"t\"\n[[port]]\nname = \"a\"\nkind = \"dpdk\"\ndevice = \"net_null0\"\nmac = \"02:00:00:00:00:01\"\n\
         [[worker]]\ncore = 0\nports = [\"a\"]\n",
    )
    .unwrap();
    let out = run(&["run", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dpdk.toml:3: port \"a\"") && err.contains("cargo feature `dpdk`"),
        "{err}"
    );
}
