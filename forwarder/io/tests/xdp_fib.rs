//! The in-kernel XDP forwarding baseline (`FibForwarder`): looks packets up in the kernel's FIB,
//! decrements the TTL (checksum still right), rewrites the MACs from the neighbour entry and
//! redirects in the driver; spreads flows over a resilient nexthop group; leaves what it cannot
//! forward to the kernel, counted by reason. Run as root.

mod xdp_lab;

use std::time::{Duration, Instant};

use ecmp_io::xdp::{AttachMode, DropSink, FibCounters, FibForwarder};
use xdp_lab::{Lab, PacketSocket, mac_a, mac_b, transit, udp4};

const WAIT: Duration = Duration::from_secs(3);

/// a0 is the ingress; a<i> (i >= 1) egress towards b<i>, whose address has a permanent
/// neighbour entry (so the first packet finds it resolved).
fn lab(tag: &str, egress: u8) -> Lab {
    let lab = Lab::new(tag, egress + 1);
    lab.ip(&["link", "set", "lo", "up"]);
    let sysctl = |k: &str| {
        assert!(
            lab.exec_ok(&lab.ns, &["sysctl", "-qw", k]),
            "sysctl {k} failed"
        );
    };
    sysctl("net.ipv4.ip_forward=1");
    sysctl("net.ipv4.fib_multipath_hash_policy=1");
    for i in 1..=egress {
        let mac = mac_b(i)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        lab.ip(&[
            "neigh",
            "replace",
            &format!("198.18.{i}.2"),
            "lladdr",
            &mac,
            "dev",
            &format!("a{i}"),
            "nud",
            "permanent",
        ]);
    }
    lab
}

fn counters_after(fib: &FibForwarder, want: impl Fn(&FibCounters) -> bool) -> FibCounters {
    let end = Instant::now() + WAIT;
    loop {
        let c = fib.counters().expect("counters");
        if want(&c) || Instant::now() > end {
            return c;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ipv4_checksum_ok(ip: &[u8]) -> bool {
    let mut sum = 0u32;
    for c in ip[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

#[test]
fn a_routed_packet_is_rewritten_and_redirected_in_the_driver() {
    let lab = lab("fr", 1);
    lab.ip(&[
        "route",
        "add",
        "198.18.200.0/24",
        "via",
        "198.18.1.2",
        "dev",
        "a1",
    ]);
    // b1 receives a redirected frame only with NAPI: GRO gives veth one.
    assert!(lab.exec_ok(&lab.ns, &["ethtool", "-K", "b1", "gro", "on"]));
    let fib = FibForwarder::attach("a0", AttachMode::Driver).expect("attach");
    let tx = PacketSocket::bind("b0");
    let rx = PacketSocket::bind("b1");
    let sent = transit(0, 5, 32);
    tx.send(&sent);
    let got = rx.recv_incoming(1, WAIT);
    assert_eq!(got.len(), 1, "nothing arrived at b1");
    let f = &got[0];
    assert_eq!(f[..6], mac_b(1), "destination: the neighbour's MAC");
    assert_eq!(f[6..12], mac_a(1), "source: the egress device's MAC");
    assert_eq!(f[14 + 8], sent[14 + 8] - 1, "TTL decremented");
    assert!(ipv4_checksum_ok(&f[14..]), "header checksum fixed up");
    // Nothing else changed: ethertype, the header around TTL and checksum, the payload.
    assert_eq!(f[12..14 + 8], sent[12..14 + 8]);
    assert_eq!(f[14 + 9], sent[14 + 9]);
    assert_eq!(f[14 + 12..], sent[14 + 12..]);
    let c = counters_after(&fib, |c| c.redirected >= 1);
    assert_eq!(c.redirected, 1, "{c:?}");

    // What it cannot forward goes to the kernel, by reason.
    let mut ttl1 = udp4(mac_a(0), mac_b(0), [198, 18, 0, 2], [198, 18, 200, 6], 6, 8);
    ttl1[14 + 8] = 1;
    let unroutable = udp4(mac_a(0), mac_b(0), [198, 18, 0, 2], [203, 0, 113, 1], 7, 8);
    tx.send(&ttl1);
    tx.send(&unroutable);
    let c = counters_after(&fib, |c| c.pass_ttl >= 1 && c.pass_no_route >= 1);
    assert_eq!(c.pass_ttl, 1, "{c:?}");
    // The kernel's own IPv6 chatter from b0 (to link-local multicast) has no route either.
    assert!(c.pass_no_route >= 1, "{c:?}");
    assert_eq!(c.redirected, 1, "nothing else forwarded: {c:?}");
    drop(fib);
    assert!(!lab.has_xdp("a0"), "dropping it detaches the program");
}

#[test]
fn flows_spread_over_a_resilient_nexthop_group() {
    let lab = lab("fg", 2);
    for i in 1..=2u8 {
        lab.ip(&[
            "nexthop",
            "add",
            "id",
            &i.to_string(),
            "via",
            &format!("198.18.{i}.2"),
            "dev",
            &format!("a{i}"),
        ]);
    }
    lab.ip(&[
        "nexthop",
        "add",
        "id",
        "100",
        "group",
        "1/2",
        "type",
        "resilient",
        "buckets",
        "32",
        "idle_timer",
        "0",
    ]);
    lab.ip(&["route", "add", "198.18.200.0/24", "nhid", "100"]);
    // Sinks on the egress peers take the redirected frames (an XDP program gives veth NAPI).
    let sinks: Vec<DropSink> = (1..=2)
        .map(|i| DropSink::attach(&format!("b{i}"), AttachMode::Driver).expect("sink"))
        .collect();
    let fib = FibForwarder::attach("a0", AttachMode::Driver).expect("attach");
    let tx = PacketSocket::bind("b0");
    const FLOWS: u16 = 64;
    for sport in 0..FLOWS {
        let mut f = udp4(
            mac_a(0),
            mac_b(0),
            [198, 18, 0, 2],
            [198, 18, 200, 9],
            0,
            24,
        );
        // The source port varies; the payload is a generator tag, which the sinks count.
        f[34..36].copy_from_slice(&(1024 + sport).to_be_bytes());
        f[42..46].copy_from_slice(b"EFWG");
        tx.send(&f);
    }
    let c = counters_after(&fib, |c| c.redirected >= u64::from(FLOWS));
    assert_eq!(c.redirected, u64::from(FLOWS), "{c:?}");
    let end = Instant::now() + WAIT;
    let per_hop = loop {
        let n: Vec<u64> = sinks.iter().map(|s| s.counters().unwrap().tagged).collect();
        if n.iter().sum::<u64>() >= u64::from(FLOWS) || Instant::now() > end {
            break n;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(per_hop.iter().sum::<u64>(), u64::from(FLOWS), "{per_hop:?}");
    assert!(
        per_hop.iter().all(|&n| n > 0),
        "L4 hashing uses both hops: {per_hop:?}"
    );
}
