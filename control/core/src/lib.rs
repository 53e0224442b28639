//! ecmpfwd control plane: the ExaBGP feed decoder and the RIB.
//!
//! - [`feed`]: one JSON line from the BGP companion -> one [`ecmp_proto::FeedEvent`].
//! - [`rib`]: paths per (peer, prefix, path id) -> per-prefix next-hop sets, returned as batches
//!   of [`rib::PrefixChange`] for the table builder.
//! - [`builder`]: prefix changes -> resilient groups, next hops and FIB deltas -> snapshots.
//!
//! Pure code: no threads, sockets or clocks (time is passed in). Control never depends on the data
//! path crates; it shares only `ecmp-tables` types with them.
#![forbid(unsafe_code)]

pub mod builder;
pub mod feed;
pub mod rib;

pub use feed::{FeedError, decode_line};
pub use rib::{
    HopSet, NextHopState, PathView, PeerState, PeerSummary, PrefixChange, Rib, RibConfig,
};
