//! `[metrics]` end to end over a real veth lab (`scripts/lab`, needs root): `ecmpfwd run` serves
//! `/metrics` in the forwarder's namespace, Debian's `promtool check metrics` accepts what it
//! serves, and a real Prometheus server (Debian's package; scripts/test installs it) started on
//! that namespace's loopback scrapes it every second and answers a query on the forwarded
//! packets with exactly what ecmpfwd counted. The server is stopped by PID and its temp dir
//! removed by a drop guard, on a failed assertion too.

mod lab_common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecmp_proto::ctl::Request;
use lab_common::*;
use serde_json::Value;

/// Where ecmpfwd serves the metrics, on the forwarder namespace's loopback.
const METRICS_PORT: u16 = 9433;
/// Where the Prometheus server listens, same namespace.
const PROMETHEUS_PORT: u16 = 9090;
/// How long the Prometheus server may take to start and to scrape what was sent.
const PROMETHEUS_LIMIT: Duration = Duration::from_secs(60);

/// One HTTP GET on the namespace's loopback (through socat, which scripts/test installs: the
/// test process itself is outside the namespace); the status line and the body.
fn http_get(ns: &str, port: u16, path: &str) -> Option<(String, String)> {
    let mut child = Command::new("timeout")
        // `ignoreeof`: the request's end must not half-close the connection, or Prometheus
        // (Go's HTTP server) takes the client for gone and cancels the query.
        .args([
            "10",
            "ip",
            "netns",
            "exec",
            ns,
            "socat",
            "-t",
            "5",
            "-,ignoreeof",
        ])
        .arg(format!("TCP:127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn socat");
    // A failed write shows as an empty answer below; the child is reaped either way.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes());
    let out = child.wait_with_output().expect("socat");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// A PromQL expression as a query-string value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server in `ns` scraping ecmpfwd every second. Fields drop in order: the
/// server is stopped before its directory goes.
struct Prometheus {
    proc: Proc,
    ns: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(ns: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: ecmpfwd\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{METRICS_PORT}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let data = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let proc = Proc::spawn(
            Command::new("ip")
                .args(["netns", "exec", ns, "prometheus"])
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log),
        );
        let mut p = Prometheus {
            proc,
            ns: ns.to_owned(),
            _dir: dir,
        };
        let deadline = Instant::now() + PROMETHEUS_LIMIT;
        loop {
            if let Some(st) = p.proc.exited() {
                panic!("prometheus exited ({st}):\n{}", p.log());
            }
            if http_get(ns, PROMETHEUS_PORT, "/-/ready").is_some_and(|(s, _)| s.contains(" 200 ")) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {PROMETHEUS_LIMIT:?}:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The value of the one-series instant query `expr` (None while it has no result).
    fn query(&self, expr: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", url_encode(expr));
        let (status, body) = http_get(&self.ns, PROMETHEUS_PORT, &path)?;
        assert!(status.contains(" 200 "), "{expr}: {status}\n{body}");
        let v: Value = serde_json::from_str(&body).expect("query JSON");
        assert_eq!(v["status"], "success", "{body}");
        let result = v["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{expr}: one series expected: {body}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }
}

/// Packets the workers forwarded, as `ecmpctl stats` counts them.
fn forwarded(fw: &Forwarder) -> u64 {
    let stats = fw.ctl_ok(&Request::Stats {});
    stats["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["forwarded"].as_u64().expect("forwarded"))
        .sum()
}

#[test]
fn prometheus_scrapes_the_forwarded_packets_ecmpfwd_counted() {
    let lab = Lab::up("lm", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let opts = ConfigOpts {
        backends: 2,
        ..ConfigOpts::default()
    };
    let text = format!(
        "{}\n[metrics]\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n",
        config(&opts, &ctl)
    );
    let cfg = write(dir.path(), "c.toml", &text);
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    assert!(
        fw.log().contains(&format!(
            "metrics on http://127.0.0.1:{METRICS_PORT}/metrics"
        )),
        "{}",
        fw.log()
    );

    // What ecmpfwd serves itself: the classic text format, accepted by promtool.
    let (status, body) = http_get(&lab.fw(), METRICS_PORT, "/metrics").expect("/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    check_with_promtool(&body);
    assert!(
        body.contains("ecmpfwd_worker_polls_total{worker=\"0\"}"),
        "{body}"
    );
    let (status, _) = http_get(&lab.fw(), METRICS_PORT, "/").expect("/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // The worker has its core to itself: every other thread of the daemon (control, sockets,
    // metrics, neighbour upkeep) is kept off it.
    let (worker, others) = thread_cores(fw.pid());
    assert_eq!(worker, [WORKER_CORE], "the worker pinned to its core");
    assert!(!others.is_empty());
    for (name, cores) in &others {
        assert!(
            !cores.contains(&WORKER_CORE) && !cores.is_empty(),
            "thread {name} may run on {cores:?}"
        );
    }

    let prometheus = Prometheus::start(&lab.fw());

    const PACKETS: u64 = 3000;
    let sinks: Vec<Sink> = (1..=lab.backends)
        .map(|i| Sink::start(&lab.b(i), "b0", dir.path(), &format!("b{i}")))
        .collect();
    send(&lab, "198.18.0.1", VIP4, 64, PACKETS, &["--size", "100"]);
    fw.wait_tx(&backend_ports(lab.backends), PACKETS);
    let received: u64 = sinks
        .into_iter()
        .map(|s| s.finish()["packets"].as_u64().expect("packets"))
        .sum();
    assert_eq!(received, PACKETS);

    // Prometheus scrapes every second; wait (bounded) until its latest sample is what ecmpfwd
    // counts now.
    let expr = "sum(ecmpfwd_worker_forwarded_packets_total{job=\"ecmpfwd\"})";
    let deadline = Instant::now() + PROMETHEUS_LIMIT;
    let (scraped, counted) = loop {
        let counted = forwarded(&fw);
        let scraped = prometheus.query(expr);
        if scraped == Some(counted as f64) {
            break (scraped, counted);
        }
        assert!(
            Instant::now() < deadline,
            "prometheus says {scraped:?} for {expr}, ecmpfwd counted {counted}; its log:\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(counted >= PACKETS, "{counted} forwarded, {PACKETS} sent");
    assert_eq!(scraped, Some(counted as f64));
    // The scrape target is up, and the per-port series add up to what the sinks received.
    assert_eq!(prometheus.query("up{job=\"ecmpfwd\"}"), Some(1.0));
    let to_backends = prometheus
        .query("sum(ecmpfwd_port_tx_packets_total{port=~\"fb.*\"})")
        .expect("tx series");
    assert!(to_backends >= PACKETS as f64, "{to_backends}");
    assert_eq!(
        prometheus.query("ecmpfwd_routes"),
        Some(4.0),
        "two client routes and the two VIPs"
    );

    // Per next hop: every forwarded packet was counted on the hop it went to, each backend got a share of the 64 flows, and Prometheus scrapes the same.
    let stats = fw.ctl_ok(&Request::Stats {});
    let per_hop = |addr: &str| {
        stats["hops"]
            .as_array()
            .expect("hops")
            .iter()
            .find(|h| h["addr"] == addr)
            .map_or(0, |h| h["packets"].as_u64().expect("packets"))
    };
    let hop_sum: u64 = stats["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .map(|h| h["packets"].as_u64().expect("packets"))
        .sum();
    // One reading: forwarded plus refused by the ports is what the hops were given.
    let sent: u64 = stats["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["forwarded"].as_u64().expect("forwarded"))
        .sum();
    let refused: u64 = stats["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .filter(|d| d[0] == "tx_refused")
        .map(|d| d[1].as_u64().expect("count"))
        .sum();
    assert_eq!(hop_sum, sent + refused, "{stats:#}");
    let (b1, b2) = (per_hop("198.18.1.1"), per_hop("198.18.2.1"));
    assert!(
        b1 > 0 && b2 > 0 && b1 + b2 >= PACKETS,
        "{b1} + {b2}: {stats:#}"
    );
    // Every UMEM frame is free, lent to the kernel or in the worker's batches: none leaked.
    for w in stats["workers"].as_array().expect("workers") {
        let u = &w["umem"];
        let n = |k: &str| u[k].as_u64().unwrap_or_else(|| panic!("umem {k}: {w:#}"));
        assert!(n("frames") > 0 && n("kernel_held") > 0, "{w:#}");
        assert_eq!(n("outstanding"), n("kernel_held") + n("in_worker"), "{w:#}");
    }
    assert!(
        body_has_zero_unaccounted(
            &http_get(&lab.fw(), METRICS_PORT, "/metrics")
                .expect("/metrics")
                .1
        ),
        "a leak shown on /metrics"
    );
    let expr = "sum(ecmpfwd_nexthop_packets_total{job=\"ecmpfwd\",addr=~\"198[.]18[.][12][.]1\"})";
    let deadline = Instant::now() + PROMETHEUS_LIMIT;
    while prometheus.query(expr) != Some((b1 + b2) as f64) {
        assert!(
            Instant::now() < deadline,
            "prometheus says {:?} for {expr}, ecmpfwd counted {}",
            prometheus.query(expr),
            b1 + b2
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    drop(prometheus);
    let stopped = fw.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
}

/// The lab configs pin their one worker here.
const WORKER_CORE: usize = 1;

/// The cores the worker thread (`ecmpfwd-w1`) may run on, and those of each other thread.
fn thread_cores(pid: u32) -> (Vec<usize>, Vec<(String, Vec<usize>)>) {
    let mut worker = Vec::new();
    let mut others = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let dir = task.expect("task").path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let Some(list) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        else {
            continue;
        };
        let cores: Vec<usize> = list
            .trim()
            .split(',')
            .flat_map(|part| {
                let core = |s: &str| s.parse::<usize>().expect("a core number");
                match part.split_once('-') {
                    Some((a, b)) => (core(a)..=core(b)).collect::<Vec<usize>>(),
                    None => vec![core(part)],
                }
            })
            .collect();
        if name.trim() == format!("ecmpfwd-w{WORKER_CORE}") {
            worker = cores;
        } else {
            others.push((name.trim().to_owned(), cores));
        }
    }
    (worker, others)
}

/// The exposition has the leak gauge, at zero, for every worker.
fn body_has_zero_unaccounted(body: &str) -> bool {
    let lines: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("ecmpfwd_umem_frames{") && l.contains("where=\"unaccounted\""))
        .collect();
    !lines.is_empty() && lines.iter().all(|l| l.ends_with(" 0"))
}

fn check_with_promtool(text: &str) {
    let (ok, said) = ecmp_testkit::promtool::check_metrics(text);
    assert!(ok, "promtool check metrics: {said}\n{text}");
}
