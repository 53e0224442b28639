//! Per-worker counters: plain integers owned by the worker, folded once per poll into a
//! single-writer shared block that stats readers sum (no atomics RMW, no sharing on the hot path).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::drop::DropReason;

/// Counter slots in the order they are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Frames received.
    RxPackets,
    /// Bytes received.
    RxBytes,
    /// Frames handed to a port for transmission.
    TxPackets,
    /// Bytes handed to a port for transmission.
    TxBytes,
    /// Packets whose flow was found in the flow cache with a usable hop.
    CacheHits,
    /// Packets whose flow was not in the cache (picked from the buckets).
    CacheMisses,
    /// Cached flows whose hop had failed or left the group, re-picked from the buckets.
    Repicks,
    /// New flows that found no free cache slot (forwarded by the buckets anyway).
    NotCached,
    /// Established flows evicted to make room for a new flow.
    Evictions,
    /// Snapshots (table generations) this worker has switched to.
    Generations,
    /// Passes over the worker's ports, empty or not: a stalled worker is one whose count stops.
    Polls,
    /// Polls that received at least one frame; with `Polls` the worker's busy ratio.
    BusyPolls,
    /// Time-stamp counter cycles spent in polls that received or sent frames (their tx and
    /// kicks included), as the runtime measured them: the worker's cost of its packets.
    BusyCycles,
    /// Non-empty rx bursts (one per port that delivered frames in a poll).
    Bursts,
    /// Flows the flow cache stored so far (a copy of its own count, taken once per poll).
    FlowInserts,
    /// Flows in the flow cache now, expired ones not yet reclaimed included: a level, not a
    /// running count (set once per poll; summed over workers it is their total).
    FlowEntries,
}

/// Number of non-drop counters.
pub const COUNTER_COUNT: usize = Counter::FlowEntries as usize + 1;
/// Total published slots: the counters above, then one per drop reason.
pub const SLOT_COUNT: usize = COUNTER_COUNT + DropReason::COUNT;

/// The worker's own counters; cache-line aligned so neighbouring workers never share a line.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub struct Counters {
    /// Indexed by [`Counter`].
    pub values: [u64; COUNTER_COUNT],
    /// Indexed by [`DropReason`].
    pub drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            values: [0; COUNTER_COUNT],
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// Adds `n` to counter `c`.
    #[inline(always)]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.values[c as usize] += n;
    }

    /// Sets counter `c` to `v` (for the slots that copy a count kept elsewhere, or a level).
    #[inline(always)]
    pub fn set(&mut self, c: Counter, v: u64) {
        self.values[c as usize] = v;
    }

    /// Counts one drop.
    #[inline(always)]
    pub fn drop(&mut self, r: DropReason) {
        self.drops[r as usize] += 1;
    }

    /// Value of counter `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize]
    }

    /// Drops for reason `r`.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }

    /// All drops together.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Copies the counters into the worker's shared block (Relaxed stores: one writer per block).
    pub fn publish(&self, to: &SharedCounters) {
        for (slot, v) in to
            .slots
            .iter()
            .zip(self.values.iter().chain(self.drops.iter()))
        {
            slot.store(*v, Ordering::Relaxed);
        }
    }

    /// Adds another worker's counters into this one (for totals).
    pub fn merge(&mut self, other: &Counters) {
        for (a, b) in self.values.iter_mut().zip(other.values.iter()) {
            *a += *b;
        }
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += *b;
        }
    }
}

/// A worker's published counters, readable from any thread.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct SharedCounters {
    slots: [AtomicU64; SLOT_COUNT],
}

impl Default for SharedCounters {
    fn default() -> Self {
        SharedCounters {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl SharedCounters {
    /// Reads the block back into a [`Counters`] value.
    pub fn read(&self) -> Counters {
        let mut c = Counters::default();
        for (i, slot) in self.slots.iter().enumerate() {
            let v = slot.load(Ordering::Relaxed);
            if i < COUNTER_COUNT {
                c.values[i] = v;
            } else {
                c.drops[i - COUNTER_COUNT] = v;
            }
        }
        c
    }
}

/// Packets one worker sent per hop id (index = hop id), as the stats side reads them.
///
/// The worker counts straight into the slots it published here (a relaxed load and store: it is
/// their only writer, so no read-modify-write), so nothing is copied per poll. The slots are
/// replaced only when a snapshot has more hops than they hold, which happens off the per-packet
/// path; the lock guards that replacement and the readers' clone of the pointer, never a count.
/// A slot restarts from zero when its hop id is given to a different next hop (ids are reused),
/// so a count always belongs to the address the current snapshot gives that id.
#[derive(Debug)]
pub struct SharedHopPackets {
    slots: Mutex<Arc<[AtomicU64]>>,
}

impl Default for SharedHopPackets {
    fn default() -> Self {
        SharedHopPackets {
            slots: Mutex::new(Arc::from([])),
        }
    }
}

impl SharedHopPackets {
    /// The counts, index = hop id (slots past the worker's last snapshot's hops read zero).
    pub fn read(&self) -> Vec<u64> {
        let slots = Arc::clone(&self.slots.lock().unwrap_or_else(PoisonError::into_inner));
        slots.iter().map(|s| s.load(Ordering::Relaxed)).collect()
    }

    /// Worker side: makes `slots` the ones readers see.
    pub(crate) fn publish(&self, slots: &Arc<[AtomicU64]>) {
        *self.slots.lock().unwrap_or_else(PoisonError::into_inner) = Arc::clone(slots);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_read_round_trips() {
        let mut c = Counters::default();
        c.add(Counter::RxPackets, 7);
        c.add(Counter::TxBytes, 640);
        c.drop(DropReason::NoRoute);
        c.drop(DropReason::NoRoute);
        c.drop(DropReason::TxRefused);
        let shared = SharedCounters::default();
        c.publish(&shared);
        let back = shared.read();
        assert_eq!(back.get(Counter::RxPackets), 7);
        assert_eq!(back.get(Counter::TxBytes), 640);
        assert_eq!(back.drops(DropReason::NoRoute), 2);
        assert_eq!(back.drops(DropReason::TxRefused), 1);
        assert_eq!(back.total_drops(), 3);
    }
}
