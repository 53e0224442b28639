//! Feed benchmarks: how fast routes load through the feed socket, and how long an update takes
//! to reach every worker (convergence) while a worker forwards traffic.
//!
//! In one process: the feed server (control thread, RIB, builder) publishing into a snapshot
//! cell that one pipeline worker reads while it forwards replayed frames (memory ports) toward
//! the announced prefixes. Lines are ExaBGP 5.0 JSON as the companion prints them (one update
//! line carries up to `--per-line` prefixes of one next hop, as ExaBGP groups NLRIs sharing
//! attributes), written to the Unix socket by this process.
//!
//! 1. Load: `--peers` servers each announce every one of `--prefixes` /32s (ADD-PATH, one path
//!    per server); timed from the first byte written to the RIB holding every path and the last
//!    batch published.
//! 2. Convergence: `--updates` single-path changes (one server withdraws or re-announces one
//!    prefix), one at a time; each timed from writing its line to every worker running the
//!    generation it produced (the same span the server's own histogram measures from the line's
//!    read).
//!
//! Prints one JSON object. Run it in release mode:
//! `cargo run --release -p ecmp-benches --bin feed-bench -- --prefixes 1000000`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ecmp_control::builder::{Builder, BuilderConfig, GroupPolicy};
use ecmp_control::control::{ControlConfig, ControlThread};
use ecmp_control::feed_server::{FeedServer, FeedServerConfig};
use ecmp_control::{Rib, RibConfig};
use ecmp_dataplane::counters::{Counter, SharedCounters};
use ecmp_dataplane::flowcache::FlowCacheConfig;
use ecmp_dataplane::hash::DEFAULT_RSS_KEY;
use ecmp_dataplane::pipeline::PipelineConfig;
use ecmp_dataplane::worker::Worker;
use ecmp_port::memory::{FramePool, MemoryPort, TxMode};
use ecmp_tables::nexthop::{PortId, PortInfo};
use ecmp_tables::snapshot::SnapshotCell;
use ecmp_testkit::frames::FrameSpec;
use hdrhistogram::Histogram;

struct Args {
    prefixes: u32,
    peers: u32,
    per_line: u32,
    buckets: u32,
    updates: u32,
    batch_window_us: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        prefixes: 100_000,
        peers: 4,
        per_line: 500,
        buckets: 16,
        updates: 2000,
        batch_window_us: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))?;
        let small = || u32::try_from(n).map_err(|_| format!("{flag}: too large"));
        match flag.as_str() {
            "--prefixes" => a.prefixes = small()?,
            "--peers" => a.peers = small()?,
            "--per-line" => a.per_line = small()?.max(1),
            "--buckets" => a.buckets = small()?,
            "--updates" => a.updates = small()?,
            "--batch-window-us" => a.batch_window_us = n,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.peers == 0 || a.peers > 250 || a.prefixes == 0 || a.prefixes > 1 << 24 {
        return Err("need 1..=250 peers and 1..=16M prefixes".to_owned());
    }
    Ok(a)
}

/// The i-th benchmark prefix: 10.0.0.0/8 host addresses, in order.
fn prefix(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + i)
}

fn next_hop(peer: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, peer as u8 + 1)
}

fn up_line(peer: u32) -> String {
    format!(
        r#"{{ "exabgp": "5.0.0", "time": 1.0, "host" : "b", "pid" : 1, "ppid" : 1, "counter": 1, "type": "state", "neighbor": {{ "address": {{ "local": "127.0.0.1", "peer": "127.0.1.{p}" }}, "asn": {{ "local": 65000, "peer": {asn} }}, "router-id": "127.0.0.1" , "state": "up" }} }}"#,
        p = peer + 1,
        asn = 65001 + peer
    )
}

fn update_line(peer: u32, nlris: &[u32], withdraw: bool) -> String {
    let path = format!("0.0.0.{}", peer + 1);
    let list: Vec<String> = nlris
        .iter()
        .map(|&i| {
            format!(
                r#"{{ "nlri": "{}/32", "path-information": "{path}" }}"#,
                prefix(i)
            )
        })
        .collect();
    let body = if withdraw {
        format!(
            r#""withdraw": {{ "ipv4 unicast": [ {} ] }}"#,
            list.join(", ")
        )
    } else {
        format!(
            r#""attribute": {{ "origin": "igp" }}, "announce": {{ "ipv4 unicast": {{ "{}": [ {} ] }} }}"#,
            next_hop(peer),
            list.join(", ")
        )
    };
    format!(
        r#"{{ "exabgp": "5.0.0", "time": 1.0, "host" : "b", "pid" : 1, "ppid" : 1, "counter": 2, "type": "update", "neighbor": {{ "address": {{ "local": "127.0.0.1", "peer": "127.0.1.{p}" }}, "asn": {{ "local": 65000, "peer": {asn} }}, "router-id": "127.0.0.1" , "direction": "receive", "message": {{ "update": {{ {body} }} }} }} }}"#,
        p = peer + 1,
        asn = 65001 + peer
    )
}

fn resolve(addr: IpAddr) -> Option<(PortId, [u8; 6])> {
    let last = match addr {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    Some((1, [2, 0, 0, 0, 1, last]))
}

type Resolve = fn(IpAddr) -> Option<(PortId, [u8; 6])>;

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let ports = vec![
        PortInfo {
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
        },
        PortInfo {
            mac: [2, 0, 0, 0, 0, 2],
            mtu: 1500,
        },
    ];
    let config = BuilderConfig {
        default_policy: GroupPolicy {
            buckets: args.buckets,
            ..GroupPolicy::default()
        },
        ports,
        seed: 1,
        max_tbl8: 1 << 16,
        ..BuilderConfig::default()
    };
    let builder = Builder::new(config, resolve as Resolve).map_err(|e| e.to_string())?;
    let cell = Arc::new(SnapshotCell::new(builder.snapshot(), 1));

    // The worker: 4096 flows toward the first prefixes, replayed forever.
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(SharedCounters::default());
    let worker = {
        let (cell, stop, counters) = (Arc::clone(&cell), Arc::clone(&stop), Arc::clone(&counters));
        let targets = args.prefixes.min(4096);
        thread::spawn(move || -> Result<(), String> {
            let pool = FramePool::new(8192);
            let mut rx = MemoryPort::with_tx_mode(pool.clone(), TxMode::Count);
            let frames: Vec<Vec<u8>> = (0..4096u32)
                .map(|f| {
                    let mut spec = FrameSpec::udp(
                        IpAddr::V4(Ipv4Addr::new(198, 18, (f >> 8) as u8, f as u8)),
                        IpAddr::V4(prefix(f % targets)),
                        1024 + f as u16,
                        80,
                        64,
                    );
                    spec.dst_mac = [2, 0, 0, 0, 0, 1];
                    spec.build().map_err(|e| e.to_string())
                })
                .collect::<Result<_, _>>()?;
            rx.replay(frames.iter()).map_err(|e| e.to_string())?;
            let tx = MemoryPort::with_tx_mode(pool, TxMode::Count);
            let pcfg = PipelineConfig {
                seed: 1,
                rss_key: DEFAULT_RSS_KEY,
                flow_cache: FlowCacheConfig::default(),
            };
            let mut w =
                Worker::new(vec![rx, tx], &pcfg, cell, counters).map_err(|e| e.to_string())?;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                w.poll(start.elapsed().as_nanos() as u64);
            }
            Ok(())
        })
    };

    let dir = std::env::temp_dir().join(format!("ecmp-feed-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let sock = dir.join("feed.sock");
    let server = ControlThread::new(ControlConfig {
        batch_window: Duration::from_micros(args.batch_window_us),
        ..ControlConfig::default()
    })
    .serve(FeedServer::bind(&sock, FeedServerConfig::default()).map_err(|e| e.to_string())?);
    let stats = server.stats();
    let publish_cell = Arc::clone(&cell);
    let handle = server
        .spawn(Rib::new(RibConfig::default()), builder, move |s| {
            publish_cell.publish(s);
        })
        .map_err(|e| e.to_string())?;

    // Phase 1: load.
    let mut lines = Vec::new();
    for peer in 0..args.peers {
        lines.push(up_line(peer));
    }
    let all: Vec<u32> = (0..args.prefixes).collect();
    for peer in 0..args.peers {
        for chunk in all.chunks(args.per_line as usize) {
            lines.push(update_line(peer, chunk, false));
        }
    }
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut feed = UnixStream::connect(&sock).map_err(|e| e.to_string())?;
    let total_paths = u64::from(args.prefixes) * u64::from(args.peers);
    let t0 = Instant::now();
    for l in &lines {
        feed.write_all(l.as_bytes())
            .and_then(|()| feed.write_all(b"\n"))
            .map_err(|e| e.to_string())?;
    }
    let written = t0.elapsed();
    let deadline = t0 + Duration::from_secs(600);
    while stats.get().paths < total_paths {
        if Instant::now() > deadline {
            return Err(format!("load did not finish: {:?}", stats.get()));
        }
        thread::sleep(Duration::from_millis(1));
    }
    let generation = cell.generation();
    while cell.min_reported() < generation {
        thread::sleep(Duration::from_micros(50));
    }
    let load = t0.elapsed();
    let publishes_load = stats.get().publishes;

    // Phase 2: convergence under traffic, one change at a time.
    let before_pkts = counters.read().get(Counter::RxPackets);
    let t_conv = Instant::now();
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())?;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut withdrawn = std::collections::HashSet::new();
    for _ in 0..args.updates {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let i = (rng % u64::from(args.prefixes)) as u32;
        let peer = ((rng >> 32) % u64::from(args.peers)) as u32;
        let withdraw = withdrawn.insert((i, peer));
        if !withdraw {
            withdrawn.remove(&(i, peer));
        }
        let line = update_line(peer, &[i], withdraw) + "\n";
        let gen_before = cell.generation();
        let t = Instant::now();
        feed.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
        let end = t + Duration::from_secs(10);
        loop {
            let g = cell.generation();
            if g > gen_before && cell.min_reported() >= g {
                break;
            }
            if Instant::now() > end {
                return Err("an update did not converge within 10 s".to_owned());
            }
            thread::yield_now();
        }
        hist.saturating_record(t.elapsed().as_nanos() as u64);
    }
    let conv_secs = t_conv.elapsed().as_secs_f64();
    let pkts = counters.read().get(Counter::RxPackets) - before_pkts;

    stop.store(true, Ordering::Relaxed);
    drop(feed);
    let worker_result = worker.join().map_err(|_| "worker panicked".to_owned())?;
    worker_result?;
    handle.join().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);

    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let report = serde_json::json!({
        "prefixes": args.prefixes,
        "peers": args.peers,
        "paths": total_paths,
        "lines": lines.len(),
        "bytes": bytes,
        "buckets_per_group": args.buckets,
        "batch_window_us": args.batch_window_us,
        "load_seconds": load.as_secs_f64(),
        "write_seconds": written.as_secs_f64(),
        "paths_per_second": total_paths as f64 / load.as_secs_f64(),
        "routes_per_second": f64::from(args.prefixes) / load.as_secs_f64(),
        "load_publishes": publishes_load,
        "updates": args.updates,
        "convergence_us": {"p50": us(0.5), "p90": us(0.9), "p99": us(0.99), "max": hist.max() as f64 / 1000.0},
        "traffic_during_convergence_mpps": pkts as f64 / conv_secs / 1e6,
    });
    println!("{report}");
    Ok(())
}
