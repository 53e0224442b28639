//! Hostile clients of a forwarding daemon's sockets (issue 15, item 3) over a real veth lab
//! (`scripts/lab`, needs root): while a thousand silent connections, gigabyte lines, junk and
//! a huge `flows` request hit the feed and control sockets of `ecmpfwd run`, it forwards the
//! same traffic as in a baseline round of the same test, its routes do not change, a
//! well-behaved client is answered, and its RSS stays within a stated margin.
//!
//! The limits themselves (and the exact replies) are tested in control/core/tests/hostile.rs;
//! this test shows the data path does not notice.

mod lab_common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ecmp_proto::ctl::{Reply, Request};
use lab_common::*;

/// Packets per round (at the generator's 20,000 pps: one second of traffic).
const PACKETS: u64 = 20_000;
/// Flows per round.
const FLOWS: u32 = 200;
/// Connections each hostile burst opens on each socket.
const CONNECTIONS: usize = 1000;
/// How much the daemon's RSS may grow while the hostile clients run: one feed line (1 MiB)
/// and read buffers for the connections it holds (128 feed * 64 KiB, 256 control * 8 KiB),
/// plus their threads' touched stacks, with room to spare.
const RSS_MARGIN: u64 = 48 << 20;

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// Streams up to 1 GiB without a newline; stops when the daemon closes the connection.
fn gib_line(path: &Path) -> u64 {
    let Ok(mut s) = UnixStream::connect(path) else {
        return 0;
    };
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0u64;
    while sent < 1 << 30 {
        match s.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(_) => break,
        }
    }
    sent
}

/// Everything hostile at once against both sockets; joined when the round's traffic is done.
fn hostile(feed: PathBuf, ctl: PathBuf, stop: Duration) -> Vec<JoinHandle<String>> {
    let mut jobs: Vec<JoinHandle<String>> = Vec::new();
    for path in [feed.clone(), ctl.clone()] {
        let p = path.clone();
        jobs.push(thread::spawn(move || {
            // Silent connections, held until the round ends.
            let held: Vec<UnixStream> = (0..CONNECTIONS)
                .filter_map(|_| UnixStream::connect(&p).ok())
                .collect();
            let n = held.len();
            thread::sleep(stop);
            format!("{n} connections to {}", p.display())
        }));
        let p = path.clone();
        jobs.push(thread::spawn(move || {
            let sent = gib_line(&p);
            assert!(sent < 1 << 30, "{} took a whole GiB line", p.display());
            format!("{sent} bytes of a GiB line to {}", p.display())
        }));
        let p = path.clone();
        jobs.push(thread::spawn(move || {
            // A partial line dribbled a byte every 100 ms until the round ends.
            let Ok(mut s) = UnixStream::connect(&p) else {
                return "no dribble connection".to_owned();
            };
            let end = Instant::now() + stop;
            let mut n = 0;
            while Instant::now() < end && s.write_all(b"{").is_ok() {
                n += 1;
                thread::sleep(Duration::from_millis(100));
            }
            format!("{n} bytes dribbled to {}", p.display())
        }));
    }
    jobs.push(thread::spawn(move || {
        // Junk and a huge output on the control socket, over and over: each gets its error.
        let end = Instant::now() + stop;
        let mut huge = serde_json::to_vec(&Request::Flows { top: usize::MAX }).expect("encode");
        huge.push(b'\n');
        let mut nested = vec![b'['; 30_000];
        nested.extend(vec![b']'; 30_000]);
        nested.push(b'\n');
        let lines: [&[u8]; 3] = [&huge, &nested, b"{\"cmd\":\"drain\",\"hop\":\"\xff\"}\n"];
        let mut errors = 0;
        while Instant::now() < end {
            for line in lines {
                let Ok(mut s) = UnixStream::connect(&ctl) else {
                    continue;
                };
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                if s.write_all(line).is_err() {
                    continue;
                }
                let mut reply = String::new();
                if BufReader::new(s).read_line(&mut reply).is_ok() {
                    let reply: Reply = serde_json::from_str(&reply).expect("a reply line");
                    assert!(!reply.ok, "{reply:?}");
                    errors += 1;
                }
            }
        }
        assert!(errors > 0, "no junk request was answered");
        format!("{errors} error replies")
    }));
    jobs.push(thread::spawn(move || {
        // Junk lines on a feed connection: skipped.
        let Ok(mut s) = UnixStream::connect(&feed) else {
            return "no feed junk connection".to_owned();
        };
        let end = Instant::now() + stop;
        let mut n = 0;
        while Instant::now() < end && s.write_all(b"\xfe\xff not json [[[[\n").is_ok() {
            n += 1;
            thread::sleep(Duration::from_millis(1));
        }
        format!("{n} junk feed lines")
    }));
    jobs
}

/// Sends one round through the backends; the packets the backend ports sent in it and how long
/// from the first packet until the last one had left.
fn round(lab: &Lab, fw: &Forwarder, ports: &[String]) -> (u64, Duration) {
    let base = fw.tx_packets(ports);
    let started = Instant::now();
    send(
        lab,
        "198.18.0.1",
        VIP4,
        FLOWS,
        PACKETS,
        &["--proto", "udp", "--size", "100"],
    );
    // Bounded: wait_tx fails the test past its deadline.
    fw.wait_tx(ports, base + PACKETS);
    let took = started.elapsed();
    (fw.tx_packets(ports) - base, took)
}

#[test]
fn forwarding_is_unaffected_by_hostile_socket_clients() {
    let lab = Lab::up("hs", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let feed = dir.path().join("feed.sock");
    let opts = ConfigOpts {
        backends: 2,
        ..ConfigOpts::default()
    };
    let text = format!(
        "{}\n[feed]\nsocket = \"{}\"\n",
        config(&opts, &ctl),
        feed.display()
    );
    let cfg = write(dir.path(), "c.toml", &text);
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    let ports = backend_ports(2);
    let routes = fw.ctl_ok(&Request::Routes {});

    // Warm-up (flow cache, neighbours), then the baseline.
    round(&lab, &fw, &ports);
    let (baseline, baseline_took) = round(&lab, &fw, &ports);
    let rss_before = rss_of(fw.pid());

    let jobs = hostile(feed.clone(), ctl.clone(), Duration::from_secs(4));
    // Let them connect and start streaming before the traffic.
    thread::sleep(Duration::from_millis(300));
    let (during, during_took) = round(&lab, &fw, &ports);
    // A well-behaved client is served while they are connected.
    let stats = fw.ctl_ok(&Request::Stats {});
    let rss_during = rss_of(fw.pid());
    let said: Vec<String> = jobs
        .into_iter()
        .map(|j| j.join().expect("hostile client"))
        .collect();
    eprintln!(
        "baseline {baseline} in {baseline_took:?}, during {during} in {during_took:?}; RSS \
         {rss_before} -> {rss_during}; {said:?}"
    );

    // The same packets forwarded (the generator paces both rounds at 20,000 pps); the time to
    // get them all out within half a second of the baseline's.
    assert_eq!(baseline, PACKETS);
    assert_eq!(during, baseline, "forwarded during vs baseline");
    assert!(
        during_took < baseline_took + Duration::from_millis(500),
        "took {during_took:?} vs {baseline_took:?}"
    );
    assert!(
        rss_during < rss_before + RSS_MARGIN,
        "RSS {rss_before} -> {rss_during}"
    );
    let feed_counters = stats["feed"].as_array().expect("feed counters");
    let counter = |name: &str| {
        feed_counters
            .iter()
            .find(|c| c[0] == name)
            .and_then(|c| c[1].as_u64())
            .unwrap_or_else(|| panic!("no feed counter {name}: {stats}"))
    };
    // The GiB line was seen as oversized and cut off (its thread asserts the cut); whether by
    // the discard bound (`abandoned`) or by eviction for one of the thousand new connections is
    // a race this test does not pin down: control/core/tests/hostile.rs tests each alone.
    assert!(counter("oversized") >= 1, "{stats}");
    assert!(counter("evicted") >= 1, "{stats}");
    assert_eq!(fw.ctl_ok(&Request::Routes {}), routes, "routes changed");
    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
}
