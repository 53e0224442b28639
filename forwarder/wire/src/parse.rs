//! The hot-path parser: one bounds-checked pass from an Ethernet frame to a [`PacketMeta`].
//!
//! Invariants:
//! - No allocation, no panics on any input: every read goes through `get`/`first_chunk` on
//!   ranges proven present, and a failed check is a [`ParseError`], never an index panic.
//! - Accepted frames: Ethernet II, at most [`MAX_VLAN_DEPTH`] 802.1Q/802.1ad tags, IPv4 or IPv6.
//!   Everything else (ARP included) is [`ParseError::UnknownEthertype`]: the host handles it.
//! - The IP packet is bounded by its length field, not the frame: Ethernet padding after it is
//!   ignored, and L4/inner headers must fit inside the IP packet.
//! - IPv4 header checksums are verified (a router must); L4 checksums are not.
//! - Router input checks (RFC 1812 5.3.7, RFC 4291, RFC 6890) come after the headers parse, so a
//!   malformed frame is reported as malformed: a group (multicast) source MAC, a martian source
//!   or destination address ([`ParseError::MartianSource`], [`ParseError::MartianDestination`])
//!   and a fragment reaching past 65535 bytes are errors. They apply to the outer packet only:
//!   [`parse_inner`] looks into tunnels for hashing, not for admission.
//! - Ports and TCP flags are read only from the first (or only) fragment; a later fragment has
//!   `l4_offset == 0` and zero ports. `fragment` is set for every fragment, including the first
//!   and IPv6 atomic fragments.
//! - Offsets in a `PacketMeta` are from the start of the frame given to the function, for inner
//!   headers too, so one buffer serves both passes.

use crate::ipv6;
use crate::meta::{IpVersion, PacketMeta};
use crate::{Error, checksum, ethertype, ip_proto, udp_port, vxlan};

/// Most VLAN tags followed (QinQ: one S-tag and one C-tag).
pub const MAX_VLAN_DEPTH: usize = 2;
/// Most IPv6 extension headers skipped before the upper layer.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;
/// Largest IP datagram (IPv4 total length, IPv6 payload length): fragments must fit in it.
const MAX_DATAGRAM: usize = 65535;

/// Why [`parse_frame`] rejected a frame; the data path counts drops by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
#[repr(u8)]
pub enum ParseError {
    /// The frame is shorter than the fixed part of a header it announces (Ethernet, VLAN tag,
    /// IPv4/IPv6 base header, IPv6 extension header).
    #[error("frame truncated")]
    Truncated = 0,
    /// The EtherType is not IPv4, IPv6 or a VLAN TPID (ARP included: it belongs to the host).
    #[error("unknown ethertype")]
    UnknownEthertype = 1,
    /// More than [`MAX_VLAN_DEPTH`] VLAN tags.
    #[error("too many VLAN tags")]
    VlanTooDeep = 2,
    /// The IP version nibble disagrees with the EtherType.
    #[error("IP version does not match the ethertype")]
    BadIpVersion = 3,
    /// IPv4 IHL below 5 or past the end of the frame.
    #[error("bad IPv4 header length")]
    BadIpv4HeaderLen = 4,
    /// IPv4 total length below the header length or past the frame; IPv6 payload length past the frame.
    #[error("bad IP length")]
    BadIpLength = 5,
    /// The IPv4 header checksum does not verify.
    #[error("bad IPv4 header checksum")]
    BadIpv4Checksum = 6,
    /// More than [`MAX_IPV6_EXT_HEADERS`] IPv6 extension headers.
    #[error("IPv6 extension header chain too deep")]
    Ipv6ExtChainTooDeep = 7,
    /// The TCP, UDP or SCTP header of an unfragmented packet or first fragment does not fit in
    /// the IP packet, or the TCP data offset is below 5 or past the packet.
    #[error("L4 header truncated")]
    L4Truncated = 8,
    /// An IP fragment whose offset plus length passes 65535 bytes: no datagram can hold it.
    #[error("fragment past 65535 bytes")]
    BadFragment = 9,
    /// The source MAC is a group (multicast or broadcast) address, which no station sends from.
    #[error("multicast source MAC")]
    BadSrcMac = 10,
    /// The source address is one no packet may come from: IPv4 0/8, 127/8, 224/4 and 240/4
    /// (255.255.255.255 included); IPv6 ::, ::1 and ff00::/8.
    #[error("martian source address")]
    MartianSource = 11,
    /// The destination is one a router must not route: IPv4 0/8, 127/8, 169.254/16 and 240/4
    /// except 255.255.255.255 (the host's limited broadcast); IPv6 ::, ::1, fe80::/10 and
    /// ff00::/8.
    #[error("martian destination address")]
    MartianDestination = 12,
}

impl ParseError {
    /// Number of variants (size of per-reason counter arrays).
    pub const COUNT: usize = ParseError::MartianDestination as usize + 1;

    /// Every variant, in discriminant order.
    pub const ALL: [ParseError; ParseError::COUNT] = [
        ParseError::Truncated,
        ParseError::UnknownEthertype,
        ParseError::VlanTooDeep,
        ParseError::BadIpVersion,
        ParseError::BadIpv4HeaderLen,
        ParseError::BadIpLength,
        ParseError::BadIpv4Checksum,
        ParseError::Ipv6ExtChainTooDeep,
        ParseError::L4Truncated,
        ParseError::BadFragment,
        ParseError::BadSrcMac,
        ParseError::MartianSource,
        ParseError::MartianDestination,
    ];

    /// Stable snake_case name (metrics, corpus file names).
    pub const fn name(self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated",
            ParseError::UnknownEthertype => "unknown_ethertype",
            ParseError::VlanTooDeep => "vlan_too_deep",
            ParseError::BadIpVersion => "bad_ip_version",
            ParseError::BadIpv4HeaderLen => "bad_ipv4_header_len",
            ParseError::BadIpLength => "bad_ip_length",
            ParseError::BadIpv4Checksum => "bad_ipv4_checksum",
            ParseError::Ipv6ExtChainTooDeep => "ipv6_ext_chain_too_deep",
            ParseError::L4Truncated => "l4_truncated",
            ParseError::BadFragment => "bad_fragment",
            ParseError::BadSrcMac => "bad_src_mac",
            ParseError::MartianSource => "martian_source",
            ParseError::MartianDestination => "martian_destination",
        }
    }

    /// The variant whose [`name`](Self::name) is `name`.
    pub fn from_name(name: &str) -> Option<ParseError> {
        Self::ALL.iter().copied().find(|e| e.name() == name)
    }

    /// Index into counter arrays (the discriminant).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Parses Ethernet, VLAN tags, IPv4/IPv6 (extension headers skipped) and the TCP/UDP/SCTP
/// ports of `frame`, filling every field of the returned [`PacketMeta`].
#[inline]
pub fn parse_frame(frame: &[u8]) -> Result<PacketMeta, ParseError> {
    let mut meta = PacketMeta::default();
    parse_frame_into(frame, &mut meta)?;
    Ok(meta)
}

/// [`parse_frame`] writing into `meta` in place, so that the data path fills its per-burst
/// array without moving a 64-byte meta through a `Result`. On `Ok`, every field of `meta` is
/// exactly what `parse_frame` returns; on `Err`, `meta` holds unspecified (but valid) values.
#[inline(always)]
pub fn parse_frame_into(frame: &[u8], meta: &mut PacketMeta) -> Result<(), ParseError> {
    if parse_fast(frame, meta) {
        return Ok(());
    }
    parse_slow(frame, meta)
}

/// Frames the fast path reads at once: Ethernet, an option-less IPv4 header and a TCP header
/// (UDP needs less; a frame shorter than this takes the general path).
const FAST_LEN: usize = 14 + 20 + 20;

/// The common case in one straight line: untagged Ethernet, IPv4 with IHL 5, not a fragment,
/// TCP or UDP, from a unicast MAC between addresses that pass the input checks, all within one
/// bounds check. Fills `meta` and returns true only when the frame
/// passes every check the general path makes, with the same result; anything else (including
/// every malformed frame) returns false and goes to [`parse_slow`], which reports the error.
#[inline(always)]
fn parse_fast(frame: &[u8], meta: &mut PacketMeta) -> bool {
    let Some(f) = frame.first_chunk::<FAST_LEN>() else {
        return false;
    };
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let protocol = f[23];
    let l4_min = match protocol {
        ip_proto::TCP => 20,
        ip_proto::UDP => 8,
        _ => return false,
    };
    // EtherType IPv4, version 4 with IHL 5, and neither MF nor a fragment offset (DF may be set).
    let plain = f[12] == 0x08 && f[13] == 0x00 && f[14] == 0x45 && f[20] & 0x3F == 0 && f[21] == 0;
    // The IP packet lies in the frame and holds the L4 header (Ethernet padding may follow).
    let fits = total >= 20 + l4_min && total <= frame.len() - 14;
    // TCP data offset: at least 5 words and within the IP packet.
    let doff = usize::from(f[46] >> 4) * 4;
    let tcp_ok = protocol != ip_proto::TCP || (doff >= 20 && doff + 20 <= total);
    let (src, dst) = ([f[26], f[27], f[28], f[29]], [f[30], f[31], f[32], f[33]]);
    // The input checks on bytes already loaded, without a branch: the source MAC's group bit and
    // one table look-up per address. A frame failing one (or whose destination needs a closer
    // look) is left to the general path, which names the reason.
    let refused = (f[6] & 1)
        | (V4_FIRST_OCTET[usize::from(src[0])] & V4_SRC_MARTIAN)
        | (V4_FIRST_OCTET[usize::from(dst[0])] & V4_DST_SUSPECT);
    let admissible = refused == 0;
    let Some(ip) = f[14..34].first_chunk::<20>() else {
        return false;
    };
    if !(plain && fits && tcp_ok && admissible && checksum::verify_ipv4_header(ip)) {
        return false;
    }
    *meta = PacketMeta {
        l3_offset: 14,
        l4_offset: 34,
        vlan_depth: 0,
        version: IpVersion::V4,
        src: v4_addr(src),
        dst: v4_addr(dst),
        protocol,
        src_port: u16::from_be_bytes([f[34], f[35]]),
        dst_port: u16::from_be_bytes([f[36], f[37]]),
        tcp_flags: if protocol == ip_proto::TCP { f[47] } else { 0 },
        fragment: false,
        ttl: f[22],
        // `total` fits: it was read from 16 bits.
        ip_len: total as u16,
    };
    true
}

/// An IPv4 address in [`PacketMeta`] form (first 4 bytes, rest zero).
#[inline(always)]
fn v4_addr(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0; 16];
    x[..4].copy_from_slice(&a);
    x
}

/// Every frame the fast path declines: VLAN tags, IPv6, options, fragments, other protocols,
/// and all the malformed ones, each rejected with its precise reason.
#[inline(never)]
fn parse_slow(frame: &[u8], meta: &mut PacketMeta) -> Result<(), ParseError> {
    *meta = PacketMeta::default();
    let (ethertype, l3) = parse_l2(frame, 0, meta)?;
    parse_ip(frame, l3, ethertype, meta)?;
    input_checks(frame, meta)
}

/// The router input checks on a frame whose headers parsed into `meta`: a unicast source MAC,
/// then the source address, then the destination address.
#[inline(always)]
fn input_checks(frame: &[u8], meta: &PacketMeta) -> Result<(), ParseError> {
    // Bit 0 of the first octet marks a group address (multicast, broadcast).
    if frame.get(6).is_some_and(|b| b & 1 != 0) {
        return Err(ParseError::BadSrcMac);
    }
    let (src, dst) = (&meta.src, &meta.dst);
    let (bad_src, bad_dst) = match meta.version {
        IpVersion::V4 => {
            let (s, d) = (
                [src[0], src[1], src[2], src[3]],
                [dst[0], dst[1], dst[2], dst[3]],
            );
            (martian_v4_source(s), martian_v4_destination(d))
        }
        IpVersion::V6 => (martian_v6_source(src), martian_v6_destination(dst)),
    };
    if bad_src {
        return Err(ParseError::MartianSource);
    }
    if bad_dst {
        return Err(ParseError::MartianDestination);
    }
    Ok(())
}

/// [`V4_FIRST_OCTET`] flag: every address of this /8 is a martian source.
const V4_SRC_MARTIAN: u8 = 1;
/// [`V4_FIRST_OCTET`] flag: some or all addresses of this /8 are martian destinations.
const V4_DST_SUSPECT: u8 = 2;

/// The fast path's input checks, per first octet of an IPv4 address. Exact for sources, which
/// are decided by their first octet; conservative for destinations: 169/8 and 255/8 are suspect
/// as a whole, and the general path tells 169.254/16 and 255.255.255.255 from the rest.
const V4_FIRST_OCTET: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let a = [i as u8, 0, 0, 0];
        if martian_v4_source(a) {
            t[i] |= V4_SRC_MARTIAN;
        }
        if martian_v4_destination(a) || i == 169 || i == 255 {
            t[i] |= V4_DST_SUSPECT;
        }
        i += 1;
    }
    t
};

/// IPv4 sources no packet may carry (RFC 1812 5.3.7, RFC 6890): "this network" 0/8, loopback
/// 127/8, and everything from 224 up (multicast 224/4, reserved 240/4, limited broadcast):
/// a source names one interface, never a group.
#[inline(always)]
const fn martian_v4_source(a: [u8; 4]) -> bool {
    a[0] == 0 || a[0] == 127 || a[0] >= 224
}

/// IPv4 destinations a router must not route: 0/8, loopback 127/8, link-local 169.254/16 (RFC
/// 3927: never beyond its link) and reserved 240/4. The limited broadcast 255.255.255.255 is a
/// valid destination, the host's own, so it is not martian (the data path refuses it as not
/// addressed to it for forwarding).
#[inline(always)]
const fn martian_v4_destination(a: [u8; 4]) -> bool {
    let limited_broadcast = a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255;
    a[0] == 0 || a[0] == 127 || (a[0] == 169 && a[1] == 254) || (a[0] >= 240 && !limited_broadcast)
}

/// IPv6 sources no packet may carry (RFC 4291 2.5.2, 2.5.3, 2.7): the unspecified address ::
/// (never forwarded), loopback ::1 and multicast ff00::/8.
#[inline(always)]
fn martian_v6_source(a: &[u8; 16]) -> bool {
    a[0] == 0xff || unspecified_or_loopback(a)
}

/// IPv6 destinations a router must not route: ::, ::1, link-local fe80::/10 (RFC 4291 2.5.6)
/// and multicast ff00::/8 (this forwarder routes unicast only).
#[inline(always)]
fn martian_v6_destination(a: &[u8; 16]) -> bool {
    a[0] == 0xff || (a[0] == 0xfe && a[1] & 0xc0 == 0x80) || unspecified_or_loopback(a)
}

#[inline(always)]
fn unspecified_or_loopback(a: &[u8; 16]) -> bool {
    u128::from_be_bytes(*a) <= 1
}

/// The meta of the packet tunnelled inside `frame`, whose outer headers `outer` describes
/// (as returned by [`parse_frame`] for the same frame): IPv4/IPv6 in IP (protocol 4/41), GRE
/// (version 0, carrying IPv4, IPv6 or transparent Ethernet) and VXLAN (UDP destination port
/// 4789, I flag set, inner Ethernet). Offsets are from the start of `frame`.
///
/// `None` when the packet is not such a tunnel, when the inner packet does not parse as
/// [`parse_frame`] would accept it, or when the outer packet is a fragment: no fragment is
/// looked into, so every fragment of a datagram falls back to the outer headers alike.
#[inline]
pub fn parse_inner(frame: &[u8], outer: &PacketMeta) -> Option<PacketMeta> {
    if outer.fragment || outer.l4_offset == 0 {
        return None;
    }
    // Inner headers must lie within the outer IP packet.
    let frame = frame.get(..usize::from(outer.l3_offset) + usize::from(outer.ip_len))?;
    let l4 = usize::from(outer.l4_offset);
    let mut meta = PacketMeta::default();
    match outer.protocol {
        ip_proto::IPV4 => parse_ip(frame, l4, ethertype::IPV4, &mut meta).ok()?,
        ip_proto::IPV6 => parse_ip(frame, l4, ethertype::IPV6, &mut meta).ok()?,
        ip_proto::GRE => {
            let g: &[u8; 4] = frame.get(l4..)?.first_chunk()?;
            // Version 0 with no RFC 1701 routing or reserved bits: the header length is then
            // fixed by C, K and S alone.
            if g[0] & 0x4F != 0 || g[1] != 0 {
                return None;
            }
            let hl = 4 + 4 * usize::from((g[0] >> 7) + ((g[0] >> 5) & 1) + ((g[0] >> 4) & 1));
            let inner = l4 + hl;
            match u16::from_be_bytes([g[2], g[3]]) {
                t @ (ethertype::IPV4 | ethertype::IPV6) => {
                    parse_ip(frame, inner, t, &mut meta).ok()?
                }
                ethertype::TEB => {
                    let (t, l3) = parse_l2(frame, inner, &mut meta).ok()?;
                    parse_ip(frame, l3, t, &mut meta).ok()?;
                }
                _ => return None,
            }
        }
        ip_proto::UDP if outer.dst_port == udp_port::VXLAN => {
            let vx = l4 + 8;
            let v: &[u8; 8] = frame.get(vx..)?.first_chunk()?;
            if v[0] & vxlan::FLAG_I == 0 {
                return None;
            }
            let (t, l3) = parse_l2(frame, vx + vxlan::HEADER_LEN, &mut meta).ok()?;
            parse_ip(frame, l3, t, &mut meta).ok()?;
        }
        _ => return None,
    }
    Some(meta)
}

#[inline(always)]
fn off16(off: usize) -> Result<u16, ParseError> {
    // Offsets past 64 KiB only arise from IPv6 chains in oversized buffers; no IP length
    // field could describe such a packet.
    u16::try_from(off).map_err(|_| ParseError::BadIpLength)
}

/// Ethernet header and VLAN tags at `start`; returns the IP EtherType and the L3 offset.
#[inline(always)]
fn parse_l2(frame: &[u8], start: usize, meta: &mut PacketMeta) -> Result<(u16, usize), ParseError> {
    let eth: &[u8; 14] = frame
        .get(start..)
        .and_then(|s| s.first_chunk())
        .ok_or(ParseError::Truncated)?;
    let mut et = u16::from_be_bytes([eth[12], eth[13]]);
    let mut off = start + 14;
    let mut depth = 0usize;
    while et == ethertype::VLAN || et == ethertype::QINQ {
        if depth == MAX_VLAN_DEPTH {
            return Err(ParseError::VlanTooDeep);
        }
        let tag: &[u8; 4] = frame
            .get(off..)
            .and_then(|s| s.first_chunk())
            .ok_or(ParseError::Truncated)?;
        et = u16::from_be_bytes([tag[2], tag[3]]);
        off += 4;
        depth += 1;
    }
    meta.vlan_depth = depth as u8;
    match et {
        ethertype::IPV4 | ethertype::IPV6 => Ok((et, off)),
        _ => Err(ParseError::UnknownEthertype),
    }
}

/// The IP header at `l3` (its version given by `ethertype`) and what follows.
#[inline(always)]
fn parse_ip(
    frame: &[u8],
    l3: usize,
    ethertype: u16,
    meta: &mut PacketMeta,
) -> Result<(), ParseError> {
    meta.l3_offset = off16(l3)?;
    let rest = frame.get(l3..).ok_or(ParseError::Truncated)?;
    if ethertype == ethertype::IPV4 {
        parse_ipv4(frame, l3, rest, meta)
    } else {
        parse_ipv6(frame, l3, rest, meta)
    }
}

#[inline(always)]
fn parse_ipv4(
    frame: &[u8],
    l3: usize,
    rest: &[u8],
    meta: &mut PacketMeta,
) -> Result<(), ParseError> {
    let h: &[u8; 20] = rest.first_chunk().ok_or(ParseError::Truncated)?;
    if h[0] >> 4 != 4 {
        return Err(ParseError::BadIpVersion);
    }
    let ihl = usize::from(h[0] & 0x0F) * 4;
    if ihl < 20 || ihl > rest.len() {
        return Err(ParseError::BadIpv4HeaderLen);
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total < ihl || total > rest.len() {
        return Err(ParseError::BadIpLength);
    }
    // The option-less header (nearly every packet) is summed at a constant length, fully unrolled.
    let valid = if ihl == 20 {
        checksum::verify(h)
    } else {
        rest.get(..ihl).is_some_and(checksum::verify)
    };
    if !valid {
        return Err(ParseError::BadIpv4Checksum);
    }
    meta.version = IpVersion::V4;
    meta.src = [0; 16];
    meta.dst = [0; 16];
    meta.src[..4].copy_from_slice(&h[12..16]);
    meta.dst[..4].copy_from_slice(&h[16..20]);
    meta.protocol = h[9];
    meta.ttl = h[8];
    meta.ip_len = total as u16;
    let frag = u16::from_be_bytes([h[6], h[7]]);
    meta.fragment = frag & 0x3FFF != 0;
    if frag & 0x1FFF != 0 {
        // A reassembled datagram is at most 65535 bytes, header included; a fragment ending
        // past that can only be an attack on reassembly (RFC 791, the "ping of death").
        if usize::from(frag & 0x1FFF) * 8 + total > MAX_DATAGRAM {
            return Err(ParseError::BadFragment);
        }
        return Ok(());
    }
    parse_l4(frame, l3 + ihl, l3 + total, meta)
}

#[inline(always)]
fn parse_ipv6(
    frame: &[u8],
    l3: usize,
    rest: &[u8],
    meta: &mut PacketMeta,
) -> Result<(), ParseError> {
    let h: &[u8; 40] = rest.first_chunk().ok_or(ParseError::Truncated)?;
    if h[0] >> 4 != 6 {
        return Err(ParseError::BadIpVersion);
    }
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let payload = rest.get(40..40 + plen).ok_or(ParseError::BadIpLength)?;
    meta.ip_len = u16::try_from(40 + plen).map_err(|_| ParseError::BadIpLength)?;
    meta.version = IpVersion::V6;
    meta.src.copy_from_slice(&h[8..24]);
    meta.dst.copy_from_slice(&h[24..40]);
    meta.ttl = h[7];
    let chain =
        ipv6::walk_ext_headers(h[6], payload, MAX_IPV6_EXT_HEADERS).map_err(|e| match e {
            Error::TooManyExtHeaders => ParseError::Ipv6ExtChainTooDeep,
            _ => ParseError::Truncated,
        })?;
    meta.protocol = chain.protocol;
    meta.fragment = chain.fragment.is_some();
    if let Some(f) = chain.fragment {
        // The fragment's data follows its header; with its offset it must stay within the
        // 65535-byte payload any IPv6 datagram without a jumbogram can have (RFC 8200 4.5).
        let data = plen.saturating_sub(f.header_offset + ipv6::FRAG_HEADER_LEN);
        if usize::from(f.offset) + data > MAX_DATAGRAM {
            return Err(ParseError::BadFragment);
        }
    }
    match chain.l4_offset {
        Some(o) => parse_l4(frame, l3 + 40 + o, l3 + 40 + plen, meta),
        None => Ok(()),
    }
}

/// The L4 header at `l4`, bounded by the end of the IP packet `end`.
#[inline(always)]
fn parse_l4(frame: &[u8], l4: usize, end: usize, meta: &mut PacketMeta) -> Result<(), ParseError> {
    meta.l4_offset = off16(l4)?;
    let seg = frame.get(l4..end).unwrap_or(&[]);
    match meta.protocol {
        ip_proto::TCP => {
            let t: &[u8; 20] = seg.first_chunk().ok_or(ParseError::L4Truncated)?;
            let doff = usize::from(t[12] >> 4) * 4;
            if doff < 20 || doff > seg.len() {
                return Err(ParseError::L4Truncated);
            }
            meta.src_port = u16::from_be_bytes([t[0], t[1]]);
            meta.dst_port = u16::from_be_bytes([t[2], t[3]]);
            meta.tcp_flags = t[13];
        }
        ip_proto::UDP => {
            let u: &[u8; 8] = seg.first_chunk().ok_or(ParseError::L4Truncated)?;
            meta.src_port = u16::from_be_bytes([u[0], u[1]]);
            meta.dst_port = u16::from_be_bytes([u[2], u[3]]);
        }
        ip_proto::SCTP => {
            let s: &[u8; 12] = seg.first_chunk().ok_or(ParseError::L4Truncated)?;
            meta.src_port = u16::from_be_bytes([s[0], s[1]]);
            meta.dst_port = u16::from_be_bytes([s[2], s[3]]);
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
            ([224, 0, 0, 5], Some(Src), None),
            ([239, 255, 255, 255], Some(Src), None),
            ([240, 0, 0, 1], Some(Src), Some(Dst)),
            ([255, 255, 255, 254], Some(Src), Some(Dst)),
            ([255, 255, 255, 255], Some(Src), None),
            ([169, 254, 1, 1], None, Some(Dst)),
            ([169, 253, 1, 1], None, None),
            ([169, 255, 1, 1], None, None),
            ([1, 0, 0, 0], None, None),
            ([126, 255, 255, 255], None, None),
            ([128, 0, 0, 0], None, None),
            ([223, 255, 255, 255], None, None),
            ([10, 0, 0, 1], None, None),
        ];
        for (a, as_src, as_dst) in cases {
            // Destinations in 169/8 and 255/8 are left to the general path, refused or not.
            let suspect = a[0] == 169 || a[0] == 255;
            for (f, want, fast_ok) in [
                (syn_between(a, ok), as_src, as_src.is_none()),
                (syn_between(ok, a), as_dst, as_dst.is_none() && !suspect),
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
            assert_eq!(
                t & V4_SRC_MARTIAN != 0,
                martian_v4_source([i, 1, 2, 3]),
                "{i}"
            );
            for rest in [[0, 0, 0], [254, 1, 1], [255, 255, 255], [1, 2, 3]] {
                let a = [i, rest[0], rest[1], rest[2]];
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
            ("fe80::1", None, Some(Dst)),
            ("febf:ffff::1", None, Some(Dst)),
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
}
