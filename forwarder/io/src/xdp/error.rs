//! Errors of the AF_XDP layer; every message names the interface (and queue) concerned.

use std::io;

/// Errors setting up XDP programs, UMEMs and AF_XDP sockets.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// No interface has this name (in the current network namespace).
    #[error("interface {ifname}: no such interface")]
    NoSuchInterface {
        /// The interface.
        ifname: String,
    },
    /// The queue id is not below the interface's number of rx queues.
    #[error("interface {ifname}: queue {queue} does not exist (it has {queues} rx queues)")]
    NoSuchQueue {
        /// The interface.
        ifname: String,
        /// The queue asked for.
        queue: u32,
        /// Rx queues the interface has.
        queues: u32,
    },
    /// The kernel refused for lack of privileges.
    #[error("interface {ifname}: {what}: permission denied (needs CAP_NET_ADMIN and CAP_BPF)")]
    Permission {
        /// The interface.
        ifname: String,
        /// The step that failed.
        what: &'static str,
    },
    /// The driver cannot do the requested mode (zero-copy, or native XDP).
    #[error("interface {ifname} queue {queue}: the driver does not support {mode}")]
    Unsupported {
        /// The interface.
        ifname: String,
        /// The queue (0 for a program attachment).
        queue: u32,
        /// The mode refused, e.g. "zero-copy" or "driver-mode XDP".
        mode: &'static str,
    },
    /// The queue stayed busy (another socket is bound to it) through every retry.
    #[error("interface {ifname} queue {queue}: busy (another AF_XDP socket is bound to it)")]
    Busy {
        /// The interface.
        ifname: String,
        /// The queue.
        queue: u32,
    },
    /// Another XDP program, not a stale ecmpfwd one, is attached to the interface.
    #[error("interface {ifname}: XDP program {prog_id} ({prog_name}) is already attached{how}")]
    ForeignProgram {
        /// The interface.
        ifname: String,
        /// Id of the attached program.
        prog_id: u32,
        /// Its name.
        prog_name: String,
        /// Why it could not be replaced (empty, or e.g. " through a bpf_link of a live process").
        how: &'static str,
    },
    /// A socket asked for a copy mode other than the one its UMEM's sockets already use (the
    /// kernel makes every socket of a shared UMEM use the first socket's mode).
    #[error(
        "interface {ifname} queue {queue}: {requested} requested but the shared UMEM is in {actual} mode"
    )]
    ModeMismatch {
        /// The interface.
        ifname: String,
        /// The queue.
        queue: u32,
        /// The mode asked for.
        requested: &'static str,
        /// The mode the UMEM's sockets use.
        actual: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid AF_XDP configuration: {0}")]
    Config(String),
    /// The UMEM could not be mapped under the huge page policy (`require` without a pool).
    #[error("mapping the UMEM: {0}")]
    Memory(#[source] ecmp_mem::MemError),
    /// Any other failing system call.
    #[error("interface {ifname} queue {queue}: {what} failed")]
    Sys {
        /// The interface (empty for the UMEM, which belongs to no interface).
        ifname: String,
        /// The queue.
        queue: u32,
        /// The step that failed.
        what: &'static str,
        /// What the OS said.
        source: io::Error,
    },
    /// Loading the BPF object or using its maps failed.
    #[error("interface {ifname}: {what} failed")]
    Bpf {
        /// The interface.
        ifname: String,
        /// The step that failed.
        what: &'static str,
        /// What libbpf said.
        source: libbpf_rs::Error,
    },
}

impl XdpError {
    /// Maps an OS error of step `what` to the most specific variant.
    pub(crate) fn from_os(ifname: &str, queue: u32, what: &'static str, err: io::Error) -> Self {
        match err.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Self::Permission {
                ifname: ifname.to_owned(),
                what,
            },
            Some(libc::ENODEV) => Self::NoSuchInterface {
                ifname: ifname.to_owned(),
            },
            Some(libc::EBUSY) => Self::Busy {
                ifname: ifname.to_owned(),
                queue,
            },
            _ => Self::Sys {
                ifname: ifname.to_owned(),
                queue,
                what,
                source: err,
            },
        }
    }
}
