//! The wire crate's malformed-frame corpus (`forwarder/wire/tests/corpus/*.hex`) replayed through
//! the whole pipeline (worker + memory ports): each frame named `<error>__...` is dropped under
//! the drop reason of that parse error, each `ok__...` frame is forwarded, nothing panics, and
//! every frame returns to the pool.

use std::fs;
use std::path::PathBuf;

use ecmp_dataplane::drop::DropReason;
use ecmp_port::BURST;
use ecmp_tests::golden::drop_reason;
use ecmp_tests::hex;
use ecmp_tests::rig::{Outcome, Rig};
use ecmp_wire::{ParseError, parse_frame};
use ecmpfwd::config::Config;

/// Everything routed to one rewrite hop, so that parsing is the only reason to drop.
const CONFIG: &str = r#"
[instance]
name = "corpus"
seed = 7

[flow_cache]
capacity = 1024

# The corpus frames are sent to 02:00:00:00:00:02: that is the uplink's MAC here.
[[port]]
name = "uplink"
kind = "memory"
mac = "02:00:00:00:00:02"

[[port]]
name = "servers"
kind = "memory"
mac = "02:00:00:00:00:03"

[[worker]]
core = 0
ports = ["uplink", "servers"]

[[nexthop]]
name = "server"
address = "10.0.0.1"
port = "servers"
mac = "02:00:00:00:10:01"

[[group]]
name = "all"
members = ["server"]

[[route]]
prefix = "0.0.0.0/0"
group = "all"

[[route]]
prefix = "::/0"
group = "all"
"#;

/// The `servers` port above.
const EGRESS: u16 = 1;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../forwarder/wire/tests/corpus");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("name")
                .to_owned();
            let text = fs::read_to_string(&p).expect("readable");
            let bytes = hex::decode(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, bytes)
        })
        .collect()
}

/// `None` for `ok__` frames, else the drop reason the name announces.
fn expected(name: &str) -> Option<DropReason> {
    let (verdict, _) = name
        .split_once("__")
        .unwrap_or_else(|| panic!("{name}: no `__` in name"));
    if verdict == "ok" {
        return None;
    }
    let parse = ParseError::from_name(verdict).unwrap_or_else(|| panic!("{name}: unknown error"));
    let reason = drop_reason(verdict).expect("parse errors and drop reasons share names");
    assert_eq!(reason, DropReason::from(parse), "{name}");
    Some(reason)
}

fn rig() -> Rig {
    let cfg = Config::parse(CONFIG, "corpus.toml").expect("corpus config");
    ecmp_tests::rig::for_config(&cfg).expect("rig")
}

#[test]
fn every_corpus_frame_gets_its_verdict_through_the_worker() {
    let frames = corpus();
    assert!(frames.len() > ParseError::COUNT, "corpus too small");
    let mut rig = rig();
    let mut seen = [false; ParseError::COUNT];
    let mut forwarded = 0;
    for (name, frame) in &frames {
        let got = rig.run(frame).unwrap_or_else(|e| panic!("{name}: {e}"));
        match (expected(name), got) {
            (None, Outcome::Tx { port, frame: out }) => {
                assert_eq!(port, EGRESS, "{name}");
                let input = parse_frame(frame).expect("ok frame parses");
                let m = parse_frame(&out).unwrap_or_else(|e| panic!("{name}: output {e:?}"));
                assert_eq!(m.vlan_depth, 0, "{name}: tags left");
                assert_eq!(m.ttl, input.ttl - 1, "{name}: TTL");
                assert_eq!((m.src, m.dst), (input.src, input.dst), "{name}");
                assert_eq!(
                    out.len(),
                    14 + usize::from(m.ip_len),
                    "{name}: padding kept"
                );
                forwarded += 1;
            }
            (Some(want), Outcome::Drop(r)) => {
                assert_eq!(r, want, "{name}");
                if let Some(e) = ParseError::ALL.iter().find(|e| e.name() == want.name()) {
                    seen[e.index()] = true;
                }
            }
            (want, got) => panic!("{name}: expected {want:?}, got {got:?}"),
        }
        assert_eq!(rig.pool().outstanding(), 0, "{name}: a frame leaked");
    }
    assert!(forwarded > 0, "no ok__ frame in the corpus");
    for e in ParseError::ALL {
        assert!(seen[e.index()], "no corpus frame exercised {}", e.name());
    }
}

/// The whole corpus in full, mixed bursts, many times over (so malformed frames sit next to
/// good ones in every stage of a burst): the counts add up and no frame is lost.
#[test]
fn corpus_in_mixed_bursts_drops_and_forwards_the_right_counts() {
    const ROUNDS: usize = 50;
    let frames = corpus();
    let mut rig = rig();
    let mut want_drops = [0u64; DropReason::COUNT];
    let mut want_sent = 0;
    let mut all: Vec<&[u8]> = Vec::new();
    for round in 0..ROUNDS {
        // A different order each round, so each frame meets different neighbours.
        let shift = (round * 7) % frames.len();
        for i in 0..frames.len() {
            let (name, frame) = &frames[(i + shift) % frames.len()];
            match expected(name) {
                Some(r) => want_drops[r as usize] += 1,
                None => want_sent += 1,
            }
            all.push(frame);
        }
    }
    let mut got_drops = [0u64; DropReason::COUNT];
    let mut got_sent = 0;
    for chunk in all.chunks(4 * BURST) {
        let out = rig.run_burst(chunk).expect("burst");
        for (g, d) in got_drops.iter_mut().zip(out.drops) {
            *g += d;
        }
        got_sent += out.sent_total();
        assert_eq!(rig.pool().outstanding(), 0, "a frame leaked");
    }
    assert_eq!(got_sent, want_sent);
    for r in DropReason::ALL {
        assert_eq!(
            got_drops[r as usize],
            want_drops[r as usize],
            "{}",
            r.name()
        );
    }
}
