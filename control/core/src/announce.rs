//! Health-driven announcements of `[[bgp.announce]]` prefixes (the VIPs this forwarder attracts
//! traffic for): the companion is told, as ExaBGP API commands on every feed connection, to
//! announce a prefix while ecmpfwd can serve it and to withdraw it when it cannot.
//!
//! A prefix is served when nothing below holds, checked in this order (the first one found is
//! the reason shown):
//! 1. the daemon is stopping ([`WithdrawReason::ShuttingDown`]);
//! 2. a worker has not completed a poll for the configured stall time
//!    ([`WithdrawReason::WorkersStalled`], judged by [`StallWatch`] from the poll counters the
//!    workers publish);
//! 3. the route for exactly that prefix (the installed one: static over BGP) has no active,
//!    resolved member owning buckets ([`WithdrawReason::NoActiveHop`]).
//!
//! Pure: no threads, sockets or clocks (time is passed in). [`Announcer::update`] returns only
//! the commands of prefixes whose state changed; [`Announcer::commands`] the whole state, for a
//! companion that just connected (withdrawn prefixes included, so a companion that outlived an
//! earlier ecmpfwd forgets what it was told then).
//!
//! If ecmpfwd dies no withdraw is written: the companion must withdraw when the feed session ends
//! (the README's companion helper ends ExaBGP then, which closes its BGP sessions).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ecmp_proto::ctl::{AnnounceLine, WithdrawReason};
use ecmp_proto::{Community, Prefix};

/// Default `[bgp] announce_stall_time`: a worker this long without a poll withdraws everything.
pub const DEFAULT_STALL_TIME: Duration = Duration::from_secs(1);
/// Default `[bgp] announce_grace`: how long SIGTERM waits, withdrawn, before stopping.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);

/// The next hop an announcement carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceNextHop {
    /// The companion's own address on each session (ExaBGP's `next-hop self`).
    Local,
    /// This address.
    Addr(IpAddr),
}

/// One `[[bgp.announce]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceSpec {
    /// The prefix announced.
    pub prefix: Prefix,
    /// Its next hop.
    pub next_hop: AnnounceNextHop,
    /// MULTI_EXIT_DISC, if set.
    pub med: Option<u32>,
    /// Standard communities attached.
    pub communities: Vec<Community>,
    /// The companion's neighbours it goes to (empty: every neighbour).
    pub neighbors: Vec<IpAddr>,
}

impl AnnounceSpec {
    fn next_hop_text(&self) -> String {
        match self.next_hop {
            AnnounceNextHop::Local => "self".to_owned(),
            AnnounceNextHop::Addr(a) => a.to_string(),
        }
    }

    /// ExaBGP's neighbour selector (`neighbor A, neighbor B `), or nothing for every one.
    fn selector(&self) -> String {
        let names: Vec<String> = self
            .neighbors
            .iter()
            .map(|n| format!("neighbor {n}"))
            .collect();
        if names.is_empty() {
            String::new()
        } else {
            format!("{} ", names.join(", "))
        }
    }

    /// The ExaBGP API command that announces the prefix.
    pub fn announce_command(&self) -> String {
        let mut out = format!(
            "{}announce route {} next-hop {}",
            self.selector(),
            self.prefix,
            self.next_hop_text()
        );
        if let Some(med) = self.med {
            // Writing to a String cannot fail.
            let _ = write!(out, " med {med}");
        }
        if !self.communities.is_empty() {
            let list: Vec<String> = self.communities.iter().map(ToString::to_string).collect();
            let _ = write!(out, " community [{}]", list.join(" "));
        }
        out
    }

    /// The ExaBGP API command that withdraws it.
    pub fn withdraw_command(&self) -> String {
        format!(
            "{}withdraw route {} next-hop {}",
            self.selector(),
            self.prefix,
            self.next_hop_text()
        )
    }
}

/// What the config asks of the announcements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceConfig {
    /// The prefixes, in config order.
    pub entries: Vec<AnnounceSpec>,
    /// A worker without a poll this long counts as stalled.
    pub stall_time: Duration,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        AnnounceConfig {
            entries: Vec::new(),
            stall_time: DEFAULT_STALL_TIME,
        }
    }
}

/// Judges worker progress from their poll counters: a worker whose counter has not moved for
/// the stall time is stalled. A worker is given the stall time from the first observation.
#[derive(Debug, Clone)]
pub struct StallWatch {
    stall_time: Duration,
    /// Per worker: its last poll count and when it last changed.
    seen: Vec<(u64, Instant)>,
}

impl StallWatch {
    /// A watch that calls a worker stalled after `stall_time` without a poll.
    pub fn new(stall_time: Duration) -> StallWatch {
        StallWatch {
            stall_time,
            seen: Vec::new(),
        }
    }

    /// Records the poll counts now; the first stalled worker and how long it has gone without
    /// a poll, if any.
    pub fn observe(&mut self, polls: &[u64], now: Instant) -> Option<(usize, Duration)> {
        if self.seen.len() != polls.len() {
            // Another worker set: every worker starts afresh.
            self.seen = polls.iter().map(|&p| (p, now)).collect();
            return None;
        }
        let mut stalled = None;
        for (worker, (&polls, seen)) in polls.iter().zip(&mut self.seen).enumerate() {
            if polls != seen.0 {
                *seen = (polls, now);
            }
            let quiet = now.saturating_duration_since(seen.1);
            if stalled.is_none() && quiet >= self.stall_time {
                stalled = Some((worker, quiet));
            }
        }
        stalled
    }
}

/// What the announcements are judged by at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Health<F> {
    /// Whether the route for this prefix has an active, resolved member owning buckets.
    pub serving: F,
    /// The first stalled worker and how long it has been quiet.
    pub stalled: Option<(usize, Duration)>,
    /// The daemon is stopping.
    pub shutting_down: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    spec: AnnounceSpec,
    /// `None`: announced.
    withdrawn: Option<WithdrawReason>,
    /// When it was last announced or withdrawn.
    since: Instant,
}

/// The state of every `[[bgp.announce]]` prefix. See the module doc.
#[derive(Debug, Clone)]
pub struct Announcer {
    entries: Vec<Entry>,
}

impl Announcer {
    /// Every prefix withdrawn (nothing is served before the first update).
    pub fn new(entries: Vec<AnnounceSpec>, now: Instant) -> Announcer {
        Announcer {
            entries: entries
                .into_iter()
                .map(|spec| Entry {
                    spec,
                    withdrawn: Some(WithdrawReason::NoActiveHop),
                    since: now,
                })
                .collect(),
        }
    }

    /// No prefix to announce.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Judges every prefix; the commands for those whose state changed (announced <->
    /// withdrawn), in config order. A withdrawn prefix's reason follows the health without a
    /// command.
    pub fn update<F: Fn(&Prefix) -> bool>(
        &mut self,
        health: &Health<F>,
        now: Instant,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for e in &mut self.entries {
            let why = if health.shutting_down {
                Some(WithdrawReason::ShuttingDown)
            } else if let Some((worker, quiet)) = health.stalled {
                Some(WithdrawReason::WorkersStalled {
                    worker,
                    stalled_ms: u64::try_from(quiet.as_millis()).unwrap_or(u64::MAX),
                })
            } else if !(health.serving)(&e.spec.prefix) {
                Some(WithdrawReason::NoActiveHop)
            } else {
                None
            };
            match (e.withdrawn.is_some(), why.is_some()) {
                (true, false) => {
                    out.push(e.spec.announce_command());
                    e.since = now;
                }
                (false, true) => {
                    out.push(e.spec.withdraw_command());
                    e.since = now;
                }
                // The kind of a withdrawal may change (stalled, then stopping) without a
                // command; the stall time shown is the one noticed first.
                (true, true) if e.withdrawn.map(|w| w.kind()) == why.map(|w| w.kind()) => {
                    continue;
                }
                _ => {}
            }
            e.withdrawn = why;
        }
        out
    }

    /// The command for every prefix's current state, for a companion that just connected.
    pub fn commands(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| match e.withdrawn {
                None => e.spec.announce_command(),
                Some(_) => e.spec.withdraw_command(),
            })
            .collect()
    }

    /// Every prefix's state, for `announcements`, `stats` and the metrics.
    pub fn lines(&self, now: Instant) -> Vec<AnnounceLine> {
        self.entries
            .iter()
            .map(|e| AnnounceLine {
                prefix: e.spec.prefix,
                next_hop: e.spec.next_hop_text(),
                announced: e.withdrawn.is_none(),
                reason: e.withdrawn,
                since_s: now.saturating_duration_since(e.since).as_secs_f64(),
                command: match e.withdrawn {
                    None => e.spec.announce_command(),
                    Some(_) => e.spec.withdraw_command(),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
