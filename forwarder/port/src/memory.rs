//! In-memory frames and ports for tests and benchmarks.
//!
//! Invariants:
//! - A [`FramePool`] owns exactly `capacity` buffers of [`FRAME_SIZE`] bytes for its whole life;
//!   each is either on the pool's free list or inside exactly one [`MemFrame`]. So
//!   [`FramePool::outstanding`] is `capacity - free`, and a test that ends with
//!   `outstanding() == 0` proves every frame was sent and recycled or released.
//! - A `MemFrame`'s packet window `[start, start + len)` always lies inside its buffer; every
//!   method keeps that, so [`Frame::data`] never panics. A fresh frame starts at [`HEADROOM`].
//! - A `MemFrame` has no `Drop` hook: dropping one instead of releasing it frees its buffer and
//!   leaves `outstanding()` raised for good. That is the leak signal, on purpose (returning buffers
//!   on drop would hide the leak and cost a reference-count update per frame).
//! - No allocation once built: buffers are recycled through the free list (LIFO, so the next rx
//!   reuses the buffer that is warm in cache), and the free list and every [`MemoryPort`] queue are
//!   reserved to the pool's capacity, which bounds how many frames can ever be queued.
//! - A pool is shared by the ports of one worker through cheap handles (`Rc<RefCell<_>>`); it is
//!   `!Send`, so build it on the worker thread. The `RefCell` is borrowed once per burst (once per
//!   frame only in `release`, as the `Port` trait dictates) and never held across a call out.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Burst, Frame, Port, window};

use crate::{PortError, PortStats};

/// Bytes in one frame buffer (headroom included).
pub const FRAME_SIZE: usize = 2048;
/// Bytes reserved in front of a received packet for encapsulation headers.
pub const HEADROOM: usize = 256;
/// Largest packet a frame holds when it starts at [`HEADROOM`].
pub const MAX_PACKET: usize = FRAME_SIZE - HEADROOM;

// Offsets are stored as u16 to keep a frame handle at 16 bytes (cheap to move through bursts).
const _: () = assert!(FRAME_SIZE <= u16::MAX as usize && HEADROOM < FRAME_SIZE);

type Buf = Box<[u8; FRAME_SIZE]>;

/// Distinguishes pools so a frame released to the wrong pool is caught instead of silently
/// corrupting both pools' accounting.
static NEXT_POOL_ID: AtomicU32 = AtomicU32::new(1);

/// A packet buffer from a [`FramePool`]; the packet is `data()`, with headroom in front of it.
pub struct MemFrame {
    buf: Buf,
    start: u16,
    len: u16,
    pool: u32,
}

const _: () = assert!(size_of::<MemFrame>() == 16);

impl MemFrame {
    /// Bytes available after the packet (the packet can grow there only by a fresh copy).
    #[inline]
    pub fn tailroom(&self) -> usize {
        FRAME_SIZE - usize::from(self.start) - usize::from(self.len)
    }

    /// Resets the window to an empty packet at [`HEADROOM`].
    #[inline]
    fn reset(&mut self) {
        self.start = HEADROOM as u16;
        self.len = 0;
    }

    /// Replaces the packet with a copy of `packet`, starting at [`HEADROOM`].
    #[inline]
    fn load(&mut self, packet: &[u8]) -> Result<(), PortError> {
        let len = packet.len();
        let dst = self
            .buf
            .get_mut(HEADROOM..HEADROOM + len)
            .ok_or(PortError::PacketTooLarge {
                len,
                max: MAX_PACKET,
            })?;
        dst.copy_from_slice(packet);
        self.start = HEADROOM as u16;
        // `get_mut` succeeded, so len <= MAX_PACKET < u16::MAX.
        self.len = len as u16;
        Ok(())
    }

    /// The whole buffer behind the packet window, for readers that fill a frame in place (the
    /// pcap and AF_PACKET ports of `ecmp-io`).
    #[inline]
    pub fn payload_area(&mut self) -> &mut [u8] {
        &mut self.buf[HEADROOM..]
    }

    /// Sets the packet to the first `len` bytes written through [`Self::payload_area`] (callers
    /// never wrote more than that area holds; clamped anyway so the window stays in the buffer).
    #[inline]
    pub fn set_loaded_len(&mut self, len: usize) {
        debug_assert!(len <= MAX_PACKET);
        self.start = HEADROOM as u16;
        self.len = len.min(MAX_PACKET) as u16;
    }
}

impl Frame for MemFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        let start = usize::from(self.start);
        &self.buf[start..start + usize::from(self.len)]
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.start);
        &mut self.buf[start..start + usize::from(self.len)]
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

impl fmt::Debug for MemFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFrame")
            .field("pool", &self.pool)
            .field("headroom", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

/// Counters of a [`FramePool`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Allocation attempts that found the pool empty.
    pub alloc_failures: u64,
    /// Frames from another pool released here (dropped, a bug in the caller).
    pub foreign_releases: u64,
}

struct PoolInner {
    free: Vec<Buf>,
    capacity: usize,
    id: u32,
    stats: PoolStats,
}

impl PoolInner {
    #[inline]
    fn alloc(&mut self) -> Option<MemFrame> {
        match self.free.pop() {
            Some(buf) => {
                let mut frame = MemFrame {
                    buf,
                    start: 0,
                    len: 0,
                    pool: self.id,
                };
                frame.reset();
                Some(frame)
            }
            None => {
                self.stats.alloc_failures += 1;
                None
            }
        }
    }

    #[inline]
    fn release(&mut self, frame: MemFrame) {
        // The capacity check guards the no-allocation promise even if ids were ever reused.
        if frame.pool == self.id && self.free.len() < self.capacity {
            self.free.push(frame.buf);
        } else {
            self.stats.foreign_releases += 1;
        }
    }
}

/// A per-worker pool of preallocated frame buffers; clones are handles to the same pool.
#[derive(Clone)]
pub struct FramePool {
    inner: Rc<RefCell<PoolInner>>,
}

impl FramePool {
    /// Allocates `capacity` buffers of [`FRAME_SIZE`] bytes up front.
    pub fn new(capacity: usize) -> Self {
        let mut free = Vec::with_capacity(capacity);
        free.extend((0..capacity).map(|_| Box::new([0u8; FRAME_SIZE])));
        let inner = PoolInner {
            free,
            capacity,
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            stats: PoolStats::default(),
        };
        Self {
            inner: Rc::new(RefCell::new(inner)),
        }
    }

    /// Number of buffers the pool owns.
    pub fn capacity(&self) -> usize {
        self.inner.borrow().capacity
    }

    /// Buffers on the free list.
    pub fn available(&self) -> usize {
        self.inner.borrow().free.len()
    }

    /// Frames handed out and not yet returned (queued in ports, in flight, or leaked).
    pub fn outstanding(&self) -> usize {
        let inner = self.inner.borrow();
        inner.capacity - inner.free.len()
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        self.inner.borrow().stats
    }

    /// An empty frame (packet of length 0 at [`HEADROOM`]), or `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<MemFrame> {
        self.inner.borrow_mut().alloc()
    }

    /// A frame holding a copy of `packet`.
    pub fn frame_from(&self, packet: &[u8]) -> Result<MemFrame, PortError> {
        if packet.len() > MAX_PACKET {
            return Err(PortError::PacketTooLarge {
                len: packet.len(),
                max: MAX_PACKET,
            });
        }
        let mut inner = self.inner.borrow_mut();
        let mut frame = inner.alloc().ok_or(PortError::PoolExhausted {
            capacity: inner.capacity,
        })?;
        match frame.load(packet) {
            Ok(()) => Ok(frame),
            Err(e) => {
                inner.release(frame);
                Err(e)
            }
        }
    }

    /// Returns a frame's buffer to the free list.
    #[inline]
    pub fn release(&self, frame: MemFrame) {
        self.inner.borrow_mut().release(frame);
    }

    /// Returns every frame of `frames` to the free list (one borrow for the lot).
    #[inline]
    pub fn release_all(&self, frames: impl IntoIterator<Item = MemFrame>) {
        let mut inner = self.inner.borrow_mut();
        for frame in frames {
            inner.release(frame);
        }
    }

    /// Empties `frames` into the free list: [`Self::release_all`] for a whole burst, in one pass
    /// (checking every frame's pool while pushing it measured fewer instructions than checking
    /// the lot first and then moving it).
    #[inline]
    pub fn release_burst(&self, frames: &mut Burst<MemFrame>) {
        let mut inner = self.inner.borrow_mut();
        for frame in frames.drain(..) {
            inner.release(frame);
        }
    }

    /// Appends up to `max` frames from the pool to `out`, each filled by `fill`; stops early when
    /// the pool runs dry or `fill` returns `None` (the frame it was given goes back to the pool).
    /// Returns how many frames were appended and whether the pool ran dry.
    #[inline]
    pub fn fill_burst(
        &self,
        out: &mut Burst<MemFrame>,
        max: usize,
        mut fill: impl FnMut(&mut MemFrame) -> Option<()>,
    ) -> (usize, bool) {
        let mut inner = self.inner.borrow_mut();
        let want = max.min(out.remaining_capacity());
        let mut n = 0;
        while n < want {
            let Some(mut frame) = inner.alloc() else {
                return (n, true);
            };
            if fill(&mut frame).is_none() {
                inner.release(frame);
                break;
            }
            out.push(frame);
            n += 1;
        }
        (n, false)
    }
}

impl fmt::Debug for FramePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("FramePool")
            .field("id", &inner.id)
            .field("capacity", &inner.capacity)
            .field("available", &inner.free.len())
            .field("stats", &inner.stats)
            .finish()
    }
}

/// What a [`MemoryPort`] does with frames it accepts for transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxMode {
    /// Keep them until [`MemoryPort::take_sent`].
    #[default]
    Collect,
    /// Count them and return them to the pool at once (benchmark sink).
    Count,
}

/// Replayed packets up to this length are copied as one fixed-size block.
const REPLAY_BLOCK: usize = 128;
/// Minimum-size frames (64 bytes) are copied as a block of this size.
const SMALL_BLOCK: usize = 64;
const _: () = assert!(REPLAY_BLOCK <= MAX_PACKET);

/// Copies the `N` bytes of `bytes` at `off` to the start of `dst` as one fixed-size block; false
/// (copying nothing) when either is shorter.
#[inline(always)]
fn copy_block<const N: usize>(dst: &mut [u8], bytes: &[u8], off: usize) -> bool {
    // `off` indexes a buffer, so `off + N` cannot overflow for the block sizes used here.
    match (
        dst.first_chunk_mut::<N>(),
        bytes.get(off..off + N).and_then(|s| s.first_chunk::<N>()),
    ) {
        (Some(d), Some(s)) => {
            *d = *s;
            true
        }
        _ => false,
    }
}

/// Packets cycled forever by replay mode, stored back to back in one buffer (followed by
/// [`REPLAY_BLOCK`] bytes of slack).
struct Replay {
    bytes: Vec<u8>,
    /// (offset, length) of each packet in `bytes`.
    packets: Vec<(usize, usize)>,
    next: usize,
}

impl Replay {
    /// Fills the rest of `out` with the next packets, in buffers taken from `pool`'s free list in
    /// one go (as many as it has, in the order single allocations would take them). Returns the
    /// frames added, their bytes, and whether the pool ran dry (counted as an allocation failure,
    /// as a failed [`FramePool::alloc`] would be).
    #[inline]
    fn fill(&mut self, pool: &FramePool, out: &mut Burst<MemFrame>) -> (usize, u64, bool) {
        let mut inner = pool.inner.borrow_mut();
        let room = out.remaining_capacity();
        let free = inner.free.len();
        let take = room.min(free);
        let dry = take < room;
        if dry {
            inner.stats.alloc_failures += 1;
        }
        let pool_id = inner.id;
        let mut bytes = 0u64;
        // The free list is a stack: its last buffer is the one the next allocation would get.
        for mut buf in inner.free.drain(free - take..).rev() {
            let (off, len) = self.packets.get(self.next).copied().unwrap_or_default();
            self.next += 1;
            if self.next >= self.packets.len() {
                self.next = 0;
            }
            let area = &mut buf[HEADROOM..];
            // A short packet is copied as one block of known size (a few vector moves, no
            // call); the bytes past its end land outside the packet window, unseen.
            let copied = (len <= SMALL_BLOCK && copy_block::<SMALL_BLOCK>(area, &self.bytes, off))
                || (len <= REPLAY_BLOCK && copy_block::<REPLAY_BLOCK>(area, &self.bytes, off));
            // `replay` checked every length against `MAX_PACKET`, the size of `area`.
            let len = if copied {
                len
            } else {
                match (area.get_mut(..len), self.bytes.get(off..off + len)) {
                    (Some(d), Some(s)) => {
                        d.copy_from_slice(s);
                        len
                    }
                    _ => 0,
                }
            };
            bytes += len as u64;
            out.push(MemFrame {
                buf,
                start: HEADROOM as u16,
                // At most `MAX_PACKET`, below `u16::MAX` (const-asserted with `FRAME_SIZE`).
                len: len as u16,
                pool: pool_id,
            });
        }
        (take, bytes, dry)
    }
}

/// A port backed by memory: the test or benchmark injects or replays packets and inspects or
/// counts what the pipeline transmitted.
pub struct MemoryPort {
    pool: FramePool,
    rx: VecDeque<MemFrame>,
    replay: Option<Replay>,
    tx_mode: TxMode,
    sent: Vec<MemFrame>,
    stats: PortStats,
}

impl MemoryPort {
    /// A port drawing frames from `pool`, collecting transmitted frames.
    pub fn new(pool: FramePool) -> Self {
        Self::with_tx_mode(pool, TxMode::Collect)
    }

    /// A port drawing frames from `pool` with the given transmit behaviour.
    pub fn with_tx_mode(pool: FramePool, tx_mode: TxMode) -> Self {
        // No queue can ever hold more frames than the pool owns, so these never grow.
        let capacity = pool.capacity();
        Self {
            rx: VecDeque::with_capacity(capacity),
            sent: Vec::with_capacity(if tx_mode == TxMode::Collect {
                capacity
            } else {
                0
            }),
            pool,
            replay: None,
            tx_mode,
            stats: PortStats::default(),
        }
    }

    /// The pool this port draws from.
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// Queues a copy of `packet` for the next `rx_burst` (taking its frame from the pool now).
    pub fn inject(&mut self, packet: &[u8]) -> Result<(), PortError> {
        let frame = self.pool.frame_from(packet)?;
        self.rx.push_back(frame);
        Ok(())
    }

    /// Frames injected and not yet received.
    pub fn rx_pending(&self) -> usize {
        self.rx.len()
    }

    /// Makes `rx_burst` cycle through `packets` forever (after any injected frames), copying each
    /// into a pool frame. An empty list turns replay off. The packets are copied once, here.
    pub fn replay<I, P>(&mut self, packets: I) -> Result<(), PortError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let mut bytes = Vec::new();
        let mut index = Vec::new();
        for packet in packets {
            let packet = packet.as_ref();
            if packet.len() > MAX_PACKET {
                return Err(PortError::PacketTooLarge {
                    len: packet.len(),
                    max: MAX_PACKET,
                });
            }
            index.push((bytes.len(), packet.len()));
            bytes.extend_from_slice(packet);
        }
        // Slack after the last packet, so that every packet can be copied as a fixed-size block.
        bytes.resize(bytes.len() + REPLAY_BLOCK, 0);
        self.replay = (!index.is_empty()).then_some(Replay {
            bytes,
            packets: index,
            next: 0,
        });
        Ok(())
    }

    /// Turns replay off.
    pub fn stop_replay(&mut self) {
        self.replay = None;
    }

    /// Changes what `tx_burst` does with accepted frames (already collected frames stay).
    pub fn set_tx_mode(&mut self, tx_mode: TxMode) {
        if tx_mode == TxMode::Collect {
            self.sent.reserve(self.pool.capacity());
        }
        self.tx_mode = tx_mode;
    }

    /// Copies of the packets transmitted since the last call, in order; their frames go back to
    /// the pool. (Allocates: test-side inspection, not part of the data path.)
    pub fn take_sent(&mut self) -> Vec<Vec<u8>> {
        let out = self.sent.iter().map(|f| f.data().to_vec()).collect();
        self.pool.release_all(self.sent.drain(..));
        out
    }

    /// Transmitted frames held in [`TxMode::Collect`], oldest first.
    pub fn sent(&self) -> &[MemFrame] {
        &self.sent
    }

    /// Returns every collected transmitted frame to the pool without copying it.
    pub fn clear_sent(&mut self) {
        self.pool.release_all(self.sent.drain(..));
    }

    /// The port's counters.
    pub fn stats(&self) -> PortStats {
        self.stats
    }
}

impl fmt::Debug for MemoryPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryPort")
            .field("rx_pending", &self.rx.len())
            .field("replay", &self.replay.as_ref().map(|r| r.packets.len()))
            .field("tx_mode", &self.tx_mode)
            .field("sent", &self.sent.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Drop for MemoryPort {
    // Frames still queued belong to the pool, which may outlive this port.
    fn drop(&mut self) {
        self.pool.release_all(self.rx.drain(..));
        self.pool.release_all(self.sent.drain(..));
    }
}

impl Port for MemoryPort {
    type Frame = MemFrame;

    #[inline]
    fn rx_burst(&mut self, out: &mut Burst<MemFrame>) -> usize {
        let mut n = 0;
        while out.remaining_capacity() > 0 {
            let Some(frame) = self.rx.pop_front() else {
                break;
            };
            self.stats.rx_bytes += frame.data().len() as u64;
            out.push(frame);
            n += 1;
        }
        if let Some(replay) = &mut self.replay {
            let (filled, bytes, dry) = replay.fill(&self.pool, out);
            self.stats.rx_bytes += bytes;
            self.stats.rx_no_buffer += u64::from(dry);
            n += filled;
        }
        self.stats.rx_packets += n as u64;
        n
    }

    #[inline]
    fn tx_burst(&mut self, frames: &mut Burst<MemFrame>) -> usize {
        let n = frames.len();
        self.stats.tx_packets += n as u64;
        // The window invariant (`start + len <= FRAME_SIZE`) makes `len` the packet length.
        self.stats.tx_bytes += frames.iter().map(|f| u64::from(f.len)).sum::<u64>();
        match self.tx_mode {
            TxMode::Collect => self.sent.extend(frames.drain(..)),
            TxMode::Count => self.pool.release_burst(frames),
        }
        n
    }

    #[inline]
    fn release(&mut self, frame: MemFrame) {
        self.pool.release(frame);
    }

    #[inline]
    fn flush(&mut self) {}
}

#[cfg(test)]
mod tests;
