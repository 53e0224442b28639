//! The kit's guards clean up after a test that fails: processes stopped by PID, namespaces and
//! `scripts/lab` labs deleted by name. The lab tests need root, like every veth lab test.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use ecmp_testkit::lab::{self, Lab, Netns};
use ecmp_testkit::proc::Proc;

/// Whether process `pid` is gone (reaped, or never ours to reap but dead).
fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn sleeper() -> Proc {
    Proc::spawn(Command::new("sleep").arg("30").stdout(Stdio::null()))
}

/// Namespaces that exist now.
fn namespaces() -> Vec<String> {
    lab::run(&["ip", "netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn dropped_proc_is_stopped_and_reaped() {
    let p = sleeper();
    let pid = p.id();
    assert!(!gone(pid));
    drop(p);
    assert!(gone(pid), "pid {pid} survived its guard");
}

#[test]
fn dropped_proc_that_ignores_sigterm_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready");
    let script = format!("trap '' TERM; touch {}; exec sleep 30", ready.display());
    let mut p = Proc::spawn(Command::new("sh").args(["-c", &script]));
    p.wait_for_file(&ready, Duration::from_secs(5));
    let pid = p.id();
    drop(p);
    assert!(gone(pid), "pid {pid} survived SIGKILL");
}

#[test]
fn proc_wait_panics_past_its_limit_and_the_unwind_stops_the_process() {
    let pid = Mutex::new(None);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut p = sleeper();
        *pid.lock().expect("pid") = Some(p.id());
        p.wait(Duration::from_millis(50))
    }));
    assert!(r.is_err(), "wait returned although sleep 30 still ran");
    let pid = pid.lock().expect("pid").expect("spawned");
    assert!(gone(pid), "pid {pid} survived the unwind");
}

#[test]
fn proc_signal_and_wait_report_the_exit() {
    let mut p = sleeper();
    assert!(p.exited().is_none());
    assert!(p.signal("TERM"));
    let st = p.wait(Duration::from_secs(5));
    assert!(!st.success(), "{st}");
    assert!(p.exited().is_some());
}

#[test]
fn wait_for_file_fails_fast_when_the_process_exits_first() {
    let r = catch_unwind(|| {
        let mut p = Proc::spawn(&mut Command::new("true"));
        p.wait_for_file(Path::new("/nonexistent/ready"), Duration::from_secs(30));
    });
    let msg = r.expect_err("no ready file, yet no panic");
    let msg = msg
        .downcast_ref::<String>()
        .expect("formatted panic message");
    assert!(msg.contains("exited"), "{msg}");
}

#[test]
fn netns_and_what_runs_in_it_go_away_on_panic() {
    let name = format!("kitns{}", std::process::id());
    let inside: Mutex<Option<Child>> = Mutex::new(None);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let ns = Netns::add(name.clone());
        assert_eq!(ns.name(), name);
        ns.add_veth("a0", "02:00:00:00:00:01", "b0", "02:00:00:00:00:02");
        ns.ip(&["link", "set", "a0", "up"]);
        assert!(ns.link_show("b0").contains("02:00:00:00:00:02"));
        assert!(!ns.has_xdp("a0"));
        // A process the test forgot to guard: the namespace's drop stops it by PID.
        let child = Command::new("ip")
            .args(["netns", "exec", &name, "sleep", "30"])
            .spawn()
            .expect("spawn sleep in the namespace");
        *inside.lock().expect("child") = Some(child);
        lab::run(&["sleep", "0.2"]);
        panic!("a failing test");
    }));
    assert!(r.is_err());
    assert!(
        !namespaces().contains(&name),
        "{name} left behind: {:?}",
        namespaces()
    );
    let child = inside.into_inner().expect("child").expect("spawned");
    let mut p = Proc(child);
    let st = p.wait(Duration::from_secs(5));
    assert!(!st.success(), "sleep 30 ended on its own? {st}");
}

#[test]
fn script_lab_is_built_and_torn_down_on_panic() {
    let prefix = Mutex::new(String::new());
    let r = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::up("kit", 1);
        *prefix.lock().expect("prefix") = lab.prefix.clone();
        assert_eq!(lab.backends, 1);
        assert_eq!(lab.env("LAB_NS_FW"), lab.fw());
        assert_eq!(lab.env("LAB_NS_CL"), lab.cl());
        assert_eq!(lab.env("LAB_NS_B1"), lab.b(1));
        assert!(
            lab.sh(&lab.fw(), &["ip", "link", "show", "fc0"])
                .contains("fc0")
        );
        assert!(lab.xdp_interfaces().is_empty());
        // Bounded: `timeout` ends what overruns (status 124).
        let out = lab.exec(&lab.cl(), 1, &["sleep", "5"]);
        assert_eq!(out.status.code(), Some(124));
        panic!("a failing test");
    }));
    assert!(r.is_err());
    let prefix = prefix.lock().expect("prefix").clone();
    assert!(prefix.starts_with("kit"));
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "lab {prefix} left {left:?}");
}
