//! `ecmpfwd run` with every port in generic (skb) XDP mode (`scripts/lab`, needs root): the
//! program is attached as xdpgeneric and flows are forwarded with exact counts.

mod lab_common;

use lab_common::*;

#[test]
fn generic_mode_forwards_every_packet() {
    let lab = Lab::up("lg", 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let opts = ConfigOpts {
        mode: "generic",
        ..ConfigOpts::default()
    };
    let cfg = write(dir.path(), "c.toml", &config(&opts, &ctl));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    let links = lab.sh(&lab.fw(), &["ip", "-d", "-o", "link", "show"]);
    for port in ["fc0", "fb1", "fb2", "fb3", "fb4"] {
        let line = links
            .lines()
            .find(|l| l.contains(&format!(" {port}@")))
            .unwrap_or_else(|| panic!("{port} missing:\n{links}"));
        assert!(
            line.contains("xdpgeneric"),
            "{port} not in generic mode: {line}"
        );
    }

    let sinks: Vec<Sink> = (1..=4)
        .map(|i| Sink::start(&lab.b(i), "b0", dir.path(), &format!("b{i}")))
        .collect();
    send(&lab, "198.18.0.1", VIP4, 100, 2000, &["--proto", "udp"]);
    fw.wait_tx(&backend_ports(4), 2000);
    let reports: Vec<serde_json::Value> = sinks.into_iter().map(Sink::finish).collect();
    let total: u64 = reports
        .iter()
        .map(|r| r["packets"].as_u64().expect("packets"))
        .sum();
    assert_eq!(total, 2000, "{reports:?}");
    assert!(reports.iter().all(|r| r["packets"].as_u64() > Some(0)));
    assert_eq!(single_backend(&flow_map(&reports)).len(), 100);
    for (i, r) in reports.iter().enumerate() {
        let f = unhex(r["first_packet"].as_str().expect("first_packet"));
        assert_eq!(
            f[6..12],
            mac_bytes(lab.env(&format!("LAB_FB{}_MAC", i + 1)))[..]
        );
        check_ipv4(&f, 63, 17);
    }

    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
    assert!(lab.xdp_interfaces().is_empty(), "XDP left behind");
}
