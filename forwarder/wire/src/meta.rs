//! What the pipeline needs to know about a packet, filled by one bounds-checked pass.

/// IP version of the packet's network header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpVersion {
    /// IPv4.
    #[default]
    V4,
    /// IPv6.
    V6,
}

/// Offsets and fields of a parsed Ethernet frame carrying IPv4 or IPv6.
///
/// Addresses are in network byte order; an IPv4 address fills the first 4 bytes and the rest is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketMeta {
    /// Offset of the IP header from the start of the frame (after any VLAN tags).
    pub l3_offset: u16,
    /// Offset of the L4 header; 0 when there is none (a non-first fragment).
    pub l4_offset: u16,
    /// Number of 802.1Q / 802.1ad tags skipped.
    pub vlan_depth: u8,
    /// IPv4 or IPv6.
    pub version: IpVersion,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// The L4 protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// TCP/UDP/SCTP source port; 0 when unavailable (other protocols, non-first fragments).
    pub src_port: u16,
    /// TCP/UDP/SCTP destination port; 0 when unavailable.
    pub dst_port: u16,
    /// TCP flags byte (FIN=0x01, SYN=0x02, RST=0x04, ACK=0x10); 0 for other protocols.
    pub tcp_flags: u8,
    /// The packet is an IP fragment (first or later).
    pub fragment: bool,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Length of the IP packet according to its header (IPv4 total length, IPv6 40 + payload length).
    pub ip_len: u16,
}

impl PacketMeta {
    /// The source address as an [`IpAddr`](core::net::IpAddr).
    pub fn src_ip(&self) -> core::net::IpAddr {
        ip(self.version, self.src)
    }

    /// The destination address as an [`IpAddr`](core::net::IpAddr).
    pub fn dst_ip(&self) -> core::net::IpAddr {
        ip(self.version, self.dst)
    }

    /// True for a fragment other than the first (no L4 header, no ports).
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        self.fragment && self.l4_offset == 0
    }
}

fn ip(version: IpVersion, a: [u8; 16]) -> core::net::IpAddr {
    match version {
        IpVersion::V4 => core::net::IpAddr::from([a[0], a[1], a[2], a[3]]),
        IpVersion::V6 => core::net::IpAddr::from(a),
    }
}
