//! How `ecmpfwd run` fails and stops on a real veth lab (`scripts/lab`, needs root): start-up
//! errors name the port, exit non-zero and do not hang; zero-copy falls back to copy mode on
//! veth; SIGTERM stops it quickly with nothing left attached; a second instance on the same
//! interfaces is refused while the first keeps running.

mod lab_common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lab_common::*;

/// Runs `ecmpfwd run --config CONFIG` in namespace `ns` behind `wrapper` (e.g. setpriv),
/// bounded by 15 s; returns (exit code, stderr). A timeout (exit 124) fails the test: start-up
/// errors must not hang.
fn run_to_exit(ns: &str, wrapper: &[&str], config: &Path) -> (i32, String) {
    let out = Command::new("timeout")
        .args(["15", "ip", "netns", "exec", ns])
        .args(wrapper)
        .args([ECMPFWD, "run", "--config"])
        .arg(config)
        .output()
        .expect("run ecmpfwd");
    let code = out.status.code().expect("exit code");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(code, 124, "ecmpfwd hung instead of failing:\n{stderr}");
    (code, stderr)
}

/// A one-backend lab and a config for it in a tempdir.
fn setup(tag: &str) -> (Lab, tempfile::TempDir, String) {
    let lab = Lab::up(tag, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let opts = ConfigOpts {
        backends: 1,
        ..ConfigOpts::default()
    };
    let text = config(&opts, &ctl);
    (lab, dir, text)
}

#[test]
fn a_missing_interface_is_named() {
    let (lab, dir, text) = setup("ei");
    let text = text.replace("interface = \"fb1\"", "interface = \"nope0\"");
    let cfg = write(dir.path(), "c.toml", &text);
    let (code, err) = run_to_exit(&lab.fw(), &[], &cfg);
    assert_ne!(code, 0);
    assert!(
        err.contains("port \"fb1\"") && err.contains("\"nope0\" does not exist"),
        "{err}"
    );
    assert!(lab.xdp_interfaces().is_empty(), "XDP left behind");
}

#[test]
fn a_missing_queue_is_named() {
    let (lab, dir, text) = setup("eq");
    // A queue the config itself says the port lacks (one queue by default).
    let bad = text.replace("ports = [\"fc0\"", "ports = [\"fc0:3\"");
    let cfg = write(dir.path(), "c1.toml", &bad);
    let (code, err) = run_to_exit(&lab.fw(), &[], &cfg);
    assert_ne!(code, 0);
    assert!(err.contains("queue \"3\" for port \"fc0\""), "{err}");

    // Two queues configured, but the veth has one: found when the interface is looked up.
    let two = text
        .replace("mode = \"driver\"\n", "mode = \"driver\"\nqueues = 2\n")
        .replace(
            "[[worker]]\ncore = 1\nports = [\"fc0\", \"fb1\"]\n",
            "[[worker]]\ncore = 0\nports = [\"fc0:0\", \"fb1:0\"]\n\n\
             [[worker]]\ncore = 1\nports = [\"fc0:1\", \"fb1:1\"]\n",
        );
    assert!(two.contains("fc0:1"), "template changed:\n{two}");
    let cfg = write(dir.path(), "c2.toml", &two);
    let (code, err) = run_to_exit(&lab.fw(), &[], &cfg);
    assert_ne!(code, 0);
    assert!(
        err.contains("port \"fc0\"") && err.contains("polls queue 1") && err.contains("1 rx queue"),
        "{err}"
    );
    assert!(lab.xdp_interfaces().is_empty(), "XDP left behind");
}

#[test]
fn zero_copy_on_veth_falls_back_to_copy_mode_and_says_so() {
    let (lab, dir, text) = setup("ez");
    let text = text.replace(
        "mode = \"driver\"\n",
        "mode = \"driver\"\nzero_copy = true\n",
    );
    let cfg = write(dir.path(), "c.toml", &text);
    let fw = Forwarder::start(&lab.fw(), &cfg, &dir.path().join("ctl.sock"));
    let sink = Sink::start(&lab.b(1), "b0", dir.path(), "b1");
    send(&lab, "198.18.0.1", VIP4, 10, 500, &[]);
    fw.wait_tx(&["fb1".to_owned()], 500);
    let report = sink.finish();
    assert_eq!(report["packets"], 500, "{report}");
    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
    for port in ["fc0", "fb1"] {
        assert!(
            stopped.stderr.contains(&format!(
                "port \"{port}\": {port} cannot do zero-copy; using copy mode"
            )),
            "no fallback line for {port}:\n{}",
            stopped.stderr
        );
    }
}

#[test]
fn driver_mode_on_an_interface_without_native_xdp_is_named() {
    // A bridge has no native XDP (the dummy driver is not built on this kernel).
    let (lab, dir, text) = setup("ed");
    lab.sh(&lab.fw(), &["ip", "link", "add", "br0", "type", "bridge"]);
    lab.sh(&lab.fw(), &["ip", "link", "set", "br0", "up"]);
    let text = text.replace("interface = \"fb1\"", "interface = \"br0\"");
    let cfg = write(dir.path(), "c.toml", &text);
    let (code, err) = run_to_exit(&lab.fw(), &[], &cfg);
    assert_ne!(code, 0);
    assert!(
        err.contains("port \"fb1\"") && err.contains("does not support driver-mode XDP"),
        "{err}"
    );
    // The port attached before the failing one is detached again.
    assert!(lab.xdp_interfaces().is_empty(), "XDP left behind");
}

#[test]
fn an_unprivileged_run_says_which_capabilities_it_needs() {
    let (lab, dir, text) = setup("eu");
    let cfg = write(dir.path(), "c.toml", &text);
    // The unprivileged user must be able to read the config.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, err) = run_to_exit(
        &lab.fw(),
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
        &cfg,
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("port \"fc0\"")
            && err.contains("permission denied")
            && err.contains("CAP_NET_ADMIN")
            && err.contains("CAP_BPF"),
        "{err}"
    );
    assert!(lab.xdp_interfaces().is_empty(), "XDP left behind");
}

#[test]
fn sigterm_stops_within_3_s_with_exit_0_and_nothing_attached() {
    let (lab, dir, text) = setup("et");
    let cfg = write(dir.path(), "c.toml", &text);
    let ctl = dir.path().join("ctl.sock");
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    let attached = lab.xdp_interfaces();
    assert_eq!(attached.len(), 2, "{attached:?}");
    // Traffic first, so that the counters printed at the exit are checked too.
    send(&lab, "198.18.0.1", VIP4, 10, 200, &[]);
    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
    assert!(
        stopped.took < Duration::from_secs(3),
        "took {:?}",
        stopped.took
    );
    let counters: serde_json::Value = serde_json::from_str(&stopped.stdout).expect("JSON");
    // The client's 200 plus the backend's (rate-limited) ICMP port-unreachable replies, every
    // one sent on before the exit.
    assert!(
        counters["rx_packets"].as_u64().expect("rx") >= 200,
        "{counters}"
    );
    assert_eq!(counters["rx_packets"], counters["tx_packets"], "{counters}");
    assert!(lab.xdp_interfaces().is_empty(), "XDP left behind");
}

#[test]
fn a_second_instance_on_the_same_interfaces_is_refused() {
    let (lab, dir, text) = setup("e2");
    let cfg = write(dir.path(), "c.toml", &text);
    let fw = Forwarder::start(&lab.fw(), &cfg, &dir.path().join("ctl.sock"));
    let second = text.replace("ctl.sock", "ctl2.sock");
    let cfg2 = write(dir.path(), "c2.toml", &second);
    let (code, err) = run_to_exit(&lab.fw(), &[], &cfg2);
    assert_ne!(code, 0);
    assert!(
        err.contains("port \"fc0\"") && err.contains("is another ecmpfwd running?"),
        "{err}"
    );
    // The first instance is untouched: still attached and forwarding.
    assert_eq!(lab.xdp_interfaces().len(), 2);
    let sink = Sink::start(&lab.b(1), "b0", dir.path(), "b1");
    send(&lab, "198.18.0.1", VIP4, 10, 300, &[]);
    fw.wait_tx(&["fb1".to_owned()], 300);
    assert_eq!(sink.finish()["packets"], 300);
    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
}

/// Runs a start-up that logs (the XDP attach lines) and then fails (its control socket's directory
/// cannot be made under /proc), with `--log-format json` and the given RUST_LOG; returns stderr.
fn json_log_run(ns: &str, config: &Path, filter: &str) -> String {
    let out = Command::new("timeout")
        .args(["15", "ip", "netns", "exec", ns, "env"])
        .arg(format!("RUST_LOG={filter}"))
        .args([ECMPFWD, "--log-format", "json", "run", "--config"])
        .arg(config)
        .output()
        .expect("run ecmpfwd");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn logs_are_json_with_a_flag_and_filtered_by_rust_log() {
    let lab = Lab::up("ej", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ConfigOpts {
        backends: 1,
        ..ConfigOpts::default()
    };
    let text = config(&opts, Path::new("/proc/ecmpfwd-no-such-dir/ctl.sock"));
    let cfg = write(dir.path(), "c.toml", &text);

    let stderr = json_log_run(&lab.fw(), &cfg, "info");
    let (events, rest): (Vec<&str>, Vec<&str>) = stderr.lines().partition(|l| l.starts_with('{'));
    let attached: Vec<serde_json::Value> = events
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v: &serde_json::Value| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("XDP program") && m.contains("attached"))
        })
        .collect();
    assert_eq!(attached.len(), 2, "one attach event per port:\n{stderr}");
    for v in &attached {
        assert_eq!(v["level"], "INFO", "{v}");
        assert!(v["timestamp"].is_string(), "{v}");
    }
    // The failure itself is the binary's last word, in plain text.
    assert!(
        rest.iter()
            .any(|l| l.starts_with("ecmpfwd: ") && l.contains("creating the directory")),
        "{stderr}"
    );

    let quiet = json_log_run(&lab.fw(), &cfg, "warn");
    assert!(
        !quiet.contains("attached"),
        "RUST_LOG=warn hides info:\n{quiet}"
    );
    assert!(lab.xdp_interfaces().is_empty(), "XDP left behind");
}
