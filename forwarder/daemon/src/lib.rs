//! The ecmpfwd daemon as a library: config, table set-up, the runtimes (pcap replay in
//! [`replay`], the AF_XDP forwarder in [`afxdp`], the DPDK forwarder in `dpdk` with the cargo
//! feature `dpdk`), stats, the in-process memory rig ([`rig`]) and
//! the benchmark and demo that run on it.
//! `main.rs` is the thin command-line edge (and the only place for `anyhow`).
#![forbid(unsafe_code)]

pub mod affinity;
pub mod afxdp;
pub mod bench;
pub mod capture;
pub mod config;
pub mod demo;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod reload;
pub mod replay;
pub mod rig;
pub mod sdnotify;
pub mod setup;
pub mod stats;
