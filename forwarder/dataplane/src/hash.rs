//! Flow hashing: the flow-cache hash of a [`FlowKey`] and the per-group hash that picks a bucket.
//!
//! Invariants:
//! - Nothing here allocates after [`FlowHasher::new`] (which builds the Toeplitz tables once), and
//!   no input can make a hash function panic.
//! - Every algorithm depends on the per-instance seed in a way that changes *which flows
//!   collide*, not just the hash values, so two forwarders in series do not split
//!   traffic the same way (anti-polarization). Seeding CRC32C or Toeplitz alone cannot do that:
//!   both are affine over GF(2), so a seed prepended to the input or XORed into the result only
//!   permutes the buckets. Their outputs therefore go through a seeded non-linear finalizer
//!   (`mix32`), which also spreads the structure of these linear codes over the low 16 bits
//!   that pick a bucket (`hash & (B - 1)`, B up to 65536).
//! - [`FlowHasher::toeplitz_hash`] returns the raw RSS value a NIC computes (verified against
//!   Microsoft's published vectors); [`FlowHasher::group_hash`] with `Toeplitz` is that value
//!   passed through the seeded finalizer.
//! - [`HashAlgo::LbKey`] is a switch's 10-bit lb-key, an XOR fold: with `seed = 0` it is exactly
//!   the plain fold (what the switch computes). Any other seed XORs a seed word into the fold's
//!   input, as a switch's hash seed does, and passes the key through a seeded bijection of its
//!   1024 values (`LbSeed`): the XOR alone would only relabel keys (the fold is linear, so
//!   collisions stay), the bijection changes which flows share the low bits that pick a bucket.
//!   It has only [`LB_KEY_VALUES`] distinct values, so a group with more buckets than that uses
//!   only the first 1024 of them.
//! - Fragments never contribute ports, even under [`HashFields::FiveTuple`], so every fragment of
//!   a datagram hashes alike; the protocol still does (for the algorithms that read it).
//! - Symmetric policies sort the (address, port) pairs first and then select fields, so both
//!   directions of a flow hash alike for every field set (`SrcIp` then means "the lower address").
//! - `HashPolicy::inner` is the parser's business: the hasher hashes whichever headers the
//!   [`PacketMeta`] describes.
//! - [`policy_key`] holds every field a group hash reads under its policy: equal policy keys of
//!   one group hash alike (property-tested over every policy).

use core::hash::{BuildHasher, Hasher};

use ecmp_tables::nexthop::GroupId;
use ecmp_tables::policy::{HashAlgo, HashFields, HashPolicy};
use ecmp_wire::meta::{IpVersion, PacketMeta};
use foldhash::fast::FixedState;

use crate::flow::FlowKey;

/// Length of an RSS (Toeplitz) key in bytes.
pub const RSS_KEY_LEN: usize = 40;

/// Longest Toeplitz input: a 320-bit key has 289 32-bit windows, enough for 36 bytes (IPv6
/// addresses and ports). Longer inputs are never built.
pub const TOEPLITZ_MAX_INPUT: usize = 36;

/// Number of distinct values of the lb-key compatibility hash.
pub const LB_KEY_VALUES: u32 = 1 << 10;

/// The RSS key of Microsoft's verification suite, which many NIC drivers also use as default.
pub const DEFAULT_RSS_KEY: [u8; RSS_KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Room for the longest hash input (two IPv6 addresses, two ports and the protocol: 37 bytes)
/// rounded up to whole 8-byte words.
const MAX_INPUT: usize = (16 + 16 + 2 + 2 + 1usize).next_multiple_of(8);

/// Per-byte Toeplitz tables: `table[i][v]` is the contribution of byte value `v` at input
/// position `i`, i.e. the XOR of the key windows of the bits set in `v`.
type ToeplitzTables = [[u32; 256]; TOEPLITZ_MAX_INPUT];

/// Hashes flows for the flow cache and for group bucket selection. One per worker, built once.
#[derive(Clone)]
pub struct FlowHasher {
    /// Seeded foldhash for the flow cache.
    cache: FixedState,
    /// Seeded foldhash for [`HashAlgo::Fast`].
    fast: FixedState,
    /// CRC32C state after the seed bytes: the seed is "prepended" to every input.
    crc_init: u32,
    /// Finalizer seed for [`HashAlgo::Crc32c`].
    crc_mix: u64,
    /// Finalizer seed for [`HashAlgo::Toeplitz`].
    toeplitz_mix: u64,
    /// What the seed does to [`HashAlgo::LbKey`] (nothing for seed 0).
    lb: LbSeed,
    /// Precomputed Toeplitz tables for the configured RSS key (36 KiB).
    toeplitz: Box<ToeplitzTables>,
}

impl core::fmt::Debug for FlowHasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The seeds are deliberately not printed: they are what makes the hash unpredictable.
        f.debug_struct("FlowHasher").finish_non_exhaustive()
    }
}

impl FlowHasher {
    /// Builds a hasher for the per-instance `seed` and the RSS key used by `Toeplitz` groups.
    pub fn new(seed: u64, rss_key: &[u8; RSS_KEY_LEN]) -> Self {
        // Independent sub-seeds, so e.g. the cache hash and the Fast group hash are unrelated.
        let sub = |i: u64| splitmix64(seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        Self {
            cache: FixedState::with_seed(sub(1)),
            fast: FixedState::with_seed(sub(2)),
            crc_init: crc32c::crc32c(&sub(3).to_le_bytes()),
            crc_mix: sub(4),
            toeplitz_mix: sub(5),
            lb: LbSeed::new(seed, sub(6)),
            toeplitz: toeplitz_tables(rss_key),
        }
    }

    /// The flow-cache hash of `key`: seeded foldhash over the whole key. The cache takes the
    /// bucket from the low bits and a signature from the high bits.
    #[inline]
    pub fn cache_hash(&self, key: &FlowKey) -> u64 {
        let (src, dst, tail) = key.words();
        let mut h = self.cache.build_hasher();
        h.write_u128(src);
        h.write_u128(dst);
        h.write_u64(tail);
        h.finish()
    }

    /// The hash that picks a bucket of a group with `policy` (bucket = `hash & (B - 1)`).
    #[inline]
    pub fn group_hash(&self, meta: &PacketMeta, policy: &HashPolicy) -> u32 {
        match policy.algo {
            HashAlgo::Fast => self.fast_hash(meta, policy),
            HashAlgo::Crc32c => {
                let input = Input::build(meta, policy, true);
                mix32(
                    crc32c::crc32c_append(self.crc_init, input.padded()),
                    self.crc_mix,
                )
            }
            HashAlgo::Toeplitz => mix32(self.toeplitz_hash(meta, policy), self.toeplitz_mix),
            HashAlgo::LbKey => self.lb.mix(lb_key(meta, policy, self.lb.input)),
        }
    }

    /// [`HashAlgo::Fast`]: the selected fields go to foldhash as integers, not as a byte buffer,
    /// so the hash reads registers instead of reloading narrow stores as wide words.
    #[inline(always)]
    fn fast_hash(&self, meta: &PacketMeta, policy: &HashPolicy) -> u32 {
        let ep = Endpoints::new(meta, policy);
        let mut h = self.fast.build_hasher();
        let mut addr = |a: &[u8; 16]| match meta.version {
            IpVersion::V4 => h.write_u32(u32::from_ne_bytes([a[0], a[1], a[2], a[3]])),
            IpVersion::V6 => h.write_u128(u128::from_ne_bytes(*a)),
        };
        match policy.fields {
            HashFields::SrcIp => addr(&ep.a.0),
            HashFields::DstIp => addr(&ep.b.0),
            HashFields::SrcDstIp | HashFields::FiveTuple => {
                addr(&ep.a.0);
                addr(&ep.b.0);
            }
        }
        if ep.ports {
            h.write_u32((u32::from(ep.a.1) << 16) | u32::from(ep.b.1));
        }
        if policy.fields == HashFields::FiveTuple {
            h.write_u8(meta.protocol);
        }
        let x = h.finish();
        (x ^ (x >> 32)) as u32
    }

    /// The raw Toeplitz (RSS) value of the fields `policy` selects, as a NIC with the same key
    /// computes it: source address, destination address, then (5-tuple, non-fragment) source
    /// and destination port, all in network order. Ignores `policy.algo`; not seeded.
    #[inline]
    pub fn toeplitz_hash(&self, meta: &PacketMeta, policy: &HashPolicy) -> u32 {
        self.toeplitz(Input::build(meta, policy, false).as_slice())
    }

    /// Toeplitz hash of `input` with this hasher's key. Bytes past [`TOEPLITZ_MAX_INPUT`] are
    /// ignored (the key has no windows for them).
    #[inline]
    pub fn toeplitz(&self, input: &[u8]) -> u32 {
        self.toeplitz
            .iter()
            .zip(input)
            .fold(0, |h, (table, &b)| h ^ table[usize::from(b)])
    }
}

/// Builds the per-byte tables so that a packet costs one lookup per input byte instead of a loop
/// over its bits.
fn toeplitz_tables(key: &[u8; RSS_KEY_LEN]) -> Box<ToeplitzTables> {
    let mut tables = Box::new([[0u32; 256]; TOEPLITZ_MAX_INPUT]);
    for (i, row) in tables.iter_mut().enumerate() {
        // The 64 key bits starting at byte i (zero past the key's end): holds the 32-bit window
        // of each of the 8 input bits of byte i.
        let mut w = 0u64;
        for k in 0..8 {
            w = (w << 8) | u64::from(key.get(i + k).copied().unwrap_or(0));
        }
        let mut windows = [0u32; 8];
        for (bit, window) in windows.iter_mut().enumerate() {
            // Input bit `bit` (0 = most significant) of byte i uses key bits 8i+bit .. 8i+bit+31.
            *window = (w >> (32 - bit)) as u32;
        }
        for (value, out) in row.iter_mut().enumerate() {
            *out = windows
                .iter()
                .enumerate()
                .filter(|(bit, _)| value & (0x80 >> bit) != 0)
                .fold(0, |h, (_, window)| h ^ window);
        }
    }
    tables
}

/// The two (address, port) endpoints of a packet after the policy's port and symmetry rules.
#[derive(Clone, Copy)]
struct Endpoints {
    /// First endpoint (the source, or the lower one when symmetric).
    a: ([u8; 16], u16),
    /// Second endpoint.
    b: ([u8; 16], u16),
    /// Whether ports take part (5-tuple on a non-fragment).
    ports: bool,
}

impl Endpoints {
    #[inline(always)]
    fn new(meta: &PacketMeta, policy: &HashPolicy) -> Self {
        let ports = policy.fields == HashFields::FiveTuple && !meta.fragment;
        let (sp, dp) = if ports {
            (meta.src_port, meta.dst_port)
        } else {
            (0, 0)
        };
        let (a, b) = ((meta.src, sp), (meta.dst, dp));
        let (a, b) = if policy.symmetric && b < a {
            (b, a)
        } else {
            (a, b)
        };
        Self { a, b, ports }
    }
}

/// A hash input in network byte order, on the stack. Aligned and zero-padded to whole words so
/// CRC32C consumes it 8 bytes at a time instead of byte by byte.
#[repr(C, align(8))]
struct Input {
    bytes: [u8; MAX_INPUT],
    len: usize,
}

impl Input {
    /// Source (and/or destination) address as the policy selects, then the ports for a 5-tuple
    /// non-fragment, then the protocol for a 5-tuple when `with_protocol`. IPv4 addresses take 4
    /// bytes, IPv6 16: this is also the exact RSS input layout when `with_protocol` is false.
    #[inline(always)]
    fn build(meta: &PacketMeta, policy: &HashPolicy, with_protocol: bool) -> Self {
        let ep = Endpoints::new(meta, policy);
        let protocol =
            (with_protocol && policy.fields == HashFields::FiveTuple).then_some(meta.protocol);
        // Monomorphised per address length so every copy has a constant size (no memcpy calls).
        match meta.version {
            IpVersion::V4 => Self::build_for::<4>(&ep, policy.fields, protocol),
            IpVersion::V6 => Self::build_for::<16>(&ep, policy.fields, protocol),
        }
    }

    #[inline(always)]
    fn build_for<const A: usize>(ep: &Endpoints, fields: HashFields, protocol: Option<u8>) -> Self {
        let mut input = Self {
            bytes: [0; MAX_INPUT],
            len: 0,
        };
        let (Some(a), Some(b)) = (ep.a.0.first_chunk::<A>(), ep.b.0.first_chunk::<A>()) else {
            return input;
        };
        match fields {
            HashFields::SrcIp => input.put(a),
            HashFields::DstIp => input.put(b),
            HashFields::SrcDstIp | HashFields::FiveTuple => {
                input.put(a);
                input.put(b);
            }
        }
        if ep.ports {
            input.put(&ep.a.1.to_be_bytes());
            input.put(&ep.b.1.to_be_bytes());
        }
        if let Some(p) = protocol {
            input.put(&[p]);
        }
        input
    }

    #[inline(always)]
    fn put<const N: usize>(&mut self, s: &[u8; N]) {
        if let Some(dst) = self.bytes.get_mut(self.len..self.len + N) {
            dst.copy_from_slice(s);
            self.len += N;
        }
    }

    #[inline(always)]
    fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// The input followed by its zero padding to a multiple of 8 bytes. The padding is a
    /// function of the length, which the policy and IP version fix, so it adds no collisions.
    #[inline(always)]
    fn padded(&self) -> &[u8] {
        self.bytes
            .get(..self.len.next_multiple_of(8))
            .unwrap_or(&self.bytes)
    }
}

/// The switch lb-key: see the module doc. Returns a value below [`LB_KEY_VALUES`].
///
/// a = SIP (source-only) or SIP ^ DIP (destination, both, 5-tuple), IPv6 addresses folded to 32
/// bits by XOR of their words; for a 5-tuple the ports are XORed into the low 16 bits; then the
/// two halves are XORed (d), bits 11..8 of d are replaced by (bits 15..12 ^ bits 11..8), and the
/// low 10 bits are the key. `seed_word` (0 for seed 0) is XORed into the 32-bit input of the fold,
/// after the ports.
#[inline]
fn lb_key(meta: &PacketMeta, policy: &HashPolicy, seed_word: u32) -> u32 {
    let ep = Endpoints::new(meta, policy);
    let fold = |addr: &[u8; 16]| -> u32 {
        match meta.version {
            IpVersion::V4 => u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]),
            IpVersion::V6 => addr.chunks_exact(4).fold(0, |acc, w| {
                acc ^ u32::from_be_bytes([w[0], w[1], w[2], w[3]])
            }),
        }
    };
    let a = match policy.fields {
        HashFields::SrcIp => fold(&ep.a.0),
        HashFields::DstIp | HashFields::SrcDstIp | HashFields::FiveTuple => {
            fold(&ep.a.0) ^ fold(&ep.b.0)
        }
    };
    // Ports are zero when they do not take part, and XOR with zero is the identity.
    let c = a ^ u32::from(ep.a.1) ^ u32::from(ep.b.1) ^ seed_word;
    let d = (c >> 16) ^ (c & 0xffff);
    let e = ((d >> 12) ^ (d >> 8)) & 0xf;
    let f = (d & !0x0f00) | (e << 8);
    f & (LB_KEY_VALUES - 1)
}

/// What a non-zero seed does to the lb-key. The fold is linear over GF(2), so a seed word XORed
/// into its input only relabels the keys: flows that collided in `B` buckets still do. The key
/// therefore also goes through a seeded bijection of the 1024 values (odd multiplications, which
/// carry low bits upwards, and right xorshifts, which bring high bits down), so the low bits that
/// pick a bucket change with the seed while the spread over the 1024 values is kept. Seed 0 is
/// the identity: the plain fold a switch computes.
#[derive(Debug, Clone, Copy)]
struct LbSeed {
    /// XORed into the fold's input.
    input: u32,
    /// Odd multipliers below 1024; 1 and 1 with `input` 0 for seed 0.
    mul: [u32; 2],
}

impl LbSeed {
    fn new(seed: u64, sub: u64) -> Self {
        if seed == 0 {
            return Self {
                input: 0,
                mul: [1, 1],
            };
        }
        // Odd, and never 1 (which would leave the low bits where they are).
        let odd = |x: u64| ((x as u32) & (LB_KEY_VALUES - 1)) | 1;
        let pick = |x: u64| if odd(x) == 1 { 0x2c5 } else { odd(x) };
        Self {
            input: (sub >> 32) as u32,
            mul: [pick(sub), pick(sub >> 12)],
        }
    }

    /// The seeded bijection of lb-key values (identity for seed 0).
    #[inline]
    fn mix(&self, key: u32) -> u32 {
        if self.mul == [1, 1] {
            return key;
        }
        let mask = LB_KEY_VALUES - 1;
        let mut k = key.wrapping_mul(self.mul[0]) & mask;
        k ^= k >> 5;
        k = k.wrapping_mul(self.mul[1]) & mask;
        k ^ (k >> 5)
    }
}

/// Seeded non-linear finalizer (MurmurHash3's fmix64 over the seeded value): every output bit
/// depends on every bit of `h` and of `seed`, so the collisions of `mix32(_, seed) & (B - 1)`
/// change with the seed. See the module doc for why CRC32C and Toeplitz need it.
#[inline(always)]
fn mix32(h: u32, seed: u64) -> u32 {
    let mut x = u64::from(h) ^ seed;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x as u32
}

/// The policy key of a packet in group `group` (never 0), whose policy `policy` hashes the
/// headers `meta` describes (the inner ones when the policy and the packet have them): exactly
/// the fields [`FlowHasher::group_hash`] reads under that policy, after the same port and
/// symmetry rules ([`Endpoints`]), every other field zero. So two packets with equal policy keys
/// hash alike under every algorithm, and a key is shared by every flow the policy cannot tell
/// apart (a `src-ip` group caches one entry per source).
///
/// The algorithm matters only where it reads more than the fields: the lb-key folds both
/// addresses for `DstIp` too, so that key keeps the (lower, when symmetric) source as well.
#[inline]
pub fn policy_key(meta: &PacketMeta, policy: &HashPolicy, group: GroupId) -> FlowKey {
    let ep = Endpoints::new(meta, policy);
    let (src, dst) = match policy.fields {
        HashFields::SrcIp => (ep.a.0, [0; 16]),
        HashFields::DstIp if policy.algo != HashAlgo::LbKey => ([0; 16], ep.b.0),
        HashFields::DstIp | HashFields::SrcDstIp | HashFields::FiveTuple => (ep.a.0, ep.b.0),
    };
    FlowKey {
        src,
        dst,
        // Zero unless a 5-tuple of a non-fragment (the rule `Endpoints` applies).
        src_port: ep.a.1,
        dst_port: ep.b.1,
        protocol: if policy.fields == HashFields::FiveTuple {
            meta.protocol
        } else {
            0
        },
        version: meta.version,
        group,
    }
}

/// SplitMix64: derives independent sub-seeds from the instance seed.
const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecmp_tables::MAX_GROUP_ID;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const ALGOS: [HashAlgo; 4] = [
        HashAlgo::Fast,
        HashAlgo::Crc32c,
        HashAlgo::Toeplitz,
        HashAlgo::LbKey,
    ];
    const SEEDED: [HashAlgo; 3] = [HashAlgo::Fast, HashAlgo::Crc32c, HashAlgo::Toeplitz];
    const FIELDS: [HashFields; 4] = [
        HashFields::SrcIp,
        HashFields::DstIp,
        HashFields::SrcDstIp,
        HashFields::FiveTuple,
    ];

    fn policy(algo: HashAlgo, fields: HashFields, symmetric: bool) -> HashPolicy {
        HashPolicy {
            fields,
            algo,
            symmetric,
            inner: false,
        }
    }

    fn v4(s: &str, sp: u16, d: &str, dp: u16) -> PacketMeta {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src[..4].copy_from_slice(&s.parse::<Ipv4Addr>().unwrap().octets());
        dst[..4].copy_from_slice(&d.parse::<Ipv4Addr>().unwrap().octets());
        PacketMeta {
            l3_offset: 14,
            l4_offset: 34,
            version: IpVersion::V4,
            src,
            dst,
            protocol: 6,
            src_port: sp,
            dst_port: dp,
            tcp_flags: 0x10,
            ttl: 64,
            ip_len: 40,
            ..PacketMeta::default()
        }
    }

    fn v6(s: &str, sp: u16, d: &str, dp: u16) -> PacketMeta {
        PacketMeta {
            l3_offset: 14,
            l4_offset: 54,
            version: IpVersion::V6,
            src: s.parse::<Ipv6Addr>().unwrap().octets(),
            dst: d.parse::<Ipv6Addr>().unwrap().octets(),
            protocol: 6,
            src_port: sp,
            dst_port: dp,
            tcp_flags: 0x10,
            ttl: 64,
            ip_len: 60,
            ..PacketMeta::default()
        }
    }

    /// The textbook bit loop, to check the tables against.
    fn toeplitz_reference(key: &[u8; RSS_KEY_LEN], input: &[u8]) -> u32 {
        let bit = |i: usize| -> u32 {
            key.get(i / 8)
                .map_or(0, |byte| u32::from(byte >> (7 - i % 8) & 1))
        };
        let mut result = 0u32;
        for (n, byte) in input.iter().enumerate() {
            for b in 0..8 {
                if byte & (0x80 >> b) != 0 {
                    let start = n * 8 + b;
                    let window = (0..32).fold(0u32, |w, j| (w << 1) | bit(start + j));
                    result ^= window;
                }
            }
        }
        result
    }

    // Microsoft, "Verifying the RSS Hash Calculation" (default key): source, source port,
    // destination, destination port, IP-only hash, hash with TCP ports.
    const MS_V4: [(&str, u16, &str, u16, u32, u32); 5] = [
        (
            "66.9.149.187",
            2794,
            "161.142.100.80",
            1766,
            0x323e_8fc2,
            0x51cc_c178,
        ),
        (
            "199.92.111.2",
            14230,
            "65.69.140.83",
            4739,
            0xd718_262a,
            0xc626_b0ea,
        ),
        (
            "24.19.198.95",
            12898,
            "12.22.207.184",
            38024,
            0xd2d0_a5de,
            0x5c2b_394a,
        ),
        (
            "38.27.205.30",
            48228,
            "209.142.163.6",
            2217,
            0x8298_9176,
            0xafc7_327f,
        ),
        (
            "153.39.163.191",
            44251,
            "202.188.127.2",
            1303,
            0x5d18_09c5,
            0x10e8_28a2,
        ),
    ];
    const MS_V6: [(&str, u16, &str, u16, u32, u32); 3] = [
        (
            "3ffe:2501:200:1fff::7",
            2794,
            "3ffe:2501:200:3::1",
            1766,
            0x2cc1_8cd5,
            0x4020_7d3d,
        ),
        (
            "3ffe:501:8::260:97ff:fe40:efab",
            14230,
            "ff02::1",
            4739,
            0x0f0c_461c,
            0xdde5_1bbf,
        ),
        (
            "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            44251,
            "fe80::200:f8ff:fe21:67cf",
            38024,
            0x4b61_e985,
            0x02d1_feef,
        ),
    ];

    #[test]
    fn toeplitz_matches_microsoft_vectors() {
        let h = FlowHasher::new(0x1234, &DEFAULT_RSS_KEY);
        let ip_only = policy(HashAlgo::Toeplitz, HashFields::SrcDstIp, false);
        let with_ports = policy(HashAlgo::Toeplitz, HashFields::FiveTuple, false);
        let metas = MS_V4
            .iter()
            .map(|&(s, sp, d, dp, ip, tcp)| (v4(s, sp, d, dp), ip, tcp))
            .chain(
                MS_V6
                    .iter()
                    .map(|&(s, sp, d, dp, ip, tcp)| (v6(s, sp, d, dp), ip, tcp)),
            );
        let mut checked = 0;
        for (meta, ip, tcp) in metas {
            assert_eq!(h.toeplitz_hash(&meta, &ip_only), ip, "{meta:?}");
            assert_eq!(h.toeplitz_hash(&meta, &with_ports), tcp, "{meta:?}");
            // A fragment under 5-tuple falls back to the addresses: the IP-only value.
            let frag = PacketMeta {
                fragment: true,
                ..meta
            };
            assert_eq!(h.toeplitz_hash(&frag, &with_ports), ip, "{frag:?}");
            // The group hash is the seeded finalizer over exactly that value.
            assert_eq!(h.group_hash(&meta, &with_ports), mix32(tcp, h.toeplitz_mix));
            checked += 1;
        }
        assert_eq!(checked, 8);
    }

    #[test]
    fn lb_key_hand_computed() {
        // Seed 0 is the switch's plain fold.
        let h = FlowHasher::new(0, &DEFAULT_RSS_KEY);
        let five = policy(HashAlgo::LbKey, HashFields::FiveTuple, false);
        let both = policy(HashAlgo::LbKey, HashFields::SrcDstIp, false);
        let src = policy(HashAlgo::LbKey, HashFields::SrcIp, false);
        let dst = policy(HashAlgo::LbKey, HashFields::DstIp, false);

        // a = 0x0a000001 ^ 0x0a000002 = 0x00000003; c = 3 ^ 0x1234 ^ 0x5678 = 0x0000444f;
        // d = 0x0000 ^ 0x444f = 0x444f; e = 4 ^ 4 = 0; f = 0x404f; low 10 bits = 0x04f.
        let m = v4("10.0.0.1", 0x1234, "10.0.0.2", 0x5678);
        assert_eq!(h.group_hash(&m, &five), 0x04f);

        // a = 0xc0a8010a ^ 0xac100514 = 0x6cb8041e.
        let m = v4("192.168.1.10", 443, "172.16.5.20", 51000);
        // 5-tuple: b = 0x6cb8_041e ^ 0x01bb = 0x6cb8_05a5; c = b ^ 0xc738 = 0x6cb8_c29d;
        // d = 0x6cb8 ^ 0xc29d = 0xae25; e = 0xa ^ 0xe = 4; f = 0xa425; key = 0x025.
        assert_eq!(h.group_hash(&m, &five), 0x025);
        // SIP+DIP: d = 0x6cb8 ^ 0x041e = 0x68a6; e = 6 ^ 8 = 0xe; f = 0x6ea6; key = 0x2a6.
        assert_eq!(h.group_hash(&m, &both), 0x2a6);
        // DIP uses SIP ^ DIP like the switch.
        assert_eq!(h.group_hash(&m, &dst), 0x2a6);
        // SIP: a = 0xc0a8010a; d = 0xc0a8 ^ 0x010a = 0xc1a2; e = 0xc ^ 1 = 0xd; f = 0xcda2;
        // key = 0x1a2.
        assert_eq!(h.group_hash(&m, &src), 0x1a2);
        // A fragment of the 5-tuple flow uses the addresses only.
        let frag = PacketMeta {
            fragment: true,
            ..m
        };
        assert_eq!(h.group_hash(&frag, &five), 0x2a6);

        // IPv6: SIP 2001:db8::1 folds to 0x20010db9, DIP 2001:db8:1::5 to
        // 0x20010db8 ^ 0x00010000 ^ 5 = 0x20000dbd; a = 0x00010004; c = a ^ 0x03e8 ^ 0x0050 =
        // 0x000103bc; d = 0x0001 ^ 0x03bc = 0x03bd; e = 0 ^ 3 = 3; f = 0x03bd; key = 0x3bd.
        let m = v6("2001:db8::1", 1000, "2001:db8:1::5", 80);
        assert_eq!(h.group_hash(&m, &five), 0x3bd);
    }

    #[test]
    fn lb_key_is_the_plain_fold_at_seed_0_and_seeded_otherwise_below_1024() {
        let plain = FlowHasher::new(0, &DEFAULT_RSS_KEY);
        let seeded = [1u64, 2, 7, 0xdead_beef].map(|s| FlowHasher::new(s, &DEFAULT_RSS_KEY));
        for fields in FIELDS {
            let p = policy(HashAlgo::LbKey, fields, false);
            for i in 0..2000u16 {
                let m = v4("10.1.2.3", i, "10.9.8.7", 80u16.wrapping_mul(i));
                assert!(plain.group_hash(&m, &p) < LB_KEY_VALUES);
                for h in &seeded {
                    assert!(h.group_hash(&m, &p) < LB_KEY_VALUES);
                }
            }
        }
        // The plain fold is the hand-computed switch value whatever else was built before.
        let five = policy(HashAlgo::LbKey, HashFields::FiveTuple, false);
        let m = v4("10.0.0.1", 0x1234, "10.0.0.2", 0x5678);
        assert_eq!(plain.group_hash(&m, &five), 0x04f);
        // Seeded: values differ from the plain fold, and which flows collide does too.
        let moved = (0..1000u16)
            .filter(|&i| {
                let m = v4("10.0.0.1", 10_000 + i, "10.0.1.1", 443);
                seeded[0].group_hash(&m, &five) != plain.group_hash(&m, &five)
            })
            .count();
        assert!(moved > 900, "{moved} of 1000 keys changed");
        for h in &seeded {
            let shared = shared_collisions(&plain, h, &five);
            assert!(shared < 0.1, "{shared} of the plain fold's collisions kept");
        }
    }

    /// Flows that collide in 64 buckets under hasher `a`: the share that also collides under `b`.
    fn shared_collisions(a: &FlowHasher, b: &FlowHasher, p: &HashPolicy) -> f64 {
        let metas: Vec<PacketMeta> = (0..300u16)
            .map(|i| v4("10.0.0.1", 10_000 + i, "10.0.1.1", 443))
            .collect();
        let (mut both, mut first) = (0u32, 0u32);
        for (i, x) in metas.iter().enumerate() {
            for y in &metas[i + 1..] {
                if a.group_hash(x, p) & 63 == a.group_hash(y, p) & 63 {
                    first += 1;
                    if b.group_hash(x, p) & 63 == b.group_hash(y, p) & 63 {
                        both += 1;
                    }
                }
            }
        }
        f64::from(both) / f64::from(first)
    }

    #[test]
    fn seed_changes_which_flows_collide() {
        let a = FlowHasher::new(1, &DEFAULT_RSS_KEY);
        let b = FlowHasher::new(2, &DEFAULT_RSS_KEY);
        for algo in SEEDED {
            for fields in FIELDS {
                let p = policy(algo, fields, false);
                let m = v4("198.51.100.1", 1234, "203.0.113.9", 80);
                assert_ne!(a.group_hash(&m, &p), b.group_hash(&m, &p), "{p:?}");
            }
            // Same seed, same result: the hash is a pure function of (seed, key, packet).
            let p = policy(algo, HashFields::FiveTuple, false);
            let c = FlowHasher::new(1, &DEFAULT_RSS_KEY);
            let m = v4("198.51.100.1", 1234, "203.0.113.9", 80);
            assert_eq!(a.group_hash(&m, &p), c.group_hash(&m, &p));
            // Independent seeds share about 1/64 of the collisions; an affine seeding would
            // share all of them.
            let shared = shared_collisions(&a, &b, &p);
            assert!(shared < 0.1, "{algo:?}: {shared}");
        }
        let k = FlowKey::from_meta(&v4("198.51.100.1", 1234, "203.0.113.9", 80));
        assert_ne!(a.cache_hash(&k), b.cache_hash(&k));
    }

    #[test]
    fn symmetric_policies_hash_both_directions_alike() {
        let h = FlowHasher::new(99, &DEFAULT_RSS_KEY);
        let fwd = v4("192.0.2.10", 40000, "198.51.100.20", 443);
        let rev = v4("198.51.100.20", 443, "192.0.2.10", 40000);
        let fwd6 = v6("2001:db8::10", 40000, "2001:db8:ffff::20", 443);
        let rev6 = v6("2001:db8:ffff::20", 443, "2001:db8::10", 40000);
        for algo in ALGOS {
            for fields in FIELDS {
                let sym = policy(algo, fields, true);
                assert_eq!(h.group_hash(&fwd, &sym), h.group_hash(&rev, &sym));
                assert_eq!(h.group_hash(&fwd6, &sym), h.group_hash(&rev6, &sym));
            }
            if algo != HashAlgo::LbKey {
                // Without symmetry the directions differ (lb-key's XOR is symmetric by nature).
                let asym = policy(algo, HashFields::FiveTuple, false);
                assert_ne!(h.group_hash(&fwd, &asym), h.group_hash(&rev, &asym));
            }
        }
        // Same addresses, swapped ports only: the pairs sort by address first.
        let a = v4("192.0.2.1", 1000, "192.0.2.1", 2000);
        let b = v4("192.0.2.1", 2000, "192.0.2.1", 1000);
        let sym = policy(HashAlgo::Fast, HashFields::FiveTuple, true);
        assert_eq!(h.group_hash(&a, &sym), h.group_hash(&b, &sym));
    }

    #[test]
    fn fields_select_what_is_hashed() {
        let h = FlowHasher::new(5, &DEFAULT_RSS_KEY);
        let base = v4("192.0.2.10", 40000, "198.51.100.20", 443);
        let other_src = v4("192.0.2.11", 40000, "198.51.100.20", 443);
        let other_dst = v4("192.0.2.10", 40000, "198.51.100.21", 443);
        let other_port = v4("192.0.2.10", 40001, "198.51.100.20", 444);
        let other_proto = PacketMeta {
            protocol: 17,
            ..base
        };
        for algo in SEEDED {
            let g = |m: &PacketMeta, f| h.group_hash(m, &policy(algo, f, false));
            use HashFields::*;
            assert_eq!(g(&base, SrcIp), g(&other_dst, SrcIp));
            assert_eq!(g(&base, SrcIp), g(&other_port, SrcIp));
            assert_ne!(g(&base, SrcIp), g(&other_src, SrcIp));
            assert_eq!(g(&base, DstIp), g(&other_src, DstIp));
            assert_ne!(g(&base, DstIp), g(&other_dst, DstIp));
            assert_eq!(g(&base, SrcDstIp), g(&other_port, SrcDstIp));
            assert_eq!(g(&base, SrcDstIp), g(&other_proto, SrcDstIp));
            assert_ne!(g(&base, SrcDstIp), g(&other_src, SrcDstIp));
            assert_ne!(g(&base, SrcDstIp), g(&other_dst, SrcDstIp));
            assert_ne!(g(&base, FiveTuple), g(&other_port, FiveTuple));
            if algo != HashAlgo::Toeplitz {
                // RSS has no protocol in its input; the others do.
                assert_ne!(g(&base, FiveTuple), g(&other_proto, FiveTuple));
            }
        }
    }

    #[test]
    fn all_fragments_of_a_datagram_hash_alike() {
        let h = FlowHasher::new(11, &DEFAULT_RSS_KEY);
        let first = PacketMeta {
            fragment: true,
            ..v4("192.0.2.10", 40000, "198.51.100.20", 443)
        };
        let later = PacketMeta {
            fragment: true,
            l4_offset: 0,
            ..v4("192.0.2.10", 0, "198.51.100.20", 0)
        };
        for algo in ALGOS {
            for fields in FIELDS {
                for symmetric in [false, true] {
                    let p = policy(algo, fields, symmetric);
                    assert_eq!(h.group_hash(&first, &p), h.group_hash(&later, &p), "{p:?}");
                }
            }
            if algo != HashAlgo::Toeplitz && algo != HashAlgo::LbKey {
                // Fragments still hash the protocol under 5-tuple.
                let p = policy(algo, HashFields::FiveTuple, false);
                let udp = PacketMeta {
                    protocol: 17,
                    ..first
                };
                assert_ne!(h.group_hash(&first, &p), h.group_hash(&udp, &p));
            }
        }
        assert_eq!(
            FlowKey::from_meta(&first),
            FlowKey::from_meta(&later),
            "the cache key agrees"
        );
    }

    /// Chi-square statistic of `n` hashes over `buckets` buckets.
    fn chi_square(hashes: impl Iterator<Item = u64>, buckets: usize) -> f64 {
        let mut counts = vec![0u32; buckets];
        let mut n = 0u64;
        for x in hashes {
            counts[(x as usize) & (buckets - 1)] += 1;
            n += 1;
        }
        let expected = n as f64 / buckets as f64;
        counts
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum()
    }

    /// Accepts a chi-square statistic within 6 standard deviations of its mean (dof = B - 1).
    fn assert_uniform(stat: f64, buckets: usize, what: &str) {
        let dof = (buckets - 1) as f64;
        let bound = dof + 6.0 * (2.0 * dof).sqrt();
        assert!(stat < bound, "{what}: chi2 {stat:.0} >= {bound:.0}");
    }

    #[test]
    fn low_bits_are_uniform_for_structured_flows() {
        let h = FlowHasher::new(0xfeed, &DEFAULT_RSS_KEY);
        // Sequential source ports of one client, and sequential clients of one service: the
        // shapes that break a weak low-bit mix.
        let by_port = |i: u32| v4("10.0.0.1", i as u16, "10.0.1.1", 80);
        let by_addr = |i: u32| {
            let mut m = v4("10.0.0.0", 12345, "10.0.1.1", 80);
            m.src[..4].copy_from_slice(&(0x0a00_0000 + i).to_be_bytes());
            m
        };
        let by_addr6 = |i: u32| {
            let mut m = v6("2001:db8::", 12345, "2001:db8:1::1", 80);
            m.src[12..].copy_from_slice(&i.to_be_bytes());
            m
        };
        for algo in SEEDED {
            for (name, make, n, fields) in [
                (
                    "port",
                    &by_port as &dyn Fn(u32) -> PacketMeta,
                    1u32 << 16,
                    HashFields::FiveTuple,
                ),
                ("addr", &by_addr, 1 << 20, HashFields::SrcIp),
                ("addr6", &by_addr6, 1 << 20, HashFields::SrcDstIp),
            ] {
                let p = policy(algo, fields, false);
                for buckets in [1024usize, 65536] {
                    let stat = chi_square(
                        (0..n).map(|i| u64::from(h.group_hash(&make(i), &p))),
                        buckets,
                    );
                    assert_uniform(stat, buckets, &format!("{algo:?}/{name}/{buckets}"));
                }
            }
        }
        // The cache hash: bucket bits (low) and signature bits (top 6).
        let keys: Vec<FlowKey> = (0..1u32 << 20)
            .map(|i| FlowKey::from_meta(&by_addr(i)))
            .collect();
        let stat = chi_square(keys.iter().map(|k| h.cache_hash(k)), 65536);
        assert_uniform(stat, 65536, "cache low bits");
        let stat = chi_square(keys.iter().map(|k| h.cache_hash(k) >> 58), 64);
        assert_uniform(stat, 64, "cache signature bits");
    }

    #[test]
    fn lb_key_spreads_over_its_1024_values() {
        // The seeded mix is a bijection of the key values, so seeding keeps the spread.
        for seed in [0, 7, 0xdead_beef] {
            let h = FlowHasher::new(seed, &DEFAULT_RSS_KEY);
            let p = policy(HashAlgo::LbKey, HashFields::FiveTuple, false);
            let mut seen: HashMap<u32, u32> = HashMap::new();
            for i in 0..1u32 << 16 {
                let m = v4("10.0.0.1", i as u16, "10.0.1.1", 80);
                *seen.entry(h.group_hash(&m, &p)).or_default() += 1;
            }
            assert_eq!(seen.len(), LB_KEY_VALUES as usize, "seed {seed}");
            assert!(seen.values().all(|&n| n == 64), "seed {seed}: uneven");
        }
    }

    #[test]
    fn policy_keys_hold_the_selected_fields_and_the_group() {
        let m = v4("198.51.100.1", 1234, "203.0.113.9", 80);
        let other_dst = v4("198.51.100.1", 999, "203.0.113.10", 443);
        let default = HashPolicy::default();
        let src_ip = policy(HashAlgo::Fast, HashFields::SrcIp, false);
        // A source address policy: one key for every destination and port of that source, and
        // not the outer key (which has no group).
        let k = policy_key(&m, &src_ip, 3);
        assert_eq!(k, policy_key(&other_dst, &src_ip, 3));
        assert_eq!(
            (k.dst, k.src_port, k.dst_port, k.protocol),
            ([0; 16], 0, 0, 0)
        );
        assert_eq!(k.src, m.src);
        assert_ne!(
            k,
            policy_key(&m, &src_ip, 4),
            "the group is part of the key"
        );
        assert_ne!(k, FlowKey::from_meta(&m));
        // A 5-tuple policy keys the 5-tuple, with the group.
        let five = policy_key(&m, &default, 3);
        assert_eq!(
            five,
            FlowKey {
                group: 3,
                ..FlowKey::from_meta(&m)
            }
        );
        // Symmetric: both directions share the key.
        let sym = policy(HashAlgo::Crc32c, HashFields::FiveTuple, true);
        let back = v4("203.0.113.9", 80, "198.51.100.1", 1234);
        assert_eq!(policy_key(&m, &sym, 3), policy_key(&back, &sym, 3));
        // Fragments never key on ports.
        let frag = PacketMeta {
            fragment: true,
            ..m
        };
        let fk = policy_key(&frag, &default, 3);
        assert_eq!((fk.src_port, fk.dst_port), (0, 0));
        // The lb-key folds the source into a destination hash, so its key keeps the source.
        let lb_dst = policy(HashAlgo::LbKey, HashFields::DstIp, false);
        assert_eq!(policy_key(&m, &lb_dst, 3).src, m.src);
        let fast_dst = policy(HashAlgo::Fast, HashFields::DstIp, false);
        assert_eq!(policy_key(&m, &fast_dst, 3).src, [0; 16]);
    }

    #[test]
    fn cache_hash_separates_versions_and_fields() {
        let h = FlowHasher::new(3, &DEFAULT_RSS_KEY);
        let m = v4("192.0.2.10", 40000, "198.51.100.20", 443);
        let k = FlowKey::from_meta(&m);
        let k6 = FlowKey {
            version: IpVersion::V6,
            ..k
        };
        let swapped = FlowKey {
            src: k.dst,
            dst: k.src,
            ..k
        };
        assert_ne!(h.cache_hash(&k), h.cache_hash(&k6));
        assert_ne!(h.cache_hash(&k), h.cache_hash(&swapped));
        assert_eq!(h.cache_hash(&k), h.cache_hash(&FlowKey::from_meta(&m)));
        // The group takes part (every bit of the 24), and group 0 is the outer key's hash.
        for group in [1, 2, 1 << 23, MAX_GROUP_ID] {
            assert_ne!(h.cache_hash(&k), h.cache_hash(&FlowKey { group, ..k }));
        }
        assert_eq!(h.cache_hash(&k), h.cache_hash(&FlowKey { group: 0, ..k }));
    }

    proptest! {
        #[test]
        fn toeplitz_tables_match_the_bit_loop(
            key in proptest::array::uniform32(any::<u8>()),
            tail in proptest::array::uniform8(any::<u8>()),
            input in proptest::collection::vec(any::<u8>(), 0..=TOEPLITZ_MAX_INPUT),
        ) {
            let mut full = [0u8; RSS_KEY_LEN];
            full[..32].copy_from_slice(&key);
            full[32..].copy_from_slice(&tail);
            let h = FlowHasher::new(0, &full);
            prop_assert_eq!(h.toeplitz(&input), toeplitz_reference(&full, &input));
        }

        /// Two packets whose policy keys are equal hash alike, for every policy and seed: the
        /// second packet is the first with some fields replaced, so that the fields a policy
        /// ignores vary while its key stays put.
        #[test]
        fn equal_policy_keys_hash_alike(
            a in (proptest::array::uniform16(any::<u8>()), proptest::array::uniform16(any::<u8>()),
                  any::<u16>(), any::<u16>(), any::<u8>(), any::<bool>()),
            b in (proptest::array::uniform16(any::<u8>()), proptest::array::uniform16(any::<u8>()),
                  any::<u16>(), any::<u16>(), any::<u8>(), any::<bool>()),
            replace in 0u8..64, v6 in any::<bool>(), seed in any::<u64>(),
        ) {
            let meta = |(mut src, mut dst, sp, dp, protocol, fragment): ([u8; 16], [u8; 16], u16, u16, u8, bool)| {
                if !v6 {
                    // The parser's IPv4 form: zero padding.
                    src[4..].fill(0);
                    dst[4..].fill(0);
                }
                PacketMeta {
                    version: if v6 { IpVersion::V6 } else { IpVersion::V4 },
                    src, dst, src_port: sp, dst_port: dp, protocol, fragment,
                    ..PacketMeta::default()
                }
            };
            let (m1, other) = (meta(a), meta(b));
            let mut m2 = m1;
            let pick = |bit: u8| replace & (1 << bit) != 0;
            if pick(0) { m2.src = other.src; }
            if pick(1) { m2.dst = other.dst; }
            if pick(2) { m2.src_port = other.src_port; }
            if pick(3) { m2.dst_port = other.dst_port; }
            if pick(4) { m2.protocol = other.protocol; }
            if pick(5) { m2.fragment = other.fragment; }
            let h = FlowHasher::new(seed, &DEFAULT_RSS_KEY);
            for algo in ALGOS {
                for fields in FIELDS {
                    for symmetric in [false, true] {
                        let p = policy(algo, fields, symmetric);
                        // The reverse direction too: symmetric keys must fold it.
                        let mut rev = m2;
                        (rev.src, rev.dst, rev.src_port, rev.dst_port) =
                            (m2.dst, m2.src, m2.dst_port, m2.src_port);
                        for m in [m2, rev] {
                            if policy_key(&m1, &p, 7) == policy_key(&m, &p, 7) {
                                prop_assert_eq!(h.group_hash(&m1, &p), h.group_hash(&m, &p), "{:?}", p);
                            }
                        }
                    }
                }
            }
        }

        #[test]
        fn no_input_panics_and_lb_key_is_bounded(
            src in proptest::array::uniform16(any::<u8>()),
            dst in proptest::array::uniform16(any::<u8>()),
            sp in any::<u16>(), dp in any::<u16>(), protocol in any::<u8>(),
            v6 in any::<bool>(), fragment in any::<bool>(), symmetric in any::<bool>(),
            fields in 0usize..4, seed in any::<u64>(),
        ) {
            let h = FlowHasher::new(seed, &DEFAULT_RSS_KEY);
            let meta = PacketMeta {
                version: if v6 { IpVersion::V6 } else { IpVersion::V4 },
                src, dst, src_port: sp, dst_port: dp, protocol, fragment,
                ..PacketMeta::default()
            };
            for algo in ALGOS {
                let p = policy(algo, FIELDS[fields], symmetric);
                let x = h.group_hash(&meta, &p);
                if algo == HashAlgo::LbKey {
                    prop_assert!(x < LB_KEY_VALUES);
                }
                // Deterministic for one hasher.
                prop_assert_eq!(x, h.group_hash(&meta, &p));
            }
        }

        #[test]
        fn symmetric_policies_hash_the_reverse_direction_alike(
            src in proptest::array::uniform16(any::<u8>()),
            dst in proptest::array::uniform16(any::<u8>()),
            sp in any::<u16>(), dp in any::<u16>(), protocol in any::<u8>(),
            v6 in any::<bool>(), fragment in any::<bool>(),
            fields in 0usize..4, seed in any::<u64>(),
        ) {
            let h = FlowHasher::new(seed, &DEFAULT_RSS_KEY);
            let fwd = PacketMeta {
                version: if v6 { IpVersion::V6 } else { IpVersion::V4 },
                src, dst, src_port: sp, dst_port: dp, protocol, fragment,
                ..PacketMeta::default()
            };
            // The same flow seen from the other end: addresses and ports swapped.
            let rev = PacketMeta { src: dst, dst: src, src_port: dp, dst_port: sp, ..fwd };
            for algo in ALGOS {
                let p = policy(algo, FIELDS[fields], true);
                prop_assert_eq!(
                    h.group_hash(&fwd, &p), h.group_hash(&rev, &p),
                    "{:?} {:?}", algo, FIELDS[fields]
                );
            }
        }
    }
}
