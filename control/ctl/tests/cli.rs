//! `ecmpctl` as a process against a stand-in daemon: one Unix socket in a temp dir that takes one
//! request line and answers with a canned reply. Checks what goes over the socket and the exit
//! status contract (0 carried out, 1 refused, 2 unreachable).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ecmp_proto::ctl::{Changed, Reply, Request};

const ECMPCTL: &str = env!("CARGO_BIN_EXE_ecmpctl");

/// Serves one connection at `path`: returns the request it read, after writing `reply`.
fn daemon(path: &Path, reply: Reply) -> JoinHandle<Request> {
    let listener = UnixListener::bind(path).expect("bind the stand-in socket");
    thread::spawn(move || {
        let (stream, _) = listener.accept().expect("ecmpctl connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("one request line");
        let request = serde_json::from_str(&line).expect("a valid request");
        let mut out = serde_json::to_vec(&reply).expect("reply to JSON");
        out.push(b'\n');
        (&stream).write_all(&out).expect("write the reply");
        request
    })
}

fn ecmpctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(ECMPCTL)
        .arg("--socket")
        .arg(socket)
        .args(["--timeout", "5"])
        .args(args)
        .output()
        .expect("run ecmpctl")
}

#[test]
fn a_carried_out_command_sends_its_request_and_prints_the_reply_as_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("ctl.sock");
    let server = daemon(
        &sock,
        Reply::ok(Changed {
            published: true,
            generation: 7,
        }),
    );
    let out = ecmpctl(&sock, &["--json", "drain", "198.18.2.1"]);
    let request = server.join().expect("stand-in daemon");
    assert_eq!(
        request,
        Request::Drain {
            hop: "198.18.2.1".parse().expect("address")
        }
    );
    assert!(out.status.success(), "{out:?}");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["result"]["generation"], 7);
}

#[test]
fn a_refused_command_exits_1_with_the_reason_on_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("ctl.sock");
    let server = daemon(
        &sock,
        Reply::error("198.18.9.9 is not a next hop of any group"),
    );
    let out = ecmpctl(&sock, &["undrain", "198.18.9.9"]);
    server.join().expect("stand-in daemon");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("198.18.9.9 is not a next hop of any group"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_socket_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = ecmpctl(&dir.path().join("nobody.sock"), &["routes"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

/// Like [`daemon`], but the reply waits for `go`: the test closes ecmpctl's stdout first.
fn gated_daemon(path: &Path, reply: Reply, go: std::sync::mpsc::Receiver<()>) -> JoinHandle<()> {
    let listener = UnixListener::bind(path).expect("bind the stand-in socket");
    thread::spawn(move || {
        let (stream, _) = listener.accept().expect("ecmpctl connects");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("one request line");
        go.recv_timeout(Duration::from_secs(5)).expect("go");
        let mut out = serde_json::to_vec(&reply).expect("reply to JSON");
        out.push(b'\n');
        // ecmpctl may be gone already if the test failed; its result says so.
        let _ = (&stream).write_all(&out);
    })
}

/// A route whose second member lost BGP path selection (its LOCAL_PREF was lowered).
fn route_with_a_de_preferred_member() -> serde_json::Value {
    serde_json::json!([{
        "summary": {
            "prefix": "198.19.0.1/32", "origin": "bgp", "group": 1, "installed": true,
            "mode": "auto-recovery", "active": 1, "draining": 1, "failed": 0, "buckets": 2
        },
        "hash": "5-tuple", "action": "rewrite",
        "members": [
            {"addr": "198.18.1.1", "hop": 1, "state": "active", "buckets": 2},
            {"addr": "198.18.2.1", "hop": 2, "state": "draining", "buckets": 0,
             "reason": {"kind": "not-best", "criterion": "local-pref", "value": 1, "best": 100}}
        ],
        "buckets": [{"hop": 1, "replaced": false}, {"hop": 1, "replaced": true}]
    }])
}

#[test]
fn route_says_why_a_member_is_draining() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("ctl.sock");
    let server = daemon(
        &sock,
        Reply {
            ok: true,
            error: None,
            result: route_with_a_de_preferred_member(),
        },
    );
    let out = ecmpctl(&sock, &["route", "198.19.0.1/32"]);
    server.join().expect("stand-in daemon");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |addr: &str| {
        text.lines()
            .find(|l| l.contains(addr))
            .unwrap_or_else(|| panic!("no line for {addr}:\n{text}"))
            .to_owned()
    };
    let drained = line("198.18.2.1");
    assert!(drained.contains("draining"), "{drained}");
    assert!(
        drained.ends_with("not best: local-pref 1 < 100"),
        "{drained}"
    );
    let active = line("198.18.1.1");
    assert!(
        active.contains("active") && !active.contains("not best"),
        "{active}"
    );
}

/// One carried-out reply per output path of ecmpctl (each prints at least one line).
fn every_output() -> Vec<(Vec<&'static str>, serde_json::Value)> {
    use serde_json::json;
    let changed = json!({"published": true, "generation": 3});
    let summary = json!({
        "prefix": "198.19.0.1/32", "origin": "bgp", "group": 1, "installed": true,
        "mode": "auto-recovery", "active": 2, "draining": 0, "failed": 0, "buckets": 4
    });
    vec![
        (vec!["routes"], json!([summary.clone()])),
        (
            vec!["announce"],
            json!([
                {"prefix": "192.0.2.10/32", "next_hop": "self", "announced": true, "since_s": 3.5,
                 "command": "announce route 192.0.2.10/32 next-hop self"},
                {"prefix": "192.0.2.20/32", "next_hop": "self", "announced": false,
                 "reason": {"kind": "workers-stalled", "worker": 1, "stalled_ms": 1200},
                 "since_s": 1.0, "command": "withdraw route 192.0.2.20/32 next-hop self"}
            ]),
        ),
        (
            vec!["groups"],
            json!({
                "groups": [{
                    "group": 1, "prefixes": ["198.19.0.1/32"], "mode": "maglev", "buckets": 4,
                    "active": 2, "digest": "0123456789abcdef"
                }],
                "digest": "fedcba9876543210"
            }),
        ),
        (
            vec!["route", "198.19.0.1/32"],
            json!([{
                "summary": summary,
                "hash": "5-tuple", "action": "rewrite",
                "members": [{"addr": "198.18.1.1", "hop": 1, "state": "active", "buckets": 4}],
                "buckets": [{"hop": 1, "replaced": false}, {"hop": 1, "replaced": true}]
            }]),
        ),
        (
            vec!["route", "198.19.0.1/32"],
            route_with_a_de_preferred_member(),
        ),
        (
            vec!["nexthops"],
            json!([{
                "hop": 1, "addr": "198.18.1.1", "port": "servers", "mac": "02:00:00:00:00:01",
                "resolved": true, "action": "rewrite", "groups": 1, "configured": false,
                "drained": false
            }]),
        ),
        (
            vec!["flows"],
            json!({
                "total": 1, "per_worker": [1], "per_hop": [{"hop": 1, "flows": 1}],
                "flows": [{
                    "worker": 0, "hop": 1, "group": 1,
                    "flow": {"src": "198.18.0.1", "dst": "198.19.0.1", "proto": 6,
                             "sport": 4242, "dport": 80}
                }]
            }),
        ),
        (
            vec!["stats"],
            json!({
                "uptime_s": 1.5,
                "ports": [{"name": "fc0", "worker": 0, "rx_packets": 1, "rx_bytes": 60,
                           "tx_packets": 1, "tx_bytes": 60, "tx_refused": 0,
                           "rx_pps": 1.0, "tx_pps": 1.0}],
                "workers": [{"worker": 0, "cpu": 1, "packets": 1, "forwarded": 1, "dropped": 0,
                             "cache_hits": 0, "cache_misses": 1, "generation": 3, "pps": 1.0}],
                "drops": [["no_route", 0]],
                "feed": [["lines", 4]],
                "memory": [{"name": "fib4 tbl24", "worker": null, "bytes": 67108864,
                            "backing": "thp", "huge_bytes": 65011712},
                           {"name": "flow cache buckets", "worker": 0, "bytes": 33554432,
                            "backing": "hugetlb", "huge_bytes": 33554432}]
            }),
        ),
        (
            vec!["trace", "198.18.0.1", "198.19.0.1", "--dport", "80"],
            json!({"worker": 0, "group": 1, "hop": 1, "addr": "198.18.1.1",
                   "via": {"via": "bucket", "bucket": 2}}),
        ),
        (vec!["drain", "198.18.1.1"], changed.clone()),
        (vec!["undrain", "198.18.1.1"], changed.clone()),
        (vec!["clear", "198.19.0.1/32"], changed.clone()),
        (
            vec!["route", "add", "198.19.1.0/24", "via", "198.18.1.1"],
            changed.clone(),
        ),
        (vec!["route", "del", "198.19.1.0/24"], changed),
        (
            vec!["what-if", "remove", "198.18.1.1"],
            json!({"groups": [{"group": 1, "prefix": "198.19.0.1/32", "buckets": 2}],
                   "buckets": 2, "flows": 7}),
        ),
        (
            vec!["peers"],
            json!([{"peer": "198.18.1.1", "asn": 65011, "state": "up", "paths": 1, "stale": 0,
                    "last_down_reason": null}]),
        ),
        (
            vec!["convergence"],
            json!({"samples": 2, "p50_us": 40.0, "p99_us": 90.0, "max_us": 95.0,
                   "histogram": [[50.0, 1], [100.0, 1]]}),
        ),
        (
            vec!["reload"],
            json!({"nexthops": {"added": 1, "removed": 0, "changed": 0},
                   "groups": {"added": 0, "removed": 0, "changed": 1},
                   "routes": {"added": 0, "removed": 0, "changed": 0},
                   "settings": ["feed.stale_time"], "published": true, "generation": 4}),
        ),
    ]
}

#[test]
fn every_output_renders_from_a_real_reply() {
    // The replies of `every_output` are ones ecmpctl can show: a typo in them would make the
    // closed-pipe test below pass for the wrong reason (an error exit instead of a write).
    for (args, result) in every_output() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("ctl.sock");
        let reply = Reply {
            ok: true,
            error: None,
            result,
        };
        let server = daemon(&sock, reply);
        let out = ecmpctl(&sock, &args);
        server.join().expect("stand-in daemon");
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "{args:?} printed nothing");
    }
}

#[test]
fn stats_shows_how_each_table_is_backed() {
    let (args, result) = every_output()
        .into_iter()
        .find(|(args, _)| args == &vec!["stats"])
        .expect("a stats reply");
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("ctl.sock");
    let server = daemon(
        &sock,
        Reply {
            ok: true,
            error: None,
            result,
        },
    );
    let out = ecmpctl(&sock, &args);
    server.join().expect("stand-in daemon");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().rev().take(4).collect::<Vec<_>>())
    };
    assert_eq!(
        line("fib4 tbl24"),
        Some(vec!["62.0", "thp", "64.0", "-"]),
        "{text}"
    );
    assert_eq!(
        line("flow cache buckets"),
        Some(vec!["32.0", "hugetlb", "32.0", "0"]),
        "{text}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_every_output_quietly() {
    // `ecmpctl routes | head -3`: the reader closes the pipe; ecmpctl must not panic.
    for json in [false, true] {
        for (args, result) in every_output() {
            let dir = tempfile::tempdir().expect("temp dir");
            let sock = dir.path().join("ctl.sock");
            let (go, gate) = std::sync::mpsc::channel();
            let reply = Reply {
                ok: true,
                error: None,
                result,
            };
            let server = gated_daemon(&sock, reply, gate);
            let mut cmd = Command::new(ECMPCTL);
            cmd.arg("--socket").arg(&sock).args(["--timeout", "5"]);
            if json {
                cmd.arg("--json");
            }
            let mut child = cmd
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run ecmpctl");
            drop(child.stdout.take());
            go.send(()).expect("release the reply");
            let out = child.wait_with_output().expect("ecmpctl ends");
            server.join().expect("stand-in daemon");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stderr.is_empty(),
                "{args:?} (json: {json}): {:?}\n{stderr}",
                out.status
            );
        }
    }
}

#[test]
fn reload_sends_its_request_and_prints_what_changed_or_why_not() {
    use ecmp_proto::ctl::{ReloadCounts, ReloadReply};
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("ctl.sock");
    let server = daemon(
        &sock,
        Reply::ok(ReloadReply {
            nexthops: ReloadCounts {
                added: 1,
                removed: 0,
                changed: 2,
            },
            groups: ReloadCounts {
                added: 0,
                removed: 0,
                changed: 1,
            },
            routes: ReloadCounts::default(),
            settings: vec!["feed.stale_time".into(), "bgp".into()],
            published: true,
            generation: 9,
        }),
    );
    let out = ecmpctl(&sock, &["reload"]);
    assert_eq!(server.join().expect("stand-in daemon"), Request::Reload {});
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        text,
        "next hops  1 added, 0 removed, 2 changed\n\
         groups     0 added, 0 removed, 1 changed\n\
         routes     0 added, 0 removed, 0 changed\n\
         settings   feed.stale_time, bgp\n\
         reloaded: generation 9 published\n"
    );
    std::fs::remove_file(&sock).expect("remove the socket");
    let refusal = "c.toml: not applied, a restart is needed to change port[1].interface, worker";
    let server = daemon(&sock, Reply::error(refusal));
    let out = ecmpctl(&sock, &["reload"]);
    server.join().expect("stand-in daemon");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).expect("utf-8"),
        format!("ecmpctl: {refusal}\n")
    );
}

/// Serves one capture: reads the request, answers `started`, then writes `lines` and closes.
fn capture_daemon(path: &Path, reply: Reply, lines: Vec<String>) -> JoinHandle<Request> {
    let listener = UnixListener::bind(path).expect("bind the stand-in socket");
    thread::spawn(move || {
        let (stream, _) = listener.accept().expect("ecmpctl connects");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("one request line");
        let request = serde_json::from_str(&line).expect("a valid request");
        let mut out = serde_json::to_vec(&reply).expect("reply to JSON");
        out.push(b'\n');
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
        (&stream).write_all(&out).expect("write the stream");
        request
    })
}

#[test]
fn capture_sends_its_options_and_writes_the_stream_as_pcapng() {
    use ecmp_proto::ctl::{
        CaptureDir, CaptureEnd, CaptureLine, CaptureRequest, CaptureStarted, CapturedPacket,
    };
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::{Block, PcapNgReader};

    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("ctl.sock");
    let file = dir.path().join("out.pcapng");
    let packet = |port, dir, drop: Option<&str>| {
        serde_json::to_string(&CaptureLine::Packet(CapturedPacket {
            port,
            dir,
            ts_ns: 1_000_000_007,
            len: 4,
            data: "01020304".to_owned(),
            drop: drop.map(str::to_owned),
        }))
        .expect("JSON")
    };
    let server = capture_daemon(
        &sock,
        Reply::ok(CaptureStarted {
            ports: vec!["fc0".to_owned(), "fb1".to_owned()],
            snaplen: 96,
        }),
        vec![
            packet(0, CaptureDir::Drop, Some("no_route")),
            packet(1, CaptureDir::Tx, None),
            serde_json::to_string(&CaptureLine::End(CaptureEnd {
                captured: 2,
                ring_dropped: 0,
                reason: "count".to_owned(),
            }))
            .expect("JSON"),
        ],
    );
    let out = ecmpctl(
        &sock,
        &[
            "capture",
            "--port",
            "fc0",
            "--drops",
            "--tx",
            "-c",
            "2",
            "-s",
            "96",
            "-w",
            file.to_str().expect("utf-8 path"),
            "udp",
            "port",
            "53",
        ],
    );
    let request = server.join().expect("stand-in daemon");
    assert_eq!(
        request,
        Request::Capture(CaptureRequest {
            port: Some("fc0".to_owned()),
            rx: false,
            tx: true,
            drops: true,
            count: Some(2),
            seconds: None,
            snaplen: 96,
            filter: Some("udp port 53".to_owned()),
        })
    );
    assert!(out.status.success(), "{out:?}");
    let bytes = std::fs::read(&file).expect("the capture file");
    let mut r = PcapNgReader::new(&bytes[..]).expect("pcapng");
    let mut packets = Vec::new();
    while let Some(b) = r.next_block() {
        if let Block::EnhancedPacket(p) = b.expect("a block") {
            packets.push((
                p.interface_id,
                p.data.to_vec(),
                p.options[0].clone().into_owned(),
            ));
        }
    }
    assert_eq!(
        packets,
        [
            (
                0,
                vec![1, 2, 3, 4],
                EnhancedPacketOption::Comment("drop: no_route".into())
            ),
            (
                1,
                vec![1, 2, 3, 4],
                EnhancedPacketOption::Comment("tx".into())
            ),
        ]
    );
}

#[test]
fn a_refused_capture_exits_1_and_writes_no_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("ctl.sock");
    let file = dir.path().join("out.pcapng");
    let server = capture_daemon(
        &sock,
        Reply::error("bad capture filter \"udp port x\": port 'x' is unknown"),
        Vec::new(),
    );
    let out = ecmpctl(
        &sock,
        &[
            "capture",
            "-w",
            file.to_str().expect("utf-8 path"),
            "udp",
            "port",
            "x",
        ],
    );
    server.join().expect("stand-in daemon");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("udp port x"),
        "{out:?}"
    );
    assert!(!file.exists());
}

/// What ecmpctl prints for `args` when the daemon answers `result`.
fn printed(args: &[&str], result: serde_json::Value) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("ctl.sock");
    let server = daemon(
        &sock,
        Reply {
            ok: true,
            error: None,
            result,
        },
    );
    let out = ecmpctl(&sock, args);
    server.join().expect("stand-in daemon");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn routes_prints_each_group_digest_and_the_table_digest_groups_would() {
    use ecmp_proto::digest::{Digest, table_digest};
    use serde_json::json;
    let route = |prefix: &str, digest: &str, installed: bool| {
        json!({
            "prefix": prefix, "origin": "bgp", "group": 1, "installed": installed,
            "mode": "maglev", "active": 2, "draining": 0, "failed": 0, "buckets": 4,
            "digest": digest
        })
    };
    let text = printed(
        &["routes"],
        json!([
            route("192.0.2.10/32", "00000000000000aa", true),
            route("192.0.2.20/32", "00000000000000bb", false)
        ]),
    );
    assert!(text.contains("00000000000000aa"), "{text}");
    // Only installed routes count, as in the daemon's `groups` reply.
    let want = table_digest([("192.0.2.10/32".parse().unwrap(), Digest(0xaa))]);
    assert!(
        text.lines().last() == Some(&format!("table digest {want}")),
        "{text}"
    );
    // A daemon that predates digests: said, not invented.
    let mut old = route("192.0.2.10/32", "", true);
    old.as_object_mut().unwrap().remove("digest");
    let text = printed(&["routes"], json!([old]));
    assert!(text.contains("table digest unknown"), "{text}");
}

#[test]
fn announce_says_what_is_announced_and_why_the_rest_is_not() {
    let (args, result) = every_output()
        .into_iter()
        .find(|(args, _)| args == &vec!["announce"])
        .expect("an announce reply");
    let text = printed(&args, result);
    let line = |p: &str| {
        text.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} in\n{text}"))
            .to_owned()
    };
    assert!(line("192.0.2.10/32").contains("announced"), "{text}");
    let stalled = line("192.0.2.20/32");
    assert!(
        stalled.contains("withdrawn")
            && stalled.ends_with("worker 1 stalled (no poll for 1200 ms)"),
        "{text}"
    );
}
