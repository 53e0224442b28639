//! The seam between the pipeline and I/O: frames and ports.
//!
//! The pipeline never performs I/O itself (rule 2 in ARCHITECTURE.md); it moves frame handles
//! between bursts. A port implementation (here or in `ecmp-io`) owns the buffers behind its frames.
//! Frames are moved, never copied, between the rx burst, the per-port tx bursts and the free list,
//! so a frame that a port refuses to send is always handed back through [`Port::release`].

use arrayvec::ArrayVec;

/// Packets taken from a port per `rx_burst` call. DPDK l3fwd and VPP both settle on 32..64.
pub const BURST: usize = 32;

/// A fixed-capacity batch of frames; never allocates.
pub type Burst<F> = ArrayVec<F, BURST>;

/// Index of a port within a worker's port list (also the `port` of a next hop).
pub type PortId = u16;

/// One packet buffer with headroom in front of the packet data.
///
/// `data()` is the packet as it currently stands (starting at the Ethernet header). Encapsulation
/// grows the packet at the front with [`Frame::push_front`]; decapsulation or stripping an Ethernet
/// header shrinks it with [`Frame::pull_front`].
pub trait Frame {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Bytes available in front of the packet for `push_front`.
    fn headroom(&self) -> usize;
    /// Grows the packet by `n` bytes at the front. Returns false (and changes nothing) when the
    /// headroom is smaller than `n`.
    fn push_front(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front. Returns false (and changes nothing) when the packet is
    /// shorter than `n`.
    fn pull_front(&mut self, n: usize) -> bool;
    /// Shortens the packet to `len` bytes (no-op when already shorter).
    fn truncate(&mut self, len: usize);
}

/// The packet window of a frame: `len` bytes starting `start` bytes into its buffer. The window
/// arithmetic every frame type shares (the buffers differ, the rules do not). Public so frame
/// types outside this crate (AF_XDP's UMEM frames) keep the same rules.
pub mod window {
    /// Grows the window by `n` bytes at the front; false (nothing changed) past the buffer start.
    #[inline]
    pub fn push_front(start: &mut u16, len: &mut u16, n: usize) -> bool {
        match u16::try_from(n) {
            Ok(n) if n <= *start => {
                *start -= n;
                *len += n;
                true
            }
            _ => false,
        }
    }

    /// Shrinks the window by `n` bytes at the front; false (nothing changed) when shorter.
    #[inline]
    pub fn pull_front(start: &mut u16, len: &mut u16, n: usize) -> bool {
        match u16::try_from(n) {
            Ok(n) if n <= *len => {
                *start += n;
                *len -= n;
                true
            }
            _ => false,
        }
    }

    /// Shortens the window to `new_len` bytes (no-op when already shorter).
    #[inline]
    pub fn truncate(len: &mut u16, new_len: usize) {
        if new_len < usize::from(*len) {
            // Smaller than a u16 value, so it fits.
            *len = new_len as u16;
        }
    }
}

/// A source and sink of frames, polled by exactly one worker.
///
/// A port accepts in `tx_burst` and `release` any frame received by a port of the same type in
/// the same worker (sharing the buffer memory, or copying when it must).
pub trait Port {
    /// The frame handle this port produces and consumes.
    type Frame: Frame;

    /// Appends up to `out.remaining_capacity()` received frames to `out`; returns how many.
    fn rx_burst(&mut self, out: &mut Burst<Self::Frame>) -> usize;

    /// Queues frames from the front of `frames` for transmission and removes those it accepted;
    /// frames it could not take stay in `frames` (the caller releases or retries them).
    /// Returns how many were accepted.
    fn tx_burst(&mut self, frames: &mut Burst<Self::Frame>) -> usize;

    /// Returns a frame that will not be sent to its buffer pool.
    fn release(&mut self, frame: Self::Frame);

    /// Pushes queued transmissions out and reaps completions (e.g. an AF_XDP wakeup); called once
    /// per poll loop iteration and on the tx drain timer, never per packet.
    fn flush(&mut self);
}
