//! The seam between ecmpfwd's pipeline and its I/O: frames, ports and bursts, plus the ports that
//! need no operating system (memory and fault-injecting) and the one CPU hint the data path needs.
//!
//! - [`Frame`], [`Port`], [`Burst`] (crate root, from `frame`): what the pipeline is generic over.
//!   The pipeline never performs I/O itself; it moves frame handles between bursts.
//! - [`window`]: the packet-window arithmetic (`push_front`, `pull_front`, `truncate`) every
//!   frame type shares, whatever owns its buffer (a heap pool here, a UMEM in `ecmp-io`).
//! - [`memory`]: a per-worker [`FramePool`](memory::FramePool) of preallocated, recycled buffers,
//!   [`MemFrame`](memory::MemFrame), and [`MemoryPort`](memory::MemoryPort) for tests and
//!   benchmarks (inject or replay packets in, collect or count what was sent).
//! - [`fault`]: [`FaultPort`](fault::FaultPort), wrapping any port to drop, truncate or corrupt
//!   received frames and to refuse transmissions, deterministically from a seed.
//! - [`hint`]: a software prefetch for the pipeline.
//! - [`alloc_count`]: a counting global allocator for no-allocation tests.
//!
//! Invariants every port keeps (those here and the real ones in `ecmp-io`):
//! - A frame is owned by exactly one place at a time (a pool free list, a port queue, or the
//!   caller's burst); frames move, their bytes are copied only at the edges (inject, pcap).
//! - `tx_burst` takes frames from the front of the burst only, and a frame it refuses stays in the
//!   burst untouched, so the caller can always release or retry it.
//! - After construction, `rx_burst`, `tx_burst`, `release`, and `flush` never allocate: every
//!   buffer and queue is sized up front. Pool exhaustion makes `rx_burst` return fewer frames; it
//!   never panics.
//!
//! Pure Rust with no system dependencies, so the pipeline, its tests, benches and fuzz targets
//! build without clang, libelf or libbpf. `unsafe` is allowed module by module (the prefetch and
//! the counting allocator only), each block with a `// SAFETY:` comment.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc_count;
pub mod error;
pub mod fault;
mod frame;
pub mod hint;
pub mod memory;

pub use error::PortError;
pub use frame::{BURST, Burst, Frame, Port, PortId, window};

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
