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

    /// Empties `frames` into the free list: [`Self::release_all`] for a whole burst, with the
    /// per-frame checks done once for the lot when every frame is this pool's and fits.
    #[inline]
    pub fn release_burst(&self, frames: &mut Burst<MemFrame>) {
        let mut inner = self.inner.borrow_mut();
        let id = inner.id;
        if frames.len() <= inner.capacity - inner.free.len() && frames.iter().all(|f| f.pool == id)
        {
            inner.free.extend(frames.drain(..).map(|f| f.buf));
        } else {
            for frame in frames.drain(..) {
                inner.release(frame);
            }
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

/// Copies the first `N` bytes of `src` to `dst` as one fixed-size block; false (copying
/// nothing) when either is shorter.
#[inline(always)]
fn copy_block<const N: usize>(dst: &mut [u8], src: &[u8]) -> bool {
    match (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
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
            let src = self.bytes.get(off..).unwrap_or_default();
            let copied = (len <= SMALL_BLOCK && copy_block::<SMALL_BLOCK>(area, src))
                || (len <= REPLAY_BLOCK && copy_block::<REPLAY_BLOCK>(area, src));
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn burst() -> Burst<MemFrame> {
        Burst::new()
    }

    #[test]
    fn fresh_frame_has_headroom_and_no_data() {
        let pool = FramePool::new(1);
        let f = pool.alloc().unwrap();
        assert_eq!(f.headroom(), HEADROOM);
        assert!(f.data().is_empty());
        assert_eq!(f.tailroom(), MAX_PACKET);
        pool.release(f);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn push_pull_truncate_semantics() {
        let pool = FramePool::new(1);
        let mut f = pool.frame_from(&[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(f.data(), &[1, 2, 3, 4, 5, 6]);

        // Pull the first two bytes, then push them back: the same bytes reappear.
        assert!(f.pull_front(2));
        assert_eq!(f.data(), &[3, 4, 5, 6]);
        assert_eq!(f.headroom(), HEADROOM + 2);
        assert!(f.push_front(2));
        assert_eq!(f.data(), &[1, 2, 3, 4, 5, 6]);

        // Encapsulation: push and write an outer header in front.
        assert!(f.push_front(4));
        f.data_mut()[..4].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(f.data(), &[0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6]);
        assert_eq!(f.headroom(), HEADROOM - 4);

        // Refusals change nothing.
        assert!(!f.push_front(HEADROOM - 3));
        assert!(!f.pull_front(11));
        assert!(!f.push_front(usize::MAX));
        assert!(!f.pull_front(usize::MAX));
        assert_eq!(f.data().len(), 10);
        assert_eq!(f.headroom(), HEADROOM - 4);

        // All the headroom, then all the data.
        assert!(f.push_front(HEADROOM - 4));
        assert_eq!(f.headroom(), 0);
        assert!(!f.push_front(1));
        assert!(f.pull_front(HEADROOM + 6));
        assert!(f.data().is_empty());
        assert!(f.pull_front(0));

        pool.release(f);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn truncate_shortens_only() {
        let pool = FramePool::new(1);
        let mut f = pool.frame_from(&[1, 2, 3, 4]).unwrap();
        f.truncate(10);
        assert_eq!(f.data(), &[1, 2, 3, 4]);
        f.truncate(2);
        assert_eq!(f.data(), &[1, 2]);
        assert_eq!(f.headroom(), HEADROOM);
        pool.release(f);
    }

    #[test]
    fn frame_from_rejects_oversize_and_exhaustion() {
        let pool = FramePool::new(1);
        assert!(matches!(
            pool.frame_from(&[0; MAX_PACKET + 1]),
            Err(PortError::PacketTooLarge { len, max: MAX_PACKET }) if len == MAX_PACKET + 1
        ));
        assert_eq!(pool.outstanding(), 0);
        let f = pool.frame_from(&[0; MAX_PACKET]).unwrap();
        assert_eq!(f.data().len(), MAX_PACKET);
        assert_eq!(f.tailroom(), 0);
        assert!(matches!(
            pool.frame_from(&[0]),
            Err(PortError::PoolExhausted { capacity: 1 })
        ));
        assert_eq!(pool.stats().alloc_failures, 1);
        pool.release(f);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn recycled_frame_is_reset() {
        let pool = FramePool::new(1);
        let mut f = pool.frame_from(&[7; 100]).unwrap();
        assert!(f.push_front(30));
        pool.release(f);
        let f = pool.alloc().unwrap();
        assert_eq!(f.headroom(), HEADROOM);
        assert!(f.data().is_empty());
        pool.release(f);
    }

    #[test]
    fn foreign_frame_is_not_adopted() {
        let a = FramePool::new(1);
        let b = FramePool::new(1);
        let f = a.alloc().unwrap();
        b.release(f);
        assert_eq!(b.stats().foreign_releases, 1);
        assert_eq!(b.available(), 1);
        // The frame is gone for good: pool a reports it as leaked.
        assert_eq!(a.outstanding(), 1);
    }

    #[test]
    fn inject_rx_tx_collect_round_trip() {
        let pool = FramePool::new(8);
        let mut port = MemoryPort::new(pool.clone());
        port.inject(&[1, 2, 3]).unwrap();
        port.inject(&[4, 5]).unwrap();
        assert_eq!(pool.outstanding(), 2);

        let mut b = burst();
        assert_eq!(port.rx_burst(&mut b), 2);
        assert_eq!(port.rx_burst(&mut b), 0);
        assert_eq!(b[0].data(), &[1, 2, 3]);
        assert_eq!(b[1].data(), &[4, 5]);

        assert_eq!(port.tx_burst(&mut b), 2);
        assert!(b.is_empty());
        assert_eq!(port.sent().len(), 2);
        assert_eq!(port.take_sent(), vec![vec![1, 2, 3], vec![4, 5]]);
        assert!(port.take_sent().is_empty());
        assert_eq!(pool.outstanding(), 0);

        let s = port.stats();
        assert_eq!(
            (s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes),
            (2, 5, 2, 5)
        );
    }

    #[test]
    fn ports_of_a_worker_share_one_pool() {
        let pool = FramePool::new(4);
        let mut a = MemoryPort::new(pool.clone());
        let mut b = MemoryPort::with_tx_mode(pool.clone(), TxMode::Count);
        a.inject(&[1; 60]).unwrap();
        a.inject(&[2; 60]).unwrap();
        let mut rx = burst();
        a.rx_burst(&mut rx);
        // Frames received on a, sent on b: b counts and recycles them into the shared pool.
        assert_eq!(b.tx_burst(&mut rx), 2);
        assert_eq!(b.stats().tx_bytes, 120);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn replay_cycles_forever_and_exhaustion_returns_fewer() {
        let pool = FramePool::new(40);
        let mut port = MemoryPort::new(pool.clone());
        port.replay([&[1u8][..], &[2, 2], &[3, 3, 3]]).unwrap();

        let mut b = burst();
        assert_eq!(port.rx_burst(&mut b), crate::BURST);
        let lens: Vec<usize> = b.iter().map(|f| f.data().len()).collect();
        assert_eq!(&lens[..7], &[1, 2, 3, 1, 2, 3, 1]);

        // 32 of 40 frames are out; the next burst gets only the 8 left, without panicking.
        let mut c = burst();
        assert_eq!(port.rx_burst(&mut c), 8);
        assert_eq!(port.stats().rx_no_buffer, 1);
        let mut d = burst();
        assert_eq!(port.rx_burst(&mut d), 0);
        assert_eq!(pool.outstanding(), 40);

        // Releasing one burst and transmitting the other brings the count back to zero.
        for f in b.drain(..) {
            port.release(f);
        }
        port.tx_burst(&mut c);
        assert_eq!(pool.outstanding(), 8);
        port.clear_sent();
        assert_eq!(pool.outstanding(), 0);

        // Replay continues where it stopped: 32 + 8 = 40 packets so far, 40 % 3 == 1.
        assert_eq!(port.rx_burst(&mut b), crate::BURST);
        assert_eq!(b[0].data(), &[2, 2]);
        port.tx_burst(&mut b);
        drop(port);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn rx_burst_respects_partly_filled_burst() {
        let pool = FramePool::new(64);
        let mut port = MemoryPort::new(pool.clone());
        port.replay([[0u8; 64]]).unwrap();
        let mut b = burst();
        for _ in 0..30 {
            b.push(pool.alloc().unwrap());
        }
        assert_eq!(port.rx_burst(&mut b), 2);
        assert!(b.is_full());
        pool.release_all(b.drain(..));
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn replay_rejects_oversize_and_empty_turns_off() {
        let pool = FramePool::new(2);
        let mut port = MemoryPort::new(pool);
        assert!(port.replay([vec![0u8; MAX_PACKET + 1]]).is_err());
        port.replay(Vec::<Vec<u8>>::new()).unwrap();
        let mut b = burst();
        assert_eq!(port.rx_burst(&mut b), 0);
    }

    #[test]
    fn dropping_a_port_returns_its_queued_frames() {
        let pool = FramePool::new(4);
        let mut port = MemoryPort::new(pool.clone());
        port.inject(&[1]).unwrap();
        port.inject(&[2]).unwrap();
        let mut b = burst();
        port.rx_burst(&mut b);
        port.tx_burst(&mut b);
        port.inject(&[3]).unwrap();
        assert_eq!(pool.outstanding(), 3);
        drop(port);
        assert_eq!(pool.outstanding(), 0);
    }

    proptest! {
        // Any sequence of push/pull/truncate keeps the window inside the buffer and keeps the
        // bytes that stayed in the packet where they were.
        #[test]
        fn window_ops_stay_in_bounds(
            packet in proptest::collection::vec(any::<u8>(), 0..=MAX_PACKET),
            ops in proptest::collection::vec((0u8..3, 0usize..4096), 0..32),
        ) {
            let pool = FramePool::new(1);
            let mut f = pool.frame_from(&packet).unwrap();
            // Model: absolute start and length inside the buffer.
            let (mut start, mut len) = (HEADROOM, packet.len());
            for (op, n) in ops {
                match op {
                    0 => {
                        let ok = f.push_front(n);
                        prop_assert_eq!(ok, n <= start);
                        if ok { start -= n; len += n; }
                    }
                    1 => {
                        let ok = f.pull_front(n);
                        prop_assert_eq!(ok, n <= len);
                        if ok { start += n; len -= n; }
                    }
                    _ => { f.truncate(n); len = len.min(n); }
                }
                prop_assert_eq!(f.headroom(), start);
                prop_assert_eq!(f.data().len(), len);
                prop_assert_eq!(f.tailroom(), FRAME_SIZE - start - len);
                // Bytes of the original packet still inside the window are unchanged.
                let lo = start.max(HEADROOM);
                let hi = (start + len).min(HEADROOM + packet.len());
                if lo < hi {
                    prop_assert_eq!(&f.data()[lo - start..hi - start], &packet[lo - HEADROOM..hi - HEADROOM]);
                }
            }
            pool.release(f);
            prop_assert_eq!(pool.outstanding(), 0);
        }
    }
}
