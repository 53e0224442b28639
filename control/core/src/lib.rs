//! ecmpfwd control plane: the ExaBGP feed decoder, the RIB, the table builder and the feed server.
//!
//! - [`feed`]: one JSON line from the BGP companion -> one [`ecmp_proto::FeedEvent`].
//! - [`rib`]: paths per (peer, prefix, path id) -> per-prefix next-hop sets, returned as batches
//!   of [`rib::PrefixChange`] for the table builder.
//! - [`builder`]: prefix changes -> resilient groups, next hops and FIB deltas -> snapshots.
//! - [`feed_server`]: the Unix socket the companion's helper connects to; a control thread owns
//!   the RIB and the builder, coalesces what arrives together and publishes snapshots.
//!
//! - [`ctl_server`]: the control socket `ecmpctl` talks to, answered by the same control thread.
//!
//! `feed`, `rib` and `builder` are pure (no threads, sockets or clocks: time is passed in); only
//! `feed_server` does I/O. Control never depends on the data path crates; it shares only
//! `ecmp-tables` types with them.
#![forbid(unsafe_code)]

pub mod builder;
pub mod ctl_server;
pub mod feed;
pub mod feed_server;
pub mod rib;

pub use feed::{FeedError, decode_line};
pub use rib::{
    HopSet, NextHopState, PathView, PeerState, PeerSummary, PrefixChange, Rib, RibConfig,
};
