//! Two copies of a FIB, so that a change never copies the whole table (the IPv4 FIB's tbl24
//! alone is 64 MiB): the current copy is the one the last snapshot published; the spare trails
//! it by the operations in `lag`. The first change after a publication brings the spare up to
//! date by replaying `lag` (the previous batch's operations), makes it current and changes it in
//! place; the published copy becomes the spare. A copy is changed only while nothing else holds
//! it (`Arc::get_mut`): workers drop a replaced snapshot at their next poll, so the spare is
//! normally free; when it is not within [`SPARE_WAIT_YIELDS`] yields and [`SPARE_WAIT_SLEEPS`]
//! short sleeps, the current copy is cloned, as `Arc::make_mut` would.
//!
//! Replaying `lag` costs as much as the batch that produced it (at a million routes loaded in
//! batches of half a million, the first update after the load waited ~100 ms for it; see
//! benches/RESULTS.md). [`Twin::catch_up`] lets the owner do it as soon as the workers
//! let go of the spare, instead of in front of the next change (the control thread calls it
//! between messages), so a lone update after a big load pays only for itself.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ecmp_tables::nexthop::GroupId;
use ecmp_tables::{Fib4, Fib6, TableError};

/// Yields to wait for a worker to drop the spare before sleeping. Workers poll every few
/// microseconds, so this is normally enough.
const SPARE_WAIT_YIELDS: u32 = 2000;
/// Then sleeps of [`SPARE_WAIT_SLEEP`] (at least 50 ms in all) before falling back to a copy:
/// a worker descheduled on a busy machine comes back within a few scheduler slices, while a
/// copy writes 64 MiB of tbl24 plus every route map, and the copy it replaces is thrown away.
const SPARE_WAIT_SLEEPS: u32 = 1000;
/// One sleep of the second stage of the wait.
const SPARE_WAIT_SLEEP: std::time::Duration = std::time::Duration::from_micros(50);

/// A FIB with replayable changes.
pub(super) trait Fib: Clone {
    /// One change: install (`Some(group)`) or remove (`None`) a prefix.
    type Op;
    /// Applies `op`; an error changes nothing.
    fn apply(&mut self, op: &Self::Op) -> Result<(), TableError>;
}

impl Fib for Fib4 {
    type Op = (Ipv4Addr, u8, Option<GroupId>);
    fn apply(&mut self, &(addr, len, group): &Self::Op) -> Result<(), TableError> {
        match group {
            Some(g) => self.insert(addr, len, g).map(|_| ()),
            None => self.remove(addr, len).map(|_| ()),
        }
    }
}

impl Fib for Fib6 {
    type Op = (Ipv6Addr, u8, Option<GroupId>);
    fn apply(&mut self, &(addr, len, group): &Self::Op) -> Result<(), TableError> {
        match group {
            Some(g) => self.insert(addr, len, g).map(|_| ()),
            None => self.remove(addr, len).map(|_| ()),
        }
    }
}

/// See the module doc.
#[derive(Debug, Clone)]
pub(super) struct Twin<T: Fib> {
    cur: Arc<T>,
    spare: Option<Arc<T>>,
    /// Applied to `cur`, not yet to `spare`.
    lag: Vec<T::Op>,
}

impl<T: Fib> Twin<T>
where
    T::Op: Clone,
{
    pub(super) fn new(table: T) -> Self {
        Twin {
            cur: Arc::new(table),
            spare: None,
            lag: Vec::new(),
        }
    }

    /// The current copy (what the next snapshot publishes).
    pub(super) fn cur(&self) -> &Arc<T> {
        &self.cur
    }

    /// Applies `op` to the current copy (making it writable first, see the module doc).
    pub(super) fn apply(&mut self, op: T::Op) -> Result<(), TableError> {
        self.make_writable();
        Arc::make_mut(&mut self.cur).apply(&op)?;
        if self.spare.is_some() {
            self.lag.push(op);
        }
        Ok(())
    }

    /// Whether the spare trails the current copy (there is something for [`Twin::catch_up`]).
    pub(super) fn lagging(&self) -> bool {
        self.spare.is_some() && !self.lag.is_empty()
    }

    /// Replays `lag` onto the spare now if nothing else holds it (never waits); true when it
    /// did. The next change then finds the spare up to date and only swaps it in.
    pub(super) fn catch_up(&mut self) -> bool {
        if self.lag.is_empty() {
            return false;
        }
        let Some(table) = self.spare.as_mut().and_then(Arc::get_mut) else {
            return false;
        };
        for op in self.lag.drain(..) {
            // Each succeeded on the other copy, which was then in this copy's state.
            let _ = table.apply(&op);
        }
        true
    }

    fn make_writable(&mut self) {
        if Arc::get_mut(&mut self.cur).is_some() {
            return;
        }
        if let Some(mut spare) = self.spare.take()
            && wait_unique(&mut spare)
        {
            let table = Arc::make_mut(&mut spare);
            for op in self.lag.drain(..) {
                // Each succeeded on the other copy, which was then in this copy's state.
                let _ = table.apply(&op);
            }
            self.spare = Some(std::mem::replace(&mut self.cur, spare));
            return;
        }
        let copy = T::clone(&self.cur);
        self.spare = Some(std::mem::replace(&mut self.cur, Arc::new(copy)));
        self.lag.clear();
    }
}

fn wait_unique<T>(a: &mut Arc<T>) -> bool {
    for _ in 0..SPARE_WAIT_YIELDS {
        if Arc::get_mut(a).is_some() {
            return true;
        }
        std::thread::yield_now();
    }
    for _ in 0..SPARE_WAIT_SLEEPS {
        if Arc::get_mut(a).is_some() {
            return true;
        }
        std::thread::sleep(SPARE_WAIT_SLEEP);
    }
    Arc::get_mut(a).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn copies_alternate_without_cloning_and_stay_equal() {
        let mut t = Twin::new(Fib4::new(16));
        t.apply((v4("10.0.0.0"), 8, Some(1))).unwrap();
        // Published: a snapshot holds the current copy.
        let published = Arc::clone(t.cur());
        t.apply((v4("10.1.0.0"), 16, Some(2))).unwrap();
        assert!(
            !Arc::ptr_eq(t.cur(), &published),
            "the published copy is left alone"
        );
        assert_eq!(published.lookup_addr(v4("10.1.2.3")), 1);
        assert_eq!(t.cur().lookup_addr(v4("10.1.2.3")), 2);
        let first = Arc::as_ptr(&published);
        let published2 = Arc::clone(t.cur());
        drop(published); // the workers moved on: the first copy is the spare, free again
        t.apply((v4("10.2.0.0"), 16, Some(3))).unwrap();
        assert_eq!(
            Arc::as_ptr(t.cur()),
            first,
            "the spare was reused, not cloned"
        );
        // The reused copy got the previous batch's change replayed before this one.
        assert_eq!(t.cur().lookup_addr(v4("10.1.2.3")), 2);
        assert_eq!(t.cur().lookup_addr(v4("10.2.2.3")), 3);
        assert_eq!(published2.lookup_addr(v4("10.2.2.3")), 1);
        // Removal replays too.
        let p3 = Arc::clone(t.cur());
        drop(published2);
        t.apply((v4("10.1.0.0"), 16, None)).unwrap();
        drop(p3);
        t.apply((v4("10.3.0.0"), 16, Some(4))).unwrap();
        for (a, g) in [
            ("10.1.0.1", 1),
            ("10.2.0.1", 3),
            ("10.3.0.1", 4),
            ("11.0.0.1", 0),
        ] {
            assert_eq!(t.cur().lookup_addr(v4(a)), g, "{a}");
        }
    }

    #[test]
    fn catch_up_replays_onto_a_free_spare_only() {
        let mut t = Twin::new(Fib4::new(16));
        t.apply((v4("10.0.0.0"), 8, Some(1))).unwrap();
        let held = Arc::clone(t.cur());
        t.apply((v4("10.1.0.0"), 16, Some(2))).unwrap();
        assert!(t.lagging());
        assert!(
            !t.catch_up(),
            "the spare is still held: nothing may be written into it"
        );
        assert_eq!(held.lookup_addr(v4("10.1.0.1")), 1);
        drop(held);
        assert!(t.catch_up());
        assert!(!t.lagging());
        assert!(!t.catch_up(), "nothing left to replay");
        let spare = Arc::as_ptr(t.spare.as_ref().unwrap());
        assert_eq!(t.spare.as_ref().unwrap().lookup_addr(v4("10.1.0.1")), 2);
        // The next change swaps the caught-up spare in without replaying anything twice.
        let published = Arc::clone(t.cur());
        t.apply((v4("10.1.0.0"), 16, None)).unwrap();
        assert_eq!(Arc::as_ptr(t.cur()), spare);
        assert_eq!(t.cur().lookup_addr(v4("10.1.0.1")), 1);
        assert_eq!(published.lookup_addr(v4("10.1.0.1")), 2);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert(u32, u8, GroupId),
        Remove(u32, u8),
        /// A snapshot takes the current copy.
        Publish,
        /// The oldest snapshot still held is dropped.
        Release,
        CatchUp,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        // Four /24s, so prefixes nest and share tbl8 groups.
        let addr = (0u32..4, any::<u8>()).prop_map(|(x, b)| 0x0a00_0000 | (x << 8) | u32::from(b));
        let len = prop_oneof![1 => 8u8..=24, 2 => 25u8..=32];
        let step = prop_oneof![
            4 => (addr.clone(), len.clone(), 1u32..6).prop_map(|(a, l, g)| Step::Insert(a, l, g)),
            2 => (addr, len).prop_map(|(a, l)| Step::Remove(a, l)),
            2 => Just(Step::Publish),
            2 => Just(Step::Release),
            1 => Just(Step::CatchUp),
        ];
        prop::collection::vec(step, 1..60)
    }

    /// Same answers: every probe address, and every exact prefix the reference holds.
    fn same(a: &Fib4, b: &Fib4, probes: &[u32]) -> Result<(), TestCaseError> {
        prop_assert_eq!(a.len(), b.len());
        for &p in probes {
            prop_assert_eq!(a.lookup(p), b.lookup(p), "address {:#010x}", p);
            for len in [8u8, 16, 24, 25, 28, 32] {
                let addr = Ipv4Addr::from(p);
                prop_assert_eq!(a.get(addr, len), b.get(addr, len));
            }
        }
        Ok(())
    }

    use proptest::prelude::*;

    /// (address, group) pairs a FIB answered.
    type Answers = Vec<(u32, GroupId)>;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// However changes, publications, releases and catch-ups interleave, the current copy
        /// answers like one FIB that got every change directly, and every published copy keeps
        /// answering like that FIB did when it was published.
        #[test]
        fn the_twin_equals_a_single_fib(steps in steps()) {
            let mut twin = Twin::new(Fib4::new(64));
            let mut reference = Fib4::new(64);
            // Each held copy with what the reference answered for every probe when it was
            // published (cloning the reference would copy 64 MiB per publication).
            let mut held: std::collections::VecDeque<(Arc<Fib4>, Answers)> = Default::default();
            let mut probes = vec![0x0a00_0000, 0x0a00_03ff, 0x0b00_0000];
            for step in steps {
                if matches!(step, Step::Insert(..) | Step::Remove(..)) {
                    // Workers keep at most the latest snapshot while a change is made: with the
                    // spare held too, the change would wait for it and then copy, which
                    // `a_held_spare_is_not_touched` covers once.
                    while held.len() > 1 {
                        held.pop_front();
                    }
                }
                match step {
                    Step::Insert(a, l, g) => {
                        let r = reference.insert(Ipv4Addr::from(a), l, g).map(|_| ());
                        prop_assert_eq!(twin.apply((Ipv4Addr::from(a), l, Some(g))), r);
                        probes.extend([a, a ^ 1, a | 0xff]);
                    }
                    Step::Remove(a, l) => {
                        let r = reference.remove(Ipv4Addr::from(a), l).map(|_| ());
                        prop_assert_eq!(twin.apply((Ipv4Addr::from(a), l, None)), r);
                    }
                    Step::Publish => {
                        let answers = probes.iter().map(|&p| (p, reference.lookup(p))).collect();
                        held.push_back((Arc::clone(twin.cur()), answers));
                    }
                    Step::Release => {
                        held.pop_front();
                    }
                    Step::CatchUp => {
                        twin.catch_up();
                    }
                }
                same(twin.cur(), &reference, &probes)?;
                for (published, answers) in &held {
                    for &(p, g) in answers {
                        prop_assert_eq!(published.lookup(p), g, "published, address {:#010x}", p);
                    }
                }
            }
        }
    }

    #[test]
    fn a_held_spare_is_not_touched() {
        let mut t = Twin::new(Fib4::new(16));
        t.apply((v4("10.0.0.0"), 8, Some(1))).unwrap();
        let a = Arc::clone(t.cur());
        t.apply((v4("10.1.0.0"), 16, Some(2))).unwrap();
        let b = Arc::clone(t.cur());
        // `a` (the spare) is still held: the next change must copy, not write into `a`.
        t.apply((v4("10.2.0.0"), 16, Some(3))).unwrap();
        assert_eq!(a.lookup_addr(v4("10.1.0.1")), 1);
        assert_eq!(a.lookup_addr(v4("10.2.0.1")), 1);
        assert_eq!(b.lookup_addr(v4("10.2.0.1")), 1);
        assert_eq!(t.cur().lookup_addr(v4("10.2.0.1")), 3);
        assert_eq!(t.cur().lookup_addr(v4("10.1.0.1")), 2);
    }
}
