//! `scripts/demo`'s lab story runs and every claim it prints holds (root; ExaBGP from the venv
//! scripts/test installs, found through ECMP_EXABGP). The driver tears its lab down and kills
//! what it started even when a claim fails; this test bounds it in time and kills it by PID.

use std::time::Duration;

mod driver;

use driver::Lab;

#[test]
fn the_lab_demo_claims_hold() {
    driver::run_driver(
        "labdemo.py",
        &["--flows", "300"],
        Lab::Single,
        &format!("dm{}", std::process::id()),
        &["ecmpctl"],
        Duration::from_secs(120),
    )
    .assert_claims(20);
}
