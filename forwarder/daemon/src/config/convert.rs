//! Spec types into the table types the data path reads (the spec enums mirror the table enums
//! one to one).

use ecmp_tables::nexthop::{Action, Encap, EncapKind, HopState, PortInfo};
use ecmp_tables::policy::{HashAlgo, HashFields, HashPolicy};

use super::spec::{
    ActionSpec, EncapKindSpec, EncapSpec, HashAlgoSpec, HashFieldsSpec, HashSpec, HopStateSpec,
    PortSpec,
};

impl From<HopStateSpec> for HopState {
    fn from(s: HopStateSpec) -> Self {
        match s {
            HopStateSpec::Active => Self::Active,
            HopStateSpec::Draining => Self::Draining,
            HopStateSpec::Failed => Self::Failed,
        }
    }
}

impl From<HashFieldsSpec> for HashFields {
    fn from(f: HashFieldsSpec) -> Self {
        match f {
            HashFieldsSpec::SrcIp => Self::SrcIp,
            HashFieldsSpec::DstIp => Self::DstIp,
            HashFieldsSpec::SrcDstIp => Self::SrcDstIp,
            HashFieldsSpec::FiveTuple => Self::FiveTuple,
        }
    }
}

impl From<HashAlgoSpec> for HashAlgo {
    fn from(a: HashAlgoSpec) -> Self {
        match a {
            HashAlgoSpec::Fast => Self::Fast,
            HashAlgoSpec::Crc32c => Self::Crc32c,
            HashAlgoSpec::Toeplitz => Self::Toeplitz,
            HashAlgoSpec::LbKey => Self::LbKey,
        }
    }
}

impl From<HashSpec> for HashPolicy {
    fn from(h: HashSpec) -> Self {
        Self {
            fields: h.fields.into(),
            algo: h.algo.into(),
            symmetric: h.symmetric,
            inner: h.inner,
        }
    }
}

impl From<EncapKindSpec> for EncapKind {
    fn from(k: EncapKindSpec) -> Self {
        match k {
            EncapKindSpec::IpIp => Self::IpIp,
            EncapKindSpec::Gre { key } => Self::Gre { key },
            EncapKindSpec::Vxlan {
                vni,
                inner_mac,
                udp_port,
            } => Self::Vxlan {
                vni,
                inner_dst_mac: inner_mac.map(|m| m.0),
                port: udp_port,
            },
            EncapKindSpec::Gue { udp_port } => Self::Gue { port: udp_port },
            EncapKindSpec::MplsUdp { label, udp_port } => Self::MplsUdp {
                label,
                port: udp_port,
            },
        }
    }
}

impl From<EncapSpec> for Encap {
    fn from(e: EncapSpec) -> Self {
        Self {
            kind: e.kind.into(),
            src: e.src,
            dst: e.dst,
        }
    }
}

impl From<ActionSpec> for Action {
    fn from(a: ActionSpec) -> Self {
        match a {
            ActionSpec::Rewrite => Self::Rewrite,
            ActionSpec::Encap(e) => Self::Encap(e.into()),
        }
    }
}

impl PortSpec {
    /// What the data path needs to know about this port as an egress. A port whose MAC is read
    /// from its interface (`mac` is `None`) gets the all-zero MAC here: the caller puts the
    /// interface's MAC in before publishing.
    pub fn port_info(&self) -> PortInfo {
        PortInfo {
            mac: self.mac.map_or([0; 6], |m| m.0),
            mtu: self.mtu,
        }
    }
}
