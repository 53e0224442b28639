//! What one scrape of the metrics front end shows, gathered by the control thread (rendered by
//! [`crate::metrics`], which depends on this and not the other way round).

use ecmp_proto::ctl::{AnnounceLine, NexthopSummary, PeerLine, StatsReply};

use super::stats::FeedStats;
use crate::builder::GroupMoves;

/// Upper bounds, in seconds, of the convergence histogram's buckets (the target is 1 ms).
pub const CONVERGENCE_BOUNDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A histogram already counted into fixed buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondsHistogram {
    /// Sum of the samples, in seconds.
    pub sum: f64,
    /// Samples.
    pub count: u64,
    /// (upper bound in seconds, samples at or below it): cumulative, ascending bounds.
    pub buckets: Vec<(f64, u64)>,
}

/// Everything one scrape shows, gathered by the control thread in one turn so that the values
/// agree with each other.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// The data side's counters (no ports or workers without a data plane).
    pub stats: StatsReply,
    /// The feed's and the control thread's counters.
    pub feed: FeedStats,
    /// Every next hop in use.
    pub nexthops: Vec<NexthopSummary>,
    /// Feed sessions.
    pub peers: Vec<PeerLine>,
    /// Groups whose buckets moved, with how many.
    pub bucket_moves: Vec<GroupMoves>,
    /// Routes held (BGP and static).
    pub routes: u64,
    /// The generation the latest publication got.
    pub generation: u64,
    /// The oldest generation a worker still runs (None without a data plane).
    pub applied_generation: Option<u64>,
    /// Update read -> every worker on the new tables.
    pub convergence: SecondsHistogram,
    /// The `[[bgp.announce]]` prefixes' states.
    pub announce: Vec<AnnounceLine>,
}
