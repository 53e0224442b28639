//! AF_PACKET port: raw Ethernet frames on one Linux interface through a `SOCK_RAW` packet socket.
//!
//! This is the packet generator's fallback driver and the traffic sink's receiver, not the
//! forwarder's data path: it costs one syscall per packet (`recv` per received frame, `send` per
//! transmitted frame, both non-blocking), which the AF_XDP port exists to avoid. Everything else
//! keeps the crate's invariants: frames come from a shared [`FramePool`], move without copies
//! between the pool, the port and the caller, and nothing allocates after [`PacketPort::open`].
//!
//! Invariants:
//! - The socket is created with protocol 0 (it receives nothing) and only starts receiving when
//!   it is bound to the interface with `ETH_P_ALL`, so no frame of another interface ever sits in
//!   its queue.
//! - `PACKET_IGNORE_OUTGOING` is set: a port never receives its own transmissions (nor anything
//!   else the host sends out of that interface).
//! - Sends are synchronous: a frame `tx_burst` accepted has been handed to the kernel and its
//!   buffer is back in the pool before `tx_burst` returns, so the port never holds frames and
//!   dropping it cannot leak any. `flush` has nothing to do.
//! - Hot-path calls never return errors (per the [`Port`] trait): a failing syscall is counted and
//!   its error kept for [`PacketPort::take_error`].
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use ecmp_port::PortStats;
use ecmp_port::memory::{FramePool, MAX_PACKET, MemFrame};
use ecmp_port::{Burst, Frame, Port};

/// Errors of opening a [`PacketPort`]; each names the interface.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// The interface name is empty, too long for the kernel (15 bytes) or contains a NUL byte.
    #[error("{ifname:?}: not a valid interface name")]
    InvalidName {
        /// The name given.
        ifname: String,
    },
    /// No interface of that name exists in the current network namespace.
    #[error("{ifname}: no such interface in this network namespace")]
    NoSuchInterface {
        /// The interface.
        ifname: String,
    },
    /// Opening a packet socket was refused (it needs CAP_NET_RAW).
    #[error("{ifname}: permission denied opening a packet socket (needs CAP_NET_RAW / root)")]
    Permission {
        /// The interface.
        ifname: String,
        /// What the OS said.
        source: io::Error,
    },
    /// A syscall setting up the socket failed for another reason.
    #[error("{ifname}: {what} failed")]
    Setup {
        /// The interface.
        ifname: String,
        /// The step that failed (`socket`, `bind`, or the socket option).
        what: &'static str,
        /// What the OS said.
        source: io::Error,
    },
}

/// How to open a [`PacketPort`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketOptions {
    /// Put the interface in promiscuous mode while the port is open (the kernel keeps a count,
    /// so this is undone when the socket closes, even on a crash).
    pub promiscuous: bool,
    /// Socket receive buffer in bytes; 0 keeps the system default. A sink at a high rate needs a
    /// large one to not drop bursts while it is descheduled.
    pub rcvbuf: usize,
    /// Socket send buffer in bytes; 0 keeps the system default.
    pub sndbuf: usize,
}

impl Default for PacketOptions {
    fn default() -> Self {
        PacketOptions {
            promiscuous: false,
            rcvbuf: 4 << 20,
            sndbuf: 0,
        }
    }
}

/// Counters of a [`PacketPort`] beyond the common [`PortStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketCounters {
    /// Received frames longer than a pool frame holds ([`MAX_PACKET`]); dropped.
    pub rx_oversize: u64,
    /// `recv` calls that failed with something other than "no more frames".
    pub rx_errors: u64,
    /// `send` calls that failed with something other than "try again".
    pub tx_errors: u64,
}

/// A [`Port`] on one interface through an AF_PACKET raw socket (see the module doc for its cost).
pub struct PacketPort {
    fd: OwnedFd,
    ifname: String,
    ifindex: u32,
    pool: FramePool,
    stats: PortStats,
    counters: PacketCounters,
    error: Option<io::Error>,
}

/// Converts a syscall's -1 into the thread's errno.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Sets an integer socket option.
fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket; the option value points to a live c_int and the length
    // passed is its size.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(ret).map(drop)
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the packet generator stamps into its payload and
/// the sink reads on receipt. Unlike `std::time::Instant` its value means the same in every
/// process (and network namespace) of the host, so two processes can measure latency with it.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec the call writes; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// True for errors meaning "nothing to do right now" rather than a failure.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::EINTR | libc::ENOBUFS)
    )
}

impl PacketPort {
    /// Opens a port on `ifname` (in the calling thread's network namespace) with
    /// [`PacketOptions::default`], drawing received frames from `pool`.
    pub fn open(ifname: &str, pool: FramePool) -> Result<Self, PacketError> {
        Self::with_options(ifname, pool, PacketOptions::default())
    }

    /// Opens a port on `ifname` with `options`.
    pub fn with_options(
        ifname: &str,
        pool: FramePool,
        options: PacketOptions,
    ) -> Result<Self, PacketError> {
        let setup = |what: &'static str| {
            let ifname = ifname.to_owned();
            move |source: io::Error| PacketError::Setup {
                ifname,
                what,
                source,
            }
        };
        let cname = match CString::new(ifname) {
            Ok(c) if !ifname.is_empty() && ifname.len() < libc::IFNAMSIZ => c,
            _ => {
                return Err(PacketError::InvalidName {
                    ifname: ifname.to_owned(),
                });
            }
        };
        // SAFETY: `cname` is a NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(PacketError::NoSuchInterface {
                ifname: ifname.to_owned(),
            });
        }

        // Protocol 0: the socket receives nothing until `bind` names the protocol and the
        // interface, so no frame from another interface can slip in between.
        // SAFETY: plain syscall with constant arguments; the result is checked below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        let raw = check(raw).map_err(|source| match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => PacketError::Permission {
                ifname: ifname.to_owned(),
                source,
            },
            _ => setup("socket")(source),
        })?;
        // SAFETY: `raw` is a freshly opened descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        set_int(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)
            .map_err(setup("PACKET_IGNORE_OUTGOING"))?;
        if options.rcvbuf > 0 {
            let bytes = libc::c_int::try_from(options.rcvbuf).unwrap_or(libc::c_int::MAX);
            // The forcing variant ignores rmem_max (root only); fall back to the capped one.
            set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes)
                .or_else(|_| set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes))
                .map_err(setup("SO_RCVBUF"))?;
        }
        if options.sndbuf > 0 {
            let bytes = libc::c_int::try_from(options.sndbuf).unwrap_or(libc::c_int::MAX);
            set_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, bytes)
                .or_else(|_| set_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes))
                .map_err(setup("SO_SNDBUF"))?;
        }

        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as libc::c_ushort;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sll` is a live, initialised sockaddr_ll and the length passed is its size.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check(ret).map_err(setup("bind"))?;

        if options.promiscuous {
            // SAFETY: packet_mreq is plain old data; all-zero is a valid value.
            let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
            mreq.mr_ifindex = ifindex as libc::c_int;
            mreq.mr_type = libc::PACKET_MR_PROMISC as libc::c_ushort;
            // SAFETY: `mreq` is a live packet_mreq and the length passed is its size.
            let ret = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_ADD_MEMBERSHIP,
                    (&raw const mreq).cast(),
                    size_of::<libc::packet_mreq>() as libc::socklen_t,
                )
            };
            check(ret).map_err(setup("PACKET_ADD_MEMBERSHIP (promiscuous)"))?;
        }

        Ok(PacketPort {
            fd,
            ifname: ifname.to_owned(),
            ifindex,
            pool,
            stats: PortStats::default(),
            counters: PacketCounters::default(),
            error: None,
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index (in the namespace the port was opened in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The pool received frames come from.
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// The port's packet and byte counters.
    pub fn stats(&self) -> PortStats {
        self.stats
    }

    /// Counters specific to this port (oversize frames, syscall failures).
    pub fn counters(&self) -> PacketCounters {
        self.counters
    }

    /// The first error a `recv` or `send` hit since the last call (later ones are only counted).
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    fn keep_error(&mut self, e: io::Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// One non-blocking `recv` into `frame`'s buffer: Ok(Some(len)) for a frame (len may exceed
    /// the buffer: MSG_TRUNC reports the real length), Ok(None) when the queue is empty.
    #[inline]
    fn recv_into(fd: &OwnedFd, frame: &mut MemFrame) -> io::Result<Option<usize>> {
        let area = frame.payload_area();
        let cap = area.len().min(MAX_PACKET);
        loop {
            // SAFETY: `area` is a live, writable buffer of at least `cap` bytes, exclusively
            // borrowed for the call.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    area.as_mut_ptr().cast(),
                    cap,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(None),
                _ => return Err(e),
            }
        }
    }
}

impl std::fmt::Debug for PacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketPort")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("fd", &self.fd.as_raw_fd())
            .field("stats", &self.stats)
            .field("counters", &self.counters)
            .finish()
    }
}

impl Port for PacketPort {
    type Frame = MemFrame;

    fn rx_burst(&mut self, out: &mut Burst<MemFrame>) -> usize {
        let fd = &self.fd;
        let mut bytes = 0u64;
        let mut oversize = 0u64;
        let mut failure = None;
        let (n, dry) = self.pool.fill_burst(out, usize::MAX, |frame| {
            loop {
                match Self::recv_into(fd, frame) {
                    Ok(Some(len)) if len <= MAX_PACKET => {
                        frame.set_loaded_len(len);
                        bytes += len as u64;
                        return Some(());
                    }
                    // The kernel cut it to the buffer; a partial frame is worse than none.
                    Ok(Some(_)) => oversize += 1,
                    Ok(None) => return None,
                    Err(e) => {
                        failure = Some(e);
                        return None;
                    }
                }
            }
        });
        self.stats.rx_packets += n as u64;
        self.stats.rx_bytes += bytes;
        self.stats.rx_no_buffer += u64::from(dry);
        self.counters.rx_oversize += oversize;
        if let Some(e) = failure {
            self.counters.rx_errors += 1;
            self.keep_error(e);
        }
        n
    }

    fn tx_burst(&mut self, frames: &mut Burst<MemFrame>) -> usize {
        let mut accepted = 0;
        let mut bytes = 0u64;
        let mut failure = None;
        for frame in frames.iter() {
            let data = frame.data();
            // SAFETY: `data` is a live buffer of `data.len()` bytes for the duration of the call.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                // A full socket or device queue refuses the rest of the burst for a retry;
                // anything else is a real failure, kept for the owner.
                if !is_transient(&e) {
                    failure = Some(e);
                }
                break;
            }
            accepted += 1;
            bytes += data.len() as u64;
        }
        self.pool.release_all(frames.drain(..accepted));
        self.stats.tx_packets += accepted as u64;
        self.stats.tx_bytes += bytes;
        self.stats.tx_refused += frames.len() as u64;
        if let Some(e) = failure {
            self.counters.tx_errors += 1;
            self.keep_error(e);
        }
        accepted
    }

    fn release(&mut self, frame: MemFrame) {
        self.pool.release(frame);
    }

    fn flush(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(b >= a + 2_000_000, "{a} {b}");
    }

    #[test]
    fn bad_names_are_refused_with_the_name() {
        let pool = FramePool::new(1);
        for name in ["", "a-name-far-too-long", "nul\0byte"] {
            match PacketPort::open(name, pool.clone()) {
                Err(PacketError::InvalidName { ifname }) => assert_eq!(ifname, name),
                other => panic!("{name:?}: {other:?}"),
            }
        }
        let e = PacketPort::open("efwnosuchif0", pool).unwrap_err();
        assert!(matches!(e, PacketError::NoSuchInterface { .. }));
        assert!(e.to_string().contains("efwnosuchif0"), "{e}");
    }
}
