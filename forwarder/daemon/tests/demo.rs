//! `ecmpfwd demo` as a library call: every claim it prints holds on the example configs and on
//! each group mode, and the numbers behind the claims say what the claims say.

use std::path::Path;

use ecmpfwd::config::Config;
use ecmpfwd::demo::{self, DemoError, DemoOptions, DemoReport};

fn load(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(name);
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn opts(flows: usize) -> DemoOptions {
    DemoOptions {
        flows,
        ..DemoOptions::default()
    }
}

fn run(cfg: &Config, o: &DemoOptions) -> DemoReport {
    let report = demo::run(cfg, o).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.passed(), "{}", report.render());
    report
}

/// The anycast config with its group's mode replaced.
fn anycast_in_mode(mode: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/anycast-vip.toml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
    let text = text.replace("mode = \"auto-recovery\"", &format!("mode = \"{mode}\""));
    Config::parse(&text, &format!("anycast-{mode}.toml")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn seed_scenario_every_claim_holds_and_only_the_failed_hops_flows_move() {
    let cfg = load("anycast-vip.toml");
    let r = run(&cfg, &opts(2000));
    let f = &r.facts;
    assert_eq!((f.failed.as_str(), f.drained.as_str()), ("srv3", "srv5"));
    assert_eq!(
        (r.mode, r.buckets, r.route.as_str()),
        ("auto-recovery", 4096, "192.0.2.10/32")
    );
    assert_eq!(r.steps.len(), 5);
    assert_eq!(r.checks().count(), 17);

    // Step 1: the flows spread over all eight, srv8 (weight 2) taking about twice the others.
    let base = &r.steps[0].spread;
    assert_eq!(base.len(), 8);
    assert_eq!(base.iter().map(|h| h.flows).sum::<usize>(), 2000);
    assert_eq!(base.iter().map(|h| h.buckets).sum::<usize>(), 4096);
    let srv8 = base.iter().find(|h| h.hop == "srv8").unwrap();
    // Weight 2 of 9: 910.2 buckets, rounded up as the largest remainder.
    assert_eq!((srv8.weight, srv8.buckets), (2, 911));
    assert!(base.iter().all(|h| h.flows > 0));

    // Step 2: exactly the failed hop's flows moved, and hash % n would have moved most.
    assert!(f.failed_hop_flows > 0);
    assert_eq!(f.moved_on_failure, f.failed_hop_flows);
    assert_eq!(f.moved_from_others, 0);
    assert!(f.modulo_moved > 2000 * 3 / 4, "{}", f.modulo_moved);
    assert_eq!(f.buckets_moved_on_failure, f.failed_hop_buckets);
    assert_eq!(f.cold_forwarder_disagreements, 0);
    let after = &r.steps[1].spread;
    let gained: usize = after.iter().filter_map(|h| h.gained).sum();
    assert_eq!(gained, f.failed_hop_flows);
    let srv3 = after.iter().find(|h| h.hop == "srv3").unwrap();
    assert_eq!((srv3.state, srv3.buckets, srv3.flows), ("failed", 0, 0));
    // Every survivor took some of srv3's flows: they were spread, not dumped on one hop.
    assert!(
        after
            .iter()
            .filter(|h| h.hop != "srv3")
            .all(|h| h.gained > Some(0))
    );

    // Step 3: the draining hop keeps its flows, takes no new ones.
    assert!(f.drained_hop_flows > 0);
    assert_eq!((f.moved_on_drain, f.new_flows_to_unavailable), (0, 0));
    let srv5 = r.steps[2].spread.iter().find(|h| h.hop == "srv5").unwrap();
    assert_eq!((srv5.state, srv5.buckets, srv5.flows), ("draining", 0, 0));

    // Step 4: srv3 gets its own buckets back, plus buckets no flow had used (2000 flows leave
    // some of the 4096 unused; `run` checked that each extra one was); established flows stay
    // put.
    assert!(f.returned_hop_buckets >= f.failed_hop_buckets);
    assert_eq!(f.moved_on_return, 0);
    assert!(f.new_flows_to_returned > 0);

    // Step 5: 2 + 1 + (1 + 2) + (2 + 2) packets per flow of a round, none dropped.
    assert_eq!((f.rx_packets, f.drops), (10 * 2000, 0));
    assert_eq!(r.counters["flow_cache_misses"], 3 * 2000);
    assert_eq!(r.counters["flow_repicks"], f.failed_hop_flows as u64);
}

#[test]
fn the_same_seed_prints_the_same_report() {
    let cfg = load("anycast-vip.toml");
    let a = run(&cfg, &opts(500)).render();
    let b = run(&cfg, &opts(500)).render();
    assert_eq!(a, b);
    assert!(a.contains("OK    only the failed hop's"), "{a}");
    assert!(a.ends_with("claims hold\n"), "{a}");
    // The tables are aligned: every row of a table has the same width up to its bar.
    let rows: Vec<&str> = a
        .lines()
        .filter(|l| l.starts_with("   srv") && l.contains('%'))
        .collect();
    assert_eq!(rows.len(), 4 * 8);
    let width = |l: &str| l.find('%').unwrap();
    assert!(rows.iter().all(|l| width(l) == width(rows[0])), "{a}");
}

#[test]
fn chosen_hops_and_json_round_trip() {
    let cfg = load("anycast-vip.toml");
    let o = DemoOptions {
        flows: 800,
        fail: Some("srv8".into()),
        drain: Some("srv1".into()),
        seed: 7,
    };
    let r = run(&cfg, &o);
    assert_eq!(
        (r.facts.failed.as_str(), r.facts.failed_hop_buckets),
        ("srv8", 911)
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["facts"]["drained"], "srv1");
    assert_eq!(json["steps"].as_array().unwrap().len(), 5);
    assert!(
        json["steps"][1]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
}

#[test]
fn tunnels_are_told_apart_by_their_outer_address() {
    // encap.toml: IP-in-IP, GRE and VXLAN hops; frames are attributed through the tunnel.
    let r = run(&load("encap.toml"), &opts(600));
    assert_eq!(r.group, "tunnels-v4");
    assert_eq!(r.facts.drops, 0);
    assert_eq!(r.facts.moved_from_others, 0);
}

#[test]
fn every_group_mode_keeps_its_promises() {
    // Manual: a returning hop waits for `clear`.
    let r = run(&anycast_in_mode("manual"), &opts(1000));
    assert_eq!(
        (r.facts.returned_hop_buckets, r.facts.new_flows_to_returned),
        (0, 0)
    );
    assert_eq!(r.facts.moved_on_return, 0);

    // Idle: busy buckets come back only through upkeep; at once only buckets no flow had used
    // (1000 flows leave most of the 4096 unused; `run` checked every claim).
    let r = run(&anycast_in_mode("idle"), &opts(1000));
    assert_eq!(r.mode, "idle");
    assert!(r.facts.returned_hop_buckets > 0);
    assert_eq!(r.facts.moved_on_return, 0);

    // Rendezvous: a failed hop moves exactly its buckets and gets them all back (with those of
    // the draining hop it ranks first on among the active ones).
    let r = run(&anycast_in_mode("rendezvous"), &opts(1000));
    assert_eq!(r.mode, "rendezvous");
    assert_eq!(r.facts.moved_from_others, 0);
    assert!(r.facts.returned_hop_buckets >= r.facts.failed_hop_buckets);

    // Maglev: the table is recomputed, so a cold forwarder differs on exactly the flows in
    // buckets moved between survivors, while the warm one still moves only the failed hop's.
    let r = run(&anycast_in_mode("maglev"), &opts(1000));
    let f = &r.facts;
    assert_eq!(f.moved_on_failure, f.failed_hop_flows);
    assert_eq!(f.cold_forwarder_disagreements, f.cold_forwarder_expected);
    assert!(f.buckets_moved_on_failure >= f.failed_hop_buckets);
}

#[test]
fn the_demo_refuses_what_it_cannot_show() {
    let minimal = load("minimal.toml");
    assert!(matches!(
        demo::run(&minimal, &opts(10)),
        Err(DemoError::NoRoute { .. })
    ));
    let cfg = load("anycast-vip.toml");
    assert!(matches!(
        demo::run(&cfg, &opts(0)),
        Err(DemoError::Flows { .. })
    ));
    let unknown = DemoOptions {
        fail: Some("srv9".into()),
        ..opts(10)
    };
    assert!(matches!(
        demo::run(&cfg, &unknown),
        Err(DemoError::NotMember { .. })
    ));
    let same = DemoOptions {
        fail: Some("srv2".into()),
        drain: Some("srv2".into()),
        ..opts(10)
    };
    assert!(matches!(demo::run(&cfg, &same), Err(DemoError::SameHop(_))));
}
