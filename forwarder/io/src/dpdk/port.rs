//! [`DpdkPort`]: a [`Port`] over one rx queue and one tx queue of a [`DpdkDevice`](super::DpdkDevice).

use std::ptr::NonNull;
use std::sync::Arc;

use ecmp_dpdk_sys as sys;
use ecmp_port::{BURST, Burst, Frame, Port, PortStats};

use super::DpdkFrame;
use super::inner::DeviceInner;

/// DPDK-specific counters of a [`DpdkPort`] (the generic ones are in [`PortStats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpdkPortStats {
    /// `rx_burst` calls that found the rx queue empty.
    pub rx_empty_polls: u64,
    /// Received packets dropped because they spanned several mbufs (larger than one mbuf's
    /// data room; the pipeline handles single-buffer frames only).
    pub rx_multi_segment: u64,
    /// Frames refused by the tx queue (also in `PortStats::tx_refused`), which the caller got
    /// back to release.
    pub tx_refused: u64,
}

/// A [`Port`] over queue `q` of a DPDK device: rx queue `q` and tx queue `q`, polled by one
/// worker. Frames are the mbufs themselves: received, rewritten in place and sent with no copy.
///
/// `Send` so it can be built on the set-up thread and moved to its worker; it is polled by that
/// one thread only (`&mut self`).
pub struct DpdkPort {
    /// Keeps the device started (and its pools alive) while this port polls it.
    _dev: Arc<DeviceInner>,
    port_id: u16,
    queue: u16,
    stats: PortStats,
    xstats: DpdkPortStats,
}

// SAFETY: the port holds a device handle (Send + Sync) and plain counters; DPDK allows a queue
// to be polled from any one thread at a time, which `&mut self` guarantees.
unsafe impl Send for DpdkPort {}

impl DpdkPort {
    pub(crate) fn new(dev: Arc<DeviceInner>, queue: u16) -> Self {
        Self {
            port_id: dev.port_id,
            _dev: dev,
            queue,
            stats: PortStats::default(),
            xstats: DpdkPortStats::default(),
        }
    }

    /// DPDK's port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The queue id (rx and tx).
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Generic port counters.
    pub fn stats(&self) -> PortStats {
        self.stats
    }

    /// DPDK-specific counters.
    pub fn dpdk_stats(&self) -> DpdkPortStats {
        self.xstats
    }

    /// Releases every frame of `frames` (one bulk free for the lot).
    #[inline]
    pub fn release_burst(&mut self, frames: &mut Burst<DpdkFrame>) {
        let mut bufs = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        let n = frames.len();
        for (slot, frame) in bufs.iter_mut().zip(frames.drain(..)) {
            *slot = frame.into_raw();
        }
        // SAFETY: the first `n` pointers are mbufs this caller owned (taken out of frames,
        // which are consumed); rte_pktmbuf_free_bulk returns each to its own pool.
        unsafe { sys::ecmp_rte_pktmbuf_free_bulk(bufs.as_mut_ptr(), n as u32) };
    }
}

impl Port for DpdkPort {
    type Frame = DpdkFrame;

    #[inline]
    fn rx_burst(&mut self, out: &mut Burst<DpdkFrame>) -> usize {
        let want = out.remaining_capacity();
        if want == 0 {
            return 0;
        }
        let mut bufs = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        // SAFETY: the device is started and alive (`dev`); this port is the queue's only poller;
        // `bufs` has room for `want` <= BURST pointers.
        let got = unsafe {
            sys::ecmp_rte_eth_rx_burst(self.port_id, self.queue, bufs.as_mut_ptr(), want as u16)
        };
        if got == 0 {
            self.xstats.rx_empty_polls += 1;
            return 0;
        }
        let mut added = 0;
        for &m in &bufs[..usize::from(got)] {
            let Some(m) = NonNull::new(m) else { continue };
            // SAFETY: rx_burst handed this mbuf to us; we read its header only.
            let (segs, len) = unsafe { (m.as_ref().nb_segs, m.as_ref().data_len) };
            if segs != 1 {
                self.xstats.rx_multi_segment += 1;
                // SAFETY: the chain is ours; free releases every segment.
                unsafe { sys::ecmp_rte_pktmbuf_free(m.as_ptr()) };
                continue;
            }
            self.stats.rx_bytes += u64::from(len);
            // SAFETY: a received single-segment mbuf (pkt_len == data_len) that only we hold.
            out.push(unsafe { DpdkFrame::from_raw(m) });
            added += 1;
        }
        self.stats.rx_packets += added as u64;
        added
    }

    #[inline]
    fn tx_burst(&mut self, frames: &mut Burst<DpdkFrame>) -> usize {
        let n = frames.len();
        if n == 0 {
            return 0;
        }
        let mut bufs = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        let mut bytes = [0u16; BURST];
        for (i, frame) in frames.iter().enumerate() {
            // Pointers are borrowed here; ownership passes to DPDK only for those it accepts.
            bufs[i] = frame.as_ptr();
            bytes[i] = frame.data().len() as u16;
        }
        // SAFETY: the device is started and alive; this port is the queue's only user; the
        // first n pointers are valid single-segment mbufs owned by `frames`. DPDK takes the
        // first `sent` and leaves the rest untouched.
        let sent = usize::from(unsafe {
            sys::ecmp_rte_eth_tx_burst(self.port_id, self.queue, bufs.as_mut_ptr(), n as u16)
        });
        for frame in frames.drain(..sent) {
            // DPDK owns these mbufs now (it frees them after transmission): forget the handles.
            let _ = frame.into_raw();
        }
        self.stats.tx_packets += sent as u64;
        self.stats.tx_bytes += bytes[..sent].iter().map(|&b| u64::from(b)).sum::<u64>();
        let refused = (n - sent) as u64;
        self.stats.tx_refused += refused;
        self.xstats.tx_refused += refused;
        sent
    }

    #[inline]
    fn release(&mut self, frame: DpdkFrame) {
        frame.free();
    }

    /// Nothing to push: `rte_eth_tx_burst` hands frames to the device at once, and drivers
    /// reclaim sent mbufs inside their own tx bursts.
    #[inline]
    fn flush(&mut self) {}
}

impl std::fmt::Debug for DpdkPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkPort")
            .field("port_id", &self.port_id)
            .field("queue", &self.queue)
            .field("stats", &self.stats)
            .finish()
    }
}
