//! The tables workers read, published as one immutable [`Snapshot`] through a [`SnapshotCell`].
//!
//! Protocol (rule 7, DPDK QSBR style):
//! - the publisher (control) builds a snapshot off the hot path and calls
//!   [`SnapshotCell::publish`], which stamps it with the next generation, swaps it in, and only
//!   then advances the generation counter (Release);
//! - a worker, once per burst, compares [`SnapshotCell::generation`] (one Acquire load) with the
//!   generation of the snapshot it holds and calls [`SnapshotCell::load`] only when it changed;
//!   seeing generation `g` guarantees `load` returns a snapshot of generation `g` or newer;
//! - at the end of each burst the worker reports the generation it holds
//!   ([`SnapshotCell::report`], one Release store into its own cache-line padded slot), and
//!   [`OFFLINE`] when it stops; [`SnapshotCell::min_reported`] tells the publisher that no
//!   worker still uses anything older, e.g. before it reuses the second copy of a big table.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::error::TableError;
use crate::fib::Fib4;
use crate::fib6::Fib6;
use crate::group::GroupTable;
use crate::nexthop::{GroupId, HopId, NextHop, PortId, PortInfo};
use crate::paged::Paged;

/// Everything a worker looks up, as of one generation.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Set by [`SnapshotCell::publish`]; strictly increasing.
    pub generation: u64,
    /// The generation at which `fib4` or `fib6` last changed; set by [`SnapshotCell::publish`]
    /// (what a builder puts here is overwritten). A flow the data path resolved under a
    /// generation at or after it still has the same route, so a publication that changes only
    /// groups, hops or ports sends no cached flow back through the FIB.
    pub fib_changed: u64,
    /// IPv4 routes.
    pub fib4: Arc<Fib4>,
    /// IPv6 routes.
    pub fib6: Arc<Fib6>,
    /// Index = [`GroupId`]; `[0]` is unused (id 0 means no route). Paged, so that publishing a
    /// change to one group copies one page, not one pointer per group.
    pub groups: Groups,
    /// Index = [`HopId`]; `[0]` is unused (id 0 means unset).
    pub hops: Vec<NextHop>,
    /// Index = [`PortId`].
    pub ports: Vec<PortInfo>,
}

impl Snapshot {
    /// The group with id `id`; `None` for 0 or an unknown id.
    #[inline]
    pub fn group(&self, id: GroupId) -> Option<&GroupTable> {
        match id {
            0 => None,
            _ => self.groups.get(id as usize).map(|g| &**g),
        }
    }

    /// The next hop with id `id`; `None` for 0 or an unknown id.
    #[inline]
    pub fn hop(&self, id: HopId) -> Option<&NextHop> {
        match id {
            0 => None,
            _ => self.hops.get(id as usize),
        }
    }

    /// The port with id `id`, if known.
    #[inline]
    pub fn port(&self, id: PortId) -> Option<&PortInfo> {
        self.ports.get(usize::from(id))
    }

    /// True when every group hashes the outer 5-tuple
    /// ([`HashPolicy::keys_outer_five_tuple`](crate::policy::HashPolicy::keys_outer_five_tuple)):
    /// a packet's flow-cache key is then known before its route. One load, once per burst.
    #[inline]
    pub fn outer_keyed(&self) -> bool {
        self.groups.policy_keyed == 0
    }
}

/// A snapshot's group tables, indexed by [`GroupId`], with a count of the groups whose policy
/// does not hash the outer 5-tuple. The count is kept by every change of the tables (they are
/// behind `Arc`s, so a table cannot change in place), so it cannot disagree with them.
#[derive(Debug, Clone)]
pub struct Groups {
    tables: Paged<Arc<GroupTable>>,
    /// Groups among `tables` whose policy is not
    /// [`keys_outer_five_tuple`](crate::policy::HashPolicy::keys_outer_five_tuple).
    policy_keyed: usize,
}

/// 1 for a table whose flows are keyed by its policy, else 0.
fn policy_keyed(t: &GroupTable) -> usize {
    usize::from(!t.policy.keys_outer_five_tuple())
}

impl Groups {
    /// No groups; unused slots of the pages hold `filler` (never returned by [`Self::get`]).
    pub fn new(filler: Arc<GroupTable>) -> Self {
        Self {
            tables: Paged::new(filler),
            policy_keyed: 0,
        }
    }

    /// Number of tables (group ids `0..len`).
    #[inline]
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The table at `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Arc<GroupTable>> {
        self.tables.get(i)
    }

    /// Replaces the table at `i`; false when `i` is out of range.
    pub fn set(&mut self, i: usize, table: Arc<GroupTable>) -> bool {
        let Some(old) = self.tables.get(i) else {
            return false;
        };
        self.policy_keyed = self.policy_keyed - policy_keyed(old) + policy_keyed(&table);
        self.tables.set(i, table)
    }

    /// Appends `table` (its id is the old [`Self::len`]).
    pub fn push(&mut self, table: Arc<GroupTable>) {
        self.policy_keyed += policy_keyed(&table);
        self.tables.push(table);
    }

    /// Removes and returns the last table.
    pub fn pop(&mut self) -> Option<Arc<GroupTable>> {
        let table = self.tables.pop()?;
        self.policy_keyed -= policy_keyed(&table);
        Some(table)
    }

    /// The tables in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<GroupTable>> + '_ {
        self.tables.iter()
    }
}

impl std::ops::Index<usize> for Groups {
    type Output = Arc<GroupTable>;

    /// Like a `Vec`'s: panics when `i` is out of range (use [`Groups::get`] where that can be).
    fn index(&self, i: usize) -> &Arc<GroupTable> {
        &self.tables[i]
    }
}

impl From<Vec<Arc<GroupTable>>> for Groups {
    /// The groups of a snapshot; unused slots share the first table (id 0, "no route").
    fn from(v: Vec<Arc<GroupTable>>) -> Self {
        let filler = match v.first() {
            Some(t) => Arc::clone(t),
            None => Arc::new(GroupTable::empty()),
        };
        let mut groups = Groups::new(filler);
        for t in v {
            groups.push(t);
        }
        groups
    }
}

/// What a reader reports when it holds no snapshot at all (stopped, or parked).
pub const OFFLINE: u64 = u64::MAX;

/// A reader's quiescence slot, registered once per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderId(usize);

/// One reader's reported generation, alone on its cache lines so reporting never contends
/// (128 bytes: adjacent-line prefetchers pair 64-byte lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// The published snapshot plus the generation counter and the readers' quiescence slots.
#[derive(Debug)]
pub struct SnapshotCell {
    generation: Padded,
    current: ArcSwap<Snapshot>,
    readers: Box<[Padded]>,
    registered: AtomicUsize,
    /// Serialises publishers, so generations are stored in the order snapshots are swapped in.
    publish_lock: Mutex<()>,
}

impl SnapshotCell {
    /// A cell publishing `initial` as generation 1, with room for `max_readers` readers.
    pub fn new(mut initial: Snapshot, max_readers: usize) -> Self {
        initial.generation = 1;
        initial.fib_changed = 1;
        Self {
            generation: Padded(AtomicU64::new(1)),
            current: ArcSwap::from_pointee(initial),
            readers: (0..max_readers).map(|_| Padded::default()).collect(),
            registered: AtomicUsize::new(0),
            publish_lock: Mutex::new(()),
        }
    }

    /// Publishes `snapshot` under a fresh generation, returned.
    pub fn publish(&self, mut snapshot: Snapshot) -> u64 {
        let _guard = self
            .publish_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let generation = self.generation.0.load(Ordering::Relaxed) + 1;
        snapshot.generation = generation;
        // The current snapshot holds its FIBs, so a builder cannot have changed them in place
        // (`Arc::get_mut` fails while they are shared): the same pointers mean the same routes.
        let current = self.current.load();
        snapshot.fib_changed = if Arc::ptr_eq(&current.fib4, &snapshot.fib4)
            && Arc::ptr_eq(&current.fib6, &snapshot.fib6)
        {
            current.fib_changed
        } else {
            generation
        };
        drop(current);
        self.current.store(Arc::new(snapshot));
        // After the swap: a reader that sees `generation` then loads finds it (or newer).
        self.generation.0.store(generation, Ordering::Release);
        generation
    }

    /// The latest published generation.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.0.load(Ordering::Acquire)
    }

    /// The latest published snapshot.
    #[inline]
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Takes a quiescence slot for a new reader; it starts at the current generation, since a
    /// reader registering now has not seen anything older.
    pub fn register_reader(&self) -> Result<ReaderId, TableError> {
        let max = self.readers.len();
        let i = self
            .registered
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| TableError::ReadersExhausted { max })?;
        self.readers[i]
            .0
            .store(self.generation(), Ordering::Release);
        Ok(ReaderId(i))
    }

    /// The reader now holds `generation` (or [`OFFLINE`]) and nothing older.
    #[inline]
    pub fn report(&self, reader: ReaderId, generation: u64) {
        if let Some(slot) = self.readers.get(reader.0) {
            slot.0.store(generation, Ordering::Release);
        }
    }

    /// The oldest generation any registered reader may still hold; the current generation when
    /// no reader is registered (or all are offline).
    pub fn min_reported(&self) -> u64 {
        let n = self
            .registered
            .load(Ordering::Acquire)
            .min(self.readers.len());
        self.readers[..n]
            .iter()
            .map(|r| r.0.load(Ordering::Acquire))
            .min()
            .unwrap_or(OFFLINE)
            .min(self.generation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{GroupMode, ResilientGroup};
    use crate::nexthop::Action;
    use crate::policy::{HashFields, HashPolicy};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// A table with `fields` and `inner` as its policy.
    fn table(fields: HashFields, inner: bool) -> Arc<GroupTable> {
        let mut t = GroupTable::empty();
        t.policy = HashPolicy {
            fields,
            inner,
            ..HashPolicy::default()
        };
        Arc::new(t)
    }

    #[test]
    fn publish_stamps_the_generation_of_the_last_fib_change() {
        let cell = SnapshotCell::new(snapshot(), 1);
        assert_eq!(cell.load().fib_changed, 1);
        // Same FIBs (shared, as a builder that changed no route publishes them): kept.
        let mut same = (*cell.load()).clone();
        same.fib_changed = 99;
        assert_eq!(cell.publish(same), 2);
        assert_eq!(cell.load().fib_changed, 1);
        // A new IPv4 FIB, then a new IPv6 FIB: each moves it to its own generation.
        let mut v4 = (*cell.load()).clone();
        v4.fib4 = Arc::new(Fib4::new(0));
        assert_eq!(cell.publish(v4), 3);
        assert_eq!(cell.load().fib_changed, 3);
        let mut v6 = (*cell.load()).clone();
        v6.fib6 = Arc::new(Fib6::new());
        assert_eq!(cell.publish(v6), 4);
        assert_eq!(cell.load().fib_changed, 4);
        let groups_only = (*cell.load()).clone();
        assert_eq!(cell.publish(groups_only), 5);
        assert_eq!(cell.load().fib_changed, 4);
    }

    proptest! {
        /// However the tables change, `outer_keyed` says whether every table present hashes the
        /// outer 5-tuple, and clones keep the answer of their own tables.
        #[test]
        fn outer_keyed_follows_every_change(
            ops in prop::collection::vec((0u8..3, 0usize..40, 0u8..4, any::<bool>()), 0..200)
        ) {
            let fields = [HashFields::SrcIp, HashFields::DstIp, HashFields::SrcDstIp, HashFields::FiveTuple];
            let mut snap = snapshot();
            let mut clones = Vec::new();
            for (op, i, f, inner) in ops {
                let t = table(fields[usize::from(f)], inner);
                match op {
                    0 => snap.groups.push(t),
                    1 => { snap.groups.pop(); }
                    _ => {
                        let ok = i < snap.groups.len();
                        prop_assert_eq!(snap.groups.set(i, t), ok);
                    }
                }
                clones.push(snap.clone());
            }
            for s in clones {
                let scan = s.groups.iter().all(|g| g.policy.keys_outer_five_tuple());
                prop_assert_eq!(s.outer_keyed(), scan);
            }
        }
    }

    fn snapshot() -> Snapshot {
        let mut g = ResilientGroup::new(4, GroupMode::Manual, 0).unwrap();
        g.add_member(1, 1).unwrap();
        let hop = NextHop {
            id: 1,
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 0,
            mac: [2, 0, 0, 0, 0, 1],
            weight: 1,
            action: Action::Rewrite,
        };
        Snapshot {
            generation: 0,
            fib_changed: 0,
            fib4: Arc::new(Fib4::new(0)),
            fib6: Arc::new(Fib6::new()),
            groups: vec![Arc::new(g.table()), Arc::new(g.table())].into(),
            hops: vec![hop, hop],
            ports: vec![PortInfo {
                mac: [2, 0, 0, 0, 0, 9],
                mtu: 1500,
            }],
        }
    }

    #[test]
    fn id_zero_and_unknown_ids_are_none() {
        let s = snapshot();
        assert!(s.group(0).is_none());
        assert!(s.group(2).is_none());
        assert_eq!(s.group(1).and_then(|g| g.pick(7)), Some((0, 1)));
        assert!(s.hop(0).is_none());
        assert_eq!(s.hop(1).map(|h| h.id), Some(1));
        assert_eq!(s.port(0).map(|p| p.mtu), Some(1500));
        assert!(s.port(1).is_none());
    }

    #[test]
    fn publish_advances_generation_and_load_follows() {
        let cell = SnapshotCell::new(snapshot(), 2);
        assert_eq!(cell.generation(), 1);
        assert_eq!(cell.load().generation, 1);
        let mut next = snapshot();
        next.ports.clear();
        assert_eq!(cell.publish(next), 2);
        assert_eq!(cell.generation(), 2);
        let s = cell.load();
        assert_eq!(s.generation, 2);
        assert!(s.ports.is_empty());
    }

    #[test]
    fn quiescence_waits_for_the_slowest_reader() {
        let cell = SnapshotCell::new(snapshot(), 2);
        assert_eq!(cell.min_reported(), 1, "no reader: nothing to wait for");
        let a = cell.register_reader().unwrap();
        let b = cell.register_reader().unwrap();
        assert_eq!(
            cell.register_reader(),
            Err(TableError::ReadersExhausted { max: 2 })
        );
        let g2 = cell.publish(snapshot());
        let g3 = cell.publish(snapshot());
        assert_eq!(cell.min_reported(), 1);
        cell.report(a, g3);
        assert_eq!(cell.min_reported(), 1);
        cell.report(b, g2);
        assert_eq!(cell.min_reported(), g2);
        cell.report(b, OFFLINE);
        assert_eq!(cell.min_reported(), g3);
        cell.report(a, OFFLINE);
        assert_eq!(
            cell.min_reported(),
            g3,
            "all offline: the current generation"
        );
    }
}
