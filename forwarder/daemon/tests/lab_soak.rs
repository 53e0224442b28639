//! `scripts/soak --minutes 1`: the soak's short version (root; ExaBGP from the venv scripts/test
//! installs, found through ECMP_EXABGP). One minute of traffic at 80% of the measured rate while
//! BGP sessions flap, a backend drains and undrains and a second feed client churns 10k prefixes;
//! the driver checks frames, packets, RSS and routes and writes a JSON report, which this test
//! reads back. The driver tears its lab down and kills what it started even when a check fails;
//! this test bounds it in time and kills it by PID.

use std::time::Duration;

mod driver;

use driver::Lab;

#[test]
fn a_one_minute_soak_passes_every_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("soak.json");
    let run = driver::run_driver(
        "soak.py",
        &[
            "--minutes",
            "1",
            "--report",
            report.to_str().expect("UTF-8 path"),
        ],
        Lab::Single,
        &format!("sk{}", std::process::id()),
        &["ecmpctl", "ecmpfwd-pktgen"],
        Duration::from_secs(170),
    );
    let out = &run.out;
    assert!(run.status.success(), "soak failed:\n{out}\n{}", run.err);
    assert!(out.contains("soak PASS: 1 min"), "{out}");
    assert!(!out.contains("[FAIL]"), "{out}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the JSON report"))
            .expect("report JSON");
    let n = |k: &str| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {report:#}"))
    };
    assert!(
        n("forwarded") > 0 && n("received") >= n("forwarded"),
        "{out}"
    );
    // A minute of churn at 1,000 updates/s on top of the 10k-prefix load.
    assert!(n("route_updates") >= 10_000 + 40_000, "{out}");
    assert!(n("flaps") >= 3 && n("drains") >= 5, "{out}");
    assert!(report["failures"].as_array().is_some_and(|f| f.is_empty()));
    assert!(report["samples"].as_array().is_some_and(|s| s.len() >= 55));
}
