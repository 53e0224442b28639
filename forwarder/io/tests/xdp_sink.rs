//! The benchmarks' XDP sink (`DropSink`): what it counts as the generator's (tagged) and drops,
//! plain and through every tunnel ecmpfwd's encapsulating groups use; what it leaves to the
//! kernel; one program per interface; detached on drop. Run as root.

mod xdp_lab;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ecmp_io::xdp::{AttachMode, DropSink, DropSinkCounters, XdpError};
use ecmp_testkit::frames::{FrameSpec, TPID_QINQ, TPID_VLAN, TcpFlags};
use xdp_lab::{Lab, PacketSocket, mac_a, mac_b};

/// ecmp_pktgen::MAGIC, then a flow id and sequence number as the generator writes them.
const TAG: [u8; 24] = *b"EFWG\0\0\0\x07\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0";

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 200, last))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

/// A UDP packet from b0 to a0 whose payload is `data`.
fn udp(src: IpAddr, dst: IpAddr, dport: u16, data: &[u8]) -> FrameSpec {
    FrameSpec::udp(src, dst, 4000, dport, 0)
        .macs(mac_b(0), mac_a(0))
        .data(data)
}

/// An inner packet (IP only) carrying the tag.
fn inner_ip(v6_inner: bool) -> Vec<u8> {
    let (s, d) = if v6_inner {
        (v6(1), v6(2))
    } else {
        (v4(1), v4(2))
    };
    udp(s, d, 5000, &TAG).build_ip().expect("inner packet")
}

fn wait_counts(sink: &DropSink, tagged: u64, passed_at_least: u64) -> DropSinkCounters {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let c = sink.counters().expect("counters");
        if (c.tagged >= tagged && c.passed >= passed_at_least) || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn tagged_packets_are_counted_and_dropped_plain_and_tunnelled_the_rest_passed() {
    let lab = Lab::new("sk", 1);
    let sink = DropSink::attach("a0", AttachMode::Driver).expect("attach in driver mode");
    let tx = PacketSocket::bind("b0");

    let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
    vxlan.extend(
        udp(v4(3), v4(4), 5000, &TAG)
            .vlans(&[(TPID_VLAN, 7)])
            .build()
            .expect("inner frame"),
    );
    // GRE with checksum and key words present (flags C and K), inner IPv6.
    let mut gre = vec![0xa0, 0x00, 0x86, 0xdd, 0, 0, 0, 0, 0, 0, 0, 9];
    gre.extend(inner_ip(true));
    let tagged: Vec<Vec<u8>> = vec![
        udp(v4(1), v4(2), 5000, &TAG).build().unwrap(),
        udp(v6(1), v6(2), 5000, &TAG).build().unwrap(),
        udp(v4(1), v4(2), 5000, &TAG)
            .with_tcp(TcpFlags::ACK)
            .build()
            .unwrap(),
        udp(v4(1), v4(2), 5000, &TAG)
            .options(&[1, 1, 1, 1])
            .build()
            .unwrap(),
        udp(v4(1), v4(2), 5000, &TAG)
            .vlans(&[(TPID_QINQ, 100), (TPID_VLAN, 200)])
            .build()
            .unwrap(),
        udp(v4(5), v4(6), 4789, &vxlan).build().unwrap(),
        FrameSpec::raw(v4(5), v4(6), 4, &inner_ip(false))
            .macs(mac_b(0), mac_a(0))
            .build()
            .unwrap(),
        FrameSpec::raw(v6(5), v6(6), 41, &inner_ip(true))
            .macs(mac_b(0), mac_a(0))
            .build()
            .unwrap(),
        FrameSpec::raw(v4(5), v4(6), 47, &gre)
            .macs(mac_b(0), mac_a(0))
            .build()
            .unwrap(),
    ];
    let mut not_tag = TAG;
    not_tag[3] = b'X';
    let mut runt = udp(v4(1), v4(2), 5000, &TAG).build().unwrap();
    runt.truncate(14 + 20 + 8 + 2);
    let untagged: Vec<Vec<u8>> = vec![
        udp(v4(1), v4(2), 5000, &not_tag).build().unwrap(),
        udp(v4(1), v4(2), 5000, &[]).build().unwrap(),
        runt,
        // A tag two tunnels deep is not looked for.
        FrameSpec::raw(
            v4(7),
            v4(8),
            4,
            &FrameSpec::raw(v4(5), v4(6), 4, &inner_ip(false))
                .build_ip()
                .unwrap(),
        )
        .macs(mac_b(0), mac_a(0))
        .build()
        .unwrap(),
    ];
    for f in tagged.iter().chain(&untagged) {
        tx.send(f);
    }
    let c = wait_counts(&sink, tagged.len() as u64, untagged.len() as u64);
    assert_eq!(c.tagged, tagged.len() as u64, "{c:?}");
    assert_eq!(
        c.tagged_bytes,
        tagged.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    // The kernel's own chatter on a0 (neighbour discovery) passes too.
    assert!(c.passed >= untagged.len() as u64, "{c:?}");
    assert!(lab.has_xdp("a0"));
    drop(sink);
    assert!(!lab.has_xdp("a0"), "dropping the sink detaches its program");
}

#[test]
fn a_second_program_on_the_interface_is_refused_by_name() {
    let lab = Lab::new("so", 1);
    let first = DropSink::attach("a0", AttachMode::Driver).expect("first");
    match DropSink::attach("a0", AttachMode::Driver) {
        Err(XdpError::ForeignProgram { prog_name, .. }) => {
            assert_eq!(prog_name, DropSink::NAME);
        }
        other => panic!("expected a refusal naming the program: {other:?}"),
    }
    drop(first);
    assert!(!lab.has_xdp("a0"));
    match DropSink::attach("nosuch0", AttachMode::Driver) {
        Err(XdpError::NoSuchInterface { ifname }) => assert_eq!(ifname, "nosuch0"),
        other => panic!("{other:?}"),
    }
}
