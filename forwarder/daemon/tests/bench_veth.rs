//! `scripts/bench-veth`'s driver runs end to end in a small configuration (root; DPDK's testpmd
//! from dpdk-dev and every workspace binary, which scripts/test installs and builds): every
//! forwarder of the side-by-side table forwards, latency is measured at the sinks, the resilience
//! rounds give ecmpfwd's claims in each group mode, and the plots are drawn. Numbers here come
//! from debug builds under a parallel test load, so only what does not depend on speed is checked.
//! The driver tears its lab down itself; this test bounds it in time and kills it by PID.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod driver;

const FORWARDERS: [&str; 9] = [
    "kernel-res",
    "kernel-mp",
    "kernel-res-rps",
    "kernel-mp-rps",
    "xdp-fib",
    "testpmd-io",
    "testpmd-mac",
    "ecmpfwd",
    "ecmpfwd-vxlan",
];

/// Removes the test's output directory however the test ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_driver(root: &Path, bin_dir: &Path, out: &Path, prefix: &str) -> (bool, String) {
    let mut child = Command::new("python3")
        .arg(root.join("scripts/lib/benchveth.py"))
        .args([
            "--quick", "--count", "20000", "--flows", "1000", "--sizes", "66",
        ])
        .args([
            "--lat-count",
            "2000",
            "--lat-rate",
            "20000",
            "--res-flows",
            "300",
        ])
        // Every forwarder but ecmpfwd-dpdk, which needs ecmpfwd built with the feature dpdk
        // (this test runs the plain build; the DPDK ports are tested by dpdk_run).
        .args(["--forwarders", &FORWARDERS.join(",")])
        .args(["--no-scaling", "--prefix", prefix, "--bin-dir"])
        .arg(bin_dir)
        .arg("--outdir")
        .arg(out)
        .arg("--plotdir")
        .arg(out.join("plots"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let reader = driver::read_on_the_side(child.stderr.take());
    let status = driver::wait_bounded(
        &mut child,
        Duration::from_secs(160),
        root,
        driver::Lab::Single,
        prefix,
    );
    let log = reader.join().unwrap_or_default();
    match status {
        Some(s) => (s.success(), log),
        None => (
            false,
            format!("the driver did not finish within 160 s\n{log}"),
        ),
    }
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for k in path {
        cur = &cur[*k];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

#[test]
fn every_forwarder_runs_side_by_side_and_ecmpfwd_moves_only_what_it_must() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_ecmpfwd"))
        .parent()
        .expect("binary dir")
        .to_owned();
    for bin in ["ecmpctl", "ecmp-plot", "ecmpfwd-pktgen"] {
        assert!(
            bin_dir.join(bin).is_file(),
            "{bin} is not built in {}: cargo build --workspace --bins (scripts/test does)",
            bin_dir.display()
        );
    }
    assert!(
        Command::new("sh")
            .args(["-c", "command -v dpdk-testpmd"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "dpdk-testpmd not found: apt-get install dpdk-dev (scripts/test does)"
    );
    let out = TempDir(std::env::temp_dir().join(format!("bench-veth-test.{}", std::process::id())));
    std::fs::create_dir_all(&out.0).expect("temp dir");
    let prefix = format!("bt{}", std::process::id());
    let (ok, log) = run_driver(&root, &bin_dir, &out.0, &prefix);
    assert!(ok, "bench-veth driver failed:\n{log}");

    let json = std::fs::read_dir(&out.0)
        .expect("outdir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap_or_else(|| panic!("no results JSON written:\n{log}"));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    // Every generated result names the commit it measured.
    let head = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .expect("git rev-parse");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let commit = r["meta"]["commit"].as_str().expect("meta.commit");
    assert!(
        !head.is_empty() && commit.starts_with(&head),
        "meta.commit {commit:?}, HEAD {head:?}"
    );
    let md = std::fs::read_to_string(json.with_extension("md")).expect("results markdown");
    assert!(md.contains(&format!("; commit {commit}; ")), "{md}");

    let summary = r["summary"].as_array().expect("summary");
    for fwd in FORWARDERS {
        let row = summary
            .iter()
            .find(|s| s["forwarder"] == fwd)
            .unwrap_or_else(|| panic!("no row for {fwd}:\n{log}"));
        assert!(
            num(row, &["mpps", "median"]) > 0.0,
            "{fwd} delivered nothing: {row}"
        );
        assert!(
            num(row, &["latency_us", "p50", "median"]) > 0.0,
            "{fwd}: {row}"
        );
        assert!(
            num(row, &["latency_received", "median"]) > 0.5,
            "{fwd} lost most latency packets: {row}"
        );
        // VXLAN adds its 50 bytes on the way to the backends; every other forwarder keeps the size.
        let want = if fwd == "ecmpfwd-vxlan" { 116.0 } else { 66.0 };
        assert_eq!(
            num(row, &["b0_bytes_per_pkt", "median"]),
            want,
            "{fwd}: {row}"
        );
    }

    // The generator alone, and every cost forwarder charged for its packets at every rate.
    let cap = &r["meta"]["generator_capacity"]["66"]["1000"];
    assert!(num(cap, &["offered_mpps"]) > 0.0, "{cap}");
    assert_eq!(
        cap["received"], cap["sent"],
        "the drop sink counts all: {cap}"
    );
    let cost = r["meta"]["cost"]["summary"]
        .as_array()
        .expect("cost summary");
    for fwd in ["kernel-res-rps", "xdp-fib", "testpmd-mac", "ecmpfwd"] {
        for rate in [100_000, 300_000, 0] {
            let row = cost
                .iter()
                .find(|s| s["forwarder"] == fwd && s["rate_pps"] == rate)
                .unwrap_or_else(|| panic!("no cost row for {fwd} at {rate}:\n{log}"));
            assert!(num(row, &["delivered", "median"]) > 0.0, "{fwd}: {row}");
            // The softirq-based rows resolve to 10 ms ticks: a short run may see none.
            if !(fwd.starts_with("kernel") || fwd == "xdp-fib") {
                assert!(
                    num(row, &["cycles_per_pkt", "median"]) > 0.0,
                    "{fwd} at {rate}: {row}"
                );
            }
        }
    }
    assert!(md.contains("### Cycles per forwarded packet"), "{md}");

    let res = &r["resilience"];
    for fwd in ["kernel-res", "kernel-mp"] {
        assert_eq!(num(&res[fwd], &["seen"]), 300.0, "{fwd}: {}", res[fwd]);
        assert!(
            res[fwd]["events"]["drain"].is_null(),
            "the kernel has no drain"
        );
    }
    for mode in ["auto-recovery", "manual", "maglev"] {
        let fwd = format!("ecmpfwd-{mode}");
        let ev = &res[fwd.as_str()]["events"];
        assert_eq!(num(&res[fwd.as_str()], &["seen"]), 300.0, "{fwd}: {ev}");
        assert_eq!(num(ev, &["fail", "collateral"]), 0.0, "{fwd}: {ev}");
        assert_eq!(num(ev, &["fail", "lost"]), 0.0, "{fwd}: {ev}");
        assert!(num(ev, &["fail", "on_failed_hop"]) > 0.0, "{fwd}: {ev}");
        assert_eq!(
            num(ev, &["fail", "moved"]),
            num(ev, &["fail", "on_failed_hop"]),
            "{fwd}: {ev}"
        );
        assert_eq!(num(ev, &["add", "moved"]), 0.0, "{fwd}: {ev}");
        assert_eq!(num(ev, &["drain", "moved"]), 0.0, "{fwd}: {ev}");
        assert_eq!(num(ev, &["drain", "fresh_on_drained"]), 0.0, "{fwd}: {ev}");
        // Maglev gives an added hop a share at once, auto-recovery the buckets no flow has used
        // yet (300 flows leave many of the buckets unused); manual waits for `clear`.
        let on_new = num(ev, &["add", "fresh_on_new_hop"]);
        if mode == "manual" {
            assert_eq!(on_new, 0.0, "{fwd}: {ev}");
        } else {
            assert!(on_new > 0.0, "{fwd}: {ev}");
        }
    }

    for svg in ["throughput.svg", "latency.svg", "resilience.svg"] {
        let p = out.0.join("plots").join(svg);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(text.contains("<svg"), "{svg} is not an SVG");
    }
    // The lab is gone: no namespace with the test's prefix is left.
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ns.stdout).contains(&prefix),
        "namespaces left behind"
    );
}
