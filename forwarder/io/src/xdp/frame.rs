//! A frame in a UMEM chunk.

use std::fmt;

use super::umem::FRAME_SIZE;
use ecmp_port::{Frame, window};

// Window offsets are stored as u16.
const _: () = assert!(FRAME_SIZE <= u16::MAX as usize);

/// A received (or built) packet in a chunk of a [`Umem`](super::Umem).
///
/// Invariant: `start + len <= FRAME_SIZE` and the chunk lies inside the UMEM that `base`
/// belongs to, so `data()` is always in bounds. The UMEM keeps its memory mapped while any frame
/// may point into it. Like `MemFrame`, there is no `Drop` hook: a frame must be sent or released.
pub struct XdpFrame {
    /// Base address of the owning UMEM's area (also identifies the UMEM).
    pub(crate) base: *mut u8,
    /// Offset of the chunk in the area.
    pub(crate) chunk: u32,
    /// Offset of the packet in the chunk.
    pub(crate) start: u16,
    /// Packet length.
    pub(crate) len: u16,
}

const _: () = assert!(size_of::<XdpFrame>() == 16);

impl XdpFrame {
    /// Builds a frame from a descriptor address (`chunk + offset`) and length given by the
    /// kernel, clamped so the window stays inside the chunk.
    #[inline]
    pub(crate) fn from_desc(base: *mut u8, addr: u64, len: u32) -> Self {
        let chunk = addr & !(FRAME_SIZE as u64 - 1);
        let start = (addr - chunk) as usize;
        let len = (len as usize).min(FRAME_SIZE - start);
        Self {
            base,
            chunk: chunk as u32,
            start: start as u16,
            len: len as u16,
        }
    }

    /// The descriptor address of the packet (`chunk + offset`), as a tx ring wants it.
    #[inline]
    pub(crate) fn addr(&self) -> u64 {
        u64::from(self.chunk) + u64::from(self.start)
    }

    /// Offset of the frame's chunk in its UMEM (the identity of the buffer: a frame forwarded
    /// without a copy keeps it).
    #[inline]
    pub fn chunk_addr(&self) -> u64 {
        u64::from(self.chunk)
    }

    /// Sets the packet length to `len` (growing into the tailroom exposes whatever bytes the
    /// chunk held). Returns false (and changes nothing) when `len` exceeds the room after the
    /// packet's start.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        if len > FRAME_SIZE - usize::from(self.start) {
            return false;
        }
        self.len = len as u16;
        true
    }

    /// Bytes available after the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        FRAME_SIZE - usize::from(self.start) - usize::from(self.len)
    }

    #[inline]
    fn window(&self) -> *mut u8 {
        // SAFETY: chunk + start is inside the UMEM area (type invariant).
        unsafe { self.base.add(self.chunk as usize + usize::from(self.start)) }
    }
}

impl Frame for XdpFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: the window is inside the mapped area (type invariant), and this frame is the
        // chunk's only owner: the kernel does not touch a chunk that is in the caller's hands.
        unsafe { std::slice::from_raw_parts(self.window(), usize::from(self.len)) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` makes this the only reference to the window.
        unsafe { std::slice::from_raw_parts_mut(self.window(), usize::from(self.len)) }
    }

    #[inline]
    fn headroom(&self) -> usize {
        usize::from(self.start)
    }

    #[inline]
    fn push_front(&mut self, n: usize) -> bool {
        window::push_front(&mut self.start, &mut self.len, n)
    }

    #[inline]
    fn pull_front(&mut self, n: usize) -> bool {
        window::pull_front(&mut self.start, &mut self.len, n)
    }

    #[inline]
    fn truncate(&mut self, len: usize) {
        window::truncate(&mut self.len, len);
    }
}

impl fmt::Debug for XdpFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpFrame")
            .field("chunk", &self.chunk)
            .field("headroom", &self.start)
            .field("len", &self.len)
            .finish()
    }
}
