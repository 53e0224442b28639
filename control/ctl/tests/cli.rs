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
