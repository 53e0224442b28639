//! The RIB: every path the BGP companion reported, and what each prefix's next-hop group must be.
//!
//! Paths are keyed by (peer, prefix, path id) and carry their next hop, what BGP path selection
//! compares of them ([`PathRank`]: local preference, AS-path length, origin, MED) and whether
//! they carry GRACEFUL_SHUTDOWN (65535:0). A prefix's group is the set of its paths' next hops,
//! every announced one a member; which of them take new flows is BGP multipath selection
//! ([`select`] has the rule):
//! - The candidates are the paths without GRACEFUL_SHUTDOWN; the multipath set is those tied
//!   best among them. A hop is [`NextHopState::Active`] when at least one path to it is in the
//!   set.
//! - Otherwise it is [`NextHopState::Draining`] (established flows stay, no new ones), with the
//!   reason: [`DrainReason::NotBest`] when some path to it is a candidate that lost (the step
//!   and values of the one that got furthest), [`DrainReason::GracefulShutdown`] when every
//!   path to it carries the community. A hop returns to active as soon as a path to it ties
//!   the best again.
//! - GRACEFUL_SHUTDOWN paths are never candidates, so a prefix whose paths all carry it has
//!   every hop draining. RFC 8326 lowers their LOCAL_PREF to 0 instead, which differs only
//!   there: it would still pick a best among them. Draining them all keeps what the operator
//!   asked for (take these servers out) and what ecmpfwd always did; their established flows
//!   stay, and what the group does with new flows when no member is active is its mode's rule.
//! - Stale paths (peer down, within the stale time) and paths awaiting a refresh are selected
//!   like any other: they forward until they go, and so they keep competing until they go.
//!
//! Invariants:
//! - `peers[p].paths` holds exactly the keys `(prefix, path id)` of peer `p` in `prefixes`, and
//!   no prefix maps to an empty path map.
//! - Every mutation goes through one batch: the operation records each touched prefix's hop set
//!   before its first change and returns one [`PrefixChange`] per prefix whose hop set differs at
//!   the end. Intermediate states (a path removed then re-added within one operation) are never
//!   reported, which is what makes a refresh atomic from the FIB's point of view.
//!
//! Time is passed in (`now`), never read, so everything here is deterministic and testable.
//! Peer down: the peer's paths get a deadline `now + stale_time` (0 removes them at once) and
//! keep forwarding until [`Rib::expire`] passes it or the peer re-announces them. Peer up or
//! [`Rib::begin_refresh`]: the peer's paths are marked; re-announced ones are unmarked; at
//! End-of-RIB for a family, [`Rib::end_refresh`], or the refresh timeout (in [`Rib::expire`]) the
//! still-marked ones go, in one batch.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ecmp_proto::ctl::DrainReason;
use ecmp_proto::{Family, FeedEvent, Neighbor, Nlri, PathId, Prefix, SessionState, Update};
use ecmp_tables::nexthop::HopState;

pub mod select;

pub use select::{Loss, PathRank};

/// Default time a down peer's paths keep forwarding (zero: removed at once).
pub const DEFAULT_STALE_TIME: Duration = Duration::ZERO;
/// Default time a refresh waits for End-of-RIB. A full resend of 4,000 ADD-PATH paths took
/// 2.5 s; this leaves a wide margin.
pub const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

/// RIB timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RibConfig {
    /// How long a down peer's paths keep forwarding. Zero removes them at once.
    pub stale_time: Duration,
    /// How long a refresh may wait for End-of-RIB before unconfirmed paths are dropped anyway
    /// (some speakers, e.g. GoBGP without graceful restart, never send End-of-RIB).
    pub refresh_timeout: Duration,
}

impl Default for RibConfig {
    fn default() -> Self {
        RibConfig {
            stale_time: DEFAULT_STALE_TIME,
            refresh_timeout: DEFAULT_REFRESH_TIMEOUT,
        }
    }
}

/// A next hop's state within one prefix's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHopState {
    /// A path to it is in the multipath set: takes new flows.
    Active,
    /// Still announced but no path to it is selected: keeps its flows, takes no new ones.
    Draining(DrainReason),
}

impl From<NextHopState> for HopState {
    fn from(s: NextHopState) -> HopState {
        match s {
            NextHopState::Active => HopState::Active,
            NextHopState::Draining(_) => HopState::Draining,
        }
    }
}

/// A prefix's next hops and their states.
pub type HopSet = BTreeMap<IpAddr, NextHopState>;

/// One prefix whose group changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixChange {
    /// Which prefix.
    pub prefix: Prefix,
    /// Its whole new hop set; empty when the prefix has no path left (the route goes).
    pub hops: HopSet,
    /// Hops that lost their last path for this prefix (the builder marks them failed), ascending.
    pub removed: Vec<IpAddr>,
}

/// A session's state as the RIB last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// TCP connected, not established.
    Connected,
    /// Established.
    Up,
    /// Closed; its paths are stale or gone.
    Down,
}

/// One peer, for the `peers` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSummary {
    /// The session as last printed by the companion.
    pub neighbor: Neighbor,
    /// Session state.
    pub state: PeerState,
    /// The reason given when it last went down.
    pub last_down_reason: Option<String>,
    /// Paths held (including stale ones).
    pub paths: usize,
    /// Of those, paths kept only until the stale deadline.
    pub stale: usize,
    /// Families with a refresh in progress.
    pub refreshing: Vec<Family>,
}

/// One path, for inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathView {
    /// Who announced it.
    pub peer: IpAddr,
    /// Its key within the peer.
    pub nlri: Nlri,
    /// Where it points.
    pub next_hop: IpAddr,
    /// What path selection compares.
    pub rank: PathRank,
    /// Carries GRACEFUL_SHUTDOWN.
    pub graceful_shutdown: bool,
    /// The peer went down; the path goes at this deadline unless re-announced.
    pub stale_until: Option<Instant>,
    /// A refresh is in progress and this path has not been re-announced yet.
    pub refresh_pending: bool,
}

#[derive(Debug, Clone)]
struct PathEntry {
    next_hop: IpAddr,
    rank: PathRank,
    graceful_shutdown: bool,
    stale_until: Option<Instant>,
    refresh_pending: bool,
}

#[derive(Debug, Clone)]
struct PeerEntry {
    neighbor: Neighbor,
    state: PeerState,
    last_down_reason: Option<String>,
    paths: BTreeSet<Nlri>,
    /// A lower bound of this peer's stale deadlines (re-announces do not raise it; `expire`
    /// recomputes it), so `expire` visits only peers that may have something to remove.
    earliest_stale: Option<Instant>,
    /// Per family (indexed by [`Family::index`]): when the refresh in progress times out.
    refresh_until: [Option<Instant>; 2],
}

impl PeerEntry {
    fn new(neighbor: Neighbor) -> PeerEntry {
        PeerEntry {
            neighbor,
            state: PeerState::Connected,
            last_down_reason: None,
            paths: BTreeSet::new(),
            earliest_stale: None,
            refresh_until: [None; 2],
        }
    }
}

type PathKey = (IpAddr, Option<PathId>);

/// One prefix's paths, ascending by key. A prefix has a path per announcing peer and path id, a
/// handful at most, so a sorted vector: one small allocation per prefix, where a `BTreeMap`
/// allocates a leaf of eleven entries for its first one. At a million prefixes that leaf was
/// most of the RIB's memory and of its insert time (page faults and `malloc`).
#[derive(Debug, Clone, Default)]
struct Paths(Vec<(PathKey, PathEntry)>);

impl Paths {
    fn find(&self, key: &PathKey) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(key))
    }

    fn get(&self, key: &PathKey) -> Option<&PathEntry> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    fn get_mut(&mut self, key: &PathKey) -> Option<&mut PathEntry> {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    fn contains_key(&self, key: &PathKey) -> bool {
        self.find(key).is_ok()
    }

    /// Inserts or replaces the path under `key`.
    fn insert(&mut self, key: PathKey, path: PathEntry) {
        match self.find(&key) {
            Ok(i) => self.0[i].1 = path,
            Err(i) => self.0.insert(i, (key, path)),
        }
    }

    fn remove(&mut self, key: &PathKey) -> Option<PathEntry> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (&PathKey, &PathEntry)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    fn values(&self) -> impl Iterator<Item = &PathEntry> {
        self.0.iter().map(|(_, v)| v)
    }
}

/// Hop sets of the prefixes touched by one operation, as they were before it.
#[derive(Default)]
struct Batch {
    before: BTreeMap<Prefix, HopSet>,
}

/// Paths per (peer, prefix, path id) and the hop set they imply per prefix. See the module doc.
#[derive(Debug, Clone)]
pub struct Rib {
    config: RibConfig,
    prefixes: BTreeMap<Prefix, Paths>,
    peers: BTreeMap<IpAddr, PeerEntry>,
}

impl Rib {
    /// An empty RIB.
    pub fn new(config: RibConfig) -> Rib {
        Rib {
            config,
            prefixes: BTreeMap::new(),
            peers: BTreeMap::new(),
        }
    }

    /// Replaces the timing (a config reload). Deadlines already set keep theirs: a peer down
    /// before the change keeps its old stale time, a refresh under way its old timeout.
    pub fn set_config(&mut self, config: RibConfig) {
        self.config = config;
    }

    /// The timing it was built with.
    pub fn config(&self) -> RibConfig {
        self.config
    }

    /// Applies one feed event at time `now`; returns the changed prefixes, ascending, as one batch.
    pub fn apply(&mut self, event: &FeedEvent, now: Instant) -> Vec<PrefixChange> {
        let mut batch = Batch::default();
        match event {
            FeedEvent::State { neighbor, state } => match state {
                SessionState::Connected => {
                    self.peer_mut(neighbor).state = PeerState::Connected;
                }
                SessionState::Up => {
                    self.peer_mut(neighbor).state = PeerState::Up;
                    // A new session resends everything; whatever it does not resend is gone.
                    if !self.peer_mut(neighbor).paths.is_empty() {
                        self.begin_refresh(neighbor.peer, now);
                    }
                }
                SessionState::Down { reason } => {
                    self.peer_mut(neighbor).last_down_reason = reason.clone();
                    self.peer_down(&mut batch, neighbor.peer, now);
                }
            },
            FeedEvent::Update { neighbor, update } => {
                self.peer_mut(neighbor).state = PeerState::Up;
                self.apply_update(&mut batch, neighbor.peer, update);
            }
            FeedEvent::EndOfRib { neighbor, family } => {
                self.finish_refresh(&mut batch, neighbor.peer, Some(*family));
            }
            FeedEvent::Shutdown => {
                let peers: Vec<IpAddr> = self.peers.keys().copied().collect();
                for peer in peers {
                    if let Some(entry) = self.peers.get_mut(&peer) {
                        entry.last_down_reason = Some("companion shutdown".to_owned());
                    }
                    self.peer_down(&mut batch, peer, now);
                }
            }
        }
        self.finish(batch)
    }

    /// Marks every current path of `peer` as awaiting re-announcement, for both families (after
    /// `announce route-refresh` is written to the companion, or a session comes up again).
    /// Unknown peers are ignored.
    pub fn begin_refresh(&mut self, peer: IpAddr, now: Instant) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        entry.refresh_until = [Some(now + self.config.refresh_timeout); 2];
        for nlri in &entry.paths {
            if let Some(path) = self
                .prefixes
                .get_mut(&nlri.prefix)
                .and_then(|paths| paths.get_mut(&(peer, nlri.path_id)))
            {
                path.refresh_pending = true;
            }
        }
    }

    /// [`Rib::begin_refresh`] for every known peer (the feed reconnected).
    pub fn begin_refresh_all(&mut self, now: Instant) {
        self.begin_refresh_if(now, |_| true);
    }

    /// [`Rib::begin_refresh`] for every known peer `pick` says yes to.
    pub fn begin_refresh_if(&mut self, now: Instant, mut pick: impl FnMut(IpAddr) -> bool) {
        let peers: Vec<IpAddr> = self.peers.keys().copied().filter(|&p| pick(p)).collect();
        for peer in peers {
            self.begin_refresh(peer, now);
        }
    }

    /// Ends a refresh of `peer` for `family` (`None`: both): paths not re-announced since
    /// [`Rib::begin_refresh`] go, in one batch. No refresh in progress: nothing happens.
    pub fn end_refresh(&mut self, peer: IpAddr, family: Option<Family>) -> Vec<PrefixChange> {
        let mut batch = Batch::default();
        self.finish_refresh(&mut batch, peer, family);
        self.finish(batch)
    }

    /// Removes stale paths whose deadline is at or before `now` and ends refreshes that timed out.
    pub fn expire(&mut self, now: Instant) -> Vec<PrefixChange> {
        let mut batch = Batch::default();
        let peers: Vec<IpAddr> = self.peers.keys().copied().collect();
        for peer in peers {
            let Some(entry) = self.peers.get(&peer) else {
                continue;
            };
            let timed_out: Vec<Family> = Family::ALL
                .into_iter()
                .filter(|f| entry.refresh_until[f.index()].is_some_and(|t| t <= now))
                .collect();
            let stale_due = entry.earliest_stale.is_some_and(|t| t <= now);
            for family in timed_out {
                self.finish_refresh(&mut batch, peer, Some(family));
            }
            if stale_due {
                self.expire_stale(&mut batch, peer, now);
            }
        }
        self.finish(batch)
    }

    /// When [`Rib::expire`] next has something to do, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .flat_map(|p| p.refresh_until.iter().copied().chain([p.earliest_stale]))
            .flatten()
            .min()
    }

    /// The hop set of `prefix` (empty when it has no path).
    pub fn hops(&self, prefix: &Prefix) -> HopSet {
        self.prefixes.get(prefix).map(hop_set).unwrap_or_default()
    }

    /// Every prefix with at least one path and its hop set, ascending (a full FIB build).
    pub fn routes(&self) -> impl Iterator<Item = (Prefix, HopSet)> + '_ {
        self.prefixes.iter().map(|(p, paths)| (*p, hop_set(paths)))
    }

    /// Every path, by prefix then peer then path id.
    pub fn paths(&self) -> impl Iterator<Item = PathView> + '_ {
        self.prefixes.iter().flat_map(|(prefix, paths)| {
            paths.iter().map(|(&(peer, path_id), e)| PathView {
                peer,
                nlri: Nlri {
                    prefix: *prefix,
                    path_id,
                },
                next_hop: e.next_hop,
                rank: e.rank,
                graceful_shutdown: e.graceful_shutdown,
                stale_until: e.stale_until,
                refresh_pending: e.refresh_pending,
            })
        })
    }

    /// Number of paths held.
    pub fn path_count(&self) -> usize {
        self.peers.values().map(|p| p.paths.len()).sum()
    }

    /// Number of prefixes with at least one path.
    pub fn prefix_count(&self) -> usize {
        self.prefixes.len()
    }

    /// Every peer seen, ascending by address.
    pub fn peers(&self) -> Vec<PeerSummary> {
        self.peers
            .iter()
            .map(|(&peer, entry)| PeerSummary {
                neighbor: entry.neighbor.clone(),
                state: entry.state,
                last_down_reason: entry.last_down_reason.clone(),
                paths: entry.paths.len(),
                stale: entry
                    .paths
                    .iter()
                    .filter(|n| {
                        self.path(peer, n)
                            .is_some_and(|path| path.stale_until.is_some())
                    })
                    .count(),
                refreshing: Family::ALL
                    .into_iter()
                    .filter(|f| entry.refresh_until[f.index()].is_some())
                    .collect(),
            })
            .collect()
    }

    fn path(&self, peer: IpAddr, nlri: &Nlri) -> Option<&PathEntry> {
        self.prefixes.get(&nlri.prefix)?.get(&(peer, nlri.path_id))
    }

    /// The peer's entry, created on first sight; its neighbor details follow the latest line.
    fn peer_mut(&mut self, neighbor: &Neighbor) -> &mut PeerEntry {
        let entry = self
            .peers
            .entry(neighbor.peer)
            .or_insert_with(|| PeerEntry::new(neighbor.clone()));
        if entry.neighbor != *neighbor {
            entry.neighbor = neighbor.clone();
        }
        entry
    }

    fn apply_update(&mut self, batch: &mut Batch, peer: IpAddr, update: &Update) {
        // RFC 4271 order: an UPDATE's withdrawn routes before its announced ones.
        for nlri in &update.withdraw {
            self.remove_path(batch, peer, nlri);
        }
        let graceful_shutdown = update.attributes.graceful_shutdown();
        let rank = PathRank::of(&update.attributes);
        for announce in &update.announce {
            self.insert_path(
                batch,
                peer,
                announce.nlri,
                PathEntry {
                    next_hop: announce.next_hop,
                    rank,
                    graceful_shutdown,
                    stale_until: None,
                    refresh_pending: false,
                },
            );
        }
    }

    fn peer_down(&mut self, batch: &mut Batch, peer: IpAddr, now: Instant) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        entry.state = PeerState::Down;
        entry.refresh_until = [None; 2];
        let nlris: Vec<Nlri> = entry.paths.iter().copied().collect();
        if self.config.stale_time.is_zero() {
            for nlri in &nlris {
                self.remove_path(batch, peer, nlri);
            }
            return;
        }
        let deadline = now + self.config.stale_time;
        let mut earliest = deadline;
        for nlri in &nlris {
            if let Some(path) = self
                .prefixes
                .get_mut(&nlri.prefix)
                .and_then(|paths| paths.get_mut(&(peer, nlri.path_id)))
            {
                // A path already stale from an earlier down keeps its earlier deadline: flapping
                // must not keep dead paths alive forever.
                let until = *path.stale_until.get_or_insert(deadline);
                earliest = earliest.min(until);
                path.refresh_pending = false;
            }
        }
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.earliest_stale = Some(earliest);
        }
    }

    fn expire_stale(&mut self, batch: &mut Batch, peer: IpAddr, now: Instant) {
        let Some(entry) = self.peers.get(&peer) else {
            return;
        };
        let mut due = Vec::new();
        let mut earliest: Option<Instant> = None;
        for nlri in &entry.paths {
            if let Some(until) = self.path(peer, nlri).and_then(|p| p.stale_until) {
                if until <= now {
                    due.push(*nlri);
                } else {
                    earliest = Some(earliest.map_or(until, |e| e.min(until)));
                }
            }
        }
        for nlri in &due {
            self.remove_path(batch, peer, nlri);
        }
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.earliest_stale = earliest;
        }
    }

    fn finish_refresh(&mut self, batch: &mut Batch, peer: IpAddr, family: Option<Family>) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        let families: Vec<Family> = Family::ALL
            .into_iter()
            .filter(|f| family.is_none_or(|only| only == *f))
            .filter(|f| entry.refresh_until[f.index()].take().is_some())
            .collect();
        if families.is_empty() {
            return;
        }
        let Some(entry) = self.peers.get(&peer) else {
            return;
        };
        let pending: Vec<Nlri> = entry
            .paths
            .iter()
            .filter(|n| families.contains(&n.prefix.family()))
            .filter(|n| self.path(peer, n).is_some_and(|p| p.refresh_pending))
            .copied()
            .collect();
        for nlri in &pending {
            self.remove_path(batch, peer, nlri);
        }
    }

    fn insert_path(&mut self, batch: &mut Batch, peer: IpAddr, nlri: Nlri, path: PathEntry) {
        self.record(batch, nlri.prefix);
        self.prefixes
            .entry(nlri.prefix)
            .or_default()
            .insert((peer, nlri.path_id), path);
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.paths.insert(nlri);
        }
    }

    fn remove_path(&mut self, batch: &mut Batch, peer: IpAddr, nlri: &Nlri) {
        let Some(paths) = self.prefixes.get(&nlri.prefix) else {
            return;
        };
        if !paths.contains_key(&(peer, nlri.path_id)) {
            return;
        }
        self.record(batch, nlri.prefix);
        if let Some(paths) = self.prefixes.get_mut(&nlri.prefix) {
            paths.remove(&(peer, nlri.path_id));
            if paths.is_empty() {
                self.prefixes.remove(&nlri.prefix);
            }
        }
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.paths.remove(nlri);
        }
    }

    /// Remembers `prefix`'s hop set before the batch's first change to it.
    fn record(&self, batch: &mut Batch, prefix: Prefix) {
        batch
            .before
            .entry(prefix)
            .or_insert_with(|| self.hops(&prefix));
    }

    fn finish(&self, batch: Batch) -> Vec<PrefixChange> {
        batch
            .before
            .into_iter()
            .filter_map(|(prefix, before)| {
                let hops = self.hops(&prefix);
                if hops == before {
                    return None;
                }
                let removed = before
                    .keys()
                    .filter(|hop| !hops.contains_key(hop))
                    .copied()
                    .collect();
                Some(PrefixChange {
                    prefix,
                    hops,
                    removed,
                })
            })
            .collect()
    }
}

/// The prefix's hops and their states by multipath selection (see the module doc).
fn hop_set(paths: &Paths) -> HopSet {
    // The common case, without the selection's allocations: a lone path is selected unless it
    // carries GRACEFUL_SHUTDOWN (then no path is a candidate).
    if let [(_, path)] = paths.0.as_slice() {
        let state = if path.graceful_shutdown {
            NextHopState::Draining(DrainReason::GracefulShutdown)
        } else {
            NextHopState::Active
        };
        return HopSet::from([(path.next_hop, state)]);
    }
    selected_hop_set(paths)
}

/// [`hop_set`] through the full selection, whatever the number of paths.
fn selected_hop_set(paths: &Paths) -> HopSet {
    let candidates: Vec<&PathEntry> = paths.values().filter(|p| !p.graceful_shutdown).collect();
    let ranks: Vec<PathRank> = candidates.iter().map(|p| p.rank).collect();
    let outcome = select::select(&ranks);
    // Per hop: active if any of its paths is selected, else its closest loss (the latest step
    // reached), else (only GRACEFUL_SHUTDOWN paths) none.
    let mut best: BTreeMap<IpAddr, Option<Loss>> = BTreeMap::new();
    for (path, loss) in candidates.iter().zip(outcome) {
        let slot = best.entry(path.next_hop).or_insert(loss);
        *slot = match (*slot, loss) {
            (None, _) | (_, None) => None,
            (Some(a), Some(b)) => Some(if step(b) > step(a) { b } else { a }),
        };
    }
    let mut hops = HopSet::new();
    for path in paths.values() {
        let state = match best.get(&path.next_hop) {
            Some(None) => NextHopState::Active,
            Some(&Some(loss)) => NextHopState::Draining(DrainReason::NotBest {
                criterion: loss.criterion,
                value: loss.value,
                best: loss.best,
            }),
            None => NextHopState::Draining(DrainReason::GracefulShutdown),
        };
        hops.insert(path.next_hop, state);
    }
    hops
}

/// How far down the selection steps a loss came (later is closer to best).
fn step(loss: Loss) -> u8 {
    use ecmp_proto::ctl::Criterion;
    match loss.criterion {
        Criterion::LocalPref => 0,
        Criterion::AsPathLength => 1,
        Criterion::Origin => 2,
        Criterion::Med => 3,
    }
}

#[cfg(test)]
mod tests;
