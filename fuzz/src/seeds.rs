//! Seed corpora of the fuzz targets, kept in `fuzz/seeds/<target>/` and derived from sources
//! that live elsewhere, so they are regenerated rather than edited:
//! - `parse_frame`: every frame of the wire crate's regression corpus
//!   (`forwarder/wire/tests/corpus/*.hex`, copied as binary under the same stem) and the valid
//!   frames of [`extra_frames`];
//! - `pipeline`: each of those frames as a one-record input, and the multi-record inputs of
//!   [`pipeline_scenarios`] (several flows, barriers that expire flow-cache entries, hops that
//!   fail and come back).
//!
//! The test `seed_dirs_match_their_sources` fails when a seed directory lacks a file this module
//! generates or holds different bytes under its name; `ECMPFWD_WRITE_SEEDS=1 cargo test` in
//! `fuzz/` (re)writes them. Files it does not generate (crash inputs committed as regression
//! seeds, named `crash-*`) are left alone.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ecmp_testkit::frames::{FrameSpec, TcpFlags};
use ecmp_wire::ip_proto;

use crate::input::{barrier, encode_addressed, hop_state};

/// The fuzz crate's directory.
fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The wire crate's regression corpus: (file stem, frame), sorted by name.
pub fn wire_corpus() -> io::Result<Vec<(String, Vec<u8>)>> {
    let dir = crate_dir().join("../forwarder/wire/tests/corpus");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "hex") {
            continue;
        }
        let text = fs::read_to_string(&path)?;
        let frame = decode_hex(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        out.push((stem(&path), frame));
    }
    out.sort();
    Ok(out)
}

/// The files of `fuzz/seeds/<target>/`: (file name, bytes), sorted by name.
pub fn seed_dir(target: &str) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(crate_dir().join("seeds").join(target))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, fs::read(&path)?));
    }
    out.sort();
    Ok(out)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The corpus format: `#` comment lines, otherwise hex digits with any whitespace.
fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.bytes())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).map_err(|e| e.to_string())?;
            u8::from_str_radix(s, 16).map_err(|e| format!("{s:?}: {e}"))
        })
        .collect()
}

const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xee, 0x01];

/// The frame of `spec` between the seed MACs.
fn built(spec: FrameSpec) -> Vec<u8> {
    spec.macs(SRC_MAC, DST_MAC)
        .build()
        .expect("seed frame specs are well-formed")
}

/// The bare IP packet of `spec` (a tunnel's inner packet).
fn inner_ip(spec: FrameSpec) -> Vec<u8> {
    spec.build_ip().expect("seed frame specs are well-formed")
}

fn v6(prefix: u16, last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(prefix, 0x0db8, 0, 0, 0, 0, 0, last))
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;
const FIN_ACK: TcpFlags = TcpFlags::FIN.union(TcpFlags::ACK);

/// Valid frames beyond the wire corpus, aimed at the routes and hops of the pipeline target's
/// config (see `harness::CONFIG`): (name, frame).
pub fn extra_frames() -> Vec<(String, Vec<u8>)> {
    let client = v4(198, 51, 100, 7);
    let tcp =
        |dst, sport, dport, flags| FrameSpec::udp(client, dst, sport, dport, 0).with_tcp(flags);
    let inner_syn = inner_ip(tcp(v4(10, 0, 0, 80), 40000, 80, SYN));
    // GRE with the key bit set, key 42, carrying IPv4.
    let mut gre = vec![0x20, 0x00, 0x08, 0x00, 0, 0, 0, 42];
    gre.extend_from_slice(&inner_syn);
    let inner6 = inner_ip(FrameSpec::udp(v6(0x2001, 1), v6(0x2001, 2), 5353, 53, 0).data(b"query"));
    // SCTP common header (ports 3000 -> 3001, tag 1, checksum 0), then a bare 4-byte chunk.
    let sctp = [0x0b, 0xb8, 0x0b, 0xb9, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 4];
    vec![
        (
            "valid__ipv4_ack_to_tunnels_v4".into(),
            built(tcp(v4(70, 1, 2, 3), 40001, 443, ACK)),
        ),
        (
            "valid__ipv4_udp_1200_to_web".into(),
            built(FrameSpec::udp(client, v4(10, 0, 0, 9), 40002, 9000, 0).data(&[0x5a; 1200])),
        ),
        (
            "valid__ipv4_ttl_1".into(),
            built(tcp(v4(10, 0, 0, 9), 40003, 80, SYN).ttl(1)),
        ),
        (
            "valid__ipv4_fin_to_dead_group".into(),
            built(tcp(v4(172, 16, 0, 1), 40004, 80, FIN_ACK)),
        ),
        (
            "valid__ipv4_options_sctp_to_lbkey".into(),
            built(
                FrameSpec::raw(client, v4(192, 0, 2, 7), 132, &sctp).options(&[0x94, 0x04, 0, 0]),
            ),
        ),
        (
            "valid__gre_key_ipv4_in_ipv4".into(),
            built(FrameSpec::raw(client, v4(70, 9, 9, 9), ip_proto::GRE, &gre)),
        ),
        (
            "valid__ipv6_in_ipv4_to_mixed".into(),
            built(FrameSpec::raw(
                client,
                v4(192, 168, 3, 3),
                ip_proto::IPV6,
                &inner6,
            )),
        ),
        (
            "valid__ipv6_syn_to_tunnels_v6".into(),
            built(FrameSpec::udp(v6(0x2001, 7), v6(0x2001, 0x500), 40005, 443, 0).with_tcp(SYN)),
        ),
        (
            "valid__ipv6_udp_to_tunnels_v4".into(),
            built(FrameSpec::udp(v6(0x2001, 7), v6(0x4001, 1), 40006, 53, 0).data(b"q")),
        ),
    ]
}

/// Multi-record inputs for the pipeline target: (name, input).
pub fn pipeline_scenarios() -> Vec<(String, Vec<u8>)> {
    let valid: Vec<Vec<u8>> = wire_corpus()
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, _)| n.starts_with("ok__"))
        .map(|(_, f)| f)
        .chain(extra_frames().into_iter().map(|(_, f)| f))
        .collect();
    let on_both_ports = |frames: &[Vec<u8>]| {
        encode_addressed(frames.iter().enumerate().map(|(i, f)| (i % 2, &f[..])))
    };

    // Every valid frame, twice around a long barrier (cache hits, then expiries), then again
    // after hops 1..=6 failed and came back.
    let mut mixed = on_both_ports(&valid);
    mixed.extend_from_slice(&barrier(0));
    mixed.extend(on_both_ports(&valid));
    mixed.extend_from_slice(&barrier(3));
    for hop in 0..6 {
        mixed.extend_from_slice(&hop_state(hop, 2, false));
    }
    mixed.extend(on_both_ports(&valid));
    for hop in 0..6 {
        mixed.extend_from_slice(&hop_state(hop, 0, hop % 2 == 0));
    }
    mixed.extend(on_both_ports(&valid));

    // One TCP flow to the web group: SYN, ACK, FIN, with the clock past each timeout between.
    let flow = |flags| {
        built(FrameSpec::udp(v4(198, 51, 100, 9), v4(10, 0, 0, 10), 41000, 80, 0).with_tcp(flags))
    };
    let mut lifecycle = encode_addressed([(0, &flow(SYN)[..])]);
    lifecycle.extend_from_slice(&barrier(2));
    lifecycle.extend(encode_addressed([(0, &flow(SYN)[..]), (0, &flow(ACK)[..])]));
    lifecycle.extend_from_slice(&hop_state(0, 1, false));
    lifecycle.extend(encode_addressed([
        (1, &flow(ACK)[..]),
        (0, &flow(FIN_ACK)[..]),
    ]));
    lifecycle.extend_from_slice(&barrier(2));
    lifecycle.extend(encode_addressed([(0, &flow(ACK)[..])]));
    lifecycle.extend_from_slice(&hop_state(0, 0, true));

    // More flows than the 64-entry flow cache holds, from many sources to every IPv4 route
    // (the symmetric address-only hash of tunnels-v6 needs many address pairs to reach all
    // of its hops).
    let many: Vec<Vec<u8>> = (0..80u16)
        .map(|i| {
            let first = [10, 70, 130, 192][usize::from(i % 4)];
            let second = if first == 192 { 168 } else { 0 };
            built(
                FrameSpec::udp(
                    v4(198, 51, 100, i as u8),
                    v4(first, second, (i >> 2) as u8, i as u8),
                    20000 + i,
                    4500,
                    0,
                )
                .data(b"x"),
            )
        })
        .collect();
    let crowd = on_both_ports(&many);

    vec![
        ("scenario__mixed_barriers_hop_failures".into(), mixed),
        ("scenario__tcp_lifecycle_timeouts".into(), lifecycle),
        ("scenario__cache_overflow".into(), crowd),
    ]
}

/// Every generated seed: (target, file name, bytes).
pub fn generated() -> io::Result<Vec<(&'static str, String, Vec<u8>)>> {
    let mut out = Vec::new();
    let frames = wire_corpus()?
        .into_iter()
        .chain(extra_frames())
        .collect::<Vec<_>>();
    for (name, frame) in &frames {
        out.push(("parse_frame", format!("{name}.bin"), frame.clone()));
        out.push((
            "pipeline",
            format!("{name}.bin"),
            encode_addressed([(0, &frame[..])]),
        ));
    }
    for (name, input) in pipeline_scenarios() {
        out.push(("pipeline", format!("{name}.bin"), input));
    }
    Ok(out)
}

/// Writes every generated seed under `fuzz/seeds/`.
pub fn write_all() -> io::Result<usize> {
    let seeds = generated()?;
    for (target, name, bytes) in &seeds {
        let dir = crate_dir().join("seeds").join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)?;
    }
    Ok(seeds.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecmp_wire::parse_frame;

    #[test]
    fn extra_frames_parse_and_tunnels_have_inner_packets() {
        for (name, f) in extra_frames() {
            let m = parse_frame(&f).unwrap_or_else(|e| panic!("{name}: {e}"));
            let inner = crate::wire_checks::check_accepted(&f, &m);
            let tunnel = name.contains("gre") || name.contains("in_ipv4");
            assert_eq!(inner.is_some(), tunnel, "{name}");
        }
    }

    #[test]
    fn corpus_decodes_with_every_verdict() {
        let corpus = wire_corpus().expect("corpus readable");
        assert!(corpus.iter().any(|(n, _)| n.starts_with("ok__")));
        assert!(corpus.iter().any(|(n, _)| n.starts_with("truncated__")));
        assert_eq!(decode_hex("# c\n0a 0B\n"), Ok(vec![0x0a, 0x0b]));
        assert!(decode_hex("abc").is_err());
    }

    #[test]
    fn seed_dirs_match_their_sources() {
        if std::env::var_os("ECMPFWD_WRITE_SEEDS").is_some() {
            write_all().expect("seeds written");
        }
        let generated = generated().expect("sources readable");
        for target in ["parse_frame", "pipeline"] {
            let on_disk = seed_dir(target).expect("seed dir readable");
            for (t, name, bytes) in generated.iter().filter(|(t, _, _)| *t == target) {
                let found = on_disk.iter().find(|(n, _)| n == name);
                assert_eq!(
                    found.map(|(_, b)| b),
                    Some(bytes),
                    "{t}/{name} missing or stale: run ECMPFWD_WRITE_SEEDS=1 cargo test"
                );
            }
        }
    }
}
