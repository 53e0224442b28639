//! The hot path allocates nothing: after warm-up, a million packets through the whole pipeline
//! (parse, hash, flow cache with inserts and evictions, LPM, buckets, rewrite and every encap,
//! tx batching, drops) make zero heap allocations on the worker thread.

use std::net::{IpAddr, Ipv4Addr};

use ecmp_dataplane::counters::Counter;
use ecmp_pktgen::traffic::Rng;
use ecmp_port::alloc_count::{CountingAllocator, allocations};
use ecmp_port::memory::TxMode;
use ecmp_testkit::frames::{FrameSpec, TcpFlags};
use ecmpfwd::config::Config;
use ecmpfwd::rig::{INGRESS, Rig, RigOptions};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const PACKETS: u64 = 1_000_000;

#[test]
fn a_million_packets_after_warm_up_allocate_nothing() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/encap.toml");
    let cfg = Config::load(std::path::Path::new(path)).expect("config");
    let mut cfg = cfg;
    // A cache smaller than the flow count, so inserts, evictions and "not cached" all happen.
    cfg.flow_cache.capacity = 1 << 12;
    let opts = RigOptions {
        pool_frames: 4096,
        tx_mode: TxMode::Count,
        start_ns: 10_000,
        step_ns: 10_000,
    };
    let (mut rig, _tables) = Rig::from_config(&cfg, opts).expect("rig");
    let routes: Vec<IpAddr> = cfg.routes.iter().map(|r| r.prefix.addr).collect();

    // Traffic to every route of the config (every action), TCP and UDP, plus packets that are
    // dropped (TTL 1, no route): 20k flows.
    let mut rng = Rng::new(3);
    let mut frames = Vec::new();
    for i in 0..20_000u32 {
        let dst = routes[i as usize % routes.len()];
        let src = match dst {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(
                0xC612_0000 | (rng.next_u64() as u32 & 0xFFFF),
            )),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(
                0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | u128::from(i),
            )),
        };
        let mut spec = FrameSpec::udp(
            src,
            dst,
            1024 + (i % 60_000) as u16,
            80,
            60 + (i as usize % 4) * 100,
        );
        if i % 3 == 0 {
            spec = spec.with_tcp(if i % 2 == 0 {
                TcpFlags::SYN
            } else {
                TcpFlags::ACK
            });
        }
        if i % 97 == 0 {
            spec.ttl = 1;
        }
        if i % 89 == 0 {
            spec.dst = match dst {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
                IpAddr::V6(_) => "2001:db8:dead::1".parse().unwrap(),
            };
        }
        frames.push(spec.build().unwrap());
    }

    rig.replay(INGRESS, &frames).unwrap();

    let rx = |r: &Rig| r.counter(Counter::RxPackets);
    while rx(&rig) < 2 * frames.len() as u64 {
        rig.poll();
    }
    let start_rx = rx(&rig);
    let before = allocations();
    while rx(&rig) < start_rx + PACKETS {
        rig.poll();
    }
    let allocated = allocations() - before;
    let c = rig.counters().clone();
    assert!(
        c.get(Counter::TxPackets) > PACKETS / 2,
        "most packets forwarded: {c:?}"
    );
    assert!(c.total_drops() > 0, "the drop paths ran too: {c:?}");
    assert!(
        c.get(Counter::NotCached) + c.get(Counter::Evictions) > 0,
        "cache pressure: {c:?}"
    );
    assert_eq!(
        allocated, 0,
        "the hot path allocated {allocated} times over {PACKETS} packets"
    );
}
