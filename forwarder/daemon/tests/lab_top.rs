//! `ecmpctl top` against a forwarding ecmpfwd, read from a terminal: tmux runs it in a
//! 160x50 pane while traffic flows, the test reads the screen back, then presses `q`.

mod lab_common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ecmp_proto::ctl::Request;
use lab_common::*;

/// A tmux server of the test's own (its own socket), killed on drop, on panic too.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        Tmux {
            socket: format!("ecmp-top-{}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux (Debian package tmux)")
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "top"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The whitespace-separated fields of the screen line starting with `start`.
fn row<'a>(screen: &'a str, start: &str) -> Option<Vec<&'a str>> {
    screen
        .lines()
        .find(|l| l.starts_with(start))
        .map(|l| l.split_whitespace().collect())
}

fn number(field: &str) -> f64 {
    let (digits, scale) = match field.strip_suffix('k') {
        Some(d) => (d, 1e3),
        None => match field.strip_suffix('M') {
            Some(d) => (d, 1e6),
            None => (field.trim_end_matches('%'), 1.0),
        },
    };
    digits.parse::<f64>().map_or(0.0, |n| n * scale)
}

/// What the screen must show once rates are in: traffic through fc0 and on to the backends
/// and its active hop, a busy worker, the drop reason, the flow cache's fill and the operator's drain.
fn complete(screen: &str) -> bool {
    let rx = row(screen, "fc0 ").map_or(0.0, |r| number(r[2]));
    let tx: f64 = ["fb1 ", "fb2 "]
        .iter()
        .filter_map(|p| row(screen, p))
        .map(|r| number(r[3]))
        .sum();
    let busy = row(screen, "0 ").map_or(0.0, |r| number(r[3]));
    // The first row of the active backend's address is its rewrite hop: HOP ADDRESS PORT
    // STATE PKTS/S FLOWS FLOWS/S.
    let hop_pps = screen
        .lines()
        .find(|l| l.contains(" 198.18.1.1 "))
        .and_then(|l| l.split_whitespace().nth(4).map(number))
        .unwrap_or(0.0);
    rx > 1000.0
        && hop_pps > 1000.0
        && tx > 1000.0
        && busy > 0.0
        && row(screen, "no_route").is_some()
        && screen.contains("/ 65536 flows")
        && screen.contains("operator drain 198.18.2.1")
}

#[test]
fn top_shows_ports_workers_drops_flows_and_route_events_and_quits_on_q() {
    let lab = Lab::up("ltop", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let opts = ConfigOpts {
        backends: 2,
        ..ConfigOpts::default()
    };
    let cfg = write(dir.path(), "c.toml", &config(&opts, &ctl));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);
    // Hop 198.18.2.1 drains (a route event); packets to a prefix without a route are dropped.
    fw.ctl_ok(&Request::Drain {
        hop: ip("198.18.2.1"),
    });
    send(
        &lab,
        "198.18.0.1",
        "203.0.113.1",
        10,
        200,
        &["--proto", "udp"],
    );

    let tmux = Tmux::new();
    // The shell records top's own exit status: tmux reports a dead pane's status only once it
    // has reaped the process, which a loaded machine can delay past any bound.
    let status_file = dir.path().join("top.status");
    let top = format!(
        "sh -c '{} --socket {} top --interval 1; echo $? > {}'",
        ecmpctl().display(),
        ctl.display(),
        status_file.display()
    );
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "160",
        "-y",
        "50",
        &top,
    ]);
    assert!(out.status.success(), "{out:?}");
    // Kept after exit, so the test sees how it ended.
    let out = tmux.run(&["set-option", "-t", "top", "remain-on-exit", "on"]);
    assert!(out.status.success(), "{out:?}");

    let screen = std::thread::scope(|s| {
        // 20000 pps for 5 s over 200 flows, while the test reads the screen.
        s.spawn(|| {
            send(
                &lab,
                "198.18.0.1",
                VIP4,
                200,
                100_000,
                &["--proto", "udp", "--size", "100"],
            )
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let screen = tmux.screen();
            if complete(&screen) {
                break screen;
            }
            assert!(
                Instant::now() < deadline,
                "top never showed everything:\n{screen}"
            );
        }
    });
    println!("{screen}");
    assert!(screen.starts_with("ecmpctl top  "), "{screen}");
    for port in ["fc0 ", "fb1 ", "fb2 "] {
        assert!(row(&screen, port).is_some(), "no {port} row:\n{screen}");
    }
    let hop: Vec<&str> = screen
        .lines()
        .find(|l| l.contains(" 198.18.2.1 "))
        .expect("a row for hop 198.18.2.1")
        .split_whitespace()
        .collect();
    assert_eq!(hop[3], "drained", "{screen}");
    assert_eq!(hop[4], "0", "drained before any flow: no packets: {screen}");
    let hop1: Vec<&str> = screen
        .lines()
        .find(|l| l.contains(" 198.18.1.1 "))
        .expect("a row for hop 198.18.1.1")
        .split_whitespace()
        .collect();
    assert!(
        number(hop1[4]) > 1000.0,
        "packets to the active hop: {screen}"
    );
    assert_eq!(hop1[5], "200", "every new flow on the active hop: {screen}");
    assert!(screen.lines().count() <= 50);

    let out = tmux.run(&["send-keys", "-t", "top", "q"]);
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = tmux.run(&[
            "display-message",
            "-p",
            "-t",
            "top",
            "#{pane_dead} #{alternate_on}",
        ]);
        let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let status = std::fs::read_to_string(&status_file).unwrap_or_default();
        // Exited with status 0 (a signal would read 128 + its number) and left the alternate
        // screen.
        if state == "1 0" && status.trim() == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "top did not quit on q: pane {state:?}, exit status {status:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
}
