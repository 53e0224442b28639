//! Real ports for ecmpfwd, behind the [`Port`](ecmp_port::Port) seam of `ecmp-port`.
//!
//! - [`xdp`]: AF_XDP sockets over a per-worker shared UMEM, and the XDP program that redirects
//!   transit traffic to them (attached through a bpf_link).
//! - [`packet`]: an AF_PACKET port (one syscall per packet: the generator's fallback and the
//!   sinks' receiver, never the forwarder's data path).
//! - [`pcap`]: capture readers (classic pcap and pcapng, parsed by pcap-file), a classic pcap
//!   writer and [`PcapPort`](pcap::PcapPort) (rx from one capture, tx appended to another).
//! - [`netlink`]: rtnetlink interfaces, addresses and neighbours.
//! - `dpdk` (feature `dpdk`, off by default): DPDK ports over any device DPDK drives, physical
//!   or virtual, through the `ecmp-dpdk-sys` binding.
//! - [`tsc`]: the time-stamp counter, for the workers' busy-cycle accounting.
//! - [`pcap_filter`]: tcpdump filter expressions compiled to classic BPF by libpcap.
//!
//! Every port here keeps the invariants `ecmp-port` states (one owner per frame, refused frames
//! stay in the burst, no allocation after construction). The frames of the memory-backed ports
//! (pcap, AF_PACKET) come from `ecmp_port::memory::FramePool`.
//!
//! With `ecmp-port`, the one crate of the workspace that may use `unsafe` (AF_XDP and netlink need
//! it); each `unsafe` block is allowed module by module and carries a `// SAFETY:` comment.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod error;
pub mod netlink;
pub mod packet;
pub mod pcap;
pub mod pcap_filter;
pub mod tsc;
pub mod xdp;

pub use error::IoError;
