//! `scripts/demo-scale`'s story runs and every claim it prints holds (root; BIRD 2 and ExaBGP
//! from what scripts/test installs). The driver (scripts/lib/scaledemo.py) tears its lab down and
//! stops what it started even when a claim fails; this test bounds it in time, and on a time-out
//! kills it by PID and takes the lab-scale lab down itself.

use std::time::Duration;

mod driver;

use driver::Lab;

#[test]
fn the_scale_out_demo_claims_hold() {
    driver::run_driver(
        "scaledemo.py",
        &[],
        Lab::Scale,
        &format!("ds{}", std::process::id()),
        &["ecmpctl"],
        Duration::from_secs(150),
    )
    .assert_claims(15);
}
