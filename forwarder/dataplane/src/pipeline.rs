//! The per-burst pipeline: parse -> flow key/hash -> flow cache -> FIB -> bucket -> action.
//!
//! Each stage runs over the whole burst before the next starts (DPDK/VPP style): the flow-cache
//! bucket of every packet is prefetched in the first loop and is in cache by the time the second
//! loop reads it, a prefetch distance of one stage. The pipeline does no I/O and no allocation:
//! all scratch arrays are sized by [`BURST`] and owned by the worker.

use ecmp_tables::group::GroupTable;
use ecmp_tables::nexthop::HopId;
use ecmp_tables::snapshot::Snapshot;
use ecmp_wire::meta::{IpVersion, PacketMeta};
use ecmp_wire::parse::{parse_frame, parse_frame_into, parse_inner};

use crate::action;
use crate::counters::{Counter, Counters};
use crate::drop::DropReason;
use crate::error::DataplaneError;
use crate::flow::FlowKey;
use crate::flowcache::{CachedHop, FlowCache, FlowCacheConfig, InsertOutcome};
use crate::hash::FlowHasher;
use crate::port::{BURST, Frame, PortId};

/// What happens to one packet of a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send on this port.
    Tx(PortId),
    /// Drop, counted under this reason.
    Drop(DropReason),
}

/// Pipeline settings fixed at worker start.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Per-instance hash seed (anti-polarisation).
    pub seed: u64,
    /// Toeplitz key for the `toeplitz` hash algorithm.
    pub rss_key: [u8; 40],
    /// Flow cache size and timeouts.
    pub flow_cache: FlowCacheConfig,
}

/// How a packet's next hop was chosen (for `trace` and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Found in the flow cache.
    Cached(CachedHop),
    /// Picked from the group's bucket table (bucket index given).
    Bucket {
        /// The hop picked.
        hop: CachedHop,
        /// The bucket index (`hash & (buckets - 1)`).
        bucket: usize,
    },
}

/// One worker's pipeline state: flow cache, hasher, counters and per-burst scratch.
pub struct Pipeline {
    cache: FlowCache,
    hasher: FlowHasher,
    counters: Counters,
    /// Packets sent per hop id; resized only when a new snapshot has more hops.
    hop_packets: Vec<u64>,
    meta: [PacketMeta; BURST],
    keys: [FlowKey; BURST],
    hashes: [u64; BURST],
    hops: [HopId; BURST],
    pending: [bool; BURST],
}

impl Pipeline {
    /// Builds a pipeline; allocates the flow cache once, here.
    pub fn new(cfg: &PipelineConfig) -> Result<Self, DataplaneError> {
        Ok(Pipeline {
            cache: FlowCache::new(cfg.flow_cache)?,
            hasher: FlowHasher::new(cfg.seed, &cfg.rss_key),
            counters: Counters::default(),
            hop_packets: Vec::new(),
            meta: [PacketMeta::default(); BURST],
            keys: [FlowKey::default(); BURST],
            hashes: [0; BURST],
            hops: [0; BURST],
            pending: [false; BURST],
        })
    }

    /// The worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Mutable counters (the worker adds tx and drop counts the pipeline cannot see).
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// The flow cache (for stats and what-if queries between bursts).
    pub fn flow_cache(&self) -> &FlowCache {
        &self.cache
    }

    /// The hasher (for `trace`).
    pub fn hasher(&self) -> &FlowHasher {
        &self.hasher
    }

    /// Packets sent per hop id.
    pub fn hop_packets(&self) -> &[u64] {
        &self.hop_packets
    }

    /// Called when the worker switches to a new snapshot: sizes per-hop counters (off the
    /// per-packet path; it allocates only when the hop table grew).
    pub fn on_new_snapshot(&mut self, snap: &Snapshot) {
        if self.hop_packets.len() < snap.hops.len() {
            self.hop_packets.resize(snap.hops.len(), 0);
        }
        self.counters.add(Counter::Generations, 1);
    }

    /// Processes one burst in place: rewrites or encapsulates every forwarded frame and writes one
    /// verdict per frame into `verdicts` (which must be at least as long as `frames`).
    pub fn process<F: Frame>(
        &mut self,
        snap: &Snapshot,
        frames: &mut [F],
        verdicts: &mut [Verdict],
        now_ms: u64,
    ) {
        let n = frames.len().min(BURST).min(verdicts.len());
        if self.hop_packets.len() < snap.hops.len() {
            self.on_new_snapshot(snap);
        }

        // Stage 1: parse, key, cache hash; prefetch the flow-cache bucket for stage 2. The meta
        // is parsed straight into its slot and the key built from there: no 64-byte copies.
        let mut rx_bytes = 0u64;
        for ((((frame, verdict), meta), key), (hash, pending)) in frames[..n]
            .iter()
            .zip(verdicts[..n].iter_mut())
            .zip(self.meta.iter_mut())
            .zip(self.keys.iter_mut())
            .zip(self.hashes.iter_mut().zip(self.pending.iter_mut()))
        {
            let data = frame.data();
            rx_bytes += data.len() as u64;
            *pending = false;
            match parse_frame_into(data, meta) {
                Ok(()) if meta.ttl <= 1 => *verdict = Verdict::Drop(DropReason::TtlExpired),
                Ok(()) => {
                    *key = FlowKey::from_meta(meta);
                    let h = self.hasher.cache_hash(key);
                    *hash = h;
                    self.cache.prefetch(h);
                    *pending = true;
                }
                Err(e) => *verdict = Verdict::Drop(e.into()),
            }
        }
        self.counters.add(Counter::RxPackets, n as u64);
        self.counters.add(Counter::RxBytes, rx_bytes);

        // Stage 2: route lookup, flow cache, bucket pick.
        for i in 0..n {
            if !self.pending[i] {
                continue;
            }
            match self.choose(snap, frames[i].data(), i, now_ms) {
                Ok(choice) => {
                    self.hops[i] = match choice {
                        Choice::Cached(c) | Choice::Bucket { hop: c, .. } => c.hop,
                    }
                }
                Err(r) => {
                    verdicts[i] = Verdict::Drop(r);
                    self.pending[i] = false;
                }
            }
        }

        // Stage 3: rewrite or encapsulate toward the hop.
        for i in 0..n {
            if !self.pending[i] {
                continue;
            }
            let hop_id = self.hops[i];
            verdicts[i] = match snap.hops.get(hop_id as usize) {
                None => Verdict::Drop(DropReason::NoNextHop),
                Some(hop) => match snap.ports.get(hop.port as usize) {
                    None => Verdict::Drop(DropReason::NoEgressPort),
                    Some(port) => {
                        match action::apply(
                            &mut frames[i],
                            &self.meta[i],
                            hop,
                            port,
                            self.hashes[i],
                        ) {
                            Ok(()) => {
                                if let Some(c) = self.hop_packets.get_mut(hop_id as usize) {
                                    *c += 1;
                                }
                                Verdict::Tx(hop.port)
                            }
                            Err(r) => Verdict::Drop(r),
                        }
                    }
                },
            };
        }

        for v in &verdicts[..n] {
            if let Verdict::Drop(r) = v {
                self.counters.drop(*r);
            }
        }
    }

    /// Picks the hop for packet `i` of the burst: the cached hop while it is still a usable
    /// member of the route's group, otherwise the group's bucket for the packet's hash.
    #[inline]
    fn choose(
        &mut self,
        snap: &Snapshot,
        frame: &[u8],
        i: usize,
        now_ms: u64,
    ) -> Result<Choice, DropReason> {
        let meta = &self.meta[i];
        let key = &self.keys[i];
        let hash = self.hashes[i];
        let epoch = snap.generation as u32;

        // A flow cached under the current generation skips the route lookup: nothing changed
        // since its route was resolved, so only its hop's membership needs checking. After any
        // publish, each flow pays one route lookup and is re-stamped.
        let cached = self.cache.lookup(key, hash, now_ms, meta.tcp_flags);
        if let Some(c) = cached
            && c.epoch == epoch
            && snap
                .group(c.group)
                .is_some_and(|g| g.still_member(c.member, c.hop))
        {
            self.counters.add(Counter::CacheHits, 1);
            return Ok(Choice::Cached(c));
        }

        let group_id = lookup_route(snap, meta);
        if group_id == 0 {
            return Err(DropReason::NoRoute);
        }
        let group = snap.group(group_id).ok_or(DropReason::NoRoute)?;
        if let Some(c) = cached
            && c.group == group_id
            && group.still_member(c.member, c.hop)
        {
            let restamped = CachedHop { epoch, ..c };
            self.cache.update(key, hash, restamped);
            self.counters.add(Counter::CacheHits, 1);
            return Ok(Choice::Cached(restamped));
        }

        let hash_meta = if group.policy.inner {
            parse_inner(frame, meta).unwrap_or(*meta)
        } else {
            *meta
        };
        let gh = self.hasher.group_hash(&hash_meta, &group.policy);
        let (member, hop) = group.pick(gh).ok_or(DropReason::NoNextHop)?;
        let picked = CachedHop {
            group: group_id,
            member,
            hop,
            epoch,
        };
        if cached.is_some() {
            self.counters.add(Counter::Repicks, 1);
            self.cache.update(key, hash, picked);
        } else {
            self.counters.add(Counter::CacheMisses, 1);
            match self.cache.insert(key, hash, picked, now_ms, meta.tcp_flags) {
                InsertOutcome::NotCached => self.counters.add(Counter::NotCached, 1),
                InsertOutcome::Evicted => self.counters.add(Counter::Evictions, 1),
                InsertOutcome::Inserted | InsertOutcome::Replaced => {}
            }
        }
        Ok(Choice::Bucket {
            hop: picked,
            bucket: bucket_index(group, gh),
        })
    }

    /// Explains, without changing any state, which hop a packet would take and why.
    pub fn trace(&self, snap: &Snapshot, frame: &[u8], now_ms: u64) -> Result<Choice, DropReason> {
        let meta = parse_frame(frame)?;
        let group_id = lookup_route(snap, &meta);
        let group = snap.group(group_id).ok_or(DropReason::NoRoute)?;
        let key = FlowKey::from_meta(&meta);
        let hash = self.hasher.cache_hash(&key);
        if let Some(c) = self.cache.peek(&key, hash, now_ms)
            && c.group == group_id
            && group.still_member(c.member, c.hop)
        {
            return Ok(Choice::Cached(c));
        }
        let hash_meta = if group.policy.inner {
            parse_inner(frame, &meta).unwrap_or(meta)
        } else {
            meta
        };
        let gh = self.hasher.group_hash(&hash_meta, &group.policy);
        let (member, hop) = group.pick(gh).ok_or(DropReason::NoNextHop)?;
        Ok(Choice::Bucket {
            hop: CachedHop {
                group: group_id,
                member,
                hop,
                epoch: snap.generation as u32,
            },
            bucket: bucket_index(group, gh),
        })
    }
}

/// The bucket a group hash selects (what [`GroupTable::pick`] reads), for display.
#[inline]
fn bucket_index(group: &GroupTable, hash: u32) -> usize {
    (hash & (group.bucket_count() - 1)) as usize
}

/// Longest-prefix match of the packet's destination; 0 when there is no route.
#[inline]
fn lookup_route(snap: &Snapshot, meta: &PacketMeta) -> u32 {
    match meta.version {
        IpVersion::V4 => {
            let d = &meta.dst;
            snap.fib4
                .lookup(u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
        }
        IpVersion::V6 => snap.fib6.lookup(u128::from_be_bytes(meta.dst)),
    }
}
