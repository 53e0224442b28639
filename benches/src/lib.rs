//! Fixtures shared by the criterion benches in `benches/benches/`: synthetic frames, flow keys,
//! IPv6 routes, and one way to drive a stage over bursts.
//!
//! Conventions every bench follows:
//! - One criterion iteration processes one burst of [`BATCH`] packets (the pipeline's own burst
//!   size) and declares `Throughput::Elements(BATCH)`, so criterion's `thrpt` is packets per
//!   second and `time / BATCH` is the cost per packet.
//! - Inputs come from a pool of many distinct packets or flows walked burst after burst
//!   ([`Bursts`]), never from one warm flow, so caches see realistic variety; large pools and
//!   tables are built once per bench group, outside the timed code.
//! - Frames are 60 bytes without FCS (a 64-byte frame on the wire) with valid checksums, except
//!   IPv6/UDP, whose headers alone take 62 bytes (the smallest such frame; 66 on the wire).
//! - Everything is generated from a fixed seed, so runs compare like with like.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::{Criterion, Throughput};
use ecmp_dataplane::flow::FlowKey;
use ecmp_pktgen::traffic::Rng;
use ecmp_tables::{Fib6, TableError};
use ecmp_testkit::frames::{FrameError, FrameSpec, TPID_VLAN, TcpFlags};
use ecmp_wire::meta::PacketMeta;
use ecmp_wire::{ParseError, parse_frame};

/// Packets per criterion iteration: one rx burst.
pub const BATCH: usize = ecmp_port::BURST;

/// Frame length without FCS: a 64-byte frame on the wire.
pub const FRAME_LEN: usize = 60;

/// Seed of every generated pool and table.
pub const SEED: u64 = 0xec3f;

/// Why a fixture could not be built (a bug in the fixture, never a measurement result).
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// A generated frame did not parse.
    #[error("generated frame does not parse: {0}")]
    Parse(#[from] ParseError),
    /// A table refused a generated route or group.
    #[error("table: {0}")]
    Table(#[from] TableError),
    /// The frame builder refused a generated frame.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
}

/// The criterion settings of every bench: short warm-up and measurement (about 3 s per bench),
/// so the whole suite runs in about two minutes after the build, on two cores.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_millis(2000))
        .sample_size(30)
        .noise_threshold(0.03)
}

/// The throughput of one iteration: [`BATCH`] packets.
pub fn per_burst() -> Throughput {
    Throughput::Elements(BATCH as u64)
}

/// Walks a pool burst after burst, wrapping around at its end.
///
/// The pool is cut into whole bursts (a tail shorter than [`BATCH`] is never used), so every
/// call returns exactly `BATCH` items.
pub struct Bursts<'a, T> {
    pool: &'a [T],
    next: usize,
}

impl<'a, T> Bursts<'a, T> {
    /// Bursts over `pool`. Fails when the pool holds less than one burst.
    pub fn new(pool: &'a [T]) -> Option<Self> {
        let whole = pool.len() / BATCH * BATCH;
        (whole > 0).then(|| Self {
            pool: &pool[..whole],
            next: 0,
        })
    }

    /// The next burst.
    #[inline]
    pub fn next_burst(&mut self) -> &'a [T] {
        let start = self.next;
        self.next += BATCH;
        if self.next == self.pool.len() {
            self.next = 0;
        }
        &self.pool[start..start + BATCH]
    }
}

/// Which kind of frame to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// IPv4 / UDP.
    Ipv4Udp,
    /// IPv4 / TCP (ACK).
    Ipv4Tcp,
    /// IPv6 / UDP.
    Ipv6Udp,
    /// 802.1Q tag / IPv4 / UDP.
    VlanIpv4Udp,
}

impl FrameKind {
    /// Every kind, in bench order.
    pub const ALL: [FrameKind; 4] = [
        FrameKind::Ipv4Udp,
        FrameKind::Ipv4Tcp,
        FrameKind::Ipv6Udp,
        FrameKind::VlanIpv4Udp,
    ];

    /// Bench id.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Ipv4Udp => "ipv4-udp",
            FrameKind::Ipv4Tcp => "ipv4-tcp",
            FrameKind::Ipv6Udp => "ipv6-udp",
            FrameKind::VlanIpv4Udp => "vlan-ipv4-udp",
        }
    }
}

/// `n` frames of `kind`, each a distinct flow with random addresses and ports, [`FRAME_LEN`]
/// bytes long, or as long as the headers when they do not fit (IPv6/UDP: 62 bytes).
pub fn frames(kind: FrameKind, n: usize, rng: &mut Rng) -> Result<Vec<Vec<u8>>, FixtureError> {
    (0..n)
        .map(|i| {
            let (src, dst) = match kind {
                FrameKind::Ipv6Udp => (
                    IpAddr::V6(Ipv6Addr::from(
                        0x2001_0db8_u128 << 96 | u128::from(unique32(i as u32)),
                    )),
                    IpAddr::V6(Ipv6Addr::from(
                        (0x2000_u128 << 112) | u128::from(rng.next_u64()) << 48,
                    )),
                ),
                // Addresses a router forwards (the parse stage drops martians): sources unique
                // in 10/8, destinations random unicast.
                _ => (
                    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | unique24(i as u32))),
                    IpAddr::V4(Ipv4Addr::from(unicast_v4(rng.next_u64() as u32))),
                ),
            };
            let spec = FrameSpec::udp(
                src,
                dst,
                1024 + rng.below(60_000) as u16,
                [53, 80, 443, 4789][rng.below(4) as usize],
                FRAME_LEN,
            );
            let spec = match kind {
                FrameKind::Ipv4Tcp => spec.with_tcp(TcpFlags::ACK),
                FrameKind::VlanIpv4Udp => spec.vlans(&[(TPID_VLAN, 1 + rng.below(4094) as u16)]),
                _ => spec,
            };
            Ok(spec.build()?)
        })
        .collect()
}

/// Parses every frame: the packet descriptions the hash stage consumes.
pub fn metas(frames: &[Vec<u8>]) -> Result<Vec<PacketMeta>, FixtureError> {
    frames
        .iter()
        .map(|f| parse_frame(f).map_err(FixtureError::from))
        .collect()
}

/// A bijection on the low 24 bits (odd multiplier and xorshift, both modulo 2^24): distinct
/// inputs below 2^24 give distinct outputs below 2^24, the host part of a unique 10/8 source.
pub fn unique24(i: u32) -> u32 {
    let x = i.wrapping_mul(0x0079_B1B1) & 0x00ff_ffff;
    x ^ (x >> 12)
}

/// A random global unicast IPv4 address from any 32 random bits: the first octet is moved into
/// 1..=223 without 127, and 169.254/16 (link-local) into 169.253/16, so no input check drops it.
pub fn unicast_v4(r: u32) -> u32 {
    let mut first = (r >> 24) % 223 + 1;
    if first == 127 {
        first = 126;
    }
    let mut rest = r & 0x00ff_ffff;
    if first == 169 && rest >> 16 == 254 {
        rest -= 1 << 16;
    }
    first << 24 | rest
}

/// A bijection on u32 (multiplication by an odd constant, then xorshift): distinct inputs give
/// distinct, well-spread outputs, so counters become unique random-looking addresses.
pub fn unique32(i: u32) -> u32 {
    let x = i.wrapping_mul(0x9E37_79B1);
    x ^ (x >> 16)
}

/// `n` distinct IPv4 UDP flow keys (the source address is unique per key; the rest is random).
pub fn flow_keys(n: usize, rng: &mut Rng) -> Vec<FlowKey> {
    (0..n)
        .map(|i| {
            let mut k = FlowKey {
                src_port: 1024 + rng.below(60_000) as u16,
                dst_port: [53, 80, 443, 8080][rng.below(4) as usize],
                protocol: 17,
                ..FlowKey::default()
            };
            k.src[..4].copy_from_slice(&unique32(i as u32).to_be_bytes());
            k.dst[..4].copy_from_slice(&(rng.next_u64() as u32).to_be_bytes());
            k
        })
        .collect()
}

/// `n` distinct random IPv6 route prefixes `(address in host order, length)` inside 2000::/3,
/// host bits clear: ~60% /48, 20% /32../47, 15% /49../64, 5% /65../128 (the shape of a
/// full-table IPv6 RIB, which is mostly /48 and /32..44).
pub fn random_routes6(rng: &mut Rng, n: usize) -> Vec<(u128, u8)> {
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = rng.below(100);
        let len = if r < 60 {
            48
        } else if r < 80 {
            32 + rng.below(16) as u8
        } else if r < 95 {
            49 + rng.below(16) as u8
        } else {
            65 + rng.below(64) as u8
        };
        let addr = (0x2000_u128 << 112)
            | (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) >> 3;
        let addr = addr & (u128::MAX << (128 - u32::from(len)));
        if seen.insert((addr, len)) {
            out.push((addr, len));
        }
    }
    out
}

/// A random address inside the IPv6 route `(addr, len)`.
pub fn address_in6(rng: &mut Rng, (addr, len): (u128, u8)) -> u128 {
    let random = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
    addr | u128::MAX
        .checked_shr(u32::from(len))
        .map_or(0, |m| random & m)
}

/// A FIB6 holding `routes`, spread round-robin over `groups` groups.
pub fn fib6(routes: &[(u128, u8)], groups: u32) -> Result<Fib6, FixtureError> {
    let mut fib = Fib6::new();
    for (i, &(addr, len)) in routes.iter().enumerate() {
        fib.insert(Ipv6Addr::from(addr), len, i as u32 % groups + 1)?;
    }
    Ok(fib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique24_is_a_bijection_below_2_pow_24_and_unicast_v4_avoids_martians() {
        let mut seen = vec![false; 1 << 24];
        for i in 0..1u32 << 24 {
            let x = unique24(i) as usize;
            assert!(!seen[x], "{i}");
            seen[x] = true;
        }
        let mut rng = Rng::new(SEED);
        for r in (0..100_000).map(|_| rng.next_u64() as u32).chain([
            0,
            u32::MAX,
            0x7f00_0001,
            0xa9fe_0001,
        ]) {
            let a = Ipv4Addr::from(unicast_v4(r));
            let o = a.octets();
            assert!((1..=223).contains(&o[0]) && o[0] != 127, "{a}");
            assert!(!a.is_link_local(), "{a}");
        }
    }

    #[test]
    fn every_frame_kind_is_64_bytes_on_the_wire_and_parses() {
        let mut rng = Rng::new(SEED);
        for kind in FrameKind::ALL {
            let fs = frames(kind, 64, &mut rng).unwrap();
            let len = if kind == FrameKind::Ipv6Udp {
                62
            } else {
                FRAME_LEN
            };
            for f in &fs {
                assert_eq!(f.len(), len, "{kind:?}");
            }
            let ms = metas(&fs).unwrap();
            let m = ms[0];
            assert_eq!(m.vlan_depth, u8::from(kind == FrameKind::VlanIpv4Udp));
            assert_eq!(m.protocol, if kind == FrameKind::Ipv4Tcp { 6 } else { 17 });
            assert_eq!(
                m.version,
                if kind == FrameKind::Ipv6Udp {
                    ecmp_wire::meta::IpVersion::V6
                } else {
                    ecmp_wire::meta::IpVersion::V4
                }
            );
        }
    }

    #[test]
    fn flow_keys_are_distinct() {
        let keys = flow_keys(100_000, &mut Rng::new(SEED));
        let set: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(set.len(), keys.len());
    }

    #[test]
    fn routes6_are_distinct_and_cover_their_addresses() {
        let mut rng = Rng::new(SEED);
        let routes = random_routes6(&mut rng, 2_000);
        let fib = fib6(&routes, 8).unwrap();
        assert_eq!(fib.len(), routes.len());
        for &r in &routes {
            assert_ne!(fib.lookup(address_in6(&mut rng, r)), 0, "{r:x?}");
        }
    }

    #[test]
    fn bursts_wrap_and_always_hold_a_whole_burst() {
        let pool: Vec<usize> = (0..BATCH * 2 + 5).collect();
        let mut b = Bursts::new(&pool).unwrap();
        assert_eq!(b.next_burst()[0], 0);
        assert_eq!(b.next_burst()[0], BATCH);
        assert_eq!(b.next_burst()[0], 0);
        assert!(Bursts::new(&pool[..BATCH - 1]).is_none());
    }
}
