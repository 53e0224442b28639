//! The batch pipeline of ecmpfwd: parse -> flow key/hash -> flow cache -> lookup -> rewrite/encap.
//!
//! No I/O and no threads here: ports implement [`ecmp_port::Port`] (the `ecmp-port` crate, which
//! needs no system libraries); [`worker::Worker`] is one poll-mode worker's loop body, generic over
//! the port type; threads live in the daemon.
#![forbid(unsafe_code)]

pub mod action;
pub mod capture;
pub mod counters;
pub mod drop;
pub mod error;
pub mod flow;
pub mod flowcache;
pub mod hash;
pub mod pipeline;
pub mod worker;
