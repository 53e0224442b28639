//! AF_XDP ports: the XDP program that steers packets into sockets, a per-worker UMEM, and
//! [`XskPort`], the [`Port`](ecmp_port::Port) over one AF_XDP socket.
//!
//! How the pieces fit:
//! - [`XdpProgram`] (one per interface, owned by whoever sets the interface up) loads
//!   `bpf/redirect.bpf.c` and attaches it through a bpf_link, so nothing stays attached when the
//!   process dies. The program redirects transit IPv4/IPv6 packets to the socket registered for
//!   the receiving queue in its `xsks` map and passes everything the host needs to the kernel.
//! - [`Umem`] (one per worker) is the packet memory all of that worker's sockets share
//!   (`XDP_SHARED_UMEM`), with one free list of chunk addresses. Because the memory is shared, a
//!   frame received on one port is sent on another by moving its descriptor: no copy.
//! - [`XskPort`] (one per interface queue per worker) owns a socket and its four rings.
//! - Two programs for the benchmarks, not part of forwarding: [`DropSink`] (`bpf/sink.bpf.c`)
//!   counts and drops the generator's tagged packets in XDP on a backend; [`FibForwarder`]
//!   (`bpf/fib.bpf.c`) is the in-kernel XDP forwarding baseline (bpf_fib_lookup + redirect).
//!
//! Frame ownership: every chunk of a [`Umem`] is in exactly one place: the free list, a port's
//! fill ring or rx ring (counted by [`XskPort::kernel_held`]), the caller's hands (an
//! [`XdpFrame`]), or a port's tx or completion ring (also counted by `kernel_held`). So with no
//! frame in the caller's hands, `umem.outstanding()` equals the sum of the ports' `kernel_held()`;
//! tests use that to prove nothing leaked. Like [`MemFrame`](ecmp_port::memory::MemFrame), an
//! `XdpFrame` has no `Drop` hook: a dropped frame stays outstanding for good (the leak signal).
//!
//! After construction the hot path (`rx_burst`, `tx_burst`, `release`, `flush`) never allocates,
//! never locks, and makes at most one syscall per call (a wakeup, only when the kernel asks for
//! one).
#![allow(unsafe_code)]

mod error;
mod fib;
mod frame;
mod linked;
mod program;
mod ring;
mod sink;
mod socket;
mod sys;
mod umem;

pub use error::XdpError;
pub use fib::{FibCounters, FibForwarder};
pub use frame::XdpFrame;
pub use program::{AttachMode, XdpCounters, XdpProgram};
pub use sink::{DropSink, DropSinkCounters};
pub use socket::{BindMode, XskConfig, XskKernelStats, XskPort, XskStats};
pub use umem::{FRAME_SIZE, UMEM_HEADROOM, Umem, UmemConfig};
