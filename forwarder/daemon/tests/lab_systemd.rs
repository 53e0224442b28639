//! The systemd unit (packaging/ecmpfwd.service): it verifies with `systemd-analyze`, and
//! ecmpfwd run the way it runs it (an unprivileged uid holding only the unit's capabilities,
//! `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` set) forwards, says READY=1 only once it forwards,
//! pings the watchdog and says STOPPING=1 on SIGTERM. systemd is not PID 1 here, so the unit's
//! sandboxing is checked by `systemd-analyze verify`, and its capability set by `setpriv`.

mod lab_common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecmp_proto::ctl::{Request, StatsReply};
use lab_common::*;

/// The unprivileged uid and gid ecmpfwd runs as here (`nobody`).
const NOBODY: &str = "65534";

fn unit_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/ecmpfwd.service")
}

/// The unit's value of `key` in its `[Service]` section (the last assignment wins, as in systemd).
fn unit_value(key: &str) -> String {
    let text = std::fs::read_to_string(unit_file()).expect("read the unit file");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .unwrap_or_else(|| panic!("the unit has no {key}="))
        .trim()
        .to_owned()
}

/// The unit's capability set as `setpriv` spells it: `-all,+net_admin,...`.
fn setpriv_caps() -> String {
    let ambient = unit_value("AmbientCapabilities");
    assert_eq!(
        ambient,
        unit_value("CapabilityBoundingSet"),
        "the ambient and bounding sets differ"
    );
    let mut caps = String::from("-all");
    for cap in ambient.split_whitespace() {
        let name = cap.strip_prefix("CAP_").expect("CAP_ name").to_lowercase();
        caps.push_str(&format!(",+{name}"));
    }
    caps
}

#[test]
fn the_unit_file_verifies_with_systemd_analyze() {
    assert!(unit_value("Type") == "notify" && unit_value("NotifyAccess") == "main");
    assert!(unit_value("WatchdogSec").parse::<u32>().expect("seconds") > 0);
    assert!(
        !unit_value("CapabilityBoundingSet").contains("CAP_SYS_ADMIN"),
        "the forwarder runs without CAP_SYS_ADMIN"
    );
    // `verify` insists that ExecStart's binary exists: point it at the one under test.
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(unit_file()).expect("read the unit file");
    let exec = "/usr/local/bin/ecmpfwd";
    assert!(text.contains(exec), "ExecStart names {exec}");
    let unit = write(dir.path(), "ecmpfwd.service", &text.replace(exec, ECMPFWD));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze (Debian package systemd)");
    // It exits 0 on unknown keys and bad values too, and says so on stderr.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");

    // The same check finds a misspelt key, so its silence above means something.
    let bad = write(
        dir.path(),
        "bad.service",
        &text
            .replace(exec, ECMPFWD)
            .replace("NotifyAccess=", "NotifyAcess="),
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&bad)
        .output()
        .expect("run systemd-analyze");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotifyAcess"),
        "{out:?}"
    );
}

/// Datagrams on the test's notify socket until `until` holds for one or `limit` passes.
fn collect(rx: &UnixDatagram, limit: Duration, until: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        if let Ok(n) = rx.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = until(&msg);
            got.push(msg);
            if done {
                break;
            }
        }
    }
    got
}

#[test]
fn with_only_the_units_capabilities_it_forwards_says_ready_and_pings_the_watchdog() {
    let lab = Lab::up("lsd", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let open = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    open(dir.path(), 0o755);
    // What RuntimeDirectory= gives the service: a directory of its own for the sockets.
    let run = dir.path().join("run");
    std::fs::create_dir(&run).expect("mkdir");
    open(&run, 0o777);
    let ctl = run.join("ctl.sock");
    let cfg = config(
        &ConfigOpts {
            backends: 2,
            ..ConfigOpts::default()
        },
        &ctl,
    )
    .replace("mode = 0o660\n", "mode = 0o660\nallowed_uids = [0]\n");
    let cfg = write(dir.path(), "c.toml", &cfg);
    let notify = dir.path().join("notify.sock");
    let rx = UnixDatagram::bind(&notify).expect("bind the notify socket");
    open(&notify, 0o666);
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");

    let log = dir.path().join("ecmpfwd.log");
    let caps = setpriv_caps();
    let mut child = Command::new("ip");
    child
        .args(["netns", "exec", &lab.fw(), "setpriv"])
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg("--no-new-privs")
        .arg(format!("--inh-caps={caps}"))
        .arg(format!("--ambient-caps={caps}"))
        .arg(format!("--bounding-set={caps}"))
        .args([ECMPFWD, "run", "--json", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &notify)
        // Pings every 500 ms.
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let mut fw = Proc::spawn(&mut child);

    let got = collect(&rx, START_LIMIT, |m| m.contains("READY=1"));
    let ready = got.iter().find(|m| m.contains("READY=1"));
    let Some(ready) = ready else {
        let exited = fw.exited();
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("no READY=1 (exit {exited:?}): got {got:?}; its log:\n{said}");
    };
    assert!(
        ready.contains("STATUS=forwarding on 3 port(s) with 1 worker(s)"),
        "{ready:?}"
    );
    // When READY=1 arrives, every port has its program and the worker runs the first tables.
    let mut xdp: Vec<String> = lab
        .xdp_interfaces()
        .iter()
        .map(|i| i.split('@').next().unwrap_or_default().to_owned())
        .collect();
    xdp.sort();
    assert_eq!(xdp, ["fb1", "fb2", "fc0"]);
    let stats: StatsReply =
        serde_json::from_value(ctl_ok(&ctl, &Request::Stats {})).expect("stats");
    assert_eq!(stats.ports.len(), 3, "{stats:?}");
    assert!(stats.workers.iter().all(|w| w.generation >= 1), "{stats:?}");

    // Traffic goes through the unprivileged forwarder.
    send(
        &lab,
        "198.18.0.1",
        VIP4,
        50,
        2000,
        &["--proto", "udp", "--size", "100"],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats: StatsReply =
            serde_json::from_value(ctl_ok(&ctl, &Request::Stats {})).expect("stats");
        let to_backends: u64 = stats
            .ports
            .iter()
            .filter(|p| p.name != "fc0")
            .map(|p| p.tx_packets)
            .sum();
        if to_backends >= 2000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {to_backends} of 2000 packets forwarded: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The worker polls, so the control thread pings at half the 1 s interval.
    let pings = collect(&rx, Duration::from_millis(2200), |_| false);
    let n = pings.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!((3..=6).contains(&n), "{n} pings in 2.2 s: {pings:?}");

    assert!(fw.signal("TERM"));
    let stopping = collect(&rx, Duration::from_secs(5), |m| m.contains("STOPPING=1"));
    assert!(
        stopping.iter().any(|m| m.contains("STOPPING=1")),
        "{stopping:?}"
    );
    let status = fw.wait(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(lab.xdp_interfaces().is_empty(), "programs detached on stop");
}

/// One control request that must succeed; its result.
fn ctl_ok(ctl: &Path, req: &Request) -> serde_json::Value {
    let r = ctl_request(ctl, req);
    assert!(r.ok, "{req:?} refused: {:?}", r.error);
    r.result
}
