//! [`XskPort`]: a [`Port`] over one AF_XDP socket bound to one interface queue.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use super::XdpError;
use super::frame::XdpFrame;
use super::ring::{ConsRing, ProdRing, XdpDesc};
use super::sys;
use super::umem::{FRAME_SIZE, UMEM_HEADROOM, Umem, UmemInner};
use ecmp_port::PortStats;
use ecmp_port::{Burst, Port};

/// How a socket moves packets between the driver and the UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// The kernel copies packets in and out of the UMEM (works on every driver).
    Copy,
    /// The driver DMAs straight into the UMEM; fails if the driver cannot.
    ZeroCopy,
    /// Zero-copy if the driver can, else copy; [`XskPort::zero_copy`] says which.
    Auto,
}

/// Ring sizes and options of an [`XskPort`]. Sizes are powers of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// Rx ring slots.
    pub rx_size: u32,
    /// Tx ring slots.
    pub tx_size: u32,
    /// Fill ring slots; also the most frames this port keeps lent to the kernel for receiving.
    pub fill_size: u32,
    /// Completion ring slots.
    pub comp_size: u32,
    /// Bind with `XDP_USE_NEED_WAKEUP` and make syscalls only when the kernel asks (off: kick
    /// tx on every burst and flush that has work queued).
    pub need_wakeup: bool,
    /// Attempts at binding while the queue reports EBUSY (right after another socket on the
    /// same queue closed, the kernel briefly still holds it).
    pub busy_retries: u32,
}

impl Default for XskConfig {
    fn default() -> Self {
        Self {
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 2048,
            comp_size: 2048,
            need_wakeup: true,
            busy_retries: 10,
        }
    }
}

/// AF_XDP-specific counters of an [`XskPort`] (the generic ones are in [`PortStats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// `rx_burst` calls that found the rx ring empty.
    pub rx_empty_polls: u64,
    /// Fill ring top-ups that found the UMEM's free list empty while the ring had room.
    pub fill_starved: u64,
    /// `tx_burst` calls that found the tx ring too full for the whole burst, even after reaping.
    pub tx_ring_full: u64,
    /// Rx wakeups (`recvfrom`) made because the fill ring asked for one.
    pub rx_wakeups: u64,
    /// Tx kicks (`sendto`).
    pub tx_kicks: u64,
    /// Tx kicks that failed with something other than a transient error.
    pub tx_kick_errors: u64,
    /// Frames of another UMEM offered to `tx_burst` (refused) or `release` (dropped).
    pub foreign_frames: u64,
}

/// The kernel's counters of a socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskKernelStats {
    /// Packets dropped for reasons other than invalid descriptors.
    pub rx_dropped: u64,
    /// Rx descriptors the kernel found invalid.
    pub rx_invalid_descs: u64,
    /// Tx descriptors the kernel found invalid.
    pub tx_invalid_descs: u64,
    /// Packets dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a packet arrived.
    pub rx_fill_ring_empty: u64,
    /// Times the tx ring was empty when the kernel looked.
    pub tx_ring_empty: u64,
}

/// Top up the fill ring only when this many slots are free, so the shared free list is borrowed
/// and the ring's producer index published once per batch, not per received packet.
const FILL_BATCH: u32 = 32;

/// A [`Port`] over one AF_XDP socket (one interface queue), sharing its worker's [`Umem`].
///
/// `!Send`: open it on the worker thread that polls it.
pub struct XskPort {
    rx: ConsRing<XdpDesc>,
    tx: ProdRing<XdpDesc>,
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    umem: Rc<UmemInner>,
    base: *mut u8,
    frame_count: u32,
    fill_size: u32,
    comp_size: u32,
    /// Frames given to the fill ring and not yet received back through the rx ring.
    in_fill: u32,
    /// Frames put on the tx ring and not yet reaped from the completion ring.
    in_tx: u32,
    need_wakeup: bool,
    zero_copy: bool,
    stats: PortStats,
    xstats: XskStats,
    ifname: String,
    queue: u32,
    fd: OwnedFd,
}

const fn mode_name(zero_copy: bool) -> &'static str {
    if zero_copy { "zero-copy" } else { "copy" }
}

impl XskPort {
    /// Opens an AF_XDP socket on `ifname` queue `queue`, sharing `umem` with the worker's other
    /// ports, and lends it `config.fill_size` frames for receiving.
    ///
    /// The first socket of a UMEM registers it and picks the mode (`mode`); later sockets
    /// share it (`XDP_SHARED_UMEM`, with their own fill and completion rings) and the kernel
    /// gives them the first socket's mode: `Auto` accepts it, `Copy`/`ZeroCopy` must match it.
    /// Transient EBUSY is retried `config.busy_retries` times, 20 ms apart.
    pub fn open(
        umem: &Umem,
        ifname: &str,
        queue: u32,
        mode: BindMode,
        config: &XskConfig,
    ) -> Result<Self, XdpError> {
        for (name, size) in [
            ("rx_size", config.rx_size),
            ("tx_size", config.tx_size),
            ("fill_size", config.fill_size),
            ("comp_size", config.comp_size),
        ] {
            if !size.is_power_of_two() {
                return Err(XdpError::Config(format!(
                    "{name} = {size} is not a power of two"
                )));
            }
        }
        let ifindex = sys::ifindex(ifname)?;
        if let Some(queues) = sys::rx_queue_count(ifname)
            && queue >= queues
        {
            return Err(XdpError::NoSuchQueue {
                ifname: ifname.to_owned(),
                queue,
                queues,
            });
        }
        let inner = &umem.inner;
        let shared = inner.shared_socket();
        let attempts: &[Option<bool>] = match (shared, mode) {
            (Some((_, zc)), BindMode::Copy | BindMode::ZeroCopy)
                if zc != (mode == BindMode::ZeroCopy) =>
            {
                return Err(XdpError::ModeMismatch {
                    ifname: ifname.to_owned(),
                    queue,
                    requested: mode_name(mode == BindMode::ZeroCopy),
                    actual: mode_name(zc),
                });
            }
            // Shared sockets may not pass mode flags: they inherit the UMEM's.
            (Some(_), _) => &[None],
            (None, BindMode::Copy) => &[Some(false)],
            (None, BindMode::ZeroCopy) => &[Some(true)],
            (None, BindMode::Auto) => &[Some(true), Some(false)],
        };
        let mut last = None;
        for &zero_copy in attempts {
            let mut tries = 0;
            let result = loop {
                match Self::try_open(umem, ifname, ifindex, queue, zero_copy, shared, config) {
                    Err(XdpError::Busy { .. }) if tries < config.busy_retries => {
                        tries += 1;
                        thread::sleep(Duration::from_millis(20));
                    }
                    other => break other,
                }
            };
            match result {
                Ok(mut port) => {
                    inner.add_socket(port.fd.as_raw_fd(), port.zero_copy);
                    port.refill();
                    return Ok(port);
                }
                // Auto falls back to copy mode only when zero-copy is what the driver refused.
                Err(e @ XdpError::Unsupported { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| XdpError::Config("no bind mode to try".into())))
    }

    fn try_open(
        umem: &Umem,
        ifname: &str,
        ifindex: u32,
        queue: u32,
        zero_copy: Option<bool>,
        shared: Option<(i32, bool)>,
        config: &XskConfig,
    ) -> Result<Self, XdpError> {
        let os = |what| move |e| XdpError::from_os(ifname, queue, what, e);
        let inner = &umem.inner;
        let fd = sys::xdp_socket().map_err(os("creating the AF_XDP socket"))?;
        if shared.is_none() {
            let reg = libc::xdp_umem_reg {
                addr: inner.base() as u64,
                len: inner.len() as u64,
                chunk_size: FRAME_SIZE as u32,
                headroom: UMEM_HEADROOM as u32,
                flags: 0,
                tx_metadata_len: 0,
            };
            sys::set_xdp_opt(&fd, libc::XDP_UMEM_REG, &reg).map_err(os("registering the UMEM"))?;
        }
        // A socket sharing the UMEM on another interface or queue needs rings of its own.
        sys::set_xdp_opt(&fd, libc::XDP_UMEM_FILL_RING, &config.fill_size)
            .map_err(os("sizing the fill ring"))?;
        sys::set_xdp_opt(&fd, libc::XDP_UMEM_COMPLETION_RING, &config.comp_size)
            .map_err(os("sizing the completion ring"))?;
        sys::set_xdp_opt(&fd, libc::XDP_RX_RING, &config.rx_size)
            .map_err(os("sizing the rx ring"))?;
        sys::set_xdp_opt(&fd, libc::XDP_TX_RING, &config.tx_size)
            .map_err(os("sizing the tx ring"))?;
        // SAFETY: plain old data; all-zero is a valid value.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        sys::get_xdp_opt(&fd, libc::XDP_MMAP_OFFSETS, &mut off)
            .map_err(os("reading the ring offsets"))?;
        let rx = ConsRing::map(&fd, libc::XDP_PGOFF_RX_RING as u64, &off.rx, config.rx_size)
            .map_err(os("mapping the rx ring"))?;
        let tx = ProdRing::map(&fd, libc::XDP_PGOFF_TX_RING as u64, &off.tx, config.tx_size)
            .map_err(os("mapping the tx ring"))?;
        let fill = ProdRing::map(
            &fd,
            libc::XDP_UMEM_PGOFF_FILL_RING,
            &off.fr,
            config.fill_size,
        )
        .map_err(os("mapping the fill ring"))?;
        let comp = ConsRing::map(
            &fd,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            &off.cr,
            config.comp_size,
        )
        .map_err(os("mapping the completion ring"))?;

        let mut flags = 0;
        let mut shared_fd = 0;
        match (shared, zero_copy) {
            (Some((owner, _)), _) => {
                flags = libc::XDP_SHARED_UMEM;
                shared_fd = owner as u32;
            }
            (None, zc) => {
                flags |= if zc == Some(true) {
                    libc::XDP_ZEROCOPY
                } else {
                    libc::XDP_COPY
                };
                if config.need_wakeup {
                    flags |= libc::XDP_USE_NEED_WAKEUP;
                }
            }
        }
        let addr = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: shared_fd,
        };
        // SAFETY: `addr` is a valid sockaddr_xdp of the length passed, alive for the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EOPNOTSUPP | libc::EPROTONOSUPPORT) => XdpError::Unsupported {
                    ifname: ifname.to_owned(),
                    queue,
                    mode: if zero_copy == Some(true) || shared.is_some_and(|s| s.1) {
                        "zero-copy"
                    } else {
                        "AF_XDP"
                    },
                },
                _ => XdpError::from_os(ifname, queue, "binding the AF_XDP socket", err),
            });
        }
        let mut opts = libc::xdp_options { flags: 0 };
        sys::get_xdp_opt(&fd, libc::XDP_OPTIONS, &mut opts)
            .map_err(os("reading the socket options"))?;
        // A shared socket inherits the first socket's need-wakeup setting: give every port of
        // a UMEM the same `need_wakeup`.
        let need_wakeup = config.need_wakeup;
        Ok(Self {
            rx,
            tx,
            fill,
            comp,
            umem: Rc::clone(inner),
            base: inner.base(),
            frame_count: inner.frame_count(),
            fill_size: config.fill_size,
            comp_size: config.comp_size,
            in_fill: 0,
            in_tx: 0,
            need_wakeup,
            zero_copy: opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0,
            stats: PortStats::default(),
            xstats: XskStats::default(),
            ifname: ifname.to_owned(),
            queue,
            fd,
        })
    }

    /// Whether the socket runs in zero-copy mode (else the kernel copies).
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The queue id.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Generic port counters.
    pub fn stats(&self) -> PortStats {
        self.stats
    }

    /// AF_XDP counters.
    pub fn xsk_stats(&self) -> XskStats {
        self.xstats
    }

    /// The kernel's counters for this socket (a syscall: not for the hot path).
    pub fn kernel_stats(&self) -> Result<XskKernelStats, XdpError> {
        // SAFETY: plain old data; all-zero is a valid value.
        let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        sys::get_xdp_opt(&self.fd, libc::XDP_STATISTICS, &mut s).map_err(|e| {
            XdpError::from_os(&self.ifname, self.queue, "reading socket statistics", e)
        })?;
        Ok(XskKernelStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
            tx_ring_empty: s.tx_ring_empty_descs,
        })
    }

    /// Frames this port has lent to the kernel: in its fill or rx ring (waiting to be received)
    /// plus in its tx or completion ring (waiting to be reaped). With no frame in the caller's
    /// hands, the UMEM's `outstanding()` is the sum of this over its ports.
    pub fn kernel_held(&self) -> u32 {
        self.in_fill + self.in_tx
    }

    /// Returns every frame of `frames` to the UMEM (one borrow of the free list for the lot).
    #[inline]
    pub fn release_burst(&mut self, frames: &mut Burst<XdpFrame>) {
        let mut free = self.umem.free.borrow_mut();
        for frame in frames.drain(..) {
            if frame.base == self.base {
                UmemInner::push_free(&mut free, u64::from(frame.chunk), self.frame_count);
            } else {
                self.xstats.foreign_frames += 1;
                self.umem.count_foreign();
            }
        }
    }

    /// Lends free frames to the kernel, in batches, up to `fill_size` frames in all.
    #[inline]
    fn refill(&mut self) {
        let room = self.fill_size - self.in_fill;
        if room < FILL_BATCH && self.in_fill > 0 {
            return;
        }
        let room = self.fill.free(room).min(room);
        let mut free = self.umem.free.borrow_mut();
        let n = room.min(free.len() as u32);
        if n < room {
            self.xstats.fill_starved += 1;
        }
        if n == 0 {
            return;
        }
        let from = free.len() - n as usize;
        for (i, chunk) in free.drain(from..).enumerate() {
            self.fill.write(i as u32, chunk);
        }
        drop(free);
        self.fill.submit(n);
        self.in_fill += n;
    }

    /// Moves completed transmissions' chunks to the free list.
    #[inline]
    fn reap(&mut self) {
        let n = self.comp.peek(self.comp_size);
        if n == 0 {
            return;
        }
        let mut free = self.umem.free.borrow_mut();
        for i in 0..n {
            let chunk = self.comp.read(i) & !(FRAME_SIZE as u64 - 1);
            UmemInner::push_free(&mut free, chunk, self.frame_count);
        }
        drop(free);
        self.comp.release(n);
        self.in_tx -= n.min(self.in_tx);
    }

    /// Tells the kernel there is work on the tx ring (copy mode transmits only from this call).
    #[inline]
    fn kick_tx(&mut self) {
        self.xstats.tx_kicks += 1;
        // SAFETY: a zero-length send with no buffer and no address only wakes the socket.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc < 0 {
            let errno = io::Error::last_os_error().raw_os_error();
            if !matches!(
                errno,
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN | libc::EINTR)
            ) {
                self.xstats.tx_kick_errors += 1;
            }
        }
    }

    #[inline]
    fn tx_wants_kick(&self) -> bool {
        !self.need_wakeup || self.tx.needs_wakeup()
    }
}

impl Port for XskPort {
    type Frame = XdpFrame;

    #[inline]
    fn rx_burst(&mut self, out: &mut Burst<XdpFrame>) -> usize {
        let want = out.remaining_capacity() as u32;
        if want == 0 {
            return 0;
        }
        let n = self.rx.peek(want);
        if n == 0 {
            self.xstats.rx_empty_polls += 1;
            self.refill();
            if self.need_wakeup && self.fill.needs_wakeup() {
                self.xstats.rx_wakeups += 1;
                // SAFETY: a zero-length non-blocking receive with no buffer only wakes the
                // driver's rx processing; its result carries no data.
                unsafe {
                    libc::recvfrom(
                        self.fd.as_raw_fd(),
                        std::ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
            }
            return 0;
        }
        let mut bytes = 0u64;
        for i in 0..n {
            let desc = self.rx.read(i);
            let frame = XdpFrame::from_desc(self.base, desc.addr, desc.len);
            bytes += u64::from(frame.len);
            out.push(frame);
        }
        self.rx.release(n);
        self.in_fill -= n.min(self.in_fill);
        self.stats.rx_packets += u64::from(n);
        self.stats.rx_bytes += bytes;
        self.refill();
        n as usize
    }

    #[inline]
    fn tx_burst(&mut self, frames: &mut Burst<XdpFrame>) -> usize {
        let n = frames.len() as u32;
        if n == 0 {
            return 0;
        }
        let mut room = self.tx.free(n);
        if room < n {
            self.reap();
            self.kick_tx();
            room = self.tx.free(n);
            if room < n {
                self.xstats.tx_ring_full += 1;
            }
        }
        // Frames of another UMEM cannot be described to this socket: stop at the first one.
        let mut take = n.min(room);
        if let Some(pos) = frames
            .iter()
            .take(take as usize)
            .position(|f| f.base != self.base)
        {
            self.xstats.foreign_frames += 1;
            take = pos as u32;
        }
        let mut bytes = 0u64;
        for (i, frame) in frames.iter().take(take as usize).enumerate() {
            bytes += u64::from(frame.len);
            self.tx.write(
                i as u32,
                XdpDesc {
                    addr: frame.addr(),
                    len: u32::from(frame.len),
                    options: 0,
                },
            );
        }
        if take == 0 {
            self.stats.tx_refused += u64::from(n);
            return 0;
        }
        self.tx.submit(take);
        // The chunks now belong to the tx ring; forget the handles.
        frames.drain(..take as usize);
        self.in_tx += take;
        self.stats.tx_packets += u64::from(take);
        self.stats.tx_bytes += bytes;
        self.stats.tx_refused += u64::from(n - take);
        if self.tx_wants_kick() {
            self.kick_tx();
        }
        take as usize
    }

    #[inline]
    fn release(&mut self, frame: XdpFrame) {
        if frame.base == self.base {
            let mut free = self.umem.free.borrow_mut();
            UmemInner::push_free(&mut free, u64::from(frame.chunk), self.frame_count);
        } else {
            self.xstats.foreign_frames += 1;
            self.umem.count_foreign();
        }
    }

    #[inline]
    fn flush(&mut self) {
        self.reap();
        // Copy mode sends a bounded batch per kick, so keep kicking while work is queued.
        if self.tx.pending() > 0 && self.tx_wants_kick() {
            self.kick_tx();
        }
    }
}

impl AsFd for XskPort {
    /// The socket, to register in the XDP program's `xsks` map.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for XskPort {
    fn drop(&mut self) {
        // The rings go with the socket, and the frames in them with the rings.
        self.umem
            .remove_socket(self.fd.as_raw_fd(), self.kernel_held());
    }
}

impl fmt::Debug for XskPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskPort")
            .field("ifname", &self.ifname)
            .field("queue", &self.queue)
            .field("zero_copy", &self.zero_copy)
            .field("in_fill", &self.in_fill)
            .field("in_tx", &self.in_tx)
            .field("stats", &self.stats)
            .field("xsk_stats", &self.xstats)
            .finish()
    }
}
