//! The per-worker flow cache: which hop each recent flow was sent to.
//!
//! Layout: two-choice bucketized cuckoo hashing. A bucket is one 64-byte cache line of [`WAYS`]
//! 32-byte slots; each slot holds the whole flow: the exact key in compact form, the cached hop
//! and the expiry. Every key has two candidate buckets taken from independent bits of its 64-bit
//! hash (bits 0.. and 32..), so a lookup reads exactly two lines known from the hash alone,
//! which [`FlowCache::prefetch`] requests in stage one of the burst: an IPv4 hit costs no
//! dependent cache miss. (Four-slot, two-line buckets hold more at 0.9 load but double the lines
//! per packet; at 1M flows that measured slower.)
//!
//! Keys: an outer IPv4 key (addresses with zero padding, group 0) is stored inline (13 bytes).
//! Any other key (IPv6, an IPv4 key with stray padding bytes, or a policy key, which names its
//! group) is stored "wide": the slot holds the XOR fold of each address (a 32-bit filter) and a
//! parallel 32-byte extension record holds the other three words of each address and the key's
//! group, from which the full key is exact and recoverable. A wide hit therefore reads one more
//! line, after the inline filter matched. The extension record also holds `b1 ^ b2`, which lets
//! an entry be moved to its other bucket without its hash.
//!
//! Cost: 32 bytes of slot plus 32 of extension = 64 bytes per flow whatever its version
//! (const-asserted); IPv4 lookups touch the two prefetched lines only, IPv6 hits one more.
//!
//! Placement: an insert goes to the candidate with fewer live entries that has a free or expired
//! slot; when both are full, a breadth-first search of at most [`MAX_MOVES`] moves looks for an
//! entry that can move to its own other bucket (an entry never leaves its two candidates); only
//! then is the least recently used eligible entry of the two buckets evicted. Up to load 0.8
//! this holds every flow (tested); at 0.9, near the (2, 2) cuckoo threshold of 0.897, about one
//! in a hundred is not held.
//!
//! Invariants:
//! - Owned by one worker and never shared, so no atomics or locks; the struct is cache-aligned.
//! - Everything is allocated in [`FlowCache::new`]; lookups, inserts, moves, evictions, updates
//!   and removals never allocate, never fail the packet and never panic (bucket indices are
//!   masked by `buckets - 1`, slot indices are below [`WAYS`]).
//! - At most one entry per key (live or expired), and it is in one of the key's two candidate
//!   buckets: insert finds the key's own entry in either candidate before placing it anywhere.
//! - `len()` (occupied entries, including expired ones not yet reclaimed) never exceeds
//!   `capacity()`. An expired entry is never returned; it is reclaimed when its key is looked up
//!   or when an insert or a move needs the slot.
//! - Embryonic flows (TCP SYN without ACK) take free, expired or embryonic slots only (moving
//!   other entries is allowed, evicting them is not): a SYN flood cannot push established flows
//!   out. Other flows may evict the least recently used live entry of their two buckets, and
//!   that is reported and counted.
//! - Timeouts by state: embryonic (SYN only), established (idle), closing (after FIN or RST).
//!   Every hit refreshes the expiry with the timeout of the flow's new state, counted from the
//!   current time rounded up to a grain (the largest power of two of milliseconds at most a
//!   sixteenth of the shortest timeout, 256 ms with the defaults): a flow lives between its
//!   timeout and its timeout plus one grain after its last packet, and a hit within the same
//!   grain finds its expiry unchanged and writes nothing, so a busy flow's line stays clean.
//! - The timeouts can change while flows are cached ([`FlowCache::set_timeouts`], a config
//!   reload): an entry keeps the expiry its last packet gave it, and its next packet sets the
//!   expiry from the new timeouts. A shortened timeout therefore reaches an idle flow at most the
//!   old timeout later, a lengthened one never revives an expired flow, and the cache never
//!   walks its entries to apply a change. (Eviction picks the least recently used entry from
//!   `expiry - timeout`; for entries touched before a change that estimate is off by the change,
//!   which only reorders eviction candidates.)
//! - Time is kept in milliseconds relative to the first `now_ms` the cache sees, in 40 bits
//!   (about 34 years); a clock beyond that makes every entry look expired (misses, never stale
//!   hits). `now_ms` must not go backwards by more than the timeouts for expiry to be exact.
//! - A group id is stored in 24 bits: every id a FIB returns is at most
//!   [`MAX_GROUP_ID`] (const-asserted to fit); a larger one is never cached.

use ecmp_mem::{HugeArray, Placement};
use ecmp_tables::fib::MAX_GROUP_ID;
use ecmp_tables::nexthop::{GroupId, HopId};
use ecmp_wire::meta::IpVersion;

use crate::flow::{FlowKey, OuterV4};

/// Slots per bucket (a bucket is one cache line).
pub const WAYS: usize = 2;

/// Cache lines an IPv4 lookup reads: every line of both candidate buckets, all prefetched in
/// stage one. The memory floor bench reads this many random lines per packet.
pub const LINES_PER_LOOKUP: usize = 2 * size_of::<Bucket>() / 64;

/// Largest supported capacity (flows per worker); 64 bytes each.
pub const MAX_CAPACITY: usize = 1 << 26;

/// Largest accepted timeout (about 49 days).
pub const MAX_TIMEOUT_MS: u64 = 1 << 32;

/// Default lifetime of an established flow after its last packet.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;

/// Default lifetime of a flow that has only sent SYNs.
pub const DEFAULT_EMBRYONIC_TIMEOUT_MS: u64 = 5_000;

/// Default lifetime of a flow after a FIN or RST.
pub const DEFAULT_FIN_TIMEOUT_MS: u64 = 10_000;

/// Longest chain of entry moves an insert tries before it evicts (searched breadth-first).
pub const MAX_MOVES: usize = 4;

/// Nodes of the move search: `2 * WAYS` roots, `WAYS` children per node, `MAX_MOVES` levels.
const SEARCH_NODES: usize = {
    let mut total = 0;
    let mut level = 2 * WAYS;
    let mut d = 0;
    while d < MAX_MOVES {
        total += level;
        level *= WAYS;
        d += 1;
    }
    total
};
const NO_PARENT: u16 = u16::MAX;
const _: () = assert!(SEARCH_NODES < NO_PARENT as usize);

/// TCP flag bits, as in [`ecmp_wire::meta::PacketMeta::tcp_flags`].
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// Bits of relative time an entry can hold.
const TIME_BITS: u32 = 40;
const TIME_MAX: u64 = (1 << TIME_BITS) - 1;

/// Slot tag bits: the state (0 = free), then the key format.
const STATE_MASK: u8 = 0b0011;
/// The key is stored as address folds plus the extension record.
const WIDE: u8 = 0b0100;
/// A wide key's version is IPv6.
const WIDE_V6: u8 = 0b1000;
const FORMAT_MASK: u8 = WIDE | WIDE_V6;
/// The tag of a free slot: a format no key has (`WIDE_V6` without `WIDE`), so that the key
/// comparison alone rejects free slots.
const FREE_TAG: u8 = WIDE_V6;

/// Bits of a slot's `group_exp` word that hold the group id (the rest holds expiry bits).
const GROUP_BITS: u32 = 24;
const GROUP_MASK: u32 = (1 << GROUP_BITS) - 1;
const _: () = assert!(MAX_GROUP_ID <= GROUP_MASK);

/// The bits of a slot's `meta` word that belong to the key: protocol and key format.
const META_KEY_MASK: u32 = 0xff | ((FORMAT_MASK as u32) << 8);

/// Where a flow was sent: the group of its route, the member index within the group and the hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CachedHop {
    /// The group the flow's route resolved to (at most [`MAX_GROUP_ID`] to be cached).
    pub group: GroupId,
    /// The member slot of the hop within the group.
    pub member: u16,
    /// The next hop the flow is pinned to.
    pub hop: HopId,
    /// Opaque tag of the tables the hop was chosen from; stored and returned unchanged.
    pub epoch: u32,
}

/// The timeouts of a flow cache: what [`FlowCache::set_timeouts`] changes while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// Lifetime of an established flow after its last packet.
    pub idle_timeout_ms: u64,
    /// Lifetime of a flow that has only sent SYNs (no ACK yet).
    pub embryonic_timeout_ms: u64,
    /// Lifetime of a flow after a FIN or RST.
    pub fin_timeout_ms: u64,
}

impl FlowTimeouts {
    /// Checks that every timeout is in `1..=`[`MAX_TIMEOUT_MS`].
    pub fn check(&self) -> Result<(), FlowCacheError> {
        for (name, value_ms) in [
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("embryonic_timeout_ms", self.embryonic_timeout_ms),
            ("fin_timeout_ms", self.fin_timeout_ms),
        ] {
            if value_ms == 0 || value_ms > MAX_TIMEOUT_MS {
                return Err(FlowCacheError::InvalidTimeout { name, value_ms });
            }
        }
        Ok(())
    }

    /// The expiry grain in milliseconds: the largest power of two at most a sixteenth of the
    /// shortest timeout (at least 1).
    fn grain(&self) -> u64 {
        let shortest = self
            .idle_timeout_ms
            .min(self.embryonic_timeout_ms)
            .min(self.fin_timeout_ms);
        let sixteenth = (shortest / 16).max(1);
        1 << sixteenth.ilog2()
    }
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

impl FlowCacheConfig {
    /// The timeouts alone.
    pub fn timeouts(&self) -> FlowTimeouts {
        FlowTimeouts {
            idle_timeout_ms: self.idle_timeout_ms,
            embryonic_timeout_ms: self.embryonic_timeout_ms,
            fin_timeout_ms: self.fin_timeout_ms,
        }
    }
}

impl Default for FlowCacheConfig {
    /// 2^18 flows (16 MiB), 300 s idle, 5 s embryonic, 10 s after FIN/RST.
    fn default() -> Self {
        Self {
            capacity: 1 << 18,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            embryonic_timeout_ms: DEFAULT_EMBRYONIC_TIMEOUT_MS,
            fin_timeout_ms: DEFAULT_FIN_TIMEOUT_MS,
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
    /// Stored in a free or expired slot (possibly after moving other entries to their other
    /// bucket).
    Inserted,
    /// The key was cached already: its hop was replaced and its expiry refreshed.
    Replaced,
    /// Stored by evicting the least recently used live entry of the two buckets.
    Evicted,
    /// Not stored: the flow is embryonic and its buckets hold only live non-embryonic flows
    /// that cannot move, or the group id exceeds [`MAX_GROUP_ID`]. The packet is still
    /// forwarded; the flow is looked up again on its next packet.
    NotCached,
}

/// Event counters of the flow cache's slow paths. Hits and misses are not counted here: the
/// pipeline counts them per burst (`cache_hits`, `cache_misses`), so a lookup writes nothing but
/// the entry it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowCacheCounters {
    /// Inserts that stored a new flow (including those that evicted one).
    pub inserts: u64,
    /// Live flows evicted to make room.
    pub evictions: u64,
    /// Inserts that stored nothing (see [`InsertOutcome::NotCached`]).
    pub not_cached: u64,
    /// Expired entries reclaimed.
    pub expired: u64,
    /// Entries moved to their other bucket to make room.
    pub moves: u64,
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

impl From<FlowTimeouts> for Timeouts {
    fn from(t: FlowTimeouts) -> Self {
        Self {
            embryonic: t.embryonic_timeout_ms,
            established: t.idle_timeout_ms,
            closing: t.fin_timeout_ms,
        }
    }
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

/// A key in slot form: what a slot's inline fields must equal, plus the extension words of a
/// wide key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
struct Probe {
    /// IPv4 source address, or the XOR of the four words of a wide source address.
    src: u32,
    /// Same for the destination.
    dst: u32,
    /// Source port (low half) and destination port (high half).
    ports: u32,
    /// The protocol (bits 0..8) and the key format (bits 8..16: 0 for inline IPv4, `WIDE` or
    /// `WIDE | WIDE_V6`), placed as in a slot's `meta` word.
    meta: u32,
    /// Words 1..4 of the source then of the destination address, then the key's group (all
    /// zero for inline keys).
    words: [u32; 7],
}

/// The four native-order words of an address.
#[inline(always)]
fn words(addr: &[u8; 16]) -> [u32; 4] {
    let w = u128::from_le_bytes(*addr);
    [
        w as u32,
        (w >> 32) as u32,
        (w >> 64) as u32,
        (w >> 96) as u32,
    ]
}

/// Inverse of [`words`].
#[inline(always)]
fn address(w: [u32; 4]) -> [u8; 16] {
    let v = u128::from(w[0])
        | (u128::from(w[1]) << 32)
        | (u128::from(w[2]) << 64)
        | (u128::from(w[3]) << 96);
    v.to_le_bytes()
}

impl Probe {
    #[inline(always)]
    fn of(key: &FlowKey) -> Self {
        let ports = u32::from(key.src_port) | (u32::from(key.dst_port) << 16);
        let (sw, dw) = (u128::from_le_bytes(key.src), u128::from_le_bytes(key.dst));
        // Two wide tests instead of six words: the inline form needs zero padding (and no group)
        // only.
        if key.version == IpVersion::V4 && (sw >> 32) | (dw >> 32) | u128::from(key.group) == 0 {
            return Self {
                src: sw as u32,
                dst: dw as u32,
                ports,
                meta: u32::from(key.protocol),
                words: [0; 7],
            };
        }
        let (s, d) = (words(&key.src), words(&key.dst));
        Self {
            src: s[0] ^ s[1] ^ s[2] ^ s[3],
            dst: d[0] ^ d[1] ^ d[2] ^ d[3],
            ports,
            meta: u32::from(key.protocol)
                | (u32::from(match key.version {
                    IpVersion::V4 => WIDE,
                    IpVersion::V6 => WIDE | WIDE_V6,
                }) << 8),
            words: [s[1], s[2], s[3], d[1], d[2], d[3], key.group],
        }
    }

    #[inline(always)]
    fn is_wide(&self) -> bool {
        self.meta & (u32::from(WIDE) << 8) != 0
    }

    /// The inline key fields as one integer, laid out as [`Slot::key_bits`].
    #[inline(always)]
    fn key_bits(&self) -> u128 {
        key_bits(self.src, self.dst, self.ports, self.meta)
    }
}

/// Four contiguous `u32` fields of a `repr(C)` struct as one integer, in memory order (on a
/// little-endian machine one 16-byte load).
#[inline(always)]
fn key_bits(src: u32, dst: u32, ports: u32, meta: u32) -> u128 {
    u128::from(src) | (u128::from(dst) << 32) | (u128::from(ports) << 64) | (u128::from(meta) << 96)
}

/// The bits of [`Slot::key_bits`] that belong to the key (all but the tag's state bits and the
/// member index in `meta`).
const KEY_BITS_MASK: u128 = !(((!META_KEY_MASK) as u128) << 96);

/// A key prepared for one cache by [`FlowCache::probe`]: the key in slot form and its two
/// candidate buckets. Derived once per packet (stage one of a burst) and then handed to
/// [`FlowCache::prefetch_at`], [`FlowCache::lookup_at`], [`FlowCache::insert_at`] and
/// [`FlowCache::update_at`], which derive nothing again.
///
/// A probe is for the cache that made it, from the key's own cache hash. Handed to another
/// cache it cannot make that cache panic (bucket indices are masked again on use), but that
/// cache may miss the key or hold it in buckets the hash-based methods do not look in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheProbe {
    key: Probe,
    b1: u32,
    b2: u32,
}

// Bucket indices of the largest cache fit the probe's 32-bit fields.
const _: () = assert!(MAX_CAPACITY / WAYS <= u32::MAX as usize);

/// One cached flow: 32 bytes, two per cache line. The key is the first 16 bytes: addresses,
/// ports and `meta` = protocol (bits 0..8) | tag (bits 8..16: state, key format) | member
/// (bits 16..32). `group_exp` holds the group id (bits 0..24) and expiry bits 32..40 (bits
/// 24..32); `expiry_lo` the low 32 bits of the expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Slot {
    src: u32,
    dst: u32,
    ports: u32,
    meta: u32,
    hop: u32,
    epoch: u32,
    expiry_lo: u32,
    group_exp: u32,
}

/// The rest of a wide key (address words, group), and the XOR of the entry's two candidate
/// buckets (so that the entry can move to its other bucket). Parallel to the slots, one per slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(32))]
struct Ext {
    words: [u32; 7],
    alt: u32,
}

/// One bucket: two cache lines of slots.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    slots: [Slot; WAYS],
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        slots: [Slot::FREE; WAYS],
    };
}

const _: () = assert!(size_of::<Slot>() == 32);
const _: () = assert!(size_of::<Ext>() == 32 && align_of::<Ext>() == 32);
const _: () = assert!(size_of::<Bucket>() == 64 && align_of::<Bucket>() == 64);
/// Slots per cache line: `prefetch` requests the line of every `SLOTS_PER_LINE`-th slot.
const SLOTS_PER_LINE: usize = 64 / size_of::<Slot>();
const _: () = assert!(SLOTS_PER_LINE * size_of::<Slot>() == 64);
/// The memory budget: at most 64 bytes per flow, slot plus extension.
const _: () = assert!(size_of::<Slot>() + size_of::<Ext>() <= 64);

impl Slot {
    const FREE: Slot = Slot {
        src: 0,
        dst: 0,
        ports: 0,
        meta: (FREE_TAG as u32) << 8,
        hop: 0,
        epoch: 0,
        expiry_lo: 0,
        group_exp: 0,
    };

    #[inline(always)]
    fn tag(&self) -> u8 {
        (self.meta >> 8) as u8
    }

    #[inline(always)]
    fn set_tag(&mut self, tag: u8) {
        self.meta = (self.meta & !0xff00) | (u32::from(tag) << 8);
    }

    #[inline(always)]
    fn is_free(&self) -> bool {
        self.tag() & STATE_MASK == 0
    }

    /// Equal to `p` in every inline key field (for a wide key the extension words remain to
    /// be compared). Never true of a free slot: its format is one no probe has.
    #[inline(always)]
    fn holds(&self, p: &Probe) -> bool {
        // One comparison of the first 16 bytes as one integer (contiguous fields of both
        // `repr(C)` structs), which compiles to a single vector compare.
        (self.key_bits() ^ p.key_bits()) & KEY_BITS_MASK == 0
    }

    /// The first 16 bytes (addresses, ports, `meta`) as one integer.
    #[inline(always)]
    fn key_bits(&self) -> u128 {
        key_bits(self.src, self.dst, self.ports, self.meta)
    }

    /// State of an occupied slot.
    #[inline(always)]
    fn state(&self) -> FlowState {
        match self.tag() & STATE_MASK {
            1 => FlowState::Embryonic,
            2 => FlowState::Established,
            _ => FlowState::Closing,
        }
    }

    #[inline(always)]
    fn expiry(&self) -> u64 {
        u64::from(self.expiry_lo) | (u64::from(self.group_exp >> GROUP_BITS) << 32)
    }

    /// Occupied and not expired at `now`.
    #[inline(always)]
    fn is_live(&self, now: u64) -> bool {
        !self.is_free() && self.expiry() > now
    }

    /// When the flow was last touched: every touch set expiry = now + timeout(state).
    #[inline(always)]
    fn last_used(&self, timeouts: &Timeouts) -> u64 {
        self.expiry().saturating_sub(timeouts.of(self.state()))
    }

    #[inline(always)]
    fn hop(&self) -> CachedHop {
        CachedHop {
            group: self.group_exp & GROUP_MASK,
            member: (self.meta >> 16) as u16,
            hop: self.hop,
            epoch: self.epoch,
        }
    }

    /// Stores `value`; the caller checked that its group fits in [`GROUP_BITS`].
    #[inline(always)]
    fn set_hop(&mut self, value: CachedHop) {
        self.group_exp = (self.group_exp & !GROUP_MASK) | (value.group & GROUP_MASK);
        self.meta = (self.meta & 0xffff) | (u32::from(value.member) << 16);
        self.hop = value.hop;
        self.epoch = value.epoch;
    }

    /// Sets state and expiry (`now + timeout(state)`, saturating at the 40-bit limit).
    #[inline(always)]
    fn touch(&mut self, state: FlowState, now: u64, timeouts: &Timeouts) {
        self.set_expiry(now.saturating_add(timeouts.of(state)).min(TIME_MAX));
        self.set_tag((self.tag() & FORMAT_MASK) | state as u8);
    }

    #[inline(always)]
    fn set_expiry(&mut self, expiry: u64) {
        self.expiry_lo = expiry as u32;
        self.group_exp = (self.group_exp & GROUP_MASK) | (((expiry >> 32) as u32) << GROUP_BITS);
    }

    /// [`Self::touch`] for a flow that stays in its state, given its new `expiry`: written
    /// only when it changes, so that a flow hit again within the same millisecond leaves its
    /// cache line clean.
    #[inline(always)]
    fn refresh(&mut self, expiry: u64) {
        if expiry != self.expiry() {
            self.set_expiry(expiry);
        }
    }

    /// A fresh slot for the key `p`.
    #[inline(always)]
    fn new(p: &Probe, value: CachedHop, state: FlowState, now: u64, timeouts: &Timeouts) -> Self {
        let mut s = Slot {
            src: p.src,
            dst: p.dst,
            ports: p.ports,
            meta: p.meta,
            ..Slot::FREE
        };
        s.set_hop(value);
        s.touch(state, now, timeouts);
        s
    }

    /// The full key of an occupied slot whose extension record is `ext`.
    fn key(&self, ext: &Ext) -> FlowKey {
        let tag = self.tag();
        let (src, dst, version, group) = if tag & WIDE == 0 {
            (
                address([self.src, 0, 0, 0]),
                address([self.dst, 0, 0, 0]),
                IpVersion::V4,
                0,
            )
        } else {
            let w = &ext.words;
            (
                address([self.src ^ w[0] ^ w[1] ^ w[2], w[0], w[1], w[2]]),
                address([self.dst ^ w[3] ^ w[4] ^ w[5], w[3], w[4], w[5]]),
                if tag & WIDE_V6 != 0 {
                    IpVersion::V6
                } else {
                    IpVersion::V4
                },
                w[6],
            )
        };
        FlowKey {
            src,
            dst,
            src_port: self.ports as u16,
            dst_port: (self.ports >> 16) as u16,
            protocol: self.meta as u8,
            version,
            group,
        }
    }
}

/// A live entry found by [`FlowCache::lookup_entry`] (already refreshed), read in place.
#[derive(Debug, Clone, Copy)]
pub struct CachedEntry<'a>(&'a Slot);

impl CachedEntry<'_> {
    /// The cached next hop ([`CachedHop::hop`]).
    #[inline(always)]
    pub fn hop(&self) -> HopId {
        self.0.hop
    }

    /// The epoch the entry was stamped with ([`CachedHop::epoch`]).
    #[inline(always)]
    pub fn epoch(&self) -> u32 {
        self.0.epoch
    }

    /// The whole entry.
    #[inline(always)]
    pub fn get(&self) -> CachedHop {
        self.0.hop()
    }
}

/// A slot's position: `bucket * WAYS + way`, which also indexes the extension records.
type At = usize;

/// A per-worker flow cache. See the module doc for layout and invariants.
#[repr(C, align(64))]
pub struct FlowCache {
    buckets: HugeArray<Bucket>,
    ext: HugeArray<Ext>,
    mask: usize,
    origin: u64,
    /// The last `now_ms` the clock was read at (valid once `started`), its relative time and
    /// the expiry an established flow hit then gets: a burst reads the same millisecond for
    /// every packet, so these are worked out once per millisecond, not per packet.
    tick_ms: u64,
    tick_now: u64,
    /// `tick_now` rounded up to the grain: what expiries are counted from (module doc).
    tick_base: u64,
    tick_established: u64,
    /// The grain minus one (a power of two minus one).
    grain_mask: u64,
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
        let timeouts = config.timeouts();
        timeouts.check()?;
        let capacity = config.capacity.max(WAYS).next_power_of_two();
        let buckets = capacity / WAYS;
        Ok(Self {
            // Written here, so built on the worker's pinned thread the pages are its node's.
            buckets: HugeArray::filled("flow cache buckets", buckets, Bucket::EMPTY),
            ext: HugeArray::filled("flow cache ext", capacity, Ext::default()),
            mask: buckets - 1,
            origin: 0,
            tick_ms: 0,
            tick_now: 0,
            tick_base: 0,
            tick_established: 0,
            grain_mask: timeouts.grain() - 1,
            timeouts: Timeouts::from(timeouts),
            counters: FlowCacheCounters::default(),
            len: 0,
            started: false,
        })
    }

    /// Where the buckets and extension records live, to read back how the kernel backs them.
    pub fn memory(&self) -> [Placement; 2] {
        [self.buckets.placement(), self.ext.placement()]
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> FlowTimeouts {
        FlowTimeouts {
            idle_timeout_ms: self.timeouts.established,
            embryonic_timeout_ms: self.timeouts.embryonic,
            fin_timeout_ms: self.timeouts.closing,
        }
    }

    /// Changes the timeouts (and with them the expiry grain) from now on; cached entries keep
    /// their expiry until their next packet (module doc). Refused, changing nothing, when a
    /// timeout is out of range.
    pub fn set_timeouts(&mut self, timeouts: FlowTimeouts) -> Result<(), FlowCacheError> {
        timeouts.check()?;
        self.timeouts = Timeouts::from(timeouts);
        self.grain_mask = timeouts.grain() - 1;
        if self.started {
            // The current tick's base and established expiry were worked out with the old values.
            self.new_tick(self.tick_ms);
        }
        Ok(())
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

    /// The two candidate buckets of `hash`, from independent bits; distinct whenever there
    /// are at least two buckets.
    #[inline(always)]
    fn candidates(&self, hash: u64) -> (usize, usize) {
        let b1 = (hash as usize) & self.mask;
        let b2 = ((hash >> 32) as usize) & self.mask;
        let b2 = if b2 == b1 { (b1 ^ 1) & self.mask } else { b2 };
        (b1, b2)
    }

    #[inline(always)]
    fn slot(&self, at: At) -> &Slot {
        &self.buckets[at / WAYS].slots[at % WAYS]
    }

    #[inline(always)]
    fn slot_mut(&mut self, at: At) -> &mut Slot {
        &mut self.buckets[at / WAYS].slots[at % WAYS]
    }

    /// Relative time; the first call fixes the origin.
    #[inline(always)]
    fn clock(&mut self, now_ms: u64) -> u64 {
        if self.started && now_ms == self.tick_ms {
            return self.tick_now;
        }
        self.new_tick(now_ms)
    }

    /// [`Self::clock`] at a millisecond other than the last one.
    #[inline(never)]
    fn new_tick(&mut self, now_ms: u64) -> u64 {
        if !self.started {
            self.started = true;
            self.origin = now_ms;
        }
        let now = now_ms.saturating_sub(self.origin).min(TIME_MAX);
        self.tick_ms = now_ms;
        self.tick_now = now;
        self.tick_base = (now.saturating_add(self.grain_mask) & !self.grain_mask).min(TIME_MAX);
        self.tick_established = self
            .tick_base
            .saturating_add(self.timeouts.established)
            .min(TIME_MAX);
        now
    }

    /// Relative time without fixing the origin (before the first call nothing is cached).
    #[inline(always)]
    fn peek_clock(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.origin).min(TIME_MAX)
    }

    /// Prepares `key`, whose cache hash is `hash`, for the `*_at` methods of this cache.
    #[inline(always)]
    pub fn probe(&self, key: &FlowKey, hash: u64) -> CacheProbe {
        let (b1, b2) = self.candidates(hash);
        CacheProbe {
            key: Probe::of(key),
            // Below `buckets`, which fits (const-asserted next to `CacheProbe`).
            b1: b1 as u32,
            b2: b2 as u32,
        }
    }

    /// [`Self::probe`] of an IPv4 outer key from its natural width (the same probe), with
    /// `hash` = [`crate::hash::FlowHasher::cache_hash_v4`] of it.
    #[inline(always)]
    pub fn probe_v4(&self, key: &OuterV4, hash: u64) -> CacheProbe {
        let (b1, b2) = self.candidates(hash);
        CacheProbe {
            key: Probe {
                src: u32::from_le_bytes(key.src),
                dst: u32::from_le_bytes(key.dst),
                ports: u32::from(key.src_port) | (u32::from(key.dst_port) << 16),
                meta: u32::from(key.protocol),
                words: [0; 7],
            },
            b1: b1 as u32,
            b2: b2 as u32,
        }
    }

    /// Reads the clock for the lookups that follow ([`Self::lookup_ticked`]): once per burst,
    /// since every packet of a burst is looked up at the same millisecond.
    #[inline(always)]
    pub fn tick(&mut self, now_ms: u64) {
        self.clock(now_ms);
    }

    /// The probe's candidate buckets, masked to this cache.
    #[inline(always)]
    fn buckets_of(&self, p: &CacheProbe) -> (usize, usize) {
        (p.b1 as usize & self.mask, p.b2 as usize & self.mask)
    }

    /// Starts loading every line a lookup of `hash` reads (both lines of both candidate
    /// buckets), so that the lookup a stage later does not stall on them.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        let (b1, b2) = self.candidates(hash);
        self.prefetch_buckets(b1, b2);
    }

    /// [`Self::prefetch`] of a prepared key.
    #[inline(always)]
    pub fn prefetch_at(&self, probe: &CacheProbe) {
        // A hint only, and the probe's buckets are in range for the cache that made it: no
        // bounds check (a probe of another cache only wastes the hint).
        let base = self.buckets.as_ptr();
        for b in [probe.b1, probe.b2] {
            let bucket = base.wrapping_add(b as usize);
            for line in 0..size_of::<Bucket>() / 64 {
                ecmp_port::hint::prefetch_ptr(bucket.cast::<[u8; 64]>().wrapping_add(line));
            }
        }
    }

    #[inline(always)]
    fn prefetch_buckets(&self, b1: usize, b2: usize) {
        for b in [b1, b2] {
            if let Some(bucket) = self.buckets.get(b) {
                for line in bucket.slots.iter().step_by(SLOTS_PER_LINE) {
                    ecmp_port::hint::prefetch(line);
                }
            }
        }
    }

    /// The slot holding `p`'s key (live or expired) in bucket `b1` or `b2`.
    #[inline(always)]
    fn find(&self, p: &Probe, b1: usize, b2: usize) -> Option<At> {
        self.find_way(p, b1, b2).map(|(b, way)| b * WAYS + way)
    }

    /// [`Self::find`] as bucket and way.
    #[inline(always)]
    fn find_way(&self, p: &Probe, b1: usize, b2: usize) -> Option<(usize, usize)> {
        for b in [b1, b2] {
            for (way, s) in self.buckets[b].slots.iter().enumerate() {
                if s.holds(p) && (!p.is_wide() || self.ext[b * WAYS + way].words == p.words) {
                    return Some((b, way));
                }
            }
        }
        None
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
        let probe = self.probe(key, hash);
        self.lookup_at(&probe, now_ms, tcp_flags)
    }

    /// [`Self::lookup`] of a prepared key.
    #[inline(always)]
    pub fn lookup_at(
        &mut self,
        probe: &CacheProbe,
        now_ms: u64,
        tcp_flags: u8,
    ) -> Option<CachedHop> {
        self.clock(now_ms);
        self.lookup_ticked(probe, tcp_flags)
    }

    /// [`Self::lookup_at`] at the millisecond of the last [`Self::tick`] (or other call that
    /// took a time).
    #[inline(always)]
    pub fn lookup_ticked(&mut self, probe: &CacheProbe, tcp_flags: u8) -> Option<CachedHop> {
        self.lookup_entry(probe, tcp_flags).map(|e| e.get())
    }

    /// [`Self::lookup_ticked`], the entry found given by reference: what the pipeline calls for
    /// each packet of a burst after one `tick`. A hit under the current tables reads only the
    /// hop and the epoch of the entry ([`CachedEntry::hop`], [`CachedEntry::epoch`]), so the
    /// rest of it is unpacked only when needed.
    #[inline(always)]
    pub fn lookup_entry(&mut self, probe: &CacheProbe, tcp_flags: u8) -> Option<CachedEntry<'_>> {
        let now = self.tick_now;
        let (b1, b2) = self.buckets_of(probe);
        let (b, way) = self.find_way(&probe.key, b1, b2)?;
        let (established, base) = (self.tick_established, self.tick_base);
        // Disjoint fields: the slot is written while the timeouts are read in place.
        let (buckets, timeouts) = (&mut self.buckets, &self.timeouts);
        let s = &mut buckets[b].slots[way];
        if s.expiry() > now {
            let tag = s.tag();
            // An established flow stays established on any packet without SYN, FIN or RST
            // (every non-TCP packet, every plain ACK): no state decision on that path.
            if tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST) == 0
                && tag & STATE_MASK == FlowState::Established as u8
            {
                s.refresh(established);
            } else {
                s.touch(s.state().after(tcp_flags), base, timeouts);
            }
            return Some(CachedEntry(s));
        }
        *s = Slot::FREE;
        self.len -= 1;
        self.counters.expired += 1;
        None
    }

    /// The cached hop of `key` if cached and live at `now_ms`, changing nothing (no refresh, no
    /// counters): for inspection, not for the packet path.
    pub fn peek(&self, key: &FlowKey, hash: u64, now_ms: u64) -> Option<CachedHop> {
        if !self.started {
            return None;
        }
        let now = self.peek_clock(now_ms);
        let p = Probe::of(key);
        let (b1, b2) = self.candidates(hash);
        self.find(&p, b1, b2)
            .map(|at| self.slot(at))
            .filter(|s| s.expiry() > now)
            .map(Slot::hop)
    }

    /// Caches `value` for `key` (cache hash `hash`), first seen at `now_ms` with `tcp_flags`.
    ///
    /// Never fails the packet: when there is no room it reports [`InsertOutcome::NotCached`].
    /// Slot choice: the key's own entry (live: [`InsertOutcome::Replaced`]; expired: reused),
    /// else a free (or else expired) slot of the candidate bucket with fewer live entries, else
    /// a slot freed by moving up to [`MAX_MOVES`] entries to their other bucket, else the least
    /// recently used live entry of both buckets that the new flow may evict (an embryonic flow
    /// may evict only embryonic ones).
    pub fn insert(
        &mut self,
        key: &FlowKey,
        hash: u64,
        value: CachedHop,
        now_ms: u64,
        tcp_flags: u8,
    ) -> InsertOutcome {
        let probe = self.probe(key, hash);
        self.insert_at(&probe, value, now_ms, tcp_flags)
    }

    /// [`Self::insert`] of a prepared key.
    pub fn insert_at(
        &mut self,
        probe: &CacheProbe,
        value: CachedHop,
        now_ms: u64,
        tcp_flags: u8,
    ) -> InsertOutcome {
        let now = self.clock(now_ms);
        let base = self.tick_base;
        if value.group > GROUP_MASK {
            self.counters.not_cached += 1;
            return InsertOutcome::NotCached;
        }
        let p = &probe.key;
        let (b1, b2) = self.buckets_of(probe);
        let timeouts = self.timeouts;
        let fresh = FlowState::initial(tcp_flags);

        if let Some(at) = self.find(p, b1, b2) {
            let s = self.slot_mut(at);
            if s.expiry() > now {
                let state = s.state().after(tcp_flags);
                s.set_hop(value);
                s.touch(state, base, &timeouts);
                return InsertOutcome::Replaced;
            }
            // The key's own expired entry: reuse it in place (no duplicate can exist).
            *s = Slot::new(p, value, fresh, base, &timeouts);
            self.counters.expired += 1;
            self.counters.inserts += 1;
            return InsertOutcome::Inserted;
        }

        let (slot, outcome) = if let Some(at) = self.roomiest(b1, b2, now) {
            (at, InsertOutcome::Inserted)
        } else if let Some(at) = self.make_room(b1, b2, now) {
            (at, InsertOutcome::Inserted)
        } else if let Some(at) = self.victim(b1, b2, fresh) {
            self.counters.evictions += 1;
            (at, InsertOutcome::Evicted)
        } else {
            self.counters.not_cached += 1;
            return InsertOutcome::NotCached;
        };
        self.claim(slot, now);
        *self.slot_mut(slot) = Slot::new(p, value, fresh, base, &timeouts);
        self.ext[slot] = Ext {
            words: p.words,
            alt: (b1 ^ b2) as u32,
        };
        self.counters.inserts += 1;
        outcome
    }

    /// Accounts for overwriting the slot at `at`: a free slot adds an entry, an expired one is
    /// reclaimed, a live one (an eviction, counted by the caller) is replaced.
    #[inline(always)]
    fn claim(&mut self, at: At, now: u64) {
        let s = *self.slot(at);
        if s.is_free() {
            self.len += 1;
        } else if !s.is_live(now) {
            self.counters.expired += 1;
        }
    }

    /// A free slot of bucket `b`, else an expired one.
    #[inline(always)]
    fn room(&self, b: usize, now: u64) -> Option<At> {
        let mut expired = None;
        for (i, s) in self.buckets[b].slots.iter().enumerate() {
            if s.is_free() {
                return Some(b * WAYS + i);
            }
            if s.expiry() <= now {
                expired = expired.or(Some(b * WAYS + i));
            }
        }
        expired
    }

    /// Live entries of bucket `b`.
    #[inline(always)]
    fn load(&self, b: usize, now: u64) -> usize {
        self.buckets[b]
            .slots
            .iter()
            .filter(|s| s.is_live(now))
            .count()
    }

    /// A free (else expired) slot of whichever of `b1`, `b2` holds fewer live entries (`b1` on
    /// a tie), or of the other one if that one has none. Balancing the two keeps both below
    /// [`WAYS`] far longer than filling the first: two-choice hashing's whole point.
    #[inline(always)]
    fn roomiest(&self, b1: usize, b2: usize, now: u64) -> Option<At> {
        match (self.room(b1, now), self.room(b2, now)) {
            (Some(x), Some(y)) => Some(if self.load(b2, now) < self.load(b1, now) {
                y
            } else {
                x
            }),
            (x, y) => x.or(y),
        }
    }

    /// The other candidate bucket of the entry at `at`.
    #[inline(always)]
    fn alt_of(&self, at: At) -> usize {
        ((at / WAYS) ^ self.ext[at].alt as usize) & self.mask
    }

    /// Frees a slot in `b1` or `b2` (both full of live entries) by moving at most [`MAX_MOVES`]
    /// entries, each to its own other bucket, found breadth-first so that the shortest chain
    /// wins. Returns the freed slot, or `None` (moving nothing) when no chain exists.
    fn make_room(&mut self, b1: usize, b2: usize, now: u64) -> Option<At> {
        // The search tree: each node is an occupied slot and the node whose entry would move
        // into it. No allocation: the tree is bounded by `SEARCH_NODES`.
        let mut tree = [(0 as At, NO_PARENT); SEARCH_NODES];
        let mut n = 0;
        let roots = if b1 == b2 { 1 } else { 2 };
        for b in [b1, b2].into_iter().take(roots) {
            for i in 0..WAYS {
                tree[n] = (b * WAYS + i, NO_PARENT);
                n += 1;
            }
        }
        let mut level = 0..n;
        for depth in 1..=MAX_MOVES {
            for k in level.clone() {
                let at = tree[k].0;
                let alt = self.alt_of(at);
                // A chain never passes through a bucket twice, so no slot is moved twice.
                if self.chain_visits(&tree, k, alt) {
                    continue;
                }
                if let Some(to) = self.room(alt, now) {
                    // Shift the chain: the deepest entry moves to the free slot, each parent
                    // into the slot its child left; the root's slot is the one freed.
                    let (mut node, mut dest) = (k, to);
                    loop {
                        let (from, parent) = tree[node];
                        self.relocate(from, dest, now);
                        if parent == NO_PARENT {
                            return Some(from);
                        }
                        (node, dest) = (usize::from(parent), from);
                    }
                }
                if depth < MAX_MOVES {
                    for j in 0..WAYS {
                        if n < SEARCH_NODES {
                            tree[n] = (alt * WAYS + j, k as u16);
                            n += 1;
                        }
                    }
                }
            }
            level = level.end..n;
        }
        None
    }

    /// Whether the chain from node `k` up to its root has a slot in bucket `b`.
    #[inline(always)]
    fn chain_visits(&self, tree: &[(At, u16); SEARCH_NODES], mut k: usize, b: usize) -> bool {
        loop {
            let (at, parent) = tree[k];
            if at / WAYS == b {
                return true;
            }
            if parent == NO_PARENT {
                return false;
            }
            k = usize::from(parent);
        }
    }

    /// Moves the entry at `from` to the free or expired slot `to` (reclaiming it) and frees
    /// `from`. The entry keeps its key, hop, state and expiry.
    fn relocate(&mut self, from: At, to: At, now: u64) {
        let target = *self.slot(to);
        if !target.is_free() {
            debug_assert!(target.expiry() <= now, "moved onto a live entry");
            self.counters.expired += 1;
            self.len -= 1;
        }
        *self.slot_mut(to) = *self.slot(from);
        self.ext[to] = self.ext[from];
        *self.slot_mut(from) = Slot::FREE;
        self.counters.moves += 1;
    }

    /// The least recently used live entry of `b1`/`b2` that a new flow in state `fresh` may
    /// evict (an embryonic flow may evict only embryonic ones).
    fn victim(&self, b1: usize, b2: usize, fresh: FlowState) -> Option<At> {
        let mut best: Option<(At, u64)> = None;
        for b in [b1, b2] {
            for (i, s) in self.buckets[b].slots.iter().enumerate() {
                if s.is_free()
                    || (fresh == FlowState::Embryonic && s.state() != FlowState::Embryonic)
                {
                    continue;
                }
                let used = s.last_used(&self.timeouts);
                if best.is_none_or(|(_, oldest)| used < oldest) {
                    best = Some((b * WAYS + i, used));
                }
            }
        }
        best.map(|(at, _)| at)
    }

    /// Replaces the cached hop of `key` (after the cached hop failed and the flow was re-picked)
    /// without touching its expiry or state. Returns false when the key is not cached. A value
    /// whose group exceeds [`MAX_GROUP_ID`] cannot be stored: the key's entry is removed
    /// instead (so that no stale hop survives) and false is returned.
    #[inline]
    pub fn update(&mut self, key: &FlowKey, hash: u64, value: CachedHop) -> bool {
        let probe = self.probe(key, hash);
        self.update_at(&probe, value)
    }

    /// [`Self::update`] of a prepared key.
    #[inline]
    pub fn update_at(&mut self, probe: &CacheProbe, value: CachedHop) -> bool {
        if value.group > GROUP_MASK {
            self.remove_at(probe);
            return false;
        }
        let (b1, b2) = self.buckets_of(probe);
        match self.find(&probe.key, b1, b2) {
            Some(at) => {
                self.slot_mut(at).set_hop(value);
                true
            }
            None => false,
        }
    }

    /// Forgets `key`. Returns false when it was not cached.
    pub fn remove(&mut self, key: &FlowKey, hash: u64) -> bool {
        let probe = self.probe(key, hash);
        self.remove_at(&probe)
    }

    fn remove_at(&mut self, probe: &CacheProbe) -> bool {
        let (b1, b2) = self.buckets_of(probe);
        match self.find(&probe.key, b1, b2) {
            Some(at) => {
                *self.slot_mut(at) = Slot::FREE;
                self.len -= 1;
                true
            }
            None => false,
        }
    }

    /// Calls `f` for every flow live at `now_ms` (for stats and what-if; walks the whole cache).
    pub fn for_each(&self, now_ms: u64, mut f: impl FnMut(&FlowKey, &CachedHop)) {
        self.live(now_ms, |at, s| f(&s.key(&self.ext[at]), &s.hop()));
    }

    /// Counts the flows live at `now_ms` whose cached hop satisfies `pred`.
    pub fn count_where(&self, now_ms: u64, mut pred: impl FnMut(&CachedHop) -> bool) -> usize {
        let mut n = 0;
        self.live(now_ms, |_, s| n += usize::from(pred(&s.hop())));
        n
    }

    fn live(&self, now_ms: u64, mut f: impl FnMut(At, &Slot)) {
        if !self.started {
            return;
        }
        let now = self.peek_clock(now_ms);
        for (b, bucket) in self.buckets.iter().enumerate() {
            for (i, s) in bucket.slots.iter().enumerate() {
                if s.is_live(now) {
                    f(b * WAYS + i, s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
