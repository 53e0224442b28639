//! Errors of the DPDK layer: every message names the device (as the port names it) or the EAL
//! step concerned, and the cause as DPDK reported it.

/// Errors initialising the EAL, creating mbuf pools and opening DPDK devices.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// The EAL was already initialised (or an initialisation was attempted) in this process;
    /// DPDK allows one per process.
    #[error("the DPDK EAL is already initialised in this process (it can be only once)")]
    AlreadyInitialised,
    /// A DPDK call was made before the EAL was initialised.
    #[error("the DPDK EAL is not initialised")]
    NotInitialised,
    /// An EAL argument or a device spec contains a NUL byte.
    #[error("DPDK argument {arg:?} contains a NUL byte")]
    NulInArgument {
        /// The argument as given.
        arg: String,
    },
    /// `rte_eal_init` failed for a reason other than memory.
    #[error("DPDK EAL initialisation failed with {args:?}: {message} (rte_errno {errno})")]
    Eal {
        /// The EAL arguments.
        args: Vec<String>,
        /// rte_errno after the failure.
        errno: i32,
        /// DPDK's description of it.
        message: String,
    },
    /// Not enough memory (EAL heap or huge pages) for the step named.
    #[error("not enough DPDK memory for {what}: {message} (raise [dpdk] memory or add huge pages)")]
    NoMemory {
        /// What needed it, e.g. "the EAL" or "mbuf pool worker0".
        what: String,
        /// DPDK's description of the failure.
        message: String,
    },
    /// No DPDK device has this name, and probing the spec created none.
    #[error("DPDK device {device:?}: no such device")]
    NoDevice {
        /// The device spec.
        device: String,
    },
    /// No poll-mode driver is loaded for the device (e.g. the PMD's package is not installed).
    #[error("DPDK device {device:?}: no poll-mode driver {driver:?} is loaded")]
    PmdMissing {
        /// The device spec.
        device: String,
        /// The driver its name asks for.
        driver: String,
    },
    /// A step of setting up or querying a device failed.
    #[error("DPDK device {device:?}: {what} failed: {message} (error {errno})")]
    Device {
        /// The device spec.
        device: String,
        /// The step.
        what: &'static str,
        /// The (positive) errno DPDK returned.
        errno: i32,
        /// DPDK's description of it.
        message: String,
    },
    /// The device has fewer queues than the port needs (one rx and one tx queue per worker).
    #[error("DPDK device {device:?}: {wanted} queues wanted, it has at most {rx} rx and {tx} tx")]
    TooFewQueues {
        /// The device spec.
        device: String,
        /// Queues needed.
        wanted: u16,
        /// Rx queues the device has.
        rx: u16,
        /// Tx queues the device has.
        tx: u16,
    },
    /// The mbufs' headroom cannot hold the longest encapsulation the pipeline pushes.
    #[error(
        "DPDK device {device:?}: mbuf headroom is {have} bytes, the pipeline needs {need} (RTE_PKTMBUF_HEADROOM)"
    )]
    Headroom {
        /// The device spec.
        device: String,
        /// Headroom of a received mbuf.
        have: usize,
        /// Longest encapsulation the pipeline can push.
        need: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid DPDK configuration: {0}")]
    Config(String),
}
