//! The VIP announced upstream through the whole real chain (needs root, ExaBGP, BIRD 2, socat):
//! `ecmpfwd run` on AF_XDP writes its `[[bgp.announce]]` commands on the feed socket; the
//! companion ExaBGP in the forwarder's namespace runs the README's helper (socat to the feed
//! socket, then `kill -TERM "$PPID"`) as its API process and peers over fc0 with BIRD 2 in the
//! client namespace, which stands in for the upstream router. BIRD's table is the judge: the VIP
//! is learnt with the configured next hop, MED and community while ecmpfwd can serve it, and
//! withdrawn when no backend is active, while the worker thread is stalled (held in a ptrace stop,
//! the control thread still running), on SIGTERM (before ecmpfwd stops) and on SIGKILL (the
//! helper ends ExaBGP, the session drops). First, the pitfall: with an upstream neighbour whose
//! `api` does not list the helper's process, ExaBGP refuses the commands (ecmpfwd counts its
//! `error` answers) and BIRD learns nothing.
//!
//! Every process is a `Proc` guard and the lab a `Lab` guard, so a failing assertion leaves
//! nothing running.

mod driver;
mod lab_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecmp_proto::ctl::Request;
use lab_common::*;
use serde_json::Value;

/// The upstream router's AS and the companion's.
const UPSTREAM_AS: u32 = 64512;
const COMPANION_AS: u32 = 65000;
/// BIRD's end of the client link and the companion's (fc0).
const UPSTREAM_ADDR: &str = "198.18.0.1";
const COMPANION_ADDR: &str = "198.18.0.254";
/// How long SIGTERM keeps ecmpfwd forwarding after the withdrawal (`[bgp] announce_grace`):
/// long enough for the test to see the VIP gone upstream while ecmpfwd still runs.
const GRACE_S: u64 = 4;
/// Bound on every wait for BGP to move (ExaBGP's and BIRD's connect retries are 1-5 s).
const BGP_LIMIT: Duration = Duration::from_secs(20);
/// `[bgp] announce_stall_time`: short, so the stalled-worker case costs little; far above the
/// worker's gaps between polls (it busy-polls and only yields its core when idle).
const STALL_MS: u64 = 500;
/// Bound on the withdrawal once the worker stops: the stall time, then one UPDATE over a session
/// that is up.
const STALL_LIMIT: Duration = Duration::from_secs(5);

/// BIRD 2 in the client namespace, in the foreground so its guard owns it.
struct Bird {
    _proc: Proc,
    sock: PathBuf,
}

impl Bird {
    fn start(ns: &str, dir: &Path) -> Bird {
        let conf = write(
            dir,
            "bird.conf",
            &format!(
                "router id {UPSTREAM_ADDR};\n\
                 protocol device {{}}\n\
                 protocol bgp fw {{\n\
                 \x20 local {UPSTREAM_ADDR} as {UPSTREAM_AS};\n\
                 \x20 neighbor {COMPANION_ADDR} as {COMPANION_AS};\n\
                 \x20 hold time 3;\n\
                 \x20 connect retry time 1;\n\
                 \x20 error wait time 1, 2;\n\
                 \x20 ipv4 {{ import all; export none; }};\n\
                 }}\n"
            ),
        );
        let sock = dir.join("bird.ctl");
        let proc = Proc::spawn(
            Command::new("ip")
                .args(["netns", "exec", ns, "bird", "-f", "-c"])
                .arg(&conf)
                .arg("-s")
                .arg(&sock)
                .arg("-P")
                .arg(dir.join("bird.pid"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let bird = Bird { _proc: proc, sock };
        wait_until("BIRD's control socket", Duration::from_secs(10), || {
            bird.birdc(&["show", "status"]).contains("Daemon is up")
        });
        bird
    }

    fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .args(["5", "birdc", "-s"])
            .arg(&self.sock)
            .args(args)
            .output()
            .expect("run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `show route for VIP all`: the VIP's routes with their attributes, or `None` when BIRD
    /// has none.
    fn vip_route(&self) -> Option<String> {
        let out = self.birdc(&["show", "route", "for", &format!("{VIP4}/32"), "all"]);
        out.contains(&format!("{VIP4}/32")).then_some(out)
    }

    /// Whether the session with the companion is up.
    fn established(&self) -> bool {
        self.birdc(&["show", "protocols", "fw"])
            .contains("Established")
    }

    /// Waits until BIRD holds the VIP from the companion with the configured attributes.
    fn wait_learnt(&self, ctx: &str) -> String {
        let mut last = None;
        wait_until(&format!("{ctx}: BIRD learns the VIP"), BGP_LIMIT, || {
            last = self.vip_route();
            last.is_some()
        });
        let route = last.expect("route");
        for want in [
            format!("BGP.next_hop: {COMPANION_ADDR}"),
            "BGP.med: 100".to_owned(),
            "BGP.community: (65000,100)".to_owned(),
            format!("BGP.as_path: {COMPANION_AS}"),
        ] {
            assert!(route.contains(&want), "{ctx}: no {want:?} in\n{route}");
        }
        route
    }
}

/// Polls `cond` every 50 ms until it holds; panics after `limit`.
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

/// The companion ExaBGP in the forwarder's namespace: the README's helper as its API process,
/// one upstream neighbour (BIRD). With `api`, the neighbour's `api` lists the helper's process,
/// so ExaBGP takes the helper's commands for it; without, ExaBGP refuses them (the pitfall the
/// README warns about).
fn start_companion(ns: &str, dir: &Path, feed: &Path, api: bool) -> Proc {
    let helper = dir.join("ecmpfwd-feed");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n\
             socat STDIO UNIX-CONNECT:{},retry=100,interval=0.1\n\
             kill -TERM \"$PPID\"\n",
            feed.display()
        ),
    )
    .expect("write helper");
    let chmod = Command::new("chmod")
        .arg("755")
        .arg(&helper)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    let conf = write(
        dir,
        "companion.conf",
        &format!(
            "process feed {{ run {}; encoder json; }}\n\
             neighbor {UPSTREAM_ADDR} {{\n\
             \x20 router-id {COMPANION_ADDR}; local-address {COMPANION_ADDR};\n\
             \x20 local-as {COMPANION_AS}; peer-as {UPSTREAM_AS}; hold-time 3;\n\
             \x20 family {{ ipv4 unicast; }}\n\
             {}\
             }}\n",
            helper.display(),
            if api {
                "  api { processes [ feed ]; }\n"
            } else {
                ""
            }
        ),
    );
    let log = std::fs::File::create(dir.join("companion.log")).expect("companion log");
    Proc::spawn(
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(driver::exabgp())
            .arg(&conf)
            .env("exabgp_daemon_user", "root")
            .env("exabgp_daemon_daemonize", "false")
            .env("exabgp_api_cli", "false")
            .env("exabgp_log_destination", "stdout")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log),
    )
}

/// The lab config (two backends in the VIP's group) with a feed socket and the VIP announced
/// with next hop self, a MED and a community, to BIRD only (the neighbour selector).
fn announce_config(dir: &Path, ctl: &Path, feed: &Path) -> PathBuf {
    let mut text = config(
        &ConfigOpts {
            backends: 2,
            ..ConfigOpts::default()
        },
        ctl,
    );
    // `config` ends inside `[bgp]`.
    text += &format!(
        "announce_grace = \"{GRACE_S}s\"\n\
         announce_stall_time = \"{STALL_MS}ms\"\n\n\
         [[bgp.announce]]\n\
         prefix = \"{VIP4}/32\"\n\
         next_hop = \"self\"\n\
         med = 100\n\
         communities = [\"65000:100\"]\n\
         neighbors = [\"{UPSTREAM_ADDR}\"]\n\n\
         [feed]\n\
         socket = \"{}\"\n",
        feed.display()
    );
    write(dir, "announce.toml", &text)
}

/// A feed counter of `stats`.
fn feed_counter(fw: &Forwarder, name: &str) -> u64 {
    let stats = fw.ctl_ok(&Request::Stats {});
    stats["feed"]
        .as_array()
        .expect("feed counters")
        .iter()
        .find(|c| c[0] == name)
        .and_then(|c| c[1].as_u64())
        .unwrap_or_else(|| panic!("no feed counter {name}: {stats}"))
}

/// The VIP's line of `announcements`.
fn vip_state(fw: &Forwarder) -> Value {
    let lines = fw.ctl_ok(&Request::Announcements {});
    lines
        .as_array()
        .expect("announcements")
        .iter()
        .find(|l| l["prefix"] == format!("{VIP4}/32"))
        .cloned()
        .unwrap_or_else(|| panic!("VIP missing from announcements: {lines}"))
}

/// The TID of the thread of `pid` named `name` (`/proc/PID/task/*/comm`).
fn thread_id(pid: u32, name: &str) -> u32 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/PID/task");
    let mut names = Vec::new();
    for task in tasks {
        let task = task.expect("task entry");
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            return task.file_name().to_string_lossy().parse().expect("TID");
        }
        names.push(comm.trim_end().to_owned());
    }
    panic!("no thread {name:?} in pid {pid}: {names:?}");
}

/// The state letter of thread `tid` of `pid` (`/proc/PID/task/TID/stat`; `t`: ptrace stop).
fn thread_state(pid: u32, tid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).expect("stat");
    // The name (in parentheses) may hold spaces; the state follows its closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("stat name") + 1..];
    rest.trim_start().chars().next().expect("state")
}

/// The tracer of [`ThreadStop`]: ptrace is per thread, so `PTRACE_SEIZE` then `PTRACE_INTERRUPT`
/// stop that thread alone (no signal, no group stop: the process's other threads run on). It holds
/// the stop until a line arrives on stdin, then detaches; if it dies instead, the kernel detaches
/// and the thread resumes all the same.
const TRACER: &str = "\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
tid = int(sys.argv[1])
for req in (0x4206, 0x4207):  # PTRACE_SEIZE, PTRACE_INTERRUPT
    if libc.ptrace(req, tid, None, None) != 0:
        sys.exit(f'ptrace {req:#x} on {tid}: {os.strerror(ctypes.get_errno())}')
os.waitpid(tid, 0x40000000)  # __WALL: the traced thread's stop
sys.stdin.readline()
if libc.ptrace(0x11, tid, None, None) != 0:  # PTRACE_DETACH
    sys.exit(f'detach {tid}: {os.strerror(ctypes.get_errno())}')
";

/// One thread of a live process held stopped; resumed by [`ThreadStop::resume`], or by the
/// tracer's end when dropped (its guard stops it by PID).
struct ThreadStop {
    tracer: Proc,
    stdin: Option<std::process::ChildStdin>,
    pid: u32,
    tid: u32,
}

impl ThreadStop {
    /// Stops thread `tid` of `pid`; returns once `/proc` shows it in a ptrace stop.
    fn stop(pid: u32, tid: u32) -> ThreadStop {
        let mut tracer = Proc::spawn(
            Command::new("python3")
                .args(["-c", TRACER, &tid.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::null()),
        );
        let stdin = tracer.0.stdin.take();
        wait_until("the thread's ptrace stop", Duration::from_secs(5), || {
            if let Some(st) = tracer.exited() {
                panic!("the tracer of {tid} ended first: {st}");
            }
            thread_state(pid, tid) == 't'
        });
        ThreadStop {
            tracer,
            stdin,
            pid,
            tid,
        }
    }

    /// Detaches; returns once the thread is out of its stop.
    fn resume(mut self) {
        use std::io::Write;
        let mut stdin = self.stdin.take().expect("tracer stdin");
        stdin.write_all(b"\n").expect("tell the tracer");
        drop(stdin);
        let st = self.tracer.wait(Duration::from_secs(5));
        assert!(st.success(), "tracer: {st}");
        let state = thread_state(self.pid, self.tid);
        assert_ne!(state, 't', "thread {} still stopped", self.tid);
    }
}

#[test]
fn bird_learns_the_vip_while_ecmpfwd_serves_and_loses_it_when_it_cannot_or_stops() {
    let lab = Lab::up("ann", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let feed = dir.path().join("feed.sock");
    let cfg = announce_config(dir.path(), &ctl, &feed);
    let bird = Bird::start(&lab.cl(), dir.path());

    // Served: BIRD learns the VIP with the configured attributes.
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);

    // The pitfall: the upstream neighbour's `api` does not list the helper's process. The
    // session comes up, ExaBGP answers the announce with `error` (counted by ecmpfwd), and the
    // router learns nothing.
    let wrong = start_companion(&lab.fw(), dir.path(), &feed, false);
    wait_until(
        "the session with the misconfigured companion",
        BGP_LIMIT,
        || bird.established() && feed_counter(&fw, "command_errors") >= 1,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(bird.vip_route(), None, "learnt without the api listing");
    drop(wrong);
    wait_until("the misconfigured session to end", BGP_LIMIT, || {
        !bird.established()
    });

    let mut companion = start_companion(&lab.fw(), dir.path(), &feed, true);
    bird.wait_learnt("start");
    let state = vip_state(&fw);
    assert_eq!(state["announced"], true, "{state}");

    // No active hop: every backend drained, the VIP leaves BIRD over a session that stays up.
    for b in 1..=2 {
        fw.ctl_ok(&Request::Drain {
            hop: ip(&format!("198.18.{b}.1")),
        });
    }
    wait_until("the VIP withdrawn with no active hop", BGP_LIMIT, || {
        bird.vip_route().is_none()
    });
    assert!(bird.established(), "the session dropped instead");
    let state = vip_state(&fw);
    assert_eq!(state["announced"], false, "{state}");
    assert_eq!(state["reason"]["kind"], "no-active-hop", "{state}");
    fw.ctl_ok(&Request::Undrain {
        hop: ip("198.18.1.1"),
    });
    bird.wait_learnt("one backend back");

    // A stalled worker: its thread alone held in a ptrace stop. The control thread, which judges
    // the workers' poll counts, runs on and withdraws the VIP over a session that stays up; once
    // the worker polls again, the VIP is announced again.
    let worker = thread_id(fw.pid(), "ecmpfwd-w1");
    let t = Instant::now();
    let stop = ThreadStop::stop(fw.pid(), worker);
    for task in std::fs::read_dir(format!("/proc/{}/task", fw.pid())).expect("tasks") {
        let tid: u32 = task
            .expect("task")
            .file_name()
            .to_string_lossy()
            .parse()
            .expect("TID");
        if tid != worker {
            assert_ne!(thread_state(fw.pid(), tid), 't', "thread {tid} stopped too");
        }
    }
    wait_until(
        "the VIP withdrawn with the worker stalled",
        STALL_LIMIT,
        || bird.vip_route().is_none(),
    );
    let stall_withdrawn = t.elapsed();
    assert!(bird.established(), "the session dropped instead");
    // The control thread answers while the worker is stopped, and says why.
    let state = vip_state(&fw);
    assert_eq!(state["announced"], false, "{state}");
    assert_eq!(state["reason"]["kind"], "workers-stalled", "{state}");
    assert_eq!(state["reason"]["worker"], 0, "{state}");
    let quiet = state["reason"]["stalled_ms"].as_u64().expect("stalled_ms");
    assert!(quiet >= STALL_MS, "{state}");
    let stats = fw.ctl_ok(&Request::Stats {});
    assert_eq!(stats["announce"][0]["reason"], state["reason"], "{stats}");
    let t = Instant::now();
    stop.resume();
    bird.wait_learnt("worker resumed");
    let stall_announced = t.elapsed();
    let state = vip_state(&fw);
    assert_eq!(state["announced"], true, "{state}");
    eprintln!(
        "stalled worker: VIP gone from BIRD {stall_withdrawn:?} after the stop \
         (announce_stall_time {STALL_MS} ms), back {stall_announced:?} after the resume"
    );

    // SIGKILL: ecmpfwd writes nothing more, the helper's socat sees the socket close and ends
    // ExaBGP, whose session drops, so BIRD withdraws.
    signal(fw.pid(), "KILL");
    let killed = fw.wait_exit(Duration::from_secs(5));
    assert!(!killed.status.success(), "SIGKILL: {:?}", killed.status);
    let st = companion.wait(BGP_LIMIT);
    wait_until("the VIP withdrawn after SIGKILL", BGP_LIMIT, || {
        bird.vip_route().is_none()
    });
    assert!(!bird.established(), "the session outlived the companion");
    eprintln!("companion ended with {st} after ecmpfwd was killed");

    // A new ecmpfwd and companion announce again; SIGTERM withdraws while ecmpfwd still runs
    // (for the grace time) and the session is still up, then ecmpfwd stops and the helper ends
    // the companion.
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    let mut companion = start_companion(&lab.fw(), dir.path(), &feed, true);
    bird.wait_learnt("restart");
    let t = Instant::now();
    signal(fw.pid(), "TERM");
    wait_until(
        "the VIP withdrawn on SIGTERM",
        Duration::from_secs(GRACE_S),
        || bird.vip_route().is_none(),
    );
    let withdrawn_after = t.elapsed();
    // Still running: it answers on its control socket, withdrawn because it is stopping.
    let state = vip_state(&fw);
    assert_eq!(state["reason"]["kind"], "shutting-down", "{state}");
    assert!(
        bird.established(),
        "the VIP left with the session, not by a withdraw"
    );
    let stopped = fw.wait_exit(Duration::from_secs(GRACE_S + 10));
    let stopped_after = t.elapsed();
    assert!(
        stopped.status.success(),
        "ecmpfwd on SIGTERM: {:?}\n{}",
        stopped.status,
        stopped.stderr
    );
    assert!(
        stopped_after >= Duration::from_secs(GRACE_S),
        "ecmpfwd stopped {stopped_after:?} after SIGTERM, grace {GRACE_S}s"
    );
    companion.wait(BGP_LIMIT);
    wait_until(
        "the session down after the companion ended",
        BGP_LIMIT,
        || !bird.established(),
    );
    eprintln!(
        "SIGTERM: VIP gone from BIRD after {withdrawn_after:?}, ecmpfwd exited after \
         {stopped_after:?}"
    );
}
