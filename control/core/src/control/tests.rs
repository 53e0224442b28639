//! The control thread's answers to control requests, end to end: routes come in through the feed
//! front end, requests through the control socket front end, over real Unix sockets; a fake data
//! plane takes every publication at once.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use ecmp_proto::ctl::{
    Changed, ConvergenceReply, FlowsReply, HopFlows, HopStateName, RouteDetail, RouteOrigin,
    RouteSummary, StatsReply, TraceQuery, TraceReply, TraceVia, WhatIfReply,
};

use super::*;
use crate::ctl_server::{CtlConfig, CtlListener};
use crate::feed_server::{FeedServer, FeedServerConfig};
use crate::metrics_server::{MAX_HEAD, MetricsListener};
use crate::rib::RibConfig;
use crate::testkit::*;

/// Takes every publication at once; reports a fixed flow count per hop.
struct FakeDataplane {
    generation: Arc<AtomicU64>,
    /// What `worker_polls` answers (none: no worker, never stalled).
    polls: Arc<std::sync::Mutex<Vec<u64>>>,
    /// Whether a capture stream it handed out is still alive.
    capturing: Arc<AtomicBool>,
}

/// A capture that yields three numbered frames per call until dropped (none when `quiet`).
struct FakeCapture {
    next: u64,
    quiet: bool,
    live: Arc<AtomicBool>,
}

impl CaptureStream for FakeCapture {
    fn next(&mut self, out: &mut Vec<CapturedPacket>, wait: Duration) {
        if self.quiet {
            thread::sleep(wait);
            return;
        }
        for _ in 0..3 {
            out.push(CapturedPacket {
                port: 0,
                dir: ecmp_proto::ctl::CaptureDir::Rx,
                ts_ns: self.next,
                len: 1,
                data: "00".to_owned(),
                drop: None,
            });
            self.next += 1;
        }
    }
    fn ring_dropped(&self) -> u64 {
        2
    }
}

impl Drop for FakeCapture {
    fn drop(&mut self) {
        self.live.store(false, Ordering::SeqCst);
    }
}

impl Dataplane for FakeDataplane {
    fn stats(&self) -> StatsReply {
        StatsReply {
            uptime_s: 1.0,
            tsc_hz: None,
            ports: Vec::new(),
            workers: Vec::new(),
            drops: vec![("no_route".to_owned(), 3)],
            hops: Vec::new(),
            feed: Vec::new(),
            memory: Vec::new(),
            announce: Vec::new(),
            devices: Vec::new(),
        }
    }
    fn flows(&self, _top: usize) -> Result<FlowsReply, DataQueryError> {
        Ok(FlowsReply {
            total: 10,
            per_worker: vec![10],
            per_hop: vec![HopFlows { hop: 1, flows: 7 }, HopFlows { hop: 2, flows: 3 }],
            flows: Vec::new(),
            capacity: 64,
        })
    }
    fn trace(&self, q: &TraceQuery) -> Result<TraceReply, DataQueryError> {
        Ok(TraceReply {
            worker: Some(0),
            group: 1,
            hop: 1,
            addr: q.dst,
            via: TraceVia::Bucket { bucket: 5 },
        })
    }
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
    fn applied_generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
    fn port_name(&self, port: u16) -> Option<String> {
        Some(format!("veth{port}"))
    }
    fn worker_polls(&self) -> Vec<u64> {
        self.polls.lock().unwrap().clone()
    }
    fn capture(
        &self,
        request: &CaptureRequest,
    ) -> Result<(CaptureStarted, Box<dyn CaptureStream>), DataQueryError> {
        if request.filter.as_deref() == Some("bad") {
            return Err(DataQueryError::BadQuery(
                "bad capture filter \"bad\"".to_owned(),
            ));
        }
        self.capturing.store(true, Ordering::SeqCst);
        Ok((
            CaptureStarted {
                ports: vec!["veth0".to_owned()],
                snaplen: request.snaplen,
            },
            Box::new(FakeCapture {
                next: 0,
                quiet: request.filter.as_deref() == Some("quiet"),
                live: Arc::clone(&self.capturing),
            }),
        ))
    }
}

struct CtlHarness {
    server: Option<ControlHandle<Resolve>>,
    feed: PathBuf,
    ctl: PathBuf,
    publishes: Arc<AtomicU64>,
    latest: Arc<std::sync::Mutex<Option<Snapshot>>>,
    capturing: Arc<AtomicBool>,
    polls: Arc<std::sync::Mutex<Vec<u64>>>,
    _dir: tempfile::TempDir,
}

impl CtlHarness {
    fn start() -> CtlHarness {
        CtlHarness::start_with(None)
    }

    /// Also serves `metrics`, when given.
    fn start_with(metrics: Option<MetricsListener>) -> CtlHarness {
        CtlHarness::start_full(metrics, crate::announce::AnnounceConfig::default())
    }

    /// Also serves `metrics`, when given, and announces `announce`.
    fn start_full(
        metrics: Option<MetricsListener>,
        announce: crate::announce::AnnounceConfig,
    ) -> CtlHarness {
        // A wide window, so the three first announcements join the group together.
        let config = ControlConfig {
            batch_window: Duration::from_millis(50),
            startup_hold: Duration::ZERO,
        };
        CtlHarness::start_config(metrics, announce, config, RibConfig::default())
    }

    /// Batches as `config` says, times paths as `rib` says.
    fn start_config(
        metrics: Option<MetricsListener>,
        announce: crate::announce::AnnounceConfig,
        config: ControlConfig,
        rib: RibConfig,
    ) -> CtlHarness {
        let dir = tempfile::tempdir().unwrap();
        let feed = dir.path().join("feed.sock");
        let ctl = dir.path().join("ctl.sock");
        let generation = Arc::new(AtomicU64::new(0));
        let listener = CtlListener::bind(&ctl, CtlConfig::default()).unwrap();
        let server = FeedServer::bind(&feed, FeedServerConfig::default()).unwrap();
        let publishes = Arc::clone(&generation);
        let latest = Arc::new(std::sync::Mutex::new(None));
        let latest_to = Arc::clone(&latest);
        let capturing = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut thread = ControlThread::new(config)
            .serve(listener)
            .serve(server)
            .with_announcements(announce);
        if let Some(m) = metrics {
            thread = thread.serve(m);
        }
        let handle = thread
            .with_dataplane(Box::new(FakeDataplane {
                generation: Arc::clone(&generation),
                polls: Arc::clone(&polls),
                capturing: Arc::clone(&capturing),
            }))
            .spawn(Rib::new(rib), builder(), move |s| {
                publishes.fetch_add(1, Ordering::Relaxed);
                *latest_to.lock().unwrap() = Some(s);
            })
            .unwrap();
        CtlHarness {
            server: Some(handle),
            feed,
            ctl,
            publishes: generation,
            latest,
            capturing,
            polls,
            _dir: dir,
        }
    }

    /// Traffic uses every bucket of every group last published: from now on the stateful modes
    /// move buckets by the resilient rules instead of rebuilding their canonical table.
    fn traffic(&self) {
        let latest = self.latest.lock().unwrap();
        let Some(snapshot) = latest.as_ref() else {
            return;
        };
        for gid in 1..snapshot.groups.len() as ecmp_tables::nexthop::GroupId {
            if let Some(table) = snapshot.group(gid) {
                (0..table.bucket_count()).for_each(|hash| table.touch(hash, 0));
            }
        }
    }

    fn client(&self) -> (UnixStream, BufReader<UnixStream>) {
        let s = UnixStream::connect(&self.ctl).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        (s, r)
    }

    fn raw(&self, line: &[u8]) -> Reply {
        let (mut s, mut r) = self.client();
        s.write_all(line).unwrap();
        let mut reply = String::new();
        r.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap()
    }

    fn ask(&self, req: &Request) -> Reply {
        let mut line = serde_json::to_vec(req).unwrap();
        line.push(b'\n');
        self.raw(&line)
    }

    fn ok<T: serde::de::DeserializeOwned>(&self, req: &Request) -> T {
        let reply = self.ask(req);
        assert!(reply.ok, "{req:?}: {reply:?}");
        serde_json::from_value(reply.result).unwrap()
    }

    /// Feeds three servers announcing 192.0.2.10/32 and waits until the group has all three.
    fn three_servers(&self) {
        let mut c = UnixStream::connect(&self.feed).unwrap();
        let lines = [
            UP.to_owned(),
            announce("127.0.0.2", "198.51.100.1", "192.0.2.10/32", "0.0.0.1"),
            announce("127.0.0.2", "198.51.100.2", "192.0.2.10/32", "0.0.0.2"),
            announce("127.0.0.2", "198.51.100.3", "192.0.2.10/32", "0.0.0.3"),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        send(&mut c, &refs);
        let end = Instant::now() + WAIT;
        loop {
            let routes: Vec<RouteSummary> = self.ok(&Request::Routes {});
            if routes.first().is_some_and(|r| r.active == 3) {
                break;
            }
            assert!(
                Instant::now() < end,
                "three servers never showed: {routes:?}"
            );
            thread::sleep(Duration::from_millis(5));
        }
        // Kept open: closing the feed connection does not drop paths, but keep it tidy.
        drop(c);
    }

    fn finish(mut self) {
        self.server.take().unwrap().join().unwrap();
        assert!(!self.ctl.exists(), "control socket file left behind");
    }
}

fn prefix() -> ecmp_proto::Prefix {
    "192.0.2.10/32".parse().unwrap()
}

fn route(h: &CtlHarness) -> RouteDetail {
    let mut routes: Vec<RouteDetail> = h.ok(&Request::Route { prefix: prefix() });
    assert_eq!(routes.len(), 1);
    routes.remove(0)
}

#[test]
fn routes_route_and_nexthops_show_the_group_and_its_bucket_map() {
    let h = CtlHarness::start();
    h.three_servers();
    let routes: Vec<RouteSummary> = h.ok(&Request::Routes {});
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].origin, RouteOrigin::Bgp);
    assert_eq!((routes[0].active, routes[0].buckets), (3, 64));
    let r = route(&h);
    assert_eq!(r.members.len(), 3);
    assert_eq!(r.members.iter().map(|m| m.buckets).sum::<usize>(), 64);
    for m in &r.members {
        assert!((21..=22).contains(&m.buckets), "{r:?}");
        let owned = r.buckets.iter().filter(|b| b.hop == m.hop).count();
        assert_eq!(owned, m.buckets);
    }
    assert!(r.buckets.iter().all(|b| !b.replaced));
    let hops: Vec<ecmp_proto::ctl::NexthopSummary> = h.ok(&Request::Nexthops {});
    assert_eq!(hops.len(), 3);
    assert!(hops.iter().all(|n| n.resolved && n.port == "veth0"));
    h.finish();
}

#[test]
fn drain_keeps_buckets_takes_no_new_flows_and_undrain_restores() {
    let h = CtlHarness::start();
    h.three_servers();
    let before = route(&h);
    let hop = ip("198.51.100.2");
    let published = h.publishes.load(Ordering::Relaxed);
    let changed: Changed = h.ok(&Request::Drain { hop });
    assert!(changed.published);
    assert_eq!(h.publishes.load(Ordering::Relaxed), published + 1);
    let drained = route(&h);
    let m = drained.members.iter().find(|m| m.addr == hop).unwrap();
    assert_eq!(m.state, HopStateName::Draining);
    let changed: Changed = h.ok(&Request::Undrain { hop });
    assert!(changed.published);
    let after = route(&h);
    assert!(
        after
            .members
            .iter()
            .all(|m| m.state == HopStateName::Active)
    );
    assert_eq!(
        after.buckets, before.buckets,
        "undrain gives the same buckets back"
    );
    // Nothing to undo twice.
    let changed: Changed = h.ok(&Request::Undrain { hop });
    assert!(!changed.published);
    h.finish();
}

#[test]
fn what_if_remove_counts_buckets_and_cached_flows_without_changing_anything() {
    let h = CtlHarness::start();
    h.three_servers();
    h.traffic();
    let before = route(&h);
    let published = h.publishes.load(Ordering::Relaxed);
    let victim = before.members.iter().find(|m| m.hop == 1).unwrap();
    let w: WhatIfReply = h.ok(&Request::WhatIfRemove { hop: victim.addr });
    assert_eq!(w.buckets, victim.buckets);
    assert_eq!(
        w.flows,
        Some(7),
        "the fake data plane caches 7 flows on hop 1"
    );
    assert_eq!(route(&h), before);
    assert_eq!(h.publishes.load(Ordering::Relaxed), published);
    let w: WhatIfReply = h.ok(&Request::WhatIfAdd {
        prefix: prefix(),
        hop: ip("198.51.100.4"),
    });
    assert_eq!(
        w.buckets, 0,
        "auto-recovery gives a new hop nothing until clear"
    );
    h.finish();
}

#[test]
fn static_route_add_shadows_and_del_restores_the_bgp_route() {
    let h = CtlHarness::start();
    h.three_servers();
    let changed: Changed = h.ok(&Request::RouteAdd {
        prefix: prefix(),
        via: vec![ip("198.51.100.9")],
    });
    assert!(changed.published);
    let routes: Vec<RouteSummary> = h.ok(&Request::Routes {});
    assert_eq!(routes.len(), 2, "{routes:?}");
    let bgp = routes
        .iter()
        .find(|r| r.origin == RouteOrigin::Bgp)
        .unwrap();
    let op = routes
        .iter()
        .find(|r| r.origin == RouteOrigin::Operator)
        .unwrap();
    assert!(!bgp.installed && op.installed);
    let changed: Changed = h.ok(&Request::RouteDel { prefix: prefix() });
    assert!(changed.published);
    let routes: Vec<RouteSummary> = h.ok(&Request::Routes {});
    assert_eq!(routes.len(), 1);
    assert!(routes[0].installed);
    h.finish();
}

#[test]
fn bad_requests_get_an_error_and_change_nothing() {
    let h = CtlHarness::start();
    h.three_servers();
    let before = route(&h);
    let published = h.publishes.load(Ordering::Relaxed);
    for line in [
        &b"not json\n"[..],
        b"{\"cmd\":\"reboot\"}\n",
        b"{\"cmd\":\"drain\"}\n",
        b"{\"cmd\":\"drain\",\"hop\":\"198.51.100.2\",\"force\":true}\n",
        b"{\"cmd\":\"routes\",\"x\":1}\n",
    ] {
        let reply = h.raw(line);
        assert!(!reply.ok, "{}", String::from_utf8_lossy(line));
        assert!(reply.error.unwrap().starts_with("bad request"));
    }
    for req in [
        Request::Drain {
            hop: ip("203.0.113.1"),
        },
        Request::Clear {
            prefix: "203.0.113.0/24".parse().unwrap(),
        },
        Request::RouteDel {
            prefix: "203.0.113.0/24".parse().unwrap(),
        },
        Request::RouteAdd {
            prefix: "203.0.113.0/24".parse().unwrap(),
            via: Vec::new(),
        },
        Request::Route {
            prefix: "203.0.113.0/24".parse().unwrap(),
        },
    ] {
        let reply = h.ask(&req);
        assert!(!reply.ok, "{req:?} was accepted: {reply:?}");
    }
    // An oversized line is refused and the connection still answers the next one.
    let (mut s, mut r) = h.client();
    let mut big = vec![b' '; ecmp_proto::ctl::MAX_REQUEST + 10];
    big.push(b'\n');
    s.write_all(&big).unwrap();
    s.write_all(b"{\"cmd\":\"peers\"}\n").unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let first: Reply = serde_json::from_str(&line).unwrap();
    assert!(!first.ok && first.error.unwrap().contains("longer than"));
    line.clear();
    r.read_line(&mut line).unwrap();
    let second: Reply = serde_json::from_str(&line).unwrap();
    assert!(second.ok, "{second:?}");
    assert_eq!(route(&h), before);
    assert_eq!(h.publishes.load(Ordering::Relaxed), published);
    h.finish();
}

#[test]
fn data_side_commands_peers_and_convergence_answer() {
    let h = CtlHarness::start();
    h.three_servers();
    let stats: StatsReply = h.ok(&Request::Stats {});
    assert_eq!(stats.drops, vec![("no_route".to_owned(), 3)]);
    assert!(
        stats.feed.iter().any(|(n, v)| n == "paths" && *v == 3),
        "{stats:?}"
    );
    let flows: FlowsReply = h.ok(&Request::Flows { top: 5 });
    assert_eq!(flows.total, 10);
    let t: TraceReply = h.ok(&Request::Trace(TraceQuery {
        src: ip("198.18.0.1"),
        dst: ip("192.0.2.10"),
        proto: 6,
        sport: 1,
        dport: 80,
    }));
    assert_eq!(t.via, TraceVia::Bucket { bucket: 5 });
    let peers: Vec<ecmp_proto::ctl::PeerLine> = h.ok(&Request::Peers {});
    assert_eq!(peers.len(), 1);
    assert_eq!((peers[0].state.as_str(), peers[0].paths), ("up", 3));
    let c: ConvergenceReply = h.ok(&Request::Convergence {});
    assert!(c.samples >= 1, "{c:?}");
    assert!(c.p99_us > 0.0 && c.p99_us < 5_000_000.0, "{c:?}");
    h.finish();
}

#[test]
fn hundred_concurrent_clients_and_a_stalled_one_are_all_served() {
    let h = CtlHarness::start();
    h.three_servers();
    // Sends requests and never reads: its replies pile up in its own socket only.
    let mut stalled = UnixStream::connect(&h.ctl).unwrap();
    let flood: Vec<u8> = b"{\"cmd\":\"route\",\"prefix\":\"192.0.2.10/32\"}\n".repeat(2000);
    stalled
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // The server stops reading once its replies back up; a partial write is expected.
    let _ = stalled.write_all(&flood);
    let started = Instant::now();
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let path = h.ctl.clone();
            thread::spawn(move || {
                let mut s = UnixStream::connect(&path).unwrap();
                s.set_read_timeout(Some(WAIT)).unwrap();
                s.write_all(b"{\"cmd\":\"routes\"}\n").unwrap();
                let mut line = String::new();
                BufReader::new(s).read_line(&mut line).unwrap();
                let reply: Reply = serde_json::from_str(&line).unwrap();
                reply.ok
            })
        })
        .collect();
    for c in clients {
        assert!(c.join().unwrap());
    }
    assert!(started.elapsed() < WAIT);
    drop(stalled);
    h.finish();
}

#[test]
fn route_says_what_the_mode_does_and_whether_forwarders_agree() {
    let h = CtlHarness::start();
    h.three_servers();
    let note = route(&h).mode_note;
    assert!(note.starts_with("auto-recovery: before traffic"), "{note}");
    assert!(note.contains("use maglev or rendezvous"), "{note}");
    h.finish();
    use ecmp_tables::group::GroupMode;
    let manual = commands::mode_note(GroupMode::Manual);
    assert!(
        manual.contains("until `clear`") && manual.contains("IOS-XR"),
        "{manual}"
    );
    assert!(manual.contains("use maglev or rendezvous"), "{manual}");
    for mode in [GroupMode::Maglev, GroupMode::Rendezvous] {
        let note = commands::mode_note(mode);
        assert!(note.contains("identical on every forwarder"), "{note}");
    }
}

#[test]
fn route_events_list_feed_batches_and_operator_commands_in_order() {
    let h = CtlHarness::start();
    h.three_servers();
    let hop = ip("198.51.100.2");
    let drained: Changed = h.ok(&Request::Drain { hop });
    let events: Vec<ecmp_proto::ctl::RouteEvent> = h.ok(&Request::RouteEvents { last: 0 });
    let last = events.last().expect("events");
    assert_eq!(last.what, "drain 198.51.100.2");
    assert_eq!(last.source, ecmp_proto::ctl::RouteEventSource::Operator);
    assert_eq!(last.generation, drained.generation);
    // The announcements came as one or more feed batches; the last one has all three hops.
    let feed: Vec<&ecmp_proto::ctl::RouteEvent> = events
        .iter()
        .filter(|e| e.source == ecmp_proto::ctl::RouteEventSource::Feed)
        .collect();
    let latest = feed.last().expect("a feed event");
    assert_eq!(latest.prefix, Some(prefix()));
    assert_eq!(latest.what, "3 next hops");
    assert!(latest.generation > 0 && latest.generation < drained.generation);
    assert!(events.windows(2).all(|w| w[0].uptime_s <= w[1].uptime_s));
    let one: Vec<ecmp_proto::ctl::RouteEvent> = h.ok(&Request::RouteEvents { last: 1 });
    assert_eq!(one.as_slice(), &events[events.len() - 1..]);
}

/// One HTTP exchange with the metrics listener: the status line and the body.
fn http(addr: std::net::SocketAddr, request: &[u8]) -> (String, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    // The server may answer (and close) before taking all of an oversized head.
    let _ = s.write_all(request);
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[test]
fn metrics_are_scraped_over_http_with_the_routes_peers_and_data_side_counters() {
    let listener = MetricsListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr();
    let h = CtlHarness::start_with(Some(listener));
    h.three_servers();
    let (status, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let lines: Vec<&str> = body.lines().collect();
    for want in [
        "ecmpfwd_routes 1",
        "ecmpfwd_rib_prefixes 1",
        "ecmpfwd_rib_paths 3",
        r#"ecmpfwd_feed_peer_up{peer="127.0.0.2",state="up"} 1"#,
        r#"ecmpfwd_feed_peer_paths{peer="127.0.0.2"} 3"#,
        r#"ecmpfwd_drops_total{reason="no_route"} 3"#,
        r#"ecmpfwd_nexthop_resolved{hop="1",addr="198.51.100.1",port="veth0"} 1"#,
        "ecmpfwd_feed_lines_total 4",
        "ecmpfwd_uptime_seconds 1",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{body}");
    }
    let generation = h.publishes.load(Ordering::Relaxed);
    assert!(generation >= 1);
    assert!(lines.contains(&format!("ecmpfwd_table_generation {generation}").as_str()));
    // The announcements converged: at least one sample, and +Inf counts every one.
    let count = lines
        .iter()
        .find_map(|l| l.strip_prefix("ecmpfwd_convergence_seconds_count "))
        .expect("convergence count");
    assert!(count.parse::<u64>().unwrap() >= 1, "{body}");
    assert!(
        lines.contains(
            &format!(r#"ecmpfwd_convergence_seconds_bucket{{le="+Inf"}} {count}"#).as_str()
        )
    );
    let (ok, said) = crate::metrics::tests::promtool_check(&body);
    assert!(ok, "promtool check metrics: {said}\n{body}");

    assert_eq!(
        http(addr, b"GET / HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        http(addr, b"POST /metrics HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(http(addr, b"hello\r\n\r\n").0, "HTTP/1.1 400 Bad Request");
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.resize(MAX_HEAD * 2, b'a');
    assert_eq!(
        http(addr, &big).0,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // A client that sends nothing and stays does not keep the next scrape out for long.
    let idle = std::net::TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    assert_eq!(
        http(addr, b"GET /metrics HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 200 OK"
    );
    assert!(t.elapsed() < crate::metrics_server::REQUEST_TIMEOUT + Duration::from_secs(1));
    drop(idle);
    h.finish();
}

/// Sends a capture request and returns the reply and a reader for the stream after it.
fn start_capture(h: &CtlHarness, request: &str) -> (Reply, BufReader<UnixStream>, UnixStream) {
    let mut s = UnixStream::connect(&h.ctl).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    writeln!(s, "{request}").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    (serde_json::from_str(&line).unwrap(), r, s)
}

#[test]
fn a_capture_streams_its_count_then_an_end_line_and_stops() {
    let h = CtlHarness::start();
    let (reply, mut r, _s) = start_capture(&h, r#"{"cmd":"capture","rx":true,"count":5}"#);
    assert!(reply.ok, "{reply:?}");
    let started: CaptureStarted = serde_json::from_value(reply.result).unwrap();
    assert_eq!(started.ports, ["veth0"]);
    let mut seen = Vec::new();
    let end = loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "the stream ends with an end line"
        );
        match serde_json::from_str::<ecmp_proto::ctl::CaptureLine>(&line).unwrap() {
            ecmp_proto::ctl::CaptureLine::Packet(p) => seen.push(p.ts_ns),
            ecmp_proto::ctl::CaptureLine::End(end) => break end,
        }
    };
    assert_eq!(seen, [0, 1, 2, 3, 4], "exactly the count, in order");
    assert_eq!(
        (end.captured, end.ring_dropped, end.reason.as_str()),
        (5, 2, "count")
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while h.capturing.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the stream was not dropped");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_capture_stops_when_its_client_goes_away() {
    let h = CtlHarness::start();
    let (reply, mut r, s) = start_capture(&h, r#"{"cmd":"capture","drops":true}"#);
    assert!(reply.ok, "{reply:?}");
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("packet"), "{line}");
    assert!(h.capturing.load(Ordering::SeqCst));
    drop(r);
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(2);
    while h.capturing.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the capture outlived its client");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_refused_capture_is_one_error_reply_and_starts_nothing() {
    let h = CtlHarness::start();
    let (reply, mut r, _s) = start_capture(&h, r#"{"cmd":"capture","rx":true,"filter":"bad"}"#);
    assert!(!reply.ok);
    assert!(
        reply.error.as_deref().unwrap_or("").contains("\"bad\""),
        "{reply:?}"
    );
    assert!(!h.capturing.load(Ordering::SeqCst));
    let mut line = String::new();
    assert_eq!(
        r.read_line(&mut line).unwrap_or(0),
        0,
        "nothing follows: {line}"
    );
}

#[test]
fn a_quiet_capture_stops_when_its_client_goes_away() {
    // Nothing is ever written to this client, so only the read side can tell it left.
    let h = CtlHarness::start();
    let (reply, r, s) = start_capture(&h, r#"{"cmd":"capture","rx":true,"filter":"quiet"}"#);
    assert!(reply.ok, "{reply:?}");
    thread::sleep(Duration::from_millis(100));
    assert!(h.capturing.load(Ordering::SeqCst));
    drop(r);
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(2);
    while h.capturing.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the capture outlived its client");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Feeds 192.0.2.10/32 from the given servers, one batch after another (each waited for), on
/// one feed connection.
fn servers_in_batches(h: &CtlHarness, batches: &[&[u8]]) {
    let mut c = UnixStream::connect(&h.feed).unwrap();
    send(&mut c, &[UP]);
    let mut seen = 0;
    for batch in batches {
        let lines: Vec<String> = batch
            .iter()
            .map(|n| {
                announce(
                    "127.0.0.2",
                    &format!("198.51.100.{n}"),
                    "192.0.2.10/32",
                    &format!("0.0.0.{n}"),
                )
            })
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        send(&mut c, &refs);
        seen += batch.len();
        let end = Instant::now() + WAIT;
        while h
            .ok::<Vec<RouteSummary>>(&Request::Routes {})
            .first()
            .is_none_or(|r| r.active != seen)
        {
            assert!(Instant::now() < end, "the servers never showed");
            thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn two_builders_fed_the_same_routes_print_the_same_digests() {
    use ecmp_proto::ctl::GroupsReply;
    use ecmp_proto::digest::table_digest;
    let one = CtlHarness::start();
    let two = CtlHarness::start();
    // Another arrival order: the hop ids differ, the bucket map by address does not (before
    // traffic the default mode's table depends only on the members).
    servers_in_batches(&one, &[&[1, 2, 3]]);
    servers_in_batches(&two, &[&[3], &[1, 2]]);
    let (g1, g2): (GroupsReply, GroupsReply) =
        (one.ok(&Request::Groups {}), two.ok(&Request::Groups {}));
    assert_ne!(
        route(&one)
            .members
            .iter()
            .map(|m| m.hop)
            .collect::<Vec<_>>(),
        route(&two)
            .members
            .iter()
            .map(|m| m.hop)
            .collect::<Vec<_>>(),
        "the test means the hop ids to differ"
    );
    assert_eq!(g1.groups.len(), 1);
    assert_eq!(g1.groups[0].prefixes, vec![prefix()]);
    assert_eq!(g1.groups[0].digest, g2.groups[0].digest);
    assert_eq!(g1.digest, g2.digest);
    // `routes` carries the same group digest, and ecmpctl's table digest over it is the daemon's.
    let routes: Vec<RouteSummary> = one.ok(&Request::Routes {});
    assert_eq!(routes[0].digest, Some(g1.groups[0].digest));
    assert_eq!(
        table_digest(routes.iter().map(|r| (r.prefix, r.digest.unwrap()))),
        g1.digest
    );
    // A forwarder whose buckets differ prints another digest, and the same again once back.
    let _: Changed = two.ok(&Request::Drain {
        hop: ip("198.51.100.2"),
    });
    let drained: GroupsReply = two.ok(&Request::Groups {});
    assert_ne!(drained.groups[0].digest, g1.groups[0].digest);
    assert_ne!(drained.digest, g1.digest);
    let _: Changed = two.ok(&Request::Undrain {
        hop: ip("198.51.100.2"),
    });
    let back: GroupsReply = two.ok(&Request::Groups {});
    assert_eq!(back.digest, g1.digest);
    one.finish();
    two.finish();
}

/// Reads feed lines from the control thread until one equals `want`; panics after [`WAIT`].
fn expect_line(r: &mut BufReader<UnixStream>, want: &str) {
    let end = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < end {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) if line.trim_end() == want => return,
            Ok(_) => seen.push(line),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("reading the feed: {e}"),
        }
    }
    panic!("no {want:?} on the feed; saw {seen:?}");
}

fn announcements(h: &CtlHarness) -> Vec<ecmp_proto::ctl::AnnounceLine> {
    h.ok(&Request::Announcements {})
}

#[test]
fn announcements_follow_hops_stalls_and_shutdown_on_every_feed_connection() {
    use crate::announce::{AnnounceConfig, AnnounceNextHop, AnnounceSpec};
    use ecmp_proto::ctl::WithdrawReason;
    let config = AnnounceConfig {
        entries: vec![AnnounceSpec {
            prefix: prefix(),
            next_hop: AnnounceNextHop::Local,
            med: Some(10),
            communities: Vec::new(),
            neighbors: Vec::new(),
        }],
        stall_time: Duration::from_millis(300),
    };
    let announce = "announce route 192.0.2.10/32 next-hop self med 10";
    let withdraw = "withdraw route 192.0.2.10/32 next-hop self";
    let h = CtlHarness::start_full(None, config);
    let companion = UnixStream::connect(&h.feed).unwrap();
    companion
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut heard = BufReader::new(companion.try_clone().unwrap());
    // A companion that connects hears the whole state: nothing served yet.
    expect_line(&mut heard, withdraw);
    assert_eq!(
        announcements(&h)[0].reason,
        Some(WithdrawReason::NoActiveHop)
    );
    h.three_servers();
    expect_line(&mut heard, announce);
    let line = &announcements(&h)[0];
    assert!(line.announced && line.command == announce, "{line:?}");

    // Every hop drained: no active hop, withdrawn; one back: announced again.
    for n in 1..=3 {
        let _: Changed = h.ok(&Request::Drain {
            hop: ip(&format!("198.51.100.{n}")),
        });
    }
    expect_line(&mut heard, withdraw);
    assert_eq!(
        announcements(&h)[0].reason,
        Some(WithdrawReason::NoActiveHop)
    );
    let _: Changed = h.ok(&Request::Undrain {
        hop: ip("198.51.100.2"),
    });
    expect_line(&mut heard, announce);

    // A worker whose poll counter stops moving for the stall time withdraws it.
    *h.polls.lock().unwrap() = vec![5, 7];
    expect_line(&mut heard, withdraw);
    let reason = announcements(&h)[0].reason;
    assert!(
        matches!(reason, Some(WithdrawReason::WorkersStalled { stalled_ms, .. }) if stalled_ms >= 300),
        "{reason:?}"
    );
    // Polling again: announced again.
    let moving = Arc::new(AtomicBool::new(true));
    let ticker = {
        let (polls, moving) = (Arc::clone(&h.polls), Arc::clone(&moving));
        thread::spawn(move || {
            while moving.load(Ordering::Relaxed) {
                polls.lock().unwrap().iter_mut().for_each(|p| *p += 1);
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    expect_line(&mut heard, announce);

    // A second companion hears the current state at once.
    let second = UnixStream::connect(&h.feed).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut second = BufReader::new(second);
    expect_line(&mut second, announce);

    // Stopping: withdrawn on every connection while the thread still serves.
    h.server.as_ref().unwrap().withdraw_all();
    expect_line(&mut heard, withdraw);
    expect_line(&mut second, withdraw);
    let line = &announcements(&h)[0];
    assert_eq!(line.reason, Some(WithdrawReason::ShuttingDown));
    let stats: StatsReply = h.ok(&Request::Stats {});
    assert_eq!(stats.announce.len(), 1);
    assert_eq!(stats.announce[0].reason, Some(WithdrawReason::ShuttingDown));
    assert_eq!(stats.announce[0].command, withdraw);
    moving.store(false, Ordering::Relaxed);
    ticker.join().unwrap();
    drop(companion);
    h.finish();
}

fn vip_announce(n: u32) -> String {
    announce(
        "127.0.0.2",
        &format!("198.51.100.{n}"),
        "192.0.2.10/32",
        &format!("0.0.0.{n}"),
    )
}

/// Waits until the VIP's route has `active` members.
fn wait_active(h: &CtlHarness, active: usize) {
    let end = Instant::now() + WAIT;
    while h
        .ok::<Vec<RouteSummary>>(&Request::Routes {})
        .first()
        .is_none_or(|r| r.active != active)
    {
        assert!(Instant::now() < end, "the VIP never had {active} members");
        thread::sleep(Duration::from_millis(5));
    }
}

/// A companion resending its paths line by line after a start (gaps far shorter than
/// STARTUP_QUIET): the routes are published once, whole, and that held batch is no
/// convergence sample; the next lone update is published by itself and is one.
#[test]
fn the_first_routes_are_published_whole_once_the_feed_is_quiet() {
    let h = CtlHarness::start_config(
        None,
        crate::announce::AnnounceConfig::default(),
        ControlConfig {
            batch_window: Duration::ZERO,
            startup_hold: Duration::from_secs(10),
        },
        RibConfig::default(),
    );
    let base = h.publishes.load(Ordering::Relaxed);
    let mut c = UnixStream::connect(&h.feed).unwrap();
    send(&mut c, &[UP, &vip_announce(1), &vip_announce(2)]);
    thread::sleep(Duration::from_millis(20));
    send(&mut c, &[&vip_announce(3), &vip_announce(4)]);
    wait_active(&h, 4);
    assert_eq!(
        h.publishes.load(Ordering::Relaxed),
        base + 1,
        "the VIP's group was published before it was whole"
    );
    let c0: ConvergenceReply = h.ok(&Request::Convergence {});
    assert_eq!(c0.samples, 0, "{c0:?}");

    send(&mut c, &[&vip_announce(5)]);
    wait_active(&h, 5);
    assert_eq!(h.publishes.load(Ordering::Relaxed), base + 2);
    let end = Instant::now() + WAIT;
    loop {
        let c1: ConvergenceReply = h.ok(&Request::Convergence {});
        if c1.samples == 1 {
            break;
        }
        assert!(Instant::now() < end, "{c1:?}");
        thread::sleep(Duration::from_millis(5));
    }
    drop(c);
    h.finish();
}

/// A feed that never pauses for STARTUP_QUIET still has its first routes published once the
/// hold has passed since its first change, while it goes on sending.
#[test]
fn a_feed_that_never_pauses_is_published_at_the_end_of_the_hold() {
    let h = CtlHarness::start_config(
        None,
        crate::announce::AnnounceConfig::default(),
        ControlConfig {
            batch_window: Duration::ZERO,
            startup_hold: Duration::from_millis(300),
        },
        RibConfig::default(),
    );
    let base = h.publishes.load(Ordering::Relaxed);
    let mut c = UnixStream::connect(&h.feed).unwrap();
    send(&mut c, &[UP]);
    let started = Instant::now();
    let mut n = 1;
    // A new path every 50 ms for up to WAIT: far longer than the hold, never quiet.
    while h.publishes.load(Ordering::Relaxed) == base {
        assert!(
            started.elapsed() < WAIT,
            "nothing published while the feed kept sending"
        );
        send(&mut c, &[&vip_announce(n)]);
        n += 1;
        thread::sleep(Duration::from_millis(50));
    }
    // Published while it was still sending, not at a quiet gap: more lines come after it.
    assert!(n > 2, "published after {n} lines");
    drop(c);
    h.finish();
}

/// A second client of the feed socket that never answers the route refresh leaves the live
/// companion's paths alone; once the companion's own connection has closed, the next connection
/// refreshes its peers, and paths it does not resend go at the refresh timeout.
#[test]
fn a_second_feed_client_does_not_put_the_companions_paths_on_a_refresh_timer() {
    const REFRESH: Duration = Duration::from_millis(300);
    let h = CtlHarness::start_config(
        None,
        crate::announce::AnnounceConfig::default(),
        ControlConfig {
            batch_window: Duration::ZERO,
            startup_hold: Duration::ZERO,
        },
        RibConfig {
            refresh_timeout: REFRESH,
            ..RibConfig::default()
        },
    );
    let mut companion = UnixStream::connect(&h.feed).unwrap();
    send(&mut companion, &[UP, &vip_announce(1), &vip_announce(2)]);
    wait_active(&h, 2);
    // A silent second client, held for three refresh timeouts.
    let silent = UnixStream::connect(&h.feed).unwrap();
    thread::sleep(REFRESH * 3);
    let routes: Vec<RouteSummary> = h.ok(&Request::Routes {});
    assert_eq!(routes[0].active, 2, "{routes:?}");
    drop(silent);

    // The companion's connection goes (its reader tells the control thread well within the
    // pause); a new one resends path 1 only.
    drop(companion);
    thread::sleep(REFRESH);
    let mut again = UnixStream::connect(&h.feed).unwrap();
    send(&mut again, &[&vip_announce(1)]);
    // Path 2 was not confirmed: it goes at the refresh timeout.
    wait_active(&h, 1);
    drop(again);
    h.finish();
}
