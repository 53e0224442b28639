//! Why `ecmpfwd run` on DPDK ports could not start or stopped: one variant per step of the
//! start-up order in the module doc, each naming the config file, line and port where it has
//! one. The text is the operator's message; DPDK's own error is its `source`.

use std::io;

use ecmp_control::control::ControlError;
use ecmp_dataplane::error::DataplaneError;
use ecmp_io::dpdk::DpdkError;

use crate::afxdp::AfXdpError;
use crate::setup::SetupError;

/// Errors of the DPDK runtime.
#[derive(Debug, thiserror::Error)]
pub enum DpdkRunError {
    /// The config's ports or workers cannot run as configured.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A port of the config is not a DPDK port.
    #[error(
        "{origin}:{line}: port {port:?}: `ecmpfwd run` with DPDK ports cannot mix in {kind} ports"
    )]
    MixedPorts {
        /// The config file.
        origin: String,
        /// The port's line.
        line: usize,
        /// The port's name.
        port: String,
        /// What kind it is instead.
        kind: &'static str,
    },
    /// The EAL refused `[dpdk]`'s arguments (or had not enough memory).
    #[error("{origin}: [dpdk]: initialising the DPDK EAL with {args:?}")]
    Eal {
        /// The config file.
        origin: String,
        /// The EAL arguments built from `[dpdk]`.
        args: Vec<String>,
        /// What DPDK said.
        source: DpdkError,
    },
    /// A worker's mbuf pool could not be created.
    #[error("{origin}:{line}: worker on core {core}: creating its mbuf pool")]
    Pool {
        /// The config file.
        origin: String,
        /// The worker's line.
        line: usize,
        /// The worker's core.
        core: usize,
        /// What DPDK said.
        source: DpdkError,
    },
    /// A port's device could not be opened (no such device, PMD missing, too few queues, not
    /// enough headroom or memory).
    #[error("{origin}:{line}: port {port:?}: opening DPDK device {device:?}")]
    Open {
        /// The config file.
        origin: String,
        /// The port's line.
        line: usize,
        /// The port's name.
        port: String,
        /// The device spec.
        device: String,
        /// What DPDK said.
        source: DpdkError,
    },
    /// A worker's queue of a port was not handed out (it does not exist, or another worker
    /// already polls it).
    #[error("{origin}:{line}: worker on core {core}: port {port:?} has no free queue {queue}")]
    NoQueue {
        /// The config file.
        origin: String,
        /// The worker's line.
        line: usize,
        /// The worker's core.
        core: usize,
        /// The port's name.
        port: String,
        /// The queue.
        queue: u16,
    },
    /// The control side (builder, sockets, control thread) could not start; shared with the
    /// AF_XDP runtime, whose errors name the config item.
    #[error(transparent)]
    Serve(#[from] AfXdpError),
    /// A worker thread could not be registered as a DPDK lcore.
    #[error("registering the worker thread with the DPDK EAL")]
    Register(#[source] DpdkError),
    /// A worker's pipeline could not be built.
    #[error("building the worker's pipeline")]
    Pipeline(#[source] DataplaneError),
    /// A worker thread could not be spawned.
    #[error("starting a worker thread")]
    Spawn(#[source] io::Error),
    /// A worker failed to start (the cause follows).
    #[error("{origin}:{line}: worker on core {core}")]
    WorkerStart {
        /// The config file.
        origin: String,
        /// The worker's line.
        line: usize,
        /// The worker's core.
        core: usize,
        /// Why.
        source: Box<DpdkRunError>,
    },
    /// A worker did not report ready in time.
    #[error("did not start within {0} s")]
    StartTimeout(u64),
    /// `[memory] hugepages = "require"` and a big table is not on hugetlb pages.
    #[error(transparent)]
    Memory(ecmp_mem::MemError),
    /// Installing the SIGHUP handler failed.
    #[error("installing the SIGHUP handler")]
    Signal(#[source] io::Error),
    /// The control thread failed.
    #[error("control thread")]
    Control(#[from] ControlError),
    /// A worker thread panicked.
    #[error("a worker thread panicked")]
    WorkerPanicked,
    /// A worker stopped with an error.
    #[error("a worker stopped")]
    WorkerStopped(#[source] Box<DpdkRunError>),
    /// After every worker stopped and every device closed, a pool still had mbufs out: a frame
    /// was leaked.
    #[error(
        "worker on core {core}: {in_use} mbuf(s) of its pool still in use after stop, more than \
         the {kept} net_af_xdp's fill rings may keep (a leak)"
    )]
    MbufLeak {
        /// The worker's core.
        core: usize,
        /// Mbufs not back in the pool.
        in_use: u32,
        /// Mbufs net_af_xdp devices took into their fill rings at start, which they do not
        /// give back at close (0 without such devices).
        kept: u32,
    },
}
