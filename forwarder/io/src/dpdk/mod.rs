//! DPDK ports (feature `dpdk`): the EAL, mbuf pools, devices and [`DpdkPort`], the
//! [`Port`](ecmp_port::Port) over one queue pair of a DPDK device.
//!
//! How the pieces fit:
//! - [`Eal`] is initialised once per process (DPDK cannot do it twice) with the EAL arguments
//!   (cores, memory, huge pages or `--no-huge`, file prefix, `--vdev`s); everything else takes
//!   it as proof.
//! - [`Mempool`] (one per worker) is the packet memory: the worker's rx queues receive into it.
//! - [`DpdkDevice`] opens one device by PCI address or `--vdev` spec (`net_null0`, `net_ring0`,
//!   `net_pcap0,rx_pcap=..,tx_pcap=..`, `net_af_xdp0,iface=..`), with one rx and one tx queue
//!   per worker pool, RSS keyed with ecmpfwd's Toeplitz key when the device has RSS, and a
//!   headroom check against the longest encapsulation; it reads link state and xstats.
//! - [`DpdkPort`] polls one queue pair; [`DpdkFrame`] is the received mbuf itself, so a frame is
//!   forwarded without a copy, on any port of any device (an mbuf carries its pool).
//!
//! Frame ownership: every mbuf is in its pool, a device ring (rx descriptors, or tx until the
//! driver reclaims it), or the caller's hands (a [`DpdkFrame`]). With no frame in hand and the
//! devices closed, a pool's [`in_use`](Mempool::in_use) is zero; tests use that to prove nothing
//! leaked. A frame has no `Drop` hook: a dropped frame stays in use (the leak signal).
//!
//! After set-up the hot path (`rx_burst`, `tx_burst`, `release`, `flush`) never allocates and
//! never locks: DPDK's bursts and the pools' per-lcore caches (for threads registered with
//! [`Eal::register_thread`]) are lock-free.
#![allow(unsafe_code)]

mod device;
mod eal;
mod error;
mod frame;
mod inner;
mod pool;
mod port;

pub use device::{DeviceConfig, DeviceStats, DpdkDevice, LinkState};
pub use eal::Eal;
pub use error::DpdkError;
pub use frame::DpdkFrame;
pub use pool::{Mempool, PoolConfig, default_headroom};
pub use port::{DpdkPort, DpdkPortStats};

/// Length of a Toeplitz RSS key (the one ecmpfwd's hash uses, and NICs' RSS).
pub const RSS_KEY_LEN: usize = 40;
