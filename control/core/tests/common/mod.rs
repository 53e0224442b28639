//! Shared by the real-speaker integration tests (`exabgp.rs`, `bird.rs`): an in-process
//! [`FeedServer`] fed by a companion ExaBGP (passive, ADD-PATH receive, route refresh) through
//! socat, the view of 192.0.2.10/32 read from the published snapshots, and process guards.
//!
//! Invariants: every process runs in its own process group and that whole group is killed when
//! its [`Proc`] drops (assertion failures included); every wait is bounded by [`WAIT`]; ports
//! are picked free at run time and configs and sockets live in a per-test temp dir.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ecmp_control::builder::{Builder, BuilderConfig, GroupPolicy, StaticTables};
use ecmp_control::control::{ControlConfig, ControlHandle, ControlThread, FeedStats};
use ecmp_control::ctl_server::{CtlConfig, CtlListener};
use ecmp_control::feed_server::{FeedServer, FeedServerConfig};
use ecmp_control::{Rib, RibConfig};
use ecmp_tables::Snapshot;
use ecmp_tables::nexthop::{HopState, PortId, PortInfo};
use rustix::process::{Pid, Signal, kill_process_group};

/// The longest any step waits for the snapshots (or a process) to show what it expects.
pub const WAIT: Duration = Duration::from_secs(15);
/// Paths not resent this long after the feed reconnects are dropped (unless End-of-RIB came).
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(3);
/// Long enough that the first announcements, sent together once every session is up, make one
/// batch: hops joining one by one would leave every bucket with the first one (auto-recovery
/// gives new hops only ownerless buckets).
pub const BATCH_WINDOW: Duration = Duration::from_secs(1);
pub const PREFIX: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];

pub type Resolve = fn(IpAddr) -> Option<(PortId, [u8; 6])>;

fn resolve_all(_: IpAddr) -> Option<(PortId, [u8; 6])> {
    Some((0, MAC))
}

fn builder() -> Builder<Resolve> {
    let config = BuilderConfig {
        policies: Vec::new(),
        default_policy: GroupPolicy::default(),
        ports: vec![PortInfo {
            mac: [2, 0, 0, 0, 0, 9],
            mtu: 1500,
        }],
        seed: 7,
        max_tbl8: 16,
        statics: StaticTables::default(),
    };
    Builder::new(config, resolve_all as Resolve).expect("builder config")
}

/// Hop `n` of the tests: next hop 198.51.100.N.
pub fn next_hop(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, n))
}

/// The route's group as the test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Listed members by next-hop address.
    pub members: BTreeMap<IpAddr, HopState>,
    /// Each bucket's owner, by next-hop address.
    pub owners: Vec<Option<IpAddr>>,
}

impl View {
    fn of(snapshot: &Snapshot) -> Option<View> {
        let group = snapshot.group(snapshot.fib4.lookup_addr(PREFIX))?;
        let addr = |hop| snapshot.hop(hop).map(|h| h.addr);
        let members = group
            .members()
            .iter()
            .filter(|m| m.hop != 0)
            .filter_map(|m| Some((addr(m.hop)?, m.state)))
            .collect();
        let owners = (0..group.bucket_count())
            .map(|b| group.pick(b).and_then(|(_, hop)| addr(hop)))
            .collect();
        Some(View { members, owners })
    }

    pub fn state(&self, n: u8) -> Option<HopState> {
        self.members.get(&next_hop(n)).copied()
    }

    pub fn buckets(&self, n: u8) -> usize {
        self.owners
            .iter()
            .filter(|o| **o == Some(next_hop(n)))
            .count()
    }

    pub fn is(&self, states: &[(u8, HopState)]) -> bool {
        self.members.len() == states.len() && states.iter().all(|&(n, s)| self.state(n) == Some(s))
    }
}

/// Asserts that buckets moved only away from `from`, and only to hops in `to`.
pub fn only_moved(before: &View, after: &View, from: u8, to: &[u8]) {
    assert_eq!(before.owners.len(), after.owners.len());
    for (b, (old, new)) in before.owners.iter().zip(&after.owners).enumerate() {
        if *old == Some(next_hop(from)) {
            assert!(
                to.iter().any(|&n| *new == Some(next_hop(n))),
                "bucket {b}: {old:?} -> {new:?}, expected one of {to:?}"
            );
        } else {
            assert_eq!(old, new, "bucket {b} moved though its owner stayed");
        }
    }
}

/// The latest published snapshot, shared with the feed server's publish callback.
#[derive(Default)]
struct Latest {
    snapshot: Mutex<Option<Snapshot>>,
    changed: Condvar,
}

/// A process started in its own group; the whole group is killed when this drops.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    reaped: bool,
}

impl Proc {
    /// Starts `program` with `args` (and `env` added), logging stdout and stderr to
    /// `dir/NAME.log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&Path],
        env: &[(&str, &str)],
        dir: &Path,
    ) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({}): {e}", program.display()));
        Proc {
            name: name.to_owned(),
            child,
            log,
            reaped: false,
        }
    }

    /// Kills the process and its helpers (same group), then reaps the leader.
    pub fn kill(&mut self) {
        if self.reaped {
            return;
        }
        let pid = Pid::from_child(&self.child);
        // The group may have ended already; nothing else to do then.
        let _ = kill_process_group(pid, Signal::KILL);
        let _ = self.child.wait();
        self.reaped = true;
    }

    /// The end of the process's log, for failure messages.
    pub fn tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(15);
        format!(
            "--- {} (last lines) ---\n{}",
            self.name,
            lines[from..].join("\n")
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// ExaBGP (`ECMP_EXABGP`, else the repo's `.venv-exabgp`), after checking socat is there too.
pub fn exabgp_binary() -> PathBuf {
    let found = std::env::var_os("ECMP_EXABGP")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-exabgp/bin/exabgp")
        });
    assert!(
        found.is_file(),
        "ExaBGP not found at {} (ECMP_EXABGP or .venv-exabgp): run scripts/test, which installs it",
        found.display()
    );
    let socat = Command::new("socat").arg("-V").output();
    assert!(
        socat.is_ok_and(|o| o.status.success()),
        "socat not found: run scripts/test, which installs it"
    );
    found
}

/// Starts ExaBGP with the settings every test needs.
pub fn spawn_exabgp(name: &str, exabgp: &Path, config: &Path, dir: &Path) -> Proc {
    let env = [
        // As root ExaBGP would switch to `nobody`, whose helper could not reach our socket.
        ("exabgp_daemon_user", "root"),
        ("exabgp_daemon_daemonize", "false"),
        ("exabgp_api_cli", "false"),
        ("exabgp_log_destination", "stdout"),
    ];
    Proc::spawn(name, exabgp, &[config], &env, dir)
}

/// A TCP port free right now on loopback, so parallel runs do not clash.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

pub fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}

/// A server peering with the companion: its address 127.0.0.N and its AS.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub n: u8,
    pub asn: u32,
}

/// The feed side: the in-process feed server and the companion ExaBGP that feeds it.
pub struct Feed {
    // Dropped first: the companion goes before the server and the temp dir.
    companion: Option<Proc>,
    pub server: ControlHandle<Resolve>,
    latest: Arc<Latest>,
    pub exabgp: PathBuf,
    /// Names each companion's log apart.
    companion_starts: u32,
    /// The companion's BGP port on 127.0.0.1.
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// `ecmpctl`, another package of the workspace: cargo puts it in the profile's directory, the
/// parent of this test binary's `deps/`.
pub fn ecmpctl_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps")
        .join("ecmpctl");
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build -p ecmpctl, or cargo build --workspace --bins \
         as scripts/test does)",
        path.display()
    );
    path
}

/// `ecmpctl --json ARGS` against a control socket: the reply's `result`; panics (with the
/// reply) unless the daemon carried the command out.
pub fn ecmpctl(socket: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(ecmpctl_binary())
        .arg("--socket")
        .arg(socket)
        .args(["--json", "--timeout", "5"])
        .args(args)
        .output()
        .expect("run ecmpctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ecmpctl {args:?}: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_str(&text).expect("ecmpctl prints JSON");
    reply["result"].clone()
}

impl Feed {
    /// The control socket of the in-process server.
    pub fn ctl_socket(&self) -> PathBuf {
        self.dir.path().join("ctl.sock")
    }

    /// `ecmpctl --json ARGS` against this server.
    pub fn ctl(&self, args: &[&str]) -> serde_json::Value {
        ecmpctl(&self.ctl_socket(), args)
    }

    /// Starts the feed server and a companion accepting sessions from `peers` on a free port.
    pub fn start(peers: &[Peer]) -> Feed {
        let exabgp = exabgp_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("feed.sock");
        let ctl = CtlListener::bind(dir.path().join("ctl.sock"), CtlConfig::default())
            .expect("bind control socket");
        // No data plane in these tests: the control socket answers from the RIB and builder.
        let server = ControlThread::new(ControlConfig {
            batch_window: BATCH_WINDOW,
            ..ControlConfig::default()
        })
        .serve(ctl)
        .serve(FeedServer::bind(&sock, FeedServerConfig::default()).expect("bind feed"));
        let latest = Arc::new(Latest::default());
        let publish_to = Arc::clone(&latest);
        let rib = Rib::new(RibConfig {
            stale_time: Duration::ZERO,
            refresh_timeout: REFRESH_TIMEOUT,
        });
        let server = server
            .spawn(rib, builder(), move |s| {
                let mut slot = publish_to
                    .snapshot
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                *slot = Some(s);
                publish_to.changed.notify_all();
            })
            .expect("spawn feed server");
        let port = free_port();
        let d = dir.path();
        write_script(
            &d.join("feed-helper.sh"),
            &format!(
                "exec socat STDIO UNIX-CONNECT:{},retry=100,interval=0.1",
                sock.display()
            ),
        );
        let mut companion = format!(
            "process feed {{ run {}; encoder json; }}\n\
             template {{ neighbor servers {{\n\
               router-id 127.0.0.1; local-address 127.0.0.1; local-as 65000;\n\
               listen {port}; passive true; hold-time 3;\n\
               capability {{ add-path receive; route-refresh; }}\n\
               family {{ ipv4 unicast; ipv6 unicast; }}\n\
               api {{ processes [ feed ]; neighbor-changes; receive {{ parsed; update; }} }}\n\
             }} }}\n",
            d.join("feed-helper.sh").display()
        );
        for p in peers {
            companion += &format!(
                "neighbor 127.0.0.{} {{ inherit servers; peer-as {}; }}\n",
                p.n, p.asn
            );
        }
        fs::write(d.join("companion.conf"), companion).expect("companion config");
        let mut feed = Feed {
            companion: None,
            server,
            latest,
            exabgp,
            companion_starts: 0,
            port,
            dir,
        };
        feed.start_companion();
        feed
    }

    pub fn start_companion(&mut self) {
        let config = self.dir.path().join("companion.conf");
        self.companion_starts += 1;
        let name = format!("companion-{}", self.companion_starts);
        self.companion = Some(spawn_exabgp(&name, &self.exabgp, &config, self.dir.path()));
    }

    pub fn kill_companion(&mut self) {
        if let Some(mut companion) = self.companion.take() {
            companion.kill();
        }
    }

    /// Feed statistics and the companion's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!("feed stats: {:?}\n", self.server.stats());
        if let Some(p) = &self.companion {
            out += &p.tail();
            out.push('\n');
        }
        out
    }

    /// Waits until the latest snapshot's view of the route passes `ok`; returns that view.
    /// On timeout, panics with the last view, the feed's logs and `more()`.
    /// Traffic uses every bucket of every group in the latest published snapshot (there is no
    /// data plane here): from now on the stateful modes move buckets by the resilient rules
    /// instead of rebuilding their canonical table.
    pub fn traffic(&self) {
        let slot = self
            .latest
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(snapshot) = slot.as_ref() else {
            return;
        };
        for gid in 1..snapshot.groups.len() {
            if let Some(table) = snapshot.group(gid as u32) {
                (0..table.bucket_count()).for_each(|hash| table.touch(hash, 0));
            }
        }
    }

    pub fn wait_for(
        &self,
        what: &str,
        ok: impl Fn(&View) -> bool,
        more: impl Fn() -> String,
    ) -> View {
        let found = self.wait_view(what, |v| v.is_some_and(&ok), more);
        found.unwrap_or_else(|| panic!("{what}: the accepted view is missing"))
    }

    /// Waits until the feed's counters pass `ok`: they are stored just after each publish, so
    /// they may trail the snapshot a test has just seen.
    pub fn wait_stats(&self, what: &str, ok: impl Fn(&FeedStats) -> bool) -> FeedStats {
        let end = Instant::now() + WAIT;
        loop {
            let stats = self.server.stats();
            if ok(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < end,
                "timed out after {WAIT:?} waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until a published snapshot has no route for [`PREFIX`] at all.
    pub fn wait_for_no_route(&self, what: &str, more: impl Fn() -> String) {
        self.wait_view(what, |v| v.is_none(), more);
    }

    /// Waits until some snapshot was published and its view (`None`: no route) passes `ok`.
    fn wait_view(
        &self,
        what: &str,
        ok: impl Fn(Option<&View>) -> bool,
        more: impl Fn() -> String,
    ) -> Option<View> {
        let end = Instant::now() + WAIT;
        let mut slot = self
            .latest
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(snapshot) = slot.as_ref() {
                let view = View::of(snapshot);
                if ok(view.as_ref()) {
                    return view;
                }
            }
            let now = Instant::now();
            if now >= end {
                let last = slot.as_ref().and_then(View::of).map(|v| v.members);
                drop(slot);
                panic!(
                    "timed out after {WAIT:?} waiting for {what}; last view: {last:?}\n{}{}",
                    self.logs(),
                    more()
                );
            }
            slot = self
                .latest
                .changed
                .wait_timeout(slot, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
