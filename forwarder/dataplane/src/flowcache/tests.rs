use super::*;
use crate::hash::{DEFAULT_RSS_KEY, FlowHasher};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

const SYN: u8 = TCP_SYN;
const ACK: u8 = TCP_ACK;
const FIN_ACK: u8 = TCP_FIN | TCP_ACK;
const RST: u8 = TCP_RST;
const T0: u64 = 1_700_000_000_000;
/// The expiry grain of the default timeouts (the shortest, 5 s, over 16, as a power of two): a
/// flow touched at `t` lives at least its timeout and expires by `t + timeout + GRAIN`.
const GRAIN: u64 = 256;

#[test]
fn the_grain_is_a_sixteenth_of_the_shortest_timeout_as_a_power_of_two() {
    assert_eq!(FlowCacheConfig::default().timeouts().grain(), GRAIN);
    let short = FlowCacheConfig {
        embryonic_timeout_ms: 1,
        ..FlowCacheConfig::default()
    };
    assert_eq!(short.timeouts().grain(), 1);
}

#[test]
fn a_hit_within_the_grain_writes_nothing() {
    let mut c = FlowCache::new(config(64)).unwrap();
    // The first call fixes the origin; T0 + 1 rounds up to the end of the first grain.
    c.insert(&key(2), 2, hop(2), T0, ACK);
    c.insert(&key(1), 1, hop(1), T0 + 1, ACK);
    let before = occupied(&c);
    // The other milliseconds of that grain round up to the same expiry: the line stays clean.
    for t in 2..=GRAIN {
        assert_eq!(c.lookup(&key(1), 1, T0 + t, ACK), Some(hop(1)));
    }
    assert_eq!(occupied(&c), before);
    // The next grain moves the expiry.
    assert_eq!(c.lookup(&key(1), 1, T0 + GRAIN + 1, ACK), Some(hop(1)));
    assert_ne!(occupied(&c), before);
}

/// Timeouts of a live change in the tests below: 2 s idle, 1 s embryonic and closing.
const SHORT: FlowTimeouts = FlowTimeouts {
    idle_timeout_ms: 2_000,
    embryonic_timeout_ms: 1_000,
    fin_timeout_ms: 1_000,
};

#[test]
fn changed_timeouts_apply_to_new_flows_and_from_a_cached_flows_next_packet() {
    let mut c = FlowCache::new(config(64)).unwrap();
    // Cached under the default 300 s idle timeout.
    c.insert(&key(1), 1, hop(1), T0, ACK);
    c.insert(&key(2), 2, hop(2), T0, ACK);
    c.set_timeouts(SHORT).unwrap();
    assert_eq!(c.timeouts(), SHORT);
    // A new flow and an old flow's next packet count from the new timeout; the grain is now
    // 1 s / 16 = 62 -> 32 ms.
    let t = T0 + 1_000;
    c.insert(&key(3), 3, hop(3), t, ACK);
    assert_eq!(c.lookup(&key(1), 1, t, ACK), Some(hop(1)));
    let live = |c: &FlowCache, now: u64| {
        let mut keys = Vec::new();
        c.for_each(now, |k, _| keys.push(*k));
        keys.sort_by_key(|k| k.src_port);
        keys
    };
    assert_eq!(live(&c, t + 2_000 - 1), [key(1), key(2), key(3)]);
    // Gone within the new timeout plus one new grain; the flow without a packet since the
    // change keeps its old expiry.
    assert_eq!(live(&c, t + 2_000 + 32), [key(2)]);
    assert_eq!(c.lookup(&key(3), 3, t + 2_000 + 32, ACK), None);
    assert_eq!(c.lookup(&key(2), 2, T0 + 300_000 - 1, ACK), Some(hop(2)));
}

#[test]
fn longer_timeouts_keep_flows_longer_and_never_revive_expired_ones() {
    let mut c = FlowCache::new(config(64)).unwrap();
    c.set_timeouts(SHORT).unwrap();
    c.insert(&key(1), 1, hop(1), T0, ACK);
    c.insert(&key(2), 2, hop(2), T0, SYN);
    // Expired under the short timeouts before the change back.
    assert_eq!(c.lookup(&key(2), 2, T0 + 1_100, SYN), None);
    c.set_timeouts(FlowCacheConfig::default().timeouts())
        .unwrap();
    assert_eq!(c.lookup(&key(2), 2, T0 + 1_100, SYN), None);
    // The established flow's next packet takes the 300 s idle timeout.
    assert_eq!(c.lookup(&key(1), 1, T0 + 1_500, ACK), Some(hop(1)));
    assert_eq!(
        c.lookup(&key(1), 1, T0 + 1_500 + 299_000, ACK),
        Some(hop(1))
    );
}

#[test]
fn a_change_within_a_tick_applies_to_that_ticks_lookups() {
    let mut c = FlowCache::new(config(64)).unwrap();
    c.insert(&key(1), 1, hop(1), T0, ACK);
    // The burst's tick was taken under the old timeouts; the change works its values out again.
    c.tick(T0 + 500);
    c.set_timeouts(SHORT).unwrap();
    let p = c.probe(&key(1), 1);
    assert_eq!(c.lookup_ticked(&p, ACK), Some(hop(1)));
    let mut live = 0;
    c.for_each(T0 + 500 + 2_000 + 32, |_, _| live += 1);
    assert_eq!(live, 0, "the hit in that tick set a 2 s expiry");
}

#[test]
fn out_of_range_timeouts_are_refused_and_change_nothing() {
    let mut c = FlowCache::new(config(64)).unwrap();
    let before = c.timeouts();
    for bad in [
        FlowTimeouts {
            idle_timeout_ms: 0,
            ..SHORT
        },
        FlowTimeouts {
            fin_timeout_ms: MAX_TIMEOUT_MS + 1,
            ..SHORT
        },
    ] {
        assert!(matches!(
            c.set_timeouts(bad),
            Err(FlowCacheError::InvalidTimeout { .. })
        ));
        assert_eq!(c.timeouts(), before);
    }
}

fn config(capacity: usize) -> FlowCacheConfig {
    FlowCacheConfig {
        capacity,
        ..FlowCacheConfig::default()
    }
}

fn key(n: u16) -> FlowKey {
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[10, 0, (n >> 8) as u8, n as u8]);
    let mut dst = [0u8; 16];
    dst[..4].copy_from_slice(&[192, 0, 2, 1]);
    FlowKey {
        src,
        dst,
        src_port: 1000 + n,
        dst_port: 443,
        protocol: 6,
        version: IpVersion::V4,
        group: 0,
    }
}

fn key6(n: u32) -> FlowKey {
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    src[12..].copy_from_slice(&n.to_be_bytes());
    let mut dst = [0u8; 16];
    dst[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    dst[15] = 1;
    FlowKey {
        src,
        dst,
        src_port: 40_000,
        dst_port: 443,
        protocol: 6,
        version: IpVersion::V6,
        group: 0,
    }
}

fn hop(n: u32) -> CachedHop {
    CachedHop {
        group: 7,
        member: n as u16,
        hop: 100 + n,
        epoch: n ^ 0x5a5a,
    }
}

/// Hashes whose two candidate buckets are 0 and 1 (for any capacity up to 2^26 flows).
fn same_pair(i: u64) -> u64 {
    i << 58
}

/// A hash with candidate buckets `b1` and `b2`.
fn pair(b1: u64, b2: u64) -> u64 {
    b1 | (b2 << 32)
}

/// Test-only view of every occupied entry: bucket, key, state, expiry (relative).
fn occupied(c: &FlowCache) -> Vec<(usize, FlowKey, FlowState, u64)> {
    let mut out = Vec::new();
    for (b, bucket) in c.buckets.iter().enumerate() {
        for (i, s) in bucket.slots.iter().enumerate() {
            if !s.is_free() {
                out.push((b, s.key(&c.ext[b * WAYS + i]), s.state(), s.expiry()));
            }
        }
    }
    out
}

/// A small deterministic generator (splitmix64) for the load tests.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` distinct random flows (one in four IPv6) with their cache hashes.
fn random_flows(n: usize, seed: u64) -> Vec<(FlowKey, u64)> {
    let hasher = FlowHasher::new(seed, &DEFAULT_RSS_KEY);
    let mut rng = seed;
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = splitmix(&mut rng);
        let mut k = FlowKey {
            src_port: r as u16,
            dst_port: (r >> 16) as u16,
            protocol: 6,
            ..FlowKey::default()
        };
        if r.is_multiple_of(4) {
            k.version = IpVersion::V6;
            k.src = splitmix(&mut rng)
                .to_le_bytes()
                .repeat(2)
                .try_into()
                .unwrap();
            k.dst[..8].copy_from_slice(&splitmix(&mut rng).to_le_bytes());
        } else {
            k.version = IpVersion::V4;
            k.src[..4].copy_from_slice(&((r >> 32) as u32).to_le_bytes());
            k.dst[..4].copy_from_slice(&[192, 0, 2, (r >> 8) as u8]);
        }
        if seen.insert(k) {
            out.push((k, hasher.cache_hash(&k)));
        }
    }
    out
}

#[test]
fn layout_budget() {
    assert_eq!(size_of::<Bucket>(), 64);
    assert!(size_of::<Slot>() + size_of::<Ext>() <= 64);
    let c = FlowCache::new(config(1 << 10)).unwrap();
    assert_eq!(c.buckets.as_ptr() as usize % 64, 0);
    assert_eq!(c.ext.as_ptr() as usize % 32, 0);
}

#[test]
fn config_is_validated_and_capacity_rounded() {
    assert_eq!(
        FlowCache::new(config(0)).unwrap_err(),
        FlowCacheError::ZeroCapacity
    );
    assert!(matches!(
        FlowCache::new(config(MAX_CAPACITY + 1)),
        Err(FlowCacheError::CapacityTooLarge { .. })
    ));
    let bad = FlowCacheConfig {
        fin_timeout_ms: 0,
        ..config(8)
    };
    assert_eq!(
        FlowCache::new(bad).unwrap_err(),
        FlowCacheError::InvalidTimeout {
            name: "fin_timeout_ms",
            value_ms: 0
        }
    );
    assert_eq!(FlowCache::new(config(1)).unwrap().capacity(), WAYS);
    assert_eq!(FlowCache::new(config(5)).unwrap().capacity(), 8);
    assert_eq!(FlowCache::new(config(1000)).unwrap().capacity(), 1024);
    assert_eq!(FlowCache::new(config(4096)).unwrap().capacity(), 4096);
}

#[test]
fn candidates_are_distinct_and_in_range() {
    let c = FlowCache::new(config(64)).unwrap();
    assert_eq!(c.candidates(pair(3, 9)), (3, 9));
    assert_eq!(c.candidates(pair(3, 3)), (3, 2));
    assert_eq!(c.candidates(same_pair(63)), (0, 1));
    assert_eq!(c.candidates(u64::MAX), (c.mask, c.mask - 1));
    // A single bucket is its own alternative.
    let one = FlowCache::new(config(WAYS)).unwrap();
    assert_eq!(one.candidates(u64::MAX), (0, 0));
}

#[test]
fn insert_then_lookup_hits_and_counts() {
    let mut c = FlowCache::new(config(64)).unwrap();
    let h = FlowHasher::new(1, &DEFAULT_RSS_KEY);
    let k = key(1);
    let hash = h.cache_hash(&k);
    c.prefetch(hash);
    assert_eq!(c.lookup(&k, hash, T0, ACK), None);
    assert_eq!(c.insert(&k, hash, hop(1), T0, ACK), InsertOutcome::Inserted);
    assert_eq!(c.lookup(&k, hash, T0 + 1, ACK), Some(hop(1)));
    assert_eq!(c.len(), 1);
    assert_eq!(
        c.insert(&k, hash, hop(2), T0 + 2, ACK),
        InsertOutcome::Replaced
    );
    assert_eq!(c.lookup(&k, hash, T0 + 3, ACK), Some(hop(2)));
    assert_eq!(c.len(), 1);
    let n = c.counters();
    assert_eq!((n.inserts, n.evictions, n.not_cached), (1, 0, 0));
}

#[test]
fn epoch_and_large_ids_round_trip() {
    let mut c = FlowCache::new(config(64)).unwrap();
    let value = CachedHop {
        group: MAX_GROUP_ID,
        member: u16::MAX,
        hop: u32::MAX,
        epoch: u32::MAX,
    };
    c.insert(&key(1), 1, value, T0, ACK);
    assert_eq!(c.lookup(&key(1), 1, T0, ACK), Some(value));
    // The protocol shares a word with the group: neither disturbs the other.
    let mut udp = key(1);
    udp.protocol = 0xff;
    assert_eq!(c.lookup(&udp, 1, T0, ACK), None);
    let other = CachedHop { epoch: 3, ..value };
    assert!(c.update(&key(1), 1, other));
    assert_eq!(c.peek(&key(1), 1, T0), Some(other));
}

#[test]
fn groups_beyond_the_fib_limit_are_never_cached() {
    let mut c = FlowCache::new(config(64)).unwrap();
    let bad = CachedHop {
        group: MAX_GROUP_ID + 1,
        ..hop(1)
    };
    assert_eq!(c.insert(&key(1), 1, bad, T0, ACK), InsertOutcome::NotCached);
    assert!(c.is_empty());
    c.insert(&key(1), 1, hop(1), T0, ACK);
    // An update that cannot be stored drops the entry rather than keep a stale hop.
    assert!(!c.update(&key(1), 1, bad));
    assert_eq!(c.peek(&key(1), 1, T0), None);
    assert!(c.is_empty());
}

#[test]
fn same_hash_keys_are_told_apart_by_the_key() {
    let mut c = FlowCache::new(config(64)).unwrap();
    let hash = 0xdead_beef_u64;
    assert_eq!(
        c.insert(&key(1), hash, hop(1), T0, 0),
        InsertOutcome::Inserted
    );
    assert_eq!(
        c.insert(&key(2), hash, hop(2), T0, 0),
        InsertOutcome::Inserted
    );
    assert_eq!(c.lookup(&key(1), hash, T0, 0), Some(hop(1)));
    assert_eq!(c.lookup(&key(2), hash, T0, 0), Some(hop(2)));
    assert_eq!(c.lookup(&key(3), hash, T0, 0), None);
}

#[test]
fn wide_keys_are_exact_and_recoverable() {
    let mut c = FlowCache::new(config(64)).unwrap();
    let v4 = key(1);
    // The same bytes as IPv6, and an IPv4 key with stray padding: three distinct flows.
    let v6_same = FlowKey {
        version: IpVersion::V6,
        ..v4
    };
    let mut padded = v4;
    padded.src[9] = 1;
    // Two IPv6 keys whose address folds are equal (words swapped): only the extension
    // record tells them apart.
    let a = key6(7);
    let mut b = a;
    b.src.swap(4, 12);
    b.src.swap(5, 13);
    b.src.swap(6, 14);
    b.src.swap(7, 15);
    assert_ne!(a, b);
    assert_eq!(Probe::of(&a).src, Probe::of(&b).src);
    // Policy keys: equal fields in two groups, and in no group, are three flows, told apart
    // by the group word of the extension record.
    let (g1, g2, a_g3) = (
        FlowKey { group: 1, ..v4 },
        FlowKey { group: 2, ..v4 },
        FlowKey { group: 3, ..a },
    );
    assert!(Probe::of(&g1).is_wide() && Probe::of(&a_g3).is_wide());
    let flows = [v4, v6_same, padded, a, b, g1, g2, a_g3];
    for (i, k) in flows.iter().enumerate() {
        assert_eq!(
            c.insert(k, pair(5, 6 + i as u64), hop(i as u32), T0, ACK),
            InsertOutcome::Inserted
        );
    }
    for (i, k) in flows.iter().enumerate() {
        assert_eq!(
            c.lookup(k, pair(5, 6 + i as u64), T0 + 1, ACK),
            Some(hop(i as u32)),
            "{k:?}"
        );
    }
    let mut seen = HashMap::new();
    c.for_each(T0 + 1, |k, v| {
        seen.insert(*k, *v);
    });
    let expected: HashMap<FlowKey, CachedHop> = flows
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, hop(i as u32)))
        .collect();
    assert_eq!(seen, expected);
    assert!(c.remove(&b, pair(5, 10)));
    assert_eq!(c.lookup(&a, pair(5, 9), T0 + 2, ACK), Some(hop(3)));
    assert_eq!(c.lookup(&b, pair(5, 10), T0 + 2, ACK), None);
}

#[test]
fn embryonic_flow_expires_unless_promoted() {
    let mut c = FlowCache::new(config(64)).unwrap();
    let (a, b) = (key(1), key(2));
    c.insert(&a, 1, hop(1), T0, SYN);
    c.insert(&b, 2, hop(2), T0, SYN);
    // A retransmitted SYN refreshes the embryonic timeout only.
    assert_eq!(c.lookup(&a, 1, T0 + 3_000, SYN), Some(hop(1)));
    assert_eq!(c.lookup(&a, 1, T0 + 7_999, SYN), Some(hop(1)));
    assert_eq!(c.lookup(&a, 1, T0 + 12_999 + GRAIN, SYN), None);
    assert_eq!(c.counters().expired, 1);
    assert_eq!(c.len(), 1);
    // The handshake's ACK promotes b to established: idle timeout from then on.
    assert_eq!(c.lookup(&b, 2, T0 + 4_000, ACK), Some(hop(2)));
    assert_eq!(c.lookup(&b, 2, T0 + 200_000, ACK), Some(hop(2)));
    assert_eq!(c.lookup(&b, 2, T0 + 499_999, 0x18), Some(hop(2)));
    assert_eq!(c.lookup(&b, 2, T0 + 799_999 + GRAIN, ACK), None);
}

#[test]
fn syn_ack_in_the_flow_direction_counts_as_established() {
    let mut c = FlowCache::new(config(64)).unwrap();
    c.insert(&key(1), 1, hop(1), T0, SYN | ACK);
    assert_eq!(c.lookup(&key(1), 1, T0 + 100_000, ACK), Some(hop(1)));
}

#[test]
fn fin_and_rst_shorten_and_stay_closing() {
    let mut c = FlowCache::new(config(64)).unwrap();
    let (a, b) = (key(1), key(2));
    c.insert(&a, 1, hop(1), T0, ACK);
    c.insert(&b, 2, hop(2), T0, ACK);
    assert_eq!(c.lookup(&a, 1, T0 + 1_000, FIN_ACK), Some(hop(1)));
    // The ACK of the FIN refreshes the FIN timeout, not the idle one.
    assert_eq!(c.lookup(&a, 1, T0 + 5_000, ACK), Some(hop(1)));
    assert_eq!(c.lookup(&a, 1, T0 + 14_999, ACK), Some(hop(1)));
    assert_eq!(c.lookup(&a, 1, T0 + 24_999 + GRAIN, ACK), None);
    assert_eq!(c.lookup(&b, 2, T0 + 1_000, RST), Some(hop(2)));
    assert_eq!(c.lookup(&b, 2, T0 + 11_000 + GRAIN, ACK), None);
}

#[test]
fn syn_reopens_a_closing_flow_but_never_demotes_an_established_one() {
    let mut c = FlowCache::new(config(64)).unwrap();
    let (a, b) = (key(1), key(2));
    c.insert(&a, 1, hop(1), T0, RST);
    assert_eq!(c.lookup(&a, 1, T0 + 1_000, SYN), Some(hop(1)));
    // Now embryonic: 5 s.
    assert_eq!(c.lookup(&a, 1, T0 + 6_001 + GRAIN, ACK), None);
    c.insert(&b, 2, hop(2), T0, ACK);
    assert_eq!(c.lookup(&b, 2, T0 + 1_000, SYN), Some(hop(2)));
    assert_eq!(c.lookup(&b, 2, T0 + 100_000, ACK), Some(hop(2)));
}

#[test]
fn non_tcp_flows_use_the_idle_timeout() {
    let mut c = FlowCache::new(config(64)).unwrap();
    c.insert(&key(1), 1, hop(1), T0, 0);
    assert_eq!(c.lookup(&key(1), 1, T0 + 299_999, 0), Some(hop(1)));
    assert_eq!(c.lookup(&key(1), 1, T0 + 599_999 + GRAIN, 0), None);
}

#[test]
fn inserts_prefer_the_less_loaded_candidate() {
    let mut c = FlowCache::new(config(64)).unwrap();
    for i in 0..2 * WAYS as u16 {
        c.insert(&key(i), same_pair(i.into()), hop(i.into()), T0, ACK);
    }
    let per_bucket = |c: &FlowCache, b: usize| occupied(c).iter().filter(|e| e.0 == b).count();
    assert_eq!((per_bucket(&c, 0), per_bucket(&c, 1)), (WAYS, WAYS));
}

#[test]
fn established_flows_evict_the_least_recently_used_of_both_buckets() {
    let mut c = FlowCache::new(config(64)).unwrap();
    let full = 2 * WAYS as u16;
    for i in 0..full {
        let outcome = c.insert(&key(i), same_pair(i.into()), hop(i.into()), T0, ACK);
        assert_eq!(outcome, InsertOutcome::Inserted);
    }
    // Touch all but key 2, which becomes the least recently used.
    for i in (0..full).filter(|&i| i != 2) {
        assert!(
            c.lookup(&key(i), same_pair(i.into()), T0 + 10, ACK)
                .is_some()
        );
    }
    assert_eq!(
        c.insert(&key(99), same_pair(99), hop(99), T0 + 20, ACK),
        InsertOutcome::Evicted
    );
    assert_eq!(c.lookup(&key(2), same_pair(2), T0 + 30, ACK), None);
    for i in (0..full).filter(|&i| i != 2).chain([99]) {
        assert!(
            c.lookup(&key(i), same_pair(i.into()), T0 + 30, ACK)
                .is_some()
        );
    }
    let n = c.counters();
    assert_eq!((n.evictions, n.moves), (1, 0));
    assert_eq!(c.len(), usize::from(full));
}

#[test]
fn embryonic_flows_never_evict_established_ones() {
    let mut c = FlowCache::new(config(64)).unwrap();
    let full = 2 * WAYS as u16;
    for i in 0..full {
        c.insert(&key(i), same_pair(i.into()), hop(i.into()), T0, ACK);
    }
    assert_eq!(
        c.insert(&key(99), same_pair(99), hop(99), T0 + 1, SYN),
        InsertOutcome::NotCached
    );
    assert_eq!(c.counters().not_cached, 1);
    for i in 0..full {
        assert!(c.peek(&key(i), same_pair(i.into()), T0 + 2).is_some());
    }
    // With an embryonic entry in the buckets, a SYN replaces the oldest embryonic one.
    assert!(c.remove(&key(3), same_pair(3)));
    c.insert(&key(3), same_pair(3), hop(3), T0 + 3, SYN);
    assert_eq!(
        c.insert(&key(99), same_pair(99), hop(99), T0 + 4, SYN),
        InsertOutcome::Evicted
    );
    assert_eq!(c.peek(&key(3), same_pair(3), T0 + 5), None);
    assert_eq!(c.peek(&key(99), same_pair(99), T0 + 5), Some(hop(99)));
    // Expired established slots are fair game for a SYN.
    assert_eq!(
        c.insert(&key(100), same_pair(100), hop(100), T0 + 400_000, SYN),
        InsertOutcome::Inserted
    );
    assert_eq!(c.counters().expired, 1);
}

#[test]
fn full_buckets_make_room_by_moving_entries_to_their_other_bucket() {
    // With x (or y) these fill buckets 0 and 1.
    const FILL: u16 = 2 * WAYS as u16 - 1;
    let mut c = FlowCache::new(config(64)).unwrap();
    // Depth one: x lives in bucket 1 and may move to bucket 5.
    let x = key(50);
    assert_eq!(
        c.insert(&x, pair(1, 5), hop(50), T0, ACK),
        InsertOutcome::Inserted
    );
    for i in 0..FILL {
        c.insert(&key(i), same_pair(i.into()), hop(i.into()), T0, ACK);
    }
    assert_eq!(occupied(&c).iter().filter(|e| e.0 == 5).count(), 0);
    // Buckets 0 and 1 are full; a SYN may still get in, by moving x, evicting nobody.
    assert_eq!(
        c.insert(&key(99), same_pair(99), hop(99), T0 + 1, SYN),
        InsertOutcome::Inserted
    );
    assert_eq!(c.counters().moves, 1);
    let at5: Vec<FlowKey> = occupied(&c)
        .iter()
        .filter(|e| e.0 == 5)
        .map(|e| e.1)
        .collect();
    assert_eq!(at5, vec![x]);
    assert_eq!(c.lookup(&x, pair(1, 5), T0 + 2, ACK), Some(hop(50)));
    for i in (0..FILL).chain([99]) {
        assert_eq!(
            c.peek(&key(i), same_pair(i.into()), T0 + 2),
            Some(hop(i.into()))
        );
    }
    assert_eq!(c.len(), usize::from(FILL) + 2);

    // Depth two: y lives in bucket 0 and may move to bucket 9, which is full of entries of
    // the pair (9, 3); bucket 3 has room, so one of them moves on to it and y follows.
    let mut c = FlowCache::new(config(64)).unwrap();
    let mut expected = vec![(key(60), pair(0, 9), hop(60))];
    expected.extend((0..FILL).map(|i| (key(i), same_pair(i.into()), hop(i.into()))));
    expected.extend((0..WAYS as u16).map(|i| (key(200 + i), pair(9, 3), hop(200 + u32::from(i)))));
    for (i, (k, h, v)) in expected.iter().enumerate() {
        if i == usize::from(FILL) + 1 {
            // Blockers fill bucket 3 (their other bucket, 1, is full) so that the pair
            // (9, 3) lands in 9; they leave again before the insert under test.
            for j in 0..WAYS as u16 {
                c.insert(&key(300 + j), pair(3, 1), hop(300), T0, ACK);
            }
        }
        assert_eq!(c.insert(k, *h, *v, T0, ACK), InsertOutcome::Inserted);
    }
    for j in 0..WAYS as u16 {
        assert!(c.remove(&key(300 + j), pair(3, 1)));
    }
    let bucket_of =
        |c: &FlowCache, k: &FlowKey| occupied(c).iter().find(|e| e.1 == *k).map(|e| e.0);
    assert_eq!(bucket_of(&c, &key(60)), Some(0));
    assert_eq!(bucket_of(&c, &key(200)), Some(9));
    assert_eq!(
        c.insert(&key(99), same_pair(99), hop(99), T0 + 1, ACK),
        InsertOutcome::Inserted
    );
    expected.push((key(99), same_pair(99), hop(99)));
    let n = c.counters();
    assert_eq!((n.moves, n.evictions), (2, 0));
    assert_eq!(bucket_of(&c, &key(60)), Some(9));
    assert_eq!(occupied(&c).iter().filter(|e| e.0 == 3).count(), 1);
    assert_eq!(c.len(), expected.len());
    for (k, h, v) in &expected {
        assert_eq!(c.peek(k, *h, T0 + 2), Some(*v), "{k:?}");
        let (b1, b2) = c.candidates(*h);
        let b = bucket_of(&c, k);
        assert!(b == Some(b1) || b == Some(b2), "{k:?} in bucket {b:?}");
    }
}

#[test]
fn half_load_holds_every_flow() {
    for (capacity, seed) in [(1 << 11, 1), (1 << 16, 2), (1 << 18, 3)] {
        let mut c = FlowCache::new(config(capacity)).unwrap();
        let flows = random_flows(capacity / 2, seed);
        for (i, (k, h)) in flows.iter().enumerate() {
            assert_eq!(
                c.insert(k, *h, hop(i as u32), T0, ACK),
                InsertOutcome::Inserted,
                "flow {i} of {} at capacity {capacity}",
                flows.len()
            );
        }
        for (i, (k, h)) in flows.iter().enumerate() {
            assert_eq!(c.lookup(k, *h, T0 + 1, ACK), Some(hop(i as u32)));
        }
        assert_eq!(c.len(), flows.len());
        assert_eq!(c.counters().evictions, 0);
    }
}

#[test]
fn high_load_loss_is_bounded() {
    let capacity = 1 << 16;
    // (load, most flows in a thousand not held): two-choice two-way buckets with a short
    // move search hold everything up to about 0.8 and lose about one flow in a hundred at
    // 0.9, near the (2, 2) cuckoo threshold of 0.897.
    for (tenths, bound) in [(8, 1), (9, 20)] {
        let mut c = FlowCache::new(config(capacity)).unwrap();
        let flows = random_flows(capacity * tenths / 10, 4);
        let mut lost = 0;
        for (i, (k, h)) in flows.iter().enumerate() {
            match c.insert(k, *h, hop(i as u32), T0, ACK) {
                InsertOutcome::Inserted => {}
                InsertOutcome::Evicted => lost += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        println!(
            "load 0.{tenths}: {lost} of {} flows not held ({:.3}%), {} moves",
            flows.len(),
            lost as f64 * 100.0 / flows.len() as f64,
            c.counters().moves
        );
        assert!(lost * 1000 <= flows.len() * bound, "{lost} flows lost");
        // Moves lost nothing: exactly the evicted flows are missing, every other flow is
        // found with its own hop.
        let held = flows
            .iter()
            .enumerate()
            .filter(|(i, (k, h))| match c.peek(k, *h, T0 + 1) {
                Some(v) => {
                    assert_eq!(v, hop(*i as u32));
                    true
                }
                None => false,
            })
            .count();
        assert_eq!(held, flows.len() - lost);
        assert_eq!(c.len(), held);

        // Half of them embryonic: NotCached takes the place of some evictions; same bound.
        let mut c = FlowCache::new(config(capacity)).unwrap();
        let mut not_held = 0;
        for (i, (k, h)) in flows.iter().enumerate() {
            let flags = if i % 2 == 0 { ACK } else { SYN };
            match c.insert(k, *h, hop(i as u32), T0, flags) {
                InsertOutcome::NotCached | InsertOutcome::Evicted => not_held += 1,
                _ => {}
            }
        }
        println!("load 0.{tenths}, half SYN: {not_held} not held");
        assert!(not_held * 1000 <= flows.len() * bound);
    }
}

#[test]
fn update_and_remove() {
    let mut c = FlowCache::new(config(64)).unwrap();
    assert!(!c.update(&key(1), 5, hop(2)));
    assert!(!c.remove(&key(1), 5));
    c.insert(&key(1), 5, hop(1), T0, SYN);
    assert!(c.update(&key(1), 5, hop(2)));
    assert_eq!(c.lookup(&key(1), 5, T0 + 1, ACK), Some(hop(2)));
    assert!(c.remove(&key(1), 5));
    assert!(c.is_empty());
    assert_eq!(c.lookup(&key(1), 5, T0 + 2, ACK), None);
}

#[test]
fn iteration_sees_live_flows_only() {
    let mut c = FlowCache::new(config(256)).unwrap();
    for i in 0..50u16 {
        let flags = if i % 2 == 0 { ACK } else { SYN };
        c.insert(
            &key(i),
            u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            hop(u32::from(i % 3)),
            T0,
            flags,
        );
    }
    let mut seen = HashSet::new();
    c.for_each(T0 + 1, |k, _| {
        seen.insert(*k);
    });
    assert_eq!(seen, (0..50).map(key).collect());
    assert_eq!(c.count_where(T0 + 1, |h| h.member == 0), 17);
    // After the embryonic timeout only the 25 established flows remain.
    assert_eq!(c.count_where(T0 + 5_000, |_| true), 25);
    let mut n = 0;
    c.for_each(T0 + 5_000, |k, _| {
        assert_eq!(k.src_port % 2, 0);
        n += 1;
    });
    assert_eq!(n, 25);
    assert_eq!(c.len(), 50, "expired entries are reclaimed lazily");
}

#[test]
fn time_starts_at_the_first_call_and_saturates() {
    let mut c = FlowCache::new(config(8)).unwrap();
    c.insert(&key(1), 1, hop(1), u64::MAX - 10, ACK);
    assert_eq!(c.lookup(&key(1), 1, u64::MAX, ACK), Some(hop(1)));
    // Far beyond the 40-bit horizon nothing is live (misses, not stale hits).
    let mut c = FlowCache::new(config(8)).unwrap();
    c.insert(&key(1), 1, hop(1), 0, ACK);
    assert_eq!(c.lookup(&key(1), 1, 1 << 41, ACK), None);
}

#[derive(Debug, Clone)]
enum Op {
    Insert { k: u16, flags: u8, value: u32 },
    Lookup { k: u16, flags: u8 },
    Update { k: u16, value: u32 },
    Remove { k: u16 },
    Advance { ms: u64 },
}

const FLAGS: [u8; 6] = [0, SYN, ACK, SYN | ACK, FIN_ACK, RST];
const KEYS: u16 = 40;

fn op() -> impl Strategy<Value = Op> {
    let flags = proptest::sample::select(FLAGS.to_vec());
    prop_oneof![
        4 => (0..KEYS, flags.clone(), 0u32..1000)
            .prop_map(|(k, flags, value)| Op::Insert { k, flags, value }),
        4 => (0..KEYS, flags).prop_map(|(k, flags)| Op::Lookup { k, flags }),
        1 => (0..KEYS, 0u32..1000).prop_map(|(k, value)| Op::Update { k, value }),
        1 => (0..KEYS).prop_map(|k| Op::Remove { k }),
        2 => (0u64..400).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// What the cache should hold for one key, computed independently of the cache.
#[derive(Debug, Clone, Copy)]
struct Model {
    value: CachedHop,
    state: FlowState,
    last_used: u64,
    expiry: u64,
}

const TEST_TIMEOUTS: Timeouts = Timeouts {
    embryonic: 100,
    established: 1_000,
    closing: 300,
};

/// Model keys: IPv4 ones, IPv6 ones (every third) and IPv4 policy keys (group 1 or 2, for
/// a fifth of the rest), so every key format moves and evicts.
fn model_key(k: u16) -> FlowKey {
    if k.is_multiple_of(3) {
        key6(k.into())
    } else if k % 5 == 1 {
        FlowKey {
            group: 1 + u32::from(k % 2),
            ..key(k)
        }
    } else {
        key(k)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cache_agrees_with_a_model(
        capacity in proptest::sample::select(vec![8usize, 16, 32]),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let cfg = FlowCacheConfig {
            capacity,
            idle_timeout_ms: TEST_TIMEOUTS.established,
            embryonic_timeout_ms: TEST_TIMEOUTS.embryonic,
            fin_timeout_ms: TEST_TIMEOUTS.closing,
        };
        let mut c = FlowCache::new(cfg).unwrap();
        // Expiries count from the time rounded up to the grain (the first call is the origin).
        let g = cfg.timeouts().grain();
        prop_assert_eq!(g, 4);
        let base = |now: u64| T0 + (now - T0).next_multiple_of(g);
        // Fix the origin at T0 (a lookup in the empty cache changes nothing else).
        prop_assert_eq!(c.lookup(&model_key(0), 0, T0, 0), None);
        let hasher = FlowHasher::new(42, &DEFAULT_RSS_KEY);
        let keys: Vec<FlowKey> = (0..KEYS).map(model_key).collect();
        let hashes: Vec<u64> = keys.iter().map(|k| hasher.cache_hash(k)).collect();
        let cands = |k: usize| c.candidates(hashes[k]);
        let cands: Vec<(usize, usize)> = (0..keys.len()).map(cands).collect();
        let index = |k: &FlowKey| keys.iter().position(|x| x == k).unwrap();
        let mut model: HashMap<u16, Model> = HashMap::new();
        let mut now = T0;
        let live = |m: &HashMap<u16, Model>, k: u16, now: u64| {
            m.get(&k).filter(|e| e.expiry > now).copied()
        };

        for op in ops {
            match op {
                Op::Insert { k, flags, value } => {
                    let kk = usize::from(k);
                    let value = hop(value);
                    let before = live(&model, k, now);
                    let (b1, b2) = cands[kk];
                    // The other live flows sitting in the key's two buckets: the only
                    // ones it may evict.
                    let neighbours: Vec<(u16, Model)> = occupied(&c)
                        .iter()
                        .filter(|(b, ..)| *b == b1 || *b == b2)
                        .map(|(_, key, ..)| index(key) as u16)
                        .filter(|&o| o != k)
                        .filter_map(|o| live(&model, o, now).map(|m| (o, m)))
                        .collect();
                    let slots = if b1 == b2 { WAYS } else { 2 * WAYS };
                    let outcome = c.insert(&keys[kk], hashes[kk], value, now, flags);
                    // Every other live flow that is no longer found.
                    let gone: Vec<(u16, Model)> = (0..KEYS)
                        .filter(|&o| o != k)
                        .filter_map(|o| live(&model, o, now).map(|m| (o, m)))
                        .filter(|(o, _)| c.peek(&keys[usize::from(*o)], hashes[usize::from(*o)], now).is_none())
                        .collect();
                    let fresh = FlowState::initial(flags);
                    match outcome {
                        InsertOutcome::Replaced => {
                            let b = before.expect("replaced a key the model does not hold");
                            prop_assert!(gone.is_empty());
                            let state = b.state.after(flags);
                            model.insert(k, Model { value, state, last_used: base(now), expiry: base(now) + TEST_TIMEOUTS.of(state) });
                        }
                        InsertOutcome::Inserted | InsertOutcome::Evicted => {
                            prop_assert!(before.is_none(), "live key inserted twice");
                            if outcome == InsertOutcome::Evicted {
                                // Exactly one live flow went: the least recently used of
                                // the neighbours the new flow may evict.
                                prop_assert_eq!(gone.len(), 1);
                                let (victim, vm) = gone[0];
                                prop_assert!(neighbours.iter().any(|(o, _)| *o == victim), "evicted a flow of another bucket");
                                prop_assert_eq!(neighbours.len(), slots, "evicted with room left");
                                let eligible = |m: &Model| fresh != FlowState::Embryonic || m.state == FlowState::Embryonic;
                                prop_assert!(eligible(&vm), "embryonic evicted a non-embryonic flow");
                                prop_assert!(neighbours.iter().filter(|(_, m)| eligible(m)).all(|(_, m)| m.last_used >= vm.last_used));
                                model.remove(&victim);
                            } else {
                                prop_assert!(gone.is_empty());
                            }
                            model.insert(k, Model { value, state: fresh, last_used: base(now), expiry: base(now) + TEST_TIMEOUTS.of(fresh) });
                        }
                        InsertOutcome::NotCached => {
                            prop_assert!(before.is_none());
                            prop_assert!(gone.is_empty());
                            prop_assert_eq!(fresh, FlowState::Embryonic, "only embryonic flows go uncached");
                            prop_assert!(neighbours.len() == slots && neighbours.iter().all(|(_, m)| m.state != FlowState::Embryonic));
                            model.remove(&k);
                        }
                    }
                }
                Op::Lookup { k, flags } => {
                    let kk = usize::from(k);
                    let got = c.lookup(&keys[kk], hashes[kk], now, flags);
                    match live(&model, k, now) {
                        Some(m) => {
                            prop_assert_eq!(got, Some(m.value), "lost a live flow");
                            let state = m.state.after(flags);
                            model.insert(k, Model { state, last_used: base(now), expiry: base(now) + TEST_TIMEOUTS.of(state), ..m });
                        }
                        None => {
                            prop_assert_eq!(got, None, "returned an expired or unknown flow");
                            model.remove(&k);
                        }
                    }
                }
                Op::Update { k, value } => {
                    let kk = usize::from(k);
                    let found = c.update(&keys[kk], hashes[kk], hop(value));
                    match model.get_mut(&k) {
                        Some(m) if m.expiry > now => {
                            prop_assert!(found);
                            m.value = hop(value);
                        }
                        Some(m) => {
                            // Expired but maybe still occupying its slot: either is fine.
                            m.value = hop(value);
                        }
                        None => prop_assert!(!found),
                    }
                }
                Op::Remove { k } => {
                    let kk = usize::from(k);
                    let removed = c.remove(&keys[kk], hashes[kk]);
                    if live(&model, k, now).is_some() {
                        prop_assert!(removed);
                    }
                    if model.remove(&k).is_none() {
                        prop_assert!(!removed);
                    }
                }
                Op::Advance { ms } => now += ms,
            }

            // Structural invariants after every operation.
            let occ = occupied(&c);
            prop_assert_eq!(occ.len(), c.len());
            prop_assert!(c.len() <= c.capacity());
            let distinct: HashSet<FlowKey> = occ.iter().map(|(_, k, _, _)| *k).collect();
            prop_assert_eq!(distinct.len(), occ.len(), "two entries share a key");
            for (b, k, _, _) in &occ {
                let (b1, b2) = cands[index(k)];
                prop_assert!(*b == b1 || *b == b2, "entry outside its candidate buckets");
            }
            // Every live model flow is visible, with its value; nothing else is live.
            let mut seen = HashMap::new();
            c.for_each(now, |k, v| { seen.insert(*k, *v); });
            let expected: HashMap<FlowKey, CachedHop> = (0..KEYS)
                .filter_map(|k| live(&model, k, now).map(|m| (keys[usize::from(k)], m.value)))
                .collect();
            prop_assert_eq!(seen, expected);
        }
        let n = c.counters();
        prop_assert!(n.inserts >= n.evictions);
    }
}

proptest! {
    /// The IPv4 fast path keys a packet exactly as its `FlowKey` does: same cache hash, same
    /// probe (so the same buckets and the same stored key).
    #[test]
    fn ipv4_probe_from_the_narrow_key_is_the_flow_key_probe(
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        src_port in any::<u16>(),
        dst_port in any::<u16>(),
        protocol in any::<u8>(),
        capacity in proptest::sample::select(vec![2usize, 64, 1 << 20]),
    ) {
        let narrow = crate::flow::OuterV4 { src, dst, src_port, dst_port, protocol };
        let (mut s16, mut d16) = ([0u8; 16], [0u8; 16]);
        s16[..4].copy_from_slice(&src);
        d16[..4].copy_from_slice(&dst);
        let wide = FlowKey {
            src: s16,
            dst: d16,
            src_port,
            dst_port,
            protocol,
            version: IpVersion::V4,
            group: 0,
        };
        let hasher = FlowHasher::new(7, &DEFAULT_RSS_KEY);
        let h = hasher.cache_hash(&wide);
        prop_assert_eq!(hasher.cache_hash_v4(&narrow), h);
        let c = FlowCache::new(config(capacity)).unwrap();
        prop_assert_eq!(c.probe_v4(&narrow, h), c.probe(&wide, h));
    }
}
