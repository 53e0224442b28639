//! Neighbour resolution in `ecmpfwd run` over a real veth lab (needs root): next hops configured
//! without a MAC and absent from the kernel's neighbour table are unresolved at start (their
//! packets dropped and counted as `unresolved`), get resolved by the kernel on ecmpfwd's request
//! (ARP through the XDP program's pass path), and then carry traffic.

mod lab_common;

use std::time::{Duration, Instant};

use ecmp_proto::ctl::{NexthopSummary, Request};
use lab_common::*;

#[test]
fn unknown_next_hops_are_resolved_and_then_forwarded_to() {
    let lab = Lab::up("ln", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let opts = ConfigOpts {
        backends: 1,
        ..ConfigOpts::default()
    };
    // Plus a next hop nobody answers for, the only way to a second VIP.
    let ghost = "\n[[nexthop]]\nname = \"ghost\"\naddress = \"198.18.1.77\"\nport = \"fb1\"\n\n\
                 [[group]]\nname = \"ghost\"\nmembers = [\"ghost\"]\n\n\
                 [[route]]\nprefix = \"198.19.0.2/32\"\ngroup = \"ghost\"\n";
    let cfg = write(dir.path(), "c.toml", &(config(&opts, &ctl) + ghost));
    // The lab installs permanent entries on both ends; forget backend 1's on the forwarder's
    // side so that only ARP can tell ecmpfwd its MAC.
    lab.sh(
        &lab.fw(),
        &["ip", "neigh", "del", "198.18.1.1", "dev", "fb1"],
    );
    let table = lab.sh(&lab.fw(), &["ip", "neigh", "show", "198.18.1.1"]);
    assert!(table.trim().is_empty(), "still known: {table}");

    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    let end = Instant::now() + Duration::from_secs(10);
    let hop = loop {
        let hops: Vec<NexthopSummary> =
            serde_json::from_value(fw.ctl_ok(&Request::Nexthops {})).expect("nexthops");
        let b1 = hops
            .into_iter()
            .find(|h| h.addr == ip("198.18.1.1"))
            .expect("hop b1 listed");
        if b1.resolved {
            break b1;
        }
        assert!(Instant::now() < end, "198.18.1.1 never resolved: {b1:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(hop.mac, lab.env("LAB_B1_MAC"), "{hop:?}");
    // The kernel learnt it from a real ARP exchange (not permanent, unlike the lab's entries).
    let table = lab.sh(&lab.fw(), &["ip", "neigh", "show", "198.18.1.1"]);
    assert!(!table.contains("PERMANENT"), "{table}");
    assert!(table.contains(lab.env("LAB_B1_MAC")), "{table}");

    let sink = Sink::start(&lab.b(1), "b0", dir.path(), "b1");
    send(
        &lab,
        "198.18.0.1",
        "198.19.0.1",
        20,
        500,
        &["--proto", "udp"],
    );
    fw.wait_tx(&backend_ports(1), 500);
    let report = sink.finish();
    assert_eq!(report["packets"], 500, "{report}");

    // Packets toward the next hop nobody answers for are dropped and counted as such.
    send(
        &lab,
        "198.18.0.1",
        "198.19.0.2",
        10,
        200,
        &["--proto", "udp"],
    );
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = fw.ctl_ok(&Request::Stats {});
        let unresolved = stats["drops"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d[0] == "unresolved")
            .and_then(|d| d[1].as_u64())
            .unwrap_or(0);
        if unresolved >= 200 {
            break;
        }
        assert!(
            Instant::now() < end,
            "unresolved drops not counted: {stats}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let hops: Vec<NexthopSummary> =
        serde_json::from_value(fw.ctl_ok(&Request::Nexthops {})).expect("nexthops");
    let ghost = hops
        .iter()
        .find(|h| h.addr == ip("198.18.1.77"))
        .expect("ghost listed");
    assert!(!ghost.resolved, "{ghost:?}");
    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
}
