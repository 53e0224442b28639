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
