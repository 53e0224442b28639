//! The per-burst pipeline: parse -> flow key/hash -> flow cache -> FIB -> bucket -> action.
//!
//! Two loops over the burst (DPDK/VPP style): the first parses, keys and hashes every packet
//! and prefetches its flow-cache bucket, which is in cache by the time the second loop reads it,
//! a prefetch distance of one stage; the second looks the flow up (and on a miss, routes it and
//! picks its bucket) and rewrites or encapsulates the packet at once, since the hop and port
//! tables it then reads are small and hot. The pipeline does no I/O and no allocation:
//! all scratch arrays are sized by [`BURST`] and owned by the worker. Each drop is counted where
//! it is decided, once.
//!
//! The miss path (what a packet not served by the flow cache goes through) is public, as the
//! functions [`admit`], [`lookup_route`], [`route`], [`group_hash`], [`pick_bucket`] and their
//! composition [`resolve`], and so is the flow-cache key ([`cache_key`], [`outer_key`],
//! [`entropy`]): the pipeline, [`Pipeline::trace`] and `ecmpfwd bench --stages` all call these,
//! so the three cannot disagree on a packet's key or hop.
//!
//! Flow-cache keys (see [`crate::flow`]) follow the snapshot:
//! - While every group hashes the outer 5-tuple ([`Snapshot::outer_keyed`], checked once per
//!   burst, the common case), a packet is keyed by its outer 5-tuple before its route is known,
//!   and a hit cached under the current generation skips the route lookup: the key's
//!   destination names the route, and nothing changed since the route was resolved.
//! - Otherwise stage one looks the route up first ([`cache_key`]): a packet routed to a group
//!   whose policy hashes other fields (fewer fields, or the inner headers of a tunnel) is keyed
//!   by exactly the fields that policy hashes, from the headers it hashes, and by the group id
//!   ([`crate::hash::policy_key`]); a packet of a group that hashes the outer 5-tuple keeps its
//!   outer key. Cost, for such snapshots only: one route lookup per packet (hit or miss), the
//!   inner parse for a tunnelled packet of an inner policy (twice on a miss, where the group
//!   hash parses again), a second cache hash for a policy key (the encapsulation's entropy stays
//!   the outer key's hash, see [`entropy`]) and a wide flow-cache entry (one more line read).
//! - Invariants: two packets with equal keys get the same bucket (a key holds every field its
//!   group's hash reads, and a policy key its group, hence its policy), and a hit never sends a
//!   packet to another route's group (an outer key names its route through its destination, a
//!   policy key names its group, which is the route's group at the generation that built it).
//!   The TCP flags that drive a cached flow's state are those of the flow its key names (the
//!   inner packet's for an inner key).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ecmp_tables::group::GroupTable;
use ecmp_tables::nexthop::{Action, GroupId, HopId, NextHop, PortInfo};
use ecmp_tables::policy::HashPolicy;
use ecmp_tables::snapshot::Snapshot;
use ecmp_wire::meta::{IpVersion, PacketMeta};
use ecmp_wire::parse::{FastV4, parse_fast_v4, parse_frame_into, parse_inner};

use crate::action;
use crate::counters::{Counter, Counters, SharedHopPackets};
use crate::drop::DropReason;
use crate::error::DataplaneError;
use crate::flow::{FlowKey, OuterV4};
use crate::flowcache::{CacheProbe, CachedHop, FlowCache, FlowCacheConfig, InsertOutcome};
use crate::hash::{FlowHasher, policy_key};
use ecmp_port::{BURST, Frame, PortId};

/// Per-hop counters start with room for this many hop ids (then the next power of two).
const MIN_HOP_SLOTS: usize = 64;

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

/// Where the miss path sends a packet: the route's group and the bucket its group hash selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// The route's group (never 0).
    pub group: GroupId,
    /// That group's hash policy, under which `group_hash` was computed.
    pub policy: HashPolicy,
    /// The group hash: over the inner headers when the group's policy asks for them and the
    /// packet has them, else over the packet's own.
    pub group_hash: u32,
    /// The bucket that hash selects (`group_hash & (buckets - 1)`).
    pub bucket: usize,
    /// The index of the member owning that bucket.
    pub member: u16,
    /// That member's hop.
    pub hop: HopId,
}

impl Resolution {
    /// The flow-cache entry of this pick under table generation `epoch`.
    #[inline(always)]
    pub fn cached_hop(&self, epoch: u32) -> CachedHop {
        CachedHop {
            group: self.group,
            member: self.member,
            hop: self.hop,
            epoch,
        }
    }
}

/// What the flow cache knows a packet by (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheKey {
    /// The key: the outer 5-tuple, or the policy key of the route's group.
    pub key: FlowKey,
    /// The TCP flags of the flow the key names (the inner packet's for an inner key), which
    /// drive the cached flow's state and timeout.
    pub tcp_flags: u8,
    /// The route's group when the key was built after the route lookup; 0 when it was not
    /// looked up (every group hashes the outer 5-tuple).
    pub route: GroupId,
}

/// What the stages of one burst know about one packet: filled by stage one, read by the others.
/// One record per packet, so that each stage walks a single array.
///
/// A packet the parser's fast path took (untagged IPv4, TCP or UDP: `fast`) is keyed from the
/// parser's register-sized result and its `meta` is not written in stage one: a flow-cache hit
/// needs only the probe, the TCP flags and the IP length. Stage two builds the meta from the
/// (still unchanged) frame only for what needs it, off the hit path ([`PacketState::meta`]).
#[derive(Debug, Clone, Copy, Default)]
struct PacketState {
    /// The parsed headers; stale while `fast` (see above).
    meta: PacketMeta,
    /// The flow key prepared for the flow cache (candidate buckets included).
    probe: CacheProbe,
    /// The encapsulation's entropy: the cache hash of the outer key.
    hash: u64,
    /// Set by stage one only when the snapshot keys some group by its policy: the route's
    /// group and the key's TCP flags (see [`CacheKey`]). Otherwise the route is looked up on a
    /// miss and the flags are the packet's own.
    route: GroupId,
    /// The TCP flags of the flow the key names (see [`CacheKey`]).
    tcp_flags: u8,
    /// Parsed and not dropped so far.
    pending: bool,
    /// Taken by the parser's fast path; `meta` not built yet.
    fast: bool,
    /// The IP length (the meta's `ip_len`, valid whether or not `fast`).
    ip_len: u16,
}

impl PacketState {
    /// The packet's meta, built now from `frame` (the frame stage one parsed, not yet changed)
    /// if stage one left it to be built.
    #[inline(always)]
    fn meta(&mut self, frame: &[u8]) -> Result<&PacketMeta, DropReason> {
        if self.fast {
            self.build_meta(frame)?;
        }
        Ok(&self.meta)
    }

    /// Parses the frame again into `meta`: the same frame and the same parser as in stage one,
    /// so it succeeds with the meta stage one would have written (a failure, which would mean
    /// the frame changed, drops the packet under the parser's reason rather than use a stale
    /// meta).
    #[cold]
    #[inline(never)]
    fn build_meta(&mut self, frame: &[u8]) -> Result<(), DropReason> {
        parse_frame_into(frame, &mut self.meta)?;
        self.fast = false;
        Ok(())
    }
}

/// One worker's pipeline state: flow cache, hasher, counters and per-burst scratch.
pub struct Pipeline {
    cache: FlowCache,
    hasher: FlowHasher,
    counters: Counters,
    /// Packets sent per hop id, shared with the stats side through `hop_sink`; replaced (with a
    /// power-of-two capacity) only when a new snapshot has more hops than it holds.
    hop_packets: Arc<[AtomicU64]>,
    /// What each counted hop id named when last seen: (address, action). A different one
    /// means the id was reused, and its count restarts.
    hop_ident: Vec<(IpAddr, Action)>,
    /// Where `hop_packets` is published.
    hop_sink: Arc<SharedHopPackets>,
    /// Port ids at or above this are not the worker's (see [`Pipeline::set_egress_ports`]).
    egress_ports: usize,
    /// The inlined rewrite's view of the hop and port tables, per snapshot.
    rewrites: action::RewriteTable,
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
            hop_packets: Arc::from([]),
            hop_ident: Vec::new(),
            hop_sink: Arc::new(SharedHopPackets::default()),
            egress_ports: usize::MAX,
            rewrites: action::RewriteTable::default(),
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

    /// Changes the flow cache's timeouts between bursts (a config reload); see
    /// [`FlowCache::set_timeouts`] for what happens to flows already cached.
    pub fn set_flow_timeouts(
        &mut self,
        timeouts: crate::flowcache::FlowTimeouts,
    ) -> Result<(), crate::flowcache::FlowCacheError> {
        self.cache.set_timeouts(timeouts)
    }

    /// The hasher (for `trace`).
    pub fn hasher(&self) -> &FlowHasher {
        &self.hasher
    }

    /// Packets sent per hop id, for the hops of the snapshots seen so far (a copy: the counts
    /// live in shared slots).
    pub fn hop_packets(&self) -> Vec<u64> {
        self.hop_packets[..self.hop_ident.len()]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Publishes the per-hop counts through `sink` from now on (each pipeline starts with a
    /// sink of its own that nobody reads).
    pub fn set_hop_sink(&mut self, sink: Arc<SharedHopPackets>) {
        sink.publish(&self.hop_packets);
        self.hop_sink = sink;
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

    /// Called when the worker switches to a new snapshot: sizes the per-hop counters and
    /// restarts those whose id now names another next hop (off the per-packet path: one pass
    /// over the hop table, allocating only when it outgrew the counters).
    pub fn on_new_snapshot(&mut self, snap: &Snapshot) {
        if self.hop_packets.len() < snap.hops.len() {
            let len = snap.hops.len().next_power_of_two().max(MIN_HOP_SLOTS);
            let grown: Arc<[AtomicU64]> = (0..len)
                .map(|i| {
                    AtomicU64::new(
                        self.hop_packets
                            .get(i)
                            .map_or(0, |c| c.load(Ordering::Relaxed)),
                    )
                })
                .collect();
            self.hop_packets = grown;
            self.hop_sink.publish(&self.hop_packets);
        }
        for (i, hop) in snap.hops.iter().enumerate() {
            let ident = (hop.addr, hop.action);
            match self.hop_ident.get_mut(i) {
                Some(seen) if *seen == ident => {}
                Some(seen) => {
                    *seen = ident;
                    self.hop_packets[i].store(0, Ordering::Relaxed);
                }
                None => self.hop_ident.push(ident),
            }
        }
        self.counters.add(Counter::Generations, 1);
    }

    /// Processes one burst received on port `ingress` in place: rewrites or encapsulates every
    /// forwarded frame and writes one verdict per frame into `verdicts` (which must be at least
    /// as long as `frames`).
    ///
    /// Contract: a snapshot's `generation` names its contents. A flow cached under the current
    /// generation is forwarded without reading any table, so two different snapshots must never
    /// be given to one pipeline under the same generation ([`SnapshotCell::publish`] stamps each
    /// with a fresh one; a snapshot built by hand must do the same), and `fib_changed` must not
    /// be newer than the last change of its FIBs (publish sets it).
    ///
    /// [`SnapshotCell::publish`]: ecmp_tables::snapshot::SnapshotCell::publish
    pub fn process<F: Frame>(
        &mut self,
        snap: &Snapshot,
        ingress: PortId,
        frames: &mut [F],
        verdicts: &mut [Verdict],
        now_ms: u64,
    ) {
        // Decided once per burst: the loops are specialised, not branching per packet.
        if snap.outer_keyed() {
            self.run::<F, false>(snap, ingress, frames, verdicts, now_ms);
        } else {
            self.run::<F, true>(snap, ingress, frames, verdicts, now_ms);
        }
    }

    /// [`Self::process`] with flow-cache keys built before the route (`ROUTED_KEYS` false: every
    /// group hashes the outer 5-tuple) or after it (see the module doc).
    #[inline(always)]
    fn run<F: Frame, const ROUTED_KEYS: bool>(
        &mut self,
        snap: &Snapshot,
        ingress: PortId,
        frames: &mut [F],
        verdicts: &mut [Verdict],
        now_ms: u64,
    ) {
        let n = frames.len().min(BURST).min(verdicts.len());
        if self.hop_ident.len() < snap.hops.len() {
            self.on_new_snapshot(snap);
        }
        let port_mac = ingress_mac(snap, ingress);
        self.rewrites.follow(snap, self.egress_ports);
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
            // The common case first: keyed straight from the parser's registers (no meta).
            if !ROUTED_KEYS && let Some(v) = parse_fast_v4(data) {
                match admit_fast(data, &port_mac, &v) {
                    Ok(()) => {
                        let k = OuterV4::from_fast(&v);
                        let h = self.hasher.cache_hash_v4(&k);
                        pkt.probe = self.cache.probe_v4(&k, h);
                        pkt.hash = h;
                        pkt.tcp_flags = v.tcp_flags;
                        pkt.ip_len = v.ip_len;
                        pkt.fast = true;
                        self.cache.prefetch_at(&pkt.probe);
                        pkt.pending = true;
                    }
                    Err(r) => {
                        *verdict = Verdict::Drop(r);
                        counters.drop(r);
                    }
                }
                continue;
            }
            let dropped = match admit(data, &port_mac, &mut pkt.meta) {
                Ok(()) if !ROUTED_KEYS => {
                    // IPv4 keyed in its natural width: same hash and probe, fewer bytes.
                    let (h, probe) = match OuterV4::from_meta(&pkt.meta) {
                        Some(k) => {
                            let h = self.hasher.cache_hash_v4(&k);
                            (h, self.cache.probe_v4(&k, h))
                        }
                        None => {
                            let key = outer_key(&pkt.meta).key;
                            let h = self.hasher.cache_hash(&key);
                            (h, self.cache.probe(&key, h))
                        }
                    };
                    pkt.hash = h;
                    pkt.probe = probe;
                    pkt.tcp_flags = pkt.meta.tcp_flags;
                    pkt.ip_len = pkt.meta.ip_len;
                    pkt.fast = false;
                    self.cache.prefetch_at(&pkt.probe);
                    pkt.pending = true;
                    continue;
                }
                Ok(()) => match routed_key(snap, data, &pkt.meta) {
                    Ok(k) => {
                        let h = self.hasher.cache_hash(&k.key);
                        pkt.hash = entropy(&self.hasher, &pkt.meta, &k.key, h);
                        pkt.probe = self.cache.probe(&k.key, h);
                        self.cache.prefetch_at(&pkt.probe);
                        pkt.route = k.route;
                        pkt.tcp_flags = k.tcp_flags;
                        pkt.ip_len = pkt.meta.ip_len;
                        pkt.fast = false;
                        pkt.pending = true;
                        continue;
                    }
                    Err(r) => r,
                },
                Err(r) => r,
            };
            *verdict = Verdict::Drop(dropped);
            counters.drop(dropped);
        }
        counters.add(Counter::RxPackets, n as u64);
        counters.add(Counter::RxBytes, rx_bytes);

        // Stage 2: flow cache, route lookup, bucket pick, then straight away the rewrite or
        // encapsulation toward the hop (the hop and port tables are small and hot: there is
        // nothing to prefetch between the two, so one loop saves a pass over the burst).
        let mut tally = Tally::default();
        self.cache.tick(now_ms);
        let mut tx_bytes = 0u64;
        for ((frame, verdict), pkt) in frames
            .iter_mut()
            .zip(verdicts.iter_mut())
            .zip(packets.iter_mut())
        {
            if !pkt.pending {
                continue;
            }
            let sent = choose::<F, ROUTED_KEYS>(
                &mut self.cache,
                &self.hasher,
                &mut tally,
                snap,
                frame,
                pkt,
                now_ms,
            )
            .and_then(|hop_id| {
                if pkt.fast
                    && let Some((out, len)) = self.rewrites.rewrite(frame, pkt.ip_len, hop_id)
                {
                    return Ok((hop_id, out, len));
                }
                match snap.hops.get(hop_id as usize) {
                    None => Err(DropReason::NoNextHop),
                    // Tables may name ports this worker does not serve (built for more ports):
                    // such a hop is no egress here, decided before anything is counted as sent.
                    Some(hop) => match snap.ports.get(hop.port as usize) {
                        Some(port) if usize::from(hop.port) < self.egress_ports => {
                            forward(frame, pkt, hop, port).map(|len| (hop_id, hop.port, len))
                        }
                        _ => Err(DropReason::NoEgressPort),
                    },
                }
            });
            *verdict = match sent {
                Ok((hop_id, out, len)) => {
                    tx_bytes += len as u64;
                    if let Some(c) = self.hop_packets.get(hop_id as usize) {
                        // The only writer: a plain load and store, no locked add.
                        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    }
                    Verdict::Tx(out)
                }
                Err(r) => {
                    counters.drop(r);
                    Verdict::Drop(r)
                }
            };
        }
        tally.fold(counters);
        self.tx_bytes = tx_bytes;
    }

    /// Explains, without changing any state, which hop a packet received on `ingress` would take
    /// and why: the same checks and miss path as [`Self::process`], with the flow cache only
    /// looked at.
    pub fn trace(
        &self,
        snap: &Snapshot,
        ingress: PortId,
        frame: &[u8],
        now_ms: u64,
    ) -> Result<Choice, DropReason> {
        let mut meta = PacketMeta::default();
        admit(frame, &ingress_mac(snap, ingress), &mut meta)?;
        let (group_id, group) = route(snap, &meta)?;
        let key = cache_key(snap, frame, &meta)?.key;
        let hash = self.hasher.cache_hash(&key);
        if let Some(c) = self.cache.peek(&key, hash, now_ms)
            && c.group == group_id
            && group.still_member(c.member, c.hop)
        {
            return Ok(Choice::Cached(c));
        }
        let r = pick_bucket(
            group_id,
            group,
            group_hash(&self.hasher, &group.policy, frame, &meta),
        )?;
        Ok(Choice::Bucket {
            hop: r.cached_hop(snap.generation as u32),
            bucket: r.bucket,
        })
    }
}

/// What stage two decided for the packets of one burst, counted in registers and folded into
/// the worker's counters once per burst.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    hits: u64,
    misses: u64,
    repicks: u64,
    not_cached: u64,
    evictions: u64,
}

impl Tally {
    #[inline(always)]
    fn fold(&self, counters: &mut Counters) {
        counters.add(Counter::CacheHits, self.hits);
        counters.add(Counter::CacheMisses, self.misses);
        counters.add(Counter::Repicks, self.repicks);
        counters.add(Counter::NotCached, self.not_cached);
        counters.add(Counter::Evictions, self.evictions);
    }
}

/// Whether a flow cache entry stamped at generation `stamp` (truncated to 32 bits, as
/// [`CachedHop::epoch`] holds it) was resolved at or after the snapshot's last FIB change, so
/// its route is still the one its destination has. Compared as ages from the current
/// generation, which stays exact across the 32-bit wrap.
#[inline(always)]
fn route_unchanged_since(snap: &Snapshot, stamp: u32) -> bool {
    let now = snap.generation as u32;
    now.wrapping_sub(stamp) <= now.wrapping_sub(snap.fib_changed as u32)
}

/// Picks the hop for one parsed packet: the cached hop while it is still a usable member of
/// the route's group, otherwise the group's bucket for the packet's hash. The frame is read
/// only on a miss of a group that hashes inner headers (or to build the meta of a fast-path
/// packet that needs it). With `ROUTED_KEYS`, stage one has looked the route up already
/// (`pkt.route`) and keyed the packet by that group's policy.
///
/// A cached hop is stamped with the generation it was last checked under ([`CachedHop::epoch`]):
/// - under the current generation, it is used as is: nothing the packet path reads has changed
///   since the check, so no table is read at all (the common case between publications, and
///   the only one inlined here: the entry's hop and epoch are all it reads);
/// - under an older generation but not older than the last FIB change, the route is the same:
///   only its hop's membership is checked (no FIB lookup) and the entry is re-stamped;
/// - otherwise the route is looked up again, and the hop kept while it is a usable member of
///   the route's group.
#[inline(always)]
fn choose<F: Frame, const ROUTED_KEYS: bool>(
    cache: &mut FlowCache,
    hasher: &FlowHasher,
    tally: &mut Tally,
    snap: &Snapshot,
    frame: &F,
    pkt: &mut PacketState,
    now_ms: u64,
) -> Result<HopId, DropReason> {
    let epoch = snap.generation as u32;
    let cached = match cache.lookup_entry(&pkt.probe, pkt.tcp_flags) {
        Some(c) if c.epoch() == epoch => {
            tally.hits += 1;
            return Ok(c.hop());
        }
        c => c.map(|c| c.get()),
    };
    choose_checked::<F, ROUTED_KEYS>(cache, hasher, tally, snap, frame, pkt, now_ms, cached)
}

/// [`choose`] past the flow-cache lookup, for every packet but a hit under the current
/// generation: `cached` is what the lookup found. Out of line, so that the hit path keeps its
/// registers.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn choose_checked<F: Frame, const ROUTED_KEYS: bool>(
    cache: &mut FlowCache,
    hasher: &FlowHasher,
    tally: &mut Tally,
    snap: &Snapshot,
    frame: &F,
    pkt: &mut PacketState,
    now_ms: u64,
    cached: Option<CachedHop>,
) -> Result<HopId, DropReason> {
    let epoch = snap.generation as u32;
    let tcp_flags = pkt.tcp_flags;
    pkt.meta(frame.data())?;
    let pkt = &*pkt;
    let meta = &pkt.meta;

    // The route's group: looked up in stage one for routed keys; the cached flow's own while
    // the FIB is unchanged since it was stamped (no FIB lookup); else looked up now.
    let (group_id, group) = match cached {
        _ if ROUTED_KEYS => (pkt.route, snap.group(pkt.route).ok_or(DropReason::NoRoute)?),
        Some(c) if route_unchanged_since(snap, c.epoch) => {
            (c.group, snap.group(c.group).ok_or(DropReason::NoRoute)?)
        }
        _ => route(snap, meta)?,
    };
    if let Some(c) = cached
        && c.group == group_id
        && group.still_member(c.member, c.hop)
    {
        cache.update_at(&pkt.probe, CachedHop { epoch, ..c });
        tally.hits += 1;
        return Ok(c.hop);
    }
    miss(
        cache,
        hasher,
        tally,
        frame,
        pkt,
        cached.is_some(),
        group_id,
        group,
        now_ms,
        epoch,
        tcp_flags,
    )
}

/// The bucket pick of a packet whose flow is not cached (or whose cached hop left its group),
/// and the cache update that records it; out of line, so that the hit path stays small.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn miss<F: Frame>(
    cache: &mut FlowCache,
    hasher: &FlowHasher,
    tally: &mut Tally,
    frame: &F,
    pkt: &PacketState,
    was_cached: bool,
    group_id: GroupId,
    group: &GroupTable,
    now_ms: u64,
    epoch: u32,
    tcp_flags: u8,
) -> Result<HopId, DropReason> {
    let meta = &pkt.meta;
    let r = pick_bucket(
        group_id,
        group,
        group_hash(hasher, &group.policy, frame.data(), meta),
    )?;
    // Idle-mode groups learn which buckets are in use from here (misses only: a cached flow
    // never consults its bucket, so moving that bucket cannot move it).
    group.touch(r.group_hash, (now_ms / 1000) as u32);
    let picked = r.cached_hop(epoch);
    if was_cached {
        tally.repicks += 1;
        cache.update_at(&pkt.probe, picked);
    } else {
        tally.misses += 1;
        match cache.insert_at(&pkt.probe, picked, now_ms, tcp_flags) {
            InsertOutcome::NotCached => tally.not_cached += 1,
            InsertOutcome::Evicted => tally.evictions += 1,
            InsertOutcome::Inserted | InsertOutcome::Replaced => {}
        }
    }
    Ok(r.hop)
}

/// The rewrite or encapsulation of a packet toward `hop` ([`action::apply`]) when the per-hop
/// rewrite table did not take it (a fast-path packet's meta is built only now).
#[inline(always)]
fn forward<F: Frame>(
    frame: &mut F,
    pkt: &mut PacketState,
    hop: &NextHop,
    port: &PortInfo,
) -> Result<usize, DropReason> {
    let hash = pkt.hash;
    let meta = *pkt.meta(frame.data())?;
    action::apply(frame, &meta, hop, port, hash)
}

/// The MAC address frames received on `ingress` must be sent to. A port the tables do not know
/// gets the broadcast address, which [`admit`] never accepts, so its frames are all
/// `not_for_us` rather than forwarded under another port's identity.
#[inline]
pub fn ingress_mac(snap: &Snapshot, ingress: PortId) -> [u8; 6] {
    snap.ports
        .get(usize::from(ingress))
        .map_or([0xff; 6], |p| p.mac)
}

/// Parses `frame` into `meta` and refuses what the pipeline drops before any lookup: a frame
/// that does not parse or fails the input checks of the parser (source MAC, martian addresses,
/// fragments), a frame not sent to `port_mac` (the ingress port's own address; see
/// [`ingress_mac`]), an IPv4 limited broadcast, or a TTL (hop limit) that forwarding would
/// exhaust.
#[inline(always)]
pub fn admit(frame: &[u8], port_mac: &[u8; 6], meta: &mut PacketMeta) -> Result<(), DropReason> {
    parse_frame_into(frame, meta)?;
    // 255.255.255.255 is the host's own (RFC 1812 5.3.5.1: never forwarded).
    let d = &meta.dst;
    let limited_broadcast = (meta.version == IpVersion::V4)
        & (u32::from_ne_bytes([d[0], d[1], d[2], d[3]]) == u32::MAX);
    if !to_port(frame, port_mac) || limited_broadcast {
        return Err(DropReason::NotForUs);
    }
    if meta.ttl <= 1 {
        return Err(DropReason::TtlExpired);
    }
    Ok(())
}

/// [`admit`] of a frame the parser's fast path took (`v` = [`parse_fast_v4`] of `frame`), with
/// the same result and no meta: such a frame parsed and passed the input checks, and its
/// destination is never the limited broadcast (the fast path leaves 255/8 to the general path).
#[inline(always)]
pub fn admit_fast(frame: &[u8], port_mac: &[u8; 6], v: &FastV4) -> Result<(), DropReason> {
    if !to_port(frame, port_mac) {
        return Err(DropReason::NotForUs);
    }
    if v.ttl <= 1 {
        return Err(DropReason::TtlExpired);
    }
    Ok(())
}

/// Whether `frame` is sent to the port whose address is `port_mac`. A router routes what is
/// sent to it: frames for other hosts, broadcast and multicast frames are not its to forward
/// (the host has had ARP and the like before the pipeline). The group bit is tested too, so
/// that no port address, however configured, lets a multicast frame through.
#[inline(always)]
fn to_port(frame: &[u8], port_mac: &[u8; 6]) -> bool {
    // Compared as integers: the port's half is the same for the whole burst.
    port_mac[0] & 1 == 0
        && frame
            .first_chunk::<6>()
            .is_some_and(|dst| mac48(dst) == mac48(port_mac))
}

/// A MAC address as one integer (byte order irrelevant: only compared for equality).
#[inline(always)]
fn mac48(m: &[u8; 6]) -> u64 {
    u64::from(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]))
        | (u64::from(u16::from_ne_bytes([m[4], m[5]])) << 32)
}

/// Longest-prefix match of the packet's destination (IPv4 or IPv6); 0 when there is no route.
#[inline]
pub fn lookup_route(snap: &Snapshot, meta: &PacketMeta) -> GroupId {
    match meta.version {
        IpVersion::V4 => {
            let d = &meta.dst;
            snap.fib4
                .lookup(u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
        }
        IpVersion::V6 => snap.fib6.lookup(u128::from_be_bytes(meta.dst)),
    }
}

/// The packet's route: its group id and table, or [`DropReason::NoRoute`] when no route covers
/// the destination (or the route names no group).
#[inline(always)]
pub fn route<'s>(
    snap: &'s Snapshot,
    meta: &PacketMeta,
) -> Result<(GroupId, &'s GroupTable), DropReason> {
    let id = lookup_route(snap, meta);
    if id == 0 {
        return Err(DropReason::NoRoute);
    }
    let group = snap.group(id).ok_or(DropReason::NoRoute)?;
    Ok((id, group))
}

/// The flow-cache key of a packet admitted under `snap` (`meta` parsed from `frame`): its outer
/// key while every group hashes the outer 5-tuple, else [`routed_key`]. What the pipeline's
/// first stage computes (which makes that choice once per burst).
#[inline]
pub fn cache_key(snap: &Snapshot, frame: &[u8], meta: &PacketMeta) -> Result<CacheKey, DropReason> {
    if snap.outer_keyed() {
        Ok(outer_key(meta))
    } else {
        routed_key(snap, frame, meta)
    }
}

/// The outer key of a packet, built before its route is known (so `route` is 0).
#[inline(always)]
pub fn outer_key(meta: &PacketMeta) -> CacheKey {
    CacheKey {
        key: FlowKey::from_meta(meta),
        tcp_flags: meta.tcp_flags,
        route: 0,
    }
}

/// The packet's route, then its key under that group's policy ([`group_key`]); refuses the
/// packet with [`DropReason::NoRoute`] as [`route`] does.
#[inline(always)]
pub fn routed_key(
    snap: &Snapshot,
    frame: &[u8],
    meta: &PacketMeta,
) -> Result<CacheKey, DropReason> {
    let (id, group) = route(snap, meta)?;
    Ok(group_key(id, &group.policy, frame, meta))
}

/// The key of a packet routed to group `group_id` of `policy`: the outer key when the policy
/// hashes the outer 5-tuple, else the policy key of the headers the policy hashes (the inner
/// ones when it asks for them and the packet has them, as in [`group_hash`]).
#[inline(always)]
pub fn group_key(
    group_id: GroupId,
    policy: &HashPolicy,
    frame: &[u8],
    meta: &PacketMeta,
) -> CacheKey {
    if policy.keys_outer_five_tuple() {
        return CacheKey {
            route: group_id,
            ..outer_key(meta)
        };
    }
    let inner = if policy.inner {
        parse_inner(frame, meta)
    } else {
        None
    };
    let hashed = inner.as_ref().unwrap_or(meta);
    CacheKey {
        key: policy_key(hashed, policy, group_id),
        tcp_flags: hashed.tcp_flags,
        route: group_id,
    }
}

/// The encapsulation's entropy (outer UDP source port, IPv6 flow label) of a packet whose cache
/// key `key` hashed to `key_hash`: always the cache hash of its outer key, so that keying a
/// group by its policy changes what is cached, not the headers sent.
#[inline(always)]
pub fn entropy(hasher: &FlowHasher, meta: &PacketMeta, key: &FlowKey, key_hash: u64) -> u64 {
    if key.group == 0 {
        key_hash
    } else {
        hasher.cache_hash(&FlowKey::from_meta(meta))
    }
}

/// The hash that picks the packet's bucket in a group of `policy`: over the inner headers when
/// the policy asks for them and the packet has them (the frame is read only then), else over the
/// headers `meta` describes.
#[inline(always)]
pub fn group_hash(
    hasher: &FlowHasher,
    policy: &HashPolicy,
    frame: &[u8],
    meta: &PacketMeta,
) -> u32 {
    let inner = if policy.inner {
        parse_inner(frame, meta)
    } else {
        None
    };
    hasher.group_hash(inner.as_ref().unwrap_or(meta), policy)
}

/// The member of `group` (id `group_id`) owning the bucket `hash` selects, or
/// [`DropReason::NoNextHop`] when that bucket has no owner.
#[inline(always)]
pub fn pick_bucket(
    group_id: GroupId,
    group: &GroupTable,
    hash: u32,
) -> Result<Resolution, DropReason> {
    let (member, hop) = group.pick(hash).ok_or(DropReason::NoNextHop)?;
    Ok(Resolution {
        group: group_id,
        policy: group.policy,
        group_hash: hash,
        bucket: (hash & (group.bucket_count() - 1)) as usize,
        member,
        hop,
    })
}

/// The whole miss path of an admitted packet (`meta` parsed from `frame`): route, group hash,
/// bucket. What the pipeline picks for a flow it has not cached.
#[inline]
pub fn resolve(
    snap: &Snapshot,
    hasher: &FlowHasher,
    frame: &[u8],
    meta: &PacketMeta,
) -> Result<Resolution, DropReason> {
    let (group_id, group) = route(snap, meta)?;
    pick_bucket(
        group_id,
        group,
        group_hash(hasher, &group.policy, frame, meta),
    )
}

#[cfg(test)]
mod tests;
