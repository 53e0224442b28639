//! Two AF_XDP workers (configs/lab-afxdp-2workers.toml) over a veth lab whose veths have two
//! queues (`scripts/lab up --queues 2`, needs root): each worker polls one queue of every port, both forward, each flow stays with
//! the one worker its queue belongs to, and the per-worker counters add up to the ports'.
//!
//! veth keeps the queue mapping: a frame sent on the client's tx queue q arrives on fc0's rx
//! queue q, so the generator's `--queue` plays the part of a NIC's RSS.

mod lab_common;

use std::collections::BTreeMap;

use ecmp_proto::ctl::{FlowsReply, Request};
use lab_common::*;
use serde_json::Value;

/// Flows per queue; packets per flow.
const FLOWS: u32 = 24;
const PER_FLOW: u64 = 5;

/// configs/lab-afxdp-2workers.toml with its sockets moved into `dir`.
fn shipped_config(dir: &std::path::Path) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/lab-afxdp-2workers.toml"
    );
    let text = std::fs::read_to_string(path).expect("configs/lab-afxdp-2workers.toml");
    let moved = text
        .replace(
            "/run/ecmpfwd-lab/ctl.sock",
            &dir.join("ctl.sock").display().to_string(),
        )
        .replace(
            "/run/ecmpfwd-lab/feed.sock",
            &dir.join("feed.sock").display().to_string(),
        );
    assert_ne!(moved, text, "the sockets were not where expected");
    moved
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn two_workers_each_serve_one_queue_of_every_port() {
    let backends = 4;
    let lab = Lab::up_with_queues("w2", backends, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let cfg = write(dir.path(), "c.toml", &shipped_config(dir.path()));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);

    let sinks: Vec<Sink> = (1..=backends)
        .map(|i| Sink::start(&lab.b(i), "b0", dir.path(), &format!("b{i}")))
        .collect();
    let total = 2 * u64::from(FLOWS) * PER_FLOW;
    // Different sources per queue, so the two flow sets are disjoint.
    for (queue, src) in [("0", "198.18.0.1"), ("1", "198.18.0.2")] {
        send(
            &lab,
            src,
            lab.env("LAB_VIP4"),
            FLOWS,
            u64::from(FLOWS) * PER_FLOW,
            &["--driver", "afxdp", "--queue", queue, "--proto", "udp"],
        );
    }
    fw.wait_tx(&backend_ports(backends), total);
    let reports: Vec<Value> = sinks.into_iter().map(Sink::finish).collect();
    assert_eq!(
        reports.iter().map(|r| u(&r["packets"])).sum::<u64>(),
        total,
        "{reports:?}"
    );

    let stats = fw.ctl_ok(&Request::Stats {});
    let workers = stats["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2, "{stats}");
    let ports = stats["ports"].as_array().expect("ports");
    for w in workers {
        let id = u(&w["worker"]);
        // Half the client's traffic each: one queue's flows. (The backends' stacks answer the
        // UDP with ICMP errors to the client, which the workers forward too.)
        let fc0 = ports
            .iter()
            .find(|p| p["name"] == "fc0" && u(&p["worker"]) == id)
            .expect("fc0 row");
        assert_eq!(u(&fc0["rx_packets"]), total / 2, "worker {id}: {stats}");
        assert!(u(&w["forwarded"]) >= total / 2, "worker {id}: {stats}");
        // Its ports' counters are its own share of them.
        let mine = ports.iter().filter(|p| u(&p["worker"]) == id);
        let (rx, tx): (u64, u64) = mine.fold((0, 0), |(rx, tx), p| {
            (rx + u(&p["rx_packets"]), tx + u(&p["tx_packets"]))
        });
        assert_eq!(rx, u(&w["packets"]), "worker {id}: {stats}");
        assert_eq!(tx, u(&w["forwarded"]), "worker {id}: {stats}");
    }

    // Each flow is cached by exactly one worker: the one its queue belongs to.
    let flows: FlowsReply =
        serde_json::from_value(fw.ctl_ok(&Request::Flows { top: 1000 })).expect("flows reply");
    // The VIP's flows; the backends' ICMP errors back to the client are flows too.
    let vip: std::net::IpAddr = lab.env("LAB_VIP4").parse().expect("VIP");
    let mut per_worker = [0u32; 2];
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for f in flows.flows.iter().filter(|f| f.flow.dst == vip) {
        per_worker[f.worker] += 1;
        let key = format!("{:?}", f.flow);
        if let Some(other) = owner.insert(key.clone(), f.worker) {
            panic!("flow {key} on workers {other} and {}", f.worker);
        }
        let want = usize::from(f.flow.src != "198.18.0.1".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(f.worker, want, "flow {key} from the other queue");
    }
    assert_eq!(per_worker, [FLOWS; 2], "{flows:?}");
    assert_eq!(owner.len(), 2 * FLOWS as usize);

    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
}
