//! Veth labs for tests that run as root, and their guards.
//!
//! Two shapes, one teardown rule: whatever a test builds is removed by name when its guard drops,
//! after a failed assertion too, and the processes still running inside are stopped by PID.
//!
//! - [`Lab`]: the topology of `scripts/lab up --prefix P --backends N` (a client, the forwarder's
//!   namespace, N backends); `scripts/lab down --prefix P` on drop, which stops what still runs in
//!   those namespaces and deletes them.
//! - [`Netns`]: one hand-made namespace (veth pairs inside it are the test's business); its
//!   processes stopped and the namespace deleted on drop.
//!
//! Names carry the test process's id (nextest runs each test in a process of its own), so labs of
//! tests running at once never collide. Every wait is bounded: the kit's commands run under
//! `timeout`, and `scripts/lab down` bounds its own (SIGKILL after a second).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::proc::signal;

/// Time limit, in seconds, of one set-up command (`ip ...`) and of [`sh`].
pub const CMD_SECS: u32 = 10;

/// Time limit, in seconds, of `scripts/lab up` (labs of several tests may be built at once on two
/// cores).
pub const UP_SECS: u32 = 120;

/// How long processes left in a dropped [`Netns`] may take to exit on SIGTERM before SIGKILL.
const PIDS_GRACE: Duration = Duration::from_secs(1);

/// `scripts/lab` of this workspace.
pub fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lab")
}

/// Runs `args` (program first) bounded by a `timeout` of [`CMD_SECS`], asserting success;
/// returns stdout.
pub fn run(args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg(CMD_SECS.to_string())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `args` in namespace `ns`, bounded by a `timeout` of `secs`; returns the output.
pub fn exec(ns: &str, secs: u32, args: &[&str]) -> Output {
    Command::new("timeout")
        .args([&secs.to_string(), "ip", "netns", "exec", ns])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{args:?} in {ns}: {e}"))
}

/// Like [`exec`] with a limit of [`CMD_SECS`], asserting success; returns stdout.
pub fn sh(ns: &str, args: &[&str]) -> String {
    let out = exec(ns, CMD_SECS, args);
    assert!(
        out.status.success(),
        "{args:?} in {ns} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -n NS link show dev DEV`: the line of an attached XDP program reads `prog/xdp id N`.
pub fn link_show(ns: &str, dev: &str) -> String {
    run(&["ip", "-n", ns, "link", "show", "dev", dev])
}

/// Whether an XDP program is attached to `dev` in `ns`.
pub fn has_xdp(ns: &str, dev: &str) -> bool {
    link_show(ns, dev).contains("prog/xdp")
}

/// Interfaces of namespace `ns` that carry an XDP program now.
pub fn xdp_interfaces(ns: &str) -> Vec<String> {
    let text = run(&["ip", "-n", ns, "-d", "-o", "link", "show"]);
    text.lines()
        .filter(|l| l.contains("prog/xdp") || l.contains(" xdp"))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        .collect()
}

/// Stops the processes running in namespace `ns` (but never this one): SIGTERM, SIGKILL to what
/// is left after a grace period.
fn stop_pids(ns: &str) {
    let pids = || -> Vec<u32> {
        let Ok(out) = Command::new("timeout")
            .args([&CMD_SECS.to_string(), "ip", "netns", "pids", ns])
            .stderr(Stdio::null())
            .output()
        else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|&p| p != std::process::id())
            .collect()
    };
    let left = pids();
    if left.is_empty() {
        return;
    }
    for &pid in &left {
        signal(pid, "TERM");
    }
    let deadline = Instant::now() + PIDS_GRACE;
    let mut left = pids();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = pids();
    }
    for pid in left {
        signal(pid, "KILL");
    }
}

/// A lab from `scripts/lab up`; `scripts/lab down` on drop, on panic too.
pub struct Lab {
    /// The namespace prefix (`P-cl`, `P-fw`, `P-b1`...).
    pub prefix: String,
    /// Number of backends.
    pub backends: u32,
    env: HashMap<String, String>,
}

impl Lab {
    /// Builds a lab with `backends` backends, named `tag` + this process's id.
    pub fn up(tag: &str, backends: u32) -> Lab {
        Lab::up_with_queues(tag, backends, 1)
    }

    /// [`Lab::up`] with `queues` rx and tx queues on every veth (`scripts/lab up --queues`).
    pub fn up_with_queues(tag: &str, backends: u32, queues: u32) -> Lab {
        // The guard exists before the lab does, so a half-built lab is torn down as well.
        let mut lab = Lab {
            prefix: format!("{tag}{}", std::process::id()),
            backends,
            env: HashMap::new(),
        };
        let out = Command::new("timeout")
            .arg(UP_SECS.to_string())
            .arg(lab_script())
            .args(["up", "--prefix", &lab.prefix])
            .args(["--backends", &backends.to_string()])
            .args(["--queues", &queues.to_string()])
            .output()
            .expect("run scripts/lab up");
        assert!(
            out.status.success(),
            "scripts/lab up failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("timeout")
            .arg(CMD_SECS.to_string())
            .arg(lab_script())
            .args(["env", "--prefix", &lab.prefix])
            .args(["--backends", &backends.to_string()])
            .output()
            .expect("run scripts/lab env");
        assert!(out.status.success(), "scripts/lab env failed");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        lab.env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        lab
    }

    /// A value of `scripts/lab env` (`LAB_NS_FW`, `LAB_FC_MAC`, `LAB_VIP4`...).
    pub fn env(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from scripts/lab env: {:?}", self.env))
    }

    /// The forwarder's namespace.
    pub fn fw(&self) -> String {
        format!("{}-fw", self.prefix)
    }

    /// The client's namespace.
    pub fn cl(&self) -> String {
        format!("{}-cl", self.prefix)
    }

    /// Backend `i`'s namespace (1-based).
    pub fn b(&self, i: u32) -> String {
        format!("{}-b{i}", self.prefix)
    }

    /// Runs `args` in namespace `ns`, bounded by a `timeout` of `secs`; returns the output.
    pub fn exec(&self, ns: &str, secs: u32, args: &[&str]) -> Output {
        exec(ns, secs, args)
    }

    /// Like [`Lab::exec`], asserting success; returns stdout.
    pub fn sh(&self, ns: &str, args: &[&str]) -> String {
        sh(ns, args)
    }

    /// Interfaces of the forwarder namespace that carry an XDP program now.
    pub fn xdp_interfaces(&self) -> Vec<String> {
        xdp_interfaces(&self.fw())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(lab_script())
            .args(["down", "--prefix", &self.prefix])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A network namespace made by hand; on drop its processes are stopped and it is deleted, on
/// panic too.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` (a name carrying the process id, see the module doc).
    pub fn add(name: impl Into<String>) -> Netns {
        // The guard exists before the namespace does: a failure past `ip netns add` still
        // deletes it.
        let ns = Netns { name: name.into() };
        run(&["ip", "netns", "add", &ns.name]);
        ns
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME args...`, asserting success; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Creates veth pair `a` <-> `b` in it with the given MAC addresses (`aa:bb:...`), both down.
    pub fn add_veth(&self, a: &str, mac_a: &str, b: &str, mac_b: &str) {
        self.ip(&[
            "link", "add", a, "address", mac_a, "type", "veth", "peer", "name", b, "address", mac_b,
        ]);
    }

    /// `ip link show dev DEV` inside it.
    pub fn link_show(&self, dev: &str) -> String {
        link_show(&self.name, dev)
    }

    /// Whether an XDP program is attached to `dev` inside it.
    pub fn has_xdp(&self, dev: &str) -> bool {
        has_xdp(&self.name, dev)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        stop_pids(&self.name);
        let _ = Command::new("timeout")
            .args([&CMD_SECS.to_string(), "ip", "netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
