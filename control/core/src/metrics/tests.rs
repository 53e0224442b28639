//! The exposition: names, types and units by the conventions, a known snapshot rendered to the
//! expected lines, and Debian's `promtool check metrics` on the real output (a missing promtool
//! fails the test: scripts/test installs it).

use ecmp_proto::ctl::{
    HopCounters, PortCounters, StatsReply, TableBacking, UmemFrames, WorkerCounters,
};

use crate::control::FeedStats;

use super::*;

fn known() -> MetricsSnapshot {
    MetricsSnapshot {
        stats: StatsReply {
            uptime_s: 12.5,
            tsc_hz: Some(2e9),
            ports: vec![PortCounters {
                name: "fw0".to_owned(),
                worker: 0,
                rx_packets: 100,
                rx_bytes: 6400,
                tx_packets: 97,
                tx_bytes: 6208,
                tx_refused: 1,
                rx_pps: 10.0,
                tx_pps: 9.0,
            }],
            workers: vec![WorkerCounters {
                worker: 0,
                cpu: Some(1),
                packets: 100,
                forwarded: 97,
                dropped: 3,
                cache_hits: 90,
                cache_misses: 10,
                generation: 4,
                pps: 10.0,
                polls: 1000,
                busy_polls: 40,
                busy_cycles: 3_000_000_000,
                bursts: 41,
                flow_inserts: 9,
                flow_evictions: 2,
                flows_not_cached: 1,
                flow_repicks: 0,
                flow_entries: 7,
                umem: Some(UmemFrames {
                    frames: 4096,
                    outstanding: 2100,
                    kernel_held: 2048,
                    in_worker: 52,
                }),
            }],
            drops: vec![("no_route".to_owned(), 3)],
            hops: vec![HopCounters {
                hop: 1,
                addr: "198.51.100.1".parse().unwrap(),
                packets: 97,
                pps: 9.0,
            }],
            feed: Vec::new(),
            memory: vec![TableBacking {
                name: "flow cache buckets".to_owned(),
                worker: Some(0),
                bytes: 4096,
                backing: "4k".to_owned(),
                huge_bytes: 0,
            }],
            announce: Vec::new(),
            devices: Vec::new(),
        },
        feed: FeedStats {
            lines: 5,
            publishes: 4,
            paths: 3,
            prefixes: 1,
            ..FeedStats::default()
        },
        nexthops: vec![NexthopSummary {
            hop: 1,
            addr: "198.51.100.1".parse().unwrap(),
            port: "fw1".to_owned(),
            mac: "02:00:00:00:01:01".to_owned(),
            resolved: true,
            action: "Rewrite".to_owned(),
            groups: 1,
            configured: false,
            drained: false,
        }],
        peers: vec![PeerLine {
            peer: "127.0.0.2".parse().unwrap(),
            asn: Some(65001),
            state: "up".to_owned(),
            paths: 3,
            stale: 0,
            last_down_reason: None,
        }],
        bucket_moves: vec![crate::builder::GroupMoves {
            group: 1,
            prefix: Some("192.0.2.10/32".parse().unwrap()),
            moves: 21,
        }],
        routes: 1,
        generation: 4,
        applied_generation: Some(4),
        convergence: SecondsHistogram {
            sum: 0.0012,
            count: 2,
            buckets: CONVERGENCE_BOUNDS
                .iter()
                .map(|&b| (b, u64::from(b >= 0.0005) + u64::from(b >= 0.001)))
                .collect(),
        },
        announce: vec![
            ecmp_proto::ctl::AnnounceLine {
                prefix: "192.0.2.10/32".parse().unwrap(),
                next_hop: "self".to_owned(),
                announced: true,
                reason: None,
                since_s: 30.0,
                command: "announce route 192.0.2.10/32 next-hop self".to_owned(),
            },
            ecmp_proto::ctl::AnnounceLine {
                prefix: "192.0.2.20/32".parse().unwrap(),
                next_hop: "self".to_owned(),
                announced: false,
                reason: Some(ecmp_proto::ctl::WithdrawReason::WorkersStalled {
                    worker: 1,
                    stalled_ms: 1500,
                }),
                since_s: 2.5,
                command: "withdraw route 192.0.2.20/32 next-hop self".to_owned(),
            },
        ],
    }
}

#[test]
fn names_types_and_units_follow_the_conventions() {
    let mut seen = std::collections::BTreeSet::new();
    for d in METRICS {
        assert!(seen.insert(d.name), "{} listed twice", d.name);
        assert!(d.name.starts_with("ecmpfwd_"), "{}", d.name);
        assert!(
            d.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{}",
            d.name
        );
        assert_eq!(
            d.kind == "counter",
            d.name.ends_with("_total"),
            "{}",
            d.name
        );
        assert!(
            ["counter", "gauge", "histogram"].contains(&d.kind),
            "{}",
            d.name
        );
        // Base units only: seconds and bytes, never milli- or kilo- anything.
        for bad in ["_ms", "_us", "_millis", "_kb", "_mb", "_percent", "_ratio"] {
            assert!(!d.name.contains(bad), "{}: not a base unit", d.name);
        }
        assert!(!d.help.is_empty() && d.help.ends_with('.'), "{}", d.name);
        assert!(d.labels.iter().all(|l| *l != "le"), "{}", d.name);
    }
}

#[test]
fn a_known_snapshot_renders_to_the_expected_lines() {
    let text = render(&known()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for want in [
        "# HELP ecmpfwd_uptime_seconds Seconds since the daemon started.",
        "# TYPE ecmpfwd_uptime_seconds gauge",
        "ecmpfwd_uptime_seconds 12.5",
        "# TYPE ecmpfwd_port_rx_packets_total counter",
        r#"ecmpfwd_port_rx_packets_total{port="fw0",worker="0"} 100"#,
        r#"ecmpfwd_port_rx_bytes_total{port="fw0",worker="0"} 6400"#,
        r#"ecmpfwd_port_tx_packets_total{port="fw0",worker="0"} 97"#,
        r#"ecmpfwd_port_tx_bytes_total{port="fw0",worker="0"} 6208"#,
        r#"ecmpfwd_port_tx_refused_total{port="fw0",worker="0"} 1"#,
        r#"ecmpfwd_worker_forwarded_packets_total{worker="0"} 97"#,
        r#"ecmpfwd_worker_polls_total{worker="0"} 1000"#,
        r#"ecmpfwd_worker_busy_polls_total{worker="0"} 40"#,
        r#"ecmpfwd_worker_bursts_total{worker="0"} 41"#,
        // 3e9 cycles at 2 GHz.
        r#"ecmpfwd_worker_busy_seconds_total{worker="0"} 1.5"#,
        r#"ecmpfwd_worker_table_generation{worker="0"} 4"#,
        r#"ecmpfwd_flow_cache_hits_total{worker="0"} 90"#,
        r#"ecmpfwd_flow_cache_inserts_total{worker="0"} 9"#,
        r#"ecmpfwd_flow_cache_evictions_total{worker="0"} 2"#,
        r#"ecmpfwd_flow_cache_entries{worker="0"} 7"#,
        r#"ecmpfwd_umem_frames{worker="0",where="free"} 1996"#,
        r#"ecmpfwd_umem_frames{worker="0",where="kernel"} 2048"#,
        r#"ecmpfwd_umem_frames{worker="0",where="worker"} 52"#,
        r#"ecmpfwd_umem_frames{worker="0",where="unaccounted"} 0"#,
        r#"ecmpfwd_drops_total{reason="no_route"} 3"#,
        r#"ecmpfwd_table_memory_bytes{table="flow cache buckets",worker="0",backing="4k"} 4096"#,
        r#"ecmpfwd_nexthop_resolved{hop="1",addr="198.51.100.1",port="fw1"} 1"#,
        r#"ecmpfwd_nexthop_drained{hop="1",addr="198.51.100.1",port="fw1"} 0"#,
        r#"ecmpfwd_nexthop_packets_total{hop="1",addr="198.51.100.1",port="fw1"} 97"#,
        r#"ecmpfwd_feed_peer_up{peer="127.0.0.2",state="connected"} 0"#,
        r#"ecmpfwd_feed_peer_up{peer="127.0.0.2",state="up"} 1"#,
        r#"ecmpfwd_feed_peer_up{peer="127.0.0.2",state="down"} 0"#,
        r#"ecmpfwd_feed_peer_paths{peer="127.0.0.2"} 3"#,
        r#"ecmpfwd_group_bucket_moves_total{group="1",prefix="192.0.2.10/32"} 21"#,
        "ecmpfwd_feed_lines_total 5",
        "ecmpfwd_table_publishes_total 4",
        "ecmpfwd_rib_prefixes 1",
        "ecmpfwd_routes 1",
        "ecmpfwd_table_generation 4",
        "ecmpfwd_table_applied_generation 4",
        "# TYPE ecmpfwd_convergence_seconds histogram",
        r#"ecmpfwd_convergence_seconds_bucket{le="0.00025"} 0"#,
        r#"ecmpfwd_convergence_seconds_bucket{le="0.0005"} 1"#,
        r#"ecmpfwd_convergence_seconds_bucket{le="0.001"} 2"#,
        r#"ecmpfwd_convergence_seconds_bucket{le="+Inf"} 2"#,
        "ecmpfwd_convergence_seconds_sum 0.0012",
        "ecmpfwd_convergence_seconds_count 2",
        r#"ecmpfwd_announce_state{prefix="192.0.2.10/32",state="announced"} 1"#,
        r#"ecmpfwd_announce_state{prefix="192.0.2.10/32",state="no-active-hop"} 0"#,
        r#"ecmpfwd_announce_state{prefix="192.0.2.20/32",state="announced"} 0"#,
        r#"ecmpfwd_announce_state{prefix="192.0.2.20/32",state="workers-stalled"} 1"#,
        r#"ecmpfwd_announce_state_seconds{prefix="192.0.2.10/32"} 30"#,
        r#"ecmpfwd_announce_state_seconds{prefix="192.0.2.20/32"} 2.5"#,
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{text}");
    }
    // Every family of the table has series in this snapshot, each with its HELP and TYPE.
    for d in METRICS {
        assert!(
            lines.contains(&format!("# TYPE {} {}", d.name, d.kind).as_str()),
            "no {} in\n{text}",
            d.name
        );
    }
}

#[test]
fn families_without_series_are_left_out_and_label_values_are_escaped() {
    let mut s = known();
    s.stats.ports.clear();
    s.stats.drops.clear();
    s.peers.clear();
    s.bucket_moves.clear();
    s.applied_generation = None;
    s.announce.clear();
    s.nexthops[0].port = "a\"b\\c\nd".to_owned();
    let text = render(&s).unwrap();
    for gone in [
        "ecmpfwd_port_rx_packets_total",
        "ecmpfwd_drops_total",
        "ecmpfwd_feed_peer_up",
        "ecmpfwd_group_bucket_moves_total",
        "ecmpfwd_table_applied_generation",
        "ecmpfwd_announce_state",
    ] {
        assert!(!text.contains(gone), "{gone} still in\n{text}");
    }
    assert!(
        text.contains(r#"ecmpfwd_nexthop_groups{hop="1",addr="198.51.100.1",port="a\"b\\c\nd"} 1"#),
        "{text}"
    );
}

pub(crate) use ecmp_testkit::promtool::check_metrics as promtool_check;

#[test]
fn promtool_accepts_the_exposition() {
    let text = render(&known()).unwrap();
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics: {said}\n{text}");
    // And it does reject what breaks the conventions, so the pass above means something.
    let bad = "# HELP x_count_ms A counter without _total, in ms.\n# TYPE x_count_ms counter\nx_count_ms 1\n";
    assert!(!promtool_check(bad).0, "promtool accepted a bad family");
}

#[test]
fn the_readme_lists_every_family_as_the_table_says() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `ecmpfwd_"))
        .collect();
    for d in METRICS {
        let labels: Vec<String> = d.labels.iter().map(|l| format!("`{l}`")).collect();
        let labels = if labels.is_empty() {
            "-".to_owned()
        } else {
            labels.join(", ")
        };
        let row = format!("| `{}` | {} | {labels} | {} |", d.name, d.kind, d.help);
        assert!(rows.contains(&row.as_str()), "README.md lacks:\n{row}");
    }
    assert_eq!(
        rows.len(),
        METRICS.len(),
        "README.md lists families render does not make"
    );
}
