//! Shared pieces of the `lab_*` tests: a veth lab from `scripts/lab` (needs root), `ecmpfwd run`
//! in its forwarder namespace, `ecmpfwd-pktgen` senders and sinks, a control-socket client, and
//! checks of forwarded frames. Every process and the lab itself go away in the test kit's `Drop`
//! guards, so a failing assertion leaves nothing behind.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ecmp_proto::ctl::{Reply, Request};
pub use ecmp_testkit::lab::Lab;
pub use ecmp_testkit::proc::{Proc, signal};
use ecmp_wire::checksum;
use serde_json::Value;

/// The daemon under test.
pub const ECMPFWD: &str = env!("CARGO_BIN_EXE_ecmpfwd");
/// The lab's IPv4 VIP (every backend holds it on lo).
pub const VIP4: &str = "198.19.0.1";
/// The lab's IPv6 VIP.
pub const VIP6: &str = "2001:2:0:ffff::1";
/// How long `ecmpfwd run` may take to say it forwards (several labs may start at once on two
/// cores).
pub const START_LIMIT: Duration = Duration::from_secs(20);

/// A binary of another package of the workspace, built next to `ecmpfwd`.
fn sibling_bin(name: &str, package: &str) -> PathBuf {
    let path = Path::new(ECMPFWD).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p {package} --bin {name}, or run the tests \
         with --workspace)",
        path.display()
    );
    path
}

/// `ecmpctl`.
pub fn ecmpctl() -> PathBuf {
    sibling_bin("ecmpctl", "ecmpctl")
}

/// The packet generator and sink, `ecmpfwd-pktgen`.
pub fn pktgen() -> PathBuf {
    sibling_bin("ecmpfwd-pktgen", "ecmp-pktgen")
}

/// What goes into a lab config ([`config`]).
#[derive(Debug, Clone)]
pub struct ConfigOpts {
    /// Backends (ports fb1..fbN, next hops bI and bI-v6).
    pub backends: u32,
    /// XDP attach mode of every port.
    pub mode: &'static str,
    /// Static groups and routes for both VIPs (else the VIPs are left to `route-add`).
    pub static_vip: bool,
    /// Extra keys of next hop b1 (e.g. an `encap` inline table).
    pub b1_extra: String,
    /// Extra keys of every port.
    pub port_extra: String,
    /// Backends in the static VIP groups (`None`: all of them).
    pub vip_members: Option<Vec<u32>>,
}

impl Default for ConfigOpts {
    fn default() -> Self {
        ConfigOpts {
            backends: 4,
            mode: "driver",
            static_vip: true,
            b1_extra: String::new(),
            port_extra: String::new(),
            vip_members: None,
        }
    }
}

/// A config shaped like `configs/lab-afxdp.toml`: ports fc0 and fb1..fbN, one worker on core 1
/// polling queue 0 of each, next hops without MACs, the client subnets as static routes, the
/// control socket at `ctl`.
pub fn config(opts: &ConfigOpts, ctl: &Path) -> String {
    let mut s = String::from("[instance]\nname = \"lab\"\nseed = 1\n\n");
    let ports: Vec<String> = std::iter::once("fc0".to_owned())
        .chain((1..=opts.backends).map(|i| format!("fb{i}")))
        .collect();
    for p in &ports {
        s += &format!(
            "[[port]]\nname = \"{p}\"\nkind = \"afxdp\"\ninterface = \"{p}\"\nmode = \"{}\"\n{}\n",
            opts.mode, opts.port_extra
        );
    }
    let list: Vec<String> = ports.iter().map(|p| format!("\"{p}\"")).collect();
    s += &format!(
        "[[worker]]\ncore = 1\nports = [{}]\n\n[flow_cache]\ncapacity = 65536\n\n",
        list.join(", ")
    );
    for i in 1..=opts.backends {
        let extra = if i == 1 { opts.b1_extra.as_str() } else { "" };
        s += &format!(
            "[[nexthop]]\nname = \"b{i}\"\naddress = \"198.18.{i}.1\"\nport = \"fb{i}\"\n{extra}\n\
             [[nexthop]]\nname = \"b{i}-v6\"\naddress = \"2001:2:0:{i}::1\"\nport = \"fb{i}\"\n\n"
        );
    }
    s += "[[nexthop]]\nname = \"client\"\naddress = \"198.18.0.1\"\nport = \"fc0\"\n\n\
          [[nexthop]]\nname = \"client-v6\"\naddress = \"2001:2::1\"\nport = \"fc0\"\n\n\
          [[group]]\nname = \"clients\"\nmembers = [\"client\"]\n\n\
          [[group]]\nname = \"clients-v6\"\nmembers = [\"client-v6\"]\n\n\
          [[route]]\nprefix = \"198.18.0.0/24\"\ngroup = \"clients\"\n\n\
          [[route]]\nprefix = \"2001:2::/64\"\ngroup = \"clients-v6\"\n\n";
    if opts.static_vip {
        let members = opts
            .vip_members
            .clone()
            .unwrap_or_else(|| (1..=opts.backends).collect());
        let v4: Vec<String> = members.iter().map(|i| format!("\"b{i}\"")).collect();
        let v6: Vec<String> = members.iter().map(|i| format!("\"b{i}-v6\"")).collect();
        s += &format!(
            "[[group]]\nname = \"vip\"\nmembers = [{}]\n\n\
             [[group]]\nname = \"vip-v6\"\nmembers = [{}]\n\n\
             [[route]]\nprefix = \"{VIP4}/32\"\ngroup = \"vip\"\n\n\
             [[route]]\nprefix = \"{VIP6}/128\"\ngroup = \"vip-v6\"\n\n",
            v4.join(", "),
            v6.join(", ")
        );
    }
    s += &format!(
        "[control]\nsocket = \"{}\"\nmode = 0o660\n\n[bgp]\nmode = \"auto-recovery\"\nbuckets = 256\n",
        ctl.display()
    );
    s
}

/// A running `ecmpfwd run --json` in the lab's forwarder namespace.
pub struct Forwarder {
    proc: Proc,
    log: Arc<Mutex<String>>,
    lines: Receiver<String>,
    /// Its control socket.
    pub ctl: PathBuf,
}

/// How a stopped [`Forwarder`] ended.
#[derive(Debug)]
pub struct Stopped {
    /// Exit status.
    pub status: ExitStatus,
    /// From SIGTERM to the exit.
    pub took: Duration,
    /// stdout (the JSON counters).
    pub stdout: String,
    /// Everything it logged.
    pub stderr: String,
}

impl Forwarder {
    /// Spawns `ecmpfwd run --config CONFIG --json` in namespace `ns` without waiting.
    pub fn spawn(ns: &str, config: &Path, ctl: &Path) -> Forwarder {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, ECMPFWD, "run", "--json", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ecmpfwd");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("log").push_str(&format!("{line}\n"));
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Forwarder {
            proc: Proc(child),
            log,
            lines,
            ctl: ctl.to_owned(),
        }
    }

    /// Spawns it and waits (bounded) for "forwarding on" on its stderr.
    pub fn start(ns: &str, config: &Path, ctl: &Path) -> Forwarder {
        let mut fw = Forwarder::spawn(ns, config, ctl);
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match fw.lines.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) if line.contains("forwarding on") => break,
                Ok(_) => {}
                Err(_) => {
                    let exited = fw.proc.exited();
                    panic!(
                        "ecmpfwd did not report forwarding within {START_LIMIT:?} (exit: \
                         {exited:?}); its log:\n{}",
                        fw.log()
                    );
                }
            }
        }
        fw
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Waits up to `limit` for it to exit on its own (e.g. a start-up error).
    pub fn wait_exit(mut self, limit: Duration) -> Stopped {
        let t = Instant::now();
        let status = self.proc.wait(limit);
        self.collect(status, t.elapsed())
    }

    /// SIGTERM, then waits up to 10 s for the exit.
    pub fn stop(mut self) -> Stopped {
        let t = Instant::now();
        signal(self.pid(), "TERM");
        let status = self.proc.wait(Duration::from_secs(10));
        self.collect(status, t.elapsed())
    }

    fn collect(&mut self, status: ExitStatus, took: Duration) -> Stopped {
        let mut stdout = String::new();
        if let Some(mut out) = self.proc.0.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        // The reader thread ends with the pipe; give it a moment to store the last lines.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.lines.recv_timeout(Duration::from_millis(50)).is_ok()
            && Instant::now() < deadline
        {}
        Stopped {
            status,
            took,
            stdout,
            stderr: self.log(),
        }
    }

    /// One control request; the reply.
    pub fn ctl(&self, req: &Request) -> Reply {
        ctl_request(&self.ctl, req)
    }

    /// One control request that must succeed; its result.
    pub fn ctl_ok(&self, req: &Request) -> Value {
        let r = self.ctl(req);
        assert!(r.ok, "{req:?} refused: {:?}", r.error);
        r.result
    }

    /// Waits (bounded) until every worker runs table generation `generation` or later.
    pub fn wait_generation(&self, generation: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stats = self.ctl_ok(&Request::Stats {});
            let workers = stats["workers"].as_array().expect("workers");
            if workers
                .iter()
                .all(|w| w["generation"].as_u64().expect("generation") >= generation)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "workers never reached generation {generation}: {stats}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sum of `tx_packets` over the ports named in `ports`.
    pub fn tx_packets(&self, ports: &[String]) -> u64 {
        let stats = self.ctl_ok(&Request::Stats {});
        stats["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .filter(|p| ports.iter().any(|n| p["name"] == n.as_str()))
            .map(|p| p["tx_packets"].as_u64().expect("tx_packets"))
            .sum()
    }

    /// Waits (bounded) until the ports in `ports` have sent at least `packets` in total, then a
    /// little longer so the sinks can read what is queued for them.
    pub fn wait_tx(&self, ports: &[String], packets: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n = self.tx_packets(ports);
            if n >= packets {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {n} of {packets} packets left {ports:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// One request over a fresh connection to the control socket at `path`.
pub fn ctl_request(path: &Path, req: &Request) -> Reply {
    let mut s =
        UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut line = serde_json::to_string(req).expect("encode");
    line.push('\n');
    s.write_all(line.as_bytes()).expect("write request");
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).expect("read reply");
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply {reply:?}: {e}"))
}

/// A `ecmpfwd-pktgen sink` that runs until stopped.
pub struct Sink {
    proc: Proc,
    out: PathBuf,
}

impl Sink {
    /// Starts a sink on `iface` in `ns` (writing to `dir/name.json`) and waits until it listens.
    pub fn start(ns: &str, iface: &str, dir: &Path, name: &str) -> Sink {
        Sink::start_with(ns, iface, dir, name, &[])
    }

    /// [`Sink::start`] with extra arguments (e.g. `--dump FILE`).
    pub fn start_with(ns: &str, iface: &str, dir: &Path, name: &str, extra: &[&str]) -> Sink {
        let ready = dir.join(format!("{name}.ready"));
        let out = dir.join(format!("{name}.json"));
        let _ = std::fs::remove_file(&ready);
        let _ = std::fs::remove_file(&out);
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(pktgen())
            .args(["sink", "--iface", iface])
            .args(["--duration", "25", "--out"])
            .arg(&out)
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sink");
        let mut proc = Proc(child);
        proc.wait_for_file(&ready, Duration::from_secs(10));
        Sink { proc, out }
    }

    /// SIGTERM; the report it wrote.
    pub fn finish(mut self) -> Value {
        signal(self.proc.0.id(), "TERM");
        let st = self.proc.wait(Duration::from_secs(5));
        assert!(st.success(), "sink failed: {st}");
        let text = std::fs::read_to_string(&self.out).expect("sink report");
        serde_json::from_str(&text).expect("sink JSON")
    }
}

/// Runs `ecmpfwd-pktgen send` on cl0 in the client namespace toward `dst` through fc0, `count`
/// packets at `rate` pps over `flows` flows; extra arguments appended. Returns its summary.
pub fn send(lab: &Lab, src: &str, dst: &str, flows: u32, count: u64, extra: &[&str]) -> Value {
    let count_s = count.to_string();
    let flows_s = flows.to_string();
    let out = Command::new("timeout")
        .args(["20", "ip", "netns", "exec", &lab.cl()])
        .arg(pktgen())
        .arg("send")
        .args(["--iface", "cl0", "--dst-mac", lab.env("LAB_FC_MAC")])
        .args(["--src-ip", src, "--dst-ip", dst, "--flows", &flows_s])
        .args(["--count", &count_s, "--rate", "20000"])
        .args(extra)
        .output()
        .expect("spawn send");
    assert!(
        out.status.success(),
        "send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("send JSON");
    assert_eq!(summary["packets"], count, "{summary}");
    summary
}

/// `count` UDP packets from `src` to `dst` on cl0, sent to the Ethernet address `dst_mac`.
pub fn send_to_mac(lab: &Lab, dst_mac: &str, src: &str, dst: &str, count: u64) {
    let out = Command::new("timeout")
        .args(["20", "ip", "netns", "exec", &lab.cl()])
        .arg(pktgen())
        .arg("send")
        .args(["--iface", "cl0", "--dst-mac", dst_mac])
        .args(["--src-ip", src, "--dst-ip", dst, "--flows", "4"])
        .args(["--count", &count.to_string(), "--rate", "20000"])
        .args(["--proto", "udp"])
        .output()
        .expect("spawn send");
    assert!(
        out.status.success(),
        "send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs one sink per backend around `send_fn`, waits until the forwarder has sent `expected`
/// more packets out of the backend ports (`base`: what they had sent before), and returns the
/// sinks' reports in backend order.
pub fn through_backends(
    lab: &Lab,
    fw: &Forwarder,
    dir: &Path,
    round: &str,
    base: u64,
    expected: u64,
    send_fn: impl FnOnce(),
) -> Vec<Value> {
    let sinks: Vec<Sink> = (1..=lab.backends)
        .map(|i| Sink::start(&lab.b(i), "b0", dir, &format!("{round}-b{i}")))
        .collect();
    send_fn();
    fw.wait_tx(&backend_ports(lab.backends), base + expected);
    sinks.into_iter().map(Sink::finish).collect()
}

/// A sink report's tagged packet count.
pub fn packets(r: &Value) -> u64 {
    r["packets"].as_u64().expect("packets")
}

/// The backend ports' names, fb1..fbN.
pub fn backend_ports(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("fb{i}")).collect()
}

/// Per flow id, the backends (1-based) whose sink saw it, with the packets each saw.
pub fn flow_map(reports: &[Value]) -> BTreeMap<u32, Vec<(u32, u64)>> {
    let mut map: BTreeMap<u32, Vec<(u32, u64)>> = BTreeMap::new();
    for (i, r) in reports.iter().enumerate() {
        for (flow, n) in r["flows"].as_object().expect("flows") {
            map.entry(flow.parse().expect("flow id"))
                .or_default()
                .push((i as u32 + 1, n.as_u64().expect("count")));
        }
    }
    map
}

/// Every flow at exactly one backend: flow id -> backend.
pub fn single_backend(map: &BTreeMap<u32, Vec<(u32, u64)>>) -> BTreeMap<u32, u32> {
    map.iter()
        .map(|(f, at)| {
            assert_eq!(at.len(), 1, "flow {f} reached several backends: {at:?}");
            (*f, at[0].0)
        })
        .collect()
}

/// Decodes the sinks' lower-case hex.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `aa:bb:..` -> bytes.
pub fn mac_bytes(s: &str) -> Vec<u8> {
    s.split(':')
        .map(|p| u8::from_str_radix(p, 16).expect("mac"))
        .collect()
}

/// True when a TCP or UDP segment's checksum over the pseudo-header sum `pseudo` is valid.
pub fn l4_checksum_ok(pseudo: u16, segment: &[u8]) -> bool {
    checksum::add(pseudo, checksum::data(segment)) == 0xFFFF
}

/// Checks an IPv4 frame without options: header checksum, TTL, protocol and the L4 checksum.
pub fn check_ipv4(f: &[u8], ttl: u8, proto: u8) {
    assert_eq!(f[12..14], [0x08, 0x00], "not IPv4");
    let ip = &f[14..34];
    assert_eq!(ip[0], 0x45, "IPv4 with options");
    assert!(
        checksum::verify_ipv4_header(ip.try_into().expect("20 bytes")),
        "bad IPv4 header checksum"
    );
    assert_eq!(ip[8], ttl, "TTL");
    assert_eq!(ip[9], proto, "protocol");
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let seg = &f[34..14 + total];
    let pseudo = checksum::pseudo_header_v4(
        ip[12..16].try_into().expect("src"),
        ip[16..20].try_into().expect("dst"),
        proto,
        seg.len() as u16,
    );
    assert!(l4_checksum_ok(pseudo, seg), "bad L4 checksum");
}

/// Checks an IPv6 frame (no extension headers): hop limit, next header and the L4 checksum.
pub fn check_ipv6(f: &[u8], hop_limit: u8, proto: u8) {
    assert_eq!(f[12..14], [0x86, 0xdd], "not IPv6");
    let ip = &f[14..54];
    assert_eq!(ip[6], proto, "next header");
    assert_eq!(ip[7], hop_limit, "hop limit");
    let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let seg = &f[54..54 + plen];
    let pseudo = checksum::pseudo_header_v6(
        ip[8..24].try_into().expect("src"),
        ip[24..40].try_into().expect("dst"),
        proto,
        plen as u32,
    );
    assert!(l4_checksum_ok(pseudo, seg), "bad L4 checksum");
}

/// Parses an address, panicking on a typo in the test.
pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}
