//! The memory floor: per packet, only what the DRAM must do for the pipeline's flow-cache hit,
//! so that a report can give pipeline / floor measured side by side.
//!
//! Per packet, the floor copies the packet's bytes from a replay list into a packet buffer (as
//! the memory port's rx does, one packet per flow, cycled), reads the flow's hash back from the
//! buffer, and reads [`LINES_PER_LOOKUP`] random 64-byte lines of a table as large as the flow
//! cache's bucket array, in bursts of [`BURST`]: every line of the burst is prefetched in stage
//! one and read in stage two, as the pipeline prefetches its flow-cache buckets. No parse, no
//! key, no compare, no FIB, no rewrite: the rest of the pipeline's per-packet work is what
//! `pipeline_over_floor` measures.
//!
//! Cost: the table ([`table_lines`] lines of 64 bytes), the replay list (`flows x frame_len`
//! bytes) and [`RING`] packet buffers, all allocated by [`Floor::new`]; [`Floor::burst`] does
//! not allocate.
//!
//! Invariants:
//! - Every table line is written when allocated, so every read lands on memory of its own (a
//!   zeroed allocation could map every page to the kernel's shared zero page, which would turn
//!   the reads into cache hits).
//! - Each packet reads exactly [`LINES_PER_LOOKUP`] lines; [`Floor::lines_read`] counts them and
//!   [`Floor::checksum`] folds what they hold, so a test can check which lines were read.

use ecmp_dataplane::flowcache::{LINES_PER_LOOKUP, WAYS};
use ecmp_mem::HugeArray;
use ecmp_port::BURST;
use ecmp_port::memory::{FRAME_SIZE, HEADROOM};

use super::BenchError;

/// Packet buffers the floor's rx writes into, in turn: two bursts' worth, as the rig's pool
/// hands back the buffers tx just recycled.
pub const RING: usize = 2 * BURST;

/// Bytes of a packet that carry its flow's hash (the floor's stand-in for parse and hash).
const HASH_BYTES: usize = size_of::<u64>();

/// One cache line of the floor's table.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u64; 8]);

const _: () = assert!(size_of::<Line>() == 64);

/// One packet buffer, as large as a memory-port frame.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Buf([u8; FRAME_SIZE]);

/// Lines of the floor's table for a flow cache of `cache_capacity` flows (its actual, rounded
/// capacity): the size of the cache's bucket array, where its lookups' reads land (a bucket is
/// one line of [`WAYS`] slots).
pub fn table_lines(cache_capacity: usize) -> usize {
    (cache_capacity / WAYS).max(1).next_power_of_two()
}

/// The splitmix64 finaliser: the floor's per-flow hash and per-line contents.
#[inline(always)]
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What table line `i` holds (in each of its words).
#[inline(always)]
fn line_value(i: usize) -> u64 {
    mix(i as u64 ^ 0x00f1_00f1)
}

/// The lines a packet of hash `hash` reads, in a table of `mask + 1` lines.
#[inline(always)]
fn lines_of(hash: u64, mask: usize) -> [usize; LINES_PER_LOOKUP] {
    // The first line from the hash itself, the others from independent remixes of it.
    core::array::from_fn(|k| {
        let h = if k == 0 { hash } else { mix(hash ^ k as u64) };
        h as usize & mask
    })
}

/// Allocates the floor's table as the flow cache allocates its buckets (ecmp-mem, under the
/// process's huge page policy, so on the same page size), every line written.
fn alloc_table(lines: usize) -> HugeArray<Line> {
    let mut t = HugeArray::filled("floor table", lines, Line([0; 8]));
    for (i, l) in t.iter_mut().enumerate() {
        *l = Line([line_value(i); 8]);
    }
    t
}

/// The floor's state: its table, replay list, packet buffers and counts.
pub struct Floor {
    table: HugeArray<Line>,
    mask: usize,
    /// One record of `record` bytes per flow, in replay order; the first [`HASH_BYTES`] of each
    /// are the flow's hash.
    source: Box<[u8]>,
    record: usize,
    flows: usize,
    next: usize,
    bufs: Box<[Buf]>,
    ring_next: usize,
    packets: u64,
    lines_read: u64,
    checksum: u64,
}

impl Floor {
    /// A floor for `flows` flows of `frame_len`-byte packets, reading from a table of
    /// [`table_lines`]`(cache_capacity)` lines; flow hashes come from `seed`.
    pub fn new(
        flows: usize,
        cache_capacity: usize,
        frame_len: usize,
        seed: u64,
    ) -> Result<Self, BenchError> {
        if flows == 0 || cache_capacity == 0 {
            return Err(BenchError::ZeroSize);
        }
        let record = frame_len.clamp(HASH_BYTES, FRAME_SIZE - HEADROOM);
        let mut source = vec![0u8; flows * record].into_boxed_slice();
        for (flow, rec) in source.chunks_exact_mut(record).enumerate() {
            rec[..HASH_BYTES].copy_from_slice(&flow_hash(seed, flow).to_le_bytes());
            // The rest of the packet: any bytes, written so that the list is real memory.
            for (i, b) in rec[HASH_BYTES..].iter_mut().enumerate() {
                *b = (flow ^ i) as u8;
            }
        }
        let lines = table_lines(cache_capacity);
        Ok(Self {
            table: alloc_table(lines),
            mask: lines - 1,
            source,
            record,
            flows,
            next: 0,
            bufs: vec![Buf([0; FRAME_SIZE]); RING].into_boxed_slice(),
            ring_next: 0,
            packets: 0,
            lines_read: 0,
            checksum: 0,
        })
    }

    /// One burst of [`BURST`] packets: rx copy-in and every line prefetched, then every line
    /// read. Returns the packets done.
    #[inline]
    pub fn burst(&mut self) -> usize {
        let mut lines = [[0usize; LINES_PER_LOOKUP]; BURST];
        // Stage 1: rx (copy the packet in, read its hash back) and prefetch its lines.
        for l in lines.iter_mut() {
            let at = self.next * self.record;
            self.next += 1;
            if self.next == self.flows {
                self.next = 0;
            }
            let buf = &mut self.bufs[self.ring_next].0[HEADROOM..HEADROOM + self.record];
            self.ring_next = (self.ring_next + 1) % RING;
            buf.copy_from_slice(&self.source[at..at + self.record]);
            let mut h = [0u8; HASH_BYTES];
            h.copy_from_slice(&buf[..HASH_BYTES]);
            *l = lines_of(u64::from_le_bytes(h), self.mask);
            for &i in l.iter() {
                ecmp_port::hint::prefetch(&self.table[i]);
            }
        }
        // Stage 2: read every line.
        let mut sum = 0u64;
        for l in &lines {
            for &i in l {
                sum = sum.wrapping_add(self.table[i].0[0]);
            }
        }
        self.checksum = self.checksum.wrapping_add(sum);
        self.lines_read += (BURST * LINES_PER_LOOKUP) as u64;
        self.packets += BURST as u64;
        BURST
    }

    /// Bursts until at least `packets` more packets were done (may overshoot by less than a
    /// burst).
    pub fn run(&mut self, packets: u64) {
        let target = self.packets + packets;
        while self.packets < target {
            self.burst();
        }
    }

    /// Packets done so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Table lines read so far.
    pub fn lines_read(&self) -> u64 {
        self.lines_read
    }

    /// The wrapping sum of the first word of every line read so far.
    pub fn checksum(&self) -> u64 {
        self.checksum
    }

    /// Lines in the table.
    pub fn table_lines(&self) -> usize {
        self.table.len()
    }

    /// Bytes of the table.
    pub fn table_bytes(&self) -> usize {
        self.table.len() * size_of::<Line>()
    }
}

/// The hash of flow `flow` (its position in replay order).
fn flow_hash(seed: u64, flow: usize) -> u64 {
    mix(seed ^ mix(flow as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum a floor of `flows` flows over `lines` lines must have after `packets`
    /// packets, worked out packet by packet without the floor's burst loop.
    fn expected(seed: u64, flows: usize, lines: usize, packets: u64) -> u64 {
        (0..packets).fold(0u64, |sum, p| {
            let h = flow_hash(seed, (p % flows as u64) as usize);
            lines_of(h, lines - 1)
                .iter()
                .fold(sum, |s, &i| s.wrapping_add(line_value(i)))
        })
    }

    #[test]
    fn each_packet_reads_lines_per_lookup_lines_and_the_right_ones() {
        let mut f = Floor::new(100, 1024, 60, 3).unwrap();
        assert_eq!(f.table_lines(), 1024 / WAYS);
        assert_eq!(f.table_bytes(), 1024 / WAYS * 64);
        f.run(1000);
        // Whole bursts: 1000 rounded up to 32 packets.
        assert_eq!(f.packets(), 1024);
        assert_eq!(f.lines_read(), 1024 * LINES_PER_LOOKUP as u64);
        assert_eq!(f.checksum(), expected(3, 100, 1024 / WAYS, 1024));
    }

    #[test]
    fn the_timed_loop_does_not_allocate() {
        // The lib's test binary counts allocations per thread (the global allocator installed
        // by the stages tests).
        let mut f = Floor::new(1000, 4096, 60, 5).unwrap();
        let before = ecmp_port::alloc_count::allocations();
        f.run(10_000);
        assert_eq!(ecmp_port::alloc_count::allocations() - before, 0);
        assert!(f.packets() >= 10_000);
    }

    #[test]
    fn flows_cycle_in_order_through_one_burst_and_the_next() {
        // Fewer flows than a burst: the replay wraps inside a burst.
        let mut f = Floor::new(5, 64, 8, 9).unwrap();
        f.burst();
        f.burst();
        assert_eq!(f.checksum(), expected(9, 5, 32, 2 * BURST as u64));
    }

    #[test]
    fn the_table_is_the_size_of_the_cache_bucket_array() {
        assert_eq!(table_lines(2 * 1024 * 1024), 1024 * 1024 * 2 / WAYS);
        assert_eq!(table_lines(1), 1);
    }

    #[test]
    fn zero_sizes_are_refused() {
        assert!(matches!(
            Floor::new(0, 1024, 60, 1),
            Err(BenchError::ZeroSize)
        ));
        assert!(matches!(Floor::new(1, 0, 60, 1), Err(BenchError::ZeroSize)));
    }
}
