//! The `NETLINK_ROUTE` socket: open, send, receive whole datagrams, and run a request to its end.
//!
//! The syscalls are the only `unsafe` here; each passes pointers to buffers this module owns,
//! with their true lengths.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::NetlinkError;
use super::wire::{
    self, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
    NLMSG_NOOP, NLMSG_OVERRUN, NlMsg, Request,
};

/// Starting receive buffer; grown to fit any larger datagram (peeked with `MSG_TRUNC` first).
const RECV_BUF: usize = 32 * 1024;
/// How long a request waits for the kernel's next reply datagram before giving up. The kernel
/// answers rtnetlink requests synchronously, so only a wedged system gets near this.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive buffer asked for on notification sockets, so bursts of neighbour changes between two
/// polls fit (root may exceed `net.core.rmem_max` with `SO_RCVBUFFORCE`).
const WATCH_RCVBUF: libc::c_int = 4 << 20;
/// `NLM_F_DUMP_INTR` retries before giving up on a consistent dump.
const DUMP_ATTEMPTS: u32 = 4;

/// One `NETLINK_ROUTE` socket with its receive buffer and sequence counter.
pub(crate) struct NlSocket {
    fd: OwnedFd,
    /// Port id the kernel assigned at bind; replies to our requests carry it.
    portid: u32,
    seq: u32,
    buf: Vec<u8>,
}

fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `val` lives across the call and the length passed is its size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&raw const val).cast::<libc::c_void>(),
            socklen_of::<libc::c_int>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn socklen_of<T>() -> libc::socklen_t {
    // Socket address and option types are a few dozen bytes; the cast cannot truncate.
    mem::size_of::<T>() as libc::socklen_t
}

fn kernel_addr() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain integers, for which all-zero is valid (pid 0 = the kernel).
    let mut a: libc::sockaddr_nl = unsafe { mem::zeroed() };
    a.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    a
}

impl NlSocket {
    /// A socket for request/reply exchanges (blocking, with [`REPLY_TIMEOUT`]).
    pub(crate) fn request_socket() -> Result<Self, NetlinkError> {
        let s = Self::open(0, 0)?;
        let fd = s.fd.as_fd();
        let tv = libc::timeval {
            tv_sec: REPLY_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: `tv` lives across the call and the length passed is its size.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast::<libc::c_void>(),
                socklen_of::<libc::timeval>(),
            )
        };
        if r < 0 {
            return Err(socket_err("setsockopt(SO_RCVTIMEO)"));
        }
        // Refinements only (error text from the kernel, shorter error echoes, the kernel filtering
        // dumps by the header's fields); every kernel this runs on has them, and nothing breaks
        // without them because replies are filtered here again.
        for opt in [
            libc::NETLINK_EXT_ACK,
            libc::NETLINK_CAP_ACK,
            libc::NETLINK_GET_STRICT_CHK,
        ] {
            let _ = setsockopt_int(fd, libc::SOL_NETLINK, opt, 1);
        }
        Ok(s)
    }

    /// A non-blocking socket subscribed to the multicast groups in `groups` (legacy bit mask).
    pub(crate) fn notification_socket(groups: u32) -> Result<Self, NetlinkError> {
        let s = Self::open(groups, libc::SOCK_NONBLOCK)?;
        let fd = s.fd.as_fd();
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, WATCH_RCVBUF).is_err() {
            // Without CAP_NET_ADMIN: take what rmem_max allows; overruns are reported anyway.
            setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, WATCH_RCVBUF).map_err(
                |source| NetlinkError::Socket {
                    op: "setsockopt(SO_RCVBUF)",
                    source,
                },
            )?;
        }
        Ok(s)
    }

    fn open(groups: u32, extra_type: libc::c_int) -> Result<Self, NetlinkError> {
        // SAFETY: plain syscall with constant arguments; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | extra_type,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(socket_err("socket(AF_NETLINK)"));
        }
        // SAFETY: `raw` is a freshly created descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut addr = kernel_addr();
        addr.nl_groups = groups;
        // SAFETY: `addr` is a valid sockaddr_nl and the length passed is its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                socklen_of::<libc::sockaddr_nl>(),
            )
        };
        if r < 0 {
            return Err(socket_err("bind(AF_NETLINK)"));
        }
        let mut bound = kernel_addr();
        let mut len = socklen_of::<libc::sockaddr_nl>();
        // SAFETY: `bound` and `len` describe a writable sockaddr_nl of the stated size.
        let r = unsafe {
            libc::getsockname(
                fd.as_raw_fd(),
                (&raw mut bound).cast::<libc::sockaddr>(),
                &raw mut len,
            )
        };
        if r < 0 {
            return Err(socket_err("getsockname(AF_NETLINK)"));
        }
        Ok(Self {
            fd,
            portid: bound.nl_pid,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        let addr = kernel_addr();
        loop {
            // SAFETY: `msg` and `addr` are valid for the lengths passed.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    msg.as_ptr().cast::<libc::c_void>(),
                    msg.len(),
                    0,
                    (&raw const addr).cast::<libc::sockaddr>(),
                    socklen_of::<libc::sockaddr_nl>(),
                )
            };
            if r >= 0 {
                // Netlink datagrams are sent whole or not at all.
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one whole datagram from the kernel into the buffer and returns its length.
    /// `flags` may add `MSG_DONTWAIT`. Datagrams from other sockets than the kernel's are dropped.
    pub(crate) fn recv(&mut self, flags: libc::c_int) -> io::Result<usize> {
        loop {
            // A zero-length peek with MSG_TRUNC reports the datagram's full size, so the buffer
            // can grow before the real read instead of losing a truncated datagram.
            // SAFETY: a zero-length read writes nothing through the null pointer.
            let want = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_PEEK | libc::MSG_TRUNC | flags,
                )
            };
            let Ok(want) = usize::try_from(want) else {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            };
            if want > self.buf.len() {
                self.buf.resize(want.next_power_of_two(), 0);
            }
            let mut from = kernel_addr();
            let mut from_len = socklen_of::<libc::sockaddr_nl>();
            // SAFETY: the buffer and the address are writable for the lengths passed.
            let got = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast::<libc::c_void>(),
                    self.buf.len(),
                    libc::MSG_TRUNC | flags,
                    (&raw mut from).cast::<libc::sockaddr>(),
                    &raw mut from_len,
                )
            };
            let Ok(got) = usize::try_from(got) else {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            };
            if got > self.buf.len() {
                // Only possible if another reader of this descriptor raced the peek; the
                // datagram is gone, and what is left of it cannot be parsed.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "netlink datagram of {got} bytes truncated to {}",
                        self.buf.len()
                    ),
                ));
            }
            if from.nl_pid != 0 {
                continue;
            }
            return Ok(got);
        }
    }

    /// The bytes of the last datagram [`recv`](Self::recv) returned.
    pub(crate) fn datagram(&self, len: usize) -> &[u8] {
        &self.buf[..len.min(self.buf.len())]
    }

    /// Sends `req` and feeds every data message of the reply to `on_msg` until the reply ends
    /// (`NLMSG_DONE` for dumps, the acknowledgement otherwise). Returns whether the kernel
    /// flagged the dump as interrupted by a concurrent change.
    fn exchange(
        &mut self,
        req: Request,
        what: &dyn Fn() -> String,
        on_msg: &mut dyn FnMut(&NlMsg<'_>) -> Result<(), NetlinkError>,
    ) -> Result<bool, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let dump = req.flags() & NLM_F_DUMP == NLM_F_DUMP;
        let bytes = req.finish(seq);
        self.send(&bytes).map_err(|source| NetlinkError::Io {
            what: what(),
            source,
        })?;
        let mut interrupted = false;
        loop {
            let n = self.recv(0).map_err(|source| {
                if matches!(
                    source.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    NetlinkError::Timeout {
                        what: what(),
                        timeout: REPLY_TIMEOUT,
                    }
                } else {
                    NetlinkError::Io {
                        what: what(),
                        source,
                    }
                }
            })?;
            for m in wire::messages(&self.buf[..n]) {
                let m = m.map_err(|e| NetlinkError::Malformed {
                    what: what(),
                    reason: e.0,
                })?;
                if m.seq != seq || m.pid != self.portid {
                    return Err(NetlinkError::UnexpectedReply {
                        what: what(),
                        seq: m.seq,
                        port: m.pid,
                        expected_seq: seq,
                        expected_port: self.portid,
                    });
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                match m.ty {
                    NLMSG_NOOP => {}
                    NLMSG_DONE => {
                        let errno = wire::decode_done(m.payload);
                        if errno != 0 {
                            return Err(NetlinkError::Kernel {
                                what: what(),
                                message: None,
                                source: io::Error::from_raw_os_error(errno),
                            });
                        }
                        return Ok(interrupted);
                    }
                    NLMSG_ERROR => {
                        let e = wire::decode_error(&m).map_err(|e| NetlinkError::Malformed {
                            what: what(),
                            reason: e.0,
                        })?;
                        if e.seq != seq {
                            return Err(NetlinkError::UnexpectedReply {
                                what: what(),
                                seq: e.seq,
                                port: m.pid,
                                expected_seq: seq,
                                expected_port: self.portid,
                            });
                        }
                        if e.errno != 0 {
                            return Err(NetlinkError::Kernel {
                                what: what(),
                                message: e.text,
                                source: io::Error::from_raw_os_error(e.errno),
                            });
                        }
                        if !dump {
                            return Ok(interrupted);
                        }
                    }
                    NLMSG_OVERRUN => {
                        return Err(NetlinkError::Malformed {
                            what: what(),
                            reason: "NLMSG_OVERRUN in a reply",
                        });
                    }
                    _ => on_msg(&m)?,
                }
            }
        }
    }

    /// Runs a request that is answered by data messages and then an acknowledgement.
    pub(crate) fn call(
        &mut self,
        req: Request,
        what: &dyn Fn() -> String,
        on_msg: &mut dyn FnMut(&NlMsg<'_>) -> Result<(), NetlinkError>,
    ) -> Result<(), NetlinkError> {
        self.exchange(req, what, on_msg).map(|_| ())
    }

    /// Runs a dump built by `make` (flags `NLM_F_REQUEST | NLM_F_DUMP` are the caller's), handing
    /// each data message to `decode` and collecting what it returns. A dump the kernel flags as
    /// inconsistent (the table changed while it was being sent) is run again.
    pub(crate) fn dump<T>(
        &mut self,
        make: &dyn Fn() -> Request,
        what: &dyn Fn() -> String,
        decode: &mut dyn FnMut(&NlMsg<'_>) -> Result<Option<T>, NetlinkError>,
        out: &mut Vec<T>,
    ) -> Result<(), NetlinkError> {
        let start = out.len();
        for _ in 0..DUMP_ATTEMPTS {
            out.truncate(start);
            let interrupted = self.exchange(make(), what, &mut |m| {
                if let Some(t) = decode(m)? {
                    out.push(t);
                }
                Ok(())
            })?;
            if !interrupted {
                return Ok(());
            }
        }
        Err(NetlinkError::DumpInterrupted {
            what: what(),
            attempts: DUMP_ATTEMPTS,
        })
    }
}

/// Flags of a dump request.
pub(crate) const DUMP_FLAGS: u16 = NLM_F_REQUEST | NLM_F_DUMP;
/// Flags of a request answered by an acknowledgement.
pub(crate) const ACKED_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK;

fn socket_err(op: &'static str) -> NetlinkError {
    NetlinkError::Socket {
        op,
        source: io::Error::last_os_error(),
    }
}
