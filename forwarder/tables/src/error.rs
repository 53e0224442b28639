//! The one error type of the tables layer.

use crate::nexthop::{GroupId, HopId};

/// Why a table update was refused. A refused update leaves the table unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The prefix length is longer than the address.
    #[error("prefix length {len} exceeds the address width {max}")]
    PrefixLength {
        /// The length given.
        len: u8,
        /// The address width (32 or 128).
        max: u8,
    },
    /// Group id 0 means "no route" (rule 8): remove the prefix instead of installing 0.
    #[error("group id 0 cannot be installed; it means no route")]
    ZeroGroup,
    /// The group id does not fit the FIB entry encoding.
    #[error("group id {group} exceeds the FIB limit {max}")]
    GroupTooLarge {
        /// The group id given.
        group: GroupId,
        /// The largest group id a FIB entry holds.
        max: GroupId,
    },
    /// Every tbl8 group of the IPv4 FIB is in use; the prefix longer than /24 was not installed.
    #[error("all {max} tbl8 groups are in use")]
    Tbl8Exhausted {
        /// The configured number of tbl8 groups.
        max: usize,
    },
    /// A group's bucket count must be a power of two in 1..=65536.
    #[error("bucket count {0} is not a power of two in 1..=65536")]
    BucketCount(u32),
    /// Hop id 0 means "unset" (rule 8) and cannot be a member.
    #[error("hop id 0 cannot be a group member")]
    ZeroHop,
    /// A member needs a positive weight (use `Draining` to take a hop out gracefully).
    #[error("hop {0} was given weight 0")]
    ZeroWeight(HopId),
    /// The hop is not a member of the group.
    #[error("hop {0} is not a member of the group")]
    UnknownHop(HopId),
    /// A group lists at most this many members (member indices are `u16`).
    #[error("a group holds at most {max} members")]
    TooManyMembers {
        /// The member limit.
        max: usize,
    },
    /// `upkeep` needs one last-used time per bucket.
    #[error("expected {expected} last-used times (one per bucket), got {got}")]
    LastUsedLength {
        /// The group's bucket count.
        expected: usize,
        /// The number of times given.
        got: usize,
    },
    /// Every quiescence slot of the snapshot cell is taken.
    #[error("all {max} reader slots are registered")]
    ReadersExhausted {
        /// The cell's reader capacity.
        max: usize,
    },
}
