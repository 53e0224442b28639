//! The feed server driven by real BGP sessions: a companion ExaBGP (passive, ADD-PATH receive,
//! route refresh) streams its JSON through socat into an in-process [`FeedServer`], while three
//! announcer ExaBGPs (127.0.0.2..4, ADD-PATH send) stand in for servers announcing 192.0.2.10/32.
//! Everything is checked through the published snapshots: the route's group members, their
//! states and the owner of every bucket.
//!
//! Needs ExaBGP 5.0.15 (`ECMP_EXABGP`, else the repo's `.venv-exabgp`) and socat; `scripts/test`
//! installs both. Without them the test fails, naming `scripts/test`; it never passes silently.
//!
//! Isolation: the BGP port is picked free at run time, configs and sockets live in a temp dir,
//! and every process is started in its own process group, killed by that id when its guard drops
//! (assertion failures included). Every wait is bounded by [`WAIT`].

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ecmp_control::builder::{Builder, BuilderConfig, GroupPolicy, StaticTables};
use ecmp_control::feed_server::{FeedServer, FeedServerConfig, FeedServerHandle};
use ecmp_control::{Rib, RibConfig};
use ecmp_tables::Snapshot;
use ecmp_tables::nexthop::{HopState, PortId, PortInfo};
use rustix::process::{Pid, Signal, kill_process_group};

/// The longest any step waits for the snapshots to show what it expects.
const WAIT: Duration = Duration::from_secs(15);
/// Paths not resent this long after the feed reconnects are dropped (unless End-of-RIB came).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(3);
/// Long enough that the three first announcements, sent together once every session is up,
/// make one batch: hops joining one by one would leave every bucket with the first one
/// (auto-recovery gives new hops only ownerless buckets).
const BATCH_WINDOW: Duration = Duration::from_secs(1);
const PREFIX: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
/// The announcers' numbers: local address 127.0.0.N, AS 6500N, next hop 198.51.100.N, path id N.
const SERVERS: [u8; 3] = [2, 3, 4];

type Resolve = fn(IpAddr) -> Option<(PortId, [u8; 6])>;

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

fn next_hop(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, n))
}

fn route(n: u8, extra: &str) -> String {
    format!("192.0.2.10/32 next-hop 198.51.100.{n} path-information {n}{extra}")
}

/// The route's group as the test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    /// Listed members by next-hop address.
    members: BTreeMap<IpAddr, HopState>,
    /// Each bucket's owner, by next-hop address.
    owners: Vec<Option<IpAddr>>,
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

    fn state(&self, n: u8) -> Option<HopState> {
        self.members.get(&next_hop(n)).copied()
    }

    fn buckets(&self, n: u8) -> usize {
        self.owners
            .iter()
            .filter(|o| **o == Some(next_hop(n)))
            .count()
    }

    fn is(&self, states: &[(u8, HopState)]) -> bool {
        self.members.len() == states.len() && states.iter().all(|&(n, s)| self.state(n) == Some(s))
    }
}

/// The latest published snapshot, shared with the feed server's publish callback.
#[derive(Default)]
struct Latest {
    snapshot: Mutex<Option<Snapshot>>,
    changed: Condvar,
}

/// A process started in its own group; the whole group is killed when this drops.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    reaped: bool,
}

impl Proc {
    fn spawn(name: &str, program: &Path, args: &[&Path], dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            // As root ExaBGP would switch to `nobody`, whose helper could not reach our socket.
            .env("exabgp_daemon_user", "root")
            .env("exabgp_daemon_daemonize", "false")
            .env("exabgp_api_cli", "false")
            .env("exabgp_log_destination", "stdout")
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
    fn kill(&mut self) {
        if self.reaped {
            return;
        }
        let pid = Pid::from_child(&self.child);
        // The group may have ended already; nothing else to do then.
        let _ = kill_process_group(pid, Signal::KILL);
        let _ = self.child.wait();
        self.reaped = true;
    }

    fn tail(&self) -> String {
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

fn exabgp_binary() -> PathBuf {
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

/// A TCP port free right now on loopback, so parallel runs do not clash.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}

struct World {
    // Dropped first: the processes go before the server and the temp dir.
    companion: Option<Proc>,
    announcers: BTreeMap<u8, Proc>,
    server: FeedServerHandle<Resolve>,
    latest: Arc<Latest>,
    exabgp: PathBuf,
    /// Names each companion's log apart.
    companion_starts: u32,
    dir: tempfile::TempDir,
}

impl World {
    fn start() -> World {
        let exabgp = exabgp_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("feed.sock");
        let config = FeedServerConfig {
            batch_window: BATCH_WINDOW,
            ..FeedServerConfig::default()
        };
        let server = FeedServer::bind(&sock, config).expect("bind feed");
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
        for n in SERVERS {
            companion += &format!("neighbor 127.0.0.{n} {{ inherit servers; peer-as 6500{n}; }}\n");
        }
        fs::write(d.join("companion.conf"), companion).expect("companion config");

        let announcer_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/exabgp/announcer.py");
        // The venv's interpreter when there is one beside ExaBGP, else the system's.
        let venv_python = exabgp.with_file_name("python3");
        let python = if venv_python.is_file() {
            venv_python.display().to_string()
        } else {
            "python3".to_owned()
        };
        for n in SERVERS {
            let fifo = d.join(format!("commands-{n}"));
            let made = Command::new("mkfifo").arg(&fifo).status();
            assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
            let helper = d.join(format!("announcer-{n}.sh"));
            write_script(
                &helper,
                &format!(
                    "exec {python} {} {} {}",
                    announcer_py.display(),
                    fifo.display(),
                    d.join(format!("seen-{n}")).display()
                ),
            );
            let config = format!(
                "process announce {{ run {}; encoder text; }}\n\
                 neighbor 127.0.0.1 {{\n\
                   router-id 127.0.0.{n}; local-address 127.0.0.{n};\n\
                   local-as 6500{n}; peer-as 65000; connect {port}; hold-time 3;\n\
                   capability {{ add-path send; route-refresh; }}\n\
                   family {{ ipv4 unicast; }}\n\
                   api {{ processes [ announce ]; neighbor-changes; }}\n\
                 }}\n",
                helper.display()
            );
            fs::write(d.join(format!("announcer-{n}.conf")), config).expect("announcer config");
        }
        let mut world = World {
            companion: None,
            announcers: BTreeMap::new(),
            server,
            latest,
            exabgp,
            companion_starts: 0,
            dir,
        };
        world.start_companion();
        for n in SERVERS {
            let config = world.dir.path().join(format!("announcer-{n}.conf"));
            let proc = Proc::spawn(
                &format!("announcer-{n}"),
                &world.exabgp,
                &[&config],
                world.dir.path(),
            );
            world.announcers.insert(n, proc);
        }
        world
    }

    fn start_companion(&mut self) {
        let config = self.dir.path().join("companion.conf");
        self.companion_starts += 1;
        let name = format!("companion-{}", self.companion_starts);
        self.companion = Some(Proc::spawn(
            &name,
            &self.exabgp,
            &[&config],
            self.dir.path(),
        ));
    }

    /// Has announcer `n` send `line` to the companion.
    fn command(&self, n: u8, line: &str) {
        let fifo = self.dir.path().join(format!("commands-{n}"));
        // The announcer's process holds the FIFO open (read-write) from its start, and it has
        // started: its session was seen up. So this open does not block.
        let mut f = OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open command FIFO");
        f.write_all(format!("{line}\n").as_bytes())
            .expect("write command");
    }

    /// Waits until every announcer's API process was told its session is up.
    fn wait_sessions_up(&self) {
        let end = Instant::now() + WAIT;
        let up = |n: u8| {
            fs::read_to_string(self.dir.path().join(format!("seen-{n}")))
                .is_ok_and(|seen| seen.lines().any(|l| l.trim_end().ends_with(" up")))
        };
        while !SERVERS.iter().all(|&n| up(n)) {
            assert!(
                Instant::now() < end,
                "sessions not up within {WAIT:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        let mut out = format!("feed stats: {:?}\n", self.server.stats());
        for p in self.companion.iter().chain(self.announcers.values()) {
            out += &p.tail();
            out.push('\n');
        }
        out
    }

    /// Waits until the latest snapshot's view of the route passes `ok`; returns that view.
    fn wait_for(&self, what: &str, ok: impl Fn(&View) -> bool) -> View {
        let end = Instant::now() + WAIT;
        let mut slot = self
            .latest
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        loop {
            let view = slot.as_ref().and_then(View::of);
            if let Some(v) = view.as_ref().filter(|v| ok(v)) {
                return v.clone();
            }
            let now = Instant::now();
            if now >= end {
                drop(slot);
                panic!(
                    "timed out after {WAIT:?} waiting for {what}; last view: {:?}\n{}",
                    view.map(|v| v.members),
                    self.logs()
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

/// Asserts that buckets moved only away from `from`, and only to hops in `to`.
fn only_moved(before: &View, after: &View, from: u8, to: &[u8]) {
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

#[test]
fn exabgp_sessions_drive_the_published_groups() {
    use HopState::{Active, Draining, Failed};
    let started = Instant::now();
    let mut world = World::start();

    world.wait_sessions_up();
    eprintln!("sessions up after {:?}", started.elapsed());
    for n in SERVERS {
        world.command(n, &format!("announce route {}", route(n, "")));
    }
    let all = world.wait_for("three active hops", |v| {
        v.is(&[(2, Active), (3, Active), (4, Active)])
    });
    for n in SERVERS {
        assert!(all.buckets(n) > 0, "hop {n} owns no bucket: {all:?}");
    }
    assert!(
        all.owners.iter().all(Option::is_some),
        "a bucket without owner"
    );
    eprintln!("three active hops after {:?}", started.elapsed());

    // A withdrawn last path fails its hop; only that hop's buckets change owner.
    world.command(2, &format!("withdraw route {}", route(2, "")));
    let withdrawn = world.wait_for("hop 2 failed", |v| {
        v.is(&[(2, Failed), (3, Active), (4, Active)])
    });
    assert_eq!(withdrawn.buckets(2), 0);
    only_moved(&all, &withdrawn, 2, &[3, 4]);

    // Auto-recovery: the returning hop gets back exactly its old buckets.
    world.command(2, &format!("announce route {}", route(2, "")));
    let back = world.wait_for("hop 2 back", |v| {
        v.is(&[(2, Active), (3, Active), (4, Active)])
    });
    assert_eq!(
        back.owners, all.owners,
        "hop 2 did not get its old buckets back"
    );

    // GRACEFUL_SHUTDOWN: draining keeps the hop a member but takes its buckets away.
    world.command(
        3,
        &format!("announce route {}", route(3, " community [65535:0]")),
    );
    let drained = world.wait_for("hop 3 draining", |v| {
        v.is(&[(2, Active), (3, Draining), (4, Active)])
    });
    assert_eq!(drained.buckets(3), 0);
    only_moved(&back, &drained, 3, &[2, 4]);

    // A dead server: its session goes down and, with stale time 0, its hop fails at once.
    let t = Instant::now();
    if let Some(mut announcer) = world.announcers.remove(&4) {
        announcer.kill();
    }
    let dead = world.wait_for("hop 4 failed", |v| {
        v.is(&[(2, Active), (3, Draining), (4, Failed)])
    });
    eprintln!("session down -> hop failed in {:?}", t.elapsed());
    assert_eq!(dead.buckets(4), 0);
    only_moved(&drained, &dead, 4, &[2]);

    // The companion dies; meanwhile server 3 ends its drain. After the restart the feed
    // reconnects, asks for a route refresh and the RIB is rebuilt from what the servers resend:
    // hop 3 active again proves the new state came through the new sessions.
    let before = world.server.stats();
    if let Some(mut companion) = world.companion.take() {
        companion.kill();
    }
    world.command(3, &format!("announce route {}", route(3, "")));
    let t = Instant::now();
    world.start_companion();
    let rebuilt = world.wait_for("hop 3 active after the companion restart", |v| {
        v.is(&[(2, Active), (3, Active), (4, Failed)])
    });
    // Hop 3 returns with exactly the buckets it had before it drained.
    for (b, (old, new)) in all.owners.iter().zip(&rebuilt.owners).enumerate() {
        if *old == Some(next_hop(3)) {
            assert_eq!(*new, Some(next_hop(3)), "bucket {b} not returned to hop 3");
        }
    }
    eprintln!("companion restart -> rebuilt in {:?}", t.elapsed());
    let after = world.server.stats();
    assert_eq!(after.connections, before.connections + 1, "{after:?}");
    // Past the refresh timeout, the resent paths are still there: they were confirmed.
    std::thread::sleep(REFRESH_TIMEOUT.saturating_sub(t.elapsed()) + Duration::from_millis(500));
    let settled = world.wait_for("both paths kept after the refresh", |v| {
        v.is(&[(2, Active), (3, Active), (4, Failed)])
    });
    assert_eq!(settled.buckets(4), 0);
    let stats = world.server.stats();
    assert_eq!((stats.paths, stats.prefixes), (2, 1), "{}", world.logs());
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    assert_eq!(stats.build_errors, 0, "{stats:?}");
    eprintln!("total {:?}", started.elapsed());
}
