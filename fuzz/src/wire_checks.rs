//! What must hold for any bytes given to the wire crate: nothing panics, and a frame that
//! [`parse_frame`] accepts is described exactly by its [`PacketMeta`].
//!
//! The invariants of an accepted frame, checked against the raw bytes rather than the parser's
//! own arithmetic:
//! - the IP packet `[l3_offset, l3_offset + ip_len)` lies inside the frame; the outer one starts
//!   right after the Ethernet header and its `vlan_depth` tags;
//! - `ip_len` is the header's own length field (IPv4 total length, 40 + IPv6 payload length), at
//!   least the header, and the frame cut one byte short of it is rejected;
//! - `l4_offset` is 0 exactly for a later fragment, otherwise after `l3_offset` and at most the
//!   end of the IP packet; a TCP, UDP or SCTP header there fits in the IP packet and its ports and
//!   flags are the ones in `meta`;
//! - addresses, protocol, TTL and the fragment flag are the header's; an IPv4 header checksum
//!   verifies; the checked views of the IP (and TCP) header accept the same bytes;
//! - Ethernet padding after the IP packet changes nothing (`parse_frame` and `parse_inner` on the
//!   frame cut at the end of the IP packet give the same answer);
//! - an inner packet from [`parse_inner`] lies within the outer IP packet, after its L4 offset,
//!   and satisfies the same per-header invariants.

use ecmp_wire::meta::{IpVersion, PacketMeta};
use ecmp_wire::parse::{MAX_IPV6_EXT_HEADERS, MAX_VLAN_DEPTH};
use ecmp_wire::{
    arp, checksum, ethernet, gre, gue, icmpv4, icmpv6, ip_proto, ipv4, ipv6, mpls, parse_frame,
    parse_inner, tcp, udp, udp_port, vlan, vxlan,
};

/// Runs every check of this module on `frame`; panics (the fuzzer's finding) when one fails.
pub fn check_frame(frame: &[u8]) {
    views(frame);
    match parse_frame(frame) {
        Ok(outer) => {
            check_accepted(frame, &outer);
            for off in [outer.l3_offset, outer.l4_offset] {
                let off = usize::from(off);
                if off != 0
                    && let Some(rest) = frame.get(off..)
                {
                    views(rest);
                }
            }
            if let Some(l4) = usize::from(outer.l4_offset).checked_add(udp::HEADER_LEN)
                && outer.l4_offset != 0
                && let Some(rest) = frame.get(l4..)
            {
                // VXLAN, GUE and MPLS-in-UDP headers follow the UDP header.
                views(rest);
            }
        }
        Err(_) => {
            // Rejected frames still reach the views past the Ethernet header and one tag.
            for off in [ethernet::HEADER_LEN, ethernet::HEADER_LEN + 4] {
                if let Some(rest) = frame.get(off..) {
                    views(rest);
                }
            }
        }
    }
    forged_outer(frame);
}

/// Checks an accepted frame's meta and its inner packet, if any; returns the inner meta.
/// Used on every frame the pipeline transmits too.
pub fn check_accepted(frame: &[u8], outer: &PacketMeta) -> Option<PacketMeta> {
    assert!(
        usize::from(outer.vlan_depth) <= MAX_VLAN_DEPTH,
        "vlan_depth: {outer:?}"
    );
    assert_eq!(
        usize::from(outer.l3_offset),
        ethernet::HEADER_LEN + 4 * usize::from(outer.vlan_depth),
        "outer l3_offset: {outer:?}"
    );
    check_meta(frame, outer);
    let end = usize::from(outer.l3_offset) + usize::from(outer.ip_len);
    let unpadded = &frame[..end];
    assert_eq!(
        parse_frame(unpadded),
        Ok(*outer),
        "Ethernet padding changed the meta"
    );
    assert!(
        parse_frame(&frame[..end - 1]).is_err(),
        "frame cut inside its IP packet accepted: {outer:?}"
    );

    let inner = parse_inner(frame, outer)?;
    assert_eq!(
        parse_inner(unpadded, outer),
        Some(inner),
        "Ethernet padding changed the inner meta"
    );
    assert!(
        outer.l4_offset != 0 && !outer.fragment,
        "inner packet of a fragment: {outer:?}"
    );
    let (ol4, il3) = (usize::from(outer.l4_offset), usize::from(inner.l3_offset));
    assert!(il3 >= ol4, "inner l3 before outer l4: {outer:?} {inner:?}");
    assert!(
        il3 + usize::from(inner.ip_len) <= end,
        "inner packet past the outer one: {outer:?} {inner:?}"
    );
    assert!(usize::from(inner.vlan_depth) <= MAX_VLAN_DEPTH);
    match outer.protocol {
        ip_proto::IPV4 | ip_proto::IPV6 => {
            assert_eq!((il3, inner.vlan_depth), (ol4, 0), "IP in IP: {inner:?}")
        }
        ip_proto::UDP => {
            assert_eq!(outer.dst_port, udp_port::VXLAN);
            assert_eq!(
                il3,
                ol4 + udp::HEADER_LEN
                    + vxlan::HEADER_LEN
                    + ethernet::HEADER_LEN
                    + 4 * usize::from(inner.vlan_depth),
                "VXLAN inner offset: {inner:?}"
            );
        }
        ip_proto::GRE => assert!(il3 >= ol4 + gre::BASE_HEADER_LEN),
        p => panic!("inner packet under protocol {p}: {outer:?}"),
    }
    check_meta(unpadded, &inner);
    Some(inner)
}

/// The per-header invariants of `m` against `frame` (for an outer or an inner packet).
fn check_meta(frame: &[u8], m: &PacketMeta) {
    let l3 = usize::from(m.l3_offset);
    let l4 = usize::from(m.l4_offset);
    let end = l3 + usize::from(m.ip_len);
    assert!(end <= frame.len(), "IP packet past the frame: {m:?}");
    let ip = &frame[l3..end];
    let be16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    // Where the L4 header must be per the IP header; `None` for a later fragment.
    let expected_l4 = match m.version {
        IpVersion::V4 => {
            assert!(ip.len() >= ipv4::MIN_HEADER_LEN, "IPv4 ip_len: {m:?}");
            assert_eq!(ip[0] >> 4, 4, "IPv4 version: {m:?}");
            let ihl = usize::from(ip[0] & 0x0F) * 4;
            assert!(ihl >= ipv4::MIN_HEADER_LEN && ihl <= ip.len(), "IHL: {m:?}");
            assert_eq!(usize::from(be16(ip, 2)), ip.len(), "total length: {m:?}");
            assert!(checksum::verify(&ip[..ihl]), "IPv4 checksum: {m:?}");
            assert_eq!(&m.src[..4], &ip[12..16]);
            assert_eq!(&m.dst[..4], &ip[16..20]);
            assert_eq!((&m.src[4..], &m.dst[4..]), (&[0u8; 12][..], &[0u8; 12][..]));
            assert_eq!((m.protocol, m.ttl), (ip[9], ip[8]), "{m:?}");
            let frag = be16(ip, 6);
            assert_eq!(m.fragment, frag & 0x3FFF != 0, "fragment flag: {m:?}");
            assert!(ipv4::Packet::new_checked(ip).is_ok(), "IPv4 view: {m:?}");
            (frag & 0x1FFF == 0).then_some(l3 + ihl)
        }
        IpVersion::V6 => {
            assert!(ip.len() >= ipv6::HEADER_LEN, "IPv6 ip_len: {m:?}");
            assert_eq!(ip[0] >> 4, 6, "IPv6 version: {m:?}");
            assert_eq!(
                usize::from(be16(ip, 4)) + ipv6::HEADER_LEN,
                ip.len(),
                "payload length: {m:?}"
            );
            assert_eq!(&m.src[..], &ip[8..24]);
            assert_eq!(&m.dst[..], &ip[24..40]);
            assert_eq!(m.ttl, ip[7]);
            assert!(ipv6::Packet::new_checked(ip).is_ok(), "IPv6 view: {m:?}");
            let chain =
                ipv6::walk_ext_headers(ip[6], &ip[ipv6::HEADER_LEN..], MAX_IPV6_EXT_HEADERS);
            let Ok(chain) = chain else {
                panic!("accepted IPv6 chain does not walk: {chain:?} {m:?}");
            };
            assert_eq!(m.protocol, chain.protocol, "{m:?}");
            assert_eq!(m.fragment, chain.fragment.is_some(), "{m:?}");
            chain.l4_offset.map(|o| l3 + ipv6::HEADER_LEN + o)
        }
    };
    let Some(expected_l4) = expected_l4 else {
        assert!(m.fragment, "no L4 header outside a later fragment: {m:?}");
        assert_eq!(
            (m.l4_offset, m.src_port, m.dst_port, m.tcp_flags),
            (0, 0, 0, 0),
            "later fragment: {m:?}"
        );
        return;
    };
    assert_eq!(l4, expected_l4, "l4_offset: {m:?}");
    assert!(l3 < l4 && l4 <= end, "l4_offset outside the packet: {m:?}");
    let seg = &frame[l4..end];
    match m.protocol {
        ip_proto::TCP => {
            assert!(seg.len() >= tcp::MIN_HEADER_LEN, "TCP cut: {m:?}");
            let doff = usize::from(seg[12] >> 4) * 4;
            assert!(
                doff >= tcp::MIN_HEADER_LEN && doff <= seg.len(),
                "TCP data offset: {m:?}"
            );
            assert!(tcp::Packet::new_checked(seg).is_ok(), "TCP view: {m:?}");
            assert_eq!(
                (m.src_port, m.dst_port, m.tcp_flags),
                (be16(seg, 0), be16(seg, 2), seg[13])
            );
        }
        ip_proto::UDP | ip_proto::SCTP => {
            let min = if m.protocol == ip_proto::UDP {
                udp::HEADER_LEN
            } else {
                12
            };
            assert!(seg.len() >= min, "L4 header cut: {m:?}");
            assert_eq!(
                (m.src_port, m.dst_port, m.tcp_flags),
                (be16(seg, 0), be16(seg, 2), 0)
            );
        }
        _ => assert_eq!((m.src_port, m.dst_port, m.tcp_flags), (0, 0, 0), "{m:?}"),
    }
}

/// `parse_inner` must rely only on bounds it checks itself, whatever the outer meta claims.
fn forged_outer(frame: &[u8]) {
    for protocol in [ip_proto::IPV4, ip_proto::IPV6, ip_proto::GRE, ip_proto::UDP] {
        for (l3, l4, ip_len) in [(14, 34, 1500), (0, 1, u16::MAX), (14, 14, 20)] {
            let forged = PacketMeta {
                l3_offset: l3,
                l4_offset: l4,
                protocol,
                dst_port: udp_port::VXLAN,
                ip_len,
                ..PacketMeta::default()
            };
            let _ = parse_inner(frame, &forged);
        }
    }
}

/// Every checked view of the wire crate on `b`: accessors, `payload()`, `Repr::parse`, and the
/// emit round trips that hold for any accepted header.
fn views(b: &[u8]) {
    if let Ok(p) = ethernet::Frame::new_checked(b) {
        let _ = (p.dst_addr(), p.src_addr(), p.ethertype(), p.payload());
        if let Ok(r) = ethernet::Repr::parse(&p) {
            let mut out = vec![0u8; r.header_len()];
            r.emit(&mut ethernet::Frame::new_unchecked(&mut out[..]));
            assert_eq!(&out[..], &b[..r.header_len()], "Ethernet round trip");
        }
    }
    if let Ok(p) = vlan::Tag::new_checked(b) {
        let _ = (p.pcp(), p.dei(), p.vid(), p.ethertype(), p.payload());
        let _ = vlan::Repr::parse(&p);
    }
    if let Ok(p) = arp::Packet::new_checked(b) {
        let _ = (p.hardware_type(), p.protocol_type(), p.operation());
        let _ = (p.source_hardware_addr(), p.source_protocol_addr());
        let _ = (
            p.target_hardware_addr(),
            p.target_protocol_addr(),
            p.payload(),
        );
        let _ = arp::Repr::parse(&p);
    }
    ipv4_view(b);
    if let Ok(p) = ipv6::Packet::new_checked(b) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.next_header(),
        );
        let _ = (p.hop_limit(), p.src_addr(), p.dst_addr(), p.payload());
        let _ = p.ext_chain(MAX_IPV6_EXT_HEADERS);
        let _ = ipv6::Repr::parse(&p);
    }
    if let Ok(p) = ipv6::ExtHeader::new_checked(b) {
        let _ = (p.next_header(), p.data(), p.payload());
        if let Ok(r) = ipv6::ExtHeaderRepr::parse(&p) {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut ipv6::ExtHeader::new_unchecked(&mut out[..]));
            assert_eq!(
                &out[..],
                &b[..r.buffer_len()],
                "extension header round trip"
            );
        }
    }
    if let Ok(p) = ipv6::FragmentHeader::new_checked(b) {
        let _ = (p.next_header(), p.frag_offset(), p.more_frags(), p.ident());
        let _ = (p.payload(), ipv6::FragmentRepr::parse(&p));
    }
    for first in [
        ip_proto::HOPOPT,
        ip_proto::TCP,
        ip_proto::UDP,
        ip_proto::IPV6_ROUTE,
        ip_proto::IPV6_FRAG,
        ip_proto::IPV6_OPTS,
    ] {
        let _ = ipv6::walk_ext_headers(first, b, MAX_IPV6_EXT_HEADERS);
    }
    tcp_view(b);
    if let Ok(p) = udp::Packet::new_checked(b) {
        let _ = (p.src_port(), p.dst_port(), p.len(), p.payload());
        let _ = (p.verify_checksum(0), udp::Repr::parse(&p));
    }
    if let Ok(p) = icmpv4::Packet::new_checked(b) {
        let _ = (p.msg_type(), p.code(), p.rest_of_header(), p.payload());
        let _ = (p.echo_ident(), p.echo_seq_no(), icmpv4::Repr::parse(&p));
    }
    if let Ok(p) = icmpv6::Packet::new_checked(b) {
        let _ = (p.msg_type(), p.code(), p.rest_of_header(), p.payload());
        let _ = icmpv6::Repr::parse(&p, 0);
    }
    gre_view(b);
    if let Ok(p) = vxlan::Packet::new_checked(b) {
        let _ = (p.flags(), p.vni(), p.payload(), vxlan::Repr::parse(&p));
    }
    if let Ok(p) = gue::Packet::new_checked(b) {
        let _ = (p.version(), p.control(), p.proto_ctype(), p.flags());
        let _ = (p.optional_fields(), p.payload(), gue::Repr::parse(&p));
    }
    if let Ok(p) = mpls::Entry::new_checked(b) {
        let _ = (p.label(), p.traffic_class(), p.bottom_of_stack(), p.ttl());
        let _ = (p.payload(), mpls::Repr::parse(&p));
    }
    let _ = mpls::stack_len(b, 4);
}

fn ipv4_view(b: &[u8]) {
    let Ok(p) = ipv4::Packet::new_checked(b) else {
        return;
    };
    let _ = (p.version(), p.dscp(), p.ecn(), p.ident(), p.dont_frag());
    let _ = (p.more_frags(), p.frag_offset(), p.ttl(), p.protocol());
    let _ = (p.src_addr(), p.dst_addr(), p.verify_checksum());
    let _ = (p.options(), p.payload());
    // Emit clears the reserved flag bit, so the round trip holds only without it.
    if let Ok(r) = ipv4::Repr::parse(&p)
        && b[6] & 0x80 == 0
    {
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut ipv4::Packet::new_unchecked(&mut out[..]));
        let hl = r.header_len();
        assert_same_but_checksum(&out[..hl], &b[..hl], 10, "IPv4 header round trip");
        assert!(checksum::verify(&out[..hl]), "emitted IPv4 checksum");
    }
    let mut owned = b.to_vec();
    let mut m = ipv4::Packet::new_unchecked(&mut owned[..]);
    let valid = m.verify_checksum();
    let ttl = m.ttl();
    let new_ttl = m.decrement_ttl();
    assert_eq!(new_ttl, ttl.saturating_sub(1), "decrement_ttl");
    if valid {
        assert!(
            m.verify_checksum(),
            "the incremental checksum update broke a valid header"
        );
    }
    let _ = (m.options_mut().len(), m.payload_mut().len());
}

fn tcp_view(b: &[u8]) {
    let Ok(p) = tcp::Packet::new_checked(b) else {
        return;
    };
    let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
    let _ = (p.flags(), p.window_len(), p.urgent_at(), p.options());
    let _ = (p.payload(), p.verify_checksum(0x1234));
    // Emit clears the three reserved bits, so the round trip holds only without them.
    if let Ok(r) = tcp::Repr::parse(&p)
        && b[12] & 0x0E == 0
    {
        let mut out = b.to_vec();
        let mut q = tcp::Packet::new_unchecked(&mut out[..]);
        r.emit(&mut q);
        q.set_checksum(p.checksum());
        assert_eq!(&out[..], b, "TCP header round trip");
    }
}

fn gre_view(b: &[u8]) {
    let Ok(p) = gre::Packet::new_checked(b) else {
        return;
    };
    let _ = (p.checksum(), p.key(), p.sequence(), p.protocol_type());
    let _ = (p.payload(), p.verify_checksum());
    // Emit zeroes Reserved1 (after a checksum), so the round trip holds only when it is zero.
    let reserved1_zero = !p.checksum_present() || b[6..8] == [0, 0];
    if let Ok(r) = gre::Repr::parse(&p)
        && reserved1_zero
    {
        let mut out = vec![0u8; b.len()];
        out[r.header_len()..].copy_from_slice(p.payload());
        let mut q = gre::Packet::new_unchecked(&mut out[..]);
        r.emit(&mut q);
        q.fill_checksum();
        if p.checksum_present() {
            assert!(q.verify_checksum(), "emitted GRE checksum");
            assert_same_but_checksum(&out, b, 4, "GRE round trip");
        } else {
            assert_eq!(&out[..], b, "GRE round trip");
        }
    }
}

/// `emitted == original`, except that the 16-bit checksum at `at` may be the other
/// representation of zero: a ones'-complement sum has two (0x0000 and 0xFFFF), a receiver
/// accepts both, and an emitter writes the one its arithmetic yields.
fn assert_same_but_checksum(emitted: &[u8], original: &[u8], at: usize, what: &str) {
    let field = |b: &[u8]| u16::from_be_bytes([b[at], b[at + 1]]);
    let (e, o) = (field(emitted), field(original));
    let zero = |c: u16| c == 0 || c == 0xFFFF;
    assert!(
        e == o || (zero(e) && zero(o)),
        "{what}: checksum {e:#06x} vs {o:#06x}"
    );
    let rest = |b: &[u8]| [&b[..at], &b[at + 2..]].concat();
    assert_eq!(rest(emitted), rest(original), "{what}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds;

    #[test]
    fn every_corpus_frame_passes_and_ok_ones_parse() {
        let corpus = seeds::wire_corpus().expect("corpus readable");
        assert!(corpus.len() >= 20, "corpus found: {}", corpus.len());
        for (name, frame) in &corpus {
            check_frame(frame);
            let want_ok = name.starts_with("ok__");
            assert_eq!(parse_frame(frame).is_ok(), want_ok, "{name}");
        }
    }

    #[test]
    fn vxlan_frame_has_a_checked_inner_packet() {
        let corpus = seeds::wire_corpus().expect("corpus readable");
        let (_, frame) = corpus
            .iter()
            .find(|(n, _)| n == "ok__vxlan_ipv4_syn")
            .expect("VXLAN frame in the corpus");
        let outer = parse_frame(frame).expect("parses");
        let inner = check_accepted(frame, &outer).expect("inner packet");
        assert_eq!((inner.src_port, inner.dst_port), (59058, 8888));
    }

    /// Found by the fuzzer: a GRE header whose checksum field holds 0xFFFF over data summing to
    /// negative zero verifies, and re-emitting it writes 0x0000, the other zero.
    #[test]
    fn gre_checksum_of_either_zero_round_trips() {
        let mut b = vec![0x80, 0x00, 0x7f, 0xff, 0xff, 0xff, 0x00, 0x00];
        b.extend_from_slice(&[0; 8]);
        let p = gre::Packet::new_checked(&b[..]).expect("GRE header");
        assert!(p.verify_checksum());
        assert!(gre::Repr::parse(&p).is_ok(), "the round trip runs");
        gre_view(&b);
        assert_same_but_checksum(&[1, 0, 0, 2], &[1, 0xff, 0xff, 2], 1, "either zero");
        let wrong = std::panic::catch_unwind(|| {
            assert_same_but_checksum(&[1, 0, 1, 2], &[1, 0xff, 0xff, 2], 1, "not zero")
        });
        assert!(wrong.is_err());
    }

    #[test]
    fn a_wrong_meta_is_caught() {
        let corpus = seeds::wire_corpus().expect("corpus readable");
        let (_, frame) = corpus
            .iter()
            .find(|(n, _)| n == "ok__ipv4_tcp_syn")
            .expect("SYN in the corpus");
        let m = parse_frame(frame).expect("parses");
        for bad in [
            PacketMeta {
                l4_offset: m.l4_offset + 4,
                ..m
            },
            PacketMeta {
                ip_len: m.ip_len - 1,
                ..m
            },
            PacketMeta { src_port: 1, ..m },
        ] {
            let caught = std::panic::catch_unwind(|| check_meta(frame, &bad));
            assert!(caught.is_err(), "{bad:?} passed");
        }
    }
}
