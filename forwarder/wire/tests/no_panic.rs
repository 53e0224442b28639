//! Nothing that takes packet bytes may panic, whatever the bytes: the parser, the inner parser,
//! and every `new_checked` view with all its accessors and `Repr::parse`.

use ecmp_wire::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn views(b: &[u8]) {
    if let Ok(p) = ethernet::Frame::new_checked(b) {
        let _ = (p.dst_addr(), p.src_addr(), p.ethertype(), p.payload());
        let _ = ethernet::Repr::parse(&p);
    }
    if let Ok(p) = vlan::Tag::new_checked(b) {
        let _ = (p.pcp(), p.dei(), p.vid(), p.ethertype(), p.payload());
        let _ = vlan::Repr::parse(&p);
    }
    if let Ok(p) = arp::Packet::new_checked(b) {
        let _ = (
            p.hardware_type(),
            p.protocol_type(),
            p.operation(),
            p.payload(),
        );
        let _ = (
            p.source_hardware_addr(),
            p.source_protocol_addr(),
            p.target_hardware_addr(),
            p.target_protocol_addr(),
        );
        let _ = arp::Repr::parse(&p);
    }
    if let Ok(p) = ipv4::Packet::new_checked(b) {
        let _ = (
            p.version(),
            p.dscp(),
            p.ecn(),
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
        );
        let _ = (
            p.ttl(),
            p.protocol(),
            p.src_addr(),
            p.dst_addr(),
            p.verify_checksum(),
            p.options(),
            p.payload(),
        );
        // Emit clears the reserved flag bit; round trips hold for headers without it.
        if let Ok(r) = ipv4::Repr::parse(&p)
            .map_err(|_| ())
            .and_then(|r| if b[6] & 0x80 == 0 { Ok(r) } else { Err(()) })
        {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut ipv4::Packet::new_unchecked(&mut out[..]));
            // 0x0000 and 0xFFFF are both valid encodings of a zero sum (RFC 1624 section 3) and
            // emit writes the first: compare the checksum by validity, every other byte exactly.
            assert!(ipv4::Packet::new_unchecked(&out[..]).verify_checksum());
            let hl = r.header_len();
            assert_eq!(&out[..10], &b[..10], "header round trip");
            assert_eq!(&out[12..hl], &b[12..hl], "header round trip");
        }
        let mut owned = b.to_vec();
        let mut m = ipv4::Packet::new_unchecked(&mut owned[..]);
        m.decrement_ttl();
        let _ = (m.options_mut().len(), m.payload_mut().len());
    }
    if let Ok(p) = ipv6::Packet::new_checked(b) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.next_header(),
            p.hop_limit(),
        );
        let _ = (p.src_addr(), p.dst_addr(), p.payload(), p.ext_chain(8));
        let _ = ipv6::Repr::parse(&p);
    }
    if let Ok(p) = ipv6::ExtHeader::new_checked(b) {
        let _ = (p.next_header(), p.data(), p.payload());
        if let Ok(r) = ipv6::ExtHeaderRepr::parse(&p) {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut ipv6::ExtHeader::new_unchecked(&mut out[..]));
            assert_eq!(&out[..], &b[..r.buffer_len()]);
        }
    }
    if let Ok(p) = ipv6::FragmentHeader::new_checked(b) {
        let _ = (
            p.next_header(),
            p.frag_offset(),
            p.more_frags(),
            p.ident(),
            p.payload(),
        );
        let _ = ipv6::FragmentRepr::parse(&p);
    }
    for first in [0u8, 6, 17, 43, 44, 60] {
        let _ = ipv6::walk_ext_headers(first, b, 8);
    }
    if let Ok(p) = tcp::Packet::new_checked(b) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.seq_number(),
            p.ack_number(),
            p.flags(),
            p.window_len(),
        );
        let _ = (
            p.urgent_at(),
            p.options(),
            p.payload(),
            p.verify_checksum(0x1234),
        );
        // Emit clears the three reserved bits; round trips hold for headers without them.
        if let Ok(r) = tcp::Repr::parse(&p)
            .map_err(|_| ())
            .and_then(|r| if b[12] & 0x0E == 0 { Ok(r) } else { Err(()) })
        {
            let mut out = b.to_vec();
            let mut q = tcp::Packet::new_unchecked(&mut out[..]);
            r.emit(&mut q);
            q.set_checksum(p.checksum());
            assert_eq!(&out[..], b, "header round trip");
        }
    }
    if let Ok(p) = udp::Packet::new_checked(b) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.payload(),
            p.verify_checksum(0),
        );
        let _ = udp::Repr::parse(&p);
    }
    if let Ok(p) = icmpv4::Packet::new_checked(b) {
        let _ = (
            p.msg_type(),
            p.code(),
            p.rest_of_header(),
            p.echo_ident(),
            p.echo_seq_no(),
            p.payload(),
        );
        let _ = icmpv4::Repr::parse(&p);
    }
    if let Ok(p) = icmpv6::Packet::new_checked(b) {
        let _ = (p.msg_type(), p.code(), p.rest_of_header(), p.payload());
        let _ = icmpv6::Repr::parse(&p, 0);
    }
    if let Ok(p) = gre::Packet::new_checked(b) {
        let _ = (
            p.checksum(),
            p.key(),
            p.sequence(),
            p.protocol_type(),
            p.payload(),
            p.verify_checksum(),
        );
        // Emit zeroes Reserved1 (after a checksum); round trips hold when it is zero.
        let reserved1_zero = !p.checksum_present() || b[6..8] == [0, 0];
        if let Ok(r) = gre::Repr::parse(&p)
            .map_err(|_| ())
            .and_then(|r| if reserved1_zero { Ok(r) } else { Err(()) })
        {
            let mut out = vec![0u8; b.len()];
            out[r.header_len()..].copy_from_slice(p.payload());
            let mut q = gre::Packet::new_unchecked(&mut out[..]);
            r.emit(&mut q);
            q.fill_checksum();
            // As for IPv4: a zero sum has two valid checksum encodings.
            if p.checksum_present() {
                assert!(gre::Packet::new_unchecked(&out[..]).verify_checksum());
                out[4..6].copy_from_slice(&b[4..6]);
            }
            assert_eq!(&out[..], b, "GRE round trip");
        }
    }
    if let Ok(p) = vxlan::Packet::new_checked(b) {
        let _ = (p.flags(), p.vni(), p.payload());
        let _ = vxlan::Repr::parse(&p);
    }
    if let Ok(p) = gue::Packet::new_checked(b) {
        let _ = (
            p.version(),
            p.control(),
            p.proto_ctype(),
            p.flags(),
            p.optional_fields(),
            p.payload(),
        );
        let _ = gue::Repr::parse(&p);
    }
    if let Ok(p) = mpls::Entry::new_checked(b) {
        let _ = (
            p.label(),
            p.traffic_class(),
            p.bottom_of_stack(),
            p.ttl(),
            p.payload(),
        );
        let _ = mpls::Repr::parse(&p);
    }
    let _ = mpls::stack_len(b, 4);
}

fn parsers(b: &[u8]) {
    if let Ok(m) = parse_frame(b) {
        let (l3, l4) = (usize::from(m.l3_offset), usize::from(m.l4_offset));
        assert!(l3 + usize::from(m.ip_len) <= b.len());
        assert!(l4 == 0 || (l3 < l4 && l4 <= l3 + usize::from(m.ip_len)));
        if let Some(i) = parse_inner(b, &m) {
            assert!(
                usize::from(i.l3_offset) + usize::from(i.ip_len)
                    <= usize::from(m.l3_offset) + usize::from(m.ip_len)
            );
        }
    }
    // Also with a forged outer meta: parse_inner must only rely on bounds it checks itself.
    for protocol in [4u8, 41, 47, 17] {
        let forged = PacketMeta {
            l3_offset: 14,
            l4_offset: 34,
            protocol,
            dst_port: 4789,
            ip_len: 1500,
            ..PacketMeta::default()
        };
        let _ = parse_inner(b, &forged);
    }
}

/// Valid frames to mutate: the captured SYN over Ethernet, in VLAN, in VXLAN; an IPv6 chain;
/// a GRE/TEB tunnel.
fn seeds() -> Vec<Vec<u8>> {
    let h = |s: &str| -> Vec<u8> {
        let d: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        d.chunks(2)
            .map(|p| {
                u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex digit")
            })
            .collect()
    };
    let syn = "4500003c4867400040067430c0a8fe67c0a8fe6be6b222b860a0e96f00000000a002ffffd5020000020405b40402080a0055a1080000000001030307";
    let macs = "020000000002020000000001";
    let inner = format!("{macs}0800{syn}");
    vec![
        h(&inner),
        h(&format!("{macs}88a80064810000c80800{syn}")),
        h(&format!(
            "{macs}08004500006e000140004011267c0a0000010a000002c35012b5005a00000800000000006400{inner}"
        )),
        h(&format!(
            "{macs}86dd60000000002800402001 0db8000000000000000000000001 20010db8000000000000000000000002 \
             3c00050200000100 2c01010400000000 0000000000000000 11000001deadbeef 3039003500080000"
        )),
        // The captured ICMPv6 echo request, moved from ::1 (a martian) to routable addresses.
        h(&format!(
            "{macs}86dd6000000000103a40 20010db8000000000000000000000001 20010db8000000000000000000000002 \
             8000d0111234000165636d7066776421"
        )),
    ]
}

fn arbitrary(b: &[u8]) {
    parsers(b);
    views(b);
}

/// Seed frame `seed` with the bytes of `flips` overwritten (positions modulo its length), parsed
/// whole and cut at `cut` (modulo its length + 1), and viewed from every header offset.
fn mutated(seed: usize, flips: &[(usize, u8)], cut: usize) {
    let mut f = seeds()[seed].clone();
    for &(at, v) in flips {
        let n = f.len();
        f[at % n] = v;
    }
    parsers(&f);
    let cut = cut % (f.len() + 1);
    parsers(&f[..cut]);
    for off in [0, 14, 18, 22, 34, 42, 54] {
        if let Some(rest) = f.get(off..) {
            views(rest);
        }
    }
}

proptest! {
    // The committed failures (`no_panic.proptest-regressions`, next to this file) are replayed
    // before new cases; the default `SourceParallel` looks for it beside a `lib.rs`, which an
    // integration test does not have.
    #![proptest_config(ProptestConfig {
        cases: 4096,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        arbitrary(&b);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        seed in 0usize..5,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        mutated(seed, &flips, cut);
    }
}

/// The shrunk inputs recorded in `no_panic.proptest-regressions`, replayed as they are: the file's
/// seeds reproduce the original failures only under the proptest version and strategies that
/// found them.
#[test]
fn committed_regressions_do_not_panic() {
    // `b = [0 x 12, 82, 0 x 19]`: EtherType 0x5200 (unknown) over zeros.
    let mut b = [0u8; 32];
    b[12] = 82;
    arbitrary(&b);
    // `seed = 1, flips = [(0, 0)], cut = 0`: the QinQ seed with its first byte zeroed, cut to nothing.
    mutated(1, &[(0, 0)], 0);
}

#[test]
fn seeds_parse() {
    for (i, s) in seeds().iter().enumerate() {
        assert!(parse_frame(s).is_ok(), "seed {i}");
    }
}
