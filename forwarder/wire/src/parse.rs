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

/// What the fast path reads from a frame it accepts: every field of its [`PacketMeta`] that is
/// not implied by the fast path's shape (untagged, IPv4 with IHL 5, not a fragment, TCP or UDP).
/// Ten-odd bytes, so it lives in registers: a caller that needs only the 5-tuple, the TCP
/// flags and the lengths (the data path's flow-cache hit) never writes a 40-byte meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastV4 {
    /// Source address: its four bytes as in the packet, read as one native-order word
    /// (`u32::from_ne_bytes`), so that it stays one register (`to_ne_bytes` gives the bytes).
    pub src: u32,
    /// Destination address, in the same form.
    pub dst: u32,
    /// TCP or UDP source port.
    pub src_port: u16,
    /// TCP or UDP destination port.
    pub dst_port: u16,
    /// [`ip_proto::TCP`] or [`ip_proto::UDP`].
    pub protocol: u8,
    /// TCP flags byte; 0 for UDP.
    pub tcp_flags: u8,
    /// The TTL.
    pub ttl: u8,
    /// The IPv4 total length.
    pub ip_len: u16,
}

impl FastV4 {
    /// The L3 offset of every frame the fast path accepts (untagged Ethernet).
    pub const L3_OFFSET: u16 = 14;

    /// The full meta of the frame: exactly what [`parse_frame`] returns for it.
    #[inline(always)]
    pub fn meta(&self) -> PacketMeta {
        PacketMeta {
            l3_offset: Self::L3_OFFSET,
            l4_offset: Self::L3_OFFSET + 20,
            vlan_depth: 0,
            version: IpVersion::V4,
            src: v4_addr(self.src.to_ne_bytes()),
            dst: v4_addr(self.dst.to_ne_bytes()),
            protocol: self.protocol,
            src_port: self.src_port,
            dst_port: self.dst_port,
            tcp_flags: self.tcp_flags,
            fragment: false,
            ttl: self.ttl,
            ip_len: self.ip_len,
        }
    }
}

/// The common case in one straight line: untagged Ethernet, IPv4 with IHL 5, not a fragment,
/// TCP or UDP, from a unicast MAC between addresses that pass the input checks, all within one
/// bounds check. Returns the frame's fields only when the frame passes every check the general
/// path makes, with the same result ([`FastV4::meta`] equals [`parse_frame`]'s, and
/// [`parse_frame`] accepts exactly these frames through this path first); `None` for anything
/// else, including every malformed frame, which the general path then reports.
///
/// The destination of an accepted frame is never 255.255.255.255 (the whole of 255/8 is left to
/// the general path).
#[inline(always)]
pub fn parse_fast_v4(frame: &[u8]) -> Option<FastV4> {
    let f = frame.first_chunk::<FAST_LEN>()?;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let protocol = f[23];
    let l4_min = match protocol {
        ip_proto::TCP => 20,
        ip_proto::UDP => 8,
        _ => return None,
    };
    // EtherType IPv4, version 4 with IHL 5, and neither MF nor a fragment offset (DF may be set).
    let plain = f[12] == 0x08 && f[13] == 0x00 && f[14] == 0x45 && f[20] & 0x3F == 0 && f[21] == 0;
    // The IP packet lies in the frame and holds the L4 header (Ethernet padding may follow).
    let fits = total >= 20 + l4_min && total <= frame.len() - 14;
    // TCP data offset: at least 5 words and within the IP packet.
    let doff = usize::from(f[46] >> 4) * 4;
    let tcp_ok = protocol != ip_proto::TCP || (doff >= 20 && doff + 20 <= total);
    // Each address read as one word, its first octet taken from that word.
    let (src, dst) = (
        u32::from_ne_bytes([f[26], f[27], f[28], f[29]]),
        u32::from_ne_bytes([f[30], f[31], f[32], f[33]]),
    );
    // The input checks on bytes already loaded, without a branch: the source MAC's group bit and
    // one table look-up per address. A frame failing one (or whose destination needs a closer
    // look) is left to the general path, which names the reason.
    let refused = (f[6] & 1)
        | (V4_FIRST_OCTET[usize::from(src.to_ne_bytes()[0])] & V4_SRC_SUSPECT)
        | (V4_FIRST_OCTET[usize::from(dst.to_ne_bytes()[0])] & V4_DST_SUSPECT);
    let admissible = refused == 0;
    let ip = f[14..34].first_chunk::<20>()?;
    if !(plain && fits && tcp_ok && admissible && checksum::verify_ipv4_header(ip)) {
        return None;
    }
    Some(FastV4 {
        src,
        dst,
        src_port: u16::from_be_bytes([f[34], f[35]]),
        dst_port: u16::from_be_bytes([f[36], f[37]]),
        protocol,
        tcp_flags: if protocol == ip_proto::TCP { f[47] } else { 0 },
        ttl: f[22],
        // `total` fits: it was read from 16 bits.
        ip_len: total as u16,
    })
}

/// [`parse_fast_v4`] into `meta`; true when the fast path took the frame.
#[inline(always)]
fn parse_fast(frame: &[u8], meta: &mut PacketMeta) -> bool {
    match parse_fast_v4(frame) {
        Some(v) => {
            *meta = v.meta();
            true
        }
        None => false,
    }
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

/// [`V4_FIRST_OCTET`] flag: some or all addresses of this /8 are martian sources.
const V4_SRC_SUSPECT: u8 = 1;
/// [`V4_FIRST_OCTET`] flag: some or all addresses of this /8 are martian destinations.
const V4_DST_SUSPECT: u8 = 2;

/// The fast path's input checks, per first octet of an IPv4 address, conservative: 169/8 (both
/// ways) and 255/8 (destinations) are suspect as a whole, and the general path tells 169.254/16
/// and 255.255.255.255 from the rest.
const V4_FIRST_OCTET: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let a = [i as u8, 0, 0, 0];
        if martian_v4_source(a) || i == 169 {
            t[i] |= V4_SRC_SUSPECT;
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
/// a source names one interface, never a group. Also link-local 169.254/16, which a router
/// must not forward from (RFC 3927 section 7).
#[inline(always)]
const fn martian_v4_source(a: [u8; 4]) -> bool {
    a[0] == 0 || a[0] == 127 || (a[0] == 169 && a[1] == 254) || a[0] >= 224
}

/// IPv4 destinations a router must not route: 0/8, loopback 127/8, link-local 169.254/16 (RFC
/// 3927: never beyond its link), multicast 224/4 (this forwarder routes unicast only, as for
/// IPv6) and reserved 240/4. The limited broadcast 255.255.255.255 is a valid destination, the
/// host's own, so it is not martian (the data path refuses it as not addressed to it for
/// forwarding).
#[inline(always)]
const fn martian_v4_destination(a: [u8; 4]) -> bool {
    let limited_broadcast = a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255;
    a[0] == 0 || a[0] == 127 || (a[0] == 169 && a[1] == 254) || (a[0] >= 224 && !limited_broadcast)
}

/// IPv6 sources no packet may carry (RFC 4291 2.5.2, 2.5.3, 2.7): the unspecified address ::
/// (never forwarded), loopback ::1 and multicast ff00::/8; and link-local fe80::/10, which a
/// router must not forward to another link (RFC 4291 2.5.6).
#[inline(always)]
fn martian_v6_source(a: &[u8; 16]) -> bool {
    a[0] == 0xff || link_local_v6(a) || unspecified_or_loopback(a)
}

/// IPv6 destinations a router must not route: ::, ::1, link-local fe80::/10 (RFC 4291 2.5.6)
/// and multicast ff00::/8 (this forwarder routes unicast only).
#[inline(always)]
fn martian_v6_destination(a: &[u8; 16]) -> bool {
    a[0] == 0xff || link_local_v6(a) || unspecified_or_loopback(a)
}

#[inline(always)]
fn link_local_v6(a: &[u8; 16]) -> bool {
    a[0] == 0xfe && a[1] & 0xc0 == 0x80
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
mod tests;
