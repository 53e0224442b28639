//! The packet memory of one worker, shared by all of its AF_XDP sockets.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::os::fd::RawFd;
use std::rc::Rc;

use ecmp_mem::{Backing, HugePages, Placement, Region};

use super::XdpError;

/// Bytes per UMEM chunk (one frame).
///
/// A page: zero-copy drivers accept chunks from 2048 bytes up to the page size, and a page-sized
/// chunk never straddles a page. After [`UMEM_HEADROOM`] and the kernel's own 256-byte XDP
/// headroom it leaves 3584 bytes for a packet, so a full 1500-byte MTU frame fits with room to
/// spare; 2048-byte chunks would leave 1536, barely a tagged 1500-byte frame. The cost is twice
/// the memory per frame, which is small next to the ring sizes (4096 frames = 16 MiB).
pub const FRAME_SIZE: usize = 4096;

/// Headroom registered with the UMEM: received packets start this far into their chunk (plus
/// the kernel's XDP headroom), so encapsulation can grow them in place with `push_front`.
pub const UMEM_HEADROOM: usize = 256;

/// Size of a [`Umem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Frames (chunks of [`FRAME_SIZE`] bytes); must cover every port's fill ring plus the
    /// frames in flight.
    pub frame_count: u32,
    /// How the area is backed ([`ecmp_mem::Region::map`]): `Auto` tries the hugetlb pool, then
    /// transparent huge pages; `Require` fails without the pool; `Off` keeps small pages.
    pub hugepages: HugePages,
}

impl Default for UmemConfig {
    fn default() -> Self {
        Self {
            frame_count: 4096,
            hugepages: HugePages::Auto,
        }
    }
}

/// State shared by a [`Umem`] handle and the ports using it.
pub(crate) struct UmemInner {
    /// The area; `Some` until drop decides whether it may be unmapped.
    area: Option<Region>,
    /// Its first byte (cached: frames are built from it per packet).
    base: *mut u8,
    frame_count: u32,
    /// Chunk addresses (offsets into the area) not in any ring and not in the caller's hands.
    /// Capacity `frame_count`, so pushes never allocate.
    pub(crate) free: RefCell<Vec<u64>>,
    /// Bound sockets using this UMEM; a new socket shares the UMEM through any of them.
    sockets: RefCell<Vec<RawFd>>,
    /// Whether the bound sockets run in zero-copy mode (meaningful while `sockets` is non-empty).
    zero_copy: Cell<bool>,
    /// Frames that were in a port's rings when it closed; the kernel dropped them with it.
    lost: Cell<u64>,
    /// Frames of another UMEM handed to this one (dropped: a caller bug).
    foreign: Cell<u64>,
}

impl UmemInner {
    /// Base address of the area, as frames store it.
    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.base
    }

    /// Bytes registered with the kernel.
    pub(crate) fn len(&self) -> usize {
        self.frame_count as usize * FRAME_SIZE
    }

    pub(crate) fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// Puts a chunk back on the free list (the capacity check keeps the no-allocation promise).
    #[inline]
    pub(crate) fn push_free(free: &mut Vec<u64>, chunk: u64, cap: u32) {
        if free.len() < cap as usize {
            free.push(chunk);
        }
    }

    pub(crate) fn count_foreign(&self) {
        self.foreign.set(self.foreign.get() + 1);
    }

    /// Any bound socket of this UMEM, and its mode.
    pub(crate) fn shared_socket(&self) -> Option<(RawFd, bool)> {
        self.sockets
            .borrow()
            .first()
            .map(|&fd| (fd, self.zero_copy.get()))
    }

    pub(crate) fn add_socket(&self, fd: RawFd, zero_copy: bool) {
        let mut sockets = self.sockets.borrow_mut();
        if sockets.is_empty() {
            self.zero_copy.set(zero_copy);
        }
        sockets.push(fd);
    }

    /// Forgets a closing socket and the `held` frames its rings took with them.
    pub(crate) fn remove_socket(&self, fd: RawFd, held: u32) {
        self.sockets.borrow_mut().retain(|&s| s != fd);
        self.lost.set(self.lost.get() + u64::from(held));
    }
}

impl Drop for UmemInner {
    fn drop(&mut self) {
        // Frames still in the caller's hands point into the area: keep it mapped rather than let
        // them dangle (only a caller that leaked frames gets here with any).
        let accounted = self.free.get_mut().len() as u64 + self.lost.get();
        if accounted < u64::from(self.frame_count) {
            std::mem::forget(self.area.take());
        }
        // Otherwise the region unmaps itself: no socket uses it any more (each port holds an
        // `Rc` to this value) and no frame points into it.
    }
}

/// A per-worker UMEM: `frame_count` chunks of [`FRAME_SIZE`] bytes and their free list.
/// Clones are handles to the same memory. `!Send`: build it on the worker thread.
#[derive(Clone)]
pub struct Umem {
    pub(crate) inner: Rc<UmemInner>,
}

impl Umem {
    /// Maps the memory (huge pages when asked and available) and puts every chunk on the free
    /// list. The kernel registration happens when the first [`XskPort`](super::XskPort) opens.
    pub fn new(config: UmemConfig) -> Result<Self, XdpError> {
        let frames = config.frame_count as usize;
        // Chunk addresses are stored as u32 in frames.
        if frames == 0 || frames * FRAME_SIZE > u32::MAX as usize {
            return Err(XdpError::Config(format!(
                "UMEM frame count {frames} must be between 1 and {}",
                u32::MAX as usize / FRAME_SIZE
            )));
        }
        let len = frames * FRAME_SIZE;
        let mut area = Region::map("umem", len, config.hugepages).map_err(XdpError::Memory)?;
        // Backed now, on the calling (worker) thread: the kernel registers the pages anyway,
        // and the driver then writes to memory on the worker's node.
        area.prefault();
        let mut free = Vec::with_capacity(frames);
        // Lowest addresses last, so the first frames handed out are at the start of the area.
        free.extend((0..frames as u64).rev().map(|i| i * FRAME_SIZE as u64));
        Ok(Self {
            inner: Rc::new(UmemInner {
                base: area.as_ptr(),
                area: Some(area),
                frame_count: config.frame_count,
                free: RefCell::new(free),
                sockets: RefCell::new(Vec::with_capacity(8)),
                zero_copy: Cell::new(false),
                lost: Cell::new(0),
                foreign: Cell::new(0),
            }),
        })
    }

    /// Number of frames.
    pub fn frame_count(&self) -> u32 {
        self.inner.frame_count
    }

    /// Frames on the free list.
    pub fn available(&self) -> usize {
        self.inner.free.borrow().len()
    }

    /// Frames not on the free list: in ports' rings (see
    /// [`XskPort::kernel_held`](super::XskPort::kernel_held)), in the caller's hands, lost with a
    /// closed port ([`Self::lost`]), or leaked.
    pub fn outstanding(&self) -> usize {
        self.inner.frame_count as usize - self.available()
    }

    /// Frames that were in a port's rings when that port closed (gone with the socket).
    pub fn lost(&self) -> u64 {
        self.inner.lost.get()
    }

    /// Frames of another UMEM released into this one (dropped; a caller bug).
    pub fn foreign_releases(&self) -> u64 {
        self.inner.foreign.get()
    }

    /// Where the area lives, to read back how the kernel backs it from another thread.
    pub fn placement(&self) -> Option<Placement> {
        self.inner.area.as_ref().map(|a| a.placement("umem"))
    }

    /// How the kernel backs the area (read back from /proc/self/smaps).
    pub fn backing(&self) -> Backing {
        self.inner
            .area
            .as_ref()
            .map_or(Backing::Unknown, Region::backing)
    }
}

impl fmt::Debug for Umem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Umem")
            .field("frame_count", &self.inner.frame_count)
            .field("available", &self.available())
            .field("hugepages", &self.backing().kind())
            .field("sockets", &self.inner.sockets.borrow().len())
            .field("lost", &self.lost())
            .finish()
    }
}

/// Where a packet built in userspace starts in its chunk: the same place the kernel puts a
/// received one (the registered headroom plus the kernel's 256-byte XDP headroom), so built and
/// received frames have the same headroom for encapsulation.
pub(crate) const BUILT_START: usize = UMEM_HEADROOM + 256;

impl Umem {
    /// An empty frame (packet of length 0, [`UMEM_HEADROOM`] + 256 bytes of headroom) from the
    /// free list, or `None` when it is empty. Grow it with
    /// [`XdpFrame::set_len`](super::XdpFrame::set_len) after writing the packet.
    #[inline]
    pub fn alloc(&self) -> Option<super::XdpFrame> {
        let chunk = self.inner.free.borrow_mut().pop()?;
        Some(super::XdpFrame {
            base: self.inner.base(),
            chunk: chunk as u32,
            start: BUILT_START as u16,
            len: 0,
        })
    }

    /// A frame holding a copy of `packet`.
    pub fn frame_from(&self, packet: &[u8]) -> Result<super::XdpFrame, XdpError> {
        let max = FRAME_SIZE - BUILT_START;
        if packet.len() > max {
            return Err(XdpError::Config(format!(
                "packet of {} bytes does not fit a frame (at most {max})",
                packet.len()
            )));
        }
        let mut frame = self.alloc().ok_or_else(|| {
            XdpError::Config(format!(
                "UMEM exhausted: all {} frames are in use",
                self.inner.frame_count
            ))
        })?;
        frame.set_len(packet.len());
        ecmp_port::Frame::data_mut(&mut frame).copy_from_slice(packet);
        Ok(frame)
    }

    /// Returns a frame to the free list (a frame of another UMEM is counted in
    /// [`Self::foreign_releases`] and dropped).
    #[inline]
    pub fn release(&self, frame: super::XdpFrame) {
        if frame.base != self.inner.base() {
            self.inner.count_foreign();
            return;
        }
        let mut free = self.inner.free.borrow_mut();
        UmemInner::push_free(&mut free, u64::from(frame.chunk), self.inner.frame_count);
    }
}
