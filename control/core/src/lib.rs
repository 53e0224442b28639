//! ecmpfwd control plane: the ExaBGP feed decoder, the RIB, the table builder, the control thread
//! and its socket front ends.
//!
//! - [`feed`]: one JSON line from the BGP companion -> one [`ecmp_proto::FeedEvent`].
//! - [`rib`]: paths per (peer, prefix, path id) -> per-prefix next-hop sets, returned as batches
//!   of [`rib::PrefixChange`] for the table builder.
//! - [`announce`]: which `[[bgp.announce]]` prefixes the companion announces, and why not.
//! - [`builder`]: prefix changes -> resilient groups, next hops and FIB deltas -> snapshots.
//! - [`control`]: the control thread: owns the RIB and the builder, coalesces what arrives
//!   together, publishes snapshots, answers control requests and runs the upkeep hook; the
//!   [`control::Dataplane`] handle is how it asks the data side.
//! - [`socket`]: binding a front end's Unix socket and checking its peers (`SO_PEERCRED`).
//! - [`feed_server`]: the feed socket the companion's helper connects to.
//! - [`ctl_server`]: the control socket `ecmpctl` talks to.
//! - [`metrics`]: what the control thread knows, as a Prometheus exposition.
//! - [`metrics_server`]: `GET /metrics` over TCP, for a Prometheus server to scrape.
//!
//! The front ends depend on [`control`] and [`socket`] and never on each other; the control
//! thread knows them only as [`control::FrontEnd`]s. `feed`, `rib` and `builder` are pure (no
//! threads, sockets or clocks: time is passed in). Control never depends on the data path
//! crates; it shares only `ecmp-tables` types with them.
#![forbid(unsafe_code)]

pub mod announce;
pub mod builder;
pub mod control;
pub mod ctl_server;
pub mod feed;
pub mod feed_server;
pub mod metrics;
pub mod metrics_server;
pub mod rib;
pub mod socket;
#[cfg(test)]
mod testkit;

pub use feed::{FeedError, decode_line};
pub use rib::{
    HopSet, NextHopState, PathView, PeerState, PeerSummary, PrefixChange, Rib, RibConfig,
};
