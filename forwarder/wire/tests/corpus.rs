//! Replays `tests/corpus/*.hex`: each file name states the verdict `parse_frame` must give.

use std::fs;
use std::path::PathBuf;

use ecmp_wire::{ParseError, parse_frame, parse_inner};

fn decode(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.bytes())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex digit"))
        .collect()
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("corpus directory")
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
                .expect("utf-8 name")
                .to_owned();
            (name, decode(&fs::read_to_string(&p).expect("readable")))
        })
        .collect()
}

#[test]
fn every_corpus_frame_gets_its_verdict() {
    let frames = corpus();
    assert!(frames.len() > ParseError::COUNT);
    let mut seen = [false; ParseError::COUNT];
    let mut ok = 0;
    for (name, frame) in &frames {
        let (expected, _) = name
            .split_once("__")
            .unwrap_or_else(|| panic!("{name}: no `__` in name"));
        let got = parse_frame(frame);
        if expected == "ok" {
            let meta = got.unwrap_or_else(|e| panic!("{name}: expected ok, got {e:?}"));
            // Inner parsing of any accepted frame must not panic either.
            let _ = parse_inner(frame, &meta);
            ok += 1;
        } else {
            let want = ParseError::from_name(expected)
                .unwrap_or_else(|| panic!("{name}: unknown verdict"));
            assert_eq!(got, Err(want), "{name}");
            seen[want.index()] = true;
        }
    }
    assert!(ok > 0);
    for e in ParseError::ALL {
        assert!(seen[e.index()], "no corpus frame for {}", e.name());
    }
}

#[test]
fn vxlan_corpus_frame_has_inner_meta() {
    let (_, frame) = corpus()
        .into_iter()
        .find(|(n, _)| n == "ok__vxlan_ipv4_syn")
        .unwrap();
    let outer = parse_frame(&frame).unwrap();
    let inner = parse_inner(&frame, &outer).unwrap();
    assert_eq!(
        (inner.src_port, inner.dst_port, inner.tcp_flags),
        (59058, 8888, 0x02)
    );
    assert_eq!(inner.src_ip(), std::net::IpAddr::from([192, 168, 254, 103]));
}
