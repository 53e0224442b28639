use super::*;
use crate::ipv4;
use crate::test_util::hex;
use core::net::Ipv4Addr;

const MACS: &str = "020000000002020000000001";
// The captured SYN of `ipv4::tests`.
const SYN: &str = "4500003c4867400040067430c0a8fe67c0a8fe6b\
        e6b222b860a0e96f00000000a002ffffd5020000020405b40402080a0055a1080000000001030307";
// The captured ICMPv6 echo request of `ipv6::tests`.
const ECHO6: &str = "600f93e300103a400000000000000000000000000000000100000000000000000000000000000001\
        8000d0111234000165636d7066776421";

fn eth(ethertype: &str, rest: &str) -> Vec<u8> {
    hex(&format!("{MACS}{ethertype}{rest}"))
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0; 16];
    x[..4].copy_from_slice(&a);
    x
}

/// Recomputes the IPv4 header checksum at `l3` (for frames edited by a test).
fn fix4(f: &mut [u8], l3: usize) {
    ipv4::Packet::new_unchecked(&mut f[l3..]).fill_checksum();
}

/// An IPv4 header (checksum filled) for `payload_len` bytes of `protocol`.
fn ipv4_header(protocol: u8, payload_len: usize) -> Vec<u8> {
    let r = ipv4::Repr {
        src_addr: Ipv4Addr::new(10, 0, 0, 1),
        dst_addr: Ipv4Addr::new(10, 0, 0, 2),
        protocol,
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        options: crate::Options::EMPTY,
        payload_len,
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut ipv4::Packet::new_unchecked(&mut b[..]));
    b.truncate(r.header_len());
    b
}

#[test]
fn captured_syn_meta() {
    let f = eth("0800", SYN);
    let m = parse_frame(&f).unwrap();
    assert_eq!(
        m,
        PacketMeta {
            l3_offset: 14,
            l4_offset: 34,
            vlan_depth: 0,
            version: IpVersion::V4,
            src: v4([192, 168, 254, 103]),
            dst: v4([192, 168, 254, 107]),
            protocol: ip_proto::TCP,
            src_port: 59058,
            dst_port: 8888,
            tcp_flags: 0x02,
            fragment: false,
            ttl: 64,
            ip_len: 60,
        }
    );
}

#[test]
fn vlan_qinq_and_padding() {
    let m = parse_frame(&eth("8100", &format!("0064 0800 {SYN}"))).unwrap();
    assert_eq!((m.vlan_depth, m.l3_offset, m.l4_offset), (1, 18, 38));
    let m = parse_frame(&eth("88a8", &format!("0064 8100 00c8 0800 {SYN}"))).unwrap();
    assert_eq!(
        (m.vlan_depth, m.l3_offset, m.l4_offset, m.dst_port),
        (2, 22, 42, 8888)
    );
    let m = parse_frame(&eth("0800", &format!("{SYN} 000000000000"))).unwrap();
    assert_eq!(m.ip_len, 60, "Ethernet padding is not part of the packet");
}

#[test]
fn captured_echo6_meta() {
    // Captured on lo, so ::1 -> ::1, which a router refuses; moved to routable addresses.
    let looped = eth("86dd", ECHO6);
    assert_eq!(parse_frame(&looped), Err(ParseError::MartianSource));
    let (src, dst) = (addr6("2001:db8::1"), addr6("2001:db8::2"));
    let mut f = looped;
    f[22..38].copy_from_slice(&src);
    f[38..54].copy_from_slice(&dst);
    let m = parse_frame(&f).unwrap();
    assert_eq!(m.version, IpVersion::V6);
    assert_eq!(
        (m.l3_offset, m.l4_offset, m.protocol, m.ip_len, m.ttl),
        (14, 54, ip_proto::ICMPV6, 56, 64)
    );
    assert_eq!((m.src, m.dst), (src, dst));
    assert_eq!((m.src_port, m.dst_port, m.fragment), (0, 0, false));
}

fn addr6(a: &str) -> [u8; 16] {
    a.parse::<core::net::Ipv6Addr>().unwrap().octets()
}

/// The captured SYN (through the fast path) with its addresses replaced.
fn syn_between(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut f = eth("0800", SYN);
    f[26..30].copy_from_slice(&src);
    f[30..34].copy_from_slice(&dst);
    fix4(&mut f, 14);
    f
}

/// The captured echo request between `src` and `dst`.
fn echo6_between(src: &str, dst: &str) -> Vec<u8> {
    let mut f = eth("86dd", ECHO6);
    f[22..38].copy_from_slice(&addr6(src));
    f[38..54].copy_from_slice(&addr6(dst));
    f
}

#[test]
fn martian_ipv4_addresses() {
    use ParseError::{MartianDestination as Dst, MartianSource as Src};
    let ok = [198, 51, 100, 7];
    let cases: [([u8; 4], Option<ParseError>, Option<ParseError>); 17] = [
        // (address, as a source, as a destination)
        ([127, 0, 0, 1], Some(Src), Some(Dst)),
        ([127, 255, 255, 254], Some(Src), Some(Dst)),
        ([0, 0, 0, 0], Some(Src), Some(Dst)),
        ([0, 1, 2, 3], Some(Src), Some(Dst)),
        ([224, 0, 0, 5], Some(Src), Some(Dst)),
        ([239, 255, 255, 255], Some(Src), Some(Dst)),
        ([240, 0, 0, 1], Some(Src), Some(Dst)),
        ([255, 255, 255, 254], Some(Src), Some(Dst)),
        ([255, 255, 255, 255], Some(Src), None),
        ([169, 254, 1, 1], Some(Src), Some(Dst)),
        ([169, 253, 1, 1], None, None),
        ([169, 255, 1, 1], None, None),
        ([1, 0, 0, 0], None, None),
        ([126, 255, 255, 255], None, None),
        ([128, 0, 0, 0], None, None),
        ([223, 255, 255, 255], None, None),
        ([10, 0, 0, 1], None, None),
    ];
    for (a, as_src, as_dst) in cases {
        // Sources in 169/8 and destinations in 169/8 and 255/8 are left to the general path,
        // refused or not.
        let (src_suspect, dst_suspect) = (a[0] == 169, a[0] == 169 || a[0] == 255);
        for (f, want, fast_ok) in [
            (syn_between(a, ok), as_src, as_src.is_none() && !src_suspect),
            (syn_between(ok, a), as_dst, as_dst.is_none() && !dst_suspect),
        ] {
            let mut m = PacketMeta::default();
            // The fast path declines every refused frame; the general path names it.
            assert_eq!(parse_fast(&f, &mut m), fast_ok, "{a:?}");
            assert_eq!(parse_frame(&f).err(), want, "{a:?}");
            assert_eq!(slow(&f).err(), want, "{a:?}");
        }
    }
    // The table agrees with the general path's predicates on every first octet.
    for i in 0..=255u8 {
        let t = V4_FIRST_OCTET[usize::from(i)];
        for rest in [[0, 0, 0], [254, 1, 1], [255, 255, 255], [1, 2, 3]] {
            let a = [i, rest[0], rest[1], rest[2]];
            if martian_v4_source(a) {
                assert!(t & V4_SRC_SUSPECT != 0, "{a:?}");
            }
            if martian_v4_destination(a) {
                assert!(t & V4_DST_SUSPECT != 0, "{a:?}");
            }
        }
    }
    // The source is checked first.
    let both = syn_between([127, 0, 0, 1], [0, 0, 0, 0]);
    assert_eq!(parse_frame(&both), Err(Src));
}

#[test]
fn martian_ipv6_addresses() {
    use ParseError::{MartianDestination as Dst, MartianSource as Src};
    let ok = "2001:db8::7";
    let cases = [
        ("::1", Some(Src), Some(Dst)),
        ("::", Some(Src), Some(Dst)),
        ("ff02::1", Some(Src), Some(Dst)),
        ("ff0e::101", Some(Src), Some(Dst)),
        ("fe80::1", Some(Src), Some(Dst)),
        ("febf:ffff::1", Some(Src), Some(Dst)),
        ("fec0::1", None, None),
        ("fe7f::1", None, None),
        ("::2", None, None),
        ("2001:db8::1", None, None),
    ];
    for (a, as_src, as_dst) in cases {
        assert_eq!(parse_frame(&echo6_between(a, ok)).err(), as_src, "{a}");
        assert_eq!(parse_frame(&echo6_between(ok, a)).err(), as_dst, "{a}");
    }
}

#[test]
fn group_source_macs() {
    for mac in [
        "ffffffffffff",
        "01005e000005",
        "333300000001",
        "030000000000",
    ] {
        let f = hex(&format!("020000000002{mac}0800{SYN}"));
        let mut m = PacketMeta::default();
        assert!(!parse_fast(&f, &mut m), "{mac}");
        assert_eq!(parse_frame(&f), Err(ParseError::BadSrcMac), "{mac}");
    }
    // Locally administered unicast (bit 1) is fine.
    let f = hex(&format!("020000000002 020000000001 0800{SYN}"));
    assert!(parse_frame(&f).is_ok());
    // ARP from a group MAC is still the host's, and a malformed frame is reported as such.
    let arp = hex("ffffffffffff 010000000001 0806 0001080006040001");
    assert_eq!(parse_frame(&arp), Err(ParseError::UnknownEthertype));
    let mut bad_sum = hex(&format!("020000000002 010000000001 0800{SYN}"));
    bad_sum[25] ^= 1;
    assert_eq!(parse_frame(&bad_sum), Err(ParseError::BadIpv4Checksum));
}

/// An IPv4 fragment at `offset` (8-byte units) holding `data` bytes of payload.
fn v4_fragment(offset: u16, data: usize) -> Vec<u8> {
    let mut f = eth("0800", &hex_of(&ipv4_header(ip_proto::UDP, data)));
    f[20..22].copy_from_slice(&offset.to_be_bytes());
    fix4(&mut f, 14);
    f.resize(14 + 20 + data, 0xab);
    f
}

/// An IPv6 later fragment at `offset` (8-byte units) holding `data` bytes after its header.
fn v6_fragment(offset: u16, data: usize) -> Vec<u8> {
    let plen = 8 + data;
    let ip = format!(
        "60000000 {plen:04x} 2c 40 {}{} 1100{:04x}00000007",
        "20010db8000000000000000000000001",
        "20010db8000000000000000000000002",
        offset << 3
    );
    let mut f = eth("86dd", &ip);
    f.resize(14 + 40 + plen, 0xab);
    f
}

#[test]
fn fragments_past_65535_bytes() {
    // Offset 8189 * 8 = 65512: with a 20-byte header, 3 data bytes end at 65535.
    assert!(parse_frame(&v4_fragment(8189, 3)).is_ok());
    assert_eq!(
        parse_frame(&v4_fragment(8189, 4)),
        Err(ParseError::BadFragment)
    );
    assert_eq!(
        parse_frame(&v4_fragment(0x1FFF, 8)),
        Err(ParseError::BadFragment)
    );
    // With MF set too (the flag bits are not part of the offset).
    let mut mf = v4_fragment(8189, 3);
    mf[20] |= 0x20;
    fix4(&mut mf, 14);
    assert!(parse_frame(&mf).unwrap().fragment);
    // IPv6: offset 65528 with 7 bytes ends at 65535, the largest payload.
    assert!(parse_frame(&v6_fragment(8191, 7)).is_ok());
    assert_eq!(
        parse_frame(&v6_fragment(8191, 8)),
        Err(ParseError::BadFragment)
    );
    assert_eq!(
        parse_frame(&v6_fragment(8100, 1000)),
        Err(ParseError::BadFragment)
    );
}

#[test]
fn ipv6_extension_chain_and_fragments() {
    // HBH, dest opts, fragment (first, M set), UDP 12345 -> 53.
    let chain =
        "3c00050200000100 2c01010400000000 0000000000000000 11000001deadbeef 3039003500080000";
    let ip = format!(
        "60000000 0028 00 40 {}{} {chain}",
        "20010db8000000000000000000000001", "20010db8000000000000000000000002"
    );
    let m = parse_frame(&eth("86dd", &ip)).unwrap();
    assert_eq!(
        (m.protocol, m.l4_offset, m.src_port, m.dst_port, m.fragment),
        (ip_proto::UDP, 86, 12345, 53, true)
    );
    // A later fragment: no L4.
    let later = format!(
        "60000000 0010 2c 40 {}{} 060005a900000007 0102030405060708",
        "20010db8000000000000000000000001", "20010db8000000000000000000000002"
    );
    let m = parse_frame(&eth("86dd", &later)).unwrap();
    assert_eq!(
        (m.protocol, m.l4_offset, m.src_port, m.fragment),
        (ip_proto::TCP, 0, 0, true)
    );
}

#[test]
fn ipv4_fragments() {
    let mut first = eth("0800", SYN);
    first[20] = 0x20; // MF, offset 0
    fix4(&mut first, 14);
    let m = parse_frame(&first).unwrap();
    assert!(m.fragment);
    assert_eq!((m.l4_offset, m.src_port, m.tcp_flags), (34, 59058, 0x02));
    let mut later = eth("0800", SYN);
    later[20] = 0x00;
    later[21] = 0xb9; // offset 185 * 8
    fix4(&mut later, 14);
    let m = parse_frame(&later).unwrap();
    assert!(m.fragment);
    assert_eq!(
        (m.l4_offset, m.src_port, m.dst_port, m.tcp_flags, m.protocol),
        (0, 0, 0, 0, ip_proto::TCP)
    );
}

#[test]
fn every_error_variant() {
    use ParseError::*;
    let syn = eth("0800", SYN);
    let mut cases: Vec<(Vec<u8>, ParseError)> = vec![
        (syn[..13].to_vec(), Truncated),
        (syn[..33].to_vec(), Truncated),
        (eth("8100", "00"), Truncated),
        (eth("86dd", &ECHO6[..70]), Truncated),
        (
            eth(
                "0806",
                "0001080006040001000c293c7ef1c0a80164000000000000c0a80101",
            ),
            UnknownEthertype,
        ),
        (eth("8847", "0012b1ff"), UnknownEthertype),
        (
            eth("8100", &format!("0001 8100 0002 8100 0003 0800 {SYN}")),
            VlanTooDeep,
        ),
        (eth("86dd", SYN), BadIpVersion),
        (eth("0800", ECHO6), BadIpVersion),
        (syn[..58].to_vec(), BadIpLength),
    ];
    let mut ihl4 = syn.clone();
    ihl4[14] = 0x44;
    cases.push((ihl4, BadIpv4HeaderLen));
    let mut ihl15 = syn[..50].to_vec();
    ihl15[14] = 0x4f;
    cases.push((ihl15, BadIpv4HeaderLen));
    let mut short_total = syn.clone();
    short_total[17] = 19;
    fix4(&mut short_total, 14);
    cases.push((short_total, BadIpLength));
    let mut long6 = eth("86dd", ECHO6);
    long6[19] = 17;
    cases.push((long6, BadIpLength));
    let mut bad_csum = syn.clone();
    bad_csum[25] ^= 0x01;
    cases.push((bad_csum, BadIpv4Checksum));
    let deep = format!(
        "60000000 0048 3c 40 {} {}",
        "00".repeat(32),
        "3c00000000000000".repeat(8) + "3b00000000000000"
    );
    cases.push((eth("86dd", &deep), Ipv6ExtChainTooDeep));
    let mut doff4 = syn.clone();
    doff4[46] = 0x40;
    cases.push((doff4, L4Truncated));
    let mut cut_tcp = syn[..14 + 30].to_vec();
    cut_tcp[17] = 30;
    fix4(&mut cut_tcp, 14);
    cases.push((cut_tcp, L4Truncated));
    let mut udp4 = eth(
        "0800",
        &format!("{}0035", hex_of(&ipv4_header(ip_proto::UDP, 4))),
    );
    udp4.extend_from_slice(&[0, 0]);
    cases.push((udp4, L4Truncated));

    cases.push((v4_fragment(8190, 16), BadFragment));
    cases.push((v6_fragment(8191, 16), BadFragment));
    cases.push((
        hex(&format!("020000000002ffffffffffff0800{SYN}")),
        BadSrcMac,
    ));
    cases.push((syn_between([127, 0, 0, 1], [10, 0, 0, 2]), MartianSource));
    cases.push((
        syn_between([10, 0, 0, 1], [127, 0, 0, 1]),
        MartianDestination,
    ));

    let mut seen = [false; ParseError::COUNT];
    for (i, (f, want)) in cases.iter().enumerate() {
        assert_eq!(parse_frame(f), Err(*want), "case {i}");
        seen[want.index()] = true;
    }
    assert!(seen.iter().all(|&s| s), "every variant exercised");
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn inner_ip_in_ip_and_gre() {
    let inner = hex(SYN);
    // IPv4 in IPv4.
    let mut f = eth("0800", &hex_of(&ipv4_header(ip_proto::IPV4, inner.len())));
    f.extend_from_slice(&inner);
    let outer = parse_frame(&f).unwrap();
    assert_eq!((outer.protocol, outer.l4_offset), (ip_proto::IPV4, 34));
    let m = parse_inner(&f, &outer).unwrap();
    assert_eq!(
        (
            m.l3_offset,
            m.l4_offset,
            m.src_port,
            m.dst_port,
            m.vlan_depth
        ),
        (34, 54, 59058, 8888, 0)
    );
    // IPv6 in IPv4 (6in4).
    let echo = hex(ECHO6);
    let mut f = eth("0800", &hex_of(&ipv4_header(ip_proto::IPV6, echo.len())));
    f.extend_from_slice(&echo);
    let m = parse_inner(&f, &parse_frame(&f).unwrap()).unwrap();
    assert_eq!(
        (m.version, m.l3_offset, m.l4_offset, m.protocol),
        (IpVersion::V6, 34, 74, ip_proto::ICMPV6)
    );
    // GRE with key carrying IPv4.
    let mut f = eth(
        "0800",
        &hex_of(&ipv4_header(ip_proto::GRE, 8 + inner.len())),
    );
    f.extend_from_slice(&hex("2000 0800 0000002a"));
    f.extend_from_slice(&inner);
    let m = parse_inner(&f, &parse_frame(&f).unwrap()).unwrap();
    assert_eq!((m.l3_offset, m.l4_offset, m.dst_port), (42, 62, 8888));
    // GRE transparent Ethernet with a VLAN tag inside.
    let inner_eth = eth("8100", &format!("0005 0800 {SYN}"));
    let mut f = eth(
        "0800",
        &hex_of(&ipv4_header(ip_proto::GRE, 4 + inner_eth.len())),
    );
    f.extend_from_slice(&hex("0000 6558"));
    f.extend_from_slice(&inner_eth);
    let m = parse_inner(&f, &parse_frame(&f).unwrap()).unwrap();
    assert_eq!(
        (m.vlan_depth, m.l3_offset, m.l4_offset, m.src_port),
        (1, 56, 76, 59058)
    );
    // GRE version 1 is not looked into.
    let mut f = eth(
        "0800",
        &hex_of(&ipv4_header(ip_proto::GRE, 4 + inner.len())),
    );
    f.extend_from_slice(&hex("0001 0800"));
    f.extend_from_slice(&inner);
    assert_eq!(parse_inner(&f, &parse_frame(&f).unwrap()), None);
}

#[test]
fn inner_vxlan() {
    let inner_eth = eth("0800", SYN);
    let udp_len = 8 + 8 + inner_eth.len();
    let mut f = eth("0800", &hex_of(&ipv4_header(ip_proto::UDP, udp_len)));
    f.extend_from_slice(&hex(&format!(
        "c350 12b5 {udp_len:04x} 0000 08000000 00006400"
    )));
    f.extend_from_slice(&inner_eth);
    let outer = parse_frame(&f).unwrap();
    assert_eq!(outer.dst_port, udp_port::VXLAN);
    let m = parse_inner(&f, &outer).unwrap();
    assert_eq!(
        (m.l3_offset, m.l4_offset, m.src_port, m.tcp_flags),
        (64, 84, 59058, 0x02)
    );
    // I flag clear.
    f[42] = 0;
    assert_eq!(parse_inner(&f, &outer), None);
    // Not a tunnel; a fragment; a forged outer meta pointing past the frame.
    let plain = eth("0800", SYN);
    let m = parse_frame(&plain).unwrap();
    assert_eq!(parse_inner(&plain, &m), None);
    let forged = PacketMeta {
        protocol: ip_proto::IPV4,
        l4_offset: 60000,
        ip_len: 65535,
        ..m
    };
    assert_eq!(parse_inner(&plain, &forged), None);
    let frag = PacketMeta {
        protocol: ip_proto::IPV4,
        fragment: true,
        ..m
    };
    assert_eq!(parse_inner(&plain, &frag), None);
}

#[test]
fn error_names() {
    assert_eq!(ParseError::COUNT, ParseError::ALL.len());
    for (i, e) in ParseError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
        assert_eq!(ParseError::from_name(e.name()), Some(*e));
        assert!(
            e.name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        );
    }
    assert_eq!(ParseError::from_name("nope"), None);
}

/// The general path alone, as `parse_frame` returned before it had a fast path.
fn slow(frame: &[u8]) -> Result<PacketMeta, ParseError> {
    let mut m = PacketMeta::default();
    parse_slow(frame, &mut m).map(|()| m)
}

#[test]
fn fast_path_takes_the_common_case() {
    let f = eth("0800", SYN);
    let mut m = PacketMeta::default();
    assert!(parse_fast(&f, &mut m));
    assert_eq!(Ok(m), slow(&f));
}

/// The limited broadcast never takes the fast path: the data path's fast admission relies on it
/// (the general path accepts it and the pipeline refuses it as not for us).
#[test]
fn fast_path_leaves_the_limited_broadcast_to_the_general_path() {
    let mut f = eth("0800", SYN);
    f[30..34].copy_from_slice(&[255; 4]);
    fix4(&mut f, 14);
    assert_eq!(parse_fast_v4(&f), None);
    assert_eq!(parse_frame(&f).map(|m| m.dst), Ok(v4([255; 4])));
}

/// IPv4 addresses on both sides of every input-check boundary (the proptest's choices).
const EDGE_V4: [[u8; 4]; 16] = [
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [0, 0, 0, 0],
    [1, 0, 0, 0],
    [126, 255, 255, 255],
    [127, 0, 0, 1],
    [128, 0, 0, 0],
    [169, 254, 0, 1],
    [169, 253, 255, 255],
    [223, 255, 255, 255],
    [224, 0, 0, 5],
    [239, 255, 255, 255],
    [240, 0, 0, 0],
    [255, 255, 255, 254],
    [255, 255, 255, 255],
    [198, 51, 100, 7],
];

proptest::proptest! {
    /// The fast path accepts a frame only with the general path's exact result, and every
    /// frame it declines still gets the general path's answer (error reason included).
    #[test]
    fn fast_path_agrees_with_the_general_path(
        tcp in proptest::bool::ANY,
        payload in 0usize..40,
        pad in 0usize..30,
        edits in proptest::collection::vec((0usize..80, proptest::num::u8::ANY), 0..4),
        fix in proptest::bool::ANY,
        cut in 0usize..100,
        src in proptest::sample::select(&EDGE_V4[..]),
        dst in proptest::sample::select(&EDGE_V4[..]),
        group_src_mac in proptest::bool::weighted(0.1),
    ) {
        let (proto, l4) = if tcp {
            (6, "e6b222b860a0e96f00000000a012ffffd5020000")
        } else {
            (17, "e6b20035001c0000")
        };
        let l4 = hex(l4);
        let mut f = hex(MACS);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend(ipv4_header(proto, l4.len() + payload));
        f.extend(&l4);
        f.extend((0..payload + pad).map(|i| i as u8));
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        fix4(&mut f[..34], 14);
        if group_src_mac {
            f[6] |= 1;
        }
        for (at, b) in edits {
            if let Some(x) = f.get_mut(at) {
                *x = b;
            }
        }
        if fix && f.len() >= 34 && f[14] >> 4 == 4 {
            let ihl = usize::from(f[14] & 0x0F) * 4;
            if ihl >= 20 && f.len() >= 14 + ihl {
                fix4(&mut f[..14 + ihl], 14);
            }
        }
        f.truncate(f.len().saturating_sub(cut % 8 * (cut / 8 % 2)));
        let mut m = PacketMeta::default();
        let fast = parse_fast(&f, &mut m);
        let general = slow(&f);
        if fast {
            proptest::prop_assert_eq!(Ok(m), general);
        }
        proptest::prop_assert_eq!(parse_frame(&f), general);
    }
}
