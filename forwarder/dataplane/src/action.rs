//! What is done to a forwarded packet: rewrite (MACs, TTL) or encapsulation toward the next hop.
//!
//! Every packet leaves untagged, with the Ethernet padding beyond the IP length trimmed, and with
//! its TTL / hop limit decremented (IPv4 checksum updated incrementally, RFC 1624). Encapsulation
//! writes the outer headers into the frame's headroom; the inner packet is never copied.
//! The caller has already parsed the frame ([`PacketMeta`] offsets and lengths are trusted here
//! because `parse_frame` verified them against the frame) and dropped TTL <= 1.

use std::net::IpAddr;

use ecmp_tables::nexthop::{Action, Encap, EncapKind, HopId, NextHop, PortInfo};
use ecmp_tables::snapshot::Snapshot;
use ecmp_wire::meta::{IpVersion, PacketMeta};
use ecmp_wire::{checksum, ethernet, ethertype, gre, gue, ip_proto, ipv4, ipv6, mpls, udp, vxlan};

use crate::drop::DropReason;
use ecmp_port::{Frame, PortId};

const ETH: usize = ethernet::HEADER_LEN;

/// The most bytes an encapsulation pushes in front of a received frame: VXLAN over IPv6 (outer
/// Ethernet, IPv6, UDP and VXLAN headers; the frame's own Ethernet header becomes the inner
/// one). Backends whose buffers' headroom is fixed (DPDK's mbufs) check it against this at
/// start, so no frame is dropped for `no_headroom` at run time.
pub const MAX_ENCAP_PUSH: usize = ETH + ipv6::HEADER_LEN + udp::HEADER_LEN + vxlan::HEADER_LEN;

/// Bytes `encapsulate` pushes in front of the frame for `kind` with an outer header of the
/// family of `dst`.
#[inline]
fn push_len(kind: &EncapKind, dst: IpAddr) -> usize {
    let outer_ip_hdr = match dst {
        IpAddr::V4(_) => ipv4::MIN_HEADER_LEN,
        IpAddr::V6(_) => ipv6::HEADER_LEN,
    };
    // VXLAN keeps the frame's Ethernet header as the inner one and pushes a new outer one.
    let outer_eth = match kind {
        EncapKind::Vxlan { .. } => ETH,
        _ => 0,
    };
    outer_ip_hdr + tunnel_len(kind) + outer_eth
}

/// Rewrites or encapsulates `frame` toward `hop`, leaving it ready to send on `port`; returns
/// the length of the frame to send (its `data()` length now).
///
/// The rewrite of an untagged IPv4 packet is inlined into the caller's loop; everything else
/// (tags, IPv6, encapsulation, drops) is one call out of line.
#[inline(always)]
pub fn apply<F: Frame>(
    frame: &mut F,
    meta: &PacketMeta,
    hop: &NextHop,
    port: &PortInfo,
    flow_hash: u64,
) -> Result<usize, DropReason> {
    if meta.version == IpVersion::V4
        && usize::from(meta.l3_offset) == ETH
        && let Some(len) = apply_fast_v4(frame, meta.ip_len, hop, port)
    {
        return Ok(len);
    }
    apply_general(frame, meta, hop, port, flow_hash)
}

/// The inlined case of [`apply`] for an untagged IPv4 packet of total length `ip_len` (one the
/// parser's fast path took), which needs nothing else of its meta: `Some` with what `apply`
/// returns when that case applies (a rewrite to a resolved hop within the port's MTU), `None`
/// otherwise, the frame then unchanged but for its padding trim (which `apply` repeats
/// identically).
#[inline(always)]
pub fn apply_fast_v4<F: Frame>(
    frame: &mut F,
    ip_len: u16,
    hop: &NextHop,
    port: &PortInfo,
) -> Option<usize> {
    let ip_len = usize::from(ip_len);
    if matches!(hop.action, Action::Rewrite) && hop.mac != [0; 6] && ip_len <= usize::from(port.mtu)
    {
        return rewrite_v4_untagged(frame, ip_len, &rewrite_macs(hop, port));
    }
    None
}

/// The Ethernet addresses a rewrite toward `hop` on `port` writes: the hop's, then the port's.
#[inline(always)]
fn rewrite_macs(hop: &NextHop, port: &PortInfo) -> [u8; 12] {
    let mut macs = [0; 12];
    macs[..6].copy_from_slice(&hop.mac);
    macs[6..].copy_from_slice(&port.mac);
    macs
}

/// Per hop id of one snapshot, what [`apply_fast_v4`] reads of the hop and port tables,
/// flattened into one 16-byte record: the two MACs, the MTU and the egress port. Built once per
/// snapshot (and egress limit), so a fast-path packet's action costs one look-up and one
/// comparison instead of the hop, port, egress and action checks.
///
/// Invariant: for every hop id and IP length, [`RewriteTable::rewrite`] gives a frame and a
/// length exactly when the pipeline's general path (hop look-up, egress port check, [`apply`])
/// would take the inlined rewrite, and the same ones; for every other case it gives `None` and
/// changes nothing.
#[derive(Debug, Default)]
pub(crate) struct RewriteTable {
    hops: Vec<RewriteHop>,
    /// What the table was built from: generation, table addresses and lengths, egress limit.
    built_for: Option<(u64, usize, usize, usize, usize, usize)>,
}

/// One hop's record; `mtu` 0 when the hop cannot take the inlined rewrite here (an
/// encapsulation, an unresolved MAC, or a port this worker does not serve), which no IP length
/// passes (every parsed IPv4 packet is at least 20 bytes).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(16))]
struct RewriteHop {
    macs: [u8; 12],
    mtu: u16,
    port: PortId,
}

const _: () = assert!(size_of::<RewriteHop>() == 16);

impl RewriteTable {
    /// Makes the table describe `snap`'s hops under egress limit `egress_ports`, rebuilding it
    /// only when it describes something else (once per snapshot; it allocates only when the
    /// hop table outgrew it).
    #[inline(always)]
    pub(crate) fn follow(&mut self, snap: &Snapshot, egress_ports: usize) {
        let key = (
            snap.generation,
            snap.hops.as_ptr() as usize,
            snap.hops.len(),
            snap.ports.as_ptr() as usize,
            snap.ports.len(),
            egress_ports,
        );
        if self.built_for != Some(key) {
            self.rebuild(snap, egress_ports);
            self.built_for = Some(key);
        }
    }

    #[cold]
    #[inline(never)]
    fn rebuild(&mut self, snap: &Snapshot, egress_ports: usize) {
        self.hops.clear();
        self.hops.extend(
            snap.hops
                .iter()
                .map(|hop| match snap.ports.get(usize::from(hop.port)) {
                    Some(port)
                        if usize::from(hop.port) < egress_ports
                            && matches!(hop.action, Action::Rewrite)
                            && hop.mac != [0; 6] =>
                    {
                        RewriteHop {
                            macs: rewrite_macs(hop, port),
                            mtu: port.mtu,
                            port: hop.port,
                        }
                    }
                    _ => RewriteHop::default(),
                }),
        );
    }

    /// The inlined rewrite of a fast-path packet (untagged IPv4 of total length `ip_len`)
    /// toward hop `hop_id`: the egress port and the frame's length, or `None` (the frame
    /// unchanged) when the general path must decide.
    #[inline(always)]
    pub(crate) fn rewrite<F: Frame>(
        &self,
        frame: &mut F,
        ip_len: u16,
        hop_id: HopId,
    ) -> Option<(PortId, usize)> {
        let h = self.hops.get(hop_id as usize)?;
        if ip_len > h.mtu {
            return None;
        }
        rewrite_v4_untagged(frame, usize::from(ip_len), &h.macs).map(|len| (h.port, len))
    }
}

/// [`apply`] for every case but the inlined one, which it also handles (with the same result).
#[inline(never)]
fn apply_general<F: Frame>(
    frame: &mut F,
    meta: &PacketMeta,
    hop: &NextHop,
    port: &PortInfo,
    flow_hash: u64,
) -> Result<usize, DropReason> {
    if hop.mac == [0; 6] {
        return Err(DropReason::Unresolved);
    }
    let ip_len = usize::from(meta.ip_len);
    if matches!(hop.action, Action::Rewrite) && ip_len > usize::from(port.mtu) {
        return Err(DropReason::MtuExceeded);
    }
    normalize_l2(frame, meta)?;
    let inner_ttl = decrement_ttl(frame.data_mut(), meta.version)?;
    match hop.action {
        Action::Rewrite => {
            write_eth(
                frame.data_mut(),
                hop.mac,
                port.mac,
                l3_ethertype(meta.version),
            );
        }
        Action::Encap(encap) => {
            encapsulate(frame, meta, hop, port, &encap, inner_ttl, flow_hash)?;
        }
    }
    Ok(frame.data().len())
}

/// The common case straight through: an untagged IPv4 packet rewritten in place with one bounds
/// check; returns the frame's length. TTL and checksum sit at the same offsets whatever the
/// header's options, and the parser has already checked the header against the frame (`ip_len`
/// is its total length, within the frame), so nothing is checked again here. Returns `None`,
/// having changed nothing but the padding trim (which the general path repeats identically),
/// only for a frame too short to hold the headers, which a parsed frame never is.
#[inline(always)]
fn rewrite_v4_untagged<F: Frame>(frame: &mut F, ip_len: usize, macs: &[u8; 12]) -> Option<usize> {
    frame.truncate(ETH + ip_len);
    let data = frame.data_mut();
    let len = data.len();
    let h = data.first_chunk_mut::<{ ETH + 12 }>()?;
    // TTL is byte 8 of the IP header; RFC 1624 update of the checksum, with the result of
    // `ipv4::Packet::decrement_ttl`, in native byte order (no swaps).
    let ttl = h[ETH + 8];
    let c = checksum::decrement_ttl_ne(u16::from_ne_bytes([h[ETH + 10], h[ETH + 11]]), ttl);
    h[ETH + 8] = ttl.saturating_sub(1);
    h[ETH + 10..ETH + 12].copy_from_slice(&c.to_ne_bytes());
    h[..12].copy_from_slice(macs);
    h[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
    Some(len)
}

/// Leaves exactly `[14-byte Ethernet header][IP packet]`: VLAN tags stripped, padding trimmed.
#[inline]
fn normalize_l2<F: Frame>(frame: &mut F, meta: &PacketMeta) -> Result<(), DropReason> {
    let l3 = usize::from(meta.l3_offset);
    frame.truncate(l3 + usize::from(meta.ip_len));
    if l3 > ETH && !frame.pull_front(l3 - ETH) {
        return Err(DropReason::Truncated);
    }
    Ok(())
}

/// Decrements TTL / hop limit of the IP header at offset 14; returns the new value.
#[inline]
fn decrement_ttl(data: &mut [u8], version: IpVersion) -> Result<u8, DropReason> {
    let ip = data.get_mut(ETH..).ok_or(DropReason::Truncated)?;
    match version {
        IpVersion::V4 => {
            let mut p = ipv4::Packet::new_checked(ip).map_err(|_| DropReason::BadIpLength)?;
            Ok(p.decrement_ttl())
        }
        IpVersion::V6 => {
            let mut p = ipv6::Packet::new_checked(ip).map_err(|_| DropReason::BadIpLength)?;
            let hl = p.hop_limit().saturating_sub(1);
            p.set_hop_limit(hl);
            Ok(hl)
        }
    }
}

#[inline]
fn l3_ethertype(v: IpVersion) -> u16 {
    match v {
        IpVersion::V4 => ethertype::IPV4,
        IpVersion::V6 => ethertype::IPV6,
    }
}

#[inline]
fn write_eth(data: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    let repr = ethernet::Repr {
        src_addr: ethernet::Address(src),
        dst_addr: ethernet::Address(dst),
        ethertype,
    };
    repr.emit(&mut ethernet::Frame::new_unchecked(&mut data[..ETH]));
}

/// Bytes of the tunnel header between the outer IP header and the inner packet (for VXLAN this
/// includes the inner Ethernet header, which the frame already has).
#[inline]
fn tunnel_len(kind: &EncapKind) -> usize {
    match kind {
        EncapKind::IpIp => 0,
        EncapKind::Gre { key: None } => gre::BASE_HEADER_LEN,
        EncapKind::Gre { key: Some(_) } => gre::BASE_HEADER_LEN + 4,
        EncapKind::Vxlan { .. } => udp::HEADER_LEN + vxlan::HEADER_LEN,
        EncapKind::Gue { .. } => udp::HEADER_LEN + gue::BASE_HEADER_LEN,
        EncapKind::MplsUdp { .. } => udp::HEADER_LEN + mpls::ENTRY_LEN,
    }
}

/// The outer UDP source port: from the flow hash, in the dynamic range (RFC 7348 section 5), so
/// that devices downstream spread tunnelled flows as they would the inner ones.
#[inline]
fn udp_source_port(flow_hash: u64) -> u16 {
    let h = (flow_hash ^ (flow_hash >> 32)) as u32;
    let h = h ^ (h >> 16);
    0xC000 | (h as u16 & 0x3FFF)
}

#[inline]
fn encapsulate<F: Frame>(
    frame: &mut F,
    meta: &PacketMeta,
    hop: &NextHop,
    port: &PortInfo,
    encap: &Encap,
    inner_ttl: u8,
    flow_hash: u64,
) -> Result<(), DropReason> {
    let inner_ip_len = usize::from(meta.ip_len);
    let tunnel = tunnel_len(&encap.kind);
    let outer_ip_hdr = match encap.dst {
        IpAddr::V4(_) => ipv4::MIN_HEADER_LEN,
        IpAddr::V6(_) => ipv6::HEADER_LEN,
    };
    // VXLAN carries the inner Ethernet header too.
    let inner_len = match encap.kind {
        EncapKind::Vxlan { .. } => ETH + inner_ip_len,
        _ => inner_ip_len,
    };
    let outer_ip_len = outer_ip_hdr + tunnel + inner_len;
    if outer_ip_len > usize::from(port.mtu) {
        return Err(DropReason::MtuExceeded);
    }
    let push = push_len(&encap.kind, encap.dst);
    debug_assert_eq!(push, outer_ip_len + ETH - (ETH + inner_ip_len));
    if frame.headroom() < push {
        return Err(DropReason::NoHeadroom);
    }
    let inner_proto = match meta.version {
        IpVersion::V4 => ip_proto::IPV4,
        IpVersion::V6 => ip_proto::IPV6,
    };
    let tos = inner_tos(frame.data(), meta.version);
    if let EncapKind::Vxlan { inner_dst_mac, .. } = encap.kind {
        // The original Ethernet header becomes the inner one, addressed to the remote bridge.
        let dst = inner_dst_mac.unwrap_or(hop.mac);
        write_eth(frame.data_mut(), dst, port.mac, l3_ethertype(meta.version));
    }
    if !frame.push_front(push) {
        return Err(DropReason::NoHeadroom);
    }
    let data = frame.data_mut();
    let outer_proto = match encap.kind {
        EncapKind::IpIp => inner_proto,
        EncapKind::Gre { .. } => ip_proto::GRE,
        _ => ip_proto::UDP,
    };
    let ip_payload_len = tunnel + inner_len;
    let (eth_type, ip_end) = match (encap.src, encap.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let repr = ipv4::Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: outer_proto,
                ttl: 64,
                dscp: tos >> 2,
                ecn: tos & 3,
                ident: 0,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
                options: ecmp_wire::Options::EMPTY,
                payload_len: ip_payload_len,
            };
            let end = ETH + repr.header_len();
            repr.emit(&mut ipv4::Packet::new_unchecked(&mut data[ETH..end]));
            (ethertype::IPV4, end)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let repr = ipv6::Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: outer_proto,
                hop_limit: 64,
                traffic_class: tos,
                // RFC 6438: the flow label carries the inner flow's entropy.
                flow_label: (flow_hash as u32) & 0x000F_FFFF,
                payload_len: ip_payload_len,
            };
            let end = ETH + ipv6::HEADER_LEN;
            repr.emit(&mut ipv6::Packet::new_unchecked(&mut data[ETH..end]));
            (ethertype::IPV6, end)
        }
        // Config validation rejects mixed families; a hop built otherwise is not forwarded.
        _ => return Err(DropReason::NoNextHop),
    };
    write_eth(data, hop.mac, port.mac, eth_type);

    let t = ip_end;
    match encap.kind {
        EncapKind::IpIp => {}
        EncapKind::Gre { key } => {
            let repr = gre::Repr {
                protocol_type: l3_ethertype(meta.version),
                checksum: false,
                key,
                sequence: None,
            };
            repr.emit(&mut gre::Packet::new_unchecked(&mut data[t..t + tunnel]));
        }
        EncapKind::Vxlan {
            vni, port: dport, ..
        } => {
            let u = t + udp::HEADER_LEN;
            vxlan::Repr { vni }.emit(&mut vxlan::Packet::new_unchecked(
                &mut data[u..u + vxlan::HEADER_LEN],
            ));
            write_udp(data, t, flow_hash, dport, ip_payload_len, encap);
        }
        EncapKind::Gue { port: dport } => {
            let u = t + udp::HEADER_LEN;
            let repr = gue::Repr {
                control: false,
                proto_ctype: inner_proto,
                flags: 0,
                optional_fields: &[],
            };
            repr.emit(&mut gue::Packet::new_unchecked(
                &mut data[u..u + gue::BASE_HEADER_LEN],
            ));
            write_udp(data, t, flow_hash, dport, ip_payload_len, encap);
        }
        EncapKind::MplsUdp { label, port: dport } => {
            let u = t + udp::HEADER_LEN;
            let repr = mpls::Repr {
                label,
                traffic_class: 0,
                bottom_of_stack: true,
                ttl: inner_ttl,
            };
            repr.emit(&mut mpls::Entry::new_unchecked(
                &mut data[u..u + mpls::ENTRY_LEN],
            ));
            write_udp(data, t, flow_hash, dport, ip_payload_len, encap);
        }
    }
    Ok(())
}

/// Writes the outer UDP header at `at`. Over IPv4 the checksum is zero (allowed for VXLAN, GUE and
/// MPLS-over-UDP); over IPv6 it is computed, as receivers require by default (RFC 8200).
#[inline]
fn write_udp(
    data: &mut [u8],
    at: usize,
    flow_hash: u64,
    dport: u16,
    udp_len: usize,
    encap: &Encap,
) {
    let repr = udp::Repr {
        src_port: udp_source_port(flow_hash),
        dst_port: dport,
        payload_len: udp_len - udp::HEADER_LEN,
    };
    let mut p = udp::Packet::new_unchecked(&mut data[at..at + udp_len]);
    repr.emit(&mut p);
    if let (IpAddr::V6(src), IpAddr::V6(dst)) = (encap.src, encap.dst) {
        let pseudo =
            checksum::pseudo_header_v6(src.octets(), dst.octets(), ip_proto::UDP, udp_len as u32);
        p.fill_checksum(pseudo);
    }
}

/// The inner packet's TOS / traffic class byte (copied to the outer header, RFC 2983 uniform model).
#[inline]
fn inner_tos(data: &[u8], v: IpVersion) -> u8 {
    match v {
        IpVersion::V4 => data.get(ETH + 1).copied().unwrap_or(0),
        IpVersion::V6 => match (data.get(ETH), data.get(ETH + 1)) {
            (Some(a), Some(b)) => (a << 4) | (b >> 4),
            _ => 0,
        },
    }
}

#[cfg(test)]
mod tests;
