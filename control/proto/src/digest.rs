//! Table digests: a short fingerprint of each group's bucket map and of the whole routing table,
//! so operators can compare forwarders at a glance (`ecmpctl groups`, `ecmpctl routes`).
//!
//! The hash is 64-bit FNV-1a (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) over the
//! byte encodings below, printed as 16 lowercase hex digits. It is fixed, never seeded, and
//! reads nothing a process picks for itself (hop ids, group ids, the order updates arrived in),
//! so two forwarders whose buckets send every flow to the same next-hop addresses print the same
//! digest, whatever machine or build they run. It is a fingerprint for comparing, not a
//! cryptographic hash.
//!
//! Encodings (integers big-endian):
//! - an address: `4` then its 4 bytes (IPv4), `6` then its 16 bytes (IPv6); no owner: `0`;
//! - a group: its bucket count (u32), then each bucket's owner address in bucket order;
//! - the table: for each installed route in ascending prefix order, its prefix (the address
//!   encoding, then the length as one byte) and its group's digest (u64).
//!
//! What the digests do not cover: the flow-hash seed and fields, weights and actions. Forwarders
//! that must send a flow to the same server also need the same `[instance] seed` and `[hash]`.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Prefix;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A 64-bit FNV-1a digest, shown and serialised as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub u64);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() != 16 {
            return Err(serde::de::Error::custom(format!(
                "digest {text:?} is not 16 hex digits"
            )));
        }
        u64::from_str_radix(&text, 16)
            .map(Digest)
            .map_err(|_| serde::de::Error::custom(format!("digest {text:?} is not hex")))
    }
}

/// FNV-1a, fed piecewise.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(FNV_OFFSET)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    fn addr(&mut self, addr: Option<IpAddr>) {
        match addr {
            None => self.bytes(&[0]),
            Some(IpAddr::V4(a)) => {
                self.bytes(&[4]);
                self.bytes(&a.octets());
            }
            Some(IpAddr::V6(a)) => {
                self.bytes(&[6]);
                self.bytes(&a.octets());
            }
        }
    }
}

/// The digest of one group's bucket map: each bucket's owner by next-hop address (`None`: no
/// owner), in bucket order.
pub fn group_digest(owners: &[Option<IpAddr>]) -> Digest {
    let mut h = Fnv::new();
    // More than u32::MAX buckets cannot be configured; saturating keeps the encoding total.
    h.bytes(
        &u32::try_from(owners.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for &owner in owners {
        h.addr(owner);
    }
    Digest(h.0)
}

/// The digest of a whole table: every installed route's prefix with its group's digest. The
/// routes may come in any order: they are sorted by prefix first.
pub fn table_digest(routes: impl IntoIterator<Item = (Prefix, Digest)>) -> Digest {
    let mut routes: Vec<(Prefix, Digest)> = routes.into_iter().collect();
    routes.sort_unstable();
    let mut h = Fnv::new();
    for (prefix, digest) in routes {
        h.addr(Some(prefix.addr()));
        h.bytes(&[prefix.len()]);
        h.bytes(&digest.0.to_be_bytes());
    }
    Digest(h.0)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn v4(n: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, n)))
    }

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        // From the FNV reference test suite (64-bit FNV-1a): "" and "a".
        let mut h = Fnv::new();
        assert_eq!(h.0, 0xcbf2_9ce4_8422_2325);
        h.bytes(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv::new();
        h.bytes(b"foobar");
        assert_eq!(h.0, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn group_digest_is_fixed_for_a_known_map() {
        // Pinned: a change of encoding or hash changes what operators compare across versions.
        let d = group_digest(&[v4(1), v4(2), None, v4(1)]);
        let mut h = Fnv::new();
        h.bytes(&[0, 0, 0, 4]);
        h.bytes(&[
            4, 198, 51, 100, 1, 4, 198, 51, 100, 2, 0, 4, 198, 51, 100, 1,
        ]);
        assert_eq!(d, Digest(h.0));
        assert_eq!(d.to_string().len(), 16);
    }

    #[test]
    fn group_digest_sees_every_bucket_and_the_count() {
        let base = group_digest(&[v4(1), v4(2), v4(1), v4(2)]);
        assert_ne!(base, group_digest(&[v4(2), v4(1), v4(1), v4(2)]));
        assert_ne!(base, group_digest(&[v4(1), v4(2), v4(1), None]));
        assert_ne!(base, group_digest(&[v4(1), v4(2), v4(1), v4(2), v4(1)]));
        let v6 = Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
        assert_ne!(base, group_digest(&[v4(1), v4(2), v4(1), v6]));
        assert_eq!(base, group_digest(&[v4(1), v4(2), v4(1), v4(2)]));
    }

    #[test]
    fn table_digest_ignores_order_but_not_content() {
        let a: Prefix = "192.0.2.10/32".parse().expect("prefix");
        let b: Prefix = "2001:db8::/64".parse().expect("prefix");
        let (da, db) = (Digest(1), Digest(2));
        let one = table_digest([(a, da), (b, db)]);
        assert_eq!(one, table_digest([(b, db), (a, da)]));
        assert_ne!(one, table_digest([(a, db), (b, da)]));
        assert_ne!(one, table_digest([(a, da)]));
    }

    #[test]
    fn digest_round_trips_as_hex_text() {
        let d = Digest(0x0123_4567_89ab_cdef);
        let json = serde_json::to_string(&d).expect("encode");
        assert_eq!(json, "\"0123456789abcdef\"");
        assert_eq!(serde_json::from_str::<Digest>(&json).expect("decode"), d);
        assert!(serde_json::from_str::<Digest>("\"123\"").is_err());
        assert!(serde_json::from_str::<Digest>("\"zz23456789abcdef\"").is_err());
    }
}
