//! The scale-out lab (`scripts/lab-scale`, needs root, BIRD 2, socat and ExaBGP): three ecmpfwd
//! forwarders on AF_XDP behind a kernel router that learns the VIP from their companions over
//! BGP (BIRD, `merge paths on`); four backends whose BGP speakers announce the VIP to a route
//! reflector (BIRD) that reflects every path to every companion with ADD-PATH. Checks that each
//! forwarder's VIP group holds the four backends learnt from the reflector (which hears nothing
//! from the companions: the VIP goes to the router only), that the router installs one next hop
//! per forwarder, that real TCP connections from the client reach a backend and get its answer
//! directly (direct server return) through every forwarder, that the forwarders agree on the
//! VIP's table digest; that SIGTERM on a forwarder (it withdraws),
//! `lab-scale start` (it comes back) and SIGKILL on another (its companion's helper ends the BGP
//! session) each change the router's next hops accordingly while the same 5-tuples keep
//! reaching the same backends through whichever forwarders remain; that a backend whose speaker
//! stops leaves every forwarder's group (its buckets go, the digests stay equal, no connection
//! reaches it, and in `rendezvous` mode no other flow moves) and that its speaker's return
//! brings back the first digest; and that `down` leaves no namespace or process behind. In
//! `maglev` and in `rendezvous` mode.

mod driver;
mod lab_common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecmp_proto::Prefix;
use ecmp_proto::ctl::Request;
use lab_common::{Proc, ctl_request, signal};

const FORWARDERS: u32 = 3;
const BACKENDS: u32 = 4;
/// TCP connections per round: with three forwarders picked by the router's hash, each one sees
/// none of 40 with probability (2/3)^40 < 1e-7.
const CONNECTIONS: u16 = 40;
/// The backends' service port.
const PORT: u16 = 8080;
/// The client's first source port: every round uses the same 5-tuples.
const PORTS_FROM: u16 = 40000;

/// `scripts/lab-scale` with this process's prefix; `down` on drop, on panic too.
struct ScaleLab {
    prefix: String,
    env: HashMap<String, String>,
}

fn lab_scale() -> PathBuf {
    driver::root().join("scripts/lab-scale")
}

impl ScaleLab {
    fn up(mode: &str) -> ScaleLab {
        let mut lab = ScaleLab {
            prefix: format!("sc{}", std::process::id()),
            env: HashMap::new(),
        };
        let bin_dir = driver::bin_dir(&["ecmpfwd"]);
        let out = Command::new("timeout")
            .arg("90")
            .arg(lab_scale())
            .args(["up", "--prefix", &lab.prefix])
            .args(["--forwarders", &FORWARDERS.to_string()])
            .args(["--backends", &BACKENDS.to_string()])
            .args(["--mode", mode])
            .arg("--bin-dir")
            .arg(&bin_dir)
            .env("ECMP_EXABGP", driver::exabgp())
            .output()
            .expect("run scripts/lab-scale up");
        assert!(
            out.status.success(),
            "scripts/lab-scale up failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        lab.env = lab.read_env();
        lab
    }

    fn read_env(&self) -> HashMap<String, String> {
        let out = Command::new("timeout")
            .arg("10")
            .arg(lab_scale())
            .args(["env", "--prefix", &self.prefix])
            .output()
            .expect("run scripts/lab-scale env");
        assert!(out.status.success(), "scripts/lab-scale env failed");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// `lab-scale start --forwarder I`: forwarder `i`'s ecmpfwd and companion again.
    fn start(&self, i: u32) {
        let out = Command::new("timeout")
            .arg("60")
            .arg(lab_scale())
            .args(["start", "--prefix", &self.prefix])
            .args(["--forwarder", &i.to_string()])
            .output()
            .expect("run scripts/lab-scale start");
        assert!(
            out.status.success(),
            "scripts/lab-scale start failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn env(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from scripts/lab-scale env"))
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// The router's next hops for the VIP now.
    fn next_hops(&self) -> BTreeSet<String> {
        let out = Command::new("ip")
            .args(["-n", &self.ns("rt"), "-4", "route", "show"])
            .arg(format!("{}/32", self.env("SCALE_VIP4")))
            .output()
            .expect("ip route");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_owned())
            .collect()
    }

    fn forwarder_addrs(&self, which: impl Iterator<Item = u32>) -> BTreeSet<String> {
        which
            .map(|i| self.env(&format!("SCALE_F{i}_IP4")).to_owned())
            .collect()
    }

    fn ctl(&self, i: u32) -> PathBuf {
        PathBuf::from(self.env(&format!("SCALE_F{i}_CTL")))
    }

    /// `lab-scale speaker --backend J`: backend `j`'s BGP speaker again.
    fn speaker(&self, j: u32) {
        let out = Command::new("timeout")
            .arg("30")
            .arg(lab_scale())
            .args(["speaker", "--prefix", &self.prefix])
            .args(["--backend", &j.to_string()])
            .output()
            .expect("run scripts/lab-scale speaker");
        assert!(
            out.status.success(),
            "scripts/lab-scale speaker failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Forwarder `i`'s VIP route: each member's address with its state and bucket count, and
    /// where the route came from.
    fn vip_members(&self, i: u32) -> (String, BTreeMap<String, (String, u64)>) {
        let vip: std::net::IpAddr = self.env("SCALE_VIP4").parse().expect("vip");
        let r = ctl_request(
            &self.ctl(i),
            &Request::Route {
                prefix: Prefix::new(vip, 32).expect("prefix"),
            },
        );
        if !r.ok {
            return (String::new(), BTreeMap::new());
        }
        let route = &r.result[0];
        let members = route["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| {
                (
                    m["addr"].as_str().expect("addr").to_owned(),
                    (
                        m["state"].as_str().expect("state").to_owned(),
                        m["buckets"].as_u64().expect("buckets"),
                    ),
                )
            })
            .collect();
        (
            route["summary"]["origin"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            members,
        )
    }

    /// The updates the route reflector received from forwarder `i`'s companion (before its
    /// import filter, which takes none).
    fn rr_updates_from(&self, i: u32) -> u64 {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.env("SCALE_RR_CTL"))
            .args(["show", "protocols", "all", &format!("f{i}")])
            .output()
            .expect("run birdc");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Import updates:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no import counts for f{i} in birdc's answer: {text}"))
    }

    /// Forwarder `i`'s table digest.
    fn digest(&self, i: u32) -> String {
        let r = ctl_request(&self.ctl(i), &Request::Groups {});
        assert!(r.ok, "groups on f{i}: {:?}", r.error);
        r.result["digest"].as_str().expect("digest").to_owned()
    }

    /// The backends that own buckets in forwarder `i`'s VIP group.
    fn serving(&self, i: u32) -> BTreeSet<String> {
        self.vip_members(i)
            .1
            .into_iter()
            .filter(|(_, (state, buckets))| state == "active" && *buckets > 0)
            .map(|(addr, _)| addr)
            .collect()
    }

    /// Packets forwarder `i` received on its uplink.
    fn uplink_rx(&self, i: u32) -> u64 {
        let r = ctl_request(&self.ctl(i), &Request::Stats {});
        assert!(r.ok, "stats on f{i}: {:?}", r.error);
        r.result["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == "up")
            .and_then(|p| p["rx_packets"].as_u64())
            .expect("uplink rx_packets")
    }

    /// `CONNECTIONS` TCP connections from the client to the VIP, one from each source port in
    /// `PORTS_FROM..`, one after the other; per source port, the backend that answered.
    fn connect_round(&self) -> BTreeMap<u16, String> {
        let mut answers = BTreeMap::new();
        for port in PORTS_FROM..PORTS_FROM + CONNECTIONS {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.ns("cl"),
                    "timeout",
                    "5",
                    "socat",
                    "-T2",
                    "-",
                ])
                .arg(format!(
                    "TCP:{}:{PORT},sourceport={port},reuseaddr",
                    self.env("SCALE_VIP4")
                ))
                .stdin(Stdio::null())
                .output()
                .expect("run socat");
            let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            assert!(
                out.status.success() && said.starts_with('b'),
                "connection from port {port}: {} {said:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            answers.insert(port, said);
        }
        answers
    }
}

impl Drop for ScaleLab {
    fn drop(&mut self) {
        let _ = Command::new(lab_scale())
            .args(["down", "--prefix", &self.prefix])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out ({limit:?}) waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One run of the lab in `mode`: see the module doc.
fn run(mode: &str) {
    let t0 = Instant::now();
    let mut lab = ScaleLab::up(mode);
    let up_took = t0.elapsed();

    // One next hop per forwarder, all learnt over BGP.
    let all = lab.forwarder_addrs(1..=FORWARDERS);
    assert_eq!(lab.next_hops(), all, "{mode}");

    // Every forwarder's VIP group holds the four backends, learnt from the route reflector.
    let backend_addrs: BTreeSet<String> = (1..=BACKENDS)
        .map(|j| lab.env(&format!("SCALE_B{j}_IP4")).to_owned())
        .collect();
    for i in 1..=FORWARDERS {
        wait_until(
            &format!("forwarder {i} to serve the VIP with every backend"),
            Duration::from_secs(10),
            || lab.serving(i) == backend_addrs,
        );
        assert_eq!(lab.vip_members(i).0, "bgp", "{mode}: f{i}'s VIP route");
        // The VIP's announcement goes to the router only, never back to the reflector.
        assert_eq!(
            lab.rr_updates_from(i),
            0,
            "{mode}: the reflector heard from f{i}"
        );
    }

    // Every backend answers on the VIP (held on lo; replies go straight back via the router).
    let servers: Vec<Proc> = (1..=BACKENDS)
        .map(|j| {
            Proc::spawn(
                Command::new("ip")
                    .args(["netns", "exec", &lab.ns(&format!("b{j}")), "socat"])
                    .arg(format!("TCP-LISTEN:{PORT},reuseaddr,fork"))
                    .arg(format!("SYSTEM:echo b{j}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
        })
        .collect();
    wait_until("the backends to listen", Duration::from_secs(5), || {
        (1..=BACKENDS).all(|j| {
            Command::new("ip")
                .args(["netns", "exec", &lab.ns(&format!("b{j}")), "ss", "-Hltn"])
                .arg(format!("sport = :{PORT}"))
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        })
    });

    let rx_before: Vec<u64> = (1..=FORWARDERS).map(|i| lab.uplink_rx(i)).collect();
    let before = lab.connect_round();
    for i in 1..=FORWARDERS {
        let got = lab.uplink_rx(i) - rx_before[i as usize - 1];
        assert!(got > 0, "{mode}: the router sent forwarder {i} nothing");
    }
    let digests: BTreeSet<String> = (1..=FORWARDERS).map(|i| lab.digest(i)).collect();
    assert_eq!(digests.len(), 1, "{mode}: forwarders disagree: {digests:?}");
    let first_digest = digests.into_iter().next().expect("a digest");

    // SIGTERM on forwarder 1: it withdraws, the router drops its next hop.
    let pid: u32 = lab.env("SCALE_F1_PID").parse().expect("pid");
    let companion: u32 = lab
        .env("SCALE_F1_COMPANION_PID")
        .parse()
        .expect("companion pid");
    let t = Instant::now();
    assert!(signal(pid, "TERM"), "forwarder 1 was not running");
    let rest = lab.forwarder_addrs(2..=FORWARDERS);
    wait_until(
        "the router to drop forwarder 1",
        Duration::from_secs(10),
        || lab.next_hops() == rest,
    );
    let dropped_after = t.elapsed();
    // Its companion ends after it (the helper's `kill -TERM $PPID`).
    wait_until(
        "forwarder 1 and its companion to end",
        Duration::from_secs(15),
        || !signal(pid, "0") && !signal(companion, "0"),
    );
    // The same 5-tuples again: the router now hashes forwarder 1's share onto the others,
    // whose tables are the same, so every flow reaches the backend it reached before.
    let after = lab.connect_round();
    assert_eq!(
        before, after,
        "{mode}: flows changed backend without forwarder 1"
    );

    // Forwarder 1 comes back (`lab-scale start`): the router adds it again.
    lab.start(1);
    wait_until(
        "the router to add forwarder 1 again",
        Duration::from_secs(20),
        || lab.next_hops() == all,
    );
    lab.env = lab.read_env();
    let back = lab.connect_round();
    assert_eq!(
        before, back,
        "{mode}: flows changed backend with forwarder 1 back"
    );

    // SIGKILL on forwarder 2: no withdraw; its helper ends its companion and the session drops.
    let killed: u32 = lab.env("SCALE_F2_PID").parse().expect("pid");
    let t = Instant::now();
    assert!(signal(killed, "KILL"), "forwarder 2 was not running");
    let rest = lab.forwarder_addrs([1, 3].into_iter());
    wait_until(
        "the router to drop forwarder 2",
        Duration::from_secs(10),
        || lab.next_hops() == rest,
    );
    let killed_after = t.elapsed();
    let last = lab.connect_round();
    assert_eq!(
        before, last,
        "{mode}: flows changed backend without forwarder 2"
    );

    let mut per_backend: BTreeMap<&str, u32> = BTreeMap::new();
    for b in last.values() {
        *per_backend.entry(b).or_insert(0) += 1;
    }
    eprintln!(
        "{mode}: next hop gone {dropped_after:?} after SIGTERM, {killed_after:?} after SIGKILL; \
         {CONNECTIONS} 5-tuples reached the same backend through forwarders 1-3, 2-3, 1-3 and \
         1,3: {per_backend:?}"
    );

    // Backend 2's speaker stops: the reflector withdraws its path from every companion, and
    // both remaining forwarders take it out of the VIP's group alike.
    let remaining = [1, 3];
    let speaker: u32 = lab.env("SCALE_B2_SPEAKER_PID").parse().expect("pid");
    let gone = lab.env("SCALE_B2_IP4").to_owned();
    let mut rest_backends = backend_addrs.clone();
    rest_backends.remove(&gone);
    let t = Instant::now();
    assert!(
        signal(speaker, "TERM"),
        "backend 2's speaker was not running"
    );
    for i in remaining {
        wait_until(
            &format!("forwarder {i} to drop backend 2"),
            Duration::from_secs(10),
            || lab.serving(i) == rest_backends,
        );
    }
    let withdrawn_after = t.elapsed();
    let digests: BTreeSet<String> = remaining.iter().map(|&i| lab.digest(i)).collect();
    assert_eq!(digests.len(), 1, "{mode}: forwarders disagree: {digests:?}");
    assert!(
        !digests.contains(&first_digest),
        "{mode}: digest unchanged without backend 2"
    );
    let without = lab.connect_round();
    assert!(
        without.values().all(|b| b != "b2"),
        "{mode}: a connection reached backend 2 after its withdrawal: {without:?}"
    );
    let moved_others = before
        .iter()
        .filter(|(port, b)| *b != "b2" && without[*port] != **b)
        .count();
    // Rendezvous moves only the leaving member's flows; Maglev may move a few more.
    if mode == "rendezvous" {
        assert_eq!(moved_others, 0, "{mode}: flows not on backend 2 moved");
    }

    // Its speaker again: the same member set, so the same tables as at first.
    lab.speaker(2);
    for i in remaining {
        wait_until(
            &format!("forwarder {i} to take backend 2 back"),
            Duration::from_secs(10),
            || lab.serving(i) == backend_addrs,
        );
    }
    for i in remaining {
        assert_eq!(
            lab.digest(i),
            first_digest,
            "{mode}: f{i} with backend 2 back"
        );
    }
    eprintln!(
        "{mode}: backend 2 out of both forwarders' groups {withdrawn_after:?} after its \
         speaker's SIGTERM; {moved_others} flows of other backends moved; with it back the \
         digest is the first one again"
    );
    lab.env = lab.read_env();

    // `down` leaves nothing: no namespace, no recorded process, no run directory.
    let pids: Vec<u32> = (1..=FORWARDERS)
        .flat_map(|i| {
            [
                format!("SCALE_F{i}_PID"),
                format!("SCALE_F{i}_COMPANION_PID"),
            ]
        })
        .chain((1..=BACKENDS).map(|j| format!("SCALE_B{j}_SPEAKER_PID")))
        .filter_map(|k| lab.env(&k).parse().ok())
        .collect();
    let prefix = lab.prefix.clone();
    drop(servers);
    let t = Instant::now();
    drop(lab);
    let down_took = t.elapsed();
    let left = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.lines().any(|l| l.starts_with(&format!("{prefix}-"))),
        "namespaces left: {left}"
    );
    for pid in pids {
        assert!(!signal(pid, "0"), "pid {pid} still runs after down");
    }
    assert!(
        !PathBuf::from(format!("/run/ecmpfwd-scale-{prefix}")).exists(),
        "run dir left"
    );
    eprintln!("{mode}: lab-scale up took {up_took:?}, down {down_took:?}");
}

/// Both modes whose tables depend only on the member set and the seed, one after the other
/// (each lab pins three workers to core 1, so two at once would starve each other).
#[test]
fn router_follows_forwarders_leaving_and_returning_and_flows_keep_their_backend() {
    for mode in ["maglev", "rendezvous"] {
        run(mode);
    }
}
