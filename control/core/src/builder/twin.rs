//! Two copies of a FIB, so that a change never copies the whole table (the IPv4 FIB's tbl24
//! alone is 64 MiB): the current copy is the one the last snapshot published; the spare trails
//! it by the operations in `lag`. The first change after a publication brings the spare up to
//! date by replaying `lag` (the previous batch's operations), makes it current and changes it in
//! place; the published copy becomes the spare. A copy is changed only while nothing else holds
//! it (`Arc::get_mut`): workers drop a replaced snapshot at their next poll, so the spare is
//! normally free; when it is not within a short wait, the current copy is cloned, as
//! `Arc::make_mut` would.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ecmp_tables::nexthop::GroupId;
use ecmp_tables::{Fib4, Fib6, TableError};

/// Yields to wait for a worker to drop the spare before falling back to a copy. Workers poll
/// every few microseconds, so this rarely runs out.
const SPARE_WAIT_YIELDS: u32 = 2000;

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
    false
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
