//! Route keys: prefixes, ADD-PATH path ids and address families.
//!
//! Invariant: a [`Prefix`] always has `len <= max_len(addr)` and no host bits set, so two
//! spellings of one prefix (`10.1.2.3/8`, `10.0.0.0/8`) compare equal, as they do in the FIB.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a route key did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The prefix is not `address/length`.
    #[error("prefix {0:?} is not address/length")]
    PrefixSyntax(String),
    /// The prefix length exceeds the address width (32 for IPv4, 128 for IPv6).
    #[error("prefix length {len} exceeds {max}")]
    PrefixLength {
        /// The length given.
        len: u8,
        /// The family's maximum.
        max: u8,
    },
    /// The path id is neither a dotted quad nor a decimal 32-bit number.
    #[error("path id {0:?} is neither a dotted quad nor a 32-bit number")]
    PathId(String),
    /// The family is not one the feed carries (`ipv4 unicast`, `ipv6 unicast`).
    #[error("unsupported address family {0:?}")]
    Family(String),
}

/// An address family the feed carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// AFI 1, SAFI 1.
    Ipv4Unicast,
    /// AFI 2, SAFI 1.
    Ipv6Unicast,
}

impl Family {
    /// Both families, in a fixed order (usable as an index).
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    /// The family named by ExaBGP's `afi` and `safi` strings (`"ipv4"`, `"unicast"`), if supported.
    pub fn from_afi_safi(afi: &str, safi: &str) -> Option<Family> {
        match (afi, safi) {
            ("ipv4", "unicast") => Some(Family::Ipv4Unicast),
            ("ipv6", "unicast") => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }

    /// The family of an address.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4Unicast,
            IpAddr::V6(_) => Family::Ipv6Unicast,
        }
    }

    /// Position in [`Family::ALL`].
    pub fn index(self) -> usize {
        match self {
            Family::Ipv4Unicast => 0,
            Family::Ipv6Unicast => 1,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4 unicast",
            Family::Ipv6Unicast => "ipv6 unicast",
        })
    }
}

impl FromStr for Family {
    type Err = ProtoError;

    /// Parses ExaBGP's family-map keys (`"ipv4 unicast"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(afi), Some(safi), None) => Family::from_afi_safi(afi, safi),
            _ => None,
        }
        .ok_or_else(|| ProtoError::Family(s.to_owned()))
    }
}

/// An IPv4 or IPv6 prefix with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// A prefix of `len` bits of `addr`; host bits are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, ProtoError> {
        let addr = match addr {
            IpAddr::V4(a) => {
                if len > 32 {
                    return Err(ProtoError::PrefixLength { len, max: 32 });
                }
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                if len > 128 {
                    return Err(ProtoError::PrefixLength { len, max: 128 });
                }
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(Prefix { addr, len })
    }

    /// The network address (host bits clear).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for the default route (`0.0.0.0/0`, `::/0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The prefix's address family.
    pub fn family(&self) -> Family {
        Family::of(self.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = ProtoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ProtoError::PrefixSyntax(s.to_owned());
        let (addr, len) = s.split_once('/').ok_or_else(syntax)?;
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        // u8::from_str accepts a leading '+'; a prefix length never has one.
        if !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let len: u8 = len.parse().map_err(|_| syntax())?;
        Prefix::new(addr, len)
    }
}

impl TryFrom<String> for Prefix {
    type Error = ProtoError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Prefix> for String {
    fn from(p: Prefix) -> String {
        p.to_string()
    }
}

/// An ADD-PATH path identifier (RFC 7911). Opaque: only equality matters. ExaBGP prints it as a
/// dotted quad (`"0.0.0.2"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PathId(pub u32);

impl fmt::Display for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ipv4Addr::from(self.0).fmt(f)
    }
}

impl FromStr for PathId {
    type Err = ProtoError;

    /// Accepts a dotted quad (ExaBGP) or a plain decimal number (BIRD, GoBGP spell it that way).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(quad) = s.parse::<Ipv4Addr>() {
            return Ok(PathId(u32::from(quad)));
        }
        if !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = s.parse::<u32>()
        {
            return Ok(PathId(n));
        }
        Err(ProtoError::PathId(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_parses_and_clears_host_bits() {
        let p: Prefix = "10.1.2.3/8".parse().unwrap();
        assert_eq!(p, "10.0.0.0/8".parse().unwrap());
        assert_eq!(p.to_string(), "10.0.0.0/8");
        assert_eq!(p.family(), Family::Ipv4Unicast);
        let p6: Prefix = "2001:db8::10/128".parse().unwrap();
        assert_eq!(p6.to_string(), "2001:db8::10/128");
        assert_eq!(p6.len(), 128);
        let p6: Prefix = "2001:db8:1:2::/32".parse().unwrap();
        assert_eq!(p6.to_string(), "2001:db8::/32");
        let zero: Prefix = "1.2.3.4/0".parse().unwrap();
        assert_eq!(zero.to_string(), "0.0.0.0/0");
        assert!(zero.is_empty());
        let host: Prefix = "192.0.2.10/32".parse().unwrap();
        assert_eq!(host.addr(), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)));
    }

    #[test]
    fn prefix_rejects_bad_input() {
        assert_eq!(
            "10.0.0.0/33".parse::<Prefix>(),
            Err(ProtoError::PrefixLength { len: 33, max: 32 })
        );
        assert_eq!(
            "::/129".parse::<Prefix>(),
            Err(ProtoError::PrefixLength { len: 129, max: 128 })
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/",
            "/8",
            "10.0.0.0/+8",
            "x/8",
            "10.0.0.0/256",
            "",
        ] {
            assert!(
                matches!(bad.parse::<Prefix>(), Err(ProtoError::PrefixSyntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn prefix_serde_is_a_string() {
        let p: Prefix = "192.0.2.0/24".parse().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"192.0.2.0/24\"");
        assert_eq!(serde_json::from_str::<Prefix>(&json).unwrap(), p);
        assert!(serde_json::from_str::<Prefix>("\"192.0.2.0/40\"").is_err());
    }

    #[test]
    fn path_id_forms() {
        assert_eq!("0.0.0.2".parse::<PathId>(), Ok(PathId(2)));
        assert_eq!("1.0.0.0".parse::<PathId>(), Ok(PathId(1 << 24)));
        assert_eq!("7".parse::<PathId>(), Ok(PathId(7)));
        assert_eq!(PathId(2).to_string(), "0.0.0.2");
        for bad in ["", "-1", "4294967296", "0.0.0", "a"] {
            assert!(bad.parse::<PathId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn family_names() {
        assert_eq!("ipv4 unicast".parse::<Family>(), Ok(Family::Ipv4Unicast));
        assert_eq!("ipv6 unicast".parse::<Family>(), Ok(Family::Ipv6Unicast));
        assert!("ipv4 flow".parse::<Family>().is_err());
        assert!("ipv4 unicast extra".parse::<Family>().is_err());
        assert_eq!(Family::Ipv6Unicast.to_string(), "ipv6 unicast");
        assert_eq!(
            Family::from_afi_safi("ipv6", "unicast"),
            Some(Family::Ipv6Unicast)
        );
        assert_eq!(Family::from_afi_safi("ipv4", "mpls-vpn"), None);
        for (i, f) in Family::ALL.into_iter().enumerate() {
            assert_eq!(f.index(), i);
        }
    }
}
