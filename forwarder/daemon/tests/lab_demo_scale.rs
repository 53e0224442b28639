//! `scripts/demo-scale`'s story runs and every claim it prints holds (root; BIRD 2 and ExaBGP
//! from what scripts/test installs). The driver (scripts/lib/scaledemo.py) tears its lab down and
//! stops what it started even when a claim fails; this test bounds it in time, and on a timeout
//! kills it by PID and takes the lab down itself.

use std::process::{Command, Stdio};
use std::time::Duration;

mod driver;

#[test]
fn the_scale_out_demo_claims_hold() {
    let root = driver::root();
    let exabgp = driver::exabgp();
    let bin_dir = driver::bin_dir(&["ecmpctl"]);
    let prefix = format!("ds{}", std::process::id());
    let mut child = Command::new("python3")
        .arg(root.join("scripts/lib/scaledemo.py"))
        .args(["--exabgp", &exabgp, "--prefix", &prefix, "--bin-dir"])
        .arg(&bin_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = driver::read_on_the_side(child.stdout.take());
    let err = driver::read_on_the_side(child.stderr.take());
    let status = driver::wait_bounded(&mut child, Duration::from_secs(150), &root, &prefix);
    if status.is_none() {
        // wait_bounded took down a scripts/lab lab of that name; this one is a lab-scale lab.
        let _ = Command::new(root.join("scripts/lab-scale"))
            .args(["down", "--prefix", &prefix])
            .status();
    }
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let status =
        status.unwrap_or_else(|| panic!("the demo did not finish within 150 s:\n{out}\n{err}"));
    assert!(status.success(), "demo-scale failed:\n{out}\n{err}");
    assert!(out.contains("\n0 claim(s) failed"), "{out}");
    assert!(!out.contains("[FAIL]"), "{out}");
    assert!(out.matches("[ok]").count() >= 15, "{out}");
}
