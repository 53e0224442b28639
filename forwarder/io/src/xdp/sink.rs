//! [`DropSink`]: loads `bpf/sink.bpf.c`, which counts and drops ecmpfwd-pktgen's tagged packets
//! in XDP, and attaches it to one interface through a bpf_link.
//!
//! The benchmarks put it on every backend so that what a throughput run measures is the
//! forwarder, not the backends' network stacks (which run on the sender's core over veth). The
//! counts are read from a per-CPU array: one map read per counter per CPU, no per-packet cost
//! on the reading side.

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
    include!(concat!(env!("OUT_DIR"), "/sink.skel.rs"));
}

/// What the sink program counted, summed over CPUs. Every packet it saw is counted once, as
/// tagged (and dropped) or passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropSinkCounters {
    /// Tagged packets, dropped.
    pub tagged: u64,
    /// Their bytes (without FCS), as the interface received them (outer headers included).
    pub tagged_bytes: u64,
    /// Everything else, left to the kernel.
    pub passed: u64,
}

/// The sink program, attached to one interface; dropping it (or the process dying) detaches it.
pub struct DropSink(Attached);

impl DropSink {
    /// The program's name in the kernel.
    pub const NAME: &'static str = "ecmpfwd_sink";

    /// Loads the program and attaches it to `ifname` in `mode`. An interface that already has
    /// an XDP program is an error naming it (the sink never replaces one).
    pub fn attach(ifname: &str, mode: AttachMode) -> Result<Self, XdpError> {
        linked::load_attached!(
            skel::SinkSkelBuilder,
            ecmpfwd_sink,
            ifname,
            mode,
            "the sink program"
        )
        .map(Self)
    }

    /// The counts so far, summed over CPUs.
    pub fn counters(&self) -> Result<DropSinkCounters, XdpError> {
        let [tagged, tagged_bytes, passed] = self.0.counters()?;
        Ok(DropSinkCounters {
            tagged,
            tagged_bytes,
            passed,
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

impl fmt::Debug for DropSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropSink")
            .field("ifname", &self.0.ifname)
            .field("mode", &self.0.mode)
            .finish()
    }
}
