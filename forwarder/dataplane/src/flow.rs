//! Flow identity: what the flow cache is keyed by.
//!
//! Two kinds of key, told apart by [`FlowKey::group`]:
//! - the outer key ([`FlowKey::from_meta`], group 0): the packet's exact outer 5-tuple. It serves
//!   every group whose policy hashes the outer 5-tuple: equal keys hash alike under any such
//!   policy, and the key's destination names the route, so it is known before the route is.
//! - the policy key ([`policy_key`](crate::hash::policy_key)): exactly the
//!   fields a group's policy hashes (after its symmetry rule), taken from the headers it hashes
//!   (the inner ones for an inner policy and a tunnelled packet), plus that group's id. Such a
//!   key need not name the route (a source address does not), so it is built once the route is
//!   known, and the group id keeps one route's flows apart from another's.
//!
//! Invariants:
//! - A [`FlowKey`] is plain data of fixed size (at most 44 bytes, const-asserted), so it is copied
//!   and compared without allocation and fits in one cache line.
//! - IPv4 addresses fill the first 4 bytes of `src`/`dst` and the rest is zero, as in
//!   [`PacketMeta`]; `version` keeps an IPv4 key apart from an IPv6 one with the same bytes.
//! - Every fragment of a datagram gets the same key: ports are zeroed for fragments, because only
//!   the first fragment carries them and the later ones must follow it to the same hop.
//! - Two packets with equal keys get the same bucket: a key holds every field its group's hash
//!   reads (the outer key: all of them), and a policy key its group's id.

use ecmp_tables::nexthop::GroupId;
use ecmp_wire::meta::{IpVersion, PacketMeta};
use ecmp_wire::parse::FastV4;

/// The identity of a flow as the flow cache sees it: addresses, ports, protocol, IP version and,
/// for a policy key, the group. Fields a policy key does not select are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// Source address (IPv4 in the first 4 bytes, rest zero).
    pub src: [u8; 16],
    /// Destination address (IPv4 in the first 4 bytes, rest zero).
    pub dst: [u8; 16],
    /// Source port; 0 for fragments and for protocols without ports.
    pub src_port: u16,
    /// Destination port; 0 for fragments and for protocols without ports.
    pub dst_port: u16,
    /// L4 protocol number.
    pub protocol: u8,
    /// IPv4 or IPv6.
    pub version: IpVersion,
    /// 0 for the outer key; for a policy key, the group whose policy shaped it (never 0).
    pub group: GroupId,
}

const _: () = assert!(size_of::<FlowKey>() <= 44);

impl FlowKey {
    /// The outer key of the packet described by `meta`.
    ///
    /// Fragments (first or later) get ports 0 even when the parser saw them in the first
    /// fragment, so the whole datagram maps to one key.
    #[inline]
    pub fn from_meta(meta: &PacketMeta) -> Self {
        let (src_port, dst_port) = if meta.fragment {
            (0, 0)
        } else {
            (meta.src_port, meta.dst_port)
        };
        Self {
            src: meta.src,
            dst: meta.dst,
            src_port,
            dst_port,
            protocol: meta.protocol,
            version: meta.version,
            group: 0,
        }
    }

    /// The key as two address words and one word of ports, protocol, version and group; what
    /// the cache hash consumes (three multiplications instead of a byte loop). The group is
    /// XORed over the version's bits: an outer key (group 0) hashes as it always has, and the
    /// rare hash collision between a version and a group costs nothing (keys compare exactly).
    #[inline]
    pub(crate) fn words(&self) -> (u128, u128, u64) {
        let version: u64 = match self.version {
            IpVersion::V4 => 4,
            IpVersion::V6 => 6,
        };
        let tail = u64::from(self.src_port)
            | (u64::from(self.dst_port) << 16)
            | (u64::from(self.protocol) << 32)
            | ((version ^ u64::from(self.group)) << 40);
        (
            u128::from_ne_bytes(self.src),
            u128::from_ne_bytes(self.dst),
            tail,
        )
    }
}

/// The outer key of an IPv4 packet in its natural width: what [`FlowKey::from_meta`] gives for
/// such a packet, without the twelve zero bytes of each address. The hot path keys IPv4 packets
/// from it ([`crate::hash::FlowHasher::cache_hash_v4`],
/// [`crate::flowcache::FlowCache::probe_v4`]), with the same hash and probe the [`FlowKey`]
/// would give (property-tested).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterV4 {
    /// Source address, as in the packet.
    pub src: [u8; 4],
    /// Destination address, as in the packet.
    pub dst: [u8; 4],
    /// Source port; 0 for fragments and for protocols without ports.
    pub src_port: u16,
    /// Destination port; 0 for fragments and for protocols without ports.
    pub dst_port: u16,
    /// L4 protocol number.
    pub protocol: u8,
}

impl OuterV4 {
    /// The outer key of the IPv4 packet `meta` describes; `None` for IPv6.
    #[inline(always)]
    pub fn from_meta(meta: &PacketMeta) -> Option<Self> {
        if meta.version != IpVersion::V4 {
            return None;
        }
        let (src_port, dst_port) = if meta.fragment {
            (0, 0)
        } else {
            (meta.src_port, meta.dst_port)
        };
        let (s, d) = (&meta.src, &meta.dst);
        Some(Self {
            src: [s[0], s[1], s[2], s[3]],
            dst: [d[0], d[1], d[2], d[3]],
            src_port,
            dst_port,
            protocol: meta.protocol,
        })
    }

    /// The outer key of a frame the parser's fast path took: what [`Self::from_meta`] gives for
    /// its meta (such a frame is never a fragment, so its ports are kept).
    #[inline(always)]
    pub fn from_fast(v: &FastV4) -> Self {
        Self {
            src: v.src.to_ne_bytes(),
            dst: v.dst.to_ne_bytes(),
            src_port: v.src_port,
            dst_port: v.dst_port,
            protocol: v.protocol,
        }
    }

    /// [`FlowKey::words`] of the same key: the addresses zero-extended, version 4, group 0.
    #[inline(always)]
    pub(crate) fn words(&self) -> (u128, u128, u64) {
        let tail = u64::from(self.src_port)
            | (u64::from(self.dst_port) << 16)
            | (u64::from(self.protocol) << 32)
            | (4 << 40);
        // The address zero-padded to 16 bytes and read in native order, as `FlowKey` does, so
        // that the words are equal on either byte order; on a little-endian machine that is the
        // zero extension of the first four bytes, spelt so (the padded form costs more there).
        let pad = |a: [u8; 4]| {
            if cfg!(target_endian = "little") {
                u128::from(u32::from_le_bytes(a))
            } else {
                let mut w = [0u8; 16];
                w[..4].copy_from_slice(&a);
                u128::from_ne_bytes(w)
            }
        };
        (pad(self.src), pad(self.dst), tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The narrow key is the wide one: same words, for every IPv4 meta the parser can give
        /// (addresses in the first four bytes, the rest zero), fragments included.
        #[test]
        fn outer_v4_words_are_the_flow_key_words(
            src in proptest::prelude::any::<[u8; 4]>(),
            dst in proptest::prelude::any::<[u8; 4]>(),
            sport in proptest::prelude::any::<u16>(),
            dport in proptest::prelude::any::<u16>(),
            protocol in proptest::prelude::any::<u8>(),
            fragment in proptest::prelude::any::<bool>(),
        ) {
            let mut m = meta(fragment, sport, dport);
            m.src = v4(src);
            m.dst = v4(dst);
            m.protocol = protocol;
            let t = OuterV4::from_meta(&m).unwrap();
            proptest::prop_assert_eq!(t.words(), FlowKey::from_meta(&m).words());
            m.version = IpVersion::V6;
            proptest::prop_assert_eq!(OuterV4::from_meta(&m), None);
        }
    }

    proptest::proptest! {
        /// The key of a fast-path frame is the key of its meta.
        #[test]
        fn outer_v4_from_fast_is_from_meta(
            src in proptest::prelude::any::<[u8; 4]>(),
            dst in proptest::prelude::any::<[u8; 4]>(),
            src_port in proptest::prelude::any::<u16>(),
            dst_port in proptest::prelude::any::<u16>(),
            tcp in proptest::prelude::any::<bool>(),
            tcp_flags in proptest::prelude::any::<u8>(),
        ) {
            let v = FastV4 {
                src: u32::from_ne_bytes(src),
                dst: u32::from_ne_bytes(dst),
                src_port,
                dst_port,
                protocol: if tcp { 6 } else { 17 },
                tcp_flags: if tcp { tcp_flags } else { 0 },
                ttl: 64,
                ip_len: 60,
            };
            proptest::prop_assert_eq!(Some(OuterV4::from_fast(&v)), OuterV4::from_meta(&v.meta()));
        }
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&a);
        out
    }

    fn meta(fragment: bool, src_port: u16, dst_port: u16) -> PacketMeta {
        PacketMeta {
            l3_offset: 14,
            l4_offset: if fragment && src_port == 0 { 0 } else { 34 },
            version: IpVersion::V4,
            src: v4([10, 0, 0, 1]),
            dst: v4([192, 0, 2, 7]),
            protocol: 17,
            src_port,
            dst_port,
            fragment,
            ttl: 64,
            ip_len: 1500,
            ..PacketMeta::default()
        }
    }

    #[test]
    fn key_copies_the_five_tuple() {
        let k = FlowKey::from_meta(&meta(false, 5000, 53));
        assert_eq!(k.src, v4([10, 0, 0, 1]));
        assert_eq!(k.dst, v4([192, 0, 2, 7]));
        assert_eq!((k.src_port, k.dst_port), (5000, 53));
        assert_eq!(k.protocol, 17);
        assert_eq!(k.version, IpVersion::V4);
    }

    #[test]
    fn first_and_later_fragments_share_a_key() {
        let first = FlowKey::from_meta(&meta(true, 5000, 53));
        let later = FlowKey::from_meta(&meta(true, 0, 0));
        assert_eq!(first, later);
        assert_eq!((first.src_port, first.dst_port), (0, 0));
        // The unfragmented packet of the same flow is a different key (it has ports).
        assert_ne!(first, FlowKey::from_meta(&meta(false, 5000, 53)));
    }

    #[test]
    fn version_separates_keys_with_equal_bytes() {
        let mut m = meta(false, 1, 2);
        let k4 = FlowKey::from_meta(&m);
        m.version = IpVersion::V6;
        let k6 = FlowKey::from_meta(&m);
        assert_ne!(k4, k6);
        assert_ne!(k4.words(), k6.words());
    }

    #[test]
    fn words_cover_every_field() {
        let base = FlowKey::from_meta(&meta(false, 1000, 2000));
        let mut variants = [base; 7];
        variants[0].src[15] = 1;
        variants[1].dst[0] ^= 0x80;
        variants[2].src_port = 1001;
        variants[3].dst_port = 2001;
        variants[4].protocol = 6;
        variants[5].group = 1;
        variants[6].group = ecmp_tables::MAX_GROUP_ID;
        for v in variants {
            assert_ne!(v.words(), base.words(), "{v:?}");
        }
    }
}
