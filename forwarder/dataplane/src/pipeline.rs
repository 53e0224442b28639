//! The per-burst pipeline: parse -> flow key/hash -> flow cache -> FIB -> bucket -> action.
//!
//! Each stage runs over the whole burst before the next starts (DPDK/VPP style): the flow-cache
//! bucket of every packet is prefetched in the first loop and is in cache by the time the second
//! loop reads it, a prefetch distance of one stage. The pipeline does no I/O and no allocation:
//! all scratch arrays are sized by [`BURST`] and owned by the worker. Each drop is counted where
//! it is decided, once.
//!
//! The miss path (what a packet not served by the flow cache goes through) is public, as the
//! functions [`admit`], [`lookup_route`], [`route`], [`group_hash`], [`pick_bucket`] and their
//! composition [`resolve`]: the pipeline, [`Pipeline::trace`] and `ecmpfwd bench --stages` all
//! call these, so the three cannot disagree on a packet's hop.

use ecmp_tables::group::GroupTable;
use ecmp_tables::nexthop::{GroupId, HopId};
use ecmp_tables::policy::HashPolicy;
use ecmp_tables::snapshot::Snapshot;
use ecmp_wire::meta::{IpVersion, PacketMeta};
use ecmp_wire::parse::{parse_frame_into, parse_inner};

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

    /// Processes one burst received on port `ingress` in place: rewrites or encapsulates every
    /// forwarded frame and writes one verdict per frame into `verdicts` (which must be at least
    /// as long as `frames`).
    pub fn process<F: Frame>(
        &mut self,
        snap: &Snapshot,
        ingress: PortId,
        frames: &mut [F],
        verdicts: &mut [Verdict],
        now_ms: u64,
    ) {
        let n = frames.len().min(BURST).min(verdicts.len());
        if self.hop_packets.len() < snap.hops.len() {
            self.on_new_snapshot(snap);
        }
        let port_mac = ingress_mac(snap, ingress);
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
            let dropped = match admit(data, &port_mac, &mut pkt.meta) {
                Ok(()) => {
                    let key = FlowKey::from_meta(&pkt.meta);
                    let h = self.hasher.cache_hash(&key);
                    pkt.hash = h;
                    pkt.probe = self.cache.probe(&key, h);
                    self.cache.prefetch_at(&pkt.probe);
                    pkt.pending = true;
                    continue;
                }
                Err(r) => r,
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
        let key = FlowKey::from_meta(&meta);
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

    let (group_id, group) = route(snap, meta)?;
    if let Some(c) = cached
        && c.group == group_id
        && group.still_member(c.member, c.hop)
    {
        cache.update_at(&pkt.probe, CachedHop { epoch, ..c });
        counters.add(Counter::CacheHits, 1);
        return Ok(c.hop);
    }

    let r = pick_bucket(
        group_id,
        group,
        group_hash(hasher, &group.policy, frame.data(), meta),
    )?;
    // Idle-mode groups learn which buckets are in use from here (misses only: a cached flow
    // never consults its bucket, so moving that bucket cannot move it).
    group.touch(r.group_hash, (now_ms / 1000) as u32);
    let picked = r.cached_hop(epoch);
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
    Ok(r.hop)
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
    // A router routes what is sent to it: frames for other hosts, broadcast and multicast
    // frames are not its to forward (the host has had ARP and the like before the pipeline).
    // The group bit is tested too, so that no port address, however configured, lets a
    // multicast frame through.
    // Compared as integers: the port's half is the same for the whole burst.
    let to_port = port_mac[0] & 1 == 0
        && frame
            .first_chunk::<6>()
            .is_some_and(|dst| mac48(dst) == mac48(port_mac));
    // 255.255.255.255 is the host's own (RFC 1812 5.3.5.1: never forwarded).
    let d = &meta.dst;
    let limited_broadcast = (meta.version == IpVersion::V4)
        & (u32::from_ne_bytes([d[0], d[1], d[2], d[3]]) == u32::MAX);
    if !to_port || limited_broadcast {
        return Err(DropReason::NotForUs);
    }
    if meta.ttl <= 1 {
        return Err(DropReason::TtlExpired);
    }
    Ok(())
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
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;

    use ecmp_port::memory::{FramePool, MemFrame};
    use ecmp_tables::group::{GroupMode, ResilientGroup};
    use ecmp_tables::nexthop::{Action, NextHop, PortInfo};
    use ecmp_tables::{Fib4, Fib6};
    use ecmp_wire::{ethertype, ip_proto};

    use super::*;
    use crate::hash::DEFAULT_RSS_KEY;

    /// Hops per group; every hop is on port 1.
    const HOPS: u32 = 4;
    const EGRESS: PortId = 1;
    /// Where every test frame arrives (its MAC is the destination of [`ethernet`]'s frames).
    const INGRESS: PortId = 0;
    /// The snapshot's generation, so the epoch of every flow-cache entry.
    const GENERATION: u32 = 5;

    /// Group 1 takes IPv4 10.1/16, group 2 IPv6 2001:db8:2::/48, group 3 (hashing inner headers)
    /// both 10.3/16 and 2001:db8:3::/48; 64 buckets and [`HOPS`] hops each.
    fn snapshot() -> Snapshot {
        let mut hops = vec![NextHop::UNSET];
        let mut groups = vec![Arc::new(GroupTable::empty())];
        for g in 1..=3u32 {
            let mut group = ResilientGroup::new(64, GroupMode::Manual, 9).unwrap();
            group.set_policy(HashPolicy {
                inner: g == 3,
                ..HashPolicy::default()
            });
            for _ in 0..HOPS {
                let id = hops.len() as u32;
                hops.push(NextHop {
                    id,
                    addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, id as u8)),
                    port: EGRESS,
                    mac: [0x02, 0, 0, 0, 0, id as u8],
                    weight: 1,
                    action: Action::Rewrite,
                });
                group.add_member(id, 1).unwrap();
            }
            group.clear();
            groups.push(Arc::new(group.table()));
        }
        let mut fib4 = Fib4::new(16);
        fib4.insert(Ipv4Addr::new(10, 1, 0, 0), 16, 1).unwrap();
        fib4.insert(Ipv4Addr::new(10, 3, 0, 0), 16, 3).unwrap();
        let mut fib6 = Fib6::new();
        fib6.insert("2001:db8:2::".parse().unwrap(), 48, 2).unwrap();
        fib6.insert("2001:db8:3::".parse().unwrap(), 48, 3).unwrap();
        let port = PortInfo {
            mac: [0x02, 0xaa, 0, 0, 0, 0],
            mtu: 1500,
        };
        Snapshot {
            generation: u64::from(GENERATION),
            fib4: Arc::new(fib4),
            fib6: Arc::new(fib6),
            groups: groups.into(),
            hops,
            ports: vec![port, port],
        }
    }

    fn udp(sport: u16) -> Vec<u8> {
        let mut u = vec![0u8; 8 + 10];
        u[0..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&53u16.to_be_bytes());
        let len = u.len() as u16;
        u[4..6].copy_from_slice(&len.to_be_bytes());
        u
    }

    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = protocol;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        ip.extend_from_slice(payload);
        ecmp_wire::ipv4::Packet::new_unchecked(&mut ip[..]).fill_checksum();
        ip
    }

    fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
        let mut ip = vec![0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        ip[6] = next;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&src.octets());
        ip[24..40].copy_from_slice(&dst.octets());
        ip.extend_from_slice(payload);
        ip
    }

    fn ethernet(ip: &[u8]) -> Vec<u8> {
        let ty = if ip[0] >> 4 == 4 {
            ethertype::IPV4
        } else {
            ethertype::IPV6
        };
        let mut f = vec![0x02, 0xaa, 0, 0, 0, 0, 0x02, 0xcc, 0, 0, 0, 1];
        f.extend_from_slice(&ty.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    /// `n` flows of each kind: plain IPv4 to group 1, plain IPv6 to group 2, and IPv4-in-IPv4
    /// and IPv6-in-IPv6 to group 3 whose outer headers are all alike (one tunnel), so only the
    /// inner headers tell their flows apart.
    fn flows(n: u16) -> Vec<(&'static str, Vec<u8>)> {
        let (src4, dst4) = (Ipv4Addr::new(172, 16, 0, 1), Ipv4Addr::new(10, 1, 0, 1));
        let src6: Ipv6Addr = "2001:db8:ffff::1".parse().unwrap();
        let dst6: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
        let (tun4_src, tun4_dst) = (Ipv4Addr::new(172, 16, 9, 9), Ipv4Addr::new(10, 3, 0, 1));
        let tun6_src: Ipv6Addr = "2001:db8:ffff::9".parse().unwrap();
        let tun6_dst: Ipv6Addr = "2001:db8:3::1".parse().unwrap();
        let mut out = Vec::new();
        for i in 0..n {
            let sport = 1000 + i;
            let v4 = ipv4(src4, dst4, ip_proto::UDP, &udp(sport));
            let v6 = ipv6(src6, dst6, ip_proto::UDP, &udp(sport));
            out.push(("ipv4", ethernet(&v4)));
            out.push(("ipv6", ethernet(&v6)));
            out.push((
                "inner4",
                ethernet(&ipv4(tun4_src, tun4_dst, ip_proto::IPV4, &v4)),
            ));
            out.push((
                "inner6",
                ethernet(&ipv6(tun6_src, tun6_dst, ip_proto::IPV6, &v6)),
            ));
        }
        out
    }

    fn pipeline(snap: &Snapshot) -> Pipeline {
        let mut p = Pipeline::new(&PipelineConfig {
            seed: 3,
            rss_key: DEFAULT_RSS_KEY,
            flow_cache: FlowCacheConfig {
                capacity: 1024,
                ..FlowCacheConfig::default()
            },
        })
        .unwrap();
        p.on_new_snapshot(snap);
        p
    }

    /// Sends `frame` through `p` alone and returns its verdict and the hop it was counted on.
    fn forward(
        p: &mut Pipeline,
        snap: &Snapshot,
        pool: &FramePool,
        frame: &[u8],
    ) -> (Verdict, Option<HopId>) {
        let before = p.hop_packets().to_vec();
        let mut frames: [MemFrame; 1] = [pool.frame_from(frame).unwrap()];
        let mut verdicts = [Verdict::Drop(DropReason::NoRoute)];
        p.process(snap, INGRESS, &mut frames, &mut verdicts, 1_000);
        let [f] = frames;
        pool.release(f);
        let counted: Vec<usize> = (0..before.len())
            .filter(|&h| p.hop_packets()[h] != before[h])
            .collect();
        assert!(counted.len() <= 1, "one packet counted on {counted:?}");
        (verdicts[0], counted.first().map(|&h| h as HopId))
    }

    #[test]
    fn resolve_and_trace_pick_what_the_pipeline_picks_for_ipv4_ipv6_and_inner_hashing() {
        let snap = snapshot();
        let pool = FramePool::new(8);
        let mut hops_of: BTreeMap<&str, BTreeSet<HopId>> = BTreeMap::new();
        let mut outer_hashes: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
        for (kind, frame) in flows(64) {
            // A pipeline that has seen nothing, so the flow takes the miss path.
            let mut p = pipeline(&snap);
            let mut meta = PacketMeta::default();
            admit(&frame, &ingress_mac(&snap, INGRESS), &mut meta).unwrap();
            let r = resolve(&snap, p.hasher(), &frame, &meta).unwrap();
            assert_eq!(r.group, lookup_route(&snap, &meta), "{kind}");
            assert_eq!(r.bucket, (r.group_hash & 63) as usize, "{kind}");
            assert_eq!(
                p.trace(&snap, INGRESS, &frame, 1_000),
                Ok(Choice::Bucket {
                    hop: r.cached_hop(GENERATION),
                    bucket: r.bucket
                }),
                "{kind}"
            );

            // The pipeline sends it to that hop and caches exactly that choice.
            let (verdict, counted) = forward(&mut p, &snap, &pool, &frame);
            assert_eq!(verdict, Verdict::Tx(EGRESS), "{kind}");
            assert_eq!(counted, Some(r.hop), "{kind}");
            let key = FlowKey::from_meta(&meta);
            let hash = p.hasher().cache_hash(&key);
            assert_eq!(
                p.flow_cache().peek(&key, hash, 1_000),
                Some(r.cached_hop(GENERATION)),
                "{kind}"
            );

            hops_of.entry(kind).or_default().insert(r.hop);
            let outer = p.hasher().group_hash(&meta, &r.policy);
            outer_hashes.entry(kind).or_default().insert(outer);
        }
        for (kind, group) in [("ipv4", 1u32), ("ipv6", 2), ("inner4", 3), ("inner6", 3)] {
            // 64 flows over 4 hops: every hop of the flows' own group is used.
            let expected: BTreeSet<HopId> = ((group - 1) * HOPS + 1..=group * HOPS).collect();
            assert_eq!(hops_of[kind], expected, "{kind}");
        }
        // The tunnelled flows share their outer headers: hashed on those they would all take
        // one bucket, so their spread above is the inner hash at work.
        assert_eq!(outer_hashes["inner4"].len(), 1);
        assert_eq!(outer_hashes["inner6"].len(), 1);
    }

    #[test]
    fn trace_tells_the_hop_the_pipeline_then_takes_as_its_cache_fills() {
        let snap = snapshot();
        let pool = FramePool::new(8);
        let mut p = pipeline(&snap);
        let mut cached_before = 0;
        for (kind, frame) in flows(32).into_iter().chain(flows(32)) {
            let before = p.trace(&snap, INGRESS, &frame, 1_000).unwrap();
            let (verdict, counted) = forward(&mut p, &snap, &pool, &frame);
            assert_eq!(verdict, Verdict::Tx(EGRESS), "{kind}");
            let traced = match before {
                Choice::Cached(c) => {
                    cached_before += 1;
                    c
                }
                Choice::Bucket { hop, .. } => hop,
            };
            assert_eq!(counted, Some(traced.hop), "{kind}: {before:?}");
            // Afterwards the flow is cached, on the hop it took.
            match p.trace(&snap, INGRESS, &frame, 1_000) {
                Ok(Choice::Cached(c)) => assert_eq!(c.hop, traced.hop, "{kind}"),
                other => panic!("{kind}: a forwarded flow traces as {other:?}"),
            }
        }
        // The second pass found every flow cached.
        assert!(cached_before >= 4 * 32, "{cached_before}");
    }

    #[test]
    fn trace_reports_the_drops_the_pipeline_makes() {
        let snap = snapshot();
        let pool = FramePool::new(8);
        let mut p = pipeline(&snap);
        let no_route = ethernet(&ipv4(
            Ipv4Addr::new(172, 16, 0, 1),
            Ipv4Addr::new(10, 2, 0, 1),
            ip_proto::UDP,
            &udp(7),
        ));
        let mut ttl1 = ethernet(&ipv4(
            Ipv4Addr::new(172, 16, 0, 1),
            Ipv4Addr::new(10, 1, 0, 1),
            ip_proto::UDP,
            &udp(7),
        ));
        ttl1[14 + 8] = 1;
        ecmp_wire::ipv4::Packet::new_unchecked(&mut ttl1[14..]).fill_checksum();
        let runt = vec![0u8; 10];
        for (frame, reason) in [
            (no_route, DropReason::NoRoute),
            (ttl1, DropReason::TtlExpired),
            (runt, DropReason::Truncated),
        ] {
            assert_eq!(p.trace(&snap, INGRESS, &frame, 1_000), Err(reason));
            assert_eq!(
                forward(&mut p, &snap, &pool, &frame),
                (Verdict::Drop(reason), None)
            );
        }
        assert_eq!(p.flow_cache().len(), 0);
    }

    /// The router input checks: frames that would be routed (to 10.1/16 or 2001:db8:2::/48) but
    /// for one thing each, dropped under its reason by both `process` and `trace`.
    #[test]
    fn input_checks_drop_what_a_router_must_not_forward() {
        let snap = snapshot();
        let pool = FramePool::new(8);
        let mut p = pipeline(&snap);
        let (src4, dst4) = (Ipv4Addr::new(172, 16, 0, 1), Ipv4Addr::new(10, 1, 0, 1));
        let src6: Ipv6Addr = "2001:db8:ffff::1".parse().unwrap();
        let dst6: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
        let v4 = |s: Ipv4Addr, d: Ipv4Addr| ethernet(&ipv4(s, d, ip_proto::UDP, &udp(7)));
        let v6 = |s: &str, d: &str| {
            let (s, d) = (s.parse().unwrap(), d.parse().unwrap());
            ethernet(&ipv6(s, d, ip_proto::UDP, &udp(7)))
        };
        let to_mac = |mac: [u8; 6]| {
            let mut f = v4(src4, dst4);
            f[..6].copy_from_slice(&mac);
            f
        };
        let mut group_src = v4(src4, dst4);
        group_src[6] = 0x01;
        let mut v4_frag = v4(src4, dst4);
        // Offset 8189 * 8 = 65512 with a 46-byte packet: 23 bytes past 65535.
        v4_frag[14 + 6..14 + 8].copy_from_slice(&8189u16.to_be_bytes());
        ecmp_wire::ipv4::Packet::new_unchecked(&mut v4_frag[14..]).fill_checksum();
        let cases = [
            (to_mac([0x02, 0xbb, 0, 0, 0, 0]), DropReason::NotForUs),
            (to_mac([0xff; 6]), DropReason::NotForUs),
            (to_mac([0x01, 0x00, 0x5e, 0, 0, 5]), DropReason::NotForUs),
            (to_mac([0x33, 0x33, 0, 0, 0, 1]), DropReason::NotForUs),
            (v4(src4, Ipv4Addr::BROADCAST), DropReason::NotForUs),
            (group_src, DropReason::BadSrcMac),
            (v4(Ipv4Addr::LOCALHOST, dst4), DropReason::MartianSource),
            (v4(Ipv4Addr::UNSPECIFIED, dst4), DropReason::MartianSource),
            (
                v4(Ipv4Addr::new(224, 0, 0, 5), dst4),
                DropReason::MartianSource,
            ),
            (v4(Ipv4Addr::BROADCAST, dst4), DropReason::MartianSource),
            (
                v4(src4, Ipv4Addr::new(0, 1, 2, 3)),
                DropReason::MartianDestination,
            ),
            (
                v4(src4, Ipv4Addr::new(127, 0, 0, 9)),
                DropReason::MartianDestination,
            ),
            (
                v4(src4, Ipv4Addr::new(240, 0, 0, 1)),
                DropReason::MartianDestination,
            ),
            (
                v4(src4, Ipv4Addr::new(169, 254, 9, 9)),
                DropReason::MartianDestination,
            ),
            (v6("::1", "2001:db8:2::1"), DropReason::MartianSource),
            (v6("ff02::1", "2001:db8:2::1"), DropReason::MartianSource),
            (
                v6("2001:db8:ffff::1", "ff02::1"),
                DropReason::MartianDestination,
            ),
            (
                v6("2001:db8:ffff::1", "fe80::1"),
                DropReason::MartianDestination,
            ),
            (v4_frag, DropReason::BadFragment),
        ];
        for (i, (frame, reason)) in cases.into_iter().enumerate() {
            assert_eq!(
                p.trace(&snap, INGRESS, &frame, 1_000),
                Err(reason),
                "case {i}"
            );
            assert_eq!(
                forward(&mut p, &snap, &pool, &frame),
                (Verdict::Drop(reason), None),
                "case {i}"
            );
        }
        assert_eq!(p.flow_cache().len(), 0);

        // The same frames, fixed, go through; on a port the tables do not know, nothing does.
        let good = v4(src4, dst4);
        assert_eq!(forward(&mut p, &snap, &pool, &good).0, Verdict::Tx(EGRESS));
        let good6 = ethernet(&ipv6(src6, dst6, ip_proto::UDP, &udp(7)));
        assert_eq!(forward(&mut p, &snap, &pool, &good6).0, Verdict::Tx(EGRESS));
        assert_eq!(
            p.trace(&snap, 7, &good, 1_000),
            Err(DropReason::NotForUs),
            "an unknown ingress port"
        );
        let mut frames: [MemFrame; 1] = [pool.frame_from(&good).unwrap()];
        let mut verdicts = [Verdict::Tx(0)];
        p.process(&snap, 7, &mut frames, &mut verdicts, 1_000);
        let [f] = frames;
        pool.release(f);
        assert_eq!(verdicts[0], Verdict::Drop(DropReason::NotForUs));
    }
}
