use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ecmp_port::memory::{FramePool, MemFrame};
use ecmp_tables::group::{GroupMode, ResilientGroup};
use ecmp_tables::nexthop::{Action, NextHop, PortInfo};
use ecmp_tables::{Fib4, Fib6};
use ecmp_testkit::frames::{Frag, FrameSpec, TcpFlags};
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
        // Hand-built: as if its routes were new (what publish would say of a first snapshot).
        fib_changed: u64::from(GENERATION),
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
        // Cached under the key of its group's policy: the outer key for groups 1 and 2,
        // the inner 5-tuple and the group for group 3.
        let key = cache_key(&snap, &frame, &meta).unwrap().key;
        assert_eq!(key.group, if kind.starts_with("inner") { 3 } else { 0 });
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

/// Groups `1..=policies.len()` with those policies, [`HOPS`] hops each (group g owns hops
/// `(g - 1) * HOPS + 1 ..= g * HOPS`); group g takes 10.g/16 and 2001:db8:g::/48.
fn snapshot_with(policies: &[HashPolicy]) -> Snapshot {
    snapshot_without(policies, None)
}

/// [`snapshot_with`] with hop `removed` (if any) taken out of its group, one generation on.
fn snapshot_without(policies: &[HashPolicy], removed: Option<HopId>) -> Snapshot {
    let mut hops = vec![NextHop::UNSET];
    let mut groups = vec![Arc::new(GroupTable::empty())];
    let mut fib4 = Fib4::new(16);
    let mut fib6 = Fib6::new();
    for (g, policy) in (1u16..).zip(policies) {
        let mut group = ResilientGroup::new(64, GroupMode::Manual, 9).unwrap();
        group.set_policy(*policy);
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
        if let Some(hop) = removed.filter(|h| hops_of(u32::from(g)).contains(h)) {
            group.remove_member(hop).unwrap();
        }
        groups.push(Arc::new(group.table()));
        fib4.insert(Ipv4Addr::new(10, g as u8, 0, 0), 16, u32::from(g))
            .unwrap();
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, g, 0, 0, 0, 0, 0);
        fib6.insert(v6, 48, u32::from(g)).unwrap();
    }
    // The test kit's frames are addressed to its uplink MAC: that is the ingress port's.
    let port = PortInfo {
        mac: ecmp_testkit::frames::UPLINK_MAC,
        mtu: 1500,
    };
    Snapshot {
        generation: u64::from(GENERATION) + u64::from(removed.is_some()),
        fib_changed: u64::from(GENERATION) + u64::from(removed.is_some()),
        fib4: Arc::new(fib4),
        fib6: Arc::new(fib6),
        groups: groups.into(),
        hops,
        ports: vec![port, port],
    }
}

/// The hops of group `g` of [`snapshot_with`].
fn hops_of(g: u32) -> BTreeSet<HopId> {
    ((g - 1) * HOPS + 1..=g * HOPS).collect()
}

const INNER: HashPolicy = HashPolicy {
    fields: ecmp_tables::policy::HashFields::FiveTuple,
    algo: ecmp_tables::policy::HashAlgo::Fast,
    symmetric: false,
    inner: true,
};

/// Inner flow `i` of a tunnel: a UDP datagram (or a TCP segment with `tcp`) between two
/// addresses of the family `v6` selects, as an IP packet.
fn inner_packet(v6: bool, i: u16, tcp: Option<TcpFlags>) -> Vec<u8> {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1 + i).into(),
            Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 7).into(),
        )
    } else {
        (
            Ipv4Addr::new(192, 168, (i >> 8) as u8, i as u8).into(),
            Ipv4Addr::new(198, 51, 100, 7).into(),
        )
    };
    let spec = FrameSpec::udp(src, dst, 1000 + i, 80, 0);
    let spec = match tcp {
        Some(flags) => spec.with_tcp(flags),
        None => spec,
    };
    spec.build_ip().unwrap()
}

/// One tunnel's frames to the endpoint 10.`group`.0.1 (or 2001:db8:`group`::1 for an
/// IPv6 outer header): the outer headers are the same for every inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tunnel {
    /// IPv4 in IPv4 (protocol 4).
    Ipip,
    /// IPv6 in IPv6 (protocol 41).
    Ipip6,
    /// GRE (version 0, no key) carrying IPv4.
    Gre,
    /// VXLAN (UDP 4789, one source port) carrying an Ethernet frame with IPv4.
    Vxlan,
}

impl Tunnel {
    const ALL: [Tunnel; 4] = [Tunnel::Ipip, Tunnel::Ipip6, Tunnel::Gre, Tunnel::Vxlan];

    fn frame(self, group: u16, inner: &[u8]) -> Vec<u8> {
        let src4 = IpAddr::V4(Ipv4Addr::new(172, 16, 9, 9));
        let dst4 = IpAddr::V4(Ipv4Addr::new(10, group as u8, 0, 1));
        match self {
            Tunnel::Ipip => FrameSpec::raw(src4, dst4, ip_proto::IPV4, inner),
            Tunnel::Ipip6 => FrameSpec::raw(
                Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 9).into(),
                Ipv6Addr::new(0x2001, 0xdb8, group, 0, 0, 0, 0, 1).into(),
                ip_proto::IPV6,
                inner,
            ),
            Tunnel::Gre => {
                let mut gre = vec![0, 0, 0x08, 0x00];
                gre.extend_from_slice(inner);
                FrameSpec::raw(src4, dst4, ip_proto::GRE, &gre)
            }
            Tunnel::Vxlan => {
                // VXLAN header: the I flag, VNI 42; then the inner Ethernet frame.
                let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
                vx.extend_from_slice(&ethernet(inner));
                FrameSpec::udp(src4, dst4, 49_152, 4789, 0).data(&vx)
            }
        }
        .build()
        .unwrap()
    }

    fn inner_v6(self) -> bool {
        self == Tunnel::Ipip6
    }
}

#[test]
fn one_tunnel_spreads_its_inner_flows_over_every_hop_and_each_keeps_its_hop() {
    // Group 1 hashes inner headers; every tunnel ends at one of its addresses.
    let snap = snapshot_with(&[INNER]);
    let pool = FramePool::new(8);
    for tunnel in Tunnel::ALL {
        let mut p = pipeline(&snap);
        let frames: Vec<Vec<u8>> = (0..64)
            .map(|i| tunnel.frame(1, &inner_packet(tunnel.inner_v6(), i, None)))
            .collect();
        // The outer headers are one 5-tuple: keyed on them, the tunnel would be one flow.
        let outer: Vec<FlowKey> = frames
            .iter()
            .map(|f| {
                let mut m = PacketMeta::default();
                admit(f, &ingress_mac(&snap, INGRESS), &mut m).unwrap();
                FlowKey::from_meta(&m)
            })
            .collect();
        assert!(outer.iter().all(|k| *k == outer[0]), "{tunnel:?}");

        let first: Vec<HopId> = frames
            .iter()
            .map(|f| match forward(&mut p, &snap, &pool, f) {
                (Verdict::Tx(EGRESS), Some(hop)) => hop,
                other => panic!("{tunnel:?}: {other:?}"),
            })
            .collect();
        let used: BTreeSet<HopId> = first.iter().copied().collect();
        assert_eq!(used, hops_of(1), "{tunnel:?}: 64 inner flows over 4 hops");
        assert_eq!(
            p.flow_cache().len(),
            64,
            "{tunnel:?}: one entry per inner flow"
        );
        assert_eq!(p.counters().get(Counter::CacheMisses), 64, "{tunnel:?}");

        // Later packets hit the cache, each on its own flow's hop, and trace agrees.
        for (f, &hop) in frames.iter().zip(&first) {
            match p.trace(&snap, INGRESS, f, 1_000) {
                Ok(Choice::Cached(c)) => assert_eq!(c.hop, hop, "{tunnel:?}"),
                other => panic!("{tunnel:?}: {other:?}"),
            }
            assert_eq!(
                forward(&mut p, &snap, &pool, f),
                (Verdict::Tx(EGRESS), Some(hop)),
                "{tunnel:?}"
            );
        }
        assert_eq!(p.counters().get(Counter::CacheHits), 64, "{tunnel:?}");
        assert_eq!(p.counters().get(Counter::CacheMisses), 64, "{tunnel:?}");
    }
}

#[test]
fn a_failed_hop_moves_only_its_own_inner_flows() {
    let snap = snapshot_with(&[INNER]);
    let pool = FramePool::new(8);
    let mut p = pipeline(&snap);
    let frames: Vec<Vec<u8>> = (0..64)
        .map(|i| Tunnel::Gre.frame(1, &inner_packet(false, i, None)))
        .collect();
    let before: Vec<HopId> = frames
        .iter()
        .map(|f| forward(&mut p, &snap, &pool, f).1.unwrap())
        .collect();
    let failed = before[0];
    let on_failed = before.iter().filter(|&&h| h == failed).count() as u64;
    assert!(on_failed < 64);

    // The next generation: the cached flows pay one route lookup each and keep their hops,
    // but for those of the failed hop, which are picked again from the buckets.
    let next = snapshot_without(&[INNER], Some(failed));
    p.on_new_snapshot(&next);
    let hits = p.counters().get(Counter::CacheHits);
    for (f, &hop) in frames.iter().zip(&before) {
        let (verdict, now) = forward(&mut p, &next, &pool, f);
        assert_eq!(verdict, Verdict::Tx(EGRESS));
        let now = now.unwrap();
        if hop == failed {
            assert!(now != failed && hops_of(1).contains(&now), "{now}");
        } else {
            assert_eq!(now, hop);
        }
    }
    assert_eq!(p.counters().get(Counter::Repicks), on_failed);
    assert_eq!(p.counters().get(Counter::CacheHits) - hits, 64 - on_failed);
    assert_eq!(p.flow_cache().len(), 64);
}

#[test]
fn inner_keys_take_the_inner_tcp_flags_and_fragment_rule() {
    let snap = snapshot_with(&[INNER]);
    let pool = FramePool::new(8);
    let embryonic = FlowCacheConfig::default().embryonic_timeout_ms;
    let mut p = pipeline(&snap);
    // An inner SYN: the flow is embryonic (the outer packet, protocol 4, has no flags and
    // would make it established), so it is gone once the embryonic timeout has passed...
    let syn = Tunnel::Ipip.frame(1, &inner_packet(false, 1, Some(TcpFlags::SYN)));
    let mut frames = [pool.frame_from(&syn).unwrap()];
    let mut verdicts = [Verdict::Drop(DropReason::NoRoute)];
    p.process(&snap, INGRESS, &mut frames, &mut verdicts, 1_000);
    assert_eq!(verdicts[0], Verdict::Tx(EGRESS));
    assert!(matches!(
        p.trace(&snap, INGRESS, &syn, 1_000),
        Ok(Choice::Cached(_))
    ));
    let later = 1_000 + embryonic + 1;
    assert!(matches!(
        p.trace(&snap, INGRESS, &syn, later),
        Ok(Choice::Bucket { .. })
    ));
    // ...while an inner ACK's flow is established and outlives it.
    let ack = Tunnel::Ipip.frame(1, &inner_packet(false, 2, Some(TcpFlags::ACK)));
    p.process(
        &snap,
        INGRESS,
        &mut [pool.frame_from(&ack).unwrap()],
        &mut verdicts,
        1_000,
    );
    assert!(matches!(
        p.trace(&snap, INGRESS, &ack, later),
        Ok(Choice::Cached(_))
    ));

    // Inner fragments of one datagram share a key (no ports), whatever the first carries.
    let frag = |f: Frag| {
        let spec = FrameSpec::udp(
            Ipv4Addr::new(192, 168, 0, 9).into(),
            Ipv4Addr::new(198, 51, 100, 7).into(),
            5000,
            80,
            0,
        )
        .payload_len(64)
        .frag(f);
        Tunnel::Ipip.frame(1, &spec.build_ip().unwrap())
    };
    let first = frag(Frag::First { ident: 7 });
    let rest = frag(Frag::Later {
        ident: 7,
        offset: 64,
    });
    let keys: Vec<CacheKey> = [&first, &rest]
        .iter()
        .map(|f| {
            let mut m = PacketMeta::default();
            admit(f, &ingress_mac(&snap, INGRESS), &mut m).unwrap();
            cache_key(&snap, f, &m).unwrap()
        })
        .collect();
    assert_eq!(keys[0], keys[1]);
    assert_eq!((keys[0].key.src_port, keys[0].key.dst_port), (0, 0));
    assert_eq!(keys[0].key.group, 1);
}

#[test]
fn a_src_ip_group_caches_per_source_and_never_lends_a_hop_to_another_route() {
    let src_ip = HashPolicy {
        fields: ecmp_tables::policy::HashFields::SrcIp,
        ..HashPolicy::default()
    };
    // Two VIPs, 10.1.0.1 and 10.2.0.1, in two src-ip groups with hops of their own.
    let snap = snapshot_with(&[src_ip, src_ip]);
    let pool = FramePool::new(8);
    let mut p = pipeline(&snap);
    let mut hop_of: BTreeMap<(u16, u16), HopId> = BTreeMap::new();
    for round in 0..2 {
        for source in 0..16u16 {
            for vip in 1..=2u16 {
                for port in 0..8 {
                    let frame = FrameSpec::udp(
                        Ipv4Addr::new(172, 16, 0, source as u8).into(),
                        Ipv4Addr::new(10, vip as u8, 0, 1).into(),
                        1000 + port + 100 * round,
                        53,
                        0,
                    )
                    .build()
                    .unwrap();
                    let (verdict, hop) = forward(&mut p, &snap, &pool, &frame);
                    assert_eq!(verdict, Verdict::Tx(EGRESS));
                    let hop = hop.unwrap();
                    // Always a hop of the VIP's own group, even though the source (the
                    // whole key but the group) was cached for the other VIP.
                    assert!(hops_of(u32::from(vip)).contains(&hop), "{vip}: {hop}");
                    // Every flow of a source to a VIP takes one hop.
                    assert_eq!(*hop_of.entry((source, vip)).or_insert(hop), hop);
                }
            }
        }
    }
    // One entry per source and VIP, not per 5-tuple (16 * 2 * 8 * 2 of them).
    assert_eq!(p.flow_cache().len(), 16 * 2);
    assert_eq!(p.counters().get(Counter::CacheMisses), 16 * 2);
    // The sources spread over both groups' hops.
    for vip in 1..=2u16 {
        let used: BTreeSet<HopId> = hop_of
            .iter()
            .filter(|((_, v), _)| *v == vip)
            .map(|(_, &h)| h)
            .collect();
        assert!(used.len() > 1, "{vip}: {used:?}");
    }
}

#[test]
fn groups_on_the_outer_five_tuple_keep_outer_keys_and_hops_in_any_snapshot() {
    let default = HashPolicy::default();
    let plain = snapshot_with(&[default, default]);
    let mixed = snapshot_with(&[default, INNER]);
    assert!(plain.outer_keyed());
    assert!(!mixed.outer_keyed());
    let pool = FramePool::new(8);
    let (mut a, mut b) = (pipeline(&plain), pipeline(&mixed));
    for i in 0..64u16 {
        let src = Ipv4Addr::new(172, 16, 0, 1).into();
        let v4 = FrameSpec::udp(src, Ipv4Addr::new(10, 1, 0, 1).into(), 1000 + i, 53, 0);
        let v6 = FrameSpec::udp(
            Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1).into(),
            1000 + i,
            53,
            0,
        );
        for frame in [v4.build().unwrap(), v6.build().unwrap()] {
            let mut m = PacketMeta::default();
            admit(&frame, &ingress_mac(&plain, INGRESS), &mut m).unwrap();
            for snap in [&plain, &mixed] {
                let k = cache_key(snap, &frame, &m).unwrap();
                assert_eq!(k.key, FlowKey::from_meta(&m));
                assert_eq!(k.tcp_flags, m.tcp_flags);
            }
            let (ha, hb) = (
                forward(&mut a, &plain, &pool, &frame),
                forward(&mut b, &mixed, &pool, &frame),
            );
            assert_eq!(ha, hb);
        }
    }
    assert_eq!(a.flow_cache().len(), b.flow_cache().len());
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

/// IPv4 flows to group 1 (10.1/16) of [`snapshot_with`], one per source port.
fn v4_flows(n: u16) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let ip = ipv4(
                Ipv4Addr::new(172, 16, 0, 1),
                Ipv4Addr::new(10, 1, 0, 1),
                ip_proto::UDP,
                &udp(2000 + i),
            );
            let mut f = ethernet(&ip);
            f[..6].copy_from_slice(&ecmp_testkit::frames::UPLINK_MAC);
            f
        })
        .collect()
}

#[test]
fn a_publication_that_keeps_the_fib_sends_no_cached_flow_to_the_fib() {
    let snap = snapshot_with(&[HashPolicy::default()]);
    let pool = FramePool::new(8);
    let mut p = pipeline(&snap);
    let frames = v4_flows(32);
    let before: Vec<_> = frames
        .iter()
        .map(|f| forward(&mut p, &snap, &pool, f))
        .collect();
    assert!(before.iter().all(|(v, _)| *v == Verdict::Tx(EGRESS)));

    // The next generation says its routes did not change since `snap`, and (to show that the
    // FIB is not read) holds an empty one: cached flows keep their hops, checked against
    // their group only; a new flow finds no route.
    let mut next = snapshot_with(&[HashPolicy::default()]);
    next.generation = snap.generation + 1;
    next.fib_changed = snap.generation;
    next.fib4 = Arc::new(Fib4::new(16));
    p.on_new_snapshot(&next);
    for (f, b) in frames.iter().zip(&before) {
        assert_eq!(forward(&mut p, &next, &pool, f), *b);
    }
    let new_flow = &v4_flows(33)[32];
    assert_eq!(
        forward(&mut p, &next, &pool, new_flow).0,
        Verdict::Drop(DropReason::NoRoute)
    );

    // Once the FIB changed after the flows were stamped, they are routed again.
    let mut moved = snapshot_with(&[HashPolicy::default()]);
    moved.generation = next.generation + 1;
    moved.fib_changed = moved.generation;
    moved.fib4 = Arc::new(Fib4::new(16));
    p.on_new_snapshot(&moved);
    for f in &frames {
        assert_eq!(
            forward(&mut p, &moved, &pool, f).0,
            Verdict::Drop(DropReason::NoRoute)
        );
    }
}

#[test]
fn a_publication_that_keeps_the_fib_still_moves_the_flows_of_a_failed_hop() {
    let snap = snapshot_with(&[HashPolicy::default()]);
    let pool = FramePool::new(8);
    let mut p = pipeline(&snap);
    let frames = v4_flows(64);
    let before: Vec<HopId> = frames
        .iter()
        .map(|f| forward(&mut p, &snap, &pool, f).1.unwrap())
        .collect();
    let failed = before[0];
    let on_failed = before.iter().filter(|&&h| h == failed).count() as u64;

    // Same routes (the FIB is older than the entries), the group without `failed`.
    let mut next = snapshot_without(&[HashPolicy::default()], Some(failed));
    next.fib_changed = snap.generation;
    p.on_new_snapshot(&next);
    let (hits, repicks) = (
        p.counters().get(Counter::CacheHits),
        p.counters().get(Counter::Repicks),
    );
    for (f, &hop) in frames.iter().zip(&before) {
        let now = forward(&mut p, &next, &pool, f).1.unwrap();
        if hop == failed {
            assert!(now != failed && hops_of(1).contains(&now), "{now}");
        } else {
            assert_eq!(now, hop);
        }
    }
    assert_eq!(p.counters().get(Counter::Repicks) - repicks, on_failed);
    assert_eq!(p.counters().get(Counter::CacheHits) - hits, 64 - on_failed);
    // Re-stamped: under `next` again, every flow is a plain hit.
    let hits = p.counters().get(Counter::CacheHits);
    for f in &frames {
        forward(&mut p, &next, &pool, f);
    }
    assert_eq!(p.counters().get(Counter::CacheHits) - hits, 64);
}

#[test]
fn hop_counts_reach_the_sink_survive_growth_and_restart_when_an_id_names_another_hop() {
    let snap = snapshot();
    let pool = FramePool::new(8);
    let mut p = pipeline(&snap);
    let sink = Arc::new(SharedHopPackets::default());
    p.set_hop_sink(Arc::clone(&sink));
    let frame = ethernet(&ipv4(
        Ipv4Addr::new(172, 16, 0, 1),
        Ipv4Addr::new(10, 1, 0, 1),
        ip_proto::UDP,
        &udp(4000),
    ));
    let send = |p: &mut Pipeline, s: &Snapshot| {
        let (verdict, hop) = forward(p, s, &pool, &frame);
        assert_eq!(verdict, Verdict::Tx(EGRESS));
        hop.expect("counted on a hop") as usize
    };
    let hop = send(&mut p, &snap);
    send(&mut p, &snap);
    assert_eq!(sink.read()[hop], 2);
    assert_eq!(sink.read().iter().sum::<u64>(), 2);

    // More hops than the slots hold: new slots, published, the counts carried over.
    let mut grown = snap.clone();
    grown.generation += 1;
    for id in grown.hops.len() as u32..200 {
        grown.hops.push(NextHop {
            id,
            addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, id as u8)),
            ..grown.hops[1]
        });
    }
    p.on_new_snapshot(&grown);
    assert!(sink.read().len() >= 200, "{}", sink.read().len());
    assert_eq!(sink.read()[hop], 2);
    assert_eq!(send(&mut p, &grown), hop);
    assert_eq!(sink.read()[hop], 3);
    assert_eq!(p.hop_packets().len(), 200);

    // A new MAC (the neighbour resolved again) is the same next hop: the count stays.
    let mut remac = grown.clone();
    remac.generation += 1;
    remac.hops[hop].mac = [0x02, 0xee, 0, 0, 0, 1];
    p.on_new_snapshot(&remac);
    assert_eq!(sink.read()[hop], 3);

    // The id given to another address (the builder reuses freed ids): it restarts from zero,
    // and the other hops keep theirs.
    let mut reused = remac.clone();
    reused.generation += 1;
    reused.hops[hop].addr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    p.on_new_snapshot(&reused);
    assert_eq!(sink.read()[hop], 0);
    assert_eq!(send(&mut p, &reused), hop);
    assert_eq!(sink.read()[hop], 1);
    assert_eq!(p.hop_packets()[hop], 1);
}
