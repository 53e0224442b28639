//! Raw bindings to the system's DPDK (Debian's libdpdk-dev, 22.11): the EAL, ethdev, mempool,
//! mbuf and lcore APIs that `ecmp-io`'s DPDK ports use, and nothing else (bindgen runs with a
//! tight allowlist).
//!
//! DPDK's fast-path functions (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, ...) are `static inline`
//! in its headers, so they have no symbol to link against; `src/shim.c` wraps each one in a
//! plain function named `ecmp_<name>`, and exports the function-like macros the ports need
//! (RSS hash types) as `ECMP_<NAME>` constants.
//!
//! Everything here is behind the `dpdk` feature (off by default): without it the crate is empty
//! and its build script runs neither pkg-config nor bindgen, so a workspace build needs no DPDK.
//! Safe wrappers live in `ecmp-io` (feature `dpdk`), never here.
#![cfg(feature = "dpdk")]
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(missing_docs, clippy::all, rust_2018_idioms, unsafe_op_in_unsafe_fn)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
