//! Protocol numbers shared by the views and the parser.

/// EtherType values (IEEE 802 numbers).
pub mod ethertype {
    /// Internet Protocol version 4.
    pub const IPV4: u16 = 0x0800;
    /// Address Resolution Protocol.
    pub const ARP: u16 = 0x0806;
    /// Transparent Ethernet Bridging (Ethernet inside GRE, RFC 1701).
    pub const TEB: u16 = 0x6558;
    /// IEEE 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// Internet Protocol version 6.
    pub const IPV6: u16 = 0x86DD;
    /// MPLS unicast.
    pub const MPLS_UNICAST: u16 = 0x8847;
    /// MPLS multicast.
    pub const MPLS_MULTICAST: u16 = 0x8848;
    /// IEEE 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88A8;
}

/// IP protocol / IPv6 next-header numbers (IANA).
pub mod ip_proto {
    /// IPv6 hop-by-hop options extension header.
    pub const HOPOPT: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulated in IP (IP-in-IP).
    pub const IPV4: u8 = 4;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulated in IP.
    pub const IPV6: u8 = 41;
    /// IPv6 routing extension header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 fragment extension header.
    pub const IPV6_FRAG: u8 = 44;
    /// Generic Routing Encapsulation.
    pub const GRE: u8 = 47;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 destination options extension header.
    pub const IPV6_OPTS: u8 = 60;
    /// Stream Control Transmission Protocol.
    pub const SCTP: u8 = 132;
    /// MPLS encapsulated in IP (RFC 4023).
    pub const MPLS_IN_IP: u8 = 137;
}

/// Well-known UDP destination ports of the tunnels the forwarder understands.
pub mod udp_port {
    /// VXLAN (RFC 7348).
    pub const VXLAN: u16 = 4789;
    /// MPLS over UDP (RFC 7510).
    pub const MPLS_UDP: u16 = 6635;
    /// Geneve (RFC 8926).
    pub const GENEVE: u16 = 6081;
}
