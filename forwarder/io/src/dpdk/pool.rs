//! [`Mempool`]: a DPDK mbuf pool, the packet memory of one worker's DPDK ports.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use ecmp_dpdk_sys as sys;

use super::eal::{Eal, rte_errno, strerror};
use super::{DpdkError, DpdkFrame};

/// Sizes of a [`Mempool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Mbufs in the pool; DPDK's pools are most memory-efficient at 2^n - 1.
    pub mbufs: u32,
    /// Mbufs each lcore keeps in its private cache (0: none).
    pub cache: u32,
    /// Bytes of buffer per mbuf: headroom plus the largest frame received.
    pub data_room: u16,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            mbufs: 8191,
            cache: 256,
            data_room: sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
        }
    }
}

/// The headroom DPDK gives a fresh or received mbuf (`RTE_PKTMBUF_HEADROOM`, fixed when DPDK
/// was built).
pub fn default_headroom() -> usize {
    // SAFETY: returns a compile-time constant of the DPDK build.
    usize::from(unsafe { sys::ecmp_rte_pktmbuf_headroom_default() })
}

/// Pool names must be unique in the process (DPDK keeps them in a global list); the caller's
/// label is kept for messages only.
static NEXT_POOL: AtomicU32 = AtomicU32::new(0);

/// A DPDK mbuf pool. Thread-safe (DPDK's ring-based pools are multi-producer,
/// multi-consumer), so one worker's ports and the control thread may share it.
///
/// Dropping it frees the pool only when no mbuf is out: a pool with mbufs still in use (a
/// frame leaked, or a device still holding rx buffers) is left allocated rather than freed
/// under them.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<sys::rte_mempool>,
    label: String,
    config: PoolConfig,
}

// SAFETY: an rte_mempool is built for concurrent use from any thread (its default ops are
// multi-producer, multi-consumer rings; per-lcore caches are keyed by the calling thread's
// lcore id), and `Mempool` only calls its thread-safe functions.
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of mbufs on the calling thread's NUMA socket. `label` names it in errors.
    pub fn create(_eal: &Eal, label: &str, config: &PoolConfig) -> Result<Self, DpdkError> {
        if config.mbufs == 0 {
            return Err(DpdkError::Config(format!("mbuf pool {label}: 0 mbufs")));
        }
        let name = format!("ecmp{}", NEXT_POOL.fetch_add(1, Ordering::Relaxed));
        let cname = CString::new(name).map_err(|_| DpdkError::NulInArgument {
            arg: label.to_owned(),
        })?;
        // SAFETY: the EAL is initialised (`_eal`); `cname` is a valid C string for the call,
        // which copies it.
        let ptr = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                config.mbufs,
                config.cache,
                0,
                config.data_room,
                sys::rte_socket_id() as i32,
            )
        };
        let Some(ptr) = NonNull::new(ptr) else {
            let errno = rte_errno();
            return Err(match errno {
                libc::ENOMEM | libc::ENOSPC => DpdkError::NoMemory {
                    what: format!("mbuf pool {label} ({} mbufs)", config.mbufs),
                    message: strerror(errno),
                },
                _ => DpdkError::Config(format!(
                    "mbuf pool {label} ({} mbufs, cache {}, data room {}): {}",
                    config.mbufs,
                    config.cache,
                    config.data_room,
                    strerror(errno)
                )),
            });
        };
        Ok(Self {
            ptr,
            label: label.to_owned(),
            config: *config,
        })
    }

    /// The label given at creation.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The sizes it was created with.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Largest packet an mbuf holds after the default headroom.
    pub fn max_packet(&self) -> usize {
        usize::from(self.config.data_room).saturating_sub(default_headroom())
    }

    /// Mbufs free in the pool (including those in the per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive (owned by self); the count only reads.
        unsafe { sys::ecmp_rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs out of the pool: held by devices' rx rings, in flight in tx rings, or in frames.
    pub fn in_use(&self) -> u32 {
        // SAFETY: as in `available`.
        unsafe { sys::ecmp_rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// An empty frame (length 0, default headroom), or `None` when the pool is empty.
    pub fn alloc(&self) -> Option<DpdkFrame> {
        // SAFETY: the pool is alive; a non-null result is a fresh single-segment mbuf that
        // nothing else references.
        let m = unsafe { sys::ecmp_rte_pktmbuf_alloc(self.ptr.as_ptr()) };
        // SAFETY: as above: the mbuf is exclusively ours.
        NonNull::new(m).map(|m| unsafe { DpdkFrame::from_raw(m) })
    }

    /// A frame holding a copy of `packet` (for tests, replay and generators: the edges where
    /// packets are copied in).
    pub fn frame_from(&self, packet: &[u8]) -> Result<DpdkFrame, ecmp_port::PortError> {
        let max = self.max_packet();
        if packet.len() > max {
            return Err(ecmp_port::PortError::PacketTooLarge {
                len: packet.len(),
                max,
            });
        }
        let mut frame = self.alloc().ok_or(ecmp_port::PortError::PoolExhausted {
            capacity: self.config.mbufs as usize,
        })?;
        if !frame.append(packet.len()) {
            // A fresh mbuf has `max_packet` bytes of tailroom, checked above.
            frame.free();
            return Err(ecmp_port::PortError::PacketTooLarge {
                len: packet.len(),
                max,
            });
        }
        frame.data_mut_raw().copy_from_slice(packet);
        Ok(frame)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        if self.in_use() == 0 {
            // SAFETY: no mbuf of the pool is out, so nothing can reach its memory any more;
            // the pool is not used after this.
            unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
        }
    }
}
