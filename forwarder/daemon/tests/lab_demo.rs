//! `scripts/demo`'s lab story runs and every claim it prints holds (root; ExaBGP from the venv
//! scripts/test installs, found through ECMP_EXABGP). The driver tears its lab down and kills
//! what it started even when a claim fails; this test bounds it in time and kills it by PID.

use std::process::{Command, Stdio};
use std::time::Duration;

mod driver;

#[test]
fn the_lab_demo_claims_hold() {
    let root = driver::root();
    let exabgp = driver::exabgp();
    let bin_dir = driver::bin_dir(&["ecmpctl"]);
    let mut child = Command::new("python3")
        .arg(root.join("scripts/lib/labdemo.py"))
        .args([
            "--exabgp",
            &exabgp,
            "--prefix",
            &format!("dm{}", std::process::id()),
        ])
        .args(["--flows", "300", "--bin-dir"])
        .arg(&bin_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = driver::read_on_the_side(child.stdout.take());
    let err = driver::read_on_the_side(child.stderr.take());
    let prefix = format!("dm{}", std::process::id());
    let status = driver::wait_bounded(&mut child, Duration::from_secs(120), &root, &prefix);
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let status =
        status.unwrap_or_else(|| panic!("the demo did not finish within 120 s:\n{out}\n{err}"));
    assert!(status.success(), "demo failed:\n{out}\n{err}");
    assert!(out.contains("0 claim(s) failed"), "{out}");
    assert!(!out.contains("[FAIL]"), "{out}");
    assert!(out.matches("[ok]").count() >= 20, "{out}");
}
