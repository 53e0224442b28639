//! ecmpfwd control-plane messages shared by the daemon's control side and `ecmpctl`.
//!
//! - [`ctl`]: the control socket's requests and replies (`ecmpctl`).
//! - [`digest`]: the table digests operators compare across forwarders.
//! - [`feed`]: the events the ExaBGP feed decoder produces ([`FeedEvent`]) and the route vocabulary
//!   they use ([`Prefix`], [`PathId`], [`Family`], [`Community`]).
//!
//! Every type here is plain data with serde derives; validation happens in the constructors
//! ([`Prefix::new`], `FromStr`), so a value that exists is well formed.
#![forbid(unsafe_code)]

pub mod ctl;
pub mod digest;
pub mod feed;
mod prefix;

pub use feed::{
    Announce, AsPathSegment, Attributes, Community, FeedEvent, Neighbor, Nlri, Origin, SegmentKind,
    SessionState, Update,
};
pub use prefix::{Family, PathId, Prefix, ProtoError};
