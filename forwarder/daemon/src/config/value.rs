//! Value types with their own syntax that outlive loading: MACs, prefixes, port addresses. Their
//! `Deserialize` errors get the value's span from toml, so they point at the value.

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;
use serde::de::{self, Deserializer};

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Multicast (and broadcast) addresses have the I/G bit set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// All zeroes.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid MAC address {s:?} (expected six hex pairs like \"02:00:00:00:00:01\")")
        };
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(out))
    }
}

/// An IP prefix with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length: at most 32 for IPv4, 128 for IPv6.
    pub len: u8,
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;

    /// `addr/len`, or a bare address meaning a host route (/32 or /128).
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr_text, len_text) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("invalid prefix {s:?}: {addr_text:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len_text {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(len) if len <= max && !l.starts_with('+') => len,
                _ => return Err(format!("invalid prefix {s:?}: length must be 0..={max}")),
            },
        };
        let masked = mask(addr, len);
        if masked != addr {
            return Err(format!(
                "prefix {s} has host bits set (did you mean {masked}/{len}?)"
            ));
        }
        Ok(Self { addr, len })
    }
}

/// `addr` with everything after the first `len` bits cleared.
pub(super) fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

/// An address of a port with the length of its connected subnet (`198.18.1.254/24`); unlike
/// [`Prefix`], host bits are the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortAddr {
    /// The port's own address (unicast).
    pub addr: IpAddr,
    /// The subnet's prefix length: at most 32 for IPv4, 128 for IPv6.
    pub len: u8,
}

impl PortAddr {
    /// The connected subnet (`198.18.1.0/24`).
    pub fn subnet(&self) -> Prefix {
        Prefix {
            addr: mask(self.addr, self.len),
            len: self.len,
        }
    }
}

impl fmt::Display for PortAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for PortAddr {
    type Err = String;

    /// `addr/len`; the length is required (an interface address always has one).
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((addr_text, len_text)) = s.split_once('/') else {
            return Err(format!(
                "invalid port address {s:?}: expected address/length like \"198.18.1.254/24\""
            ));
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            format!("invalid port address {s:?}: {addr_text:?} is not an IP address")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        match len_text.parse::<u8>() {
            Ok(len) if len <= max && !len_text.starts_with('+') => Ok(Self { addr, len }),
            _ => Err(format!(
                "invalid port address {s:?}: length must be 0..={max}"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}
