//! Why `ecmpfwd run` on AF_XDP ports could not start or stopped: one variant per step of the
//! start-up order in the module doc, each naming the config file, line and port where it has one.
//! The text of each variant is the operator's message; the cause (the kernel's, libbpf's or the
//! control plane's error) is its `source`, printed after it by the binary.

use std::io;
use std::path::PathBuf;

use ecmp_control::builder::BuildError;
use ecmp_control::control::ControlError;
use ecmp_control::socket::SocketError;
use ecmp_dataplane::error::DataplaneError;
use ecmp_io::netlink::NetlinkError;
use ecmp_io::xdp::{AttachMode, XdpError};
use ecmp_proto::ProtoError;

use crate::setup::SetupError;

/// Errors of the AF_XDP runtime.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    /// The config's ports or workers cannot run as configured.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A port of the config is not an AF_XDP port.
    #[error(
        "{origin}:{line}: port {port:?}: `ecmpfwd run` with AF_XDP ports cannot mix in {kind} ports"
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
    /// The port's interface does not exist in this network namespace.
    #[error(
        "{origin}:{line}: port {port:?}: interface {iface:?} does not exist (in this network namespace)"
    )]
    NoInterface {
        /// The config file.
        origin: String,
        /// The port's line.
        line: usize,
        /// The port's name.
        port: String,
        /// The interface.
        iface: String,
    },
    /// The port's interface could not be read over netlink.
    #[error("{origin}:{line}: port {port:?}: interface {iface:?}")]
    Interface {
        /// The config file.
        origin: String,
        /// The port's line.
        line: usize,
        /// The port's name.
        port: String,
        /// The interface.
        iface: String,
        /// What netlink said.
        source: NetlinkError,
    },
    /// A worker polls a queue the interface does not have.
    #[error(
        "{origin}:{line}: port {port:?}: worker on core {core} polls queue {queue} but interface \
         {iface:?} has {rx_queues} rx queue(s) (0..{rx_queues})"
    )]
    NoQueue {
        /// The config file.
        origin: String,
        /// The worker's line.
        line: usize,
        /// The port's name.
        port: String,
        /// The worker's core.
        core: usize,
        /// The queue asked for.
        queue: u16,
        /// The interface.
        iface: String,
        /// Its rx queues.
        rx_queues: u32,
    },
    /// The port's interface is administratively or operationally down.
    #[error("{origin}:{line}: port {port:?}: interface {iface:?} is down (ip link set {iface} up)")]
    InterfaceDown {
        /// The config file.
        origin: String,
        /// The port's line.
        line: usize,
        /// The port's name.
        port: String,
        /// The interface.
        iface: String,
    },
    /// The XDP program could not be attached to the port's interface.
    #[error(
        "{origin}:{line}: port {port:?}: attaching the XDP program to {iface:?} in {mode:?} mode"
    )]
    Attach {
        /// The config file.
        origin: String,
        /// The port's line.
        line: usize,
        /// The port's name.
        port: String,
        /// The interface.
        iface: String,
        /// The attach mode.
        mode: AttachMode,
        /// What libbpf or the kernel said.
        source: XdpError,
    },
    /// The host's addresses could not be written into the program's pass list.
    #[error("port {port:?}: setting the host's addresses")]
    PassAddrs {
        /// The port's name.
        port: String,
        /// What the map update said.
        source: XdpError,
    },
    /// A configured prefix is not a valid prefix for the control plane.
    #[error("prefix {prefix}")]
    Prefix {
        /// The prefix as configured.
        prefix: String,
        /// Why it was refused.
        source: ProtoError,
    },
    /// The control plane's table builder refused the config's tables.
    #[error("{origin}")]
    Builder {
        /// The config file.
        origin: String,
        /// What the builder said.
        source: BuildError,
    },
    /// The kernel's neighbour table could not be subscribed to.
    #[error("subscribing to the kernel's neighbour table")]
    NeighbourWatch(#[source] NetlinkError),
    /// A socket's directory could not be created, or its group set.
    #[error("{}: {what}", path.display())]
    SocketFile {
        /// The socket or its directory.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The feed or control socket could not be bound.
    #[error("{origin}:{line}: [{section}] socket")]
    Socket {
        /// The config file.
        origin: String,
        /// The section's line.
        line: usize,
        /// `feed` or `control`.
        section: &'static str,
        /// Why binding failed.
        source: SocketError,
    },
    /// The control thread could not start or failed.
    #[error("control thread")]
    Control(#[from] ControlError),
    /// A worker's packet memory could not be allocated.
    #[error("allocating the UMEM")]
    Umem(#[source] XdpError),
    /// A worker's AF_XDP socket could not be opened.
    #[error("port {port:?}: opening an AF_XDP socket on queue {queue}")]
    OpenSocket {
        /// The port's name.
        port: String,
        /// The queue.
        queue: u32,
        /// What the kernel said.
        source: XdpError,
    },
    /// A worker's socket could not be registered with the XDP program.
    #[error("port {port:?}: registering the socket of queue {queue}")]
    Register {
        /// The port's name.
        port: String,
        /// The queue.
        queue: u32,
        /// What the map update said.
        source: XdpError,
    },
    /// A worker's pipeline could not be built.
    #[error("building the worker's pipeline")]
    Pipeline(#[source] DataplaneError),
    /// A worker thread could not be spawned.
    #[error("starting a worker thread")]
    Spawn(#[source] io::Error),
    /// A worker failed to start (the cause says which step).
    #[error("{origin}:{line}: worker on core {core}")]
    WorkerStart {
        /// The config file.
        origin: String,
        /// The worker's line.
        line: usize,
        /// The worker's core.
        core: usize,
        /// What failed.
        source: Box<AfXdpError>,
    },
    /// A worker did not report being ready within the bound.
    #[error("did not start within {0} s")]
    StartTimeout(u64),
    /// `[memory] hugepages = "require"` and a big table is not on hugetlb pages.
    #[error(transparent)]
    Memory(ecmp_mem::MemError),
    /// A worker thread panicked.
    #[error("a worker thread panicked")]
    WorkerPanicked,
    /// A worker stopped with an error while forwarding.
    #[error("a worker stopped")]
    WorkerStopped(#[source] Box<AfXdpError>),
    /// The SIGHUP handler (reload) could not be installed.
    #[error("installing the SIGHUP handler")]
    Signal(#[source] io::Error),
    /// The `[metrics]` listener could not be bound.
    #[error("{origin}:{line}: metrics.listen")]
    Metrics {
        /// The config file.
        origin: String,
        /// The `listen` key's line.
        line: usize,
        /// Why binding failed.
        source: ecmp_control::metrics::MetricsError,
    },
}
