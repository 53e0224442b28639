//! The fault campaign (scripts/lib/faults.py; root, ExaBGP from the venv scripts/test installs,
//! found through ECMP_EXABGP): each fault injected under a steady stream of traffic in a lab of
//! its own, with the driver's exact expectations printed as claims. The driver tears its lab down
//! and kills what it started even when a claim fails; each test bounds it in time (well under
//! nextest's 180 s) and kills it by PID.

use std::time::Duration;

mod driver;

use driver::Lab;

/// What the driver printed, once it passed: every claim held and at least `claims` were made.
fn run_fault(fault: &str, tag: &str, extra: &[&str], claims: usize) -> String {
    let args: Vec<&str> = std::iter::once(fault)
        .chain(extra.iter().copied())
        .collect();
    driver::run_driver(
        "faults.py",
        &args,
        Lab::Single,
        &format!("f{tag}{}", std::process::id()),
        &["ecmpctl", "ecmpfwd-pktgen"],
        Duration::from_secs(150),
    )
    .assert_claims(claims)
}

#[test]
fn the_companion_killed_and_restarted_changes_nothing_within_stale_time() {
    run_fault("companion", "c", &[], 9);
}

/// The bound asserted on the time from ecmpfwd's restart to its first forwarded packet (the
/// driver polls `ecmpctl stats` every 10 ms from the moment it spawns the new process).
const RESTART_BOUND_S: &str = "2";

#[test]
fn a_killed_forwarder_restarts_and_keeps_maglev_flows_on_their_backends() {
    run_fault(
        "restart",
        "m",
        &["--mode", "maglev", "--restart-bound", RESTART_BOUND_S],
        12,
    );
}

#[test]
fn a_killed_forwarder_restarts_and_keeps_rendezvous_flows_on_their_backends() {
    run_fault(
        "restart",
        "r",
        &["--mode", "rendezvous", "--restart-bound", RESTART_BOUND_S],
        12,
    );
}

#[test]
fn a_lost_neighbour_and_a_link_down_are_counted_and_recovered_without_leaks() {
    run_fault("link", "l", &[], 8);
}

#[test]
fn an_overloaded_afxdp_port_counts_its_rx_overflow_and_leaks_no_frame() {
    run_fault("overload", "o", &[], 4);
}
