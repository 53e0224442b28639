//! The four single-producer single-consumer rings an AF_XDP socket shares with the kernel.
//!
//! Each ring is a power-of-two array plus a producer and a consumer index that run freely (they
//! wrap at 2^32; `index & mask` is the slot). We own one end of each ring: the producer end of the
//! fill and tx rings, the consumer end of the rx and completion rings. The kernel's end is read
//! with acquire loads, ours published with release stores, and both are cached so the shared
//! cache lines are touched once per burst, not per packet.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// An AF_XDP descriptor (linux/if_xdp.h `struct xdp_desc`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct XdpDesc {
    pub(crate) addr: u64,
    pub(crate) len: u32,
    pub(crate) options: u32,
}

/// A mapping of a ring, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and no reference into the mapping
        // outlives the ring that owns this value.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Pointers into one mapped ring.
struct Raw<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    slots: NonNull<T>,
    mask: u32,
    size: u32,
    _map: Mapping,
}

impl<T> Raw<T> {
    /// Maps the ring of `size` slots at page offset `pgoff` of socket `fd`, laid out as `off`.
    fn map(fd: &OwnedFd, pgoff: u64, off: &libc::xdp_ring_offset, size: u32) -> io::Result<Self> {
        let len = off.desc as usize + size as usize * size_of::<T>();
        // SAFETY: a fresh shared mapping of the socket's ring; the kernel validates the offset
        // and the length against the ring it allocated for this socket.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        let map = Mapping { ptr: base, len };
        // SAFETY: the kernel-provided offsets lie inside the mapping (which is `len` bytes, from
        // the same offsets) and are aligned for their types (u32 indexes, 8-byte slots).
        unsafe {
            Ok(Self {
                producer: base.add(off.producer as usize).cast(),
                consumer: base.add(off.consumer as usize).cast(),
                flags: base.add(off.flags as usize).cast(),
                slots: base.add(off.desc as usize).cast(),
                mask: size - 1,
                size,
                _map: map,
            })
        }
    }

    #[inline]
    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping at a 4-byte aligned index the kernel shares.
        unsafe { self.producer.as_ref() }
    }

    #[inline]
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    #[inline]
    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }
    }

    #[inline]
    fn slot(&self, index: u32) -> *mut T {
        // SAFETY: `index & mask` is below `size`, the number of slots mapped.
        unsafe { self.slots.as_ptr().add((index & self.mask) as usize) }
    }
}

/// The end of a ring we produce into (fill, tx).
pub(crate) struct ProdRing<T> {
    raw: Raw<T>,
    /// Our next slot (published to the kernel by `submit`).
    cached_prod: u32,
    /// The kernel's consumer index plus the ring size, as last read: slots below it are free.
    cached_limit: u32,
}

impl<T: Copy> ProdRing<T> {
    /// Maps the producer end of a ring.
    pub(crate) fn map(
        fd: &OwnedFd,
        pgoff: u64,
        off: &libc::xdp_ring_offset,
        size: u32,
    ) -> io::Result<Self> {
        let raw = Raw::map(fd, pgoff, off, size)?;
        let cached_prod = raw.producer().load(Ordering::Relaxed);
        let cached_limit = raw.consumer().load(Ordering::Acquire).wrapping_add(size);
        Ok(Self {
            raw,
            cached_prod,
            cached_limit,
        })
    }

    /// Free slots, at least `want` if there are that many (re-reads the kernel's index only when
    /// the cached view has fewer).
    #[inline]
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_limit.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        self.cached_limit = self
            .raw
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.raw.size);
        self.cached_limit.wrapping_sub(self.cached_prod)
    }

    /// Writes `value` into the `i`-th slot after the producer index; the caller checked with
    /// `free` that the slot is free.
    #[inline]
    pub(crate) fn write(&mut self, i: u32, value: T) {
        debug_assert!(i < self.cached_limit.wrapping_sub(self.cached_prod));
        // SAFETY: the slot is inside the mapping and free (the kernel consumed it), so nobody
        // reads it until `submit` publishes it.
        unsafe { self.raw.slot(self.cached_prod.wrapping_add(i)).write(value) };
    }

    /// Publishes the next `n` written slots to the kernel.
    #[inline]
    pub(crate) fn submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.raw
            .producer()
            .store(self.cached_prod, Ordering::Release);
    }

    /// Entries published and not yet consumed by the kernel.
    #[inline]
    pub(crate) fn pending(&self) -> u32 {
        self.cached_prod
            .wrapping_sub(self.raw.consumer().load(Ordering::Acquire))
    }

    /// Whether the kernel asked to be woken up (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub(crate) fn needs_wakeup(&self) -> bool {
        self.raw.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// The end of a ring we consume from (rx, completion).
pub(crate) struct ConsRing<T> {
    raw: Raw<T>,
    /// Our next slot to read (published to the kernel by `release`).
    cached_cons: u32,
    /// The kernel's producer index as last read.
    cached_prod: u32,
}

impl<T: Copy> ConsRing<T> {
    /// Maps the consumer end of a ring.
    pub(crate) fn map(
        fd: &OwnedFd,
        pgoff: u64,
        off: &libc::xdp_ring_offset,
        size: u32,
    ) -> io::Result<Self> {
        let raw = Raw::map(fd, pgoff, off, size)?;
        let cached_cons = raw.consumer().load(Ordering::Relaxed);
        let cached_prod = raw.producer().load(Ordering::Acquire);
        Ok(Self {
            raw,
            cached_cons,
            cached_prod,
        })
    }

    /// Entries ready to read, at most `max` (re-reads the kernel's index only when the cached
    /// view has fewer than `max`).
    #[inline]
    pub(crate) fn peek(&mut self, max: u32) -> u32 {
        let mut ready = self.cached_prod.wrapping_sub(self.cached_cons);
        if ready < max {
            self.cached_prod = self.raw.producer().load(Ordering::Acquire);
            ready = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        ready.min(max)
    }

    /// The `i`-th entry after the consumer index; the caller checked with `peek` that it is
    /// ready.
    #[inline]
    pub(crate) fn read(&self, i: u32) -> T {
        debug_assert!(i < self.cached_prod.wrapping_sub(self.cached_cons));
        // SAFETY: the slot is inside the mapping and the kernel published it (acquire load in
        // `peek`) and will not touch it until `release` hands it back.
        unsafe { self.raw.slot(self.cached_cons.wrapping_add(i)).read() }
    }

    /// Hands the next `n` read slots back to the kernel.
    #[inline]
    pub(crate) fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.raw
            .consumer()
            .store(self.cached_cons, Ordering::Release);
    }
}
