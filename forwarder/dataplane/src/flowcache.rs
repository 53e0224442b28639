//! The per-worker flow cache: which hop each recent flow was sent to.
//!
//! Layout: bucketized open addressing. A flow's bucket is `hash & (buckets - 1)`; a bucket is one
//! 64-byte line of [`WAYS`] 16-byte entries (signature, state, expiry, cached hop). The full keys
//! live in a parallel array of 64-byte-aligned rows, so a lookup reads the bucket line, filters by
//! the 6-bit signature (top bits of the hash) and then verifies the exact key: a hit is never a
//! hash collision. Both layouts and the at-most-64-bytes-per-flow budget are const-asserted.
//!
//! Invariants:
//! - Owned by one worker and never shared, so no atomics or locks; the struct is cache-aligned.
//! - Everything is allocated in [`FlowCache::new`]; lookups, inserts, evictions, updates and
//!   removals never allocate, never fail the packet and never panic.
//! - At most one entry per key (live or expired): insert reuses the key's own entry.
//! - `len()` (occupied entries, including expired ones not yet reclaimed) never exceeds
//!   `capacity()`. An expired entry is never returned; it is reclaimed when its key is looked up
//!   or when an insert into its bucket needs the slot.
//! - Embryonic flows (TCP SYN without ACK) take free, expired or embryonic slots only: a SYN
//!   flood cannot push established flows out. Other flows may evict the least recently used
//!   live entry of the bucket, and that is reported and counted.
//! - Timeouts by state: embryonic (SYN only), established (idle), closing (after FIN or RST).
//!   Every hit refreshes the expiry with the timeout of the flow's new state.
//! - Time is kept in milliseconds relative to the first `now_ms` the cache sees, in 40 bits
//!   (about 34 years); a clock beyond that makes every entry look expired (misses, never stale
//!   hits). `now_ms` must not go backwards by more than the timeouts for expiry to be exact.

use ecmp_tables::nexthop::{GroupId, HopId};

use crate::flow::FlowKey;

/// Entries per bucket line.
pub const WAYS: usize = 4;

/// Largest supported capacity (flows per worker); 64 bytes each.
pub const MAX_CAPACITY: usize = 1 << 26;

/// Largest accepted timeout (about 49 days).
pub const MAX_TIMEOUT_MS: u64 = 1 << 32;

/// TCP flag bits, as in [`ecmp_wire::meta::PacketMeta::tcp_flags`].
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// Bits of relative time an entry can hold.
const TIME_BITS: u32 = 40;
const TIME_MAX: u64 = (1 << TIME_BITS) - 1;

/// Where a flow was sent: the group of its route, the member index within the group and the hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CachedHop {
    /// The group the flow's route resolved to.
    pub group: GroupId,
    /// The member slot of the hop within the group.
    pub member: u16,
    /// The next hop the flow is pinned to.
    pub hop: HopId,
}

/// Size and timeouts of a flow cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowCacheConfig {
    /// Flows the cache holds; rounded up to a power of two (at least [`WAYS`]).
    pub capacity: usize,
    /// Lifetime of an established flow after its last packet.
    pub idle_timeout_ms: u64,
    /// Lifetime of a flow that has only sent SYNs (no ACK yet).
    pub embryonic_timeout_ms: u64,
    /// Lifetime of a flow after a FIN or RST.
    pub fin_timeout_ms: u64,
}

impl Default for FlowCacheConfig {
    /// 2^18 flows (16 MiB), 300 s idle, 5 s embryonic, 10 s after FIN/RST.
    fn default() -> Self {
        Self {
            capacity: 1 << 18,
            idle_timeout_ms: 300_000,
            embryonic_timeout_ms: 5_000,
            fin_timeout_ms: 10_000,
        }
    }
}

/// Why a flow cache could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlowCacheError {
    /// The configured capacity is zero.
    #[error("flow cache capacity must be at least 1")]
    ZeroCapacity,
    /// The configured capacity exceeds [`MAX_CAPACITY`].
    #[error("flow cache capacity {requested} exceeds the maximum {max}")]
    CapacityTooLarge {
        /// The configured capacity.
        requested: usize,
        /// The largest supported capacity.
        max: usize,
    },
    /// A timeout is zero or larger than [`MAX_TIMEOUT_MS`].
    #[error("flow cache {name} of {value_ms} ms is out of range (1..={MAX_TIMEOUT_MS})")]
    InvalidTimeout {
        /// Which timeout (its config field name).
        name: &'static str,
        /// The configured value.
        value_ms: u64,
    },
}

/// What [`FlowCache::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InsertOutcome {
    /// Stored in a free or expired slot.
    Inserted,
    /// The key was cached already: its hop was replaced and its expiry refreshed.
    Replaced,
    /// Stored by evicting the least recently used live entry of the bucket.
    Evicted,
    /// Not stored: the flow is embryonic and its bucket holds only live non-embryonic flows.
    /// The packet is still forwarded; the flow is looked up again on its next packet.
    NotCached,
}

/// Event counters of one flow cache, folded by the worker into its stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowCacheCounters {
    /// Lookups that returned a cached hop.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Inserts that stored a new flow (including those that evicted one).
    pub inserts: u64,
    /// Live flows evicted to make room.
    pub evictions: u64,
    /// Inserts that stored nothing (embryonic flow, bucket full of established flows).
    pub not_cached: u64,
    /// Expired entries reclaimed.
    pub expired: u64,
}

/// TCP-derived state of a cached flow; selects its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowState {
    /// Only SYNs seen.
    Embryonic = 1,
    /// Data or ACKs seen (or not TCP).
    Established = 2,
    /// FIN or RST seen.
    Closing = 3,
}

impl FlowState {
    /// State of a flow first seen with `flags`.
    #[inline(always)]
    fn initial(flags: u8) -> Self {
        if flags & (TCP_FIN | TCP_RST) != 0 {
            Self::Closing
        } else if flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            Self::Embryonic
        } else {
            Self::Established
        }
    }

    /// State after a packet with `flags`: FIN/RST close; a SYN-only packet reopens a closing
    /// flow (the tuple is being reused) but never demotes an established one; anything else
    /// establishes an embryonic flow and leaves a closing one closing (the last ACKs after a FIN
    /// must not bring back the idle timeout).
    #[inline(always)]
    fn after(self, flags: u8) -> Self {
        if flags & (TCP_FIN | TCP_RST) != 0 {
            Self::Closing
        } else if flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            match self {
                Self::Closing => Self::Embryonic,
                other => other,
            }
        } else {
            match self {
                Self::Embryonic => Self::Established,
                other => other,
            }
        }
    }
}

/// Timeouts in milliseconds, by state.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    embryonic: u64,
    established: u64,
    closing: u64,
}

impl Timeouts {
    #[inline(always)]
    fn of(&self, state: FlowState) -> u64 {
        match state {
            FlowState::Embryonic => self.embryonic,
            FlowState::Established => self.established,
            FlowState::Closing => self.closing,
        }
    }
}

/// One cached flow in a bucket line. `tag` holds the signature (high 6 bits) and the state (low
/// 2 bits, 0 = free); the expiry is 40 bits split over `expiry_lo` and `expiry_hi`.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
struct Entry {
    group: u32,
    hop: u32,
    expiry_lo: u32,
    member: u16,
    expiry_hi: u8,
    tag: u8,
}

const _: () = assert!(size_of::<Entry>() == 16);

impl Entry {
    const FREE: Entry = Entry {
        group: 0,
        hop: 0,
        expiry_lo: 0,
        member: 0,
        expiry_hi: 0,
        tag: 0,
    };

    #[inline(always)]
    fn is_free(&self) -> bool {
        self.tag & 3 == 0
    }

    /// Occupied and carrying signature `sig`.
    #[inline(always)]
    fn matches(&self, sig: u8) -> bool {
        !self.is_free() && self.tag >> 2 == sig
    }

    /// State of an occupied entry.
    #[inline(always)]
    fn state(&self) -> FlowState {
        match self.tag & 3 {
            1 => FlowState::Embryonic,
            2 => FlowState::Established,
            _ => FlowState::Closing,
        }
    }

    #[inline(always)]
    fn expiry(&self) -> u64 {
        u64::from(self.expiry_lo) | (u64::from(self.expiry_hi) << 32)
    }

    /// When the flow was last touched: every touch set expiry = now + timeout(state).
    #[inline(always)]
    fn last_used(&self, timeouts: &Timeouts) -> u64 {
        self.expiry().saturating_sub(timeouts.of(self.state()))
    }

    #[inline(always)]
    fn hop(&self) -> CachedHop {
        CachedHop {
            group: self.group,
            member: self.member,
            hop: self.hop,
        }
    }

    #[inline(always)]
    fn set_hop(&mut self, value: CachedHop) {
        self.group = value.group;
        self.member = value.member;
        self.hop = value.hop;
    }

    /// Sets state, signature and expiry (`now + timeout(state)`, saturating at the 40-bit limit).
    #[inline(always)]
    fn touch(&mut self, state: FlowState, sig: u8, now: u64, timeouts: &Timeouts) {
        let expiry = now.saturating_add(timeouts.of(state)).min(TIME_MAX);
        self.expiry_lo = expiry as u32;
        self.expiry_hi = (expiry >> 32) as u8;
        self.tag = (sig << 2) | state as u8;
    }
}

/// One cache line of entries.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    entries: [Entry; WAYS],
}

/// The keys of one bucket, parallel to it (read only to verify a signature match).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct KeyRow {
    keys: [FlowKey; WAYS],
}

const _: () = assert!(size_of::<Bucket>() == 64);
const _: () = assert!(align_of::<Bucket>() == 64);
const _: () = assert!((size_of::<Bucket>() + size_of::<KeyRow>()) / WAYS <= 64);
const _: () = assert!((size_of::<Bucket>() + size_of::<KeyRow>()).is_multiple_of(WAYS));

/// The signature: 6 high bits of the hash (the bucket comes from the low bits).
#[inline(always)]
fn signature(hash: u64) -> u8 {
    (hash >> 58) as u8
}

/// A per-worker flow cache. See the module doc for layout and invariants.
#[repr(C, align(64))]
pub struct FlowCache {
    buckets: Box<[Bucket]>,
    keys: Box<[KeyRow]>,
    mask: usize,
    epoch: u64,
    timeouts: Timeouts,
    counters: FlowCacheCounters,
    len: usize,
    started: bool,
}

impl core::fmt::Debug for FlowCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlowCache")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl FlowCache {
    /// Allocates a cache for `config.capacity` flows rounded up to a power of two.
    pub fn new(config: FlowCacheConfig) -> Result<Self, FlowCacheError> {
        if config.capacity == 0 {
            return Err(FlowCacheError::ZeroCapacity);
        }
        if config.capacity > MAX_CAPACITY {
            return Err(FlowCacheError::CapacityTooLarge {
                requested: config.capacity,
                max: MAX_CAPACITY,
            });
        }
        for (name, value_ms) in [
            ("idle_timeout_ms", config.idle_timeout_ms),
            ("embryonic_timeout_ms", config.embryonic_timeout_ms),
            ("fin_timeout_ms", config.fin_timeout_ms),
        ] {
            if value_ms == 0 || value_ms > MAX_TIMEOUT_MS {
                return Err(FlowCacheError::InvalidTimeout { name, value_ms });
            }
        }
        let buckets = config.capacity.max(WAYS).next_power_of_two() / WAYS;
        Ok(Self {
            buckets: vec![Bucket::default(); buckets].into_boxed_slice(),
            keys: vec![KeyRow::default(); buckets].into_boxed_slice(),
            mask: buckets - 1,
            epoch: 0,
            timeouts: Timeouts {
                embryonic: config.embryonic_timeout_ms,
                established: config.idle_timeout_ms,
                closing: config.fin_timeout_ms,
            },
            counters: FlowCacheCounters::default(),
            len: 0,
            started: false,
        })
    }

    /// Flows the cache can hold (a power of two).
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// Occupied entries, including expired ones not reclaimed yet. Never above `capacity()`.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is occupied.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The event counters so far.
    #[inline]
    pub fn counters(&self) -> FlowCacheCounters {
        self.counters
    }

    #[inline(always)]
    fn bucket_of(&self, hash: u64) -> usize {
        (hash as usize) & self.mask
    }

    /// Relative time; the first call fixes the epoch.
    #[inline(always)]
    fn clock(&mut self, now_ms: u64) -> u64 {
        if !self.started {
            self.started = true;
            self.epoch = now_ms;
        }
        now_ms.saturating_sub(self.epoch).min(TIME_MAX)
    }

    /// Relative time without fixing the epoch (before the first call nothing is cached).
    #[inline(always)]
    fn peek_clock(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.epoch).min(TIME_MAX)
    }

    /// Starts loading the bucket line of `hash` into the cache, so that the lookup a few packets
    /// later does not stall on it.
    ///
    /// This is an ordinary one-byte load whose value is discarded (kept alive by `black_box`),
    /// not a prefetch instruction: `_mm_prefetch` is a `#[target_feature]` function, which safe
    /// code may call only from another such function, and this crate forbids `unsafe`. The load
    /// starts the same cache miss and overlaps it with the work that follows; unlike a prefetch
    /// it occupies a load slot until the line arrives.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(bucket) = self.buckets.get(self.bucket_of(hash)) {
            ecmp_io::hint::prefetch(bucket);
        }
    }

    /// The cached hop of `key` (whose cache hash is `hash`), if cached and not expired.
    ///
    /// A hit refreshes the expiry and applies the packet's TCP flags: a non-SYN packet promotes
    /// an embryonic flow to established, FIN or RST shortens the lifetime to the FIN timeout.
    /// An expired entry of the key is reclaimed and reported as a miss.
    #[inline]
    pub fn lookup(
        &mut self,
        key: &FlowKey,
        hash: u64,
        now_ms: u64,
        tcp_flags: u8,
    ) -> Option<CachedHop> {
        let now = self.clock(now_ms);
        let b = self.bucket_of(hash);
        let sig = signature(hash);
        let timeouts = self.timeouts;
        if let (Some(bucket), Some(row)) = (self.buckets.get_mut(b), self.keys.get(b)) {
            for (e, k) in bucket.entries.iter_mut().zip(&row.keys) {
                if e.matches(sig) && k == key {
                    if e.expiry() <= now {
                        *e = Entry::FREE;
                        self.len -= 1;
                        self.counters.expired += 1;
                        break;
                    }
                    let state = e.state().after(tcp_flags);
                    e.touch(state, sig, now, &timeouts);
                    self.counters.hits += 1;
                    return Some(e.hop());
                }
            }
        }
        self.counters.misses += 1;
        None
    }

    /// The cached hop of `key` if cached and live at `now_ms`, changing nothing (no refresh, no
    /// counters): for inspection, not for the packet path.
    pub fn peek(&self, key: &FlowKey, hash: u64, now_ms: u64) -> Option<CachedHop> {
        if !self.started {
            return None;
        }
        let now = self.peek_clock(now_ms);
        let b = self.bucket_of(hash);
        let sig = signature(hash);
        let (bucket, row) = (self.buckets.get(b)?, self.keys.get(b)?);
        bucket
            .entries
            .iter()
            .zip(&row.keys)
            .find(|(e, k)| e.matches(sig) && *k == key)
            .filter(|(e, _)| e.expiry() > now)
            .map(|(e, _)| e.hop())
    }

    /// Caches `value` for `key` (cache hash `hash`), first seen at `now_ms` with `tcp_flags`.
    ///
    /// Never fails the packet: when there is no room it reports [`InsertOutcome::NotCached`].
    /// Slot choice: the key's own entry (live: [`InsertOutcome::Replaced`]; expired: reused),
    /// else a free slot, else an expired one, else the least recently used live entry that the
    /// new flow may evict (an embryonic flow may evict only embryonic ones).
    pub fn insert(
        &mut self,
        key: &FlowKey,
        hash: u64,
        value: CachedHop,
        now_ms: u64,
        tcp_flags: u8,
    ) -> InsertOutcome {
        let now = self.clock(now_ms);
        let b = self.bucket_of(hash);
        let sig = signature(hash);
        let timeouts = self.timeouts;
        let fresh = FlowState::initial(tcp_flags);
        let (Some(bucket), Some(row)) = (self.buckets.get_mut(b), self.keys.get_mut(b)) else {
            self.counters.not_cached += 1;
            return InsertOutcome::NotCached;
        };

        let mut own = None;
        let mut free = None;
        let mut expired = None;
        let mut victim: Option<(usize, u64)> = None;
        for (i, (e, k)) in bucket.entries.iter().zip(&row.keys).enumerate() {
            if e.is_free() {
                free = free.or(Some(i));
                continue;
            }
            let live = e.expiry() > now;
            if e.matches(sig) && k == key {
                own = Some((i, live));
                break;
            }
            if !live {
                expired = expired.or(Some(i));
                continue;
            }
            if fresh == FlowState::Embryonic && e.state() != FlowState::Embryonic {
                continue;
            }
            let used = e.last_used(&timeouts);
            if victim.is_none_or(|(_, oldest)| used < oldest) {
                victim = Some((i, used));
            }
        }

        let (slot, outcome) = match (own, free, expired, victim) {
            (Some((i, true)), ..) => {
                let e = &mut bucket.entries[i];
                let state = e.state().after(tcp_flags);
                e.set_hop(value);
                e.touch(state, sig, now, &timeouts);
                return InsertOutcome::Replaced;
            }
            (Some((i, false)), ..) => {
                self.counters.expired += 1;
                (i, InsertOutcome::Inserted)
            }
            (None, Some(i), ..) => {
                self.len += 1;
                (i, InsertOutcome::Inserted)
            }
            (None, None, Some(i), _) => {
                self.counters.expired += 1;
                (i, InsertOutcome::Inserted)
            }
            (None, None, None, Some((i, _))) => {
                self.counters.evictions += 1;
                (i, InsertOutcome::Evicted)
            }
            (None, None, None, None) => {
                self.counters.not_cached += 1;
                return InsertOutcome::NotCached;
            }
        };
        let e = &mut bucket.entries[slot];
        e.set_hop(value);
        e.touch(fresh, sig, now, &timeouts);
        row.keys[slot] = *key;
        self.counters.inserts += 1;
        outcome
    }

    /// Replaces the cached hop of `key` (after the cached hop failed and the flow was re-picked)
    /// without touching its expiry or state. Returns false when the key is not cached.
    #[inline]
    pub fn update(&mut self, key: &FlowKey, hash: u64, value: CachedHop) -> bool {
        let b = self.bucket_of(hash);
        let sig = signature(hash);
        let (Some(bucket), Some(row)) = (self.buckets.get_mut(b), self.keys.get(b)) else {
            return false;
        };
        match bucket
            .entries
            .iter_mut()
            .zip(&row.keys)
            .find(|(e, k)| e.matches(sig) && *k == key)
        {
            Some((e, _)) => {
                e.set_hop(value);
                true
            }
            None => false,
        }
    }

    /// Forgets `key`. Returns false when it was not cached.
    pub fn remove(&mut self, key: &FlowKey, hash: u64) -> bool {
        let b = self.bucket_of(hash);
        let sig = signature(hash);
        let (Some(bucket), Some(row)) = (self.buckets.get_mut(b), self.keys.get(b)) else {
            return false;
        };
        match bucket
            .entries
            .iter_mut()
            .zip(&row.keys)
            .find(|(e, k)| e.matches(sig) && *k == key)
        {
            Some((e, _)) => {
                *e = Entry::FREE;
                self.len -= 1;
                true
            }
            None => false,
        }
    }

    /// Calls `f` for every flow live at `now_ms` (for stats and what-if; walks the whole cache).
    pub fn for_each(&self, now_ms: u64, mut f: impl FnMut(&FlowKey, &CachedHop)) {
        self.live(now_ms, |k, e| f(k, &e.hop()));
    }

    /// Counts the flows live at `now_ms` whose cached hop satisfies `pred`.
    pub fn count_where(&self, now_ms: u64, mut pred: impl FnMut(&CachedHop) -> bool) -> usize {
        let mut n = 0;
        self.live(now_ms, |_, e| n += usize::from(pred(&e.hop())));
        n
    }

    fn live(&self, now_ms: u64, mut f: impl FnMut(&FlowKey, &Entry)) {
        if !self.started {
            return;
        }
        let now = self.peek_clock(now_ms);
        for (bucket, row) in self.buckets.iter().zip(self.keys.iter()) {
            for (e, k) in bucket.entries.iter().zip(&row.keys) {
                if !e.is_free() && e.expiry() > now {
                    f(k, e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{DEFAULT_RSS_KEY, FlowHasher};
    use ecmp_wire::meta::IpVersion;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    const SYN: u8 = TCP_SYN;
    const ACK: u8 = TCP_ACK;
    const FIN_ACK: u8 = TCP_FIN | TCP_ACK;
    const RST: u8 = TCP_RST;
    const T0: u64 = 1_700_000_000_000;

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
        }
    }

    fn hop(n: u32) -> CachedHop {
        CachedHop {
            group: 7,
            member: n as u16,
            hop: 100 + n,
        }
    }

    /// Hashes that all land in bucket 0, with distinct signatures.
    fn same_bucket(i: u64) -> u64 {
        i << 58
    }

    /// Test-only view of every occupied entry: key, hop, state, expiry (relative).
    fn occupied(c: &FlowCache) -> Vec<(usize, FlowKey, FlowState, u64)> {
        let mut out = Vec::new();
        for (b, (bucket, row)) in c.buckets.iter().zip(c.keys.iter()).enumerate() {
            for (e, k) in bucket.entries.iter().zip(&row.keys) {
                if !e.is_free() {
                    out.push((b, *k, e.state(), e.expiry()));
                }
            }
        }
        out
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
        assert_eq!((n.hits, n.misses, n.inserts), (2, 1, 1));
    }

    #[test]
    fn signature_collisions_are_resolved_by_the_key() {
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
    fn embryonic_flow_expires_unless_promoted() {
        let mut c = FlowCache::new(config(64)).unwrap();
        let (a, b) = (key(1), key(2));
        c.insert(&a, 1, hop(1), T0, SYN);
        c.insert(&b, 2, hop(2), T0, SYN);
        // A retransmitted SYN refreshes the embryonic timeout only.
        assert_eq!(c.lookup(&a, 1, T0 + 3_000, SYN), Some(hop(1)));
        assert_eq!(c.lookup(&a, 1, T0 + 7_999, SYN), Some(hop(1)));
        assert_eq!(c.lookup(&a, 1, T0 + 12_999, SYN), None);
        assert_eq!(c.counters().expired, 1);
        assert_eq!(c.len(), 1);
        // The handshake's ACK promotes b to established: idle timeout from then on.
        assert_eq!(c.lookup(&b, 2, T0 + 4_000, ACK), Some(hop(2)));
        assert_eq!(c.lookup(&b, 2, T0 + 200_000, ACK), Some(hop(2)));
        assert_eq!(c.lookup(&b, 2, T0 + 499_999, 0x18), Some(hop(2)));
        assert_eq!(c.lookup(&b, 2, T0 + 799_999, ACK), None);
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
        assert_eq!(c.lookup(&a, 1, T0 + 24_999, ACK), None);
        assert_eq!(c.lookup(&b, 2, T0 + 1_000, RST), Some(hop(2)));
        assert_eq!(c.lookup(&b, 2, T0 + 11_000, ACK), None);
    }

    #[test]
    fn syn_reopens_a_closing_flow_but_never_demotes_an_established_one() {
        let mut c = FlowCache::new(config(64)).unwrap();
        let (a, b) = (key(1), key(2));
        c.insert(&a, 1, hop(1), T0, RST);
        assert_eq!(c.lookup(&a, 1, T0 + 1_000, SYN), Some(hop(1)));
        // Now embryonic: 5 s.
        assert_eq!(c.lookup(&a, 1, T0 + 6_001, ACK), None);
        c.insert(&b, 2, hop(2), T0, ACK);
        assert_eq!(c.lookup(&b, 2, T0 + 1_000, SYN), Some(hop(2)));
        assert_eq!(c.lookup(&b, 2, T0 + 100_000, ACK), Some(hop(2)));
    }

    #[test]
    fn non_tcp_flows_use_the_idle_timeout() {
        let mut c = FlowCache::new(config(64)).unwrap();
        c.insert(&key(1), 1, hop(1), T0, 0);
        assert_eq!(c.lookup(&key(1), 1, T0 + 299_999, 0), Some(hop(1)));
        assert_eq!(c.lookup(&key(1), 1, T0 + 599_999, 0), None);
    }

    #[test]
    fn established_flows_evict_the_least_recently_used() {
        let mut c = FlowCache::new(config(64)).unwrap();
        for i in 0..4u16 {
            let outcome = c.insert(&key(i), same_bucket(i.into()), hop(i.into()), T0, ACK);
            assert_eq!(outcome, InsertOutcome::Inserted);
        }
        // Touch all but key 2, which becomes the least recently used.
        for i in [0u16, 1, 3] {
            assert!(
                c.lookup(&key(i), same_bucket(i.into()), T0 + 10, ACK)
                    .is_some()
            );
        }
        assert_eq!(
            c.insert(&key(9), same_bucket(9), hop(9), T0 + 20, ACK),
            InsertOutcome::Evicted
        );
        assert_eq!(c.lookup(&key(2), same_bucket(2), T0 + 30, ACK), None);
        for i in [0u16, 1, 3, 9] {
            assert!(
                c.lookup(&key(i), same_bucket(i.into()), T0 + 30, ACK)
                    .is_some()
            );
        }
        assert_eq!(c.counters().evictions, 1);
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn embryonic_flows_never_evict_established_ones() {
        let mut c = FlowCache::new(config(64)).unwrap();
        for i in 0..4u16 {
            c.insert(&key(i), same_bucket(i.into()), hop(i.into()), T0, ACK);
        }
        assert_eq!(
            c.insert(&key(9), same_bucket(9), hop(9), T0 + 1, SYN),
            InsertOutcome::NotCached
        );
        assert_eq!(c.counters().not_cached, 1);
        for i in 0..4u16 {
            assert!(c.peek(&key(i), same_bucket(i.into()), T0 + 2).is_some());
        }
        // With an embryonic entry in the bucket, a SYN replaces the oldest embryonic one.
        assert!(c.remove(&key(3), same_bucket(3)));
        c.insert(&key(3), same_bucket(3), hop(3), T0 + 3, SYN);
        assert_eq!(
            c.insert(&key(9), same_bucket(9), hop(9), T0 + 4, SYN),
            InsertOutcome::Evicted
        );
        assert_eq!(c.peek(&key(3), same_bucket(3), T0 + 5), None);
        assert_eq!(c.peek(&key(9), same_bucket(9), T0 + 5), Some(hop(9)));
        // Expired established slots are fair game for a SYN.
        assert_eq!(
            c.insert(&key(10), same_bucket(10), hop(10), T0 + 400_000, SYN),
            InsertOutcome::Inserted
        );
        assert_eq!(c.counters().expired, 1);
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
                u64::from(i) * 0x9e37_79b9,
                hop(u32::from(i % 3)),
                T0,
                flags,
            );
        }
        let mut seen = HashSet::new();
        c.for_each(T0 + 1, |k, _| {
            seen.insert(*k);
        });
        assert_eq!(seen.len(), 50);
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
    const KEYS: u16 = 24;

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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn cache_agrees_with_a_model(ops in proptest::collection::vec(op(), 1..300)) {
            let mut c = FlowCache::new(FlowCacheConfig {
                capacity: 8,
                idle_timeout_ms: TEST_TIMEOUTS.established,
                embryonic_timeout_ms: TEST_TIMEOUTS.embryonic,
                fin_timeout_ms: TEST_TIMEOUTS.closing,
            }).unwrap();
            let hasher = FlowHasher::new(42, &DEFAULT_RSS_KEY);
            let keys: Vec<FlowKey> = (0..KEYS).map(key).collect();
            let hashes: Vec<u64> = keys.iter().map(|k| hasher.cache_hash(k)).collect();
            let mask = c.capacity() / WAYS - 1;
            let bucket = |k: u16| (hashes[usize::from(k)] as usize) & mask;
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
                        // The other live flows of the bucket, per the model.
                        let neighbours: Vec<(u16, Model)> = (0..KEYS)
                            .filter(|&o| o != k && bucket(o) == bucket(k))
                            .filter_map(|o| live(&model, o, now).map(|m| (o, m)))
                            .collect();
                        let outcome = c.insert(&keys[kk], hashes[kk], value, now, flags);
                        let gone: Vec<(u16, Model)> = neighbours
                            .iter()
                            .filter(|(o, _)| c.peek(&keys[usize::from(*o)], hashes[usize::from(*o)], now).is_none())
                            .copied()
                            .collect();
                        let fresh = FlowState::initial(flags);
                        match outcome {
                            InsertOutcome::Replaced => {
                                let b = before.expect("replaced a key the model does not hold");
                                prop_assert!(gone.is_empty());
                                let state = b.state.after(flags);
                                model.insert(k, Model { value, state, last_used: now, expiry: now + TEST_TIMEOUTS.of(state) });
                            }
                            InsertOutcome::Inserted | InsertOutcome::Evicted => {
                                prop_assert!(before.is_none(), "live key inserted twice");
                                if outcome == InsertOutcome::Evicted {
                                    // Exactly one live neighbour went, the least recently used
                                    // of those the new flow may evict.
                                    prop_assert_eq!(gone.len(), 1);
                                    let (victim, vm) = gone[0];
                                    let eligible = |m: &Model| fresh != FlowState::Embryonic || m.state == FlowState::Embryonic;
                                    prop_assert!(eligible(&vm), "embryonic evicted a non-embryonic flow");
                                    prop_assert!(neighbours.iter().filter(|(_, m)| eligible(m)).all(|(_, m)| m.last_used >= vm.last_used));
                                    model.remove(&victim);
                                } else {
                                    prop_assert!(gone.is_empty());
                                }
                                model.insert(k, Model { value, state: fresh, last_used: now, expiry: now + TEST_TIMEOUTS.of(fresh) });
                            }
                            InsertOutcome::NotCached => {
                                prop_assert!(before.is_none());
                                prop_assert!(gone.is_empty());
                                prop_assert_eq!(fresh, FlowState::Embryonic, "only embryonic flows go uncached");
                                prop_assert!(neighbours.len() == WAYS && neighbours.iter().all(|(_, m)| m.state != FlowState::Embryonic));
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
                                model.insert(k, Model { state, last_used: now, expiry: now + TEST_TIMEOUTS.of(state), ..m });
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
                    let i = keys.iter().position(|x| x == k).unwrap();
                    prop_assert_eq!(*b, bucket(i as u16), "entry in the wrong bucket");
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
}
