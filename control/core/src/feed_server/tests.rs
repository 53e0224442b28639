//! The feed front end over real Unix sockets in temp dirs, served by a control thread and fed the
//! verbatim ExaBGP 5.0 lines of `shared/reference/bgp-feed.md`; plus the line splitter alone.
//! Every wait is bounded by [`WAIT`].

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use ecmp_tables::Snapshot;
use ecmp_tables::nexthop::HopState;

use super::*;
use crate::builder::Builder;
use crate::control::{ControlConfig, ControlHandle, ControlThread, FeedStats};
use crate::rib::{Rib, RibConfig};
use crate::testkit::*;

/// The next hops of the group routing `addr` that are not failed; empty when there is no route.
fn hops(snapshot: &Snapshot, addr: &str) -> BTreeSet<IpAddr> {
    let IpAddr::V4(a) = ip(addr) else {
        panic!("IPv4 only")
    };
    let gid = snapshot.fib4.lookup_addr(a);
    let Some(group) = snapshot.group(gid) else {
        return BTreeSet::new();
    };
    group
        .members()
        .iter()
        .filter(|m| m.hop != 0 && m.state != HopState::Failed)
        .map(|m| snapshot.hop(m.hop).unwrap().addr)
        .collect()
}

fn set(addrs: &[&str]) -> BTreeSet<IpAddr> {
    addrs.iter().map(|a| ip(a)).collect()
}

struct Harness {
    // Dropped after `server`, whose socket file lives inside.
    server: Option<ControlHandle<Resolve>>,
    snapshots: Receiver<Snapshot>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start(config: FeedServerConfig, rib: RibConfig) -> Harness {
        Harness::run(config, ControlConfig::default(), rib)
    }

    fn run(config: FeedServerConfig, control: ControlConfig, rib: RibConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.sock");
        let server = FeedServer::bind(&path, config).unwrap();
        assert_eq!(server.path(), path.as_path());
        let (tx, snapshots) = channel();
        let handle = ControlThread::new(control)
            .serve(server)
            .spawn(Rib::new(rib), builder(), move |s| {
                // The test may have stopped listening; the server must not care.
                let _ = tx.send(s);
            })
            .unwrap();
        Harness {
            server: Some(handle),
            snapshots,
            path,
            _dir: dir,
        }
    }

    fn with_window(window: Duration) -> Harness {
        Harness::run(
            FeedServerConfig::default(),
            ControlConfig {
                batch_window: window,
                ..ControlConfig::default()
            },
            RibConfig::default(),
        )
    }

    fn server(&self) -> &ControlHandle<Resolve> {
        self.server.as_ref().unwrap()
    }

    fn stats(&self) -> FeedStats {
        self.server().stats()
    }

    /// Connects and reads the route-refresh request(s), so the server has taken the connection.
    fn connect(&self) -> UnixStream {
        let stream = UnixStream::connect(&self.path).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        for _ in FeedServerConfig::default().refresh_families {
            line.clear();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with("announce route-refresh "), "{line:?}");
        }
        stream
    }

    fn next(&self) -> Snapshot {
        self.snapshots
            .recv_timeout(WAIT)
            .expect("a snapshot within the wait")
    }

    fn none_within(&self, d: Duration) {
        if let Ok(s) = self.snapshots.recv_timeout(d) {
            panic!("unexpected snapshot, generation {}", s.generation);
        }
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&FeedStats) -> bool) -> FeedStats {
        let end = Instant::now() + WAIT;
        loop {
            let stats = self.stats();
            if pred(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}: {stats:?}"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the server, checks it ended in bounded time and removed its socket file.
    fn finish(mut self) -> (Rib, Builder<Resolve>) {
        let started = Instant::now();
        let served = self.server.take().unwrap().join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "slow stop");
        assert!(!self.path.exists(), "socket file left behind");
        served
    }
}

#[test]
fn verbatim_session_routes_withdraws_and_drops_on_down() {
    let h = Harness::with_window(Duration::from_millis(2));
    let mut c = h.connect();
    send(&mut c, &[UP, ANNOUNCE]);
    let s = h.next();
    assert_eq!(hops(&s, PREFIX), set(&["198.51.100.2"]));
    assert!(hops(&s, "192.0.2.11").is_empty());

    send(&mut c, &[WITHDRAW]);
    assert!(hops(&h.next(), PREFIX).is_empty());

    // Stale time 0: the peer's paths go on "down" without any withdraw.
    send(&mut c, &[ANNOUNCE]);
    assert_eq!(hops(&h.next(), PREFIX), set(&["198.51.100.2"]));
    send(&mut c, &[DOWN]);
    assert!(hops(&h.next(), PREFIX).is_empty());

    // The RIB counts are stored just after the publish: wait for them to settle.
    let stats = h.wait_for("5 lines, no path", |s| s.lines == 5 && s.paths == 0);
    assert_eq!(stats.publishes, 4);
    assert_eq!(stats.prefixes, 0);
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.not_json + stats.decode_errors + stats.oversized, 0);
    let (rib, _) = h.finish();
    assert_eq!(rib.path_count(), 0);
}

#[test]
fn one_burst_of_three_announcers_is_one_publish() {
    let h = Harness::with_window(Duration::from_millis(100));
    let mut c = h.connect();
    let lines: Vec<String> = ["2", "3", "4"]
        .iter()
        .flat_map(|n| {
            let peer = format!("127.0.0.{n}");
            [
                from_peer(UP, &peer),
                announce(
                    &peer,
                    &format!("198.51.100.{n}"),
                    "192.0.2.10/32",
                    "0.0.0.1",
                ),
            ]
        })
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    send(&mut c, &refs);
    let s = h.next();
    assert_eq!(
        hops(&s, PREFIX),
        set(&["198.51.100.2", "198.51.100.3", "198.51.100.4"])
    );
    h.none_within(Duration::from_millis(300));
    let stats = h.wait_for("6 lines", |s| s.lines == 6);
    assert_eq!(stats.publishes, 1);
    assert_eq!((stats.paths, stats.prefixes), (3, 1));
    h.finish();
}

#[test]
fn four_thousand_paths_in_324_lines_are_a_handful_of_publishes() {
    let h = Harness::with_window(Duration::from_millis(20));
    let mut c = h.connect();
    // 4 announcers (ADD-PATH, one path each) x 1,000 prefixes; many prefixes per line, as the
    // companion prints them: 81 lines per announcer.
    let one = r#"[ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ]"#;
    let mut lines = Vec::new();
    for n in 2..6u32 {
        let peer = format!("127.0.0.{n}");
        lines.push(from_peer(UP, &peer));
        for first in 0..81u32 {
            let entries: Vec<String> = (first..1000)
                .step_by(81)
                .map(|i| {
                    format!(
                        r#"{{ "nlri": "10.{}.{}.0/24", "path-information": "0.0.0.{n}" }}"#,
                        i / 256,
                        i % 256
                    )
                })
                .collect();
            let line = from_peer(ANNOUNCE, &peer)
                .replace("198.51.100.2", &format!("198.51.100.{n}"))
                .replace(one, &format!("[ {} ]", entries.join(", ")));
            lines.push(line);
        }
    }
    assert_eq!(lines.len(), 4 + 4 * 81);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    send(&mut c, &refs);
    let stats = h.wait_for("4,000 paths", |s| s.paths == 4000 && s.prefixes == 1000);
    assert!(
        (1..=8).contains(&stats.publishes),
        "{} publishes",
        stats.publishes
    );
    let last = h.snapshots.try_iter().last().expect("published");
    let all = set(&[
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
        "198.51.100.5",
    ]);
    assert_eq!(hops(&last, "10.0.0.1"), all);
    assert_eq!(hops(&last, "10.3.231.1"), all);
    h.finish();
}

#[test]
fn done_garbage_and_bad_lines_are_counted_and_change_nothing() {
    let h = Harness::with_window(Duration::from_millis(2));
    let mut c = h.connect();
    // `done`, garbage, invalid UTF-8, a state line without its neighbor, a blank line.
    c.write_all(b"done\nnot { json\n\xff\xfe\n{ \"type\": \"state\" }\n\n")
        .unwrap();
    let stats = h.wait_for("5 lines", |s| s.lines == 5);
    assert_eq!(stats.not_json, 4);
    assert_eq!(stats.decode_errors, 1);
    assert!(
        stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("neighbor")),
        "{stats:?}"
    );
    h.none_within(Duration::from_millis(50));
    assert_eq!(h.stats().publishes, 0);

    send(&mut c, &[UP, ANNOUNCE]);
    assert_eq!(hops(&h.next(), PREFIX), set(&["198.51.100.2"]));
    h.finish();
}

#[test]
fn exabgp_error_acknowledgements_are_counted_apart_from_done() {
    let h = Harness::with_window(Duration::from_millis(2));
    let mut c = h.connect();
    // ExaBGP's answers to commands (`error` when it refused one), and lines that only look
    // like one.
    c.write_all(b"done\nerror\ndone\nerror\r\nerrors\n error\n")
        .unwrap();
    let stats = h.wait_for("6 lines", |s| s.lines == 6);
    assert_eq!(stats.not_json, 6, "{stats:?}");
    assert_eq!(stats.command_errors, 2, "{stats:?}");
    h.finish();
}

#[test]
fn oversized_line_is_discarded_and_the_next_applies() {
    let h = Harness::start(
        FeedServerConfig {
            max_line: 1024,
            ..FeedServerConfig::default()
        },
        RibConfig::default(),
    );
    let mut c = h.connect();
    // The oversized line arrives in pieces, so it is discarded across several reads.
    let junk = vec![b'x'; 3000];
    for piece in junk.chunks(700) {
        c.write_all(piece).unwrap();
        c.flush().unwrap();
        thread::sleep(Duration::from_millis(5));
    }
    send(&mut c, &["", ANNOUNCE]);
    assert_eq!(hops(&h.next(), PREFIX), set(&["198.51.100.2"]));
    let stats = h.wait_for("one line", |s| s.lines == 1);
    assert_eq!(stats.oversized, 1);
    assert_eq!(stats.not_json, 0);
    h.finish();
}

#[test]
fn route_refresh_is_written_back_on_connect() {
    let h = Harness::start(
        FeedServerConfig {
            refresh_families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
            ..FeedServerConfig::default()
        },
        RibConfig::default(),
    );
    let c = UnixStream::connect(&h.path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let want = b"announce route-refresh ipv4 unicast\nannounce route-refresh ipv6 unicast\n";
    let mut got = vec![0u8; want.len()];
    (&c).read_exact(&mut got).unwrap();
    assert_eq!(got, want);
    h.finish();
}

#[test]
fn reconnect_refresh_replaces_paths_atomically_at_end_of_rib() {
    let h = Harness::with_window(Duration::from_millis(2));
    let mut first = h.connect();
    send(
        &mut first,
        &[
            UP,
            &announce("127.0.0.2", "198.51.100.2", "192.0.2.10/32", "0.0.0.1"),
            &announce("127.0.0.2", "198.51.100.3", "192.0.2.10/32", "0.0.0.2"),
        ],
    );
    let mut s = h.next();
    while hops(&s, PREFIX).len() < 2 {
        s = h.next();
    }
    assert_eq!(hops(&s, PREFIX), set(&["198.51.100.2", "198.51.100.3"]));
    drop(first);

    // The companion restarted its helper: the new connection gets a refresh request, resends
    // one of the two paths, then End-of-RIB.
    let mut second = h.connect();
    send(
        &mut second,
        &[&announce(
            "127.0.0.2",
            "198.51.100.2",
            "192.0.2.10/32",
            "0.0.0.1",
        )],
    );
    // The resent path changes no hop set: nothing to publish yet, the other path still routes.
    h.none_within(Duration::from_millis(50));
    send(&mut second, &[EOR]);
    assert_eq!(hops(&h.next(), PREFIX), set(&["198.51.100.2"]));
    h.none_within(Duration::from_millis(50));
    let (rib, _) = h.finish();
    assert_eq!(rib.path_count(), 1);
}

#[test]
fn refresh_timeout_drops_unconfirmed_paths_without_end_of_rib() {
    let h = Harness::start(
        FeedServerConfig::default(),
        RibConfig {
            refresh_timeout: Duration::from_millis(150),
            ..RibConfig::default()
        },
    );
    let mut first = h.connect();
    send(&mut first, &[UP, ANNOUNCE]);
    assert_eq!(hops(&h.next(), PREFIX), set(&["198.51.100.2"]));
    drop(first);
    let started = Instant::now();
    let _second = h.connect();
    assert!(hops(&h.next(), PREFIX).is_empty());
    assert!(started.elapsed() >= Duration::from_millis(150));
    h.finish();
}

#[test]
fn stale_paths_keep_forwarding_until_the_stale_time() {
    let h = Harness::start(
        FeedServerConfig::default(),
        RibConfig {
            stale_time: Duration::from_millis(150),
            ..RibConfig::default()
        },
    );
    let mut c = h.connect();
    send(&mut c, &[UP, ANNOUNCE]);
    assert_eq!(hops(&h.next(), PREFIX), set(&["198.51.100.2"]));
    let down_at = Instant::now();
    send(&mut c, &[DOWN]);
    assert!(hops(&h.next(), PREFIX).is_empty());
    assert!(down_at.elapsed() >= Duration::from_millis(150));
    h.finish();
}

#[test]
fn socket_file_has_mode_0660_and_goes_on_stop() {
    let h = Harness::with_window(Duration::from_millis(2));
    let mode = fs::metadata(&h.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    h.finish();
}

#[test]
fn bind_replaces_a_stale_socket_and_refuses_live_ones_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.sock");
    // A socket file whose server is gone.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = FeedServer::bind(&path, FeedServerConfig::default()).unwrap();
    assert!(matches!(
        FeedServer::bind(&path, FeedServerConfig::default()),
        Err(SocketError::InUse(_))
    ));
    drop(server);
    assert!(!path.exists(), "an unused server removes its socket file");

    let file = dir.path().join("plain");
    fs::write(&file, b"keep me").unwrap();
    assert!(matches!(
        FeedServer::bind(&file, FeedServerConfig::default()),
        Err(SocketError::NotASocket(_))
    ));
    assert_eq!(fs::read(&file).unwrap(), b"keep me");

    assert!(matches!(
        FeedServer::bind(
            dir.path().join("zero"),
            FeedServerConfig {
                max_line: 0,
                ..FeedServerConfig::default()
            }
        ),
        Err(SocketError::Config(_))
    ));
}

#[test]
fn hundred_concurrent_clients_are_all_applied() {
    let h = Harness::with_window(Duration::from_millis(2));
    let clients: Vec<_> = (0..100u32)
        .map(|i| {
            let path = h.path.clone();
            thread::spawn(move || {
                let mut c = UnixStream::connect(&path).unwrap();
                let line = announce(
                    "127.0.0.2",
                    "198.51.100.2",
                    &format!("10.0.{i}.0/24"),
                    &Ipv4Addr::from(i + 1).to_string(),
                );
                send(&mut c, &[&line]);
                c
            })
        })
        .collect();
    // Keep every connection open until all are applied: they are served concurrently.
    let streams: Vec<UnixStream> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let stats = h.wait_for("100 paths", |s| s.paths == 100);
    assert_eq!(stats.connections, 100);
    assert_eq!(stats.lines, 100);
    let last = h.snapshots.try_iter().last().expect("published");
    for i in 0..100 {
        assert_eq!(
            hops(&last, &format!("10.0.{i}.1")),
            set(&["198.51.100.2"]),
            "10.0.{i}.0/24"
        );
    }
    drop(streams);
    let (rib, builder) = h.finish();
    assert_eq!(rib.prefix_count(), 100);
    assert_eq!(builder.routes().count(), 100);
}

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    let h = Harness::with_window(Duration::from_millis(2));
    // Never reads its route-refresh request, nor anything after.
    let silent = UnixStream::connect(&h.path).unwrap();
    h.wait_for("the silent client", |s| s.connections == 1);
    let mut c = h.connect();
    send(&mut c, &[UP, ANNOUNCE]);
    assert_eq!(hops(&h.next(), PREFIX), set(&["198.51.100.2"]));
    drop(silent);
    h.finish();
}

#[test]
fn line_splitter_bounds_lines_across_chunks() {
    let mut split = LineSplitter::new(4);
    let mut out: Vec<Option<Vec<u8>>> = Vec::new();
    let mut collect = |p: Piece<'_>| {
        out.push(match p {
            Piece::Line(l) => Some(l.to_vec()),
            Piece::Oversized => None,
        })
    };
    split.feed(b"ab", &mut collect);
    split.feed(b"cd\nabcde", &mut collect);
    split.feed(b"fgh", &mut collect);
    split.feed(b"ij\n\nxyz\n1234", &mut collect);
    split.feed(b"5\nlast", &mut collect);
    split.finish(&mut collect);
    assert_eq!(
        out,
        vec![
            Some(b"abcd".to_vec()),
            None,
            Some(Vec::new()),
            Some(b"xyz".to_vec()),
            None,
            Some(b"last".to_vec()),
        ]
    );
}

#[test]
fn line_splitter_abandons_an_oversized_line_past_the_discard_bound() {
    let mut split = LineSplitter::new(4);
    let pieces = std::cell::Cell::new(0);
    let count = |_: Piece<'_>| pieces.set(pieces.get() + 1);
    let fed = split.feed(b"ab", count);
    assert_eq!(fed, Fed::default());
    assert!(split.in_line());
    // Oversized at once, then discarded while within DISCARD_FACTOR * 4 bytes.
    let mut seen = 2;
    while seen + 8 <= 4 * DISCARD_FACTOR {
        assert!(!split.feed(b"xxxxxxxx", count).abandon, "at {seen}");
        seen += 8;
    }
    assert_eq!(pieces.get(), 1, "one Oversized");
    // Its newline within the bound ends it: the next line is a line again.
    let fed = split.feed(b"\nok\n", count);
    assert!(fed.ended_line && !fed.abandon && !split.in_line());
    assert_eq!(pieces.get(), 2, "then \"ok\"");
    // Past the bound without a newline: abandon.
    let long = vec![b'y'; 4 * DISCARD_FACTOR + 1];
    assert!(split.feed(&long, count).abandon);
}
