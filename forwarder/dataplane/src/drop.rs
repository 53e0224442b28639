//! Why a packet was dropped: one enum, counted per worker, never logged per packet (rule 6).

use ecmp_wire::parse::ParseError;

/// Every reason the data path drops a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// The frame is shorter than the headers it claims.
    Truncated,
    /// Not IPv4, IPv6 or a VLAN tag (ARP and the like belong to the host).
    UnknownEthertype,
    /// More VLAN tags than the parser follows.
    VlanTooDeep,
    /// The IP version nibble disagrees with the EtherType.
    BadIpVersion,
    /// IPv4 IHL below 5 or past the frame.
    BadIpv4HeaderLen,
    /// IP length field inconsistent with the header or the frame.
    BadIpLength,
    /// IPv4 header checksum wrong.
    BadIpv4Checksum,
    /// More IPv6 extension headers than the parser follows.
    Ipv6ExtChainTooDeep,
    /// The L4 header of an unfragmented or first-fragment packet does not fit.
    L4Truncated,
    /// An IP fragment whose offset plus length passes 65535 bytes.
    BadFragment,
    /// The source MAC is a multicast or broadcast address.
    BadSrcMac,
    /// A source address no packet may carry (loopback, "this network", multicast, reserved).
    MartianSource,
    /// A destination a router must not route (loopback, "this network", link-local, reserved,
    /// IPv6 multicast).
    MartianDestination,
    /// Not addressed to this forwarder for forwarding: the destination MAC is not the ingress
    /// port's own (broadcast, multicast, another host's), or the packet is an IPv4 limited
    /// broadcast (the host's).
    NotForUs,
    /// TTL or hop limit would reach zero.
    TtlExpired,
    /// No route for the destination.
    NoRoute,
    /// The route's group has no bucket owner for this hash (all hops failed or draining).
    NoNextHop,
    /// The next hop's egress port is not one of this worker's ports.
    NoEgressPort,
    /// The next hop's MAC is not resolved yet.
    Unresolved,
    /// The packet (after encapsulation) exceeds the egress MTU.
    MtuExceeded,
    /// Not enough headroom in the frame for the encapsulation headers.
    NoHeadroom,
    /// The egress port refused the frame (tx ring full).
    TxRefused,
}

impl DropReason {
    /// Number of reasons (size of counter arrays).
    pub const COUNT: usize = DropReason::TxRefused as usize + 1;

    /// Every reason, in counter order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Truncated,
        DropReason::UnknownEthertype,
        DropReason::VlanTooDeep,
        DropReason::BadIpVersion,
        DropReason::BadIpv4HeaderLen,
        DropReason::BadIpLength,
        DropReason::BadIpv4Checksum,
        DropReason::Ipv6ExtChainTooDeep,
        DropReason::L4Truncated,
        DropReason::BadFragment,
        DropReason::BadSrcMac,
        DropReason::MartianSource,
        DropReason::MartianDestination,
        DropReason::NotForUs,
        DropReason::TtlExpired,
        DropReason::NoRoute,
        DropReason::NoNextHop,
        DropReason::NoEgressPort,
        DropReason::Unresolved,
        DropReason::MtuExceeded,
        DropReason::NoHeadroom,
        DropReason::TxRefused,
    ];

    /// Stable snake_case name used in stats output and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::UnknownEthertype => "unknown_ethertype",
            DropReason::VlanTooDeep => "vlan_too_deep",
            DropReason::BadIpVersion => "bad_ip_version",
            DropReason::BadIpv4HeaderLen => "bad_ipv4_header_len",
            DropReason::BadIpLength => "bad_ip_length",
            DropReason::BadIpv4Checksum => "bad_ipv4_checksum",
            DropReason::Ipv6ExtChainTooDeep => "ipv6_ext_chain_too_deep",
            DropReason::L4Truncated => "l4_truncated",
            DropReason::BadFragment => "bad_fragment",
            DropReason::BadSrcMac => "bad_src_mac",
            DropReason::MartianSource => "martian_source",
            DropReason::MartianDestination => "martian_destination",
            DropReason::NotForUs => "not_for_us",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NoRoute => "no_route",
            DropReason::NoNextHop => "no_next_hop",
            DropReason::NoEgressPort => "no_egress_port",
            DropReason::Unresolved => "unresolved",
            DropReason::MtuExceeded => "mtu_exceeded",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::TxRefused => "tx_refused",
        }
    }
}

impl From<ParseError> for DropReason {
    #[inline]
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Truncated => DropReason::Truncated,
            ParseError::UnknownEthertype => DropReason::UnknownEthertype,
            ParseError::VlanTooDeep => DropReason::VlanTooDeep,
            ParseError::BadIpVersion => DropReason::BadIpVersion,
            ParseError::BadIpv4HeaderLen => DropReason::BadIpv4HeaderLen,
            ParseError::BadIpLength => DropReason::BadIpLength,
            ParseError::BadIpv4Checksum => DropReason::BadIpv4Checksum,
            ParseError::Ipv6ExtChainTooDeep => DropReason::Ipv6ExtChainTooDeep,
            ParseError::L4Truncated => DropReason::L4Truncated,
            ParseError::BadFragment => DropReason::BadFragment,
            ParseError::BadSrcMac => DropReason::BadSrcMac,
            ParseError::MartianSource => DropReason::MartianSource,
            ParseError::MartianDestination => DropReason::MartianDestination,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_counter_order_and_names_are_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn every_parse_error_maps_to_the_drop_reason_of_its_name() {
        for e in ParseError::ALL {
            assert_eq!(DropReason::from(e).name(), e.name());
        }
    }
}
