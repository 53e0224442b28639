//! The state of an open device shared by its [`DpdkDevice`](super::DpdkDevice) handles and its
//! [`DpdkPort`](super::DpdkPort)s; the last one to go stops and closes the device.

use std::sync::{Arc, Mutex};

use ecmp_dpdk_sys as sys;

use super::{Mempool, RSS_KEY_LEN};

pub(crate) struct DeviceInner {
    pub(crate) port_id: u16,
    /// The bus device behind the port, unplugged after close so that the spec can be opened
    /// again in this process.
    pub(crate) device: *mut sys::rte_device,
    pub(crate) spec: String,
    pub(crate) queues: u16,
    pub(crate) rss: bool,
    /// Which queues' ports have been handed out (one owner per queue).
    pub(crate) taken: Mutex<Vec<bool>>,
    /// Serialises control-path calls (stats, link): DPDK's ethdev control functions are not
    /// thread-safe against each other, though they are against the data path's bursts.
    pub(crate) control: Mutex<()>,
    /// The RSS key ethdev's copy of the configuration points to.
    pub(crate) _rss_key: Box<[u8; RSS_KEY_LEN]>,
    /// The rx queues' pools: they must outlive the device (its rx rings hold their mbufs until
    /// it is closed, in `Drop`, before these are released).
    pub(crate) _pools: Vec<Arc<Mempool>>,
}

// SAFETY: the inner state is a port id, a bus device pointer used only in `Drop`, immutable
// configuration, and mutex-guarded state; the DPDK calls made through it are either thread-safe
// (bursts on distinct queues) or serialised by `control`.
unsafe impl Send for DeviceInner {}
// SAFETY: as above.
unsafe impl Sync for DeviceInner {}

impl Drop for DeviceInner {
    fn drop(&mut self) {
        // Drivers reclaim sent mbufs inside their tx bursts; one empty burst per queue gives
        // back what was sent since the last one. Most drivers free their tx rings at close
        // anyway, but net_af_xdp (DPDK 22.11) frees neither its completion ring nor its fill
        // ring then: after this burst, only the fill ring's mbufs stay out.
        let mut none = [std::ptr::null_mut::<sys::rte_mbuf>(); 1];
        for q in 0..self.queues {
            // SAFETY: the device is started and no port uses its queues any more (this is the
            // last handle); a burst of zero frames reads no pointer from `none`.
            unsafe { sys::ecmp_rte_eth_tx_burst(self.port_id, q, none.as_mut_ptr(), 0) };
        }
        // SAFETY: the last handle to the device is going, so no port polls its queues any
        // more; stopping and closing frees the mbufs its rings hold back to their pools,
        // which are released only after this (field drop order follows `drop`).
        unsafe {
            sys::rte_eth_dev_stop(self.port_id);
            sys::rte_eth_dev_close(self.port_id);
        }
        if !self.device.is_null() {
            // SAFETY: the bus device outlives its closed port until removed, here, once; a
            // driver whose close already released the port finds nothing more to free.
            unsafe { sys::rte_dev_remove(self.device) };
        }
    }
}
