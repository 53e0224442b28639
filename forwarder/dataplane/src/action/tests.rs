use ecmp_port::memory::FramePool;
use ecmp_wire::parse::parse_frame;
use proptest::prelude::*;

use super::*;

const PORT: PortInfo = PortInfo {
    mac: [0x02, 0, 0, 0, 0, 0xee],
    mtu: 1500,
};

fn hop(mac: [u8; 6]) -> NextHop {
    NextHop {
        id: 1,
        addr: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
        port: 0,
        mac,
        weight: 1,
        action: Action::Rewrite,
    }
}

/// An untagged IPv4 frame with `options` words of IP options, a UDP payload of `payload` bytes,
/// `pad` bytes of Ethernet padding and the given TTL.
fn frame(options: usize, payload: usize, pad: usize, ttl: u8, seed: u8) -> Vec<u8> {
    let ihl = 5 + options;
    let total = ihl * 4 + 8 + payload;
    let mut ip = vec![0u8; total];
    ip[0] = 0x40 | ihl as u8;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = ttl;
    ip[9] = ip_proto::UDP;
    ip[12..16].copy_from_slice(&[172, 16, seed, 1]);
    ip[16..20].copy_from_slice(&[10, 1, 0, seed]);
    // Options: no-ops (type 1), then the UDP header and payload.
    for b in &mut ip[20..ihl * 4] {
        *b = 1;
    }
    let l4 = ihl * 4;
    ip[l4..l4 + 2].copy_from_slice(&(1000 + u16::from(seed)).to_be_bytes());
    ip[l4 + 2..l4 + 4].copy_from_slice(&53u16.to_be_bytes());
    ip[l4 + 4..l4 + 6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    ipv4::Packet::new_unchecked(&mut ip[..]).fill_checksum();
    let mut f = vec![0x02, 0xaa, 0, 0, 0, 0, 0x02, 0xcc, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&ip);
    f.extend(std::iter::repeat_n(0xa5, pad));
    f
}

proptest! {
    /// The inlined rewrite gives exactly what the general path gives (bytes, length and
    /// verdict), with IP options, padding, any TTL the pipeline lets through, an unresolved hop
    /// and a packet over the MTU.
    #[test]
    fn the_inlined_rewrite_agrees_with_the_general_path(
        options in 0usize..=10,
        payload in 0usize..1500,
        pad in 0usize..40,
        ttl in 2u8..=255,
        seed in any::<u8>(),
        resolved in prop::bool::weighted(0.9),
    ) {
        let bytes = frame(options, payload, pad, ttl, seed);
        let meta = parse_frame(&bytes).unwrap();
        let mac = if resolved { [0x02, 0, 0, 0, 0, 7] } else { [0; 6] };
        let hop = hop(mac);
        let pool = FramePool::new(4);
        let (mut fast, mut general) = (
            pool.frame_from(&bytes).unwrap(),
            pool.frame_from(&bytes).unwrap(),
        );
        let a = apply(&mut fast, &meta, &hop, &PORT, 7);
        let b = apply_general(&mut general, &meta, &hop, &PORT, 7);
        prop_assert_eq!(a, b);
        if a.is_ok() {
            prop_assert_eq!(fast.data(), general.data());
            // Still a valid IPv4 header, TTL one less.
            let ip = ipv4::Packet::new_checked(&fast.data()[ETH..]).unwrap();
            prop_assert!(ip.verify_checksum());
            prop_assert_eq!(ip.ttl(), ttl - 1);
        }
        pool.release(fast);
        pool.release(general);
    }
}

/// A snapshot with no routes whose hop table holds `hops` and whose port table `ports`.
fn hop_snapshot(hops: Vec<NextHop>, ports: Vec<PortInfo>, generation: u64) -> Snapshot {
    Snapshot {
        generation,
        fib_changed: generation,
        fib4: std::sync::Arc::new(ecmp_tables::Fib4::new(16)),
        fib6: std::sync::Arc::new(ecmp_tables::Fib6::new()),
        groups: vec![std::sync::Arc::new(ecmp_tables::group::GroupTable::empty())].into(),
        hops,
        ports,
    }
}

proptest! {
    /// The per-hop rewrite table takes a fast-path packet exactly when the general path (hop
    /// look-up, egress check, `apply`) would take the inlined rewrite, with the same frame,
    /// length and port, for hops that rewrite, encapsulate, are unresolved, name a missing
    /// port or one beyond the egress limit, and ports of any MTU; and it changes nothing when
    /// it declines.
    #[test]
    fn the_rewrite_table_agrees_with_the_general_path(
        payload in 0usize..1500,
        pad in 0usize..40,
        ttl in 2u8..=255,
        kinds in prop::collection::vec((0u8..5, 0u16..3), 1..6),
        mtus in prop::collection::vec(prop::sample::select(vec![0u16, 68, 576, 1500, 9000]), 2),
        egress in 0usize..=3,
        pick in any::<prop::sample::Index>(),
    ) {
        let bytes = frame(0, payload, pad, ttl, 9);
        let meta = parse_frame(&bytes).unwrap();
        let fast = ecmp_wire::parse::parse_fast_v4(&bytes).unwrap();
        let mut hops = vec![NextHop::UNSET];
        for (i, (kind, port)) in kinds.iter().enumerate() {
            let mut h = hop([0x02, 0, 0, 0, 1, i as u8]);
            h.id = hops.len() as u32;
            h.port = *port;
            match kind {
                0 => h.mac = [0; 6],
                1 => {
                    h.action = Action::Encap(Encap {
                        kind: EncapKind::IpIp,
                        src: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 100)),
                        dst: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 200)),
                    })
                }
                _ => {}
            }
            hops.push(h);
        }
        let ports: Vec<PortInfo> = mtus
            .iter()
            .enumerate()
            .map(|(i, &mtu)| PortInfo { mac: [0x02, 0, 0, 0, 2, i as u8], mtu })
            .collect();
        let snap = hop_snapshot(hops, ports, 5);
        let mut table = RewriteTable::default();
        table.follow(&snap, egress);
        let hop_id = pick.index(snap.hops.len() + 1) as HopId;
        let pool = FramePool::new(4);
        let (mut a, mut b) = (
            pool.frame_from(&bytes).unwrap(),
            pool.frame_from(&bytes).unwrap(),
        );
        let taken = table.rewrite(&mut a, fast.ip_len, hop_id);
        // What the general path's inlined case does with the same packet.
        let general = snap.hops.get(hop_id as usize).and_then(|h| {
            let port = snap.ports.get(usize::from(h.port))?;
            if usize::from(h.port) >= egress {
                return None;
            }
            apply_fast_v4(&mut b, meta.ip_len, h, port).map(|len| (h.port, len))
        });
        prop_assert_eq!(taken, general);
        match taken {
            Some(_) => prop_assert_eq!(a.data(), b.data()),
            None => prop_assert_eq!(a.data(), &bytes[..]),
        }
    }
}

/// The headroom backends check at start covers every encapsulation, and is no larger than the
/// longest one needs.
#[test]
fn max_encap_push_is_the_longest_encapsulation() {
    let kinds = [
        EncapKind::IpIp,
        EncapKind::Gre { key: None },
        EncapKind::Gre { key: Some(7) },
        EncapKind::Vxlan {
            vni: 1,
            inner_dst_mac: None,
            port: 4789,
        },
        EncapKind::Gue { port: 6080 },
        EncapKind::MplsUdp {
            label: 16,
            port: 6635,
        },
    ];
    let dsts = [
        IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 1)),
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    ];
    let pushes: Vec<usize> = kinds
        .iter()
        .flat_map(|k| dsts.iter().map(move |&d| push_len(k, d)))
        .collect();
    assert_eq!(pushes.iter().copied().max(), Some(MAX_ENCAP_PUSH));
}
