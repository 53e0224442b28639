//! The error type of the frame/port seam: what building frames by hand can run into.
//!
//! Hot-path calls (`rx_burst`, `tx_burst`) never return errors, per the [`Port`](crate::Port)
//! trait; these come only from loading packets into frames (tests, benchmarks, replay).

/// Errors of loading packets into frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The frame pool had no free buffer.
    #[error("frame pool exhausted: all {capacity} frames are in use")]
    PoolExhausted {
        /// Number of frames the pool owns.
        capacity: usize,
    },
    /// A packet does not fit in a frame after the headroom.
    #[error("packet of {len} bytes does not fit a frame (at most {max} bytes)")]
    PacketTooLarge {
        /// Length of the packet.
        len: usize,
        /// Largest packet a frame holds.
        max: usize,
    },
}
