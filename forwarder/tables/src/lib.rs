//! What control builds and workers read: the FIBs, next hops, resilient groups and the published
//! snapshot. Pure data structures: no threads, no I/O.
#![forbid(unsafe_code)]

pub mod error;
pub mod fib;
mod fib6;
pub mod group;
pub mod nexthop;
pub mod paged;
pub mod policy;
pub mod snapshot;

pub use error::TableError;
pub use fib::{Fib4, MAX_GROUP_ID};
pub use fib6::Fib6;
pub use group::{GroupMode, GroupTable, MAX_BUCKETS, MAX_MEMBERS, Member, ResilientGroup};
pub use snapshot::{Groups, OFFLINE, ReaderId, Snapshot, SnapshotCell};
