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

use crate::flow::{FlowKey, OuterV4};

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

    /// [`Self::cache_hash`] of an IPv4 outer key, from its natural width (the same value).
    /// Spelt out rather than sharing a helper with `cache_hash`: the shared form measured five
    /// more instructions per packet (callgrind, 504.8 -> 509.8 at 1k flows).
    #[inline]
    pub fn cache_hash_v4(&self, key: &OuterV4) -> u64 {
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
mod tests;
