//! `ecmpfwd bench --stages`: each pipeline stage timed alone, on the set-up the whole-pipeline
//! run used (same tables, same frames in the same replay order, a flow cache of the same size
//! holding the same flows).
//!
//! Every stage walks `stage_packets(--packets)` packets over the frames in replay order, starting
//! over at the end as the replay port does, in bursts of [`BURST`]. What a stage needs is worked
//! out before its clock starts (the parsed metadata, keys, hashes, route groups, hops), so a
//! stage's time is that stage's work and the reads of its own inputs, nothing upstream of it.
//!
//! The inputs are worked out, and the stages timed, with the pipeline's own miss-path and key
//! functions (`ecmp_dataplane::pipeline::{admit, cache_key, entropy, lookup_route, group_hash,
//! pick_bucket, resolve}`): IPv4 and IPv6 alike, and a group whose policy hashes inner headers
//! (or fewer fields) hashes and keys them here as it does there. In tables where some group is
//! keyed by its policy, the key needs the route, so the hash stage includes that route lookup as
//! the pipeline's first stage does.
//!
//! The stages do not add up to the pipeline: the pipeline overlaps them within a burst, and a
//! flow found in the flow cache (after warm-up, nearly all of them) skips the group hash, the
//! route lookup and the bucket pick altogether. What the pipeline also does and no stage times:
//! rx copy-in, counters, tx hand-off.

use std::hint::black_box;
use std::ops::Range;
use std::time::{Duration, Instant};

use ecmp_dataplane::action;
use ecmp_dataplane::drop::DropReason;
use ecmp_dataplane::flowcache::{CacheProbe, FlowCache};
use ecmp_dataplane::hash::FlowHasher;
use ecmp_dataplane::pipeline::{self, CacheKey, Resolution};
use ecmp_port::memory::{FramePool, MemFrame};
use ecmp_port::{BURST, Burst};
use ecmp_tables::nexthop::{GroupId, HopId};
use ecmp_tables::policy::HashPolicy;
use ecmp_tables::snapshot::Snapshot;
use ecmp_wire::meta::PacketMeta;
use serde::Serialize;

use super::{BenchError, BenchSetup};
use crate::rig::INGRESS;

/// Most packets any one stage is timed over: a few hundred milliseconds per stage even when
/// every lookup misses the CPU caches, so that a 10M-flow run stays within tens of seconds.
pub const MAX_STAGE_PACKETS: u64 = 4_000_000;

/// The flow cache's clock during the flow-cache stage: constant, so no flow expires.
const NOW_MS: u64 = 1_000;

/// One timed part of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Ethernet to [`PacketMeta`], IPv4 header checksum verified, TTL checked.
    Parse,
    /// The flow key, its flow-cache hash and the group hash of the route's group policy (over
    /// the inner headers when the policy asks for them; the key too, after a route lookup, when
    /// some group is keyed by its policy).
    Hash,
    /// Longest-prefix match of the destination, IPv4 or IPv6.
    Lpm,
    /// Flow-cache probe, prefetch and lookup of cached flows, a burst at a time.
    FlowCache,
    /// The route's group and the bucket its group hash selects.
    Bucket,
    /// Rewrite or encapsulation toward the hop, on a fresh copy of the received frame.
    Action,
    /// The whole pipeline, as the main run measured it (for comparison).
    Pipeline,
}

impl Stage {
    /// The stage's name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::Hash => "hash",
            Stage::Lpm => "lpm",
            Stage::FlowCache => "flow_cache",
            Stage::Bucket => "bucket",
            Stage::Action => "action",
            Stage::Pipeline => "pipeline",
        }
    }
}

/// What one stage measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StageReport {
    /// Which stage.
    pub stage: Stage,
    /// Nanoseconds per packet (0 when no packet was timed).
    pub ns_per_packet: f64,
    /// Packets timed.
    pub packets: u64,
}

impl StageReport {
    /// The report of `packets` packets timed over `elapsed`.
    pub fn new(stage: Stage, elapsed: Duration, packets: u64) -> Self {
        Self {
            stage,
            ns_per_packet: ns_per_packet(elapsed, packets),
            packets,
        }
    }
}

fn ns_per_packet(elapsed: Duration, packets: u64) -> f64 {
    if packets == 0 {
        0.0
    } else {
        elapsed.as_nanos() as f64 / packets as f64
    }
}

/// Packets each stage is timed over when the whole run times `requested`.
pub fn stage_packets(requested: u64) -> u64 {
    requested.min(MAX_STAGE_PACKETS)
}

/// Times every stage but [`Stage::Pipeline`] over [`stage_packets`]`(packets)` packets of
/// `setup`, in the order of [`Stage`].
pub fn measure(setup: &BenchSetup, packets: u64) -> Result<Vec<StageReport>, BenchError> {
    Ok(measure_all(setup, packets)?.reports)
}

/// The stage table as text, one row per stage, with a note on reading it.
pub fn render(stages: &[StageReport]) -> String {
    let mut out = format!("{:<12} {:>10} {:>12}\n", "stage", "ns/packet", "packets");
    for s in stages {
        out.push_str(&format!(
            "{:<12} {:>10.2} {:>12}\n",
            s.stage.name(),
            s.ns_per_packet,
            s.packets
        ));
    }
    out.push_str(
        "(each stage timed alone on the same frames; the pipeline overlaps them and skips the \
         group hash, lpm and bucket for flows found in the flow cache)\n",
    );
    out
}

/// Everything [`measure`] found, with what the tests check beside the timings.
struct Measured {
    reports: Vec<StageReport>,
    /// Flow-cache stage lookups that found their flow (read by the tests: a stage that missed
    /// would time the wrong path).
    #[cfg_attr(not(test), allow(dead_code))]
    cache_hits: u64,
    /// Heap allocations made inside the timed regions, all stages together.
    #[cfg(test)]
    allocations: u64,
}

/// A clock that runs only inside [`Stopwatch::time`]; in tests it also counts the heap
/// allocations made there, which must be none.
#[derive(Default)]
struct Stopwatch {
    elapsed: Duration,
    #[cfg(test)]
    allocations: u64,
}

impl Stopwatch {
    #[inline(always)]
    fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        #[cfg(test)]
        let before = ecmp_port::alloc_count::allocations();
        let t = Instant::now();
        let r = f();
        self.elapsed += t.elapsed();
        #[cfg(test)]
        {
            self.allocations += ecmp_port::alloc_count::allocations() - before;
        }
        r
    }
}

/// The index ranges of `packets` packets over `len` inputs, in bursts of at most [`BURST`],
/// starting over at index 0 after the last input (a pass's last burst may be short).
struct Bursts {
    len: usize,
    left: u64,
    next: usize,
}

impl Bursts {
    fn new(len: usize, packets: u64) -> Self {
        Self {
            len,
            // No input to walk: nothing to time.
            left: if len == 0 { 0 } else { packets },
            next: 0,
        }
    }
}

impl Iterator for Bursts {
    type Item = Range<usize>;

    #[inline]
    fn next(&mut self) -> Option<Range<usize>> {
        if self.left == 0 {
            return None;
        }
        if self.next == self.len {
            self.next = 0;
        }
        let n = BURST
            .min(self.len - self.next)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let r = self.next..self.next + n;
        self.next += n;
        self.left -= n as u64;
        Some(r)
    }
}

/// What the pipeline decides for one flow, worked out untimed.
struct Resolved {
    meta: PacketMeta,
    key: CacheKey,
    hash: u64,
    /// The encapsulation's entropy.
    entropy: u64,
    miss: Resolution,
}

/// Parses, keys, hashes, routes and picks the hop of one frame with the pipeline's own
/// functions, as it does on a flow-cache miss.
fn resolve(snap: &Snapshot, hasher: &FlowHasher, frame: &[u8]) -> Result<Resolved, DropReason> {
    let mut meta = PacketMeta::default();
    pipeline::admit(frame, &pipeline::ingress_mac(snap, INGRESS), &mut meta)?;
    let key = pipeline::cache_key(snap, frame, &meta)?;
    let hash = hasher.cache_hash(&key.key);
    let entropy = pipeline::entropy(hasher, &meta, &key.key, hash);
    let miss = pipeline::resolve(snap, hasher, frame, &meta)?;
    Ok(Resolved {
        meta,
        key,
        hash,
        entropy,
        miss,
    })
}

/// A flow key as the flow-cache stage looks it up.
#[derive(Clone, Copy)]
struct CacheInput {
    key: CacheKey,
    hash: u64,
}

/// What the action stage needs beside the frame and its metadata.
#[derive(Clone, Copy)]
struct ActionInput {
    hop: HopId,
    hash: u64,
}

/// Each stage's inputs, one per distinct frame walked, in replay order; one array per stage so
/// that a stage streams only what it reads.
#[derive(Default)]
struct Inputs {
    metas: Vec<PacketMeta>,
    policies: Vec<HashPolicy>,
    cache: Vec<CacheInput>,
    picks: Vec<(GroupId, u32)>,
    actions: Vec<ActionInput>,
}

impl Inputs {
    fn with_capacity(n: usize) -> Self {
        Self {
            metas: Vec::with_capacity(n),
            policies: Vec::with_capacity(n),
            cache: Vec::with_capacity(n),
            picks: Vec::with_capacity(n),
            actions: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, r: &Resolved) {
        self.metas.push(r.meta);
        self.policies.push(r.miss.policy);
        self.cache.push(CacheInput {
            key: r.key,
            hash: r.hash,
        });
        self.picks.push((r.miss.group, r.miss.group_hash));
        self.actions.push(ActionInput {
            hop: r.miss.hop,
            hash: r.entropy,
        });
    }
}

fn measure_all(setup: &BenchSetup, packets: u64) -> Result<Measured, BenchError> {
    let packets = stage_packets(packets);
    let snap = &setup.snapshot;
    let hasher = FlowHasher::new(setup.pipeline.seed, &setup.pipeline.rss_key);
    let flows = setup.frames().len();
    // Inputs for the frames the stages walk; past the last flow they start over.
    let walked = flows.min(usize::try_from(packets).unwrap_or(usize::MAX));

    // The pipeline's warm-up pass: every flow seen once, so every flow inserted.
    let mut cache =
        FlowCache::new(setup.pipeline.flow_cache).map_err(|e| BenchError::Dataplane(e.into()))?;
    let mut inputs = Inputs::with_capacity(walked);
    for (index, frame) in setup.frames().enumerate() {
        let r = resolve(snap, &hasher, frame)
            .map_err(|reason| BenchError::Unforwardable { index, reason })?;
        let hop = r.miss.cached_hop(snap.generation as u32);
        cache.insert(&r.key.key, r.hash, hop, NOW_MS, r.key.tcp_flags);
        if index < walked {
            inputs.push(&r);
        }
    }

    let frame_len = setup.frame_len;
    let frames = &setup.frames[..walked * frame_len];
    let mut reports = Vec::with_capacity(7);
    #[cfg(test)]
    let mut allocations = 0;
    let mut record = |stage: Stage, w: Stopwatch| {
        #[cfg(test)]
        {
            allocations += w.allocations;
        }
        reports.push(StageReport::new(stage, w.elapsed, packets));
    };

    record(
        Stage::Parse,
        parse_stage(
            &pipeline::ingress_mac(snap, INGRESS),
            frames,
            frame_len,
            walked,
            packets,
        ),
    );
    record(
        Stage::Hash,
        hash_stage(snap, &hasher, frames, frame_len, &inputs, packets),
    );
    record(Stage::Lpm, lpm_stage(snap, &inputs, packets));
    let (w, cache_hits) = flow_cache_stage(&mut cache, &inputs, packets);
    record(Stage::FlowCache, w);
    record(Stage::Bucket, bucket_stage(snap, &inputs, packets));
    record(
        Stage::Action,
        action_stage(snap, frames, frame_len, &inputs, packets)?,
    );
    Ok(Measured {
        reports,
        cache_hits,
        #[cfg(test)]
        allocations,
    })
}

/// Parses and admits each burst's frames (received on the port of `port_mac`) into the burst's
/// metadata array, as the pipeline's first loop.
fn parse_stage(
    port_mac: &[u8; 6],
    frames: &[u8],
    frame_len: usize,
    walked: usize,
    packets: u64,
) -> Stopwatch {
    let mut w = Stopwatch::default();
    let mut metas = [PacketMeta::default(); BURST];
    w.time(|| {
        for r in Bursts::new(walked, packets) {
            let burst = &frames[r.start * frame_len..r.end * frame_len];
            for (f, m) in burst.chunks_exact(frame_len).zip(metas.iter_mut()) {
                let _ = black_box(pipeline::admit(f, port_mac, m));
            }
            black_box(&metas);
        }
    });
    w
}

/// The flow key and cache hash of each packet, and its group hash under its group's policy (the
/// frame is read only for a policy that hashes inner headers, as in the pipeline).
fn hash_stage(
    snap: &Snapshot,
    hasher: &FlowHasher,
    frames: &[u8],
    frame_len: usize,
    inputs: &Inputs,
    packets: u64,
) -> Stopwatch {
    let mut w = Stopwatch::default();
    w.time(|| {
        for r in Bursts::new(inputs.metas.len(), packets) {
            let burst = frames[r.start * frame_len..r.end * frame_len].chunks_exact(frame_len);
            let (metas, policies) = (&inputs.metas[r.clone()], &inputs.policies[r]);
            for ((f, m), p) in burst.zip(metas).zip(policies) {
                if let Ok(k) = pipeline::cache_key(snap, f, m) {
                    black_box(hasher.cache_hash(&k.key));
                }
                black_box(pipeline::group_hash(hasher, p, f, m));
            }
        }
    });
    w
}

/// The route group of each destination.
fn lpm_stage(snap: &Snapshot, inputs: &Inputs, packets: u64) -> Stopwatch {
    let mut w = Stopwatch::default();
    w.time(|| {
        for r in Bursts::new(inputs.metas.len(), packets) {
            for m in &inputs.metas[r] {
                black_box(pipeline::lookup_route(snap, m));
            }
        }
    });
    w
}

/// Each burst's keys probed and their buckets prefetched, then looked up, as the pipeline's
/// first and second loops do; returns the hits beside the time.
fn flow_cache_stage(cache: &mut FlowCache, inputs: &Inputs, packets: u64) -> (Stopwatch, u64) {
    let mut w = Stopwatch::default();
    let mut probes = [CacheProbe::default(); BURST];
    let hits = w.time(|| {
        let mut hits = 0u64;
        for r in Bursts::new(inputs.cache.len(), packets) {
            let burst = &inputs.cache[r];
            for (c, p) in burst.iter().zip(probes.iter_mut()) {
                *p = cache.probe(&c.key.key, c.hash);
                cache.prefetch_at(p);
            }
            for (c, p) in burst.iter().zip(&probes) {
                hits += u64::from(black_box(cache.lookup_at(p, NOW_MS, c.key.tcp_flags)).is_some());
            }
        }
        hits
    });
    (w, hits)
}

/// The bucket owner each group hash selects in its route's group.
fn bucket_stage(snap: &Snapshot, inputs: &Inputs, packets: u64) -> Stopwatch {
    let mut w = Stopwatch::default();
    w.time(|| {
        for r in Bursts::new(inputs.picks.len(), packets) {
            for &(group, hash) in &inputs.picks[r] {
                let pick = snap
                    .group(group)
                    .ok_or(DropReason::NoRoute)
                    .and_then(|g| pipeline::pick_bucket(group, g, hash));
                let _ = black_box(pick.map(|p| p.hop));
            }
        }
    });
    w
}

/// Rewrite or encapsulation of each packet toward its hop. Each burst's frames are copied into
/// pool frames first, untimed, as rx copy-in would have left them: only the action is timed.
fn action_stage(
    snap: &Snapshot,
    frames: &[u8],
    frame_len: usize,
    inputs: &Inputs,
    packets: u64,
) -> Result<Stopwatch, BenchError> {
    let pool = FramePool::new(BURST);
    let mut burst: Burst<MemFrame> = Burst::new();
    let mut w = Stopwatch::default();
    for r in Bursts::new(inputs.actions.len(), packets) {
        pool.release_burst(&mut burst);
        for f in frames[r.start * frame_len..r.end * frame_len].chunks_exact(frame_len) {
            burst.push(pool.frame_from(f)?);
        }
        let (metas, actions) = (&inputs.metas[r.clone()], &inputs.actions[r]);
        w.time(|| {
            for ((frame, meta), a) in burst.iter_mut().zip(metas).zip(actions) {
                let sent = match snap.hops.get(a.hop as usize) {
                    Some(hop) => match snap.ports.get(usize::from(hop.port)) {
                        Some(port) => action::apply(frame, meta, hop, port, a.hash),
                        None => Err(DropReason::NoEgressPort),
                    },
                    None => Err(DropReason::NoNextHop),
                };
                let _ = black_box(sent);
            }
            black_box(&burst);
        });
    }
    pool.release_burst(&mut burst);
    Ok(w)
}

#[cfg(test)]
mod tests;
