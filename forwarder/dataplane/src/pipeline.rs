//! The per-burst pipeline: parse -> flow key/hash -> flow cache -> FIB -> bucket -> action.
//!
//! Each stage runs over the whole burst before the next starts (DPDK/VPP style): the flow-cache
//! bucket of every packet is prefetched in the first loop and is in cache by the time the second
//! loop reads it, a prefetch distance of one stage. The pipeline does no I/O and no allocation:
//! all scratch arrays are sized by [`BURST`] and owned by the worker. Each drop is counted where
//! it is decided, once.

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
use crate::flowcache::{CacheProbe, CachedHop, FlowCache, FlowCacheConfig, InsertOutcome};
use crate::hash::FlowHasher;
use ecmp_port::{BURST, Frame, PortId};

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

/// What the stages of one burst know about one packet: filled by stage one, read by the others.
/// One record per packet, so that each stage walks a single array.
#[derive(Debug, Clone, Copy, Default)]
struct PacketState {
    meta: PacketMeta,
    /// The flow key prepared for the flow cache (candidate buckets included).
    probe: CacheProbe,
    /// The flow's cache hash (also the encapsulation's entropy).
    hash: u64,
    /// The hop stage two chose.
    hop: HopId,
    /// Parsed and not dropped so far.
    pending: bool,
}

/// One worker's pipeline state: flow cache, hasher, counters and per-burst scratch.
pub struct Pipeline {
    cache: FlowCache,
    hasher: FlowHasher,
    counters: Counters,
    /// Packets sent per hop id; resized only when a new snapshot has more hops.
    hop_packets: Vec<u64>,
    /// Port ids at or above this are not the worker's (see [`Pipeline::set_egress_ports`]).
    egress_ports: usize,
    packets: [PacketState; BURST],
    /// Bytes of the frames of the last burst given a [`Verdict::Tx`], as they will be sent.
    tx_bytes: u64,
}

impl Pipeline {
    /// Builds a pipeline; allocates the flow cache once, here.
    pub fn new(cfg: &PipelineConfig) -> Result<Self, DataplaneError> {
        Ok(Pipeline {
            cache: FlowCache::new(cfg.flow_cache)?,
            hasher: FlowHasher::new(cfg.seed, &cfg.rss_key),
            counters: Counters::default(),
            hop_packets: Vec::new(),
            egress_ports: usize::MAX,
            packets: [PacketState::default(); BURST],
            tx_bytes: 0,
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

    /// Total length of the frames the last [`Self::process`] gave a [`Verdict::Tx`], as
    /// rewritten or encapsulated (what their `data()` now holds): lets the worker count tx
    /// bytes without reading every frame again.
    pub fn tx_bytes(&self) -> u64 {
        self.tx_bytes
    }

    /// Limits egress to port ids below `ports` (the worker's own ports); hops on other ports are
    /// dropped as `no_egress_port`. Unlimited until called.
    pub fn set_egress_ports(&mut self, ports: usize) {
        self.egress_ports = ports;
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
        let (frames, verdicts) = (&mut frames[..n], &mut verdicts[..n]);
        let packets = &mut self.packets[..n];
        let counters = &mut self.counters;

        // Stage 1: parse, key, cache hash and probe; prefetch the flow-cache buckets for stage
        // 2. The meta is parsed straight into its record; the key lives in registers only.
        let mut rx_bytes = 0u64;
        for ((frame, verdict), pkt) in frames
            .iter()
            .zip(verdicts.iter_mut())
            .zip(packets.iter_mut())
        {
            let data = frame.data();
            rx_bytes += data.len() as u64;
            pkt.pending = false;
            let dropped = match parse_frame_into(data, &mut pkt.meta) {
                Ok(()) if pkt.meta.ttl <= 1 => DropReason::TtlExpired,
                Ok(()) => {
                    let key = FlowKey::from_meta(&pkt.meta);
                    let h = self.hasher.cache_hash(&key);
                    pkt.hash = h;
                    pkt.probe = self.cache.probe(&key, h);
                    self.cache.prefetch_at(&pkt.probe);
                    pkt.pending = true;
                    continue;
                }
                Err(e) => e.into(),
            };
            *verdict = Verdict::Drop(dropped);
            counters.drop(dropped);
        }
        counters.add(Counter::RxPackets, n as u64);
        counters.add(Counter::RxBytes, rx_bytes);

        // Stage 2: flow cache, route lookup, bucket pick.
        for ((frame, verdict), pkt) in frames
            .iter()
            .zip(verdicts.iter_mut())
            .zip(packets.iter_mut())
        {
            if !pkt.pending {
                continue;
            }
            match choose(
                &mut self.cache,
                &self.hasher,
                counters,
                snap,
                frame,
                pkt,
                now_ms,
            ) {
                Ok(hop) => pkt.hop = hop,
                Err(r) => {
                    *verdict = Verdict::Drop(r);
                    counters.drop(r);
                    pkt.pending = false;
                }
            }
        }

        // Stage 3: rewrite or encapsulate toward the hop.
        let mut tx_bytes = 0u64;
        for ((frame, verdict), pkt) in frames
            .iter_mut()
            .zip(verdicts.iter_mut())
            .zip(packets.iter())
        {
            if !pkt.pending {
                continue;
            }
            let hop_id = pkt.hop;
            let sent = match snap.hops.get(hop_id as usize) {
                None => Err(DropReason::NoNextHop),
                // Tables may name ports this worker does not serve (built for more ports):
                // such a hop is no egress here, decided before anything is counted as sent.
                Some(hop) => match snap.ports.get(hop.port as usize) {
                    Some(port) if usize::from(hop.port) < self.egress_ports => {
                        action::apply(frame, &pkt.meta, hop, port, pkt.hash)
                            .map(|len| (hop.port, len))
                    }
                    _ => Err(DropReason::NoEgressPort),
                },
            };
            *verdict = match sent {
                Ok((out, len)) => {
                    tx_bytes += len as u64;
                    if let Some(c) = self.hop_packets.get_mut(hop_id as usize) {
                        *c += 1;
                    }
                    Verdict::Tx(out)
                }
                Err(r) => {
                    counters.drop(r);
                    Verdict::Drop(r)
                }
            };
        }
        self.tx_bytes = tx_bytes;
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
        let (member, hop, gh) = pick_bucket(&self.hasher, group, frame, &meta)?;
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

/// Picks the hop for one parsed packet: the cached hop while it is still a usable member of
/// the route's group, otherwise the group's bucket for the packet's hash. The frame is read
/// only on a miss of a group that hashes inner headers.
#[inline(always)]
fn choose<F: Frame>(
    cache: &mut FlowCache,
    hasher: &FlowHasher,
    counters: &mut Counters,
    snap: &Snapshot,
    frame: &F,
    pkt: &PacketState,
    now_ms: u64,
) -> Result<HopId, DropReason> {
    let meta = &pkt.meta;
    let epoch = snap.generation as u32;

    // A flow cached under the current generation skips the route lookup: nothing changed
    // since its route was resolved, so only its hop's membership needs checking. After any
    // publish, each flow pays one route lookup and is re-stamped.
    let cached = cache.lookup_at(&pkt.probe, now_ms, meta.tcp_flags);
    if let Some(c) = cached
        && c.epoch == epoch
        && snap
            .group(c.group)
            .is_some_and(|g| g.still_member(c.member, c.hop))
    {
        counters.add(Counter::CacheHits, 1);
        return Ok(c.hop);
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
        cache.update_at(&pkt.probe, CachedHop { epoch, ..c });
        counters.add(Counter::CacheHits, 1);
        return Ok(c.hop);
    }

    let (member, hop, gh) = pick_bucket(hasher, group, frame.data(), meta)?;
    // Idle-mode groups learn which buckets are in use from here (misses only: a cached flow
    // never consults its bucket, so moving that bucket cannot move it).
    group.touch(gh, (now_ms / 1000) as u32);
    let picked = CachedHop {
        group: group_id,
        member,
        hop,
        epoch,
    };
    if cached.is_some() {
        counters.add(Counter::Repicks, 1);
        cache.update_at(&pkt.probe, picked);
    } else {
        counters.add(Counter::CacheMisses, 1);
        match cache.insert_at(&pkt.probe, picked, now_ms, meta.tcp_flags) {
            InsertOutcome::NotCached => counters.add(Counter::NotCached, 1),
            InsertOutcome::Evicted => counters.add(Counter::Evictions, 1),
            InsertOutcome::Inserted | InsertOutcome::Replaced => {}
        }
    }
    Ok(hop)
}

/// The group's bucket for a packet not (usably) in the flow cache: the group hash, over the inner
/// headers when the group's policy asks for them and the packet has them (the frame is read only
/// then), and the member owning that bucket. Returns (member index, hop, group hash).
#[inline(always)]
fn pick_bucket(
    hasher: &FlowHasher,
    group: &GroupTable,
    frame: &[u8],
    meta: &PacketMeta,
) -> Result<(u16, HopId, u32), DropReason> {
    let inner = if group.policy.inner {
        parse_inner(frame, meta)
    } else {
        None
    };
    let gh = hasher.group_hash(inner.as_ref().unwrap_or(meta), &group.policy);
    let (member, hop) = group.pick(gh).ok_or(DropReason::NoNextHop)?;
    Ok((member, hop, gh))
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
