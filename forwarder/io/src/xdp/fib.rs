//! [`FibForwarder`]: loads `bpf/fib.bpf.c`, the in-kernel XDP forwarding baseline of the
//! benchmarks (bpf_fib_lookup over the kernel's routes and nexthop groups, then a redirect in
//! the driver), and attaches it to one ingress interface through a bpf_link.
//!
//! Not part of ecmpfwd's forwarding: it answers "why not stay in the kernel with XDP?" in the
//! same lab and the same table as ecmpfwd, the kernel's stack and testpmd.

use super::XdpError;
use super::linked::{self, Attached};
use super::program::AttachMode;
use std::fmt;

#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    unsafe_op_in_unsafe_fn
)]
#[allow(rust_2018_idioms, unused_qualifications)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/fib.skel.rs"));
}

/// The program's counters, summed over CPUs. Every packet it saw is counted once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FibCounters {
    /// Looked up, TTL decremented, MACs rewritten and redirected to the egress device.
    pub redirected: u64,
    /// Passed: neither IPv4 nor IPv6.
    pub pass_not_ip: u64,
    /// Passed: the lookup did not give a forwarding entry with a resolved neighbour (no route,
    /// a local address, no neighbour entry yet, forwarding disabled on the ingress device).
    pub pass_no_route: u64,
    /// Passed: TTL or hop limit would reach zero (the kernel sends the ICMP error).
    pub pass_ttl: u64,
    /// Passed: too short for the headers it claims.
    pub pass_malformed: u64,
}

/// The baseline program, attached to one interface; dropping it (or the process dying)
/// detaches it.
pub struct FibForwarder(Attached);

impl FibForwarder {
    /// The program's name in the kernel.
    pub const NAME: &'static str = "ecmpfwd_xdp_fib";

    /// Loads the program and attaches it to `ifname` in `mode`. An interface that already has
    /// an XDP program is an error naming it.
    pub fn attach(ifname: &str, mode: AttachMode) -> Result<Self, XdpError> {
        linked::load_attached!(
            skel::FibSkelBuilder,
            ecmpfwd_xdp_fib,
            ifname,
            mode,
            "the XDP FIB program"
        )
        .map(Self)
    }

    /// The counts so far, summed over CPUs.
    pub fn counters(&self) -> Result<FibCounters, XdpError> {
        let [
            redirected,
            pass_not_ip,
            pass_no_route,
            pass_ttl,
            pass_malformed,
        ] = self.0.counters()?;
        Ok(FibCounters {
            redirected,
            pass_not_ip,
            pass_no_route,
            pass_ttl,
            pass_malformed,
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.0.ifname
    }

    /// The attach mode.
    pub fn mode(&self) -> AttachMode {
        self.0.mode
    }
}

impl fmt::Debug for FibForwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FibForwarder")
            .field("ifname", &self.0.ifname)
            .field("mode", &self.0.mode)
            .finish()
    }
}
