//! Resilient next-hop groups: a power-of-two table of buckets, each owned by one hop, that
//! changes as little as possible when hops come and go.
//!
//! [`ResilientGroup`] is the control-side builder; [`GroupTable`] is the read-only copy workers
//! pick from (`buckets[hash & (B - 1)]`, never `hash % n`).
//!
//! Invariants of a [`ResilientGroup`] in the stateful modes (`Manual`, `AutoRecovery`, `Idle`):
//! - every bucket is owned by an `Active` member or by nobody (hop 0); a bucket has no owner
//!   only while the group has no active member;
//! - before any flow has used a bucket (workers report use through [`BucketActivity`]), the
//!   table is the canonical one: a pure function of the active members' keys (see
//!   [`ResilientGroup::set_maglev_key`]), weights and the bucket count, so the order members
//!   were listed or learnt in, and how they were batched, change nothing. `Manual` recomputes
//!   it on `clear()` only (joining hops wait for `clear`, the IOS-XR rule), the other two on
//!   every change;
//! - once a bucket has been used, a hop leaving `Active` (failed, draining or removed) loses
//!   all its buckets and only those move: each goes to the active hop with the largest weighted
//!   deficit `B * w / W - count` (ties to the lowest member key), which spreads them evenly
//!   by weight;
//! - a new or returning hop gets buckets as its mode says: `Manual` on `clear()` only,
//!   `AutoRecovery` exactly the buckets it owned when it left, `Idle` through `upkeep` (Linux
//!   resilient nexthop group rules); `AutoRecovery` and `Idle` also hand it, at once, buckets
//!   no flow has used yet from hops above their share; in every mode a hop joining a group with
//!   no active owner takes all buckets at once;
//! - members keep their index while listed; a removed member leaves a vacant slot (hop 0) that a
//!   later new member reuses, so a worker validates a cached `(index, hop)` pair in O(1).
//!
//! Under traffic the stateful tables depend on history, so two instances agree only if they
//! saw the same events; `Maglev` and `Rendezvous` tables are recomputed from (seed, members,
//! weights) on every change and agree everywhere.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use foldhash::{HashMap, HashMapExt};

use crate::error::TableError;
use crate::nexthop::{HopId, HopState};
use crate::policy::HashPolicy;

/// Most buckets a group may have (Linux resilient groups also cap at 2^16).
pub const MAX_BUCKETS: u32 = 1 << 16;

/// Bucket count of a group whose configuration does not give one (configured and BGP-learnt
/// groups alike).
pub const DEFAULT_BUCKETS: u32 = 256;

/// Bucket count of a Maglev or rendezvous group whose configuration does not give one: Maglev
/// balances within one bucket and rendezvous statistically, so both want many more slots than
/// members.
pub const DEFAULT_MAGLEV_BUCKETS: u32 = 4096;

/// Most members a group may list (member indices are `u16`).
pub const MAX_MEMBERS: usize = 1 << 16;

/// How a group hands buckets to new and returning hops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupMode {
    /// New and returning hops get buckets only on `clear()` (IOS-XR's default sticky ECMP).
    Manual,
    /// A returning hop gets back exactly the buckets it had before it failed or drained.
    AutoRecovery,
    /// Linux resilient nexthop group semantics: `upkeep` moves buckets to under-share hops once
    /// idle, or all needed once the table has been unbalanced for `unbalanced_timer_ms`.
    Idle {
        /// A bucket unused for this long may move.
        idle_timer_ms: u64,
        /// After this long unbalanced, buckets move even when busy; 0 = never forced.
        unbalanced_timer_ms: u64,
    },
    /// The table is a pure function of (seed, active members, weights): Maglev's permutation fill.
    Maglev,
    /// The table is a pure function of (seed, active members, weights): each bucket belongs to
    /// the active member ranking it highest under a seeded weighted rendezvous hash, so every
    /// change moves exactly the buckets whose top-ranked member changed.
    Rendezvous,
}

impl GroupMode {
    /// Whether the table is recomputed from (seed, members, weights) on every change, so that
    /// instances agree whatever the order of updates (`Maglev`, `Rendezvous`).
    pub fn is_stateless(self) -> bool {
        matches!(self, GroupMode::Maglev | GroupMode::Rendezvous)
    }
}

/// A group member as workers see it. A vacant slot (a removed member) has `hop == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Member {
    /// The next hop.
    pub hop: HopId,
    /// Its relative share of the buckets.
    pub weight: u32,
    /// Whether it owns buckets and keeps its cached flows.
    pub state: HopState,
}

const VACANT: Member = Member {
    hop: 0,
    weight: 0,
    state: HopState::Failed,
};

/// One bucket of a [`GroupTable`]: its hop and that hop's member index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    hop: HopId,
    member: u16,
}

/// When each bucket of a stateful group last picked a hop for a packet, in seconds of the
/// process's clock. Shared by every table built from one [`ResilientGroup`], so it survives
/// publications; workers write it only on flow-cache misses and only when the second changed,
/// so the cache lines stay shared-clean between those writes. The control thread reads it for
/// [`ResilientGroup::upkeep`] and to know which buckets no flow has used yet.
#[derive(Debug)]
pub struct BucketActivity {
    /// Second of last use plus one, so that a use in second 0 still counts as a use (0: never).
    last_used_s: Box<[AtomicU32]>,
}

impl BucketActivity {
    fn new(buckets: usize) -> Self {
        BucketActivity {
            last_used_s: (0..buckets).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Marks `bucket` used at `now_s` (seconds).
    #[inline]
    pub fn touch(&self, bucket: usize, now_s: u32) {
        let stamp = now_s.saturating_add(1);
        if let Some(cell) = self.last_used_s.get(bucket)
            && cell.load(Ordering::Relaxed) != stamp
        {
            cell.store(stamp, Ordering::Relaxed);
        }
    }

    /// Last use of every bucket in milliseconds (0 for a bucket never used), as
    /// [`ResilientGroup::upkeep`] takes it.
    pub fn last_used_ms(&self, out: &mut Vec<u64>) {
        out.clear();
        out.extend(
            self.last_used_s
                .iter()
                .map(|c| u64::from(c.load(Ordering::Relaxed).saturating_sub(1)) * 1000),
        );
    }

    /// Whether a flow has ever picked a hop through `bucket`.
    pub fn used(&self, bucket: usize) -> bool {
        self.last_used_s
            .get(bucket)
            .is_some_and(|c| c.load(Ordering::Relaxed) != 0)
    }

    /// Whether a flow has ever picked a hop through any bucket.
    pub fn any_used(&self) -> bool {
        self.last_used_s
            .iter()
            .any(|c| c.load(Ordering::Relaxed) != 0)
    }
}

/// A table's link to its group's activity; ignored when tables are compared (equal tables route
/// alike whatever their buckets' history).
#[derive(Debug, Clone, Default)]
struct ActivityLink(Option<Arc<BucketActivity>>);

impl PartialEq for ActivityLink {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ActivityLink {}

/// The read-only bucket table workers pick from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTable {
    /// How flows are hashed onto the buckets.
    pub policy: HashPolicy,
    mask: u32,
    slots: Box<[Slot]>,
    members: Box<[Member]>,
    activity: ActivityLink,
}

impl GroupTable {
    /// A table of one bucket with no owner and no member (what "no group" looks like).
    pub fn empty() -> GroupTable {
        GroupTable {
            policy: HashPolicy::default(),
            mask: 0,
            slots: Box::new([Slot { hop: 0, member: 0 }]),
            members: Box::new([]),
            activity: ActivityLink(None),
        }
    }

    /// Number of buckets (a power of two).
    pub fn bucket_count(&self) -> u32 {
        self.mask + 1
    }

    /// Records that the bucket of `hash` picked a hop at `now_s` (stateful groups only; a no-op
    /// for `Maglev` and `Rendezvous`, whose tables ignore history).
    #[inline]
    pub fn touch(&self, hash: u32, now_s: u32) {
        if let Some(a) = &self.activity.0 {
            a.touch((hash & self.mask) as usize, now_s);
        }
    }

    /// The member index and hop owning the bucket of `hash`; `None` when it has no owner.
    #[inline]
    pub fn pick(&self, hash: u32) -> Option<(u16, HopId)> {
        let s = self.slots.get((hash & self.mask) as usize)?;
        (s.hop != 0).then_some((s.member, s.hop))
    }

    /// The member at `idx`, unless the slot is vacant or out of range.
    #[inline]
    pub fn member(&self, idx: u16) -> Option<&Member> {
        self.members.get(usize::from(idx)).filter(|m| m.hop != 0)
    }

    /// Whether a flow cached on `(idx, hop)` may stay there: the hop is still listed at that
    /// index and has not failed (draining hops keep their flows).
    #[inline]
    pub fn still_member(&self, idx: u16, hop: HopId) -> bool {
        self.member(idx)
            .is_some_and(|m| m.hop == hop && m.state != HopState::Failed)
    }

    /// All member slots, vacant ones included (their `hop` is 0).
    pub fn members(&self) -> &[Member] {
        &self.members
    }
}

/// The control-side builder of one group's bucket table. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct ResilientGroup {
    mode: GroupMode,
    seed: u64,
    policy: HashPolicy,
    owners: Vec<HopId>,
    /// Owners at the last full build or `clear()`, for [`ResilientGroup::replaced`].
    baseline: Vec<HopId>,
    members: Vec<Member>,
    /// Per member slot: the buckets it owned when it last left `Active` (`AutoRecovery` only).
    saved: Vec<Vec<u32>>,
    index: HashMap<HopId, u16>,
    /// Member keys by hop (Maglev permutations, rendezvous ranks, the canonical order); a hop
    /// without one uses its id. Control sets a key derived from the next hop's identity (its
    /// address), because hop ids depend on the order in which an instance learnt its hops.
    maglev_keys: HashMap<HopId, u64>,
    /// First `upkeep` that saw the table unbalanced (`Idle` only).
    unbalanced_since: Option<u64>,
    /// Bucket use reported by workers (stateful modes only).
    activity: Option<Arc<BucketActivity>>,
}

impl ResilientGroup {
    /// An empty group of `buckets` buckets (a power of two in 1..=65536). `seed` feeds Maglev's
    /// permutations and the rendezvous ranks; every instance that must agree on the table uses
    /// the same seed.
    pub fn new(buckets: u32, mode: GroupMode, seed: u64) -> Result<Self, TableError> {
        if !buckets.is_power_of_two() || buckets > MAX_BUCKETS {
            return Err(TableError::BucketCount(buckets));
        }
        let owners = vec![0; buckets as usize];
        Ok(Self {
            mode,
            seed,
            policy: HashPolicy::default(),
            baseline: owners.clone(),
            owners,
            members: Vec::new(),
            saved: Vec::new(),
            index: HashMap::new(),
            maglev_keys: HashMap::new(),
            unbalanced_since: None,
            activity: (!mode.is_stateless())
                .then(|| Arc::new(BucketActivity::new(buckets as usize))),
        })
    }

    /// Bucket use as workers reported it through this group's tables (stateful groups only).
    pub fn activity(&self) -> Option<&Arc<BucketActivity>> {
        self.activity.as_ref()
    }

    /// The group's mode.
    pub fn mode(&self) -> GroupMode {
        self.mode
    }

    /// How flows are hashed onto the buckets.
    pub fn policy(&self) -> HashPolicy {
        self.policy
    }

    /// Sets the hash policy (copied into every [`GroupTable`] built afterwards).
    pub fn set_policy(&mut self, policy: HashPolicy) {
        self.policy = policy;
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> u32 {
        // At most MAX_BUCKETS, checked in `new`.
        self.owners.len() as u32
    }

    /// The hop owning each bucket (0 = none).
    pub fn bucket_owners(&self) -> &[HopId] {
        &self.owners
    }

    /// Whether the bucket's owner differs from its owner at the last full build or `clear()`
    /// (the `*` of sticky ECMP displays). False for an out-of-range bucket.
    pub fn replaced(&self, bucket: usize) -> bool {
        self.owners
            .get(bucket)
            .zip(self.baseline.get(bucket))
            .is_some_and(|(a, b)| a != b)
    }

    /// All member slots, vacant ones included (their `hop` is 0).
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member entry of `hop`, if listed.
    pub fn member(&self, hop: HopId) -> Option<&Member> {
        self.slot(hop).map(|i| &self.members[i])
    }

    /// Adds `hop` with `weight`. A listed hop gets the new weight and, if it was failed or
    /// draining, returns as its mode says.
    pub fn add_member(&mut self, hop: HopId, weight: u32) -> Result<(), TableError> {
        if hop == 0 {
            return Err(TableError::ZeroHop);
        }
        if weight == 0 {
            return Err(TableError::ZeroWeight(hop));
        }
        if let Some(i) = self.slot(hop) {
            self.members[i].weight = weight;
            if self.members[i].state != HopState::Active {
                self.activate(i);
            }
            self.settle();
            return Ok(());
        }
        let i = match self.members.iter().position(|m| m.hop == 0) {
            Some(i) => i,
            None if self.members.len() < MAX_MEMBERS => {
                self.members.push(VACANT);
                self.saved.push(Vec::new());
                self.members.len() - 1
            }
            None => return Err(TableError::TooManyMembers { max: MAX_MEMBERS }),
        };
        self.members[i] = Member {
            hop,
            weight,
            state: HopState::Active,
        };
        // i < MAX_MEMBERS = 2^16.
        self.index.insert(hop, i as u16);
        self.saved[i].clear();
        self.settle();
        Ok(())
    }

    /// Sets `hop`'s member key (default: the hop id): Maglev derives its permutation and turn
    /// order from it, rendezvous its ranks, and the stateful modes their canonical order before
    /// traffic. Instances that must build identical tables give each next hop the same key (e.g.
    /// a hash of its address) whatever hop id it has locally; keys must be distinct within a
    /// group.
    pub fn set_maglev_key(&mut self, hop: HopId, key: u64) -> Result<(), TableError> {
        self.slot(hop).ok_or(TableError::UnknownHop(hop))?;
        if self.maglev_keys.insert(hop, key) != Some(key) {
            match self.mode {
                GroupMode::Maglev | GroupMode::Rendezvous => self.settle(),
                // Before traffic the order of keys shapes the table; `Manual` only on clear.
                GroupMode::AutoRecovery | GroupMode::Idle { .. } if self.untouched() => {
                    self.canonical_fill();
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Moves `hop` to `state`. Leaving `Active` moves exactly its buckets to the other active
    /// hops; returning to `Active` follows the mode.
    pub fn set_state(&mut self, hop: HopId, state: HopState) -> Result<(), TableError> {
        let i = self.slot(hop).ok_or(TableError::UnknownHop(hop))?;
        if self.apply_state(i, state) {
            self.settle();
        }
        Ok(())
    }

    /// Moves member `i` to `state` without settling: releases its buckets when it leaves
    /// `Active`, activates it when it returns. False (nothing done) when it is in `state` already.
    fn apply_state(&mut self, i: usize, state: HopState) -> bool {
        match (self.members[i].state, state) {
            (old, new) if old == new => return false,
            (HopState::Active, _) => self.release(i),
            (_, HopState::Active) => self.activate(i),
            _ => {}
        }
        self.members[i].state = state;
        true
    }

    /// Moves several hops to new states at once: like [`ResilientGroup::set_state`] for each in
    /// turn, but the buckets of every hop leaving `Active` are handed out together, so the
    /// result does not depend on the order of `changes` (a group built with some members
    /// draining from the start looks alike whatever order they were listed in). Refuses the
    /// whole set, changing nothing, if a hop is not a member.
    pub fn set_states(&mut self, changes: &[(HopId, HopState)]) -> Result<(), TableError> {
        for &(hop, _) in changes {
            self.slot(hop).ok_or(TableError::UnknownHop(hop))?;
        }
        for &(hop, state) in changes {
            if let Some(i) = self.slot(hop) {
                self.apply_state(i, state);
            }
        }
        self.settle();
        Ok(())
    }

    /// Forgets `hop` entirely (its buckets move as on a failure; a later add is a new hop).
    pub fn remove_member(&mut self, hop: HopId) -> Result<(), TableError> {
        let i = self.slot(hop).ok_or(TableError::UnknownHop(hop))?;
        if self.members[i].state == HopState::Active {
            self.release(i);
        }
        self.members[i] = VACANT;
        self.saved[i].clear();
        self.index.remove(&hop);
        self.maglev_keys.remove(&hop);
        self.settle();
        Ok(())
    }

    /// Changes `hop`'s weight. Maglev and rendezvous recompute at once, as do the stateful modes
    /// before traffic (`Manual` excepted); otherwise `Idle` rebalances through `upkeep` and
    /// `AutoRecovery` hands over unused buckets at once, the rest on `clear()`.
    pub fn set_weight(&mut self, hop: HopId, weight: u32) -> Result<(), TableError> {
        let i = self.slot(hop).ok_or(TableError::UnknownHop(hop))?;
        if weight == 0 {
            return Err(TableError::ZeroWeight(hop));
        }
        self.members[i].weight = weight;
        self.settle();
        Ok(())
    }

    /// Rebalances: every active hop ends within one bucket of its weighted share, moving the
    /// fewest buckets (only from hops above their share, and ownerless ones); before any flow
    /// has used a bucket, the canonical table instead (see the module docs). Also resets the
    /// `replaced` marks.
    pub fn clear(&mut self) {
        match self.mode {
            GroupMode::Maglev => self.maglev_fill(),
            GroupMode::Rendezvous => self.rendezvous_fill(),
            _ if self.untouched() => self.canonical_fill(),
            _ => self.rebalance(),
        }
        self.baseline.clone_from(&self.owners);
        self.unbalanced_since = None;
    }

    /// `Idle` mode's periodic step (a no-op returning 0 in other modes): moves buckets to
    /// under-share hops when Linux's rules allow, i.e. the bucket is idle
    /// (`now_ms - last_used_ms[b] >= idle_timer_ms`) and its hop is over its share, or the table
    /// has been unbalanced for `unbalanced_timer_ms` (when not 0). The unbalanced clock starts at
    /// the first `upkeep` that sees the table unbalanced. Returns the number of buckets moved.
    pub fn upkeep(&mut self, now_ms: u64, last_used_ms: &[u64]) -> Result<usize, TableError> {
        let GroupMode::Idle {
            idle_timer_ms,
            unbalanced_timer_ms,
        } = self.mode
        else {
            return Ok(0);
        };
        if last_used_ms.len() != self.owners.len() {
            return Err(TableError::LastUsedLength {
                expected: self.owners.len(),
                got: last_used_ms.len(),
            });
        }
        if self.balanced() {
            self.unbalanced_since = None;
            return Ok(0);
        }
        let since = *self.unbalanced_since.get_or_insert(now_ms);
        let forced =
            unbalanced_timer_ms != 0 && now_ms.saturating_sub(since) >= unbalanced_timer_ms;
        let moved = self
            .move_over_share(|b| forced || now_ms.saturating_sub(last_used_ms[b]) >= idle_timer_ms);
        if self.balanced() {
            self.unbalanced_since = None;
        }
        Ok(moved)
    }

    /// Every active hop owns its target and no bucket is ownerless.
    fn balanced(&self) -> bool {
        let counts = self.counts();
        counts == self.targets(&counts) && !self.owners.contains(&0)
    }

    /// Moves ownerless buckets, and buckets `movable` allows from hops above their target, to
    /// the hops furthest below theirs; returns the number moved.
    fn move_over_share(&mut self, movable: impl Fn(usize) -> bool) -> usize {
        let mut counts = self.counts();
        let targets = self.targets(&counts);
        let mut moved = 0;
        for b in 0..self.owners.len() {
            let from = self.slot(self.owners[b]);
            let ok = match from {
                None => true,
                Some(i) => counts[i] > targets[i] && movable(b),
            };
            if !ok {
                continue;
            }
            let Some(to) = (0..counts.len())
                .filter(|&j| counts[j] < targets[j])
                .max_by_key(|&j| (targets[j] - counts[j], Reverse(j)))
            else {
                break;
            };
            if let Some(i) = from {
                counts[i] -= 1;
            }
            counts[to] += 1;
            self.owners[b] = self.members[to].hop;
            moved += 1;
        }
        moved
    }

    /// Buckets that would change owner if `hop` were removed (nothing is changed).
    pub fn what_if_remove(&self, hop: HopId) -> usize {
        let mut g = self.clone();
        match g.remove_member(hop) {
            Ok(()) => self.moved_to(&g),
            Err(_) => 0,
        }
    }

    /// Buckets that would change owner if `hop` were added (or returned) with `weight`: at once,
    /// plus, in `Idle` mode, the moves `upkeep` would eventually make. An add the group would
    /// refuse moves nothing.
    pub fn what_if_add(&self, hop: HopId, weight: u32) -> usize {
        let mut g = self.clone();
        if g.add_member(hop, weight).is_err() {
            return 0;
        }
        if matches!(g.mode, GroupMode::Idle { .. }) {
            g.rebalance();
        }
        self.moved_to(&g)
    }

    /// The read-only table for workers.
    pub fn table(&self) -> GroupTable {
        let slots = self
            .owners
            .iter()
            .map(|&hop| Slot {
                hop,
                member: self.index.get(&hop).copied().unwrap_or(0),
            })
            .collect();
        GroupTable {
            policy: self.policy,
            mask: self.bucket_count() - 1,
            slots,
            members: self.members.clone().into_boxed_slice(),
            activity: ActivityLink(self.activity.clone()),
        }
    }

    fn slot(&self, hop: HopId) -> Option<usize> {
        self.index.get(&hop).map(|&i| usize::from(i))
    }

    fn moved_to(&self, other: &Self) -> usize {
        self.owners
            .iter()
            .zip(&other.owners)
            .filter(|(a, b)| a != b)
            .count()
    }

    /// Buckets owned per member slot.
    fn counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.members.len()];
        for &h in &self.owners {
            if let Some(i) = self.slot(h) {
                counts[i] += 1;
            }
        }
        counts
    }

    /// Member slots that may own buckets.
    fn active(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.members.len())
            .filter(|&i| self.members[i].hop != 0 && self.members[i].state == HopState::Active)
    }

    /// Member slot `i` leaves `Active`: its buckets lose their owner (remembered for
    /// `AutoRecovery`), and `settle` hands them to the remaining active hops.
    fn release(&mut self, i: usize) {
        let hop = self.members[i].hop;
        let mut mine = Vec::new();
        for (b, owner) in self.owners.iter_mut().enumerate() {
            if *owner == hop {
                *owner = 0;
                // b < MAX_BUCKETS.
                mine.push(b as u32);
            }
        }
        if self.mode == GroupMode::AutoRecovery {
            self.saved[i] = mine;
        }
    }

    /// Member slot `i` returns to `Active`.
    fn activate(&mut self, i: usize) {
        self.members[i].state = HopState::Active;
        if self.mode == GroupMode::AutoRecovery {
            let hop = self.members[i].hop;
            for b in std::mem::take(&mut self.saved[i]) {
                if let Some(owner) = self.owners.get_mut(b as usize) {
                    *owner = hop;
                }
            }
        }
    }

    /// Restores the invariants after a membership change.
    fn settle(&mut self) {
        match self.mode {
            GroupMode::Maglev => self.maglev_fill(),
            GroupMode::Rendezvous => self.rendezvous_fill(),
            GroupMode::Manual => self.fill_orphans(),
            GroupMode::AutoRecovery | GroupMode::Idle { .. } => {
                if self.untouched() {
                    self.canonical_fill();
                } else {
                    self.fill_orphans();
                    // A bucket no flow has used carries no flow to disturb: hand it to the hops
                    // below their share now rather than at the next `clear`. A flow that first
                    // uses it between this read and the publication is cached by then, and a
                    // cached flow stays on its hop while the hop is a member.
                    if let Some(activity) = self.activity.clone() {
                        self.move_over_share(|b| !activity.used(b));
                    }
                }
            }
        }
    }

    /// No flow has picked a hop through any bucket yet (always false for `Maglev` and
    /// `Rendezvous`, which keep no activity and need none).
    fn untouched(&self) -> bool {
        self.activity.as_ref().is_some_and(|a| !a.any_used())
    }

    /// Active member slots in canonical order: by member key (hop id when none is set), so the
    /// order does not depend on member indices or hop ids, which follow arrival order.
    fn canonical_order(&self) -> Vec<(u64, usize)> {
        let mut order: Vec<(u64, usize)> = self
            .active()
            .map(|i| (self.key_of(self.members[i].hop), i))
            .collect();
        // Keys are distinct within a group; the slot only breaks ties between equal keys.
        order.sort_unstable();
        order
    }

    fn key_of(&self, hop: HopId) -> u64 {
        self.maglev_keys
            .get(&hop)
            .copied()
            .unwrap_or(u64::from(hop))
    }

    /// The canonical table: active hops in canonical order own consecutive runs of buckets, each
    /// run its weighted share rounded by largest remainder (ties to the earlier hop), so every
    /// hop is within one bucket of its share. A pure function of the active members' keys and
    /// weights and the bucket count; it also becomes the new `replaced` baseline.
    fn canonical_fill(&mut self) {
        let order = self.canonical_order();
        let buckets = self.owners.len() as u64;
        let total: u64 = order
            .iter()
            .map(|&(_, i)| u64::from(self.members[i].weight))
            .sum();
        if total == 0 {
            self.owners.fill(0);
            return;
        }
        let mut runs: Vec<(u64, u64)> = order
            .iter()
            .map(|&(_, i)| {
                let num = buckets * u64::from(self.members[i].weight);
                (num / total, num % total)
            })
            .collect();
        let short = buckets - runs.iter().map(|r| r.0).sum::<u64>();
        let mut by_rem: Vec<usize> = (0..runs.len()).collect();
        by_rem.sort_by_key(|&k| (Reverse(runs[k].1), k));
        for &k in by_rem.iter().take(short as usize) {
            runs[k].0 += 1;
        }
        let mut b = 0;
        for (&(_, i), &(len, _)) in order.iter().zip(&runs) {
            let hop = self.members[i].hop;
            // len <= buckets <= MAX_BUCKETS.
            self.owners[b..b + len as usize].fill(hop);
            b += len as usize;
        }
        self.baseline.clone_from(&self.owners);
    }

    /// The rendezvous table: each bucket goes to the active member with the highest weighted
    /// rendezvous score for (seed, bucket, member key). The score is `-w / ln(u)` with `u` a
    /// seeded hash mapped into (0, 1), so a member's chance of ranking first is `w / W`;
    /// comparing `-ln(u) / w` (lowest wins) ranks the same with one logarithm per pair. With
    /// equal weights the ranking is the hash's own order, compared as integers.
    fn rendezvous_fill(&mut self) {
        let members: Vec<(u64, HopId, u32)> = self
            .canonical_order()
            .into_iter()
            .map(|(key, i)| {
                let m = &self.members[i];
                (mix(key ^ 0x4528_21e6_38d0_1377), m.hop, m.weight)
            })
            .collect();
        let weighted = members.windows(2).any(|w| w[0].2 != w[1].2);
        let seed = mix(self.seed ^ 0xbe54_66cf_34e9_0c6c);
        for (b, owner) in self.owners.iter_mut().enumerate() {
            let bucket = mix(seed ^ (b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            // Members come in key order and `min_by` keeps the first of equals, so an exact tie
            // goes to the lower key on every instance.
            *owner = if weighted {
                members
                    .iter()
                    .map(|&(key, hop, weight)| {
                        (-ln_unit(mix(bucket ^ key)) / f64::from(weight), hop)
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, hop)| hop)
            } else {
                members
                    .iter()
                    .map(|&(key, hop, _)| (Reverse(mix(bucket ^ key)), hop))
                    .min_by_key(|&(score, _)| score)
                    .map(|(_, hop)| hop)
            }
            .unwrap_or(0);
        }
    }

    /// Gives every ownerless bucket to the active hop with the largest weighted deficit (ties to
    /// the lowest member key).
    fn fill_orphans(&mut self) {
        if !self.owners.contains(&0) {
            return;
        }
        let counts = self.counts();
        let total: i128 = self
            .active()
            .map(|i| i128::from(self.members[i].weight))
            .sum();
        let buckets = self.owners.len() as i128;
        // Deficit scaled by the total weight: B * w_i - count_i * W, exact in integers. Ties go
        // to the lowest member key, not index, so that instances holding the same table hand
        // the orphans out alike whatever order they learnt the members in.
        let mut heap: BinaryHeap<(i128, Reverse<(u64, usize)>)> = self
            .active()
            .map(|i| {
                let deficit =
                    buckets * i128::from(self.members[i].weight) - i128::from(counts[i]) * total;
                (deficit, Reverse((self.key_of(self.members[i].hop), i)))
            })
            .collect();
        for b in 0..self.owners.len() {
            if self.owners[b] != 0 {
                continue;
            }
            let Some((deficit, Reverse((key, i)))) = heap.pop() else {
                return;
            };
            self.owners[b] = self.members[i].hop;
            heap.push((deficit - total, Reverse((key, i))));
        }
    }

    /// Per member slot, the bucket count each active hop should have: its weighted share rounded
    /// down or up (so within one bucket of it), choosing for each hop the rounding closest to
    /// what it owns now so that reaching the targets moves the fewest buckets. Sums to B when
    /// any hop is active.
    fn targets(&self, counts: &[u32]) -> Vec<u32> {
        let buckets = self.owners.len() as u64;
        let total: u64 = self
            .active()
            .map(|i| u64::from(self.members[i].weight))
            .sum();
        let mut targets = vec![0u32; self.members.len()];
        if total == 0 {
            return targets;
        }
        // (slot, floor, remainder) of each active hop's share B * w / W.
        let shares: Vec<(usize, u32, u64)> = self
            .active()
            .map(|i| {
                let num = buckets * u64::from(self.members[i].weight);
                // num / total <= buckets <= 2^16.
                (i, (num / total) as u32, num % total)
            })
            .collect();
        let mut sum = 0u64;
        for &(i, floor, rem) in &shares {
            let ceil = floor + u32::from(rem != 0);
            targets[i] = counts[i].clamp(floor, ceil);
            sum += u64::from(targets[i]);
        }
        // Fix the sum one bucket at a time; every such step costs one move whichever hop takes
        // it, so prefer the hops whose exact share is nearest the new rounding.
        if sum > buckets {
            let mut down: Vec<_> = shares.iter().filter(|s| targets[s.0] > s.1).collect();
            down.sort_by_key(|s| (s.2, Reverse(s.0)));
            for s in down.iter().take((sum - buckets) as usize) {
                targets[s.0] -= 1;
            }
        } else if sum < buckets {
            let mut up: Vec<_> = shares
                .iter()
                .filter(|s| targets[s.0] == s.1 && s.2 != 0)
                .collect();
            up.sort_by_key(|s| (Reverse(s.2), s.0));
            for s in up.iter().take((buckets - sum) as usize) {
                targets[s.0] += 1;
            }
        }
        targets
    }

    /// Moves buckets from hops above their target (and ownerless ones) to hops below it.
    fn rebalance(&mut self) {
        let mut counts = self.counts();
        let targets = self.targets(&counts);
        if self.active().next().is_none() {
            return;
        }
        let mut freed = Vec::new();
        for b in (0..self.owners.len()).rev() {
            match self.slot(self.owners[b]) {
                Some(i) if counts[i] <= targets[i] => continue,
                Some(i) => counts[i] -= 1,
                None => {}
            }
            freed.push(b);
        }
        for i in 0..counts.len() {
            while counts[i] < targets[i] {
                let Some(b) = freed.pop() else {
                    return;
                };
                self.owners[b] = self.members[i].hop;
                counts[i] += 1;
            }
        }
    }

    /// Maglev's fill: each active hop walks its own permutation of the buckets (offset + j *
    /// skip, skip odd hence coprime with the power-of-two size) taking the first free bucket per
    /// turn; a hop gets turns in proportion to its weight (credit of `weight` per round, one turn
    /// per `max weight` of credit). Hops take turns in key order (see
    /// [`ResilientGroup::set_maglev_key`]), so the result depends only on (seed, the active
    /// members' keys and weights, bucket count), not on local hop ids or update order.
    fn maglev_fill(&mut self) {
        self.owners.fill(0);
        let mut hops: Vec<(u64, HopId, u64)> = self
            .active()
            .map(|i| {
                let hop = self.members[i].hop;
                let key = self
                    .maglev_keys
                    .get(&hop)
                    .copied()
                    .unwrap_or(u64::from(hop));
                (key, hop, u64::from(self.members[i].weight))
            })
            .collect();
        hops.sort_unstable();
        let Some(max_weight) = hops.iter().map(|h| h.2).max() else {
            return;
        };
        let mask = self.owners.len() as u64 - 1;
        let perms: Vec<(u64, u64)> = hops
            .iter()
            .map(|&(key, _, _)| {
                let h = mix(key ^ 0x243f_6a88_85a3_08d3);
                let offset = mix(h ^ self.seed);
                let skip = mix(h ^ self.seed.rotate_left(29) ^ 0x1319_8a2e_0370_7344);
                (offset & mask, (skip & mask) | 1)
            })
            .collect();
        let mut next = vec![0u64; hops.len()];
        let mut credit = vec![0u64; hops.len()];
        let mut free = self.owners.len();
        loop {
            for (k, &(_, hop, weight)) in hops.iter().enumerate() {
                credit[k] += weight;
                while credit[k] >= max_weight {
                    credit[k] -= max_weight;
                    let (offset, skip) = perms[k];
                    // A free bucket exists and the walk visits every bucket once per B steps.
                    loop {
                        let b = (offset.wrapping_add(next[k].wrapping_mul(skip)) & mask) as usize;
                        next[k] += 1;
                        if self.owners[b] == 0 {
                            self.owners[b] = hop;
                            break;
                        }
                    }
                    free -= 1;
                    if free == 0 {
                        return;
                    }
                }
            }
        }
    }
}

/// A 64-bit finaliser (splitmix64): fixed, so Maglev and rendezvous tables agree across builds
/// and machines.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `ln(u)` for `u = (2 * (h >> 12) + 1) / 2^53`, a point of (0, 1) drawn from `h`. Built from
/// IEEE-exact operations only (no platform `ln`, whose last bit may differ between libms), so
/// every machine ranks rendezvous members alike: `u = m * 2^e` with `m` in [1, 2), and
/// `ln(m) = 2 * atanh(s)` with `s = (m - 1) / (m + 1)` in [0, 1/3), summed until the terms
/// vanish.
fn ln_unit(h: u64) -> f64 {
    const LN_2: f64 = std::f64::consts::LN_2;
    // Odd and below 2^53, so exactly representable.
    let n = 2 * (h >> 12) + 1;
    let e = 63 - n.leading_zeros();
    let m = n as f64 / (1u64 << e) as f64;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let (mut term, mut sum, mut k) = (s, 0.0, 1.0);
    // s < 1/3: 18 odd powers bring the terms below 2^-53 of the sum.
    for _ in 0..18 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    2.0 * sum + (f64::from(e) - 53.0) * LN_2
}

#[cfg(test)]
mod tests;
