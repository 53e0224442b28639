//! The feed server driven by BIRD 2 as the servers' speaker: the companion ExaBGP (as in
//! `exabgp.rs`) peers with ONE BIRD process (127.0.0.2, AS 65002) that announces 192.0.2.10/32
//! three times over one ADD-PATH session, with next hops 198.51.100.2..4 (config:
//! `tests/bird/announcer.conf`). BIRD numbers the paths itself; path ids are opaque to the feed.
//! Everything is checked through the published snapshots.
//!
//! Needs BIRD 2 (`bird`, `birdc`; Debian package bird2), ExaBGP 5.0.15 and socat;
//! `scripts/test` installs them. Without them the test fails, naming `scripts/test`.
//!
//! Isolation: BIRD runs in the foreground with its control socket and config in the temp dir
//! and listens on a free port, never 179; a system BIRD, if any, is never touched. Every process
//! is in its own process group, killed when its guard drops; every wait is bounded by `WAIT`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Feed, Peer, Proc, View, WAIT, free_port, only_moved};
use ecmp_tables::nexthop::HopState;

/// The path numbers: static protocol pN announces next hop 198.51.100.N.
const PATHS: [u8; 3] = [2, 3, 4];

/// `name` from `$PATH` or the sbin directories, where Debian puts BIRD (and which a non-root
/// `$PATH` often lacks).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn bird_binaries() -> (PathBuf, PathBuf) {
    match (find_program("bird"), find_program("birdc")) {
        (Some(bird), Some(birdc)) => (bird, birdc),
        _ => panic!("BIRD 2 (bird, birdc) not found: run scripts/test, which installs bird2"),
    }
}

struct World {
    // Dropped first: BIRD goes before the companion, the server and the temp dir.
    bird: Option<Proc>,
    birdc: PathBuf,
    socket: PathBuf,
    feed: Feed,
}

impl World {
    fn start() -> World {
        let (bird, birdc) = bird_binaries();
        let feed = Feed::start(&[Peer { n: 2, asn: 65002 }]);
        let d = feed.dir.path();
        let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bird/announcer.conf");
        let config = fs::read_to_string(&template)
            .expect("read tests/bird/announcer.conf")
            .replace("@PORT@", &feed.port.to_string())
            .replace("@LISTEN@", &free_port().to_string());
        let conf = d.join("bird.conf");
        fs::write(&conf, config).expect("write bird.conf");
        let socket = d.join("bird.ctl");
        let proc = Proc::spawn(
            "bird",
            &bird,
            &[
                Path::new("-f"),
                Path::new("-c"),
                &conf,
                Path::new("-s"),
                &socket,
            ],
            &[],
            d,
        );
        World {
            bird: Some(proc),
            birdc,
            socket,
            feed,
        }
    }

    /// Runs `birdc -s SOCKET args`, bounded by `WAIT`; returns its output.
    fn birdc(&self, args: &[&str]) -> String {
        let out = self.feed.dir.path().join("birdc.out");
        let file = fs::File::create(&out).expect("birdc output file");
        let err = file.try_clone().expect("birdc output file");
        let mut child = Command::new(&self.birdc)
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("start birdc");
        let end = Instant::now() + WAIT;
        let status = loop {
            match child.try_wait().expect("wait for birdc") {
                Some(status) => break status,
                None if Instant::now() >= end => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "birdc {args:?} did not finish within {WAIT:?}\n{}",
                        self.logs()
                    );
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        let text = fs::read_to_string(&out).unwrap_or_default();
        assert!(status.success(), "birdc {args:?}: {status}\n{text}");
        text
    }

    fn logs(&self) -> String {
        let mut out = self.feed.logs();
        if let Some(p) = &self.bird {
            out += &p.tail();
            out.push('\n');
        }
        out
    }

    fn bird_tail(&self) -> String {
        self.bird.iter().map(|p| p.tail() + "\n").collect()
    }

    fn wait_for(&self, what: &str, ok: impl Fn(&View) -> bool) -> View {
        self.feed.wait_for(what, ok, || self.bird_tail())
    }
}

#[test]
fn bird_add_paths_drive_the_published_groups() {
    use HopState::{Active, Failed};
    let started = Instant::now();
    let mut world = World::start();

    // BIRD sends its three paths together once the session is up: one batch, three hops.
    let all = world.wait_for("three active hops", |v| {
        v.is(&[(2, Active), (3, Active), (4, Active)])
    });
    for n in PATHS {
        assert!(all.buckets(n) > 0, "hop {n} owns no bucket: {all:?}");
    }
    assert!(
        all.owners.iter().all(Option::is_some),
        "a bucket without owner"
    );
    world.feed.wait_stats("three paths, one prefix", |s| {
        (s.paths, s.prefixes) == (3, 1)
    });
    eprintln!("three active hops after {:?}", started.elapsed());
    // Traffic starts: from here on only the changed hops' buckets move.
    world.feed.traffic();

    // Disabling p2 withdraws that one path: its hop fails and only its buckets move.
    let t = Instant::now();
    let said = world.birdc(&["disable", "p2"]);
    assert!(said.contains("p2: disabled"), "birdc disable p2: {said}");
    let withdrawn = world.wait_for("hop 2 failed", |v| {
        v.is(&[(2, Failed), (3, Active), (4, Active)])
    });
    eprintln!("disable p2 -> hop failed in {:?}", t.elapsed());
    assert_eq!(withdrawn.buckets(2), 0);
    only_moved(&all, &withdrawn, 2, &[3, 4]);

    // Auto-recovery: the re-announced path gets back exactly its old buckets.
    let said = world.birdc(&["enable", "p2"]);
    assert!(said.contains("p2: enabled"), "birdc enable p2: {said}");
    let back = world.wait_for("hop 2 back", |v| {
        v.is(&[(2, Active), (3, Active), (4, Active)])
    });
    assert_eq!(
        back.owners, all.owners,
        "hop 2 did not get its old buckets back"
    );

    // BIRD dies: its session goes down and, with stale time 0, all three paths go, and with
    // them the route.
    let t = Instant::now();
    if let Some(mut bird) = world.bird.take() {
        bird.kill();
    }
    world
        .feed
        .wait_for_no_route("the route gone after BIRD died", String::new);
    eprintln!("BIRD killed -> route gone in {:?}", t.elapsed());
    let stats = world
        .feed
        .wait_stats("no path left", |s| (s.paths, s.prefixes) == (0, 0));
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    assert_eq!(stats.build_errors, 0, "{stats:?}");
    eprintln!("total {:?}", started.elapsed());
}
