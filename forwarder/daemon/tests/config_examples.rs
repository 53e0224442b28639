//! Every example in `configs/` loads, and bad configs fail at the right line and key.

use ecmpfwd::config;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{
    ActionSpec, ActionTemplateSpec, Config, ConfigError, EncapKindSpec, EncapSpec, GroupMode,
    HashAlgoSpec, HashFieldsSpec, HopStateSpec, MacAddr, PortKind, PortQueue, Prefix, XdpMode,
};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

fn load(name: &str) -> Config {
    let path = configs_dir().join(name);
    match Config::load(&path) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a valid test address")
}

fn prefix(s: &str) -> Prefix {
    s.parse().expect("a valid test prefix")
}

#[test]
fn every_example_loads() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(configs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = Config::load(&path) {
                panic!("{e}");
            }
            names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    for expected in [
        "anycast-vip.toml",
        "encap.toml",
        "lab-afxdp.toml",
        "lab-afxdp-2workers.toml",
        "lab-afxdp-bench.toml",
        "lab-afxdp-bench-vxlan.toml",
        "lab-afxdp-bench-10m.toml",
        "lab-afxdp-resilience-auto-recovery.toml",
        "lab-afxdp-resilience-manual.toml",
        "lab-afxdp-resilience-maglev.toml",
        "lab-bgp.toml",
        "lab-bgp-dpdk.toml",
        "lab-dpdk-bench.toml",
        "lab-faults-maglev.toml",
        "lab-faults-rendezvous.toml",
        "lab-soak.toml",
        "maglev.toml",
        "minimal.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "configs/{expected} is missing"
        );
    }
}

#[test]
fn two_workers_split_every_port_by_queue() {
    let c = load("lab-afxdp-2workers.toml");
    assert!(c.ports.iter().all(|p| p.queues() == 2));
    assert_eq!(c.workers.len(), 2);
    for (q, w) in c.workers.iter().enumerate() {
        assert_eq!(w.ports.len(), c.ports.len(), "every port, once");
        assert!(w.ports.iter().all(|pq| usize::from(pq.queue) == q));
    }
    ecmpfwd::setup::check_workers(&c).expect("a runnable worker layout");
}

#[test]
fn minimal_takes_the_defaults() {
    let c = load("minimal.toml");
    assert_eq!(c.instance.name, "minimal");
    assert_eq!(c.instance.seed, config::seed_from_name("minimal"));
    assert_eq!(c.instance.rss_key, config::DEFAULT_RSS_KEY);
    assert_eq!((c.control.as_ref(), c.feed.as_ref()), (None, None));
    assert!(c.neighbors.is_empty());
    assert_eq!(
        c.bgp.default_policy,
        config::GroupPolicySpec::with_hash(c.hash)
    );
    assert!(c.bgp.policies.is_empty());
    assert_eq!(c.ports.len(), 2);
    assert_eq!(c.ports[1].kind, PortKind::Memory);
    assert_eq!(c.ports[1].mtu, 1500);
    assert_eq!(c.ports[0].mac, Some(MacAddr([2, 0, 0, 0, 0, 1])));
    assert_eq!(c.ports[0].addresses, Some(vec![]));
    assert!(c.nexthops.iter().all(|h| h.mac.is_some()));
    assert_eq!(
        c.workers[0].ports,
        vec![
            PortQueue { port: 0, queue: 0 },
            PortQueue { port: 1, queue: 0 }
        ]
    );
    assert_eq!(c.flow_cache.capacity, 1 << 20);
    assert_eq!(c.flow_cache.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.flow_cache.embryonic_timeout, Duration::from_secs(5));
    assert_eq!(c.flow_cache.fin_timeout, Duration::from_secs(10));
    assert_eq!(c.fib.max_tbl8, 65_536);
    assert_eq!(c.memory.hugepages, ecmp_mem::HugePages::Auto);
    assert_eq!(c.hash.fields, HashFieldsSpec::FiveTuple);
    assert_eq!(c.hash.algo, HashAlgoSpec::Fast);
    let hop = &c.nexthops[1];
    assert_eq!((hop.name.as_str(), hop.port, hop.weight), ("s2", 1, 1));
    assert_eq!(hop.state, HopStateSpec::Active);
    assert_eq!(hop.action, ActionSpec::Rewrite);
    let g = &c.groups[0];
    assert_eq!((g.mode, g.buckets), (GroupMode::AutoRecovery, 256));
    assert_eq!(
        g.members.iter().map(|m| m.nexthop).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(c.routes[0].prefix.to_string(), "192.0.2.10/32");
    assert_eq!(c.routes[0].group, 0);
    assert_eq!(c.routes[0].line, 38);
}

#[test]
fn anycast_vip_is_the_seed_scenario() {
    let c = load("anycast-vip.toml");
    assert_eq!(c.instance.seed, 0x5eed_ec4f_0000_0001);
    assert_eq!(c.nexthops.len(), 8);
    assert_eq!(c.routes.len(), 1);
    assert_eq!(
        (c.routes[0].prefix.addr, c.routes[0].prefix.len),
        (ip("192.0.2.10"), 32)
    );
    let g = &c.groups[c.routes[0].group];
    assert_eq!(g.mode, GroupMode::AutoRecovery);
    assert_eq!(g.buckets, 4096);
    assert_eq!(g.members.len(), 8);
    assert_eq!(
        g.members[7].weight, 2,
        "member weight defaults to the hop's weight"
    );
    assert_eq!(g.hash.fields, HashFieldsSpec::FiveTuple);
    assert_eq!(c.flow_cache.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.workers.iter().map(|w| w.core).collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn anycast_vip_documents_the_bgp_sections() {
    let c = load("anycast-vip.toml");
    let subnets: Vec<String> = c.ports[1]
        .addresses
        .iter()
        .flatten()
        .map(|a| a.subnet().to_string())
        .collect();
    assert_eq!(subnets, ["198.51.100.0/24", "2001:db8:51::/64"]);
    assert_eq!(c.neighbors.len(), 1);
    let n = &c.neighbors[0];
    assert_eq!(
        (n.address, n.mac, n.port),
        (
            ip("198.51.100.100"),
            MacAddr([2, 0, 0, 0, 0x10, 0x64]),
            Some(1)
        )
    );

    let ctl = c.control.as_ref().expect("[control]");
    assert_eq!(ctl.socket, Path::new("/run/ecmpfwd/fwd-a.sock"));
    assert_eq!((ctl.mode, ctl.group, ctl.max_clients), (0o660, Some(0), 16));
    assert_eq!(ctl.allowed_uids, [0]);
    assert!(ctl.allowed_gids.is_empty());

    let feed = c.feed.as_ref().expect("[feed]");
    assert_eq!(feed.socket, Path::new("/run/ecmpfwd/fwd-a-feed.sock"));
    assert_eq!(
        (feed.mode, feed.group, feed.max_line),
        (0o600, None, 1 << 20)
    );
    assert_eq!(feed.batch_window, Duration::from_millis(5));
    assert_eq!(feed.stale_time, Duration::from_secs(90));
    assert_eq!(feed.refresh_timeout, Duration::from_secs(30));

    let d = c.bgp.default_policy;
    assert_eq!((d.mode, d.buckets), (GroupMode::AutoRecovery, 4096));
    assert_eq!(d.action, ActionTemplateSpec::Rewrite);
    let [maglev, gue] = &c.bgp.policies[..] else {
        panic!("two [[bgp.policy]] expected: {:?}", c.bgp.policies)
    };
    assert_eq!(maglev.range, prefix("192.0.2.0/24"));
    assert_eq!(
        (
            maglev.group.mode,
            maglev.group.buckets,
            maglev.group.hash.algo
        ),
        (GroupMode::Maglev, 65_536, HashAlgoSpec::Crc32c)
    );
    assert_eq!(gue.range, prefix("2001:db8:100::/48"));
    assert_eq!(gue.group.buckets, 4096, "unset keys come from [bgp]");
    assert_eq!(
        gue.group.action,
        ActionTemplateSpec::Encap {
            kind: EncapKindSpec::Gue { udp_port: 6080 },
            src: ip("2001:db8:51::fe"),
        }
    );
    assert_eq!(c.bgp.policy_for(&prefix("192.0.2.128/25")), &maglev.group);
    assert_eq!(c.bgp.policy_for(&prefix("203.0.113.0/24")), &d);
}

#[test]
fn encap_covers_every_kind_and_both_families() {
    let c = load("encap.toml");
    let kinds: Vec<_> = c
        .nexthops
        .iter()
        .map(|h| match h.action {
            ActionSpec::Encap(e) => e,
            ActionSpec::Rewrite => panic!("{} should encapsulate", h.name),
        })
        .collect();
    assert_eq!(kinds[0].kind, EncapKindSpec::IpIp);
    assert_eq!(
        kinds[0].dst,
        ip("203.0.113.1"),
        "dst defaults to the hop's address"
    );
    assert_eq!(kinds[1].kind, EncapKindSpec::Gre { key: Some(42) });
    assert!(matches!(
        kinds[2].kind,
        EncapKindSpec::Vxlan {
            vni: 10_010,
            inner_mac: Some(_),
            udp_port: 4789
        }
    ));
    assert_eq!(kinds[3].kind, EncapKindSpec::Gue { udp_port: 6080 });
    assert_eq!(
        kinds[4].kind,
        EncapKindSpec::MplsUdp {
            label: 1000,
            udp_port: 6635
        }
    );
    assert_eq!(kinds[4].dst, ip("2001:db8:f::100"));
    assert_eq!(kinds[5].kind, EncapKindSpec::IpIp);
    assert!(kinds[5].src.is_ipv6() && kinds[5].dst.is_ipv6());
    assert!(c.routes.iter().any(|r| r.prefix.addr.is_ipv4()));
    assert!(c.routes.iter().any(|r| r.prefix.addr.is_ipv6()));
    assert_eq!(c.groups[0].members[2].weight, 2);
}

#[test]
fn converts_into_table_types() {
    use ecmp_tables::nexthop::{Action, Encap, EncapKind, HopState, PortInfo};
    use ecmp_tables::policy::{HashAlgo, HashFields, HashPolicy};

    let c = load("encap.toml");
    let actions: Vec<Action> = c.nexthops.iter().map(|h| h.action.into()).collect();
    let src4 = ip("203.0.113.254");
    assert_eq!(
        actions[1],
        Action::Encap(Encap {
            kind: EncapKind::Gre { key: Some(42) },
            src: src4,
            dst: ip("203.0.113.2")
        })
    );
    assert_eq!(
        actions[2],
        Action::Encap(Encap {
            kind: EncapKind::Vxlan {
                vni: 10_010,
                inner_dst_mac: Some([2, 0, 0, 0, 0x30, 3]),
                port: 4789
            },
            src: src4,
            dst: ip("203.0.113.3"),
        })
    );
    let Action::Encap(gue) = actions[3] else {
        panic!("gue hop should encapsulate")
    };
    assert_eq!(gue.kind, EncapKind::Gue { port: 6080 });
    let Action::Encap(mpls) = actions[4] else {
        panic!("mpls hop should encapsulate")
    };
    assert_eq!(
        mpls.kind,
        EncapKind::MplsUdp {
            label: 1000,
            port: 6635
        }
    );
    assert_eq!(
        c.ports[1].port_info(),
        PortInfo {
            mac: [2, 0, 0, 0, 0, 2],
            mtu: 9000
        }
    );

    let c = load("maglev.toml");
    assert_eq!(HopState::from(c.nexthops[2].state), HopState::Draining);
    assert_eq!(HopState::from(c.nexthops[0].state), HopState::Active);
    assert_eq!(Action::from(c.nexthops[0].action), Action::Rewrite);
    assert_eq!(
        HashPolicy::from(c.groups[1].hash),
        HashPolicy {
            fields: HashFields::SrcDstIp,
            algo: HashAlgo::Crc32c,
            symmetric: true,
            inner: false
        }
    );
    assert_eq!(
        HashPolicy::from(config::HashSpec::default()),
        HashPolicy::default()
    );
}

#[test]
fn maglev_groups() {
    let c = load("maglev.toml");
    assert_eq!(c.instance.seed, 20_240_601);
    let v4 = &c.groups[0];
    assert_eq!((v4.mode, v4.buckets), (GroupMode::Maglev, 4096));
    assert_eq!(v4.hash.algo, HashAlgoSpec::Crc32c);
    let v6 = &c.groups[1];
    assert_eq!(v6.buckets, 65_536);
    assert_eq!(v6.hash.fields, HashFieldsSpec::SrcDstIp);
    assert!(v6.hash.symmetric);
    assert_eq!(
        v6.hash.algo,
        HashAlgoSpec::Crc32c,
        "unset keys come from [hash]"
    );
    assert_eq!(c.nexthops[2].state, HopStateSpec::Draining);
}

#[test]
fn lab_afxdp_matches_the_lab_topology() {
    let c = load("lab-afxdp.toml");
    let names: Vec<&str> = c.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["fc0", "fb1", "fb2", "fb3", "fb4"]);
    for p in &c.ports {
        assert_eq!(
            p.kind,
            PortKind::AfXdp {
                interface: p.name.clone(),
                queues: 1,
                mode: XdpMode::Driver,
                zero_copy: false
            }
        );
        assert_eq!(
            (p.mac, p.addresses.as_ref()),
            (None, None),
            "{}: read from the interface",
            p.name
        );
    }
    assert_eq!(c.workers.len(), 1);
    assert_eq!(c.workers[0].core, 1);
    assert_eq!(
        c.workers[0].ports,
        (0..5)
            .map(|port| PortQueue { port, queue: 0 })
            .collect::<Vec<_>>()
    );
    assert!(
        c.nexthops.iter().all(|h| h.mac.is_none()),
        "every hop is resolved from the neighbour table"
    );

    // Each route's group, as (prefix, [(hop address, port name)]).
    let routes: Vec<(String, Vec<(IpAddr, &str)>)> = c
        .routes
        .iter()
        .map(|r| {
            let hops = c.groups[r.group]
                .members
                .iter()
                .map(|m| {
                    let h = &c.nexthops[m.nexthop];
                    (h.address, c.ports[h.port].name.as_str())
                })
                .collect();
            (r.prefix.to_string(), hops)
        })
        .collect();
    let backends = |v6: bool| -> Vec<(IpAddr, &str)> {
        (1..=4)
            .map(|i| {
                let addr = if v6 {
                    ip(&format!("2001:2:0:{i}::1"))
                } else {
                    ip(&format!("198.18.{i}.1"))
                };
                (addr, ["fb1", "fb2", "fb3", "fb4"][i - 1])
            })
            .collect()
    };
    assert_eq!(
        routes,
        [
            ("198.19.0.1/32".to_owned(), backends(false)),
            ("2001:2:0:ffff::1/128".to_owned(), backends(true)),
            ("198.18.0.0/24".to_owned(), vec![(ip("198.18.0.1"), "fc0")]),
            ("2001:2::/64".to_owned(), vec![(ip("2001:2::1"), "fc0")]),
        ]
    );

    let ctl = c.control.as_ref().expect("[control]");
    assert_eq!(ctl.socket, Path::new("/run/ecmpfwd-lab/ctl.sock"));
    assert_eq!(ctl.mode, 0o660);
    let feed = c.feed.as_ref().expect("[feed]");
    assert_eq!(feed.socket, Path::new("/run/ecmpfwd-lab/feed.sock"));
    assert_eq!(
        (c.bgp.default_policy.mode, c.bgp.default_policy.buckets),
        (GroupMode::AutoRecovery, 256)
    );
}

/// `c` with where each item was read from blanked, so that two files compare by what they
/// configure, whatever their comments.
fn positionless(mut c: Config) -> Config {
    c.origin.clear();
    c.ports.iter_mut().for_each(|x| x.line = 0);
    c.workers.iter_mut().for_each(|x| x.line = 0);
    c.nexthops.iter_mut().for_each(|x| x.line = 0);
    c.groups.iter_mut().for_each(|x| x.line = 0);
    c.routes.iter_mut().for_each(|x| x.line = 0);
    c.neighbors.iter_mut().for_each(|x| x.line = 0);
    c.bgp.policies.iter_mut().for_each(|x| x.line = 0);
    if let Some(x) = c.control.as_mut() {
        x.line = 0;
    }
    if let Some(x) = c.feed.as_mut() {
        x.line = 0;
    }
    c
}

/// The flow cache of scripts/bench-veth's throughput runs: their default 1M flows, a quarter
/// to spare, rounded up to a power of two.
const BENCH_FLOW_CAPACITY: usize = 1 << 21;

/// What configs/lab-afxdp-bench.toml must be: the lab's config with the throughput runs' flow
/// cache and sockets of its own (the driver must not collide with a lab forwarder's).
fn lab_bench_expected() -> Config {
    let mut c = positionless(load("lab-afxdp.toml"));
    c.flow_cache.capacity = BENCH_FLOW_CAPACITY;
    c.control.as_mut().expect("[control]").socket = "/run/ecmpfwd-bench/ctl.sock".into();
    c.feed.as_mut().expect("[feed]").socket = "/run/ecmpfwd-bench/feed.sock".into();
    c
}

#[test]
fn lab_afxdp_bench_is_the_lab_with_a_flow_cache_for_1m_flows() {
    let c = load("lab-afxdp-bench.toml");
    assert!(c.flow_cache.capacity >= 1_000_000 * 5 / 4);
    assert!(c.nexthops.iter().all(|h| h.action == ActionSpec::Rewrite));
    let vip = c
        .routes
        .iter()
        .find(|r| r.prefix == prefix("198.19.0.1/32"));
    assert_eq!(
        vip.map(|r| c.groups[r.group].members.len()),
        Some(4),
        "the VIP is routed statically over the 4 backends"
    );
    assert_eq!(positionless(c), lab_bench_expected());
}

#[test]
fn lab_afxdp_bench_vxlan_encapsulates_towards_every_ipv4_backend() {
    let mut c = load("lab-afxdp-bench-vxlan.toml");
    for h in &mut c.nexthops {
        let backend = (1..=4u8).find(|i| h.name == format!("b{i}"));
        let Some(i) = backend else {
            assert_eq!(h.action, ActionSpec::Rewrite, "{} only rewrites", h.name);
            continue;
        };
        assert_eq!(
            h.action,
            ActionSpec::Encap(EncapSpec {
                kind: EncapKindSpec::Vxlan {
                    vni: 100 + u32::from(i),
                    inner_mac: Some(MacAddr([2, 0xef, 0, 0, i, 1])),
                    udp_port: 4789
                },
                src: ip(&format!("198.18.{i}.254")),
                dst: ip(&format!("198.18.{i}.1")),
            }),
            "{}",
            h.name
        );
        h.action = ActionSpec::Rewrite;
    }
    assert_eq!(
        positionless(c),
        lab_bench_expected(),
        "everything but the encapsulation is lab-afxdp-bench.toml's"
    );
}

/// The DPDK lab configs' ports: scripts/lab's fc0 and fb1..fb4 as one-queue `net_af_xdp`
/// devices, each with the forwarder's fixed MAC of that link (02:ef:00:00:<i>:fe).
fn assert_lab_net_af_xdp_ports(c: &Config) {
    let names: Vec<&str> = c.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["fc0", "fb1", "fb2", "fb3", "fb4"]);
    for (i, p) in c.ports.iter().enumerate() {
        assert_eq!(
            p.kind,
            PortKind::Dpdk {
                device: format!("net_af_xdp{i},iface={},start_queue=0,queue_count=1", p.name),
                queues: 1,
            }
        );
        assert_eq!(p.mac, Some(MacAddr([0x02, 0xef, 0, 0, i as u8, 0xfe])));
    }
}

/// scripts/bench-veth's ecmpfwd-dpdk row loads here in every build (it runs only in a build with
/// the feature `dpdk`): lab-afxdp-bench.toml on net_af_xdp ports, with the lab's fixed MACs on
/// the ports and on every next hop, and an EAL file prefix of its own.
#[test]
fn lab_dpdk_bench_is_the_bench_config_on_net_af_xdp_ports() {
    let mut c = positionless(load("lab-dpdk-bench.toml"));
    let expected = lab_bench_expected();
    assert_lab_net_af_xdp_ports(&c);
    // Every next hop carries the MAC of the other end of its link (02:ef:00:00:<i>:01).
    for h in &mut c.nexthops {
        let i = u8::try_from(h.port).expect("one of 5 ports");
        assert_eq!(
            h.mac,
            Some(MacAddr([0x02, 0xef, 0, 0, i, 0x01])),
            "{}",
            h.name
        );
        h.mac = None;
    }
    assert_eq!(
        c.dpdk.eal_args(),
        [
            "-l",
            "0",
            "-m",
            "256",
            "--file-prefix",
            "ecmpfwd-bench",
            "--no-huge",
            "--no-pci",
            "--no-telemetry",
            "--no-shconf",
            "--log-level",
            "lib.eal:error"
        ]
    );
    // The rest (workers, flow cache, hops, groups, routes, sockets, BGP) is lab-afxdp-bench.toml's.
    c.ports = expected.ports.clone();
    c.dpdk = expected.dpdk.clone();
    assert_eq!(c, expected);
}

#[test]
fn lab_afxdp_bench_10m_caches_the_scaling_runs_flows() {
    let mut c = load("lab-afxdp-bench-10m.toml");
    assert_eq!(c.flow_cache.capacity, 1 << 24);
    assert_eq!(c.memory.hugepages, ecmp_mem::HugePages::Auto);
    assert!(c.flow_cache.capacity >= 10_000_000 * 5 / 4);
    c.flow_cache.capacity = BENCH_FLOW_CAPACITY;
    assert_eq!(positionless(c), lab_bench_expected());
}

#[test]
fn lab_afxdp_resilience_leaves_the_vip_to_the_control_socket_in_each_mode() {
    for (name, mode, buckets) in [
        ("auto-recovery", GroupMode::AutoRecovery, 256),
        ("manual", GroupMode::Manual, 256),
        ("maglev", GroupMode::Maglev, 4096),
    ] {
        let c = load(&format!("lab-afxdp-resilience-{name}.toml"));
        let vip = prefix("198.19.0.1/32");
        assert!(
            c.routes.iter().all(|r| r.prefix != vip),
            "{name}: the driver adds the VIP over the control socket"
        );
        let d = &c.bgp.default_policy;
        assert_eq!((d.mode, d.buckets), (mode, buckets), "{name}");
        assert_eq!(
            c.bgp.policy_for(&vip),
            d,
            "{name}: the VIP takes [bgp]'s shape"
        );

        let mut want = lab_bench_expected();
        want.routes.retain(|r| r.prefix != vip);
        want.bgp.default_policy.mode = mode;
        want.bgp.default_policy.buckets = buckets;
        assert_eq!(positionless(c), want, "{name}");
    }
}

#[test]
fn load_resolves_relative_paths_and_names_the_file() {
    let dir = std::env::temp_dir().join(format!("ecmpfwd-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pcap.toml");
    let text = format!(
        "{BASE}[[port]]\nname = \"cap\"\nkind = \"pcap\"\nmac = \"02:00:00:00:00:09\"\ninput = \"in.pcap\"\noutput = \"/abs/out.pcap\"\n"
    );
    std::fs::write(&path, &text).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(
        c.ports[1].kind,
        PortKind::Pcap {
            input: Some(dir.join("in.pcap")),
            output: Some("/abs/out.pcap".into())
        }
    );
    std::fs::write(&path, format!("{text}bogus = 1\n")).unwrap();
    let e = Config::load(&path).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}:18: port[1].bogus: ", path.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let e = Config::load(&dir.join("missing.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
}

/// Line and key recovery walk spans over the text: no truncation of a valid file may panic,
/// and every error still names a line inside the text.
#[test]
fn truncated_examples_never_panic() {
    for name in [
        "anycast-vip.toml",
        "encap.toml",
        "lab-afxdp.toml",
        "maglev.toml",
        "minimal.toml",
    ] {
        let text = std::fs::read_to_string(configs_dir().join(name)).unwrap();
        let lines = text.lines().count();
        for end in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
            if let Err(e) = Config::parse(&text[..end], name) {
                let line = e.line().unwrap();
                assert!((1..=lines.max(1)).contains(&line), "{name}[..{end}]: {e}");
            }
        }
    }
}

#[test]
fn an_empty_group_and_a_route_to_it_are_fine() {
    let text = format!(
        "{BASE}[[group]]\nname = \"later\"\nmembers = []\n[[route]]\nprefix = \"2001:db8::/32\"\ngroup = \"later\"\n"
    );
    let c = Config::parse(&text, "t.toml").unwrap();
    assert!(c.groups[0].members.is_empty());
    assert_eq!(c.routes[0].group, 0);
}

/// A valid head every bad snippet is appended to (11 lines).
const BASE: &str = r#"[instance]
name = "t"

[[port]]
name = "p0"
kind = "memory"
mac = "02:00:00:00:00:01"

[[worker]]
core = 0
ports = ["p0"]
"#;

/// A valid next hop on p0 for snippets that need one.
const HOP: &str = "[[nexthop]]\nname = \"h\"\naddress = \"198.51.100.1\"\nport = \"p0\"\nmac = \"02:00:00:00:01:01\"\n";

/// Marks the line the error must be reported on.
const MARK: &str = "#<";

struct Bad {
    /// The whole document, with `#<` ending the offending line.
    text: String,
    key: &'static str,
    message: &'static str,
}

fn after_base(snippet: &str, key: &'static str, message: &'static str) -> Bad {
    Bad {
        text: format!("{BASE}{snippet}"),
        key,
        message,
    }
}

fn whole(text: &str, key: &'static str, message: &'static str) -> Bad {
    Bad {
        text: text.to_owned(),
        key,
        message,
    }
}

fn bad_configs() -> Vec<Bad> {
    vec![
        // TOML syntax.
        after_base("[[nexthop] #<\nname = \"x\"\n", "", "expected"),
        after_base(
            "[fib]\nmax_tbl8 = 1\nmax_tbl8 = 2 #<\n",
            "",
            "duplicate key",
        ),
        after_base("[fib]\nmax_tbl8 = 1 2 #<\n", "", ""),
        // Unknown, missing and mistyped keys.
        whole(
            "[instance]\nnam = \"t\" #<\n",
            "instance.nam",
            "unknown field `nam`",
        ),
        whole(
            "#<\n[[port]]\nname = \"p0\"\nkind = \"memory\"\nmac = \"02:00:00:00:00:01\"\n",
            "instance",
            "missing field `instance`",
        ),
        after_base("[fibs] #<\n", "fibs", "unknown field `fibs`"),
        after_base(
            "[fib]\nmax_tbl9 = 1 #<\n",
            "fib.max_tbl9",
            "unknown field `max_tbl9`",
        ),
        after_base(
            &format!("{HOP}colour = \"red\" #<\n"),
            "nexthop[0].colour",
            "unknown field `colour`",
        ),
        after_base(
            "[[nexthop]] #<\nname = \"h\"\naddress = \"198.51.100.1\"\nport = \"p0\"\n",
            "nexthop[0].mac",
            "missing `mac`: port \"p0\" is a memory port",
        ),
        after_base(
            "[[port]] #<\nname = \"p1\"\nkind = \"memory\"\n",
            "port[1].mac",
            "missing `mac`",
        ),
        whole(
            "[instance]\nname = \"t\"\ncontrol_socket = \"/run/t.sock\" #<\n",
            "instance.control_socket",
            "moved to [control] socket",
        ),
        after_base(
            "[control]\nsocket = \"/run/t.sock\"\nmode = 0o2770 #<\n",
            "control.mode",
            "beyond 0o777",
        ),
        after_base(
            "[feed]\nsocket = \"/run/t.sock\"\ngroup = \"no-such-group-ecmpfwd\" #<\n",
            "feed.group",
            "no group named",
        ),
        after_base(
            "[[bgp.policy]]\nprefix = \"198.19.0.0/16\"\nmode = \"maglev\"\nidle_timer = \"1s\" #<\n",
            "bgp.policy[0].idle_timer",
            "only used by mode = \"idle\"",
        ),
        after_base(
            "[[neighbor]]\naddress = \"198.51.100.1\"\nmac = \"02:00:00:00:01:01\"\n[[neighbor]]\naddress = \"198.51.100.1\" #<\nmac = \"02:00:00:00:01:02\"\n",
            "neighbor[1].address",
            "duplicate neighbor",
        ),
        after_base(
            &format!("{HOP}weight = \"heavy\" #<\n"),
            "nexthop[0].weight",
            "invalid type",
        ),
        after_base(
            &format!("{HOP}weight = 0 #<\n"),
            "nexthop[0].weight",
            "at least 1",
        ),
        after_base(
            &format!("{HOP}state = \"up\" #<\n"),
            "nexthop[0].state",
            "unknown variant `up`",
        ),
        after_base(
            "[[port]]\nname = \"p1\"\nkind = \"netmap\" #<\nmac = \"02:00:00:00:00:02\"\n",
            "port[1].kind",
            "unknown variant `netmap`",
        ),
        after_base(
            &format!("{HOP}encap = {{ kind = \"gre\", src = \"192.0.2.1\", bogus = 1 }} #<\n"),
            "nexthop[0].encap.bogus",
            "unknown field `bogus`",
        ),
        after_base(
            &format!("{HOP}[nexthop.encap]\nkind = \"gre\"\nsrc = \"192.0.2.1\"\ntunnel = 1 #<\n"),
            "nexthop[0].encap.tunnel",
            "unknown field `tunnel`",
        ),
        after_base(
            &format!(
                "{HOP}[[group]]\nname = \"g\"\nmembers = [\"h\", {{ nexthop = \"h\", wieght = 2 }}] #<\n"
            ),
            "group[0].members[1].wieght",
            "unknown field `wieght`",
        ),
        after_base(
            "[hash]\nfields = \"4-tuple\" #<\n",
            "hash.fields",
            "unknown variant `4-tuple`",
        ),
        // Bad values.
        after_base(
            "[[nexthop]]\nname = \"h\"\naddress = \"198.51.100.1\"\nport = \"p0\"\nmac = \"02:00:00:00:01\" #<\n",
            "nexthop[0].mac",
            "invalid MAC address",
        ),
        after_base(
            "[[port]]\nname = \"p1\"\nkind = \"memory\"\nmac = \"01:00:5e:00:00:01\" #<\n",
            "port[1].mac",
            "not a unicast MAC",
        ),
        after_base(
            "[[port]]\nname = \"p:1\" #<\nkind = \"memory\"\nmac = \"02:00:00:00:00:02\"\n",
            "port[1].name",
            "invalid name",
        ),
        after_base(
            "[[port]]\nname = \"p1\"\nkind = \"memory\"\nmac = \"02:00:00:00:00:02\"\nmtu = 20 #<\n",
            "port[1].mtu",
            "outside 68..=9216",
        ),
        after_base(
            "[[port]]\nname = \"p1\"\nkind = \"memory\"\nmac = \"02:00:00:00:00:02\"\ninterface = \"eth0\" #<\n",
            "port[1].interface",
            "not used by kind = \"memory\"",
        ),
        after_base(
            "[[port]]\nname = \"p1\"\nkind = \"pcap\" #<\nmac = \"02:00:00:00:00:02\"\n",
            "port[1].kind",
            "needs `input`, `output` or both",
        ),
        after_base(
            "[[port]]\nname = \"x\"\nkind = \"afxdp\"\ninterface = \"veth0\"\nmode = \"generic\"\nzero_copy = true #<\nmac = \"02:00:00:00:00:02\"\n",
            "port[1].zero_copy",
            "needs mode = \"driver\"",
        ),
        after_base(
            "[[port]]\nname = \"x\"\nkind = \"afxdp\" #<\nmac = \"02:00:00:00:00:02\"\n",
            "port[1].interface",
            "needs `interface`",
        ),
        after_base(
            "[[route]]\nprefix = \"192.0.2.1/24\" #<\ngroup = \"g\"\n",
            "route[0].prefix",
            "host bits set (did you mean 192.0.2.0/24?)",
        ),
        after_base(
            "[[route]]\nprefix = \"2001:db8::/129\" #<\ngroup = \"g\"\n",
            "route[0].prefix",
            "length must be 0..=128",
        ),
        after_base(
            "[[group]]\nname = \"g\"\nbuckets = 100 #<\n",
            "group[0].buckets",
            "not a power of two",
        ),
        after_base(
            "[[group]]\nname = \"g\"\nbuckets = 131072 #<\n",
            "group[0].buckets",
            "not a power of two in 1..=65536",
        ),
        after_base(
            "[flow_cache]\nidle_timeout = \"5 minutes\" #<\n",
            "flow_cache.idle_timeout",
            "invalid duration",
        ),
        after_base(
            "[flow_cache]\nidle_timeout = \"0s\" #<\n",
            "flow_cache.idle_timeout",
            "greater than zero",
        ),
        after_base(
            "[flow_cache]\nidle_timeout = \"10s\"\nfin_timeout = \"1m\" #<\n",
            "flow_cache.fin_timeout",
            "longer than idle_timeout",
        ),
        after_base(
            "[flow_cache]\ncapacity = 1000 #<\n",
            "flow_cache.capacity",
            "not a power of two",
        ),
        after_base("[fib]\nmax_tbl8 = 0 #<\n", "fib.max_tbl8", "1..=16777216"),
        whole(
            "[instance]\nname = \"t\"\nseed = 0 #<\n",
            "instance.seed",
            "seed 0 is refused",
        ),
        whole(
            "[instance]\nname = \"t\"\nseed = -5 #<\n",
            "instance.seed",
            "must not be negative",
        ),
        whole(
            "[instance]\nname = \"t\"\nrss_key = \"6d5a\" #<\n",
            "instance.rss_key",
            "expected 40 bytes",
        ),
        // Encapsulation.
        after_base(
            &format!("{HOP}[nexthop.encap]\nkind = \"ipip\"\nsrc = \"2001:db8::1\" #<\n"),
            "nexthop[0].encap.src",
            "encap family mismatch",
        ),
        after_base(
            &format!(
                "{HOP}[nexthop.encap]\nkind = \"gre\"\nsrc = \"192.0.2.1\"\ndst = \"2001:db8::2\" #<\n"
            ),
            "nexthop[0].encap.dst",
            "IPv4 but dst 2001:db8::2 is IPv6",
        ),
        after_base(
            &format!("{HOP}[nexthop.encap]\nkind = \"ipip\"\nsrc = \"192.0.2.1\"\nvni = 5 #<\n"),
            "nexthop[0].encap.vni",
            "`vni` is not used by kind = \"ipip\"",
        ),
        after_base(
            &format!("{HOP}[nexthop.encap]\nkind = \"gue\" #<\nsrc = \"192.0.2.1\"\n"),
            "nexthop[0].encap.udp_port",
            "needs `udp_port`",
        ),
        after_base(
            &format!("{HOP}[nexthop.encap]\nkind = \"vxlan\" #<\nsrc = \"192.0.2.1\"\n"),
            "nexthop[0].encap.vni",
            "needs `vni`",
        ),
        after_base(
            &format!(
                "{HOP}[nexthop.encap]\nkind = \"vxlan\"\nsrc = \"192.0.2.1\"\nvni = 16777216 #<\n"
            ),
            "nexthop[0].encap.vni",
            "24 bits",
        ),
        after_base(
            &format!(
                "{HOP}[nexthop.encap]\nkind = \"mpls-udp\"\nsrc = \"192.0.2.1\"\nlabel = 3 #<\n"
            ),
            "nexthop[0].encap.label",
            "reserved",
        ),
        after_base(
            &format!("{HOP}[nexthop.encap]\nkind = \"gre\"\nsrc = \"0.0.0.0\" #<\n"),
            "nexthop[0].encap.src",
            "not a unicast address",
        ),
        after_base(
            &format!("{HOP}action = \"encap\" #<\n"),
            "nexthop[0].action",
            "needs a [nexthop.encap] table",
        ),
        after_base(
            &format!(
                "{HOP}action = \"rewrite\" #<\n[nexthop.encap]\nkind = \"ipip\"\nsrc = \"192.0.2.1\"\n"
            ),
            "nexthop[0].action",
            "conflicts",
        ),
        // Cross-references.
        after_base(
            "[[nexthop]]\nname = \"h\"\naddress = \"198.51.100.1\"\nport = \"p9\" #<\nmac = \"02:00:00:00:01:01\"\n",
            "nexthop[0].port",
            "unknown port \"p9\"",
        ),
        after_base(
            &format!(
                "{HOP}{}",
                HOP.replacen("[[nexthop]]", "[[nexthop]]\n", 1).replacen(
                    "name = \"h\"",
                    "name = \"h\" #<",
                    1
                )
            ),
            "nexthop[1].name",
            "duplicate next hop name \"h\" (first defined on line 13)",
        ),
        after_base(
            "[[port]]\nname = \"p0\" #<\nkind = \"memory\"\nmac = \"02:00:00:00:00:02\"\n",
            "port[1].name",
            "duplicate port name",
        ),
        after_base(
            &format!("{HOP}[[group]]\nname = \"g\"\nmembers = [\"h\",\n  \"nope\"] #<\n"),
            "group[0].members[1]",
            "unknown next hop \"nope\"",
        ),
        after_base(
            &format!("{HOP}[[group]]\nname = \"g\"\nmembers = [\"h\", \"h\"] #<\n"),
            "group[0].members[1]",
            "listed twice",
        ),
        after_base(
            &format!(
                "{HOP}[[group]]\nname = \"g\"\nmembers = [{{ nexthop = \"h\", weight = 0 }}] #<\n"
            ),
            "group[0].members[0].weight",
            "at least 1",
        ),
        after_base(
            &format!(
                "{HOP}[[group]]\nname = \"g\"\nbuckets = 1 #<\nmembers = [\"h\", \"h2\"]\n{}",
                HOP.replace("\"h\"", "\"h2\"")
                    .replace("198.51.100.1", "198.51.100.2")
            ),
            "group[0].buckets",
            "buckets = 1 cannot hold 2 members",
        ),
        after_base(
            &format!(
                "{HOP}{}",
                HOP.replace("\"h\"", "\"h2\"").replace(
                    "address = \"198.51.100.1\"",
                    "address = \"198.51.100.1\" #<"
                )
            ),
            "nexthop[1].address",
            "both have address 198.51.100.1 on port",
        ),
        after_base(
            "[[group]]\nname = \"g\"\nmode = \"maglev\"\nidle_timer = \"5s\" #<\n",
            "group[0].idle_timer",
            "only used by mode = \"idle\"",
        ),
        after_base(
            "[[group]]\nname = \"g\"\nmode = \"idle\"\nidle_timer = \"0s\" #<\n",
            "group[0].idle_timer",
            "greater than zero",
        ),
        after_base(
            "[[group]] #<\nname = \"g\"\nmode = \"maglev\"\nhash = { algo = \"lb-key\" }\n",
            "group[0].buckets",
            "lb-key",
        ),
        after_base(
            "[[group]]\nname = \"g\"\n[[group]]\nname = \"g\" #<\n",
            "group[1].name",
            "duplicate group name",
        ),
        after_base(
            "[[group]]\nname = \"g\"\n[[route]]\nprefix = \"192.0.2.0/24\"\ngroup = \"g2\" #<\n",
            "route[0].group",
            "unknown group \"g2\"",
        ),
        after_base(
            "[[group]]\nname = \"g\"\n[[route]]\nprefix = \"192.0.2.0/24\"\ngroup = \"g\"\n[[route]]\nprefix = \"192.0.2.0/24\" #<\ngroup = \"g\"\n",
            "route[1].prefix",
            "duplicate route for 192.0.2.0/24 (first on line 15)",
        ),
        // Workers.
        after_base(
            "[[worker]]\ncore = 1\nports = [\"p9\"] #<\n",
            "worker[1].ports[0]",
            "unknown port \"p9\"",
        ),
        after_base(
            "[[port]]\nname = \"p1\"\nkind = \"memory\"\nmac = \"02:00:00:00:00:02\"\n[[worker]]\ncore = 0 #<\nports = [\"p1\"]\n",
            "worker[1].core",
            "core 0 is already used by the worker on line 10",
        ),
        after_base(
            "[[worker]]\ncore = 1\nports = [\"p0\"] #<\n",
            "worker[1].ports[0]",
            "already served by worker[0]",
        ),
        after_base(
            "[[worker]]\ncore = 1\nports = [] #<\n",
            "worker[1].ports",
            "at least one port",
        ),
        after_base(
            "[[worker]]\ncore = 1\nports = [\"p0:1\"] #<\n",
            "worker[1].ports[0]",
            "has a single queue",
        ),
        after_base(
            "[[port]]\nname = \"x\"\nkind = \"afxdp\"\ninterface = \"veth0\"\nqueues = 2\nmac = \"02:00:00:00:00:02\"\n[[worker]]\ncore = 1\nports = [\"x\"] #<\n",
            "worker[1].ports[0]",
            "has 2 queues",
        ),
        after_base(
            "[[port]]\nname = \"x\"\nkind = \"afxdp\"\ninterface = \"veth0\"\nqueues = 2\nmac = \"02:00:00:00:00:02\"\n[[worker]]\ncore = 1\nports = [\"x:2\"] #<\n",
            "worker[1].ports[0]",
            "invalid queue \"2\"",
        ),
        after_base(
            "[[port]] #<\nname = \"x\"\nkind = \"afxdp\"\ninterface = \"veth0\"\nqueues = 2\nmac = \"02:00:00:00:00:02\"\n[[worker]]\ncore = 1\nports = [\"x:1\"]\n",
            "port[1].queues",
            "queue 0 of port \"x\" is not served",
        ),
        after_base(
            "[[port]]\nname = \"x\"\nkind = \"afxdp\"\ninterface = \"veth0\"\nmac = \"02:00:00:00:00:02\"\n[[port]] #<\nname = \"y\"\nkind = \"afxdp\"\ninterface = \"veth0\"\nmac = \"02:00:00:00:00:03\"\n",
            "port[2].interface",
            "already used by port \"x\"",
        ),
        whole(
            "[instance] #<\nname = \"t\"\n[[port]]\nname = \"p0\"\nkind = \"memory\"\nmac = \"02:00:00:00:00:01\"\n",
            "worker",
            "at least one [[worker]]",
        ),
    ]
}

#[test]
fn bad_configs_name_the_line_and_the_key() {
    let mut failures = Vec::new();
    for bad in bad_configs() {
        let marked = bad.text.lines().position(|l| l.ends_with(MARK));
        let Some(index) = marked else {
            panic!("no {MARK} marker in:\n{}", bad.text)
        };
        let line = index + 1;
        let err = match Config::parse(&bad.text, "bad.toml") {
            Ok(_) => {
                failures.push(format!("accepted:\n{}", bad.text));
                continue;
            }
            Err(e) => e,
        };
        let shown = err.to_string();
        let prefix = if bad.key.is_empty() {
            format!("bad.toml:{line}: ")
        } else {
            format!("bad.toml:{line}: {}: ", bad.key)
        };
        if err.line() != Some(line)
            || err.key() != Some(bad.key)
            || !shown.starts_with(&prefix)
            || !shown.contains(bad.message)
        {
            failures.push(format!(
                "expected `{prefix}...{}...`, got `{shown}` for:\n{}",
                bad.message, bad.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn lab_bgp_learns_the_vip_and_routes_only_replies_statically() {
    let c = load("lab-bgp.toml");
    assert_eq!(c.ports.len(), 5);
    assert!(
        c.ports.iter().all(|p| p.mac.is_none()),
        "MACs come from the interfaces"
    );
    let routes: Vec<String> = c.routes.iter().map(|r| r.prefix.to_string()).collect();
    assert_eq!(routes, ["198.18.0.0/24", "2001:2::/64"]);
    let feed = c.feed.as_ref().expect("[feed]");
    assert_eq!(feed.socket, Path::new("/run/ecmpfwd-demo/feed.sock"));
    assert_eq!(feed.stale_time, Duration::ZERO);
    let control = c.control.as_ref().expect("[control]");
    assert_eq!(control.socket, Path::new("/run/ecmpfwd-demo/ctl.sock"));
    assert_eq!(
        (c.bgp.default_policy.mode, c.bgp.default_policy.buckets),
        (GroupMode::AutoRecovery, 256)
    );
}

/// The soak's config (scripts/lib/soak.py) is the BGP lab's plus what the soak's traffic needs:
/// an IPv6 VIP through a rewrite group and a VIP through a VXLAN group, sockets of its own.
#[test]
fn lab_soak_adds_an_ipv6_vip_and_a_vxlan_vip_to_the_bgp_lab() {
    let c = load("lab-soak.toml");
    let bgp = load("lab-bgp.toml");
    let ports = |c: &config::Config| -> Vec<(String, config::PortKind)> {
        c.ports
            .iter()
            .map(|p| (p.name.clone(), p.kind.clone()))
            .collect()
    };
    assert_eq!(ports(&c), ports(&bgp));
    assert_eq!(c.bgp, bgp.bgp);
    let route_to = |prefix: &str| {
        let r = c
            .routes
            .iter()
            .find(|r| r.prefix.to_string() == prefix)
            .unwrap_or_else(|| panic!("no route {prefix}"));
        &c.groups[r.group]
    };
    let hops = |g: &config::GroupSpec| -> Vec<&config::NextHopSpec> {
        g.members.iter().map(|m| &c.nexthops[m.nexthop]).collect()
    };
    let v6 = hops(route_to("2001:2:0:ffff::1/128"));
    assert_eq!(v6.len(), 4);
    assert!(
        v6.iter()
            .all(|h| h.address.is_ipv6() && h.action == config::ActionSpec::Rewrite)
    );
    let vx = hops(route_to("198.19.0.2/32"));
    assert_eq!(vx.len(), 4);
    for (i, h) in vx.iter().enumerate() {
        assert_eq!(h.address.to_string(), format!("198.18.{}.1", i + 1));
        assert!(
            matches!(h.action, config::ActionSpec::Encap(e) if e.dst == h.address),
            "{h:?}"
        );
    }
    let feed = c.feed.as_ref().expect("[feed]");
    assert_eq!(feed.socket, Path::new("/run/ecmpfwd-soak/feed.sock"));
    let control = c.control.as_ref().expect("[control]");
    assert_eq!(control.socket, Path::new("/run/ecmpfwd-soak/ctl.sock"));
}

/// The same members listed in another order give the same bucket map in every mode (issue 12
/// item 3: before traffic a group's table depends only on its members).
#[test]
fn member_order_in_the_config_does_not_change_the_table() {
    let path = configs_dir().join("anycast-vip.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let listed = r#"members = ["srv1", "srv2", "srv3", "srv4", "srv5", "srv6", "srv7", "srv8"]"#;
    assert!(text.contains(listed));
    let orders = [
        listed.to_owned(),
        r#"members = ["srv8", "srv7", "srv6", "srv5", "srv4", "srv3", "srv2", "srv1"]"#.to_owned(),
        r#"members = ["srv3", "srv6", "srv1", "srv8", "srv2", "srv5", "srv7", "srv4"]"#.to_owned(),
    ];
    for mode in ["manual", "auto-recovery", "idle", "maglev", "rendezvous"] {
        let maps: Vec<Vec<IpAddr>> = orders
            .iter()
            .map(|members| {
                let text = text
                    .replace("mode = \"auto-recovery\"", &format!("mode = \"{mode}\""))
                    .replace(listed, members);
                let cfg = Config::parse(&text, "anycast-reordered.toml").unwrap();
                let tables = ecmpfwd::setup::build(&cfg).unwrap();
                let gi = tables.group_names.iter().position(|n| n == "vip").unwrap();
                tables.groups[gi]
                    .bucket_owners()
                    .iter()
                    .map(|&hop| cfg.nexthops[hop as usize - 1].address)
                    .collect()
            })
            .collect();
        assert!(maps.iter().all(|m| m == &maps[0]), "{mode}");
    }
}

#[test]
fn anycast_vip_serves_metrics_on_loopback() {
    let c = load("anycast-vip.toml");
    let m = c.metrics.as_ref().expect("[metrics]");
    assert_eq!(m.listen, "127.0.0.1:9433".parse().unwrap());
    assert!(load("minimal.toml").metrics.is_none(), "off when unset");
}

/// The lab demo over DPDK ports (`scripts/demo --io dpdk`) loads here in every build; it runs
/// only in a build with the feature `dpdk`, where `dpdk_run`'s demo test runs it in the lab.
#[test]
fn lab_bgp_dpdk_is_lab_bgp_on_net_af_xdp_ports_with_the_labs_fixed_macs() {
    let c = load("lab-bgp-dpdk.toml");
    let afxdp = load("lab-bgp.toml");
    assert_lab_net_af_xdp_ports(&c);
    for (i, p) in c.ports.iter().enumerate() {
        let addrs: Vec<String> = p
            .addresses
            .iter()
            .flatten()
            .map(|a| format!("{}/{}", a.addr, a.len))
            .collect();
        let (v4, v6) = if i == 0 {
            ("198.18.0.254/24".to_owned(), "2001:2::fe/64".to_owned())
        } else {
            (format!("198.18.{i}.254/24"), format!("2001:2:0:{i}::fe/64"))
        };
        assert_eq!(addrs, [v4, v6], "{}", p.name);
    }
    // Every neighbour is static: the client's (on its hops) and each server's, the BGP next
    // hop it announces (the other end of link i is 02:ef:00:00:<i>:01).
    assert!(
        c.nexthops
            .iter()
            .all(|h| h.mac == Some(MacAddr([0x02, 0xef, 0, 0, 0, 0x01]))),
        "the client's MAC"
    );
    let neighbours: Vec<(IpAddr, MacAddr)> =
        c.neighbors.iter().map(|n| (n.address, n.mac)).collect();
    let servers: Vec<(IpAddr, MacAddr)> = (1..=4u8)
        .map(|i| {
            (
                ip(&format!("198.18.{i}.1")),
                MacAddr([0x02, 0xef, 0, 0, i, 0x01]),
            )
        })
        .collect();
    assert_eq!(neighbours, servers);
    assert_eq!(
        c.dpdk.eal_args(),
        [
            "-l",
            "0",
            "-m",
            "256",
            "--file-prefix",
            "ecmpfwd-demo",
            "--no-huge",
            "--no-pci",
            "--no-telemetry",
            "--no-shconf",
            "--log-level",
            "lib.eal:error"
        ]
    );
    // The rest is lab-bgp.toml's: workers, routes, control, feed and the VIP's policy.
    assert_eq!(c.workers.len(), 1);
    assert_eq!(
        (c.workers[0].core, &c.workers[0].ports),
        (afxdp.workers[0].core, &afxdp.workers[0].ports)
    );
    let routes =
        |c: &Config| -> Vec<String> { c.routes.iter().map(|r| r.prefix.to_string()).collect() };
    assert_eq!(routes(&c), routes(&afxdp));
    assert_eq!(
        c.control.as_ref().map(|s| &s.socket),
        afxdp.control.as_ref().map(|s| &s.socket)
    );
    let feed = |c: &Config| c.feed.as_ref().map(|f| (f.socket.clone(), f.stale_time));
    assert_eq!(feed(&c), feed(&afxdp));
    assert_eq!(
        (c.bgp.default_policy.mode, c.bgp.default_policy.buckets),
        (
            afxdp.bgp.default_policy.mode,
            afxdp.bgp.default_policy.buckets
        )
    );
}
