//! The ecmpfwd daemon as a library: config, table set-up, worker runtime, stats and the
//! in-process benchmark. `main.rs` is the thin command-line edge.
#![forbid(unsafe_code)]

pub mod bench;
pub mod config;
pub mod demo;
pub mod live;
pub mod runtime;
pub mod setup;
pub mod stats;
