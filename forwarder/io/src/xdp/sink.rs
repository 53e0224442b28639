//! [`DropSink`]: loads `bpf/sink.bpf.c`, which counts and drops ecmpfwd-pktgen's tagged packets
//! in XDP, and attaches it to one interface through a bpf_link.
//!
//! The benchmarks put it on every backend so that what a throughput run measures is the
//! forwarder, not the backends' network stacks (which run on the sender's core over veth). The
//! counts are read from a per-CPU array: one map read per counter per CPU, no per-packet cost
//! on the reading side.

use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use super::XdpError;
use super::program::{AttachMode, link_create, occupied};
use super::sys;

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
pub struct DropSink {
    ifname: String,
    mode: AttachMode,
    // Declared first among the descriptors so it closes (and detaches) first.
    _link: OwnedFd,
    _prog: OwnedFd,
    counters: MapHandle,
}

impl DropSink {
    /// The program's name in the kernel.
    pub const NAME: &'static str = "ecmpfwd_sink";

    /// Loads the program and attaches it to `ifname` in `mode`. An interface that already has
    /// an XDP program is an error naming it (the sink never replaces one).
    pub fn attach(ifname: &str, mode: AttachMode) -> Result<Self, XdpError> {
        let ifindex = sys::ifindex(ifname)?;
        let err = |what| {
            move |source| XdpError::Bpf {
                ifname: ifname.to_owned(),
                what,
                source,
            }
        };
        let mut object = MaybeUninit::uninit();
        let open = skel::SinkSkelBuilder::default()
            .open(&mut object)
            .map_err(err("opening the BPF object"))?;
        let skel = open.load().map_err(|source| match source.kind() {
            libbpf_rs::ErrorKind::PermissionDenied => XdpError::Permission {
                ifname: ifname.to_owned(),
                what: "loading the sink program",
            },
            _ => XdpError::Bpf {
                ifname: ifname.to_owned(),
                what: "loading the sink program",
                source,
            },
        })?;
        let prog = skel
            .progs
            .ecmpfwd_sink
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| XdpError::from_os(ifname, 0, "duplicating the program fd", e))?;
        let counters =
            MapHandle::try_from(&skel.maps.counters).map_err(err("duplicating a map fd"))?;
        let link = match link_create(&prog, ifindex, mode) {
            Ok(link) => link,
            Err(libc::EOPNOTSUPP) if mode == AttachMode::Driver => {
                return Err(XdpError::Unsupported {
                    ifname: ifname.to_owned(),
                    queue: 0,
                    mode: "driver-mode XDP",
                });
            }
            Err(errno @ (libc::EBUSY | libc::EEXIST)) => {
                return Err(occupied(ifname, ifindex, errno));
            }
            Err(errno) => {
                return Err(XdpError::from_os(
                    ifname,
                    0,
                    "attaching the sink program",
                    std::io::Error::from_raw_os_error(errno),
                ));
            }
        };
        Ok(Self {
            ifname: ifname.to_owned(),
            mode,
            _link: link,
            _prog: prog,
            counters,
        })
    }

    /// The counts so far, summed over CPUs.
    pub fn counters(&self) -> Result<DropSinkCounters, XdpError> {
        let mut values = [0u64; 3];
        for (idx, value) in values.iter_mut().enumerate() {
            let per_cpu = self
                .counters
                .lookup_percpu(&(idx as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| XdpError::Bpf {
                    ifname: self.ifname.clone(),
                    what: "reading the sink's counters",
                    source,
                })?
                .unwrap_or_default();
            *value = per_cpu
                .iter()
                .filter_map(|v| v.get(..8)?.try_into().ok())
                .map(u64::from_ne_bytes)
                .sum();
        }
        let [tagged, tagged_bytes, passed] = values;
        Ok(DropSinkCounters {
            tagged,
            tagged_bytes,
            passed,
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The attach mode.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }
}

impl fmt::Debug for DropSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropSink")
            .field("ifname", &self.ifname)
            .field("mode", &self.mode)
            .finish()
    }
}
