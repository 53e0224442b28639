//! What a reload refuses (validation, restart keys), what it applies, and that a builder started
//! from a config and reloaded with the same file changes nothing.

use std::net::IpAddr;

use ecmp_control::builder::{Builder, BuilderConfig, StaticTables};
use ecmp_control::control::ConfigSource;
use ecmp_proto::ctl::{ReloadCounts, ReloadReply};
use ecmp_tables::nexthop::{PortId, PortInfo};

use super::*;
use crate::afxdp::bgp_policies;

const LAB: &str = include_str!("../../../../configs/lab-afxdp.toml");

fn policies(cfg: &Config) -> Result<Policies, String> {
    bgp_policies(cfg).map_err(|e| e.to_string())
}

fn parse(text: &str) -> Config {
    Config::parse(text, "lab.toml").unwrap()
}

fn edit(from: &str, to: &str) -> Config {
    assert!(LAB.contains(from), "{from:?}");
    parse(&LAB.replacen(from, to, 1))
}

#[test]
fn restart_keys_name_every_key_a_running_process_cannot_change() {
    let old = parse(LAB);
    assert!(restart_keys(&old, &old).is_empty());
    let text = LAB
        .replacen("interface = \"fb2\"", "interface = \"fb9\"", 1)
        .replacen("core = 1", "core = 2", 1)
        .replacen(
            "capacity = 65536",
            "capacity = 131072\nidle_timeout = \"10s\"",
            1,
        )
        .replacen("/run/ecmpfwd-lab/ctl.sock", "/run/other.sock", 1)
        .replacen(
            "[instance]\nname = \"lab\"",
            "[instance]\nname = \"lab2\"",
            1,
        );
    let new = parse(&text);
    // The idle timeout changed too, and is no restart key: only the capacity is named.
    assert_eq!(
        restart_keys(&old, &new),
        [
            "instance.name",
            "port[2].interface",
            "worker[0].core",
            "flow_cache.capacity",
            "control.socket",
        ]
    );
    let e = desired(&old, &new, policies).unwrap_err();
    assert_eq!(
        e,
        "lab.toml: not applied, a restart is needed to change instance.name, port[2].interface, \
         worker[0].core, flow_cache.capacity, control.socket"
    );
}

/// A file source whose timeout hook records what it was handed.
fn recording_source(
    path: &std::path::Path,
) -> (
    FileSource,
    std::sync::Arc<std::sync::Mutex<Vec<FlowTimeouts>>>,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&seen);
    let source = FileSource::new(
        Config::load(path).unwrap(),
        policies,
        Box::new(move |t| sink.lock().unwrap().push(t)),
    );
    (source, seen)
}

#[test]
fn flow_cache_timeouts_are_applied_after_the_control_thread_applied_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.toml");
    std::fs::write(&path, LAB).unwrap();
    let (mut source, seen) = recording_source(&path);
    let timeouts = LAB.replacen(
        "capacity = 65536",
        "capacity = 65536\nidle_timeout = \"2s\"\nembryonic_timeout = \"1s\"\nfin_timeout = \"1500ms\"",
        1,
    );
    std::fs::write(&path, &timeouts).unwrap();
    let d = source.load().unwrap();
    assert_eq!(
        d.settings,
        [
            "flow_cache.idle_timeout",
            "flow_cache.embryonic_timeout",
            "flow_cache.fin_timeout"
        ]
    );
    // Loaded is not applied: nothing reaches the workers until the control thread succeeded.
    assert!(seen.lock().unwrap().is_empty());
    source.finished(&Err("refused".into()), false);
    assert!(seen.lock().unwrap().is_empty());
    source.load().unwrap();
    source.finished(&Ok(reply()), false);
    let want = FlowTimeouts {
        idle_timeout_ms: 2_000,
        embryonic_timeout_ms: 1_000,
        fin_timeout_ms: 1_500,
    };
    assert_eq!(*seen.lock().unwrap(), [want]);
    // The same file again: no change, nothing handed over.
    assert!(source.load().unwrap().settings.is_empty());
    source.finished(&Ok(reply()), false);
    assert_eq!(seen.lock().unwrap().len(), 1);

    // With the capacity changed as well, the whole file is refused, naming the capacity only.
    let both = timeouts
        .replacen("capacity = 65536", "capacity = 131072", 1)
        .replacen("idle_timeout = \"2s\"", "idle_timeout = \"3s\"", 1);
    std::fs::write(&path, both).unwrap();
    let e = source.load().unwrap_err();
    assert!(
        e.ends_with("not applied, a restart is needed to change flow_cache.capacity"),
        "{e}"
    );
    source.finished(&Err(e), false);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn timeouts_the_caches_would_refuse_are_refused_by_the_reload() {
    let old = parse(LAB);
    // 1200 hours (50 days): over the cache's 2^32 ms bound, which the file's own checks do not
    // know.
    let new = edit(
        "capacity = 65536",
        "capacity = 65536\nidle_timeout = \"1200h\"",
    );
    let e = desired(&old, &new, policies).unwrap_err();
    assert!(e.starts_with("lab.toml: flow cache idle_timeout_ms"), "{e}");
}

#[test]
fn table_and_timing_edits_are_applied_and_shifted_lines_are_no_change() {
    let old = parse(LAB);
    // A next hop added near the top shifts every later line: only the hop is new.
    let new = edit(
        "[[nexthop]]\nname = \"b1\"",
        "[[nexthop]]\nname = \"b5\"\naddress = \"198.18.4.5\"\nport = \"fb4\"\n\n[[nexthop]]\nname = \"b1\"",
    );
    let d = desired(&old, &new, policies).unwrap();
    assert!(d.settings.is_empty(), "{:?}", d.settings);
    assert_eq!(d.tables.hops.len(), 11);
    assert_eq!(d.tables.hops[0].name, "b5");
    let timing = edit(
        "[feed]\nsocket = \"/run/ecmpfwd-lab/feed.sock\"",
        "[feed]\nstale_time = \"30s\"\nsocket = \"/run/ecmpfwd-lab/feed.sock\"",
    );
    let d = desired(&old, &timing, policies).unwrap();
    assert_eq!(d.settings, ["feed.stale_time"]);
    assert_eq!(d.rib.stale_time, std::time::Duration::from_secs(30));
    let bgp = edit("buckets = 256", "buckets = 512");
    assert_eq!(desired(&old, &bgp, policies).unwrap().settings, ["bgp"]);
}

fn reply() -> ReloadReply {
    ReloadReply {
        nexthops: ReloadCounts::default(),
        groups: ReloadCounts::default(),
        routes: ReloadCounts::default(),
        settings: Vec::new(),
        published: false,
        generation: 1,
    }
}

#[test]
fn the_file_source_refuses_an_invalid_file_with_the_check_message_and_commits_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.toml");
    std::fs::write(&path, LAB).unwrap();
    let (mut source, _) = recording_source(&path);
    // A reference to a hop that does not exist: the same `file:line: key` as `ecmpfwd check`.
    std::fs::write(&path, LAB.replacen("\"b1\", \"b2\"", "\"b1\", \"b9\"", 1)).unwrap();
    let check = Config::load(&path).unwrap_err().to_string();
    assert!(
        check.ends_with(":104: group[0].members[1]: unknown next hop \"b9\""),
        "{check}"
    );
    assert_eq!(source.load().unwrap_err(), check);
    source.finished(&Err(check), false);
    // Applied: the running config is the new file, so loading it again changes nothing.
    let timing = LAB.replacen(
        "mode = 0o660\n\n# Groups",
        "mode = 0o660\nstale_time = \"5s\"\n\n# Groups",
        1,
    );
    std::fs::write(&path, timing).unwrap();
    assert_eq!(source.load().unwrap().settings, ["feed.stale_time"]);
    // Not applied (the control thread refused): the running config stays the old one.
    source.finished(&Err("refused".into()), true);
    assert_eq!(source.load().unwrap().settings, ["feed.stale_time"]);
    source.finished(&Ok(reply()), true);
    assert!(source.load().unwrap().settings.is_empty());
}

fn resolve_none(_: IpAddr) -> Option<(PortId, [u8; 6])> {
    None
}

#[test]
fn a_builder_started_from_a_config_reloads_the_same_file_without_change() {
    let cfg = parse(LAB);
    // As `afxdp::builder` builds it, without the interfaces.
    let tables = setup::build(&cfg).unwrap();
    let statics = StaticTables {
        hops: tables.snapshot.hops.iter().skip(1).copied().collect(),
        groups: tables.groups.clone(),
        routes: config_tables(&cfg, policies(&cfg).unwrap())
            .unwrap()
            .routes
            .iter()
            .map(|&(p, g)| (p, g as u32 + 1))
            .collect(),
        hop_names: tables.hop_names.clone(),
        hop_states: cfg.nexthops.iter().map(|h| h.state.into()).collect(),
        group_names: tables.group_names.clone(),
    };
    let (policies_list, default_policy) = policies(&cfg).unwrap();
    let bc = BuilderConfig {
        policies: policies_list,
        default_policy,
        ports: vec![
            PortInfo {
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 1500
            };
            cfg.ports.len()
        ],
        seed: cfg.instance.seed,
        max_tbl8: cfg.fib.max_tbl8 as usize,
        statics,
    };
    let mut b = Builder::new(bc, resolve_none as fn(IpAddr) -> _).unwrap();
    let d = desired(&cfg, &cfg, policies).unwrap();
    let s = b.reload(&d.tables).unwrap();
    assert_eq!(
        (s.hops, s.groups, s.routes),
        Default::default(),
        "ids, groups and routes as at start"
    );
    assert!(s.snapshot.is_none());
    // One hop more in "vip": only that group changes.
    let more = edit(
        "members = [\"b1\", \"b2\", \"b3\", \"b4\"]",
        "members = [\"b1\", \"b2\", \"b3\", \"b4\", \"client\"]",
    );
    let d = desired(&cfg, &more, policies).unwrap();
    let s = b.reload(&d.tables).unwrap();
    assert_eq!(s.groups.changed, 1);
    assert_eq!((s.hops, s.routes), Default::default());
}

#[test]
fn announcements_need_a_restart_and_do_not_count_as_a_bgp_policy_change() {
    let old = parse(LAB);
    let new = parse(&format!(
        "{}\n[[bgp.announce]]\nprefix = \"198.19.0.1/32\"\nnext_hop = \"self\"\n",
        LAB.replacen("[bgp]\n", "[bgp]\nannounce_grace = \"5s\"\n", 1)
    ));
    assert_eq!(new.announce.entries.len(), 1);
    assert_eq!(restart_keys(&old, &new), ["bgp.announce"]);
    assert!(desired(&old, &new, policies).is_err());
    // The same entries on other lines are no change.
    let shifted = parse(&LAB.replacen("[bgp]\n", "[bgp]\n\n\n", 1));
    assert!(restart_keys(&old, &shifted).is_empty());
}
