//! `ecmpfwd run` over DPDK ports (cargo feature `dpdk`), on virtual devices only: no NIC, no
//! huge pages (`--no-huge`), each run a process of its own with its own EAL and file prefix.
//!
//! - The golden fixtures (`tests/golden/`) replayed through `net_pcap` ports leave every port
//!   with exactly the frames the pcap ports send for the same capture and config, which are the
//!   fixtures' expected outputs.
//! - While it runs, `ecmpctl stats` (the control socket) adds up: every received packet is
//!   forwarded or dropped, the ports' counters and the devices' own (with their link state)
//!   agree with the workers'; at SIGTERM every mbuf is
//!   back in its pool (the runtime fails the run otherwise) and the exit is clean.
//! - In this process (its own EAL): steady-state bursts through the worker's whole pipeline over
//!   `net_ring` ports make no heap allocation, and every mbuf comes back to its pool.
//! - `scripts/demo --io dpdk`'s lab story (root, ExaBGP): ecmpfwd on `net_af_xdp` devices over
//!   the lab's veths, every claim of the AF_XDP demo holding, and a clean stop with the mbufs
//!   back (`lab_demo.rs` runs the same driver over AF_XDP ports).
//! - `ecmpfwd bench --io dpdk` over two net_null devices forwards every packet it times, with no
//!   drop, the devices' own counters agree, and every mbuf is back in the pool at the end.

mod driver;
mod lab_common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecmp_dataplane::counters::{Counter, SharedCounters};
use ecmp_dataplane::drop::DropReason;
use ecmp_dataplane::worker::Worker;
use ecmp_io::dpdk::{DeviceConfig, DpdkDevice, DpdkFrame, DpdkPort, Eal, Mempool, PoolConfig};
use ecmp_io::pcap::{PcapReader, PcapWriter};
use ecmp_pktgen::traffic::Rng;
use ecmp_port::alloc_count::{CountingAllocator, allocations};
use ecmp_port::{Burst, Port};
use ecmp_proto::ctl::Request;
use ecmp_tables::snapshot::SnapshotCell;
use ecmp_testkit::frames::{FrameSpec, TcpFlags};
use ecmpfwd::config::Config;
use ecmpfwd::setup::{self, pipeline_config};
use lab_common::{ECMPFWD, Proc, ctl_request, signal};
use serde_json::Value;

// Counts are per thread: only the in-process test reads them.
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The golden fixtures' directory.
fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden")
}

/// A fixture's hex: `#` lines are comments, the rest hex digits and whitespace.
fn read_hex(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("hex fixture");
    let digits: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// One golden case: its input, and the port name and frame it must leave with (none: dropped).
struct Case {
    input: Vec<u8>,
    out: Option<(String, Vec<u8>)>,
}

fn golden_cases() -> Vec<Case> {
    let dir = golden_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".in.hex")?.to_owned())
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let verdict =
                std::fs::read_to_string(dir.join(format!("{name}.verdict"))).expect("verdict");
            let out = verdict.trim().strip_prefix("tx ").map(|port| {
                (
                    port.to_owned(),
                    read_hex(&dir.join(format!("{name}.out.hex"))),
                )
            });
            Case {
                input: read_hex(&dir.join(format!("{name}.in.hex"))),
                out,
            }
        })
        .collect()
}

/// The golden config's port names, in order (`kind = "memory"` lines are replaced per port).
const PORTS: [&str; 4] = ["uplink", "servers", "fabric", "narrow"];

/// `golden.toml` with each `kind = "memory"` line (one per port, in [`PORTS`] order) replaced
/// by `kind(i)`, and `extra` appended.
fn golden_config_with(kind: impl Fn(usize) -> String, extra: &str) -> String {
    let text = std::fs::read_to_string(golden_dir().join("golden.toml")).expect("golden.toml");
    let mut i = 0;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim() == "kind = \"memory\"" {
            out.push_str(&kind(i));
            i += 1;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert_eq!(i, PORTS.len(), "golden.toml's ports changed: update PORTS");
    out.push_str(extra);
    out
}

fn write_input(dir: &Path, cases: &[Case]) -> PathBuf {
    let path = dir.join("in.pcap");
    let mut w = PcapWriter::create(&path).expect("in.pcap");
    for (i, c) in cases.iter().enumerate() {
        w.write_packet(i as u64 * 1000, &c.input).expect("write");
    }
    drop(w.into_inner().expect("flush"));
    path
}

fn frames(path: &Path) -> Vec<Vec<u8>> {
    PcapReader::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|p| p.expect("pcap record").data)
        .collect()
}

/// The `[dpdk]` section of a test run: ordinary memory, no PCI scan, no shared files, a file
/// prefix of its own.
fn dpdk_section(prefix: &str, ctl: &Path) -> String {
    format!(
        "[dpdk]\ncores = \"0\"\nmemory = 256\nno_huge = true\nfile_prefix = \"{prefix}\"\n\
         args = [\"--no-pci\", \"--no-telemetry\", \"--no-shconf\", \"--log-level\", \"lib.eal:error\"]\n\
         [control]\nsocket = \"{}\"\n",
        ctl.display()
    )
}

/// The EAL creates its runtime directory even with `--no-shconf`; remove it (empty) after a run.
struct RuntimeDir(String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(format!("/var/run/dpdk/{}", self.0));
        if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR") {
            let _ = std::fs::remove_dir(Path::new(&xdg).join("dpdk").join(&self.0));
        }
    }
}

/// `ecmpfwd run --json` on `config`, running until stopped.
fn spawn(config: &Path, log: &Path) -> Proc {
    let stderr = std::fs::File::create(log).expect("log file");
    Proc(
        Command::new(ECMPFWD)
            .args(["run", "--json", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn ecmpfwd"),
    )
}

/// Polls the control socket until the workers have received `packets` (bounded); the stats.
fn wait_received(fw: &mut Proc, ctl: &Path, log: &Path, packets: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = fw.exited() {
            panic!(
                "ecmpfwd exited ({status:?}) before receiving {packets} packets; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if ctl.exists() {
            let reply = ctl_request(ctl, &Request::Stats {});
            assert!(reply.ok, "stats refused: {:?}", reply.error);
            let got: u64 = reply.result["workers"]
                .as_array()
                .expect("workers")
                .iter()
                .map(|w| w["packets"].as_u64().expect("packets"))
                .sum();
            if got >= packets {
                return reply.result;
            }
        }
        assert!(
            Instant::now() < deadline,
            "ecmpfwd did not receive {packets} packets in time; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then the exit status and the log; panics (the guard kills it) past 10 s.
fn stop(mut fw: Proc, log: &Path) -> (std::process::ExitStatus, String) {
    signal(fw.0.id(), "TERM");
    let status = fw.wait(Duration::from_secs(10));
    (status, std::fs::read_to_string(log).unwrap_or_default())
}

#[test]
fn golden_fixtures_through_net_pcap_ports_match_the_pcap_ports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases = golden_cases();
    assert!(cases.len() > 100, "only {} golden cases", cases.len());
    let input = write_input(d, &cases);

    // The reference: the same capture through pcap ports.
    let pcap_cfg = golden_config_with(
        |i| {
            let port = PORTS[i];
            let rx = if i == 0 {
                format!("input = \"{}\"\n", input.display())
            } else {
                String::new()
            };
            format!(
                "kind = \"pcap\"\n{rx}output = \"{}/pcap-{port}.pcap\"",
                d.display()
            )
        },
        "",
    );
    let pcap_path = d.join("pcap.toml");
    std::fs::write(&pcap_path, pcap_cfg).expect("config");
    let out = Command::new(ECMPFWD)
        .args(["run", "--json", "--config"])
        .arg(&pcap_path)
        .output()
        .expect("ecmpfwd run (pcap)");
    assert!(
        out.status.success(),
        "pcap run: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same through net_pcap devices.
    let prefix = format!("ecmp-run-golden-{}", std::process::id());
    let _runtime = RuntimeDir(prefix.clone());
    let ctl = d.join("ctl.sock");
    let dpdk_cfg = golden_config_with(
        |i| {
            let port = PORTS[i];
            let rx = if i == 0 {
                format!("rx_pcap={},", input.display())
            } else {
                String::new()
            };
            format!(
                "kind = \"dpdk\"\ndevice = \"net_pcap{i},{rx}tx_pcap={}/dpdk-{port}.pcap\"",
                d.display()
            )
        },
        &dpdk_section(&prefix, &ctl),
    );
    let dpdk_path = d.join("dpdk.toml");
    std::fs::write(&dpdk_path, dpdk_cfg).expect("config");
    let log = d.join("dpdk.log");
    let mut fw = spawn(&dpdk_path, &log);
    wait_received(&mut fw, &ctl, &log, cases.len() as u64);
    let (status, log_text) = stop(fw, &log);
    assert!(status.success(), "dpdk run: {log_text}");

    for port in PORTS {
        let want = frames(&d.join(format!("pcap-{port}.pcap")));
        let got = frames(&d.join(format!("dpdk-{port}.pcap")));
        let golden: Vec<&Vec<u8>> = cases
            .iter()
            .filter_map(|c| c.out.as_ref())
            .filter(|(p, _)| p == port)
            .map(|(_, f)| f)
            .collect();
        assert_eq!(
            want.iter().collect::<Vec<_>>(),
            golden,
            "port {port}: the pcap ports disagree with the golden fixtures"
        );
        assert_eq!(got.len(), want.len(), "port {port}: frames sent");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "port {port}: frame {i} differs");
        }
    }
    let sent = cases.iter().filter(|c| c.out.is_some()).count();
    assert!(sent > 0 && sent < cases.len(), "only {sent} cases are sent");
}

#[test]
fn stats_add_up_and_every_mbuf_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases = golden_cases();
    let input = write_input(d, &cases);
    let prefix = format!("ecmp-run-stats-{}", std::process::id());
    let _runtime = RuntimeDir(prefix.clone());
    let ctl = d.join("ctl.sock");
    let cfg = golden_config_with(
        |i| {
            let rx = if i == 0 {
                format!("rx_pcap={},", input.display())
            } else {
                String::new()
            };
            format!(
                "kind = \"dpdk\"\ndevice = \"net_pcap{i},{rx}tx_pcap={}/out{i}.pcap\"",
                d.display()
            )
        },
        &dpdk_section(&prefix, &ctl),
    );
    let path = d.join("dpdk.toml");
    std::fs::write(&path, cfg).expect("config");
    let log = d.join("dpdk.log");
    let mut fw = spawn(&path, &log);
    let n = cases.len() as u64;
    wait_received(&mut fw, &ctl, &log, n);
    // The last burst's frames are counted received before they are sent: let it finish.
    std::thread::sleep(Duration::from_millis(100));
    let stats = ctl_request(&ctl, &Request::Stats {}).result;
    let workers = stats["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 1, "{stats}");
    let w = &workers[0];
    let get = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {stats}"));
    let (packets, forwarded, dropped) = (get(w, "packets"), get(w, "forwarded"), get(w, "dropped"));
    assert_eq!(packets, n, "{stats}");
    assert_eq!(
        packets,
        forwarded + dropped,
        "received = forwarded + dropped: {stats}"
    );
    let want_sent = cases.iter().filter(|c| c.out.is_some()).count() as u64;
    assert_eq!(forwarded, want_sent, "{stats}");
    // (reason, count) pairs.
    let by_reason: u64 = stats["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .map(|v| v[1].as_u64().expect("drop count"))
        .sum();
    assert_eq!(by_reason, dropped, "drops by reason: {stats}");
    let ports = stats["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), PORTS.len(), "{stats}");
    let rx: u64 = ports.iter().map(|p| get(p, "rx_packets")).sum();
    let tx: u64 = ports.iter().map(|p| get(p, "tx_packets")).sum();
    let refused: u64 = ports.iter().map(|p| get(p, "tx_refused")).sum();
    assert_eq!(
        (rx, tx, refused),
        (n, forwarded, 0),
        "port counters: {stats}"
    );
    for (i, port) in PORTS.iter().enumerate() {
        let want = cases
            .iter()
            .filter(|c| c.out.as_ref().is_some_and(|(p, _)| p == port))
            .count() as u64;
        let p = &ports[i];
        assert_eq!(p["name"], *port, "{stats}");
        assert_eq!(get(p, "tx_packets"), want, "port {port}: {stats}");
    }
    // The devices' own view (link state, DPDK's counters) agrees with the workers'.
    let devices = stats["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), PORTS.len(), "{stats}");
    for (d, port) in devices.iter().zip(PORTS) {
        assert_eq!(d["port"], port, "{stats}");
        assert_eq!(d["link_up"], true, "{stats}");
        assert!(d["error"].is_null(), "{stats}");
        assert!(d["xstats"].is_array(), "{stats}");
    }
    let ipackets: u64 = devices.iter().map(|d| get(d, "ipackets")).sum();
    let opackets: u64 = devices.iter().map(|d| get(d, "opackets")).sum();
    assert_eq!(
        (ipackets, opackets),
        (n, forwarded),
        "device counters: {stats}"
    );

    let (status, log_text) = stop(fw, &log);
    assert!(status.success(), "dpdk run: {log_text}");
    // The runtime fails the run when a pool is not whole after the devices close.
    assert!(
        log_text.contains("every mbuf is back in its pool"),
        "no leak report: {log_text}"
    );
    let total: usize = (0..PORTS.len())
        .map(|i| frames(&d.join(format!("out{i}.pcap"))).len())
        .sum();
    assert_eq!(total as u64, forwarded);
}

/// Two workers over two-queue `net_null` devices: each worker polls its own queue of every
/// port, into its own pool, and both stop with every mbuf back. (net_null makes up zeroed
/// frames on rx, which the pipeline drops as unknown ethertype, and frees what it is sent.)
#[test]
fn two_workers_poll_their_own_queues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let prefix = format!("ecmp-run-queues-{}", std::process::id());
    let _runtime = RuntimeDir(prefix.clone());
    let ctl = d.join("ctl.sock");
    let cfg = format!(
        "[instance]\nname = \"queues\"\n\
         [[port]]\nname = \"a\"\nkind = \"dpdk\"\ndevice = \"net_null0\"\nqueues = 2\nmac = \"02:00:00:00:00:01\"\n\
         [[port]]\nname = \"b\"\nkind = \"dpdk\"\ndevice = \"net_null1\"\nqueues = 2\nmac = \"02:00:00:00:00:02\"\n\
         [[worker]]\ncore = 0\nports = [\"a:0\", \"b:0\"]\n\
         [[worker]]\ncore = 1\nports = [\"a:1\", \"b:1\"]\n{}",
        dpdk_section(&prefix, &ctl)
    );
    let path = d.join("dpdk.toml");
    std::fs::write(&path, cfg).expect("config");
    let log = d.join("dpdk.log");
    let mut fw = spawn(&path, &log);
    let stats = wait_received(&mut fw, &ctl, &log, 1000);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stats = stats;
    // Both workers receive (the first may be ahead of the second at the first look).
    while stats["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .any(|w| w["packets"].as_u64() == Some(0))
    {
        assert!(
            Instant::now() < deadline,
            "a worker receives nothing: {stats}"
        );
        std::thread::sleep(Duration::from_millis(20));
        stats = ctl_request(&ctl, &Request::Stats {}).result;
    }
    let cpus: Vec<u64> = stats["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["cpu"].as_u64().expect("cpu"))
        .collect();
    assert_eq!(cpus, [0, 1], "{stats}");
    let (status, log_text) = stop(fw, &log);
    assert!(status.success(), "dpdk run: {log_text}");
    assert!(
        log_text.contains("every mbuf is back in its pool (2 pool(s)"),
        "no leak report: {log_text}"
    );
}

/// Packets counted after warm-up in [`pipeline_over_net_ring_ports_allocates_nothing`].
const STEADY_PACKETS: u64 = 1_000_000;

/// configs/encap.toml's traffic of `no_alloc.rs` (every route and action, TCP and UDP, TTL 1 and
/// unrouted drops), 20k flows.
fn encap_traffic(cfg: &Config) -> Vec<Vec<u8>> {
    let routes: Vec<IpAddr> = cfg.routes.iter().map(|r| r.prefix.addr).collect();
    let mut rng = Rng::new(3);
    (0..20_000u32)
        .map(|i| {
            let dst = routes[i as usize % routes.len()];
            let src = match dst {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(
                    0xC612_0000 | (rng.next_u64() as u32 & 0xFFFF),
                )),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(
                    0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | u128::from(i),
                )),
            };
            let len = 60 + (i as usize % 4) * 100;
            let mut spec = FrameSpec::udp(src, dst, 1024 + (i % 60_000) as u16, 80, len);
            if i % 3 == 0 {
                spec = spec.with_tcp(if i % 2 == 0 {
                    TcpFlags::SYN
                } else {
                    TcpFlags::ACK
                });
            }
            if i % 97 == 0 {
                spec.ttl = 1;
            }
            if i % 89 == 0 {
                spec.dst = match dst {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
                    IpAddr::V6(_) => "2001:db8:dead::1".parse().expect("address"),
                };
            }
            spec.build().expect("frame")
        })
        .collect()
}

/// The worker of `ecmpfwd run` (configs/encap.toml's tables) over one `net_ring` device per
/// port. A `net_ring` device's tx ring is its rx ring, so the test injects traffic by sending it
/// on the ingress port, and what the worker forwards comes back on the egress port, where it is
/// dropped (its destination MAC is the next hop's): rx, parse, flow cache (inserts, evictions),
/// LPM, buckets, rewrite, every encap, tx batching and drops all run in the steady state, with
/// zero heap allocations on the worker's thread. Stopped and drained, every mbuf is back.
#[test]
fn pipeline_over_net_ring_ports_allocates_nothing() {
    let prefix = format!("ecmp-run-noalloc-{}", std::process::id());
    let _runtime = RuntimeDir(prefix.clone());
    let eal = Eal::init(&[
        "-l",
        "0",
        "--no-huge",
        "--no-pci",
        "-m",
        "256",
        "--file-prefix",
        prefix.as_str(),
        "--log-level",
        "lib.eal:error",
        "--no-telemetry",
        "--no-shconf",
    ])
    .expect("EAL init");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/encap.toml");
    let mut cfg = Config::load(&path).expect("config");
    // A cache smaller than the flow count, so inserts, evictions and "not cached" all happen.
    cfg.flow_cache.capacity = 1 << 12;
    let tables = setup::build(&cfg).expect("tables");
    let cell = Arc::new(SnapshotCell::new(tables.snapshot.clone(), 1));
    let pool = Arc::new(
        Mempool::create(
            eal,
            "noalloc",
            &PoolConfig {
                mbufs: 8191,
                cache: 256,
                ..PoolConfig::default()
            },
        )
        .expect("mbuf pool"),
    );
    let devices: Vec<DpdkDevice> = (0..cfg.ports.len())
        .map(|i| {
            DpdkDevice::open(
                eal,
                &format!("net_ring{i}"),
                &DeviceConfig::default(),
                std::slice::from_ref(&pool),
            )
            .expect("net_ring device")
        })
        .collect();
    let ports = devices
        .iter()
        .map(|d| d.port(0).expect("queue 0"))
        .collect();
    let counters = Arc::new(SharedCounters::default());
    let mut worker = Worker::new(ports, &pipeline_config(&cfg), cell, counters).expect("worker");
    let frames = encap_traffic(&cfg);

    let mut inject: Burst<DpdkFrame> = Burst::new();
    let mut next = 0;
    let mut now_ns = 10_000;
    let rx = |w: &Worker<DpdkPort>| w.pipeline().counters().get(Counter::RxPackets);
    // One round: top the injection burst up from the traffic, send it into the ingress ring
    // (what the ring refuses stays for the next round), poll once.
    let mut round = |worker: &mut Worker<DpdkPort>| {
        while !inject.is_full() {
            inject.push(pool.frame_from(&frames[next]).expect("mbuf"));
            next = (next + 1) % frames.len();
        }
        worker.ports_mut()[0].tx_burst(&mut inject);
        worker.poll(now_ns);
        now_ns += 10_000;
    };
    // Warm-up: every flow seen twice, so every table and batch has its final size.
    while rx(&worker) < 4 * frames.len() as u64 {
        round(&mut worker);
    }
    let start_rx = rx(&worker);
    let before = allocations();
    while rx(&worker) < start_rx + STEADY_PACKETS {
        round(&mut worker);
    }
    let allocated = allocations() - before;

    // Stop: what is queued comes back in and is forwarded or dropped, until the rings stay
    // empty; the batches go out; the leftover injection goes back.
    let mut idle = 0;
    while idle < 8 {
        if worker.poll(now_ns) == 0 {
            idle += 1;
        } else {
            idle = 0;
        }
        worker.drain();
        now_ns += 10_000;
    }
    for f in inject.drain(..) {
        worker.ports_mut()[0].release(f);
    }
    let c = worker.pipeline().counters().clone();
    assert_eq!(
        allocated, 0,
        "the hot path allocated {allocated} times over {STEADY_PACKETS} packets"
    );
    assert!(
        c.get(Counter::TxPackets) > STEADY_PACKETS / 2,
        "most injected packets forwarded: {c:?}"
    );
    assert!(
        c.drops(DropReason::NotForUs) > STEADY_PACKETS / 2,
        "forwarded frames came back on their egress ring and were dropped there: {c:?}"
    );
    assert!(
        c.get(Counter::NotCached) + c.get(Counter::Evictions) > 0,
        "cache pressure: {c:?}"
    );
    assert_eq!(pool.in_use(), 0, "every mbuf back before the devices close");
    drop(worker);
    drop(devices);
    assert_eq!(pool.in_use(), 0, "every mbuf back after the devices close");
}

/// The lab demo over DPDK ports, with few flows (its CI cost is the lab's set-up and the
/// ExaBGP sessions, about 10 s). The driver tears its lab down and kills what it started even
/// when a claim fails; this test bounds it in time and kills it by PID.
#[test]
fn the_lab_demo_claims_hold_over_dpdk_ports() {
    // This build's ecmpfwd (with the feature), beside the workspace's other binaries.
    let out = driver::run_driver(
        "labdemo.py",
        &["--io", "dpdk", "--flows", "100"],
        driver::Lab::Single,
        &format!("dd{}", std::process::id()),
        &["ecmpctl", "ecmpfwd-pktgen"],
        Duration::from_secs(90),
    )
    // The AF_XDP demo's claims, and the clean stop.
    .assert_claims(21);
    assert!(out.contains("ecmpfwd runs on DPDK ports"), "{out}");
    assert!(out.contains("[ok] ecmpfwd stops cleanly (exit 0)"), "{out}");
}

#[test]
fn bench_over_net_null_forwards_every_timed_packet_and_returns_every_mbuf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("report.json");
    let log = dir.path().join("bench.log");
    let packets: u64 = 100_000;
    let mut bench = Proc(
        Command::new(ECMPFWD)
            .args([
                "bench",
                "--io",
                "dpdk",
                "--json",
                "--flows",
                "1000",
                "--routes",
                "1000",
                "--groups",
                "8",
                "--group-size",
                "4",
                "--buckets",
                "64",
                "--hugepages",
                "off",
                "--packets",
            ])
            .arg(packets.to_string())
            .arg(
                "--eal=--no-huge -m 128 --no-pci --no-telemetry --no-shconf \
                 --log-level lib.eal:error",
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).expect("report file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn ecmpfwd bench"),
    );
    let _runtime = RuntimeDir(format!("ecmpfwd-bench-{}", bench.id()));
    let status = bench.wait(Duration::from_secs(60));
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "ecmpfwd bench --io dpdk: {status:?}; its log:\n{log}"
    );
    let text = std::fs::read_to_string(&out_path).expect("report");
    let r: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    let n = |v: &Value| {
        v.as_u64()
            .unwrap_or_else(|| panic!("not a count: {v} in {r}"))
    };
    let timed = n(&r["packets"]);
    // Whole bursts: may overshoot by less than one.
    assert!((packets..packets + 32).contains(&timed), "{r}");
    assert_eq!(n(&r["tx_packets"]), timed, "forwarded == timed: {r}");
    assert_eq!(n(&r["drops"]), 0, "{r}");
    assert_eq!(n(&r["cache_hits"]) + n(&r["cache_misses"]), timed, "{r}");
    assert!(r["ns_per_packet"].as_f64().is_some_and(|x| x > 0.0), "{r}");
    assert!(r["mpps"].as_f64().is_some_and(|x| x > 0.0), "{r}");
    let d = &r["dpdk"];
    assert_eq!(n(&d["pool_in_use_at_end"]), 0, "{r}");
    assert!(n(&d["pool_mbufs"]) > 0, "{r}");
    assert_eq!(n(&d["rx_short"]), 0, "{r}");
    let devices = d["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 2, "{r}");
    assert!(
        devices[0]["device"]
            .as_str()
            .unwrap_or("")
            .starts_with("net_null0"),
        "{r}"
    );
    // The rx device handed out exactly what the worker received; the tx device took all of it.
    assert_eq!(n(&devices[0]["ipackets"]), timed, "{r}");
    assert_eq!(n(&devices[0]["opackets"]), 0, "{r}");
    assert_eq!(n(&devices[1]["ipackets"]), 0, "{r}");
    assert_eq!(n(&devices[1]["opackets"]), timed, "{r}");
    for dev in devices {
        for k in ["imissed", "ierrors", "oerrors", "rx_nombuf"] {
            assert_eq!(n(&dev[k]), 0, "{k}: {r}");
        }
    }
}
