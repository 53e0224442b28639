//! The IPv6 FIB: 2^20 directly indexed root nodes (one per value of the top 20 address bits)
//! above a path-compressed 64-way trie whose nodes are popcount-compressed (poptrie-style
//! bitmaps) and keep the longest match seen so far instead of pushing leaves down.
//!
//! # Why this shape
//! - Lookup cost. Tables sit in 2000::/3 and are dense in their top ~20 bits, then sparse. A
//!   lookup reads its root slot (one 32-byte, 32-byte-aligned line: bitmaps, block offsets and
//!   the best route of length <= 20), which already resolves bits 20..26; then one 64-byte node
//!   per stride that *branches or holds a route*: path compression jumps over every stride with
//!   a single child and no route (a node carries the address bits above it and a mismatch ends
//!   the walk). With 1M scattered routes the slot has 2^6 entries for ~8 routes, so a /48 is
//!   root + 1 node; a node holding one route keeps its group inline (`uniform`), so there is no
//!   third load. Binary search on prefix lengths (Waldvogel) needs ~7 dependent hash probes,
//!   each a likely miss at 1M routes; an uncompressed 8-bit-stride trie needs 4+ dependent loads
//!   for a /48 and a 2 KiB node per lone route. Measured (release, 1M routes: 60% /48, 20%
//!   /32../47, 15% /49../64, 4% /128, 1% /65../127, plus /0; random addresses inside random
//!   routes, 1/8 fully random; 2 shared, loaded cores): ~85 ns per lookup, 45..55 ns at 100k.
//! - Memory per route. Children of a node sit contiguously in one arena block, indexed by the
//!   popcount of the child bitmap below the entry, so there is no per-child pointer; a lone route
//!   costs one node (64 B) plus its expanded leaf entries (4 B each, 1..32 per route, popcount
//!   compressed); branching nodes number fewer than the routes. The root is 32 MiB allocated
//!   zeroed, so only touched slots are backed. 1M routes: ~1.37M nodes (88 MiB), ~6.8M leaf
//!   entries (27 MiB), ~200 MiB in all with the exact-match maps (`routes`), which are the source
//!   of truth for `get` and for the covering route on removal.
//! - Update cost. An insert or removal touches one node's leaves (decompress the 64 entries,
//!   apply the depth rule of [`crate::fib`], recompress) and at most two nodes' child blocks
//!   (add or drop one child, splice a node that no longer branches): ~0.5 us per update at 1M
//!   routes. Routes no longer than /20 rewrite the base of their root slots only. Because a node
//!   keeps only the routes ending *in* it and the walk remembers the best match so far, a short
//!   route never rewrites the subtrees below it.
//!
//! # Invariants
//! - Grid: a node at bit position `pos` (20 for root nodes, then 26, .., 122) covers address
//!   bits `pos..pos + 6` and holds exactly the routes of length `pos + 1 ..= pos + 6` under its
//!   `key` (the address bits above `pos`, lower bits zero), expanded over its 64 entries with the
//!   depth rule: each entry is the longest such route covering it, as `group | depth << 24`
//!   (`depth = len + 1`, 0 = none). Routes of length 0..=20 live in the root slots' `base` the
//!   same way.
//! - Compression: a trie node exists only if it holds a route or has at least two children; the
//!   child behind entry `i` is the topmost such node below it, and its key extends the parent's
//!   key and `i`. Nodes without routes can therefore be skipped by a lookup that fails their key.
//! - Arenas: `leaf_map` bit `i` is set iff entry `i` is non-zero, and the set entries sit in
//!   order at `groups[leaves..]`; `child_map` bit `i` is set iff entry `i` has a child, and the
//!   children sit in order at `nodes[kids..]`. `uniform` is the common value of the set entries
//!   when they are all equal, else 0. Freed blocks go to a free list per block size and are
//!   reused before the arenas grow. A root slot stores its leaf block offset in 32 bits: 2^32
//!   leaf entries would take 16 GiB, beyond any table this runs with (debug-asserted).

use std::net::Ipv6Addr;

use ecmp_mem::{HugeArray, Placement};
use foldhash::HashMap;

use crate::error::TableError;
use crate::fib::{check_group, check_len, host6, route_maps};
use crate::nexthop::GroupId;

/// Address bits indexed directly by the root.
const ROOT_BITS: u8 = 20;
/// Address bits consumed by one node (64 entries: one `u64` bitmap).
const STRIDE: u8 = 6;
/// Entries per node.
const FANOUT: usize = 1 << STRIDE;
/// Leaf entry: the group in the low 24 bits (the FIB's `MAX_GROUP_ID`), depth above.
const GROUP_MASK: u32 = (1 << 24) - 1;
const DEPTH_SHIFT: u32 = 24;

fn leaf(group: GroupId, len: u8) -> u32 {
    group | (u32::from(len) + 1) << DEPTH_SHIFT
}

fn depth(entry: u32) -> u32 {
    entry >> DEPTH_SHIFT
}

/// The grid position of the node holding routes of length `len` (> `ROOT_BITS`), or the node
/// whose stride holds bit `len` when `len` is a bit index.
fn level(len: u8) -> u8 {
    ROOT_BITS + STRIDE * ((len - ROOT_BITS - 1) / STRIDE)
}

/// The grid position of the node whose stride holds bit index `bit` (>= `ROOT_BITS`).
fn level_of_bit(bit: u8) -> u8 {
    ROOT_BITS + STRIDE * ((bit - ROOT_BITS) / STRIDE)
}

/// Entry index of `addr` in a node at `pos`.
fn index(addr: u128, pos: u8) -> u32 {
    // Masked to 6 bits, so the narrowing keeps everything.
    ((addr >> (128 - STRIDE - pos)) as u32) & (FANOUT as u32 - 1)
}

/// Rank of entry `i` among the set bits of `map`: its offset in the node's block.
fn rank(map: u64, i: u32) -> usize {
    (map & ((1u64 << i) - 1)).count_ones() as usize
}

/// One trie node; one cache line, so a node costs one miss.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Node {
    /// Address bits above `pos` (lower bits zero) that an address must have to enter.
    key: u128,
    child_map: u64,
    leaf_map: u64,
    /// First child in `nodes`.
    kids: usize,
    /// First leaf entry in `groups`.
    leaves: usize,
    /// The value of every set leaf entry when they are all equal (a node holding one route, the
    /// common case), else 0: saves the lookup its load from `groups`.
    uniform: u32,
    /// First address bit of this node's stride.
    pos: u8,
}

/// A vector of fixed-size blocks with one free list per block size (1..=64).
#[derive(Debug, Clone)]
struct Arena<T> {
    items: Vec<T>,
    free: Vec<Vec<usize>>,
}

impl<T: Copy + Default> Arena<T> {
    fn new() -> Self {
        Self {
            items: Vec::new(),
            free: vec![Vec::new(); FANOUT + 1],
        }
    }

    fn alloc(&mut self, size: usize) -> usize {
        if size == 0 {
            return 0;
        }
        if let Some(at) = self.free[size].pop() {
            return at;
        }
        let at = self.items.len();
        self.items.resize(at + size, T::default());
        at
    }

    fn release(&mut self, at: usize, size: usize) {
        if size != 0 {
            self.free[size].push(at);
        }
    }

    /// Items held by live blocks.
    #[cfg(test)]
    fn in_use(&self) -> usize {
        let free: usize = self.free.iter().enumerate().map(|(s, l)| s * l.len()).sum();
        self.items.len() - free
    }
}

/// A node that has children: a root slot's node or a trie node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parent {
    Root(usize),
    Node(usize),
}

/// Where a node hangs: entry `index` of `parent`.
#[derive(Debug, Clone, Copy)]
struct Edge {
    parent: Parent,
    index: u32,
}

/// Root slots.
const SLOTS: usize = 1 << ROOT_BITS;
/// Words per root slot: `[child_map, leaf_map, kids, leaves | base << 32]`, where `base` is the
/// leaf entry of the longest route of length <= `ROOT_BITS` covering the slot.
const SLOT_WORDS: usize = 4;

/// The root slots' nodes (position `ROOT_BITS`, key = the slot's bits), packed as integers so
/// the table is allocated zeroed (untouched slots cost no memory) and started at a 32-byte
/// boundary so a slot is one cache line, not two. They are never removed nor compressed, so a
/// lookup always starts with one.
#[derive(Debug)]
struct RootTable {
    /// 32 MiB, on huge pages (every IPv6 lookup starts with a load anywhere in it).
    words: HugeArray<u64>,
    /// Words skipped at the front to reach the 32-byte boundary.
    skew: usize,
}

impl RootTable {
    fn new() -> Self {
        let words = HugeArray::zeroed("fib6 root", SLOTS * SLOT_WORDS + SLOT_WORDS - 1);
        // Only the address's offset is used, to pick where slot 0 starts.
        let misalign = words.as_ptr() as usize % (SLOT_WORDS * 8);
        let skew = (SLOT_WORDS - misalign / 8) % SLOT_WORDS;
        Self { words, skew }
    }

    #[inline]
    fn get(&self, slot: usize) -> Option<&[u64]> {
        let at = self.skew + slot * SLOT_WORDS;
        self.words.get(at..at + SLOT_WORDS)
    }

    fn get_mut(&mut self, slot: usize) -> &mut [u64] {
        let at = self.skew + slot * SLOT_WORDS;
        &mut self.words[at..at + SLOT_WORDS]
    }
}

impl Clone for RootTable {
    /// A fresh allocation has its own alignment, so the slots are copied one by one.
    fn clone(&self) -> Self {
        let mut t = Self::new();
        for slot in 0..SLOTS {
            if let Some(w) = self.get(slot) {
                t.get_mut(slot).copy_from_slice(w);
            }
        }
        t
    }
}

/// The IPv6 FIB; see the module doc for the structure and its invariants.
#[derive(Debug, Clone)]
pub struct Fib6 {
    root: RootTable,
    nodes: Arena<Node>,
    groups: Arena<u32>,
    routes: Vec<HashMap<u128, GroupId>>,
    count: usize,
}

impl Default for Fib6 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fib6 {
    /// An empty FIB.
    pub fn new() -> Self {
        Self {
            root: RootTable::new(),
            nodes: Arena::new(),
            groups: Arena::new(),
            routes: route_maps(128),
            count: 0,
        }
    }

    /// Where the big table (the root) lives, to read back how the kernel backs it.
    pub fn memory(&self) -> Vec<Placement> {
        vec![self.root.words.placement()]
    }

    /// The group of the longest prefix covering `addr` (host order); 0 when none does.
    #[inline]
    pub fn lookup(&self, addr: u128) -> GroupId {
        let slot = (addr >> (128 - ROOT_BITS)) as usize;
        let Some(&[child_map, leaf_map, kids, packed]) = self.root.get(slot) else {
            return 0;
        };
        let i = index(addr, ROOT_BITS);
        let bit = 1u64 << i;
        let mut best = (packed >> 32) as u32;
        if leaf_map & bit != 0 {
            let at = (packed as u32) as usize + rank(leaf_map, i);
            best = self.groups.items.get(at).copied().unwrap_or(best);
        }
        if child_map & bit != 0 {
            let mut next = kids as usize + rank(child_map, i);
            // Positions strictly increase down the trie, so this ends within 18 nodes.
            while let Some(n) = self.nodes.items.get(next) {
                if (addr ^ n.key) >> (128 - n.pos) != 0 {
                    break;
                }
                let i = index(addr, n.pos);
                let bit = 1u64 << i;
                if n.leaf_map & bit != 0 {
                    best = if n.uniform != 0 {
                        n.uniform
                    } else {
                        let at = n.leaves + rank(n.leaf_map, i);
                        self.groups.items.get(at).copied().unwrap_or(best)
                    };
                }
                if n.child_map & bit == 0 {
                    break;
                }
                next = n.kids + rank(n.child_map, i);
            }
        }
        best & GROUP_MASK
    }

    /// [`Fib6::lookup`] on an address.
    #[inline]
    pub fn lookup_addr(&self, addr: Ipv6Addr) -> GroupId {
        self.lookup(u128::from(addr))
    }

    /// Installs `prefix/len -> group`; returns the group that exact prefix had before.
    pub fn insert(
        &mut self,
        prefix: Ipv6Addr,
        len: u8,
        group: GroupId,
    ) -> Result<Option<GroupId>, TableError> {
        check_len(len, 128)?;
        check_group(group)?;
        let p = u128::from(prefix) & !host6(len);
        let prev = self.routes[usize::from(len)].insert(p, group);
        if prev == Some(group) {
            return Ok(prev);
        }
        if prev.is_none() {
            self.count += 1;
        }
        let new = leaf(group, len);
        if len <= ROOT_BITS {
            self.rewrite_base(p, len, |b| depth(b) <= depth(new), new);
        } else {
            self.insert_deep(p, len, new);
        }
        Ok(prev)
    }

    /// Removes `prefix/len`; returns its group, or `None` when it was not installed.
    pub fn remove(&mut self, prefix: Ipv6Addr, len: u8) -> Result<Option<GroupId>, TableError> {
        check_len(len, 128)?;
        let p = u128::from(prefix) & !host6(len);
        let Some(old) = self.routes[usize::from(len)].remove(&p) else {
            return Ok(None);
        };
        self.count -= 1;
        let gone = leaf(old, len);
        if len <= ROOT_BITS {
            let cover = self.cover(p, 0, len);
            self.rewrite_base(p, len, |b| b == gone, cover);
        } else {
            self.remove_deep(p, len, gone);
        }
        Ok(Some(old))
    }

    /// The group installed for exactly `prefix/len`, if any.
    pub fn get(&self, prefix: Ipv6Addr, len: u8) -> Option<GroupId> {
        let map = self.routes.get(usize::from(len))?;
        map.get(&(u128::from(prefix) & !host6(len))).copied()
    }

    /// Number of installed prefixes.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No prefix installed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sets the base of the root slots a route of length `len` <= `ROOT_BITS` covers to `to`
    /// where `when` holds.
    fn rewrite_base(&mut self, p: u128, len: u8, when: impl Fn(u32) -> bool, to: u32) {
        let start = (p >> (128 - ROOT_BITS)) as usize;
        for slot in start..start + (1usize << (ROOT_BITS - len)) {
            let w = &mut self.root.get_mut(slot)[3];
            if when((*w >> 32) as u32) {
                *w = (*w & u64::from(u32::MAX)) | u64::from(to) << 32;
            }
        }
    }

    /// The leaf entry of the longest installed route with length in `from..to` covering `p`;
    /// 0 when there is none.
    fn cover(&self, p: u128, from: u8, to: u8) -> u32 {
        (from..to)
            .rev()
            .find_map(|l| {
                let g = self.routes[usize::from(l)].get(&(p & !host6(l)))?;
                Some(leaf(*g, l))
            })
            .unwrap_or(0)
    }

    /// `parent` as a node (a root slot's node unpacked).
    fn node(&self, parent: Parent) -> Node {
        match parent {
            Parent::Node(c) => self.nodes.items[c],
            Parent::Root(slot) => {
                let w = self.root.get(slot).unwrap_or(&[0; SLOT_WORDS]);
                Node {
                    key: (slot as u128) << (128 - ROOT_BITS),
                    child_map: w[0],
                    leaf_map: w[1],
                    kids: w[2] as usize,
                    leaves: (w[3] as u32) as usize,
                    uniform: 0,
                    pos: ROOT_BITS,
                }
            }
        }
    }

    /// Stores `n`'s maps and blocks (and, for a trie node, its uniform value) back to `parent`.
    fn store(&mut self, parent: Parent, n: &Node) {
        match parent {
            Parent::Node(c) => self.nodes.items[c] = *n,
            Parent::Root(slot) => {
                debug_assert!(
                    n.leaves <= u32::MAX as usize,
                    "leaf arena past 2^32 entries"
                );
                let w = self.root.get_mut(slot);
                w[0] = n.child_map;
                w[1] = n.leaf_map;
                w[2] = n.kids as u64;
                w[3] = (w[3] & !u64::from(u32::MAX)) | n.leaves as u64 & u64::from(u32::MAX);
            }
        }
    }

    /// The node slot behind `edge`, if any.
    fn child(&self, edge: Edge) -> Option<usize> {
        let n = self.node(edge.parent);
        (n.child_map & 1 << edge.index != 0).then(|| n.kids + rank(n.child_map, edge.index))
    }

    fn insert_deep(&mut self, p: u128, len: u8, new: u32) {
        let target = level(len);
        let slot = Parent::Root((p >> (128 - ROOT_BITS)) as usize);
        let overwrite = |e: &mut u32| {
            if depth(*e) <= depth(new) {
                *e = new;
            }
        };
        if target == ROOT_BITS {
            self.apply(slot, p, len, overwrite);
            return;
        }
        let mut edge = Edge {
            parent: slot,
            index: index(p, ROOT_BITS),
        };
        loop {
            let Some(c) = self.child(edge) else {
                let node = self.fresh(p, target, len, new);
                self.attach(edge, node);
                return;
            };
            let Node { pos, key, .. } = self.nodes.items[c];
            let limit = pos.min(target);
            // Both share the bits above and in the edge's stride, so `diff > ROOT_BITS`.
            let diff = (p ^ key).leading_zeros().min(u32::from(limit)) as u8;
            if diff < limit {
                // They part inside a stride above both: a branch node there takes both.
                let at = level_of_bit(diff);
                let route = self.fresh(p, target, len, new);
                let (old_i, new_i) = (index(key, at), index(p, at));
                let kids = self.nodes.alloc(2);
                let (old_at, new_at) = if old_i < new_i { (0, 1) } else { (1, 0) };
                self.nodes.items[kids + old_at] = self.nodes.items[c];
                self.nodes.items[kids + new_at] = route;
                self.nodes.items[c] = Node {
                    key: p & !host6(at),
                    child_map: 1 << old_i | 1 << new_i,
                    kids,
                    pos: at,
                    ..Node::default()
                };
                return;
            }
            if pos == target {
                self.apply(Parent::Node(c), p, len, overwrite);
                return;
            }
            if pos < target {
                edge = Edge {
                    parent: Parent::Node(c),
                    index: index(p, pos),
                };
                continue;
            }
            // `c` lies below the route's node, which does not exist yet: put it above `c`.
            let mut node = self.fresh(p, target, len, new);
            let kids = self.nodes.alloc(1);
            self.nodes.items[kids] = self.nodes.items[c];
            node.kids = kids;
            node.child_map = 1 << index(key, target);
            self.nodes.items[c] = node;
            return;
        }
    }

    fn remove_deep(&mut self, p: u128, len: u8, gone: u32) {
        let target = level(len);
        let cover = self.cover(p, target + 1, len);
        let fall_back = |e: &mut u32| {
            if *e == gone {
                *e = cover;
            }
        };
        let slot = Parent::Root((p >> (128 - ROOT_BITS)) as usize);
        if target == ROOT_BITS {
            self.apply(slot, p, len, fall_back);
            return;
        }
        let mut edge = Edge {
            parent: slot,
            index: index(p, ROOT_BITS),
        };
        let found = loop {
            let Some(c) = self.child(edge) else {
                break None;
            };
            let n = self.nodes.items[c];
            if (p ^ n.key) >> (128 - n.pos) != 0 || n.pos > target {
                break None;
            }
            if n.pos == target {
                break Some(c);
            }
            edge = Edge {
                parent: Parent::Node(c),
                index: index(p, n.pos),
            };
        };
        // `routes` held the prefix, so its node exists (module invariants).
        debug_assert!(found.is_some(), "route {p:#x}/{len} missing from the trie");
        let Some(c) = found else {
            return;
        };
        self.apply(Parent::Node(c), p, len, fall_back);
        let n = self.nodes.items[c];
        if n.leaf_map != 0 {
            return;
        }
        match n.child_map.count_ones() {
            0 => {
                self.detach(edge);
                // The parent lost a child: it may no longer branch.
                if let Parent::Node(up) = edge.parent {
                    let u = self.nodes.items[up];
                    if u.leaf_map == 0 && u.child_map.count_ones() == 1 {
                        self.splice(up);
                    }
                }
            }
            1 => self.splice(c),
            _ => {}
        }
    }

    /// A node at `pos` on the path of `p` holding only the route `p/len`.
    fn fresh(&mut self, p: u128, pos: u8, len: u8, new: u32) -> Node {
        let span = 1usize << (pos + STRIDE - len);
        let first = index(p, pos);
        let at = self.groups.alloc(span);
        self.groups.items[at..at + span].fill(new);
        Node {
            key: p & !host6(pos),
            child_map: 0,
            leaf_map: (u64::MAX >> (64 - span)) << first,
            kids: 0,
            leaves: at,
            uniform: new,
            pos,
        }
    }

    /// Rewrites `parent`'s entries covered by `p/len` with `f`, keeping its leaf block packed.
    fn apply(&mut self, parent: Parent, p: u128, len: u8, f: impl Fn(&mut u32)) {
        let mut n = self.node(parent);
        let mut entries = [0u32; FANOUT];
        let had = n.leaf_map.count_ones() as usize;
        let mut packed = self.groups.items[n.leaves..n.leaves + had].iter();
        for (i, e) in entries.iter_mut().enumerate() {
            if n.leaf_map & 1 << i != 0 {
                *e = packed.next().copied().unwrap_or(0);
            }
        }
        let first = index(p, n.pos) as usize;
        entries[first..first + (1usize << (n.pos + STRIDE - len))]
            .iter_mut()
            .for_each(f);
        let map = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| **e != 0)
            .fold(0u64, |m, (i, _)| m | 1 << i);
        let has = map.count_ones() as usize;
        let at = if has == had {
            n.leaves
        } else {
            self.groups.release(n.leaves, had);
            self.groups.alloc(has)
        };
        let mut set = entries.iter().copied().filter(|&e| e != 0);
        for slot in &mut self.groups.items[at..at + has] {
            *slot = set.next().unwrap_or(0);
        }
        let mut set = entries.iter().copied().filter(|&e| e != 0);
        let first = set.next().unwrap_or(0);
        n.uniform = if set.all(|e| e == first) { first } else { 0 };
        n.leaf_map = map;
        n.leaves = at;
        self.store(parent, &n);
    }

    /// Hangs `node` on the empty `edge`.
    fn attach(&mut self, edge: Edge, node: Node) {
        let mut n = self.node(edge.parent);
        let had = n.child_map.count_ones() as usize;
        let r = rank(n.child_map, edge.index);
        let at = self.nodes.alloc(had + 1);
        let items = &mut self.nodes.items;
        items.copy_within(n.kids..n.kids + r, at);
        items[at + r] = node;
        items.copy_within(n.kids + r..n.kids + had, at + r + 1);
        self.nodes.release(n.kids, had);
        n.kids = at;
        n.child_map |= 1 << edge.index;
        self.store(edge.parent, &n);
    }

    /// Drops the childless, routeless node behind `edge`.
    fn detach(&mut self, edge: Edge) {
        let mut n = self.node(edge.parent);
        let had = n.child_map.count_ones() as usize;
        let r = rank(n.child_map, edge.index);
        let at = self.nodes.alloc(had - 1);
        let items = &mut self.nodes.items;
        items.copy_within(n.kids..n.kids + r, at);
        items.copy_within(n.kids + r + 1..n.kids + had, at + r);
        self.nodes.release(n.kids, had);
        n.kids = at;
        n.child_map &= !(1 << edge.index);
        self.store(edge.parent, &n);
    }

    /// Replaces the routeless node at slot `c` by its only child (path compression).
    fn splice(&mut self, c: usize) {
        let kids = self.nodes.items[c].kids;
        self.nodes.items[c] = self.nodes.items[kids];
        self.nodes.release(kids, 1);
    }

    /// Checks the module invariants and that the arenas hold exactly the live blocks. `slots`
    /// names addresses whose root slots must include every slot holding a route (scanning all
    /// 2^20 slots per call would dominate the property tests).
    #[cfg(test)]
    pub(crate) fn check_invariants(
        &self,
        slots: impl IntoIterator<Item = u128>,
    ) -> Result<(), String> {
        let mut nodes = 0;
        let mut leaves = 0;
        let mut stack: Vec<(usize, u128, u8)> = Vec::new();
        let push_kids = |stack: &mut Vec<(usize, u128, u8)>, n: &Node| {
            for (r, i) in (0..64u32).filter(|i| n.child_map & 1 << i != 0).enumerate() {
                let below = n.key | u128::from(i) << (128 - STRIDE - n.pos);
                stack.push((n.kids + r, below, n.pos + STRIDE));
            }
        };
        let slots: std::collections::BTreeSet<usize> = slots
            .into_iter()
            .map(|a| (a >> (128 - ROOT_BITS)) as usize)
            .collect();
        for slot in slots {
            let n = self.node(Parent::Root(slot));
            leaves += n.leaf_map.count_ones() as usize;
            push_kids(&mut stack, &n);
        }
        while let Some((c, prefix, above)) = stack.pop() {
            let n = self.nodes.items[c];
            nodes += 1;
            leaves += n.leaf_map.count_ones() as usize;
            if n.pos < above || !(n.pos - ROOT_BITS).is_multiple_of(STRIDE) || n.pos > 128 - STRIDE
            {
                return Err(format!("node at {c} has position {}", n.pos));
            }
            if n.key & host6(n.pos) != 0 || (n.key ^ prefix) & !host6(above) != 0 {
                return Err(format!(
                    "node at {c} has key {:#x} outside its parent",
                    n.key
                ));
            }
            if n.leaf_map == 0 && n.child_map.count_ones() < 2 {
                return Err(format!("node at {c} neither holds a route nor branches"));
            }
            let packed = &self.groups.items[n.leaves..n.leaves + n.leaf_map.count_ones() as usize];
            if packed.contains(&0) {
                return Err(format!("node at {c} packs an empty entry"));
            }
            let first = packed.first().copied().unwrap_or(0);
            let uniform = packed.iter().all(|&e| e == first);
            if n.uniform != if uniform { first } else { 0 } {
                return Err(format!("node at {c} has a stale uniform value"));
            }
            push_kids(&mut stack, &n);
        }
        if nodes != self.nodes.in_use() || leaves != self.groups.in_use() {
            return Err(format!(
                "arena leak: {nodes} nodes / {leaves} leaves reachable, {} / {} in use",
                self.nodes.in_use(),
                self.groups.in_use()
            ));
        }
        Ok(())
    }
}
