//! Hostile clients of the feed and control sockets (issue 15, item 3): each one gets an error
//! reply or is disconnected, changes no state, and a well-behaved client is served while it is
//! connected. The servers run in this process over Unix sockets in a temp dir; the data side is a
//! stand-in whose flow cache holds [`CACHED_FLOWS`] flows. Every wait is bounded by [`WAIT`].

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ecmp_control::builder::{Builder, BuilderConfig, GroupPolicy, StaticTables};
use ecmp_control::control::{
    ControlConfig, ControlHandle, ControlThread, DataQueryError, Dataplane, FeedStats,
};
use ecmp_control::ctl_server::{CtlConfig, CtlListener};
use ecmp_control::feed_server::{FeedServer, FeedServerConfig};
use ecmp_control::{Rib, RibConfig};
use ecmp_proto::ctl::{
    FlowEntry, FlowsReply, HopFlows, MAX_FLOWS_LISTED, Reply, Request, StatsReply, TraceQuery,
    TraceReply,
};
use ecmp_tables::nexthop::{PortId, PortInfo};

/// The longest any step waits.
const WAIT: Duration = Duration::from_secs(15);
/// Flows the stand-in data side says its caches hold (the issue's "10M cached flows").
const CACHED_FLOWS: u64 = 10_000_000;

// ExaBGP 5.0.15, verbatim (as in shared/reference/bgp-feed.md).
const UP: &str = r#"{ "exabgp": "5.0.0", "time": 1795310632.684011, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 2, "type": "state", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "state": "up" } }"#;
const ANNOUNCE: &str = r#"{ "exabgp": "5.0.0", "time": 1795310634.8154979, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 6, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "update": { "attribute": { "origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65001]}} }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } } } } } }"#;

type Resolve = fn(IpAddr) -> Option<(PortId, [u8; 6])>;

fn resolve_all(addr: IpAddr) -> Option<(PortId, [u8; 6])> {
    let last = match addr {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    Some((0, [2, 0, 0, 0, 1, last]))
}

fn builder() -> Builder<Resolve> {
    let config = BuilderConfig {
        policies: Vec::new(),
        default_policy: GroupPolicy {
            buckets: 64,
            ..GroupPolicy::default()
        },
        ports: vec![PortInfo {
            mac: [2, 0, 0, 0, 0, 9],
            mtu: 1500,
        }],
        seed: 7,
        max_tbl8: 256,
        statics: StaticTables::default(),
    };
    Builder::new(config, resolve_all as Resolve).expect("builder config")
}

/// A data side whose caches hold [`CACHED_FLOWS`] IPv6 flows (the longest addresses, so listed
/// flows take the most bytes); remembers the largest `top` it was asked for.
struct ManyFlows {
    largest_top: Arc<AtomicUsize>,
}

impl Dataplane for ManyFlows {
    fn stats(&self) -> StatsReply {
        StatsReply {
            uptime_s: 1.0,
            tsc_hz: None,
            ports: Vec::new(),
            workers: Vec::new(),
            drops: Vec::new(),
            hops: Vec::new(),
            feed: Vec::new(),
            memory: Vec::new(),
            announce: Vec::new(),
            devices: Vec::new(),
        }
    }

    fn flows(&self, top: usize) -> Result<FlowsReply, DataQueryError> {
        self.largest_top.fetch_max(top, Ordering::SeqCst);
        let listed = top.min(CACHED_FLOWS as usize);
        let addr = |i: usize| {
            IpAddr::V6(Ipv6Addr::new(
                0xfd00, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, i as u16,
            ))
        };
        let flows = (0..listed)
            .map(|i| FlowEntry {
                worker: i % 2,
                flow: TraceQuery {
                    src: addr(i),
                    dst: addr(usize::from(u16::MAX) - i % 65_536),
                    proto: 17,
                    sport: 65_535,
                    dport: 65_535,
                },
                hop: u32::MAX,
                group: u32::MAX,
            })
            .collect();
        Ok(FlowsReply {
            total: CACHED_FLOWS,
            per_worker: vec![CACHED_FLOWS / 2; 2],
            per_hop: vec![HopFlows {
                hop: 1,
                flows: CACHED_FLOWS,
            }],
            flows,
            capacity: 2 * CACHED_FLOWS,
        })
    }

    fn trace(&self, _: &TraceQuery) -> Result<TraceReply, DataQueryError> {
        Err(DataQueryError::NoWorkers)
    }

    fn generation(&self) -> u64 {
        0
    }

    fn applied_generation(&self) -> u64 {
        0
    }

    fn port_name(&self, _: u16) -> Option<String> {
        None
    }
}

/// Both sockets served by one control thread, with one route learnt from a well-behaved feed
/// client that stays connected.
struct Server {
    handle: Option<ControlHandle<Resolve>>,
    feed: PathBuf,
    ctl: PathBuf,
    publishes: Arc<AtomicU64>,
    largest_top: Arc<AtomicUsize>,
    /// The well-behaved feed client.
    companion: Option<UnixStream>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(feed_config: FeedServerConfig, ctl_config: CtlConfig) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let feed = dir.path().join("feed.sock");
        let ctl = dir.path().join("ctl.sock");
        let feed_server = FeedServer::bind(&feed, feed_config).expect("bind feed");
        let ctl_server = CtlListener::bind(&ctl, ctl_config).expect("bind ctl");
        let publishes = Arc::new(AtomicU64::new(0));
        let largest_top = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&publishes);
        let handle = ControlThread::new(ControlConfig::default())
            .serve(feed_server)
            .serve(ctl_server)
            .with_dataplane(Box::new(ManyFlows {
                largest_top: Arc::clone(&largest_top),
            }))
            .spawn(Rib::new(RibConfig::default()), builder(), move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            })
            .expect("spawn the control thread");
        let mut server = Server {
            handle: Some(handle),
            feed,
            ctl,
            publishes,
            largest_top,
            companion: None,
            _dir: dir,
        };
        let mut companion = server.feed_client();
        companion
            .write_all(format!("{UP}\n{ANNOUNCE}\n").as_bytes())
            .expect("announce");
        server.companion = Some(companion);
        server.wait_stats("the first route", |s| s.paths == 1 && s.publishes == 1);
        server
    }

    fn stats(&self) -> FeedStats {
        self.handle.as_ref().expect("running").stats()
    }

    fn wait_stats(&self, what: &str, ok: impl Fn(&FeedStats) -> bool) -> FeedStats {
        let end = Instant::now() + WAIT;
        loop {
            let stats = self.stats();
            if ok(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}: {stats:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A feed connection whose route-refresh request has been read (the server has taken it).
    fn feed_client(&self) -> UnixStream {
        let stream = UnixStream::connect(&self.feed).expect("connect feed");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        for _ in FeedServerConfig::default().refresh_families {
            line.clear();
            reader.read_line(&mut line).expect("refresh request");
            assert!(line.starts_with("announce route-refresh "), "{line:?}");
        }
        stream
    }

    fn ctl_client(&self) -> (UnixStream, BufReader<UnixStream>) {
        let stream = UnixStream::connect(&self.ctl).expect("connect ctl");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        (stream, reader)
    }

    /// One request on a new connection, as `ecmpctl` does; the reply and its line's length.
    fn ask(&self, request: &Request) -> (Reply, usize) {
        let (mut s, mut r) = self.ctl_client();
        let mut line = serde_json::to_vec(request).expect("encode");
        line.push(b'\n');
        s.write_all(&line).expect("send request");
        let mut reply = String::new();
        r.read_line(&mut reply).expect("read reply");
        (
            serde_json::from_str(&reply).expect("a reply line"),
            reply.len(),
        )
    }

    /// What the state is: the routes as `routes` lists them, the paths, and how many snapshots
    /// were published. A hostile client must leave all three as they were.
    fn state(&self) -> (serde_json::Value, u64, u64) {
        let (reply, _) = self.ask(&Request::Routes {});
        assert!(reply.ok, "{reply:?}");
        (
            reply.result,
            self.stats().paths,
            self.publishes.load(Ordering::SeqCst),
        )
    }

    /// A well-behaved client is served on both sockets: `peers` answers, and a feed line is
    /// read and decoded (an `up` for the known peer, which changes nothing).
    fn serves_well_behaved_clients(&self) {
        let (reply, _) = self.ask(&Request::Peers {});
        assert!(reply.ok, "{reply:?}");
        let lines = self.stats().lines;
        let mut companion = self.companion.as_ref().expect("companion");
        companion
            .write_all(format!("{UP}\n").as_bytes())
            .expect("feed line");
        self.wait_stats("the companion's line", |s| s.lines > lines);
    }

    fn finish(mut self) {
        drop(self.companion.take());
        let handle = self.handle.take().expect("running");
        handle.join().expect("the control thread ended cleanly");
    }
}

#[test]
fn flows_lists_at_most_its_bound_and_refuses_more() {
    let server = Server::start(FeedServerConfig::default(), CtlConfig::default());
    let before = server.state();
    for top in [MAX_FLOWS_LISTED + 1, CACHED_FLOWS as usize, usize::MAX] {
        let (reply, _) = server.ask(&Request::Flows { top });
        assert!(!reply.ok, "top {top}: {reply:?}");
        let error = reply.error.expect("an error");
        assert!(
            error.contains(&format!("at most {MAX_FLOWS_LISTED}")),
            "{error}"
        );
    }
    // Refused before any worker was asked to copy its flows.
    assert_eq!(server.largest_top.load(Ordering::SeqCst), 0);

    let (reply, len) = server.ask(&Request::Flows {
        top: MAX_FLOWS_LISTED,
    });
    assert!(reply.ok, "{reply:?}");
    let flows: FlowsReply = serde_json::from_value(reply.result).expect("a flows reply");
    assert_eq!(flows.total, CACHED_FLOWS);
    assert_eq!(flows.flows.len(), MAX_FLOWS_LISTED);
    // The bound the proto crate states for the largest listing (IPv6, longest addresses).
    assert!(len < 2_000_000, "a full listing took {len} bytes");
    assert_eq!(server.largest_top.load(Ordering::SeqCst), MAX_FLOWS_LISTED);
    assert_eq!(server.state(), before);
    server.serves_well_behaved_clients();
    server.finish();
}

/// `depth` opening brackets, then as many closing ones.
fn nested(depth: usize) -> Vec<u8> {
    let mut v = vec![b'['; depth];
    v.extend(std::iter::repeat_n(b']', depth));
    v
}

#[test]
fn invalid_utf8_and_deeply_nested_json_are_refused_and_change_nothing() {
    let server = Server::start(FeedServerConfig::default(), CtlConfig::default());
    let before = server.state();
    // The first within the control socket's 64 KiB line limit, the second deep inside a request.
    let deep = nested(30_000);
    let mut deep_in_request = br#"{"cmd":"route-add","prefix":"203.0.113.0/24","via":"#.to_vec();
    deep_in_request.extend(nested(10_000));
    deep_in_request.push(b'}');
    let mut drain = br#"{"cmd":"drain","hop":"198.51.100.2"}"#.to_vec();
    drain.extend(b"\xff");
    let mut not_utf8_in_string = br#"{"cmd":"drain","hop":"198.51.100.2"#.to_vec();
    not_utf8_in_string.extend(b"\xc3\x28\"}");
    let hostile: [(&[u8], &str); 5] = [
        (&deep, "bad request"),
        (&deep_in_request, "recursion limit"),
        (&drain, "not UTF-8"),
        (&not_utf8_in_string, "not UTF-8"),
        (b"\xfe\xff\x00\x01", "not UTF-8"),
    ];
    // All on one connection: each gets its error reply and the connection keeps serving.
    let (mut s, mut r) = server.ctl_client();
    for (line, want) in hostile {
        s.write_all(line).expect("send");
        s.write_all(b"\n").expect("send");
        let mut reply = String::new();
        r.read_line(&mut reply).expect("a reply");
        let reply: Reply = serde_json::from_str(&reply).expect("a reply line");
        assert!(!reply.ok);
        let error = reply.error.expect("an error");
        assert!(error.contains(want), "{error:?} lacks {want:?}");
    }
    s.write_all(b"{\"cmd\":\"peers\"}\n").expect("send");
    let mut reply = String::new();
    r.read_line(&mut reply).expect("a reply");
    assert!(serde_json::from_str::<Reply>(&reply).expect("reply").ok);

    // The feed has no replies: such lines are counted and skipped, the connection stays.
    let stats = server.stats();
    let mut junk = server.feed_client();
    let mut lines = Vec::new();
    let deep_update = ANNOUNCE.replace(
        r#""value": [65001]"#,
        &format!(
            r#""value": {}"#,
            String::from_utf8(nested(100_000)).expect("ASCII")
        ),
    );
    for line in [
        &deep[..],
        deep_update.as_bytes(),
        &drain,
        b"\xfe\xff\x00\x01",
    ] {
        lines.extend_from_slice(line);
        lines.push(b'\n');
    }
    junk.write_all(&lines).expect("send");
    let after = server.wait_stats("four skipped lines", |s| s.lines == stats.lines + 4);
    assert_eq!(
        after.not_json + after.decode_errors,
        stats.not_json + stats.decode_errors + 4,
        "{after:?}"
    );
    server.serves_well_behaved_clients();
    assert_eq!(server.state(), before);
    drop(junk);
    server.finish();
}

/// This process's resident set in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Samples [`rss`] every few milliseconds until dropped; the largest sample.
struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssPeak {
    fn start() -> RssPeak {
        let peak = Arc::new(AtomicU64::new(rss()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        RssPeak {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("sampler");
        }
        self.peak.load(Ordering::Relaxed).max(rss())
    }
}

const GIB: u64 = 1 << 30;

/// Writes up to 1 GiB of `b'x'` (no newline) to `stream` from another thread; how many bytes
/// the server took before it closed the connection.
fn stream_a_gib(mut stream: UnixStream) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        let mut sent = 0u64;
        while sent < GIB {
            match stream.write(&chunk) {
                Ok(n) => sent += n as u64,
                Err(_) => break,
            }
        }
        sent
    })
}

#[test]
fn a_gib_line_without_newline_is_cut_off_with_memory_bounded() {
    let server = Server::start(FeedServerConfig::default(), CtlConfig::default());
    let before = server.state();
    let baseline = rss();
    let peak = RssPeak::start();

    // Feed: the line is discarded past max_line (1 MiB) and the connection closed past
    // DISCARD_FACTOR times that (16 MiB), long before the GiB.
    let feed = stream_a_gib(server.feed_client());
    // Control: the same past MAX_REQUEST (64 KiB) and 1 MiB, with an error line first.
    let (ctl, mut ctl_reader) = server.ctl_client();
    let ctl_sender = stream_a_gib(ctl);
    let mut reply = String::new();
    ctl_reader.read_line(&mut reply).expect("an error line");
    let reply: Reply = serde_json::from_str(&reply).expect("a reply");
    let error = reply.error.expect("an error");
    assert!(
        error.contains("no newline within 1048576 bytes: closing"),
        "{error}"
    );
    let mut rest = String::new();
    assert_eq!(
        ctl_reader.read_line(&mut rest).expect("the end"),
        0,
        "closed after the error: {rest:?}"
    );

    let feed_sent = feed.join().expect("feed sender");
    let ctl_sent = ctl_sender.join().expect("ctl sender");
    let peak = peak.finish();
    assert!(feed_sent < GIB, "the feed took the whole GiB");
    assert!(ctl_sent < GIB, "the control socket took the whole GiB");
    let stats = server.wait_stats("the feed connection closed", |s| s.abandoned == 1);
    assert_eq!(stats.oversized, 1, "{stats:?}");
    // Bound per connection: its line (max_line, 1 MiB on the feed; 64 KiB on the control
    // socket) plus its read buffer (64 KiB; 8 KiB); margin for the allocator and threads.
    let grown = peak.saturating_sub(baseline);
    assert!(
        grown < 16 << 20,
        "RSS grew by {} KiB while a GiB was offered",
        grown >> 10
    );
    server.serves_well_behaved_clients();
    assert_eq!(server.state(), before);
    server.finish();
}

#[test]
fn partial_lines_dribbled_a_byte_a_second_are_closed_at_the_line_timeout() {
    let line_timeout = Duration::from_secs(2);
    let server = Server::start(
        FeedServerConfig {
            line_timeout,
            ..FeedServerConfig::default()
        },
        CtlConfig {
            line_timeout,
            ..CtlConfig::default()
        },
    );
    let before = server.state();
    let withdraw = ANNOUNCE.replace("\"announce\"", "\"withdraw\"");
    let feed = server.feed_client();
    let (ctl, mut ctl_reader) = server.ctl_client();
    let dribble = |mut stream: UnixStream, text: String| {
        std::thread::spawn(move || {
            let started = Instant::now();
            for b in text.bytes() {
                if stream.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            started.elapsed()
        })
    };
    let started = Instant::now();
    let feed_dribbler = dribble(feed.try_clone().expect("clone"), format!("{withdraw}\n"));
    let ctl_dribbler = dribble(
        ctl.try_clone().expect("clone"),
        "{\"cmd\":\"drain\",\"hop\":\"198.51.100.2\"}\n".to_owned(),
    );
    // While both dribble, well-behaved clients are served.
    std::thread::sleep(Duration::from_millis(500));
    server.serves_well_behaved_clients();
    assert_eq!(server.stats().line_timeouts, 0, "closed too early");

    let mut reply = String::new();
    ctl_reader.read_line(&mut reply).expect("an error line");
    let reply: Reply = serde_json::from_str(&reply).expect("a reply");
    assert!(
        reply
            .error
            .as_deref()
            .is_some_and(|e| e.contains("not completed within 2s")),
        "{reply:?}"
    );
    let closed = started.elapsed();
    assert!(
        closed >= line_timeout && closed < line_timeout + Duration::from_secs(2),
        "closed after {closed:?}"
    );
    let mut rest = String::new();
    assert_eq!(ctl_reader.read_line(&mut rest).expect("the end"), 0);
    // The feed side: the refresh request was read by feed_client; next comes the end.
    let mut feed_reader = BufReader::new(feed);
    assert_eq!(feed_reader.read_line(&mut rest).expect("the end"), 0);
    server.wait_stats("the feed timeout", |s| s.line_timeouts == 1);
    assert!(started.elapsed() < line_timeout + Duration::from_secs(2));
    // The dribblers notice at their next write.
    assert!(feed_dribbler.join().expect("feed dribbler") < Duration::from_secs(10));
    assert!(ctl_dribbler.join().expect("ctl dribbler") < Duration::from_secs(10));
    server.serves_well_behaved_clients();
    assert_eq!(server.state(), before);
    server.finish();
}

/// Makes room for `needed` open files in this process (the soft limit may be 1024).
fn raise_open_file_limit(needed: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|c| c < needed) {
        let current = limit.maximum.map_or(needed, |m| m.min(needed));
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(current),
                maximum: limit.maximum,
            },
        )
        .expect("raise the open file limit");
    }
}

/// Whether the server has closed `stream` (reads the end, or an error), waiting up to `wait`.
fn closed_by_server(stream: &UnixStream, wait: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 256];
    let mut s = stream;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // The feed's route-refresh request; keep reading.
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn a_thousand_concurrent_connections_leave_the_sockets_serving() {
    const HOSTILE: usize = 1000;
    let feed_max = FeedServerConfig::default().max_clients;
    let ctl_max = CtlConfig::default().max_clients;
    // Both ends of every connection live in this process.
    raise_open_file_limit(16_384);
    let server = Server::start(FeedServerConfig::default(), CtlConfig::default());
    let before = server.state();
    let baseline = rss();
    let peak = RssPeak::start();

    // A thousand silent connections to each socket, all open at once.
    let feed: Vec<UnixStream> = (0..HOSTILE)
        .map(|_| UnixStream::connect(&server.feed).expect("connect feed"))
        .collect();
    let ctl: Vec<UnixStream> = (0..HOSTILE)
        .map(|_| UnixStream::connect(&server.ctl).expect("connect ctl"))
        .collect();
    // Every one was taken and all but the slots' worth were closed to make room: the feed's
    // for newer ones (none sent a valid line; the companion, which did, keeps its slot), the
    // control socket's as the longest idle.
    let stats = server.wait_stats("the feed connections", |s| {
        s.evicted == (HOSTILE + 1 - feed_max) as u64
    });
    assert_eq!(stats.refused_busy, 0, "{stats:?}");
    // A well-behaved client is served while they are all connected: on the control socket it
    // takes the slot of the longest idle one, on the feed the companion connected before them
    // keeps its slot (it sent valid lines) and is still read.
    server.serves_well_behaved_clients();
    let peak = peak.finish();
    // A newcomer to the feed takes a slot too.
    let newcomer = server.feed_client();
    server.wait_stats("the newcomer", |s| {
        s.evicted == (HOSTILE + 2 - feed_max) as u64
    });

    let open = |streams: &[UnixStream]| {
        streams
            .iter()
            .filter(|s| !closed_by_server(s, Duration::from_millis(1)))
            .count()
    };
    // Slots: max_clients each; the companion and the newcomer hold two of the feed's, and the
    // `peers` above took one of the control socket's (freed when it closed).
    assert_eq!(
        open(&feed),
        feed_max - 2,
        "the companion and the newcomer hold two"
    );
    assert_eq!(open(&ctl), ctl_max - 1);
    // Memory for the admitted ones: a read buffer each (64 KiB feed, 8 KiB control) and the
    // threads' stacks, well under max_clients * 256 KiB.
    let grown = peak.saturating_sub(baseline);
    let bound = ((feed_max + ctl_max) * 256 * 1024) as u64;
    assert!(grown < bound, "RSS grew by {} KiB", grown >> 10);

    drop(feed);
    drop(ctl);
    drop(newcomer);
    server.serves_well_behaved_clients();
    // The refresh each admitted feed connection asked for has not timed out (30 s): see the
    // README's Reliability section on why a feed connection starts one.
    assert_eq!(server.state(), before);
    server.finish();
}
