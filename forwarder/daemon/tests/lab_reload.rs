//! `ecmpctl reload` and SIGHUP over the veth lab (`scripts/lab`, needs root): established flows
//! stay on their backends across a reload that adds a backend to their group and changes a
//! timeout, new flows use the added backend, a restart-needing edit and an invalid file are
//! refused naming the key and change nothing, and SIGHUP reloads like the command does. A reload
//! of the flow cache's timeouts takes effect in the running workers: new flows, and old flows
//! from their next packet, expire by the new idle timeout, while a capacity change is refused.

mod lab_common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use ecmp_proto::ctl::Request;
use lab_common::*;
use serde_json::Value;

fn ecmpctl_run(ctl: &Path, args: &[&str]) -> Output {
    std::process::Command::new(ecmpctl())
        .arg("--socket")
        .arg(ctl)
        .args(["--timeout", "10"])
        .args(args)
        .output()
        .expect("run ecmpctl")
}

fn generation(fw: &Forwarder) -> u64 {
    let stats = fw.ctl_ok(&Request::Stats {});
    stats["workers"][0]["generation"]
        .as_u64()
        .expect("generation")
}

fn cached_flows(fw: &Forwarder) -> u64 {
    fw.ctl_ok(&Request::Flows { top: 0 })["total"]
        .as_u64()
        .expect("total")
}

/// The lab config with backends 1..3 in the VIP group, and a feed socket with `stale`.
fn lab_config(dir: &Path, ctl: &Path, stale: &str) -> String {
    let opts = ConfigOpts {
        vip_members: Some(vec![1, 2, 3]),
        ..ConfigOpts::default()
    };
    format!(
        "{}\n[feed]\nsocket = \"{}\"\nstale_time = \"{stale}\"\n",
        config(&opts, ctl),
        dir.join("feed.sock").display()
    )
}

#[test]
fn reload_keeps_cached_flows_applies_table_and_timeout_edits_and_refuses_restart_keys() {
    let lab = Lab::up("lrl", 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let cfg = write(dir.path(), "c.toml", &lab_config(dir.path(), &ctl, "0s"));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    let ports = backend_ports(4);

    // Established flows over backends 1..3.
    let send_old = || {
        send(&lab, "198.18.0.1", VIP4, 200, 2000, &["--proto", "tcp"]);
    };
    let old = {
        let reports = through_backends(&lab, &fw, dir.path(), "r1", 0, 2000, send_old);
        assert_eq!(packets(&reports[3]), 0, "backend 4 is not a member yet");
        single_backend(&flow_map(&reports))
    };
    assert_eq!(old.len(), 200);
    let cached = cached_flows(&fw);
    assert!(cached >= 200, "flows are cached: {cached}");

    // Backend 4 joins the VIP group, the feed's stale time changes.
    let text = lab_config(dir.path(), &ctl, "30s").replacen(
        "members = [\"b1\", \"b2\", \"b3\"]",
        "members = [\"b1\", \"b2\", \"b3\", \"b4\"]",
        1,
    );
    write(dir.path(), "c.toml", &text);
    let out = ecmpctl_run(&ctl, &["--json", "reload"]);
    assert!(out.status.success(), "{out:?}\n{}", fw.log());
    let reply: Value = serde_json::from_slice(&out.stdout).expect("JSON reply");
    let r = &reply["result"];
    assert_eq!(r["groups"]["changed"], 1, "{reply}");
    assert_eq!(r["nexthops"]["changed"], 0, "{reply}");
    assert_eq!(r["routes"]["changed"], 0, "{reply}");
    assert_eq!(
        r["settings"],
        serde_json::json!(["feed.stale_time"]),
        "{reply}"
    );
    assert_eq!(r["published"], true, "{reply}");
    fw.wait_generation(r["generation"].as_u64().expect("generation"));

    // The same flows again: every one on its backend, none on the new one.
    let base = fw.tx_packets(&ports);
    let again = {
        let reports = through_backends(&lab, &fw, dir.path(), "r2", base, 2000, send_old);
        single_backend(&flow_map(&reports))
    };
    assert_eq!(again, old, "established flows stay where they were");
    // New flows (another source, so no 5-tuple repeats): backend 4 takes some.
    let base = fw.tx_packets(&ports);
    let reports = through_backends(&lab, &fw, dir.path(), "r3", base, 2000, || {
        send(&lab, "198.18.0.3", VIP4, 200, 2000, &["--proto", "tcp"]);
    });
    assert!(
        packets(&reports[3]) > 0,
        "the new backend is in use: {reports:?}"
    );

    // Edits only a restart can apply: refused, naming every key, and nothing changes.
    let before = generation(&fw);
    let restart = text
        .replacen("capacity = 65536", "capacity = 131072", 1)
        .replacen("mode = \"driver\"\n", "mode = \"generic\"\n", 1)
        .replacen(
            "members = [\"b1\", \"b2\", \"b3\", \"b4\"]",
            "members = [\"b1\", \"b2\"]",
            1,
        );
    write(dir.path(), "c.toml", &restart);
    let out = ecmpctl_run(&ctl, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a restart is needed to change port[0].mode, flow_cache.capacity"),
        "{err}"
    );
    // An invalid file: the same message as `ecmpfwd check`, nothing applied.
    let invalid = text.replacen("[\"b1\", \"b2\", \"b3\", \"b4\"]", "[\"b1\", \"b9\"]", 1);
    write(dir.path(), "c.toml", &invalid);
    let out = ecmpctl_run(&ctl, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let check = std::process::Command::new(ECMPFWD)
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("ecmpfwd check");
    let check_err = String::from_utf8_lossy(&check.stderr);
    let message = err.trim().trim_start_matches("ecmpctl: ");
    assert!(message.contains("unknown next hop \"b9\""), "{err}");
    assert!(
        check_err.contains(message),
        "check says {check_err}, reload {err}"
    );
    assert_eq!(
        generation(&fw),
        before,
        "a refused reload publishes nothing"
    );
    let routes = fw.ctl_ok(&Request::Routes {});
    let vip = routes
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["prefix"] == format!("{VIP4}/32"))
        .expect("the VIP route")
        .clone();
    assert_eq!(vip["active"], 4, "{vip}");

    // SIGHUP: backend 4 leaves again; only its flows move.
    write(dir.path(), "c.toml", &lab_config(dir.path(), &ctl, "30s"));
    signal(fw.pid(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fw.log().contains("reload (SIGHUP)") {
        assert!(Instant::now() < deadline, "no reload logged:\n{}", fw.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = fw.log();
    assert!(
        log.contains("groups +0 -0 ~1"),
        "the SIGHUP reload changed the VIP group:\n{log}"
    );
    fw.wait_generation(before + 1);
    let base = fw.tx_packets(&ports);
    let after = {
        let reports = through_backends(&lab, &fw, dir.path(), "r4", base, 2000, send_old);
        assert_eq!(packets(&reports[3]), 0, "backend 4 left the group");
        single_backend(&flow_map(&reports))
    };
    assert_eq!(after, old, "the old flows never were on backend 4");
    let stopped = fw.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
}

/// Waits (at most `limit`) until at most `most` flows are cached.
fn flows_expire_to(fw: &Forwarder, most: u64, limit: Duration) {
    let t = Instant::now();
    loop {
        let n = cached_flows(fw);
        if n <= most {
            return;
        }
        assert!(
            t.elapsed() < limit,
            "{n} flows still cached after {limit:?}:\n{}",
            fw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until at least `least` flows are cached.
fn flows_cached(fw: &Forwarder, least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = cached_flows(fw);
        if n >= least {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {least} flows cached"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn reload_applies_flow_cache_timeouts_live_and_refuses_a_capacity_change() {
    let lab = Lab::up("lrt", 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let text = lab_config(dir.path(), &ctl, "0s");
    let cfg = write(dir.path(), "c.toml", &text);
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    let udp = ["--proto", "udp"];

    // 100 flows under the default 300 s idle timeout.
    send(&lab, "198.18.0.1", VIP4, 100, 200, &udp);
    let old = flows_cached(&fw, 100);

    // Shorter timeouts (the embryonic and FIN ones may not exceed the idle one).
    let short = text.replacen(
        "capacity = 65536",
        "capacity = 65536\nidle_timeout = \"2s\"\nembryonic_timeout = \"1s\"\nfin_timeout = \"1s\"",
        1,
    );
    write(dir.path(), "c.toml", &short);
    let out = ecmpctl_run(&ctl, &["--json", "reload"]);
    assert!(out.status.success(), "{out:?}\n{}", fw.log());
    let reply: Value = serde_json::from_slice(&out.stdout).expect("JSON reply");
    assert_eq!(
        reply["result"]["settings"],
        serde_json::json!([
            "flow_cache.idle_timeout",
            "flow_cache.embryonic_timeout",
            "flow_cache.fin_timeout"
        ]),
        "{reply}"
    );

    // New flows expire by the new idle timeout (2 s, plus a 32 ms grain); the old ones keep the
    // expiry their last packet gave them.
    send(&lab, "198.18.0.3", VIP4, 100, 200, &udp);
    let sent = Instant::now();
    flows_cached(&fw, old + 100);
    // Within 10 s: under the old 300 s timeout they would still be cached.
    flows_expire_to(&fw, old, Duration::from_secs(10));
    let since_sent = sent.elapsed();
    assert!(
        since_sent >= Duration::from_millis(1_900),
        "new flows expired {since_sent:?} after their last packet"
    );
    assert!(
        cached_flows(&fw) >= 100,
        "the flows cached before the reload are still there"
    );
    // The old flows' next packet sets their expiry from the new timeout too.
    send(&lab, "198.18.0.1", VIP4, 100, 200, &udp);
    let resent = Instant::now();
    flows_expire_to(&fw, old - 100, Duration::from_secs(10));
    assert!(resent.elapsed() >= Duration::from_millis(1_900));

    // A capacity change with another timeout change: refused, naming the capacity only, and the
    // timeouts stay as applied (new flows still expire within seconds, not the hour asked for).
    let refused = short
        .replacen("capacity = 65536", "capacity = 131072", 1)
        .replacen("idle_timeout = \"2s\"", "idle_timeout = \"1h\"", 1);
    write(dir.path(), "c.toml", &refused);
    let out = ecmpctl_run(&ctl, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim_end()
            .ends_with("a restart is needed to change flow_cache.capacity"),
        "{err}"
    );
    let before = cached_flows(&fw);
    send(&lab, "198.18.0.5", VIP4, 100, 200, &udp);
    flows_cached(&fw, before + 100);
    flows_expire_to(&fw, before, Duration::from_secs(10));

    let stopped = fw.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
}
