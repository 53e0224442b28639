//! Longest-prefix-match tables mapping destination prefixes to groups: [`Fib4`] (DIR-24-8) and
//! [`Fib6`](crate::Fib6) (a 20-bit root and a path-compressed 64-way trie; see `fib6.rs`).
//!
//! Both hold any number of routes memory permits (1M and more; see the tests) and map a prefix
//! to a [`GroupId`], 0 meaning "no route" (rule 8).
//!
//! Invariants both keep:
//! - `routes[len]` holds exactly the installed prefixes of length `len` (host bits cleared). It is
//!   the source of truth; the lookup structure is derived from it incrementally, never rebuilt.
//! - Every lookup slot (a Fib4 entry; a Fib6 root entry or node entry, for the routes ending
//!   there) holds the group and the *depth* (`len + 1`; 0 = no route) of the longest
//!   installed prefix covering that slot. Depth is what keeps updates local: an insert overwrites
//!   only the slots of its range whose depth is <= its own (the more specific routes stay); a
//!   removal rewrites only the slots of its range whose depth equals its own (only that prefix
//!   can have that depth there), with the covering route found by walking `routes` upward.
//! - Prefix host bits are ignored: `10.1.2.3/8` is `10.0.0.0/8`.

use std::net::Ipv4Addr;

use ecmp_mem::{HugeArray, Placement};
use foldhash::{HashMap, HashMapExt};

use crate::error::TableError;
use crate::nexthop::GroupId;

/// The largest group id a FIB holds (an IPv4 entry packs the id in 24 bits beside the depth).
pub const MAX_GROUP_ID: GroupId = (1 << 24) - 1;

/// Number of tbl24 entries (one per /24).
const TBL24_LEN: usize = 1 << 24;

/// Most tbl8 groups a [`Fib4`] can address: a tbl24 entry holds a 24-bit group index.
pub const MAX_TBL8: usize = 1 << 24;
/// Entries per tbl8 group (one per address of a /24).
const TBL8_GROUP: usize = 256;
/// Entry flag: the low 24 bits index a tbl8 group instead of holding a group id.
const EXT: u32 = 1 << 31;
/// Low 24 bits: the group id, or the tbl8 group index when `EXT` is set.
const VALUE_MASK: u32 = (1 << 24) - 1;
/// Depth sits in bits 24..30 (0..=33 fits in 6 bits).
const DEPTH_SHIFT: u32 = 24;
const DEPTH_MASK: u32 = 0x3f;
/// Depth of a /24: tbl8 entries at or below it come from a route covering the whole /24.
const DEPTH_24: u8 = 25;

pub(crate) fn check_len(len: u8, max: u8) -> Result<(), TableError> {
    if len > max {
        return Err(TableError::PrefixLength { len, max });
    }
    Ok(())
}

pub(crate) fn check_group(group: GroupId) -> Result<(), TableError> {
    match group {
        0 => Err(TableError::ZeroGroup),
        g if g > MAX_GROUP_ID => Err(TableError::GroupTooLarge {
            group: g,
            max: MAX_GROUP_ID,
        }),
        _ => Ok(()),
    }
}

/// The per-length exact-match maps (`routes` of the module invariants).
pub(crate) fn route_maps<K>(widths: usize) -> Vec<HashMap<K, GroupId>> {
    (0..=widths).map(|_| HashMap::new()).collect()
}

/// The host bits of an IPv6 prefix of length `len`.
pub(crate) fn host6(len: u8) -> u128 {
    u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)
}

fn mask4(addr: u32, len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len))
        .map_or(0, |m| addr & m)
}

fn entry4(group: GroupId, depth: u8) -> u32 {
    group | (u32::from(depth) << DEPTH_SHIFT)
}

fn depth4(entry: u32) -> u8 {
    // Masked to 6 bits, so the narrowing cannot lose anything.
    ((entry >> DEPTH_SHIFT) & DEPTH_MASK) as u8
}

/// The IPv4 FIB: DIR-24-8.
///
/// `tbl24` has one entry per /24; an entry either holds the answer for the whole /24 or (flag
/// `EXT`) points to a tbl8 group of 256 entries, one per address. A lookup is one load, or two
/// for /24s that hold longer prefixes. tbl8 groups are taken from a free list on demand and given
/// back as soon as their /24 no longer holds a prefix longer than /24 (then all 256 entries are
/// equal, so the group collapses into its tbl24 entry). Every `EXT` entry therefore points to a
/// group holding at least one entry deeper than a /24.
#[derive(Debug, Clone)]
pub struct Fib4 {
    /// 2^24 entries (64 MiB, on huge pages: a lookup per packet lands anywhere in it),
    /// allocated zeroed so untouched pages stay unbacked.
    tbl24: HugeArray<u32>,
    /// `TBL8_GROUP` entries per group; its length is the capacity, grown by doubling (up to
    /// `max_tbl8` groups) so that it stays one huge-page mapping instead of growing in place.
    tbl8: HugeArray<u32>,
    /// tbl8 groups ever handed out (the used prefix of `tbl8`).
    tbl8_groups: usize,
    /// Allocated tbl8 groups currently unused.
    free: Vec<u32>,
    max_tbl8: usize,
    routes: Vec<HashMap<u32, GroupId>>,
    count: usize,
}

impl Fib4 {
    /// An empty FIB that may use up to `max_tbl8` tbl8 groups (1 KiB each; one per /24 holding
    /// prefixes longer than /24). At most [`MAX_TBL8`] groups are addressable; more is clamped.
    pub fn new(max_tbl8: usize) -> Self {
        Self {
            tbl24: HugeArray::zeroed("fib4 tbl24", TBL24_LEN),
            tbl8: HugeArray::zeroed("fib4 tbl8", 0),
            tbl8_groups: 0,
            free: Vec::new(),
            max_tbl8: max_tbl8.min(MAX_TBL8),
            routes: route_maps(32),
            count: 0,
        }
    }

    /// The group of the longest prefix covering `addr` (host order); 0 when none does.
    #[inline]
    pub fn lookup(&self, addr: u32) -> GroupId {
        let e = self.tbl24.get((addr >> 8) as usize).copied().unwrap_or(0);
        let e = if e & EXT == 0 {
            e
        } else {
            let i = (((e & VALUE_MASK) as usize) << 8) | (addr & 0xff) as usize;
            self.tbl8.get(i).copied().unwrap_or(0)
        };
        e & VALUE_MASK
    }

    /// [`Fib4::lookup`] on an address.
    #[inline]
    pub fn lookup_addr(&self, addr: Ipv4Addr) -> GroupId {
        self.lookup(u32::from(addr))
    }

    /// Installs `prefix/len -> group`; returns the group that exact prefix had before.
    /// Fails (changing nothing) on a bad length or group, or when a prefix longer than /24 needs
    /// a tbl8 group and none is left.
    pub fn insert(
        &mut self,
        prefix: Ipv4Addr,
        len: u8,
        group: GroupId,
    ) -> Result<Option<GroupId>, TableError> {
        check_len(len, 32)?;
        check_group(group)?;
        let p = mask4(u32::from(prefix), len);
        let prev = self.routes[usize::from(len)].get(&p).copied();
        if prev == Some(group) {
            return Ok(prev);
        }
        let depth = len + 1;
        let new = entry4(group, depth);
        if len <= 24 {
            let start = (p >> 8) as usize;
            for i in start..start + (1usize << (24 - len)) {
                let e = self.tbl24[i];
                if e & EXT != 0 {
                    let g = (e & VALUE_MASK) as usize * TBL8_GROUP;
                    overwrite(&mut self.tbl8[g..g + TBL8_GROUP], depth, new);
                } else if depth4(e) <= depth {
                    self.tbl24[i] = new;
                }
            }
        } else {
            // Allocate before changing anything, so running out leaves the FIB as it was.
            let g = self.tbl8_group((p >> 8) as usize)? * TBL8_GROUP;
            let lo = g + (p & 0xff) as usize;
            overwrite(&mut self.tbl8[lo..lo + (1usize << (32 - len))], depth, new);
        }
        self.routes[usize::from(len)].insert(p, group);
        if prev.is_none() {
            self.count += 1;
        }
        Ok(prev)
    }

    /// Removes `prefix/len`; returns its group, or `None` when it was not installed.
    pub fn remove(&mut self, prefix: Ipv4Addr, len: u8) -> Result<Option<GroupId>, TableError> {
        check_len(len, 32)?;
        let p = mask4(u32::from(prefix), len);
        let Some(old) = self.routes[usize::from(len)].remove(&p) else {
            return Ok(None);
        };
        self.count -= 1;
        let depth = len + 1;
        let cover = self.covering(p, len);
        if len <= 24 {
            let start = (p >> 8) as usize;
            for i in start..start + (1usize << (24 - len)) {
                let e = self.tbl24[i];
                if e & EXT != 0 {
                    let g = (e & VALUE_MASK) as usize * TBL8_GROUP;
                    replace(&mut self.tbl8[g..g + TBL8_GROUP], depth, cover);
                    self.try_collapse(i);
                } else if depth4(e) == depth {
                    self.tbl24[i] = cover;
                }
            }
        } else {
            let i = (p >> 8) as usize;
            let e = self.tbl24[i];
            if e & EXT != 0 {
                let lo = (e & VALUE_MASK) as usize * TBL8_GROUP + (p & 0xff) as usize;
                replace(
                    &mut self.tbl8[lo..lo + (1usize << (32 - len))],
                    depth,
                    cover,
                );
                self.try_collapse(i);
            }
        }
        Ok(Some(old))
    }

    /// The group installed for exactly `prefix/len`, if any.
    pub fn get(&self, prefix: Ipv4Addr, len: u8) -> Option<GroupId> {
        let map = self.routes.get(usize::from(len))?;
        map.get(&mask4(u32::from(prefix), len)).copied()
    }

    /// Number of installed prefixes.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No prefix installed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// tbl8 groups currently holding a /24 (out of `max_tbl8`).
    pub fn tbl8_in_use(&self) -> usize {
        self.tbl8_groups - self.free.len()
    }

    /// Where the big tables (tbl24, tbl8) live, to read back how the kernel backs them.
    pub fn memory(&self) -> Vec<Placement> {
        vec![self.tbl24.placement(), self.tbl8.placement()]
    }

    /// The entry (group, depth) of the longest installed prefix strictly shorter than `len`
    /// covering `p`; 0 when there is none.
    fn covering(&self, p: u32, len: u8) -> u32 {
        (0..len)
            .rev()
            .find_map(|l| {
                let g = self.routes[usize::from(l)].get(&mask4(p, l))?;
                Some(entry4(*g, l + 1))
            })
            .unwrap_or(0)
    }

    /// The tbl8 group of tbl24 entry `i`, allocating one (filled with the entry's answer) when
    /// the entry holds no group yet.
    fn tbl8_group(&mut self, i: usize) -> Result<usize, TableError> {
        let e = self.tbl24[i];
        if e & EXT != 0 {
            return Ok((e & VALUE_MASK) as usize);
        }
        let g = match self.free.pop() {
            Some(g) => g as usize,
            None if self.tbl8_groups < self.max_tbl8 => {
                if self.tbl8_groups * TBL8_GROUP == self.tbl8.len() {
                    let groups = (self.tbl8_groups * 2).max(64).min(self.max_tbl8);
                    self.tbl8 = self.tbl8.resized(groups * TBL8_GROUP, 0);
                }
                self.tbl8_groups += 1;
                self.tbl8_groups - 1
            }
            None => return Err(TableError::Tbl8Exhausted { max: self.max_tbl8 }),
        };
        self.tbl8[g * TBL8_GROUP..(g + 1) * TBL8_GROUP].fill(e);
        // g < max_tbl8 <= 2^24, so it fits the value bits.
        self.tbl24[i] = EXT | g as u32;
        Ok(g)
    }

    /// Folds tbl24 entry `i`'s tbl8 group back when no entry in it is deeper than a /24: then
    /// every entry comes from the same covering route (or none) and the group is uniform.
    fn try_collapse(&mut self, i: usize) {
        let e = self.tbl24[i];
        if e & EXT == 0 {
            return;
        }
        let g = (e & VALUE_MASK) as usize;
        let group = &self.tbl8[g * TBL8_GROUP..(g + 1) * TBL8_GROUP];
        if group.iter().all(|&s| depth4(s) <= DEPTH_24) {
            self.tbl24[i] = group[0];
            self.free.push(g as u32);
        }
    }
}

/// Insert rule: a slot takes the new route unless a more specific one owns it.
fn overwrite(slots: &mut [u32], depth: u8, new: u32) {
    for s in slots {
        if depth4(*s) <= depth {
            *s = new;
        }
    }
}

/// Removal rule: only the slots of the removed prefix (its exact depth) fall back to the cover.
fn replace(slots: &mut [u32], depth: u8, cover: u32) {
    for s in slots {
        if depth4(*s) == depth {
            *s = cover;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fib6;
    use proptest::prelude::*;
    use std::net::Ipv6Addr;

    /// The naive reference: a list of routes, longest match by linear scan.
    #[derive(Default)]
    struct Naive<A> {
        routes: Vec<(A, u8, GroupId)>,
    }

    impl<A: Copy + PartialEq> Naive<A> {
        fn insert(&mut self, p: A, len: u8, g: GroupId) -> Option<GroupId> {
            match self.routes.iter_mut().find(|r| r.0 == p && r.1 == len) {
                Some(r) => Some(std::mem::replace(&mut r.2, g)),
                None => {
                    self.routes.push((p, len, g));
                    None
                }
            }
        }

        fn remove(&mut self, p: A, len: u8) -> Option<GroupId> {
            let i = self.routes.iter().position(|r| r.0 == p && r.1 == len)?;
            Some(self.routes.swap_remove(i).2)
        }

        fn lookup(&self, covers: impl Fn(A, u8) -> bool) -> GroupId {
            self.routes
                .iter()
                .filter(|r| covers(r.0, r.1))
                .max_by_key(|r| r.1)
                .map_or(0, |r| r.2)
        }
    }

    /// Deterministic generator for the large tests.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    #[derive(Debug, Clone)]
    enum Op<A> {
        Insert(A, u8, GroupId),
        Remove(A, u8),
    }

    /// Addresses packed into four /24s (so prefixes overlap and share tbl8 groups) or anywhere.
    fn addr4() -> impl Strategy<Value = u32> {
        prop_oneof![
            3 => (0u32..4, any::<u8>()).prop_map(|(x, b)| 0x0a00_0000 | (x << 8) | u32::from(b)),
            1 => any::<u32>(),
        ]
    }

    fn len4() -> impl Strategy<Value = u8> {
        // Short prefixes rewrite up to 2^24 entries each; keep them rare so the test stays fast.
        prop_oneof![1 => 0u8..8, 12 => 8u8..=24, 12 => 25u8..=32]
    }

    fn ops4() -> impl Strategy<Value = Vec<Op<u32>>> {
        let op = prop_oneof![
            3 => (addr4(), len4(), 1u32..6).prop_map(|(a, l, g)| Op::Insert(a, l, g)),
            2 => (addr4(), len4()).prop_map(|(a, l)| Op::Remove(a, l)),
        ];
        prop::collection::vec(op, 1..40)
    }

    fn check4(fib: &Fib4, naive: &Naive<u32>, probes: &[u32]) -> Result<(), TestCaseError> {
        for &a in probes {
            let want = naive.lookup(|p, l| mask4(a, l) == p);
            prop_assert_eq!(fib.lookup(a), want, "address {:#010x}", a);
        }
        prop_assert_eq!(fib.len(), naive.routes.len());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn fib4_matches_naive(ops in ops4(), extra in prop::collection::vec(addr4(), 16)) {
            let mut fib = Fib4::new(64);
            let mut naive = Naive::default();
            let mut probes = extra;
            for op in &ops {
                match *op {
                    Op::Insert(a, l, g) => {
                        let p = mask4(a, l);
                        prop_assert_eq!(fib.insert(Ipv4Addr::from(a), l, g), Ok(naive.insert(p, l, g)));
                        probes.extend([a, p, p | !mask4(u32::MAX, l), a ^ 1]);
                    }
                    Op::Remove(a, l) => {
                        let p = mask4(a, l);
                        prop_assert_eq!(fib.remove(Ipv4Addr::from(a), l), Ok(naive.remove(p, l)));
                    }
                }
                check4(&fib, &naive, &probes)?;
            }
            for (p, l, _) in std::mem::take(&mut naive.routes) {
                prop_assert!(fib.remove(Ipv4Addr::from(p), l)?.is_some());
            }
            check4(&fib, &naive, &probes)?;
            prop_assert_eq!(fib.tbl8_in_use(), 0, "tbl8 groups leaked after removing every route");
        }
    }

    /// Addresses near one base (a few low bits and bits 62..63 vary, or one bit anywhere is
    /// flipped) so prefixes nest, share trie nodes and part at every depth; or anywhere.
    fn addr6() -> impl Strategy<Value = u128> {
        let base = 0x2001_0db8_u128 << 96;
        prop_oneof![
            3 => (0u128..4, any::<u16>()).prop_map(move |(x, b)| base | (x << 64) | u128::from(b)),
            2 => (0u32..128).prop_map(move |b| base ^ (1 << b)),
            1 => any::<u128>(),
        ]
    }

    fn ops6() -> impl Strategy<Value = Vec<Op<u128>>> {
        let len = prop_oneof![
            1 => Just(0u8),
            1 => Just(128u8),
            2 => 1u8..32,
            4 => 32u8..=64,
            2 => 65u8..100,
            4 => 100u8..=128,
        ];
        let op = prop_oneof![
            3 => (addr6(), len.clone(), 1u32..6).prop_map(|(a, l, g)| Op::Insert(a, l, g)),
            2 => (addr6(), len).prop_map(|(a, l)| Op::Remove(a, l)),
        ];
        prop::collection::vec(op, 1..40)
    }

    fn check6(fib: &Fib6, naive: &Naive<u128>, probes: &[u128]) -> Result<(), TestCaseError> {
        for &a in probes {
            let want = naive.lookup(|p, l| a & !host6(l) == p);
            prop_assert_eq!(fib.lookup(a), want, "address {:#034x}", a);
        }
        prop_assert_eq!(fib.len(), naive.routes.len());
        if let Err(e) = fib.check_invariants(probes.iter().copied()) {
            return Err(TestCaseError::fail(e));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn fib6_matches_naive(ops in ops6(), extra in prop::collection::vec(addr6(), 16)) {
            let mut fib = Fib6::new();
            let mut naive = Naive::default();
            let mut probes = extra;
            for op in &ops {
                match *op {
                    Op::Insert(a, l, g) => {
                        let p = a & !host6(l);
                        prop_assert_eq!(fib.insert(Ipv6Addr::from(a), l, g), Ok(naive.insert(p, l, g)));
                        probes.extend([a, p, p | host6(l), a ^ 1, p.wrapping_sub(1)]);
                    }
                    Op::Remove(a, l) => {
                        let p = a & !host6(l);
                        prop_assert_eq!(fib.remove(Ipv6Addr::from(a), l), Ok(naive.remove(p, l)));
                    }
                }
                check6(&fib, &naive, &probes)?;
            }
            for (p, l, _) in std::mem::take(&mut naive.routes) {
                prop_assert!(fib.remove(Ipv6Addr::from(p), l)?.is_some());
            }
            check6(&fib, &naive, &probes)?;
            prop_assert!(fib.is_empty());
        }
    }

    #[test]
    fn tbl8_grows_past_a_huge_page_and_reports_its_memory() {
        // 3000 /24s holding a /32 each: tbl8 grows from 64 groups by doubling to 4096 (4 MiB,
        // on a huge-page mapping), and every earlier group keeps its entries.
        let mut fib = Fib4::new(4096);
        for i in 0..3000u32 {
            fib.insert(Ipv4Addr::from((10 << 24) | (i << 8) | 1), 32, i + 1)
                .expect("fits");
        }
        assert_eq!(fib.tbl8_in_use(), 3000);
        for i in 0..3000u32 {
            assert_eq!(fib.lookup((10 << 24) | (i << 8) | 1), i + 1);
            assert_eq!(fib.lookup((10 << 24) | (i << 8) | 2), 0);
        }
        let mem = ecmp_mem::read_back(&fib.memory());
        assert_eq!(mem[0].name, "fib4 tbl24");
        assert_eq!(mem[0].bytes, 64 << 20);
        assert_eq!(mem[1].name, "fib4 tbl8");
        assert_eq!(mem[1].bytes, 4096 * 1024);
        assert_ne!(mem[0].backing, ecmp_mem::Backing::Unknown);
        let copy = fib.clone();
        assert_eq!(copy.lookup((10 << 24) | (2999 << 8) | 1), 3000);
    }

    #[test]
    fn rejects_bad_input_and_changes_nothing() {
        let mut fib = Fib4::new(1);
        let a = Ipv4Addr::new(10, 0, 0, 0);
        assert_eq!(
            fib.insert(a, 33, 1),
            Err(TableError::PrefixLength { len: 33, max: 32 })
        );
        assert_eq!(fib.insert(a, 8, 0), Err(TableError::ZeroGroup));
        assert_eq!(
            fib.insert(a, 8, MAX_GROUP_ID + 1),
            Err(TableError::GroupTooLarge {
                group: MAX_GROUP_ID + 1,
                max: MAX_GROUP_ID
            })
        );
        assert_eq!(fib.insert(a, 8, MAX_GROUP_ID), Ok(None));
        assert_eq!(fib.insert(a, 25, 2), Ok(None));
        // The only tbl8 group is taken: a /25 in another /24 is refused and nothing changes.
        let b = Ipv4Addr::new(10, 0, 1, 0);
        assert_eq!(
            fib.insert(b, 25, 3),
            Err(TableError::Tbl8Exhausted { max: 1 })
        );
        assert_eq!(fib.len(), 2);
        assert_eq!(fib.lookup_addr(b), MAX_GROUP_ID);
        assert_eq!(fib.lookup_addr(Ipv4Addr::new(10, 0, 0, 1)), 2);
        // Removing the /25 frees the group for the other /24.
        assert_eq!(fib.remove(a, 25), Ok(Some(2)));
        assert_eq!(fib.insert(b, 25, 3), Ok(None));
        assert_eq!(fib.lookup_addr(Ipv4Addr::new(10, 0, 1, 127)), 3);
        assert_eq!(fib.lookup_addr(Ipv4Addr::new(10, 0, 1, 128)), MAX_GROUP_ID);

        let mut fib6 = Fib6::new();
        assert_eq!(
            fib6.insert(Ipv6Addr::UNSPECIFIED, 129, 1),
            Err(TableError::PrefixLength { len: 129, max: 128 })
        );
        assert_eq!(
            fib6.insert(Ipv6Addr::UNSPECIFIED, 0, 0),
            Err(TableError::ZeroGroup)
        );
        assert!(fib6.is_empty());
    }

    #[test]
    fn default_routes_and_host_routes_at_the_edges() {
        let mut fib = Fib4::new(4);
        fib.insert(Ipv4Addr::UNSPECIFIED, 0, 1).unwrap();
        fib.insert(Ipv4Addr::BROADCAST, 32, 2).unwrap();
        assert_eq!(fib.lookup(0), 1);
        assert_eq!(fib.lookup(u32::MAX), 2);
        assert_eq!(fib.lookup(u32::MAX - 1), 1);
        assert_eq!(fib.get(Ipv4Addr::new(1, 2, 3, 4), 0), Some(1));

        let mut fib6 = Fib6::new();
        fib6.insert(Ipv6Addr::UNSPECIFIED, 0, 1).unwrap();
        fib6.insert(Ipv6Addr::from(u128::MAX), 128, 2).unwrap();
        fib6.insert(Ipv6Addr::UNSPECIFIED, 128, 3).unwrap();
        assert_eq!(fib6.lookup(u128::MAX), 2);
        assert_eq!(fib6.lookup(u128::MAX - 1), 1);
        assert_eq!(fib6.lookup(0), 3);
        assert_eq!(fib6.lookup(1), 1);
        assert_eq!(fib6.remove(Ipv6Addr::UNSPECIFIED, 0), Ok(Some(1)));
        assert_eq!(fib6.lookup(1), 0);
        assert_eq!(fib6.lookup(u128::MAX), 2);
    }

    /// LPM through per-length hash maps: an independent reference fast enough for 1M routes.
    fn lpm_by_length<A: Copy + Eq + std::hash::Hash>(
        maps: &[std::collections::HashMap<A, GroupId>],
        mask: impl Fn(u8) -> A,
    ) -> GroupId {
        (0..maps.len())
            .rev()
            .find_map(|l| {
                let l = u8::try_from(l).ok()?;
                maps[usize::from(l)].get(&mask(l)).copied()
            })
            .unwrap_or(0)
    }

    #[test]
    fn million_ipv4_routes() {
        let mut rng = SplitMix(0x5eed);
        let mut fib = Fib4::new(1 << 16);
        let mut reference = vec![std::collections::HashMap::new(); 33];
        let mut installed = Vec::with_capacity(1_000_000);
        // Roughly the shape of a full table: mostly /24, some /16../23, a few short and long.
        while fib.len() < 1_000_000 {
            let r = rng.next();
            let spread = ((r >> 8) & 0xff) as u8;
            let len = match r % 1000 {
                0..=599 => 24,
                600..=799 => 20 + spread % 4,
                800..=949 => 13 + spread % 7,
                950..=959 => 8 + spread % 5,
                _ => 25 + spread % 8,
            };
            let p = mask4((r >> 32) as u32, len);
            let g = 1 + ((r >> 16) & 0xffff) as u32;
            fib.insert(Ipv4Addr::from(p), len, g).unwrap();
            if reference[usize::from(len)].insert(p, g).is_none() {
                installed.push((p, len));
            }
        }
        let check = |fib: &Fib4,
                     reference: &[std::collections::HashMap<u32, GroupId>],
                     rng: &mut SplitMix| {
            for i in 0..200_000 {
                let r = rng.next();
                let a = if i % 2 == 0 {
                    r as u32
                } else {
                    let (p, l) = installed[(r >> 32) as usize % installed.len()];
                    p | (r as u32 & !mask4(u32::MAX, l))
                };
                assert_eq!(
                    fib.lookup(a),
                    lpm_by_length(reference, |l| mask4(a, l)),
                    "{a:#010x}"
                );
            }
        };
        check(&fib, &reference, &mut rng);
        for &(p, l) in installed.iter().step_by(2) {
            assert!(fib.remove(Ipv4Addr::from(p), l).unwrap().is_some());
            reference[usize::from(l)].remove(&p);
        }
        assert_eq!(fib.len(), installed.len() - installed.len().div_ceil(2));
        check(&fib, &reference, &mut rng);
    }

    #[test]
    fn million_ipv6_routes() {
        let mut rng = SplitMix(0x6eed);
        let mut fib = Fib6::new();
        let mut reference = vec![std::collections::HashMap::new(); 129];
        let mut installed = Vec::with_capacity(1_000_000);
        // A default route under everything, kept while half the rest is removed.
        fib.insert(Ipv6Addr::UNSPECIFIED, 0, 7).unwrap();
        reference[0].insert(0u128, 7);
        while fib.len() < 1_000_000 {
            let (r, s) = (rng.next(), rng.next());
            let spread = ((r >> 8) & 0xff) as u8;
            let len = match r % 100 {
                0..=49 => 48,
                50..=79 => 32 + spread % 16,
                80..=94 => 49 + spread % 16,
                95..=97 => 16 + spread % 16,
                _ => 65 + spread % 64,
            };
            // Global unicast 2000::/3, as real tables are.
            let a = (u128::from(s) << 64 | u128::from(r)) >> 3 | 1 << 125;
            let p = a & !host6(len);
            let g = 1 + ((r >> 16) & 0xffff) as u32;
            fib.insert(Ipv6Addr::from(p), len, g).unwrap();
            if reference[usize::from(len)].insert(p, g).is_none() {
                installed.push((p, len));
            }
        }
        let check = |fib: &Fib6,
                     reference: &[std::collections::HashMap<u128, GroupId>],
                     rng: &mut SplitMix| {
            for i in 0..200_000 {
                let r = u128::from(rng.next()) << 64 | u128::from(rng.next());
                let a = if i % 2 == 0 {
                    r
                } else {
                    let (p, l) = installed[(r >> 64) as usize % installed.len()];
                    p | (r & host6(l))
                };
                assert_eq!(
                    fib.lookup(a),
                    lpm_by_length(reference, |l| a & !host6(l)),
                    "{a:#034x}"
                );
            }
        };
        check(&fib, &reference, &mut rng);
        for &(p, l) in installed.iter().step_by(2) {
            assert!(fib.remove(Ipv6Addr::from(p), l).unwrap().is_some());
            reference[usize::from(l)].remove(&p);
        }
        assert_eq!(fib.len(), 1 + installed.len() - installed.len().div_ceil(2));
        check(&fib, &reference, &mut rng);
        fib.check_invariants(installed.iter().map(|r| r.0)).unwrap();
    }
}
