//! One frame builder for every synthetic frame of the project: pktgen's templates, the golden
//! fixture inputs, the daemon's demo, bench and `trace` query, the benches and the fuzz seeds.
//!
//! The IP packet and its TCP/UDP segment come from etherparse's [`PacketBuilder`] (lengths and
//! checksums included: IPv4 header, TCP/UDP over the pseudo-header); what it cannot express is
//! composed around it with etherparse's header types: any stack of VLAN tags, any number of IPv6
//! extension headers, Ethernet padding, and tunnel payloads ([`L4::Raw`] carries any bytes under
//! any protocol number, e.g. a GRE header and an inner packet from [`FrameSpec::build_ip`]). The
//! forwarder's `wire` crate is never used, so tests that parse these frames with it check it
//! against an independent implementation.

use std::net::IpAddr;
use std::ops::{BitOr, BitOrAssign};

use etherparse::err::packet::BuildVecWriteError;
use etherparse::{
    EtherType, Ethernet2Header, IpDscp, IpEcn, IpFragOffset, IpHeaders, IpNumber, Ipv4Extensions,
    Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6FlowLabel, Ipv6FragmentHeader, Ipv6Header,
    Ipv6RawExtHeader, PacketBuilder, SingleVlanHeader, TcpHeader, VlanId, VlanPcp,
};

/// Default source MAC (the client side of the uplink).
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
/// Default destination MAC: the forwarder's uplink port in the example and golden configs.
pub const UPLINK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Filler of Ethernet padding: not zero, so an output that kept the padding shows it.
pub const PAD_BYTE: u8 = 0xee;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// TPID of an 802.1Q (customer) VLAN tag.
pub const TPID_VLAN: u16 = 0x8100;
/// TPID of an 802.1ad (service, QinQ outer) VLAN tag.
pub const TPID_QINQ: u16 = 0x88a8;

/// Initial sequence number of every TCP segment.
const TCP_SEQ: u32 = 0x0100_0000;
/// Acknowledgment number of a segment with ACK set.
const TCP_ACK: u32 = 0x0200_0000;
/// TCP window of every segment.
const TCP_WINDOW: u16 = 64240;
/// IPv4 identification of an unfragmented packet.
const IPV4_IDENT: u16 = 0x1234;

/// Why a frame could not be built (a mistake in a spec, never in the code under test).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// IPv4 options longer than 40 bytes or not a multiple of 4.
    #[error("bad IPv4 options of {0} bytes (at most 40, a multiple of 4)")]
    Options(usize),
    /// Source and destination of different families.
    #[error("source and destination addresses of different families")]
    MixedFamilies,
    /// A fragment offset that is not a multiple of 8 or does not fit in 13 bits of 8 bytes.
    #[error("bad fragment offset {0}")]
    FragOffset(u16),
    /// etherparse refused to serialize the packet (e.g. more than 65535 bytes of IP payload).
    #[error("etherparse could not build the packet: {0}")]
    Build(#[from] BuildVecWriteError),
    /// etherparse could not read back the IPv6 header it wrote (to splice extension headers in).
    #[error("IPv6 header unreadable after building: {0}")]
    Ipv6Header(String),
}

/// TCP flag bits, as in the flags byte of the TCP header (CWR..FIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u8);

impl TcpFlags {
    /// No flag set.
    pub const NONE: TcpFlags = TcpFlags(0);
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// The flags of a flags byte.
    pub const fn from_bits(bits: u8) -> TcpFlags {
        TcpFlags(bits)
    }

    /// The flags byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Both sets of flags (usable in constants, unlike `|`).
    pub const fn union(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | other.0)
    }

    /// True when every flag of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;

    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        self.union(rhs)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        *self = self.union(rhs);
    }
}

/// What follows the IP header(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// UDP.
    Udp,
    /// TCP with these flags.
    Tcp(TcpFlags),
    /// No L4 header: the data is the whole IP payload, under this protocol number (tunnels,
    /// protocols the builder has no header for).
    Raw(u8),
}

/// Where in its datagram a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frag {
    /// Not fragmented (IPv4 DF set; IPv6 without a fragment header).
    Whole,
    /// The first fragment: the L4 header and the start of the data, more fragments follow. The
    /// L4 checksum covers only what this fragment carries (nobody can verify it without the rest).
    First {
        /// Datagram identification (IPv4 uses the low 16 bits).
        ident: u32,
    },
    /// A later (here: the last) fragment: data only, no L4 header.
    Later {
        /// Datagram identification (IPv4 uses the low 16 bits).
        ident: u32,
        /// Fragment offset in bytes (a multiple of 8).
        offset: u16,
    },
}

/// An IPv6 extension header placed before the fragment header (if any) and the L4 header: 8
/// bytes whose options are one PadN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Ext {
    /// Hop-by-hop options (protocol number 0).
    HopByHop,
    /// Destination options (protocol number 60).
    DestinationOptions,
}

impl Ipv6Ext {
    fn protocol(self) -> u8 {
        match self {
            Ipv6Ext::HopByHop => 0,
            Ipv6Ext::DestinationOptions => 60,
        }
    }
}

/// How much data follows the L4 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// This many bytes of a recognisable pattern (never all zero, never [`PAD_BYTE`] first).
    Pattern(usize),
    /// The pattern, as much as makes the frame (without FCS, padding included) this long; no
    /// data when the headers alone are that long.
    FillFrame(usize),
    /// These bytes.
    Bytes(Vec<u8>),
}

/// One frame: Ethernet, VLAN tags, IPv4 (options, fragments) or IPv6 (extension headers,
/// fragments), TCP, UDP or raw data, Ethernet padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpec {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// VLAN tags outermost first, as (TPID, VLAN id); PCP and DEI are 0.
    pub vlans: Vec<(u16, u16)>,
    /// Source address.
    pub src: IpAddr,
    /// Destination address (same family as `src`).
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 TOS / IPv6 traffic class byte (DSCP << 2 | ECN).
    pub tos: u8,
    /// IPv4 options (a multiple of 4 bytes, at most 40); ignored for IPv6.
    pub ipv4_options: Vec<u8>,
    /// IPv6 extension headers in order; ignored for IPv4.
    pub ipv6_exts: Vec<Ipv6Ext>,
    /// Fragmentation.
    pub frag: Frag,
    /// TCP, UDP or raw.
    pub l4: L4,
    /// L4 source port (TCP and UDP).
    pub src_port: u16,
    /// L4 destination port (TCP and UDP).
    pub dst_port: u16,
    /// The data after the L4 header (the whole IP payload of a later fragment or of [`L4::Raw`]).
    pub data: Data,
    /// Ethernet padding after the IP packet, of [`PAD_BYTE`].
    pub padding: usize,
}

impl FrameSpec {
    /// A UDP datagram from [`CLIENT_MAC`] to [`UPLINK_MAC`] with TTL 64, DF set, filled with data
    /// up to `frame_len` bytes without FCS (60 is a 64-byte frame on the wire; 0 means headers
    /// only).
    pub fn udp(src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16, frame_len: usize) -> Self {
        FrameSpec {
            src_mac: CLIENT_MAC,
            dst_mac: UPLINK_MAC,
            vlans: Vec::new(),
            src,
            dst,
            ttl: 64,
            tos: 0,
            ipv4_options: Vec::new(),
            ipv6_exts: Vec::new(),
            frag: Frag::Whole,
            l4: L4::Udp,
            src_port,
            dst_port,
            data: Data::FillFrame(frame_len),
            padding: 0,
        }
    }

    /// An IP packet carrying `payload` under `protocol` (a tunnel: see [`FrameSpec::build_ip`]
    /// for the inner packet), otherwise as [`FrameSpec::udp`].
    pub fn raw(src: IpAddr, dst: IpAddr, protocol: u8, payload: &[u8]) -> Self {
        FrameSpec {
            l4: L4::Raw(protocol),
            data: Data::Bytes(payload.to_vec()),
            ..FrameSpec::udp(src, dst, 0, 0, 0)
        }
    }

    /// The same packet as TCP with `flags` (ports unchanged).
    pub fn with_tcp(mut self, flags: TcpFlags) -> Self {
        self.l4 = L4::Tcp(flags);
        self
    }

    /// With these MACs.
    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Self {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    /// With these L4 ports.
    pub fn ports(mut self, src: u16, dst: u16) -> Self {
        self.src_port = src;
        self.dst_port = dst;
        self
    }

    /// With exactly `len` bytes of data after the L4 header.
    pub fn payload_len(mut self, len: usize) -> Self {
        self.data = Data::Pattern(len);
        self
    }

    /// Filled with data up to `len` bytes of frame (see [`Data::FillFrame`]).
    pub fn frame_len(mut self, len: usize) -> Self {
        self.data = Data::FillFrame(len);
        self
    }

    /// With these data bytes after the L4 header.
    pub fn data(mut self, bytes: &[u8]) -> Self {
        self.data = Data::Bytes(bytes.to_vec());
        self
    }

    /// With these VLAN tags (outermost first).
    pub fn vlans(mut self, tags: &[(u16, u16)]) -> Self {
        self.vlans = tags.to_vec();
        self
    }

    /// With this TTL / hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// With this TOS / traffic class byte.
    pub fn tos(mut self, tos: u8) -> Self {
        self.tos = tos;
        self
    }

    /// With these IPv4 options.
    pub fn options(mut self, bytes: &[u8]) -> Self {
        self.ipv4_options = bytes.to_vec();
        self
    }

    /// With these IPv6 extension headers.
    pub fn ipv6_exts(mut self, exts: &[Ipv6Ext]) -> Self {
        self.ipv6_exts = exts.to_vec();
        self
    }

    /// As this fragment.
    pub fn frag(mut self, frag: Frag) -> Self {
        self.frag = frag;
        self
    }

    /// With `n` bytes of Ethernet padding.
    pub fn padding(mut self, n: usize) -> Self {
        self.padding = n;
        self
    }

    /// The frame's bytes.
    pub fn build(&self) -> Result<Vec<u8>, FrameError> {
        let ip = self.build_ip()?;
        let ip_type = match self.src {
            IpAddr::V4(_) => ETHERTYPE_IPV4,
            IpAddr::V6(_) => ETHERTYPE_IPV6,
        };
        let mut frame = Vec::with_capacity(self.l2_len() + ip.len() + self.padding);
        let first_type = self.vlans.first().map_or(ip_type, |t| t.0);
        let eth = Ethernet2Header {
            source: self.src_mac,
            destination: self.dst_mac,
            ether_type: EtherType(first_type),
        };
        frame.extend_from_slice(&eth.to_bytes());
        for (i, &(_, vid)) in self.vlans.iter().enumerate() {
            let tag = SingleVlanHeader {
                pcp: VlanPcp::ZERO,
                drop_eligible_indicator: false,
                vlan_id: VlanId::try_new(vid & VlanId::MAX_U16).unwrap_or_default(),
                ether_type: EtherType(self.vlans.get(i + 1).map_or(ip_type, |t| t.0)),
            };
            frame.extend_from_slice(&tag.to_bytes());
        }
        frame.extend_from_slice(&ip);
        frame.resize(frame.len() + self.padding, PAD_BYTE);
        Ok(frame)
    }

    /// The IP packet alone (no Ethernet header, tags or padding): the inner packet of a tunnel.
    pub fn build_ip(&self) -> Result<Vec<u8>, FrameError> {
        let data = self.data_bytes();
        let step = PacketBuilder::ip(self.ip_headers()?);
        let mut out = Vec::new();
        let later = matches!(self.frag, Frag::Later { .. });
        match self.l4 {
            L4::Udp if !later => step
                .udp(self.src_port, self.dst_port)
                .write_to_vec(&mut out, &data)?,
            L4::Tcp(flags) if !later => step
                .tcp_header(self.tcp_header(flags))
                .write_to_vec(&mut out, &data)?,
            _ => step.write_to_vec(&mut out, IpNumber(self.protocol()), &data)?,
        }
        if self.src.is_ipv6() && !self.ipv6_exts.is_empty() {
            out = self.splice_ipv6_exts(&out)?;
        }
        Ok(out)
    }

    fn protocol(&self) -> u8 {
        match self.l4 {
            L4::Udp => 17,
            L4::Tcp(_) => 6,
            L4::Raw(p) => p,
        }
    }

    fn l2_len(&self) -> usize {
        Ethernet2Header::LEN + SingleVlanHeader::LEN * self.vlans.len()
    }

    /// Every header byte before the data.
    fn header_len(&self) -> usize {
        let ip = match self.src {
            IpAddr::V4(_) => Ipv4Header::MIN_LEN + self.ipv4_options.len(),
            IpAddr::V6(_) => {
                let frag = if self.frag == Frag::Whole {
                    0
                } else {
                    Ipv6FragmentHeader::LEN
                };
                Ipv6Header::LEN + EXT_LEN * self.ipv6_exts.len() + frag
            }
        };
        let l4 = match (self.l4, self.frag) {
            (_, Frag::Later { .. }) | (L4::Raw(_), _) => 0,
            (L4::Udp, _) => 8,
            (L4::Tcp(_), _) => TcpHeader::MIN_LEN,
        };
        self.l2_len() + ip + l4
    }

    fn data_bytes(&self) -> Vec<u8> {
        let len = match &self.data {
            Data::Bytes(b) => return b.clone(),
            Data::Pattern(n) => *n,
            Data::FillFrame(n) => n.saturating_sub(self.header_len() + self.padding),
        };
        (0..len).map(|i| (i as u8).wrapping_add(0x30)).collect()
    }

    fn tcp_header(&self, flags: TcpFlags) -> TcpHeader {
        let mut t = TcpHeader::new(self.src_port, self.dst_port, TCP_SEQ, TCP_WINDOW);
        t.fin = flags.contains(TcpFlags::FIN);
        t.syn = flags.contains(TcpFlags::SYN);
        t.rst = flags.contains(TcpFlags::RST);
        t.psh = flags.contains(TcpFlags::PSH);
        t.ack = flags.contains(TcpFlags::ACK);
        t.urg = flags.contains(TcpFlags::URG);
        t.ece = flags.contains(TcpFlags::ECE);
        t.cwr = flags.contains(TcpFlags::CWR);
        if t.ack {
            t.acknowledgment_number = TCP_ACK;
        }
        t
    }

    fn ip_headers(&self) -> Result<IpHeaders, FrameError> {
        let offset = |bytes: u16| {
            if !bytes.is_multiple_of(8) {
                return Err(FrameError::FragOffset(bytes));
            }
            IpFragOffset::try_new(bytes / 8).map_err(|_| FrameError::FragOffset(bytes))
        };
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let options = Ipv4Options::try_from(&self.ipv4_options[..])
                    .map_err(|_| FrameError::Options(self.ipv4_options.len()))?;
                let (ident, dont_fragment, more_fragments, frag_offset) = match self.frag {
                    Frag::Whole => (IPV4_IDENT, true, false, 0),
                    Frag::First { ident } => (ident as u16, false, true, 0),
                    Frag::Later { ident, offset } => (ident as u16, false, false, offset),
                };
                let header = Ipv4Header {
                    dscp: IpDscp::try_new(self.tos >> 2).unwrap_or_default(),
                    ecn: IpEcn::try_new(self.tos & 3).unwrap_or_default(),
                    identification: ident,
                    dont_fragment,
                    more_fragments,
                    fragment_offset: offset(frag_offset)?,
                    time_to_live: self.ttl,
                    protocol: IpNumber(self.protocol()),
                    source: s.octets(),
                    destination: d.octets(),
                    options,
                    ..Ipv4Header::default()
                };
                Ok(IpHeaders::Ipv4(header, Ipv4Extensions::default()))
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let header = Ipv6Header {
                    traffic_class: self.tos,
                    flow_label: Ipv6FlowLabel::ZERO,
                    payload_length: 0,
                    next_header: IpNumber(self.protocol()),
                    hop_limit: self.ttl,
                    source: s.octets(),
                    destination: d.octets(),
                };
                let mut exts = Ipv6Extensions::default();
                let next = IpNumber(self.protocol());
                exts.fragment = match self.frag {
                    Frag::Whole => None,
                    Frag::First { ident } => {
                        Some(Ipv6FragmentHeader::new(next, offset(0)?, true, ident))
                    }
                    Frag::Later { ident, offset: o } => {
                        Some(Ipv6FragmentHeader::new(next, offset(o)?, false, ident))
                    }
                };
                Ok(IpHeaders::Ipv6(header, exts))
            }
            _ => Err(FrameError::MixedFamilies),
        }
    }

    /// Inserts [`FrameSpec::ipv6_exts`] right after the fixed IPv6 header of `packet` (etherparse
    /// holds at most one header of each kind, the forwarder's tests need chains of any length).
    fn splice_ipv6_exts(&self, packet: &[u8]) -> Result<Vec<u8>, FrameError> {
        let (mut header, rest) =
            Ipv6Header::from_slice(packet).map_err(|e| FrameError::Ipv6Header(e.to_string()))?;
        let mut chain = Vec::with_capacity(EXT_LEN * self.ipv6_exts.len());
        let nexts = self
            .ipv6_exts
            .iter()
            .skip(1)
            .map(|e| IpNumber(e.protocol()));
        for next in nexts.chain([header.next_header]) {
            let raw = Ipv6RawExtHeader::new_raw(next, &PADN_4)
                .map_err(|e| FrameError::Ipv6Header(e.to_string()))?;
            chain.extend_from_slice(&raw.to_bytes());
        }
        if let Some(first) = self.ipv6_exts.first() {
            header.next_header = IpNumber(first.protocol());
        }
        header.payload_length = u16::try_from(rest.len() + chain.len())
            .map_err(|_| FrameError::Ipv6Header("payload longer than 65535".to_owned()))?;
        let mut out = Vec::with_capacity(packet.len() + chain.len());
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(&chain);
        out.extend_from_slice(rest);
        Ok(out)
    }
}

/// Length of each [`Ipv6Ext`] header.
const EXT_LEN: usize = 8;
/// The options of an [`Ipv6Ext`] header: one PadN of 4 bytes.
const PADN_4: [u8; 6] = [1, 4, 0, 0, 0, 0];

/// Recomputes the header checksum of the IPv4 header at `l3` after a test edited the header,
/// when that header is readable (IHL at least 5, the header and the total length inside the
/// frame); otherwise the bytes stay as they are.
pub fn refill_ipv4_checksum(frame: &mut [u8], l3: usize) {
    let Some(ip) = frame.get_mut(l3..) else {
        return;
    };
    if ip.len() < Ipv4Header::MIN_LEN {
        return;
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if hl < Ipv4Header::MIN_LEN || hl > ip.len() || total < hl || total > ip.len() {
        return;
    }
    ip[10..12].fill(0);
    let mut sum: u32 = ip[..hl]
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn v4() -> (IpAddr, IpAddr) {
        (addr("198.51.100.7"), addr("10.1.0.10"))
    }

    fn v6() -> (IpAddr, IpAddr) {
        (addr("2001:db8:c1::7"), addr("2001:db8:1::10"))
    }

    /// Parses `frame` with etherparse's slicer and checks the IPv4 header checksum and the L4
    /// checksum (when the packet is whole); returns the slice for further checks.
    fn checked(frame: &[u8]) -> SlicedPacket<'_> {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let (pseudo_v4, pseudo_v6) = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(h.calc_header_checksum(), h.header_checksum);
                (Some(h), None)
            }
            Some(NetSlice::Ipv6(ip)) => (None, Some(ip.header().to_header())),
            other => panic!("not IP: {other:?}"),
        };
        match &p.transport {
            Some(TransportSlice::Udp(u)) => {
                let h = u.to_header();
                let sum = match (&pseudo_v4, &pseudo_v6) {
                    (Some(ip), _) => h.calc_checksum_ipv4(ip, u.payload()).unwrap(),
                    (_, Some(ip)) => h.calc_checksum_ipv6(ip, u.payload()).unwrap(),
                    _ => unreachable!(),
                };
                assert_eq!(sum, h.checksum);
            }
            Some(TransportSlice::Tcp(t)) => {
                let h = t.to_header();
                let sum = match (&pseudo_v4, &pseudo_v6) {
                    (Some(ip), _) => h.calc_checksum_ipv4(ip, t.payload()).unwrap(),
                    (_, Some(ip)) => h.calc_checksum_ipv6(ip, t.payload()).unwrap(),
                    _ => unreachable!(),
                };
                assert_eq!(sum, h.checksum);
            }
            _ => {}
        }
        p
    }

    #[test]
    fn udp_and_tcp_over_both_families_parse_with_valid_checksums() {
        for (s, d) in [v4(), v6()] {
            let udp = FrameSpec::udp(s, d, 1234, 80, 60).build().unwrap();
            assert_eq!(udp.len(), if s.is_ipv4() { 60 } else { 62 });
            match checked(&udp).transport {
                Some(TransportSlice::Udp(u)) => {
                    assert_eq!((u.source_port(), u.destination_port()), (1234, 80));
                }
                other => panic!("{other:?}"),
            }

            let flags = TcpFlags::PSH | TcpFlags::ACK;
            let tcp = FrameSpec::udp(s, d, 1, 2, 0)
                .with_tcp(flags)
                .payload_len(32)
                .build()
                .unwrap();
            match checked(&tcp).transport {
                Some(TransportSlice::Tcp(t)) => {
                    assert!(t.psh() && t.ack() && !t.syn() && !t.fin());
                    assert_eq!(t.acknowledgment_number(), TCP_ACK);
                    assert_eq!(t.payload().len(), 32);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn ttl_tos_and_ipv4_options_land_in_the_header() {
        let (s, d) = v4();
        let f = FrameSpec::udp(s, d, 1, 2, 0)
            .ttl(2)
            .tos(0x2a)
            .options(&[0x94, 0x04, 0, 0])
            .payload_len(14)
            .build()
            .unwrap();
        let Some(NetSlice::Ipv4(ip)) = checked(&f).net else {
            panic!("not IPv4");
        };
        let h = ip.header();
        assert_eq!((h.ttl(), h.dcp().value(), h.ecn().value()), (2, 10, 2));
        assert_eq!((h.ihl(), h.options()), (6, &[0x94, 0x04, 0, 0][..]));
        assert!(h.dont_fragment());
    }

    #[test]
    fn vlan_tags_stack_in_order_and_padding_follows_the_ip_packet() {
        let (s, d) = v4();
        let qinq = [(TPID_QINQ, 100), (TPID_VLAN, 200)];
        let f = FrameSpec::udp(s, d, 1, 2, 0)
            .payload_len(4)
            .vlans(&qinq)
            .padding(9)
            .build()
            .unwrap();
        assert_eq!(&f[12..22], &[0x88, 0xa8, 0, 100, 0x81, 0, 0, 200, 8, 0]);
        let p = checked(&f);
        assert!(p.vlan().is_some());
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4");
        };
        assert_eq!(usize::from(ip.header().total_len()) + 22 + 9, f.len());
        assert_eq!(&f[f.len() - 9..], &[PAD_BYTE; 9]);

        // Deeper than etherparse's slicer reads: check the tag chain by hand.
        let three = FrameSpec::udp(s, d, 1, 2, 0)
            .vlans(&[(TPID_QINQ, 1), (TPID_VLAN, 2), (TPID_VLAN, 0x1003)])
            .build()
            .unwrap();
        assert_eq!(
            &three[12..26],
            &[0x88, 0xa8, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 8, 0]
        );
        assert_eq!(three[26] >> 4, 4);
    }

    #[test]
    fn fragments_carry_the_l4_header_only_in_the_first() {
        for (s, d) in [v4(), v6()] {
            let first = FrameSpec::udp(s, d, 1, 2, 0)
                .payload_len(24)
                .frag(Frag::First { ident: 0x4242 })
                .build()
                .unwrap();
            let later = FrameSpec::udp(s, d, 1, 2, 0)
                .payload_len(20)
                .frag(Frag::Later {
                    ident: 0x4242,
                    offset: 32,
                })
                .build()
                .unwrap();
            let (fb, lb) = (first, later);
            let (first, later) = (
                SlicedPacket::from_ethernet(&fb).unwrap(),
                SlicedPacket::from_ethernet(&lb).unwrap(),
            );
            match (&first.net, &later.net) {
                (Some(NetSlice::Ipv4(a)), Some(NetSlice::Ipv4(b))) => {
                    let (a, b) = (a.header(), b.header());
                    assert!(a.more_fragments() && !b.more_fragments());
                    assert_eq!(a.fragments_offset().value(), 0);
                    assert_eq!(b.fragments_offset().value(), 4);
                    assert_eq!((a.identification(), b.identification()), (0x4242, 0x4242));
                    assert_eq!(a.to_header().calc_header_checksum(), a.header_checksum());
                    assert_eq!((a.total_len(), b.total_len()), (20 + 8 + 24, 20 + 20));
                }
                (Some(NetSlice::Ipv6(a)), Some(NetSlice::Ipv6(b))) => {
                    assert_eq!(a.header().payload_length(), 8 + 8 + 24);
                    assert_eq!(b.header().payload_length(), 8 + 20);
                    let frag = |f: &[u8]| Ipv6FragmentHeader::from_slice(&f[54..]).unwrap().0;
                    let (fa, fl) = (frag(&fb), frag(&lb));
                    assert!(fa.more_fragments && !fl.more_fragments);
                    assert_eq!((fa.identification, fl.identification), (0x4242, 0x4242));
                    assert_eq!(fl.fragment_offset.value(), 4);
                    assert_eq!(fa.next_header, IpNumber::UDP);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn ipv6_extension_chains_of_any_length_keep_the_segment_valid() {
        let (s, d) = v6();
        let one = FrameSpec::udp(s, d, 1, 2, 0)
            .payload_len(8)
            .ipv6_exts(&[Ipv6Ext::DestinationOptions])
            .build()
            .unwrap();
        let p = checked(&one);
        assert!(matches!(p.transport, Some(TransportSlice::Udp(_))));

        let nine = FrameSpec::udp(s, d, 1, 2, 0)
            .payload_len(8)
            .ipv6_exts(&[Ipv6Ext::DestinationOptions; 9])
            .build()
            .unwrap();
        let (ip, rest) = Ipv6Header::from_slice(&nine[14..]).unwrap();
        assert_eq!(ip.next_header, IpNumber(60));
        assert_eq!(usize::from(ip.payload_length), rest.len());
        let mut at = 0;
        for i in 0..9 {
            let next = if i == 8 { 17 } else { 60 };
            assert_eq!(&rest[at..at + 8], &[next, 0, 1, 4, 0, 0, 0, 0]);
            at += 8;
        }
        let (udp, data) = etherparse::UdpHeader::from_slice(&rest[at..]).unwrap();
        assert_eq!(udp.calc_checksum_ipv6(&ip, data).unwrap(), udp.checksum);
    }

    #[test]
    fn raw_payloads_compose_tunnels() {
        let inner = FrameSpec::udp(addr("10.0.0.1"), addr("10.0.0.2"), 5, 6, 0)
            .payload_len(3)
            .build_ip()
            .unwrap();
        let mut gre = vec![0x00, 0x00, 0x08, 0x00];
        gre.extend_from_slice(&inner);
        let (s, d) = v4();
        let f = FrameSpec::raw(s, d, 47, &gre).build().unwrap();
        let p = checked(&f);
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4");
        };
        assert_eq!(ip.header().protocol(), IpNumber::GRE);
        assert_eq!(ip.payload().payload, &gre[..]);
        let inner_p = SlicedPacket::from_ip(&gre[4..]).unwrap();
        assert!(matches!(inner_p.transport, Some(TransportSlice::Udp(_))));
    }

    #[test]
    fn frame_len_fills_with_data_and_never_truncates_headers() {
        let (s, d) = v6();
        let spec = FrameSpec::udp(s, d, 1, 2, 0).with_tcp(TcpFlags::SYN);
        assert_eq!(spec.build().unwrap().len(), 14 + 40 + 20);
        assert_eq!(spec.frame_len(200).build().unwrap().len(), 200);
    }

    #[test]
    fn mistakes_in_a_spec_are_errors() {
        let (s4, _) = v4();
        let (_, d6) = v6();
        let mixed = FrameSpec::udp(s4, d6, 1, 2, 0);
        assert_eq!(mixed.build(), Err(FrameError::MixedFamilies));
        let (s, d) = v4();
        let odd = FrameSpec::udp(s, d, 1, 2, 0).options(&[1, 1, 1]);
        assert_eq!(odd.build(), Err(FrameError::Options(3)));
        let off = FrameSpec::udp(s, d, 1, 2, 0).frag(Frag::Later {
            ident: 1,
            offset: 12,
        });
        assert_eq!(off.build(), Err(FrameError::FragOffset(12)));
        let huge = FrameSpec::udp(s, d, 1, 2, 0).payload_len(70_000);
        assert!(matches!(huge.build(), Err(FrameError::Build(_))));
    }

    #[test]
    fn refill_fixes_only_readable_headers() {
        let (s, d) = v4();
        let f = FrameSpec::udp(s, d, 1, 2, 60).build().unwrap();
        let mut edited = f.clone();
        edited[14 + 8] = 9;
        refill_ipv4_checksum(&mut edited, 14);
        let h = Ipv4Header::from_slice(&edited[14..]).unwrap().0;
        assert_eq!(h.calc_header_checksum(), h.header_checksum);

        let mut long = f.clone();
        long[16..18].copy_from_slice(&200u16.to_be_bytes());
        let before = long.clone();
        refill_ipv4_checksum(&mut long, 14);
        assert_eq!(long, before);
    }

    #[test]
    fn tcp_flags_compose() {
        const EST: TcpFlags = TcpFlags::ACK.union(TcpFlags::PSH);
        assert_eq!(EST.bits(), 0x18);
        assert!(EST.contains(TcpFlags::ACK) && !EST.contains(TcpFlags::SYN));
        let mut f = TcpFlags::NONE;
        f |= TcpFlags::FIN;
        assert_eq!(f | TcpFlags::ACK, TcpFlags::from_bits(0x11));
    }
}
