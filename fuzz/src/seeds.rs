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
use std::path::{Path, PathBuf};

use ecmp_wire::{checksum, ip_proto};

use crate::input::{barrier, encode_frames, hop_state};

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

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet (DF set, checksum filled) with `options` (a multiple of 4 bytes).
fn ipv4(
    protocol: u8,
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let hl = 20 + options.len();
    let total = (hl + payload.len()) as u16;
    let mut p = vec![0x40 | (hl / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, ttl, protocol, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(options);
    let c = checksum::compute(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn ipv6(next_header: u8, src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next_header, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// A 20-byte TCP header (checksum left 0: the forwarder does not verify L4 checksums).
fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn v6(prefix: u16, last: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..2].copy_from_slice(&prefix.to_be_bytes());
    a[2..4].copy_from_slice(&0x0db8u16.to_be_bytes());
    a[14..].copy_from_slice(&last.to_be_bytes());
    a
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN_ACK: u8 = 0x11;

/// Valid frames beyond the wire corpus, aimed at the routes and hops of the pipeline target's
/// config (see `harness::CONFIG`): (name, frame).
pub fn extra_frames() -> Vec<(String, Vec<u8>)> {
    let client = [198, 51, 100, 7];
    let inner_syn = ipv4(
        ip_proto::TCP,
        client,
        [10, 0, 0, 80],
        64,
        &[],
        &tcp(40000, 80, SYN),
    );
    let mut gre = vec![0x20, 0x00, 0x08, 0x00, 0, 0, 0, 42];
    gre.extend_from_slice(&inner_syn);
    let inner6 = ipv6(
        ip_proto::UDP,
        v6(0x2001, 1),
        v6(0x2001, 2),
        &udp(5353, 53, b"query"),
    );
    let sctp = {
        let mut s = vec![0x0b, 0xb8, 0x0b, 0xb9, 0, 0, 0, 1, 0, 0, 0, 0];
        s.extend_from_slice(&[1, 0, 0, 4]);
        s
    };
    let v4 =
        |proto, dst, ttl, payload: &[u8]| eth(0x0800, &ipv4(proto, client, dst, ttl, &[], payload));
    vec![
        (
            "valid__ipv4_ack_to_tunnels_v4".into(),
            v4(ip_proto::TCP, [70, 1, 2, 3], 64, &tcp(40001, 443, ACK)),
        ),
        (
            "valid__ipv4_udp_1200_to_web".into(),
            v4(
                ip_proto::UDP,
                [10, 0, 0, 9],
                64,
                &udp(40002, 9000, &[0x5a; 1200]),
            ),
        ),
        (
            "valid__ipv4_ttl_1".into(),
            v4(ip_proto::TCP, [10, 0, 0, 9], 1, &tcp(40003, 80, SYN)),
        ),
        (
            "valid__ipv4_fin_to_dead_group".into(),
            v4(ip_proto::TCP, [172, 16, 0, 1], 64, &tcp(40004, 80, FIN_ACK)),
        ),
        (
            "valid__ipv4_options_sctp_to_lbkey".into(),
            eth(
                0x0800,
                &ipv4(132, client, [192, 0, 2, 7], 64, &[0x94, 0x04, 0, 0], &sctp),
            ),
        ),
        (
            "valid__gre_key_ipv4_in_ipv4".into(),
            v4(ip_proto::GRE, [70, 9, 9, 9], 64, &gre),
        ),
        (
            "valid__ipv6_in_ipv4_to_mixed".into(),
            v4(ip_proto::IPV6, [192, 168, 3, 3], 64, &inner6),
        ),
        (
            "valid__ipv6_syn_to_tunnels_v6".into(),
            eth(
                0x86DD,
                &ipv6(
                    ip_proto::TCP,
                    v6(0x2001, 7),
                    v6(0x2001, 0x500),
                    &tcp(40005, 443, SYN),
                ),
            ),
        ),
        (
            "valid__ipv6_udp_to_tunnels_v4".into(),
            eth(
                0x86DD,
                &ipv6(
                    ip_proto::UDP,
                    v6(0x2001, 7),
                    v6(0x4001, 1),
                    &udp(40006, 53, b"q"),
                ),
            ),
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
    let on_both_ports =
        |frames: &[Vec<u8>]| encode_frames(frames.iter().enumerate().map(|(i, f)| (i % 2, &f[..])));

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
        eth(
            0x0800,
            &ipv4(
                ip_proto::TCP,
                [198, 51, 100, 9],
                [10, 0, 0, 10],
                64,
                &[],
                &tcp(41000, 80, flags),
            ),
        )
    };
    let mut lifecycle = encode_frames([(0, &flow(SYN)[..])]);
    lifecycle.extend_from_slice(&barrier(2));
    lifecycle.extend(encode_frames([(0, &flow(SYN)[..]), (0, &flow(ACK)[..])]));
    lifecycle.extend_from_slice(&hop_state(0, 1, false));
    lifecycle.extend(encode_frames([
        (1, &flow(ACK)[..]),
        (0, &flow(FIN_ACK)[..]),
    ]));
    lifecycle.extend_from_slice(&barrier(2));
    lifecycle.extend(encode_frames([(0, &flow(ACK)[..])]));
    lifecycle.extend_from_slice(&hop_state(0, 0, true));

    // More flows than the 64-entry flow cache holds, from many sources to every IPv4 route
    // (the symmetric address-only hash of tunnels-v6 needs many address pairs to reach all
    // of its hops).
    let many: Vec<Vec<u8>> = (0..80u16)
        .map(|i| {
            let first = [10, 70, 130, 192][usize::from(i % 4)];
            let second = if first == 192 { 168 } else { 0 };
            eth(
                0x0800,
                &ipv4(
                    ip_proto::UDP,
                    [198, 51, 100, i as u8],
                    [first, second, (i >> 2) as u8, i as u8],
                    64,
                    &[],
                    &udp(20000 + i, 4500, b"x"),
                ),
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
            encode_frames([(0, &frame[..])]),
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
