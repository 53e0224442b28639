//! Ports for ecmpfwd: the I/O side of the [`Port`](crate::port::Port) seam.
//!
//! - [`memory`]: a per-worker [`FramePool`](memory::FramePool) of preallocated, recycled buffers,
//!   [`MemFrame`](memory::MemFrame), and [`MemoryPort`](memory::MemoryPort) for tests and
//!   benchmarks (inject or replay packets in, collect or count what was sent).
//! - [`pcap`]: a classic libpcap reader and writer and [`PcapPort`](pcap::PcapPort) (rx from one
//!   capture, tx appended to another).
//! - [`fault`]: [`FaultPort`](fault::FaultPort), wrapping any port to drop, truncate, or corrupt
//!   received frames and to refuse transmissions, deterministically from a seed.
//!
//! Invariants every port here keeps:
//! - A frame is owned by exactly one place at a time (a pool free list, a port queue, or the
//!   caller's burst); frames move, their bytes are copied only at the edges (inject, pcap).
//! - `tx_burst` takes frames from the front of the burst only, and a frame it refuses stays in the
//!   burst untouched, so the caller can always release or retry it.
//! - After construction, `rx_burst`, `tx_burst`, `release`, and `flush` never allocate: every
//!   buffer and queue is sized up front. Pool exhaustion makes `rx_burst` return fewer frames; it
//!   never panics.
//!
//! - [`port`]: the [`Frame`](port::Frame) and [`Port`](port::Port) traits the pipeline is generic
//!   over, and the burst type.
//! - [`hint`]: a software prefetch for the pipeline.
//! - [`alloc_count`]: a counting global allocator for no-allocation tests.
//!
//! This is the one crate of the workspace that may use `unsafe` (AF_XDP and DPDK ports need it);
//! each `unsafe` block is allowed module by module and carries a `// SAFETY:` comment.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc_count;
pub mod error;
pub mod fault;
pub mod hint;
pub mod memory;
pub mod netlink;
pub mod packet;
pub mod pcap;
pub mod port;
pub mod xdp;

pub use error::IoError;

/// Per-port packet and byte counters, kept by the port itself (plain fields: one worker owns the
/// port, so there is nothing to synchronise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames handed out by `rx_burst`.
    pub rx_packets: u64,
    /// Bytes of the frames handed out by `rx_burst`.
    pub rx_bytes: u64,
    /// `rx_burst` calls cut short because the frame pool had no free buffer.
    pub rx_no_buffer: u64,
    /// Frames accepted by `tx_burst`.
    pub tx_packets: u64,
    /// Bytes of the frames accepted by `tx_burst`.
    pub tx_bytes: u64,
    /// Frames `tx_burst` left in the caller's burst.
    pub tx_refused: u64,
}
