//! Next hops: where a packet goes and what is done to it on the way.

use std::net::{IpAddr, Ipv4Addr};

/// Index of a next hop in [`crate::snapshot::Snapshot::hops`]. Id 0 means "unset" (rule 8).
pub type HopId = u32;

/// Index of a group in [`crate::snapshot::Snapshot::groups`]. Id 0 means "no route".
pub type GroupId = u32;

/// Index of a port in the worker's port list.
pub type PortId = u16;

/// A member's state within a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HopState {
    /// Owns buckets and takes new flows.
    #[default]
    Active,
    /// Owns no buckets (takes no new flows) but keeps the flows already cached on it.
    Draining,
    /// Gone: owns no buckets and cached flows on it are re-picked.
    Failed,
}

/// The encapsulation applied toward a next hop. The outer IP family follows `Encap::src`/`dst`;
/// the inner may be IPv4 or IPv6 (IPv4-in-IPv4, IPv6-in-IPv6, IPv6-in-IPv4, IPv4-in-IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncapKind {
    /// IP-in-IP (protocol 4 or 41 in the outer header).
    IpIp,
    /// GRE (RFC 2784), with the RFC 2890 key when set.
    Gre {
        /// The GRE key, if any.
        key: Option<u32>,
    },
    /// VXLAN (RFC 7348): the rewritten Ethernet frame inside UDP.
    Vxlan {
        /// The 24-bit VXLAN network identifier.
        vni: u32,
        /// Destination MAC of the inner frame (the remote VTEP's bridge); `None` uses the hop's MAC.
        inner_dst_mac: Option<[u8; 6]>,
        /// Outer UDP destination port (4789 by default).
        port: u16,
    },
    /// GUE variant 0 with no optional fields.
    Gue {
        /// Outer UDP destination port.
        port: u16,
    },
    /// MPLS over UDP (RFC 7510): one label with bottom-of-stack set.
    MplsUdp {
        /// The 20-bit MPLS label.
        label: u32,
        /// Outer UDP destination port (6635 by default).
        port: u16,
    },
}

/// Outer tunnel endpoints and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encap {
    /// What the outer headers are.
    pub kind: EncapKind,
    /// Outer source address (this forwarder's tunnel endpoint).
    pub src: IpAddr,
    /// Outer destination address (the backend's tunnel endpoint).
    pub dst: IpAddr,
}

/// What is done to a packet sent to a next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Rewrite MACs and decrement TTL / hop limit.
    #[default]
    Rewrite,
    /// Encapsulate toward the next hop.
    Encap(Encap),
}

/// A next hop as the data path sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// This hop's id (its index in the snapshot's hop table).
    pub id: HopId,
    /// The next hop's address (a backend server, or a router).
    pub addr: IpAddr,
    /// Egress port.
    pub port: PortId,
    /// Destination MAC for frames sent to this hop (source MAC is the egress port's).
    pub mac: [u8; 6],
    /// Default weight when the hop joins a group.
    pub weight: u32,
    /// Rewrite or encapsulate.
    pub action: Action,
}

impl NextHop {
    /// Hop id 0, "unset" (rule 8): the first entry of every snapshot's hop table, which no group
    /// member ever names.
    pub const UNSET: NextHop = NextHop {
        id: 0,
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: 0,
        mac: [0; 6],
        weight: 0,
        action: Action::Rewrite,
    };
}

/// What the data path needs to know about an egress port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortInfo {
    /// The port's own MAC (source MAC of every frame sent on it).
    pub mac: [u8; 6],
    /// Largest IP packet (L3 bytes, without the Ethernet header) the port may send.
    pub mtu: u16,
}

/// The Maglev key of a next hop (see `ResilientGroup::set_maglev_key`): a fixed function of its
/// address (FNV-1a over family and octets), so instances that numbered their hops differently
/// still build identical Maglev tables.
pub fn maglev_key(addr: IpAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    match addr {
        IpAddr::V4(a) => {
            eat(4);
            a.octets().into_iter().for_each(&mut eat);
        }
        IpAddr::V6(a) => {
            eat(6);
            a.octets().into_iter().for_each(&mut eat);
        }
    }
    h
}
