//! `ecmpfwd run` forwarding over a real veth lab (`scripts/lab`, needs root): flows from the
//! client to the VIP spread over four backends with rewritten headers, and a resilient group
//! changed at run time over the control socket moves only the flows it must.

mod lab_common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ecmp_proto::Prefix;
use ecmp_proto::ctl::{FlowEntry, FlowsReply, Request, TraceQuery, TraceReply, TraceVia};
use lab_common::*;
use serde_json::Value;

/// Checks the first frame each backend received: MACs of its link, TTL/hop limit one lower,
/// every checksum valid.
fn check_first_frames(lab: &Lab, reports: &[Value], v6: bool) {
    for (i, r) in reports.iter().enumerate() {
        let b = i + 1;
        let f = unhex(r["first_packet"].as_str().expect("first_packet"));
        assert_eq!(
            f[0..6],
            mac_bytes(lab.env(&format!("LAB_B{b}_MAC")))[..],
            "backend {b}: dst MAC"
        );
        assert_eq!(
            f[6..12],
            mac_bytes(lab.env(&format!("LAB_FB{b}_MAC")))[..],
            "backend {b}: src MAC"
        );
        if v6 {
            check_ipv6(&f, 63, 6);
        } else {
            check_ipv4(&f, 63, 6);
        }
    }
}

#[test]
fn ipv4_tcp_flows_reach_every_backend_exactly_once_with_rewritten_headers() {
    let lab = Lab::up("lf4", 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let cfg = write(dir.path(), "c.toml", &config(&ConfigOpts::default(), &ctl));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);

    let reports = through_backends(&lab, &fw, dir.path(), "v4", 0, 4000, || {
        send(
            &lab,
            "198.18.0.1",
            VIP4,
            200,
            4000,
            &["--proto", "tcp", "--size", "100"],
        );
    });
    let total: u64 = reports.iter().map(packets).sum();
    assert_eq!(total, 4000, "{reports:?}");
    for (i, r) in reports.iter().enumerate() {
        assert!(packets(r) > 0, "backend {} got nothing: {r}", i + 1);
        assert_eq!(r["reordered"], 0, "{r}");
    }
    let map = single_backend(&flow_map(&reports));
    assert_eq!(map.len(), 200, "every flow arrives");
    for (flow, at) in flow_map(&reports) {
        assert_eq!(at[0].1, 20, "flow {flow}: 4000 / 200 packets each");
    }
    check_first_frames(&lab, &reports, false);

    // ecmpctl's human output, as an operator sees it.
    let out = std::process::Command::new(ecmpctl())
        .arg("--socket")
        .arg(&ctl)
        .arg("routes")
        .output()
        .expect("run ecmpctl");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let vip = text
        .lines()
        .find(|l| l.starts_with("198.19.0.1/32"))
        .unwrap_or_else(|| panic!("no VIP route in:\n{text}"));
    let cols: Vec<&str> = vip.split_whitespace().collect();
    // prefix origin group mode active draining failed buckets digest installed; the digest is
    // the one the daemon reports for the route (16 hex digits of its bucket map's FNV-1a).
    assert_eq!(cols[1], "config", "{vip}");
    let routes = fw.ctl_ok(&Request::Routes {});
    let digest = routes
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["prefix"] == "198.19.0.1/32")
        .and_then(|r| r["digest"].as_str())
        .unwrap_or_else(|| panic!("no digest for the VIP in {routes:#}"))
        .to_owned();
    assert_eq!(digest.len(), 16, "{digest}");
    assert_eq!(
        cols[4..],
        ["4", "0", "0", "256", digest.as_str(), "yes"],
        "{vip}"
    );

    // The worker's flow cache, seen through the control socket: every client flow is cached,
    // and tracing one of them answers from the cache with the hop it is pinned to.
    let flows: FlowsReply =
        serde_json::from_value(fw.ctl_ok(&Request::Flows { top: 1000 })).expect("flows reply");
    assert_eq!(
        flows.per_hop.iter().map(|h| h.flows).sum::<u64>(),
        flows.total
    );
    let to_vip: Vec<&FlowEntry> = flows
        .flows
        .iter()
        .filter(|f| f.flow.dst == ip(VIP4))
        .collect();
    assert_eq!(to_vip.len(), 200, "every client flow is cached: {flows:?}");
    let pinned = to_vip[0];
    let traced: TraceReply =
        serde_json::from_value(fw.ctl_ok(&Request::Trace(pinned.flow))).expect("trace reply");
    assert_eq!(traced.via, TraceVia::Cache { worker: 0 }, "{traced:?}");
    assert_eq!(traced.hop, pinned.hop);
    let backends: Vec<IpAddr> = (1..=4).map(|i| ip(&format!("198.18.{i}.1"))).collect();
    assert!(backends.contains(&traced.addr), "{traced:?}");
    // A 5-tuple never sent is not cached: the trace names the bucket a new flow would take.
    let fresh = TraceQuery {
        sport: 1,
        ..pinned.flow
    };
    let traced: TraceReply =
        serde_json::from_value(fw.ctl_ok(&Request::Trace(fresh))).expect("trace reply");
    assert!(matches!(traced.via, TraceVia::Bucket { .. }), "{traced:?}");
    assert!(backends.contains(&traced.addr), "{traced:?}");

    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
    let counters: Value = serde_json::from_str(&stopped.stdout).expect("counters JSON");
    // The forwarder saw the client's 4000 packets plus the backends' replies (RSTs: nothing
    // listens on port 80), and sent all of them on: nothing dropped.
    assert!(counters["rx_packets"].as_u64().expect("rx") >= 4000);
    assert_eq!(counters["rx_packets"], counters["tx_packets"], "{counters}");
}

#[test]
fn ipv6_tcp_flows_reach_every_backend_exactly_once_with_hop_limit_decremented() {
    let lab = Lab::up("lf6", 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let cfg = write(dir.path(), "c.toml", &config(&ConfigOpts::default(), &ctl));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);

    let reports = through_backends(&lab, &fw, dir.path(), "v6", 0, 4000, || {
        send(
            &lab,
            lab.env("LAB_CL_IP6"),
            VIP6,
            200,
            4000,
            &["--proto", "tcp", "--size", "120"],
        );
    });
    assert_eq!(
        reports.iter().map(packets).sum::<u64>(),
        4000,
        "{reports:?}"
    );
    assert!(reports.iter().all(|r| packets(r) > 0), "{reports:?}");
    assert_eq!(single_backend(&flow_map(&reports)).len(), 200);
    check_first_frames(&lab, &reports, true);
    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
}

fn vip_prefix() -> Prefix {
    Prefix::new(ip(VIP4), 32).expect("prefix")
}

fn backends_ip(list: &[u32]) -> Vec<IpAddr> {
    list.iter().map(|i| ip(&format!("198.18.{i}.1"))).collect()
}

/// `route-add`, then waits until the workers run the tables it published.
fn route_add(fw: &Forwarder, via: &[u32]) {
    let r = fw.ctl_ok(&Request::RouteAdd {
        prefix: vip_prefix(),
        via: backends_ip(via),
    });
    assert_eq!(r["published"], true, "{r}");
    fw.wait_generation(r["generation"].as_u64().expect("generation"));
}

#[test]
fn run_time_route_changes_move_only_failed_and_new_flows() {
    let lab = Lab::up("lfr", 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let opts = ConfigOpts {
        static_vip: false,
        ..ConfigOpts::default()
    };
    let cfg = write(dir.path(), "c.toml", &config(&opts, &ctl));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    let ports = backend_ports(4);

    // An operator static route over all four backends.
    route_add(&fw, &[1, 2, 3, 4]);
    let old = {
        let reports = through_backends(&lab, &fw, dir.path(), "r1", 0, 2000, || {
            send(&lab, "198.18.0.1", VIP4, 200, 2000, &["--proto", "tcp"]);
        });
        assert_eq!(reports.iter().map(packets).sum::<u64>(), 2000);
        assert!(reports.iter().all(|r| packets(r) > 0), "{reports:?}");
        single_backend(&flow_map(&reports))
    };
    assert_eq!(old.len(), 200);

    // Backend 3 left out: it fails, and only its flows move.
    route_add(&fw, &[1, 2, 4]);
    let reply = fw.ctl_ok(&Request::Route {
        prefix: vip_prefix(),
    });
    // One detail per origin holding the prefix; only the operator route exists here.
    let route = match &reply {
        Value::Array(routes) => {
            assert_eq!(routes.len(), 1, "{reply}");
            routes[0].clone()
        }
        _ => reply.clone(),
    };
    assert_eq!(route["summary"]["origin"], "operator", "{route}");
    let states: BTreeMap<String, String> = route["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["addr"].as_str().expect("addr").to_owned(),
                m["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect();
    assert_eq!(states["198.18.3.1"], "failed", "{route}");
    let base = fw.tx_packets(&ports);
    let after_fail = {
        let reports = through_backends(&lab, &fw, dir.path(), "r2", base, 2000, || {
            send(&lab, "198.18.0.1", VIP4, 200, 2000, &["--proto", "tcp"]);
        });
        assert_eq!(reports.iter().map(packets).sum::<u64>(), 2000);
        assert_eq!(packets(&reports[2]), 0, "failed backend 3 got traffic");
        single_backend(&flow_map(&reports))
    };
    let mut moved = 0;
    for (flow, &was) in &old {
        let now = after_fail[flow];
        if was == 3 {
            assert_ne!(now, 3);
            moved += 1;
        } else {
            assert_eq!(now, was, "flow {flow} moved from backend {was} to {now}");
        }
    }
    assert!(moved > 0, "backend 3 had no flows to move");

    // Backend 2 drained: its established (cached) flows stay, new flows avoid it.
    let r = fw.ctl_ok(&Request::Drain {
        hop: ip("198.18.2.1"),
    });
    fw.wait_generation(r["generation"].as_u64().expect("generation"));
    let base = fw.tx_packets(&ports);
    let (established, fresh) = {
        let reports = through_backends(&lab, &fw, dir.path(), "r3", base, 2000, || {
            send(&lab, "198.18.0.1", VIP4, 200, 2000, &["--proto", "tcp"]);
        });
        assert_eq!(reports.iter().map(packets).sum::<u64>(), 2000);
        let established = single_backend(&flow_map(&reports));
        let base = fw.tx_packets(&ports);
        // New flows: another source address, so no 5-tuple can repeat an established one.
        let reports = through_backends(&lab, &fw, dir.path(), "r4", base, 2000, || {
            send(&lab, "198.18.0.3", VIP4, 200, 2000, &["--proto", "tcp"]);
        });
        assert_eq!(reports.iter().map(packets).sum::<u64>(), 2000);
        assert_eq!(packets(&reports[1]), 0, "drained backend 2 took new flows");
        assert_eq!(packets(&reports[2]), 0, "failed backend 3 took new flows");
        (established, single_backend(&flow_map(&reports)))
    };
    assert_eq!(
        established, after_fail,
        "established flows stay where they were"
    );
    assert!(established.values().any(|&b| b == 2), "backend 2 had flows");
    let used: BTreeSet<u32> = fresh.values().copied().collect();
    assert_eq!(
        used,
        BTreeSet::from([1, 4]),
        "new flows spread over 1 and 4"
    );

    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
}
