//! The feed server driven by real BGP sessions: a companion ExaBGP (passive, ADD-PATH receive,
//! route refresh) streams its JSON through socat into an in-process [`FeedServer`], while three
//! announcer ExaBGPs (127.0.0.2..4, ADD-PATH send) stand in for servers announcing 192.0.2.10/32,
//! over eBGP (AS 6500N) or iBGP (all in AS 65000, so LOCAL_PREF travels).
//! Everything is checked through the published snapshots: the route's group members, their
//! states and the owner of every bucket.
//!
//! Needs ExaBGP 5.0.15 (`ECMP_EXABGP`, else the repo's `.venv-exabgp`) and socat; `scripts/test`
//! installs both. Without them the test fails, naming `scripts/test`; it never passes silently.
//!
//! Isolation: the BGP port is picked free at run time, configs and sockets live in a temp dir,
//! and every process is started in its own process group, killed by that id when its guard drops
//! (assertion failures included). Every wait is bounded by [`WAIT`].

mod common;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Feed, Peer, Proc, REFRESH_TIMEOUT, View, WAIT, next_hop, only_moved, write_script};
use ecmp_tables::nexthop::HopState;

/// The announcers' numbers: local address 127.0.0.N, AS 6500N, next hop 198.51.100.N, path id N.
const SERVERS: [u8; 3] = [2, 3, 4];

fn route(n: u8, extra: &str) -> String {
    format!("192.0.2.10/32 next-hop 198.51.100.{n} path-information {n}{extra}")
}

struct World {
    // Dropped first: the announcers go before the companion, the server and the temp dir.
    announcers: BTreeMap<u8, Proc>,
    feed: Feed,
}

/// How the announcers peer with the companion (AS 65000).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sessions {
    /// Announcer N in AS 6500N.
    Ebgp,
    /// Every announcer in AS 65000.
    Ibgp,
}

impl Sessions {
    fn asn(self, n: u8) -> u32 {
        match self {
            Sessions::Ebgp => 65000 + u32::from(n),
            Sessions::Ibgp => 65000,
        }
    }
}

impl World {
    fn start(sessions: Sessions) -> World {
        let peers = SERVERS.map(|n| Peer {
            n,
            asn: sessions.asn(n),
        });
        let feed = Feed::start(&peers);
        let port = feed.port;
        let d = feed.dir.path();
        let announcer_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/exabgp/announcer.py");
        // The venv's interpreter when there is one beside ExaBGP, else the system's.
        let venv_python = feed.exabgp.with_file_name("python3");
        let python = if venv_python.is_file() {
            venv_python.display().to_string()
        } else {
            "python3".to_owned()
        };
        let mut announcers = BTreeMap::new();
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
                   local-as {asn}; peer-as 65000; connect {port}; hold-time 3;\n\
                   capability {{ add-path send; route-refresh; }}\n\
                   family {{ ipv4 unicast; }}\n\
                   api {{ processes [ announce ]; neighbor-changes; }}\n\
                 }}\n",
                helper.display(),
                asn = sessions.asn(n),
            );
            let path = d.join(format!("announcer-{n}.conf"));
            fs::write(&path, config).expect("announcer config");
            let proc = common::spawn_exabgp(&format!("announcer-{n}"), &feed.exabgp, &path, d);
            announcers.insert(n, proc);
        }
        World { announcers, feed }
    }

    /// Has announcer `n` send `line` to the companion.
    fn command(&self, n: u8, line: &str) {
        let fifo = self.feed.dir.path().join(format!("commands-{n}"));
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
            fs::read_to_string(self.feed.dir.path().join(format!("seen-{n}")))
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
        let mut out = self.feed.logs();
        for p in self.announcers.values() {
            out += &p.tail();
            out.push('\n');
        }
        out
    }

    fn wait_for(&self, what: &str, ok: impl Fn(&View) -> bool) -> View {
        self.feed.wait_for(what, ok, || {
            self.announcers.values().map(|p| p.tail() + "\n").collect()
        })
    }
}

#[test]
fn exabgp_sessions_drive_the_published_groups() {
    use HopState::{Active, Draining, Failed};
    let started = Instant::now();
    let mut world = World::start(Sessions::Ebgp);

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
    // Traffic starts: from here on only the changed hops' buckets move.
    world.feed.traffic();

    // A withdrawn last path fails its hop; only that hop's buckets change owner.
    world.command(2, &format!("withdraw route {}", route(2, "")));
    let withdrawn = world.wait_for("hop 2 failed", |v| {
        v.is(&[(2, Failed), (3, Active), (4, Active)])
    });
    assert_eq!(withdrawn.buckets(2), 0);
    only_moved(&all, &withdrawn, 2, &[3, 4]);
    // The operator's view (`ecmpctl --json route`) agrees: hop 2 failed, owns nothing, and
    // exactly the buckets it owned are marked replaced.
    let shown = world.feed.ctl(&["route", "192.0.2.10/32"]);
    let shown = &shown[0];
    assert_eq!(shown["summary"]["origin"], "bgp");
    for m in shown["members"].as_array().expect("members") {
        let n = match m["addr"].as_str() {
            Some("198.51.100.2") => 2,
            Some("198.51.100.3") => 3,
            Some("198.51.100.4") => 4,
            other => panic!("unexpected member {other:?}"),
        };
        assert_eq!(m["buckets"], withdrawn.buckets(n) as u64, "{m}");
        let state = if n == 2 { "failed" } else { "active" };
        assert_eq!(m["state"], state, "{m}");
    }
    let marks: Vec<bool> = shown["buckets"]
        .as_array()
        .expect("bucket map")
        .iter()
        .map(|b| b["replaced"] == true)
        .collect();
    let moved: Vec<bool> = all.owners.iter().map(|o| *o == Some(next_hop(2))).collect();
    assert_eq!(
        marks, moved,
        "replaced marks are exactly hop 2's old buckets"
    );
    let what_if = world.feed.ctl(&["what-if", "remove", "198.51.100.3"]);
    assert_eq!(what_if["buckets"], withdrawn.buckets(3) as u64);

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
    let shown = world.feed.ctl(&["route", "192.0.2.10/32"]);
    let states: Vec<(String, String)> = shown[0]["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["addr"].to_string(), m["state"].to_string()))
        .collect();
    assert!(
        states.contains(&("\"198.51.100.3\"".to_owned(), "\"draining\"".to_owned())),
        "{states:?}"
    );
    let peers = world.feed.ctl(&["peers"]);
    assert_eq!(peers.as_array().map(Vec::len), Some(3), "{peers}");

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
    let before = world.feed.server.stats();
    world.feed.kill_companion();
    world.command(3, &format!("announce route {}", route(3, "")));
    let t = Instant::now();
    world.feed.start_companion();
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
    let after = world.feed.server.stats();
    assert_eq!(after.connections, before.connections + 1, "{after:?}");
    // Past the refresh timeout, the resent paths are still there: they were confirmed.
    std::thread::sleep(REFRESH_TIMEOUT.saturating_sub(t.elapsed()) + Duration::from_millis(500));
    let settled = world.wait_for("both paths kept after the refresh", |v| {
        v.is(&[(2, Active), (3, Active), (4, Failed)])
    });
    assert_eq!(settled.buckets(4), 0);
    let stats = world.feed.server.stats();
    assert_eq!((stats.paths, stats.prefixes), (2, 1), "{}", world.logs());
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    assert_eq!(stats.build_errors, 0, "{stats:?}");
    eprintln!("total {:?}", started.elapsed());
}

/// `ecmpctl route 192.0.2.10/32` as the operator reads it (not `--json`).
fn route_text(world: &World) -> String {
    let out = Command::new(common::ecmpctl_binary())
        .arg("--socket")
        .arg(world.feed.ctl_socket())
        .args(["--timeout", "5", "route", "192.0.2.10/32"])
        .output()
        .expect("run ecmpctl");
    assert!(out.status.success(), "ecmpctl route: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Scenario 4 of the field notes: a server is drained by de-preferring its path (a route-map
/// setting LOCAL_PREF 1); it stays announced and listed but takes no new flows, and returns when
/// its preference ties the others again.
#[test]
fn exabgp_local_preference_drains_and_restores_a_path() {
    use HopState::{Active, Draining};
    let started = Instant::now();
    let world = World::start(Sessions::Ibgp);
    world.wait_sessions_up();
    for n in SERVERS {
        world.command(
            n,
            &format!("announce route {}", route(n, " local-preference 100")),
        );
    }
    let all = world.wait_for("three active hops", |v| {
        v.is(&[(2, Active), (3, Active), (4, Active)])
    });
    for n in SERVERS {
        assert!(all.buckets(n) > 0, "hop {n} owns no bucket: {all:?}");
    }

    // Server 3 de-preferred: still a member, draining, and only its buckets moved.
    world.command(
        3,
        &format!("announce route {}", route(3, " local-preference 1")),
    );
    let drained = world.wait_for("hop 3 draining (not best)", |v| {
        v.is(&[(2, Active), (3, Draining), (4, Active)])
    });
    assert_eq!(drained.buckets(3), 0);
    only_moved(&all, &drained, 3, &[2, 4]);
    let shown = world.feed.ctl(&["route", "192.0.2.10/32"]);
    let members = shown[0]["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{shown}");
    for m in members {
        if m["addr"] == "198.51.100.3" {
            assert_eq!(m["state"], "draining", "{m}");
            assert_eq!(
                m["reason"],
                serde_json::json!({"kind": "not-best", "criterion": "local-pref", "value": 1, "best": 100}),
                "{m}"
            );
        } else {
            assert_eq!(m["state"], "active", "{m}");
            assert!(m.get("reason").is_none(), "{m}");
        }
    }
    assert_eq!(shown[0]["summary"]["draining"], 1, "{shown}");
    let text = route_text(&world);
    let line = text
        .lines()
        .find(|l| l.contains("198.51.100.3"))
        .unwrap_or_else(|| panic!("hop 3 not listed:\n{text}"));
    assert!(
        line.contains("draining") && line.ends_with("not best: local-pref 1 < 100"),
        "{text}"
    );

    // Back to 100: active again, with exactly its old buckets (auto-recovery).
    world.command(
        3,
        &format!("announce route {}", route(3, " local-preference 100")),
    );
    let back = world.wait_for("hop 3 active again", |v| {
        v.is(&[(2, Active), (3, Active), (4, Active)])
    });
    assert_eq!(
        back.owners, all.owners,
        "hop 3 did not get its old buckets back"
    );
    let shown = world.feed.ctl(&["route", "192.0.2.10/32"]);
    assert!(
        shown[0]["members"]
            .as_array()
            .expect("members")
            .iter()
            .all(|m| m["state"] == "active" && m.get("reason").is_none()),
        "{shown}"
    );

    // GRACEFUL_SHUTDOWN on an iBGP path still drains it, and says so.
    world.command(
        2,
        &format!(
            "announce route {}",
            route(2, " local-preference 100 community [65535:0]")
        ),
    );
    world.wait_for("hop 2 draining (graceful shutdown)", |v| {
        v.is(&[(2, Draining), (3, Active), (4, Active)])
    });
    let shown = world.feed.ctl(&["route", "192.0.2.10/32"]);
    let gshut = shown[0]["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["addr"] == "198.51.100.2")
        .cloned()
        .expect("hop 2 listed");
    assert_eq!(
        gshut["reason"],
        serde_json::json!({"kind": "graceful-shutdown"}),
        "{gshut}"
    );
    let stats = world.feed.server.stats();
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    assert_eq!(stats.build_errors, 0, "{stats:?}");
    eprintln!("total {:?}", started.elapsed());
}
