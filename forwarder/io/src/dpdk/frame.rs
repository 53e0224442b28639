//! [`DpdkFrame`]: a frame in a DPDK mbuf.

use std::fmt;
use std::ptr::NonNull;

use ecmp_dpdk_sys as sys;
use ecmp_port::Frame;

/// A packet in one DPDK mbuf, owned by this handle.
///
/// Invariants: the mbuf has one segment (ports drop chained mbufs at rx), `data_len ==
/// pkt_len`, `data_off + data_len <= buf_len`, and no one else holds it (DPDK handed it over at
/// rx or alloc and gets it back only at tx or free). So `data()` is always in bounds. Like the
/// other frames, no `Drop` hook: a frame must be sent or released (or its mbuf stays in use,
/// the leak signal the tests look for).
pub struct DpdkFrame {
    mbuf: NonNull<sys::rte_mbuf>,
}

// SAFETY: the frame owns its mbuf exclusively; an mbuf may be freed or sent from any thread
// (its pool is thread-safe), so moving the handle to another thread is sound.
unsafe impl Send for DpdkFrame {}

const _: () = assert!(size_of::<DpdkFrame>() == 8);

impl DpdkFrame {
    /// Wraps an mbuf.
    ///
    /// # Safety
    /// `mbuf` must be a valid single-segment mbuf, with `data_len == pkt_len`, that nothing
    /// else references.
    #[inline]
    pub(crate) unsafe fn from_raw(mbuf: NonNull<sys::rte_mbuf>) -> Self {
        Self { mbuf }
    }

    /// Gives up ownership of the mbuf (to a tx queue or a free call).
    #[inline]
    pub(crate) fn into_raw(self) -> *mut sys::rte_mbuf {
        self.mbuf.as_ptr()
    }

    #[inline]
    fn m(&self) -> &sys::rte_mbuf {
        // SAFETY: the mbuf is valid and exclusively ours (type invariant).
        unsafe { self.mbuf.as_ref() }
    }

    /// The mbuf, still owned by this frame (for handing a burst's pointers to DPDK, which
    /// takes ownership only of those it accepts).
    #[inline]
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.mbuf.as_ptr()
    }

    /// Returns the mbuf to its pool.
    #[inline]
    pub fn free(self) {
        // SAFETY: the mbuf is ours (type invariant) and `self` is consumed, so nothing refers
        // to it after this.
        unsafe { sys::ecmp_rte_pktmbuf_free(self.into_raw()) }
    }

    /// Grows the packet by `n` bytes at the end (exposing whatever the buffer held). False, and
    /// nothing changed, when the tailroom is smaller.
    #[inline]
    pub fn append(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: the mbuf is ours; rte_pktmbuf_append checks the tailroom and changes nothing
        // (returning NULL) when it is too small.
        !unsafe { sys::ecmp_rte_pktmbuf_append(self.mbuf.as_ptr(), n) }.is_null()
    }

    /// Bytes available after the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.m();
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    /// Address of the mbuf (its identity: a frame forwarded without a copy keeps it).
    #[inline]
    pub fn mbuf_addr(&self) -> usize {
        self.mbuf.as_ptr() as usize
    }

    /// The packet bytes, writable (also from `Frame::data_mut`; here for the pool's loader).
    #[inline]
    pub(crate) fn data_mut_raw(&mut self) -> &mut [u8] {
        let m = self.m();
        let (off, len) = (usize::from(m.data_off), usize::from(m.data_len));
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer (type
        // invariant), which only this frame references; `&mut self` makes the slice unique.
        unsafe { std::slice::from_raw_parts_mut(m.buf_addr.cast::<u8>().add(off), len) }
    }
}

impl Frame for DpdkFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        // Read the fields directly rather than through the C shim: the pipeline reads packet
        // data many times per packet, and a call across the FFI boundary cannot be inlined.
        let m = self.m();
        let (off, len) = (usize::from(m.data_off), usize::from(m.data_len));
        // SAFETY: as in `data_mut_raw`; shared borrow of self, shared slice.
        unsafe { std::slice::from_raw_parts(m.buf_addr.cast::<u8>().add(off), len) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.data_mut_raw()
    }

    #[inline]
    fn headroom(&self) -> usize {
        usize::from(self.m().data_off)
    }

    #[inline]
    fn push_front(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: the mbuf is ours; rte_pktmbuf_prepend checks the headroom and changes
        // nothing (returning NULL) when it is too small; it keeps pkt_len == data_len.
        !unsafe { sys::ecmp_rte_pktmbuf_prepend(self.mbuf.as_ptr(), n) }.is_null()
    }

    #[inline]
    fn pull_front(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: the mbuf is ours; rte_pktmbuf_adj checks the length and changes nothing
        // (returning NULL) when the segment is shorter than n.
        !unsafe { sys::ecmp_rte_pktmbuf_adj(self.mbuf.as_ptr(), n) }.is_null()
    }

    #[inline]
    fn truncate(&mut self, len: usize) {
        let cur = usize::from(self.m().data_len);
        if len < cur {
            // Smaller than data_len, a u16.
            let cut = (cur - len) as u16;
            // SAFETY: the mbuf is ours and has one segment holding `cut` <= data_len bytes,
            // so rte_pktmbuf_trim succeeds.
            let rc = unsafe { sys::ecmp_rte_pktmbuf_trim(self.mbuf.as_ptr(), cut) };
            debug_assert_eq!(rc, 0);
        }
    }
}

impl fmt::Debug for DpdkFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.m();
        f.debug_struct("DpdkFrame")
            .field("mbuf", &self.mbuf)
            .field("headroom", &m.data_off)
            .field("len", &m.data_len)
            .finish()
    }
}
