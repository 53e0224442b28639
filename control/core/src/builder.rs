//! The table builder: RIB changes -> resilient groups, next hops and FIB routes -> snapshots.
//!
//! A BGP prefix's group is the set of its paths' next hops ([`PrefixChange::hops`]). Each prefix
//! gets its own group, shaped by the longest [`PrefixPolicy`] range covering it (or the default
//! [`GroupPolicy`]): mode, bucket count, hash fields and the action (rewrite, or an encapsulation
//! whose outer destination is the next hop). Policies match on prefix ranges only: a
//! [`PrefixChange`] carries no attributes (the RIB already folded BGP path selection and
//! GRACEFUL_SHUTDOWN into [`NextHopState::Draining`], with the reason, which `route` shows).
//!
//! Invariants:
//! - Ids: at start hop ids `1..=S` and group ids `1..=G` are the static config's, in its order
//!   (as the daemon's setup numbers them). A configured hop or group keeps its id for as long as
//!   the config lists it (by name); a reload ([`Builder::reload`]) gives new ones ids the way BGP
//!   ones get them and frees the ids of removed ones, so after a reload configured ids need not be
//!   `1..=S`. A BGP prefix holds one group id
//!   for its whole lifetime; freed ids are reused lowest first, and trailing free ids are trimmed
//!   so the snapshot's group vector stays as short as the live ids allow. An operator static
//!   route ([`Builder::add_static_route`]) holds a group id the same way, from add to remove.
//! - A BGP hop id names one distinct (next-hop address, [`Action`]) and is shared by every group
//!   listing it; it lives while at least one group lists it (in any state, failed included) and
//!   is then freed, oldest freed first reused, so an id just given up is reused last.
//!   Reusing ids is safe for the workers' flow caches: a cached `(group, member, hop)` is
//!   honoured only while that hop is listed at that member index of the group now routing the
//!   flow, so a flow can only ever stay on a current member.
//! - Hop ids follow the order next hops were first seen, so two instances fed in different
//!   orders may number the same next hop differently. Groups therefore key their members by
//!   address (`maglev_key`): Maglev and rendezvous tables agree across instances whatever the
//!   order, and so do the stateful modes' tables before any traffic; under traffic those depend
//!   on history (which buckets flows used) and stay instance-local.
//! - Per group, every listed next hop is a member: `Active` or `Draining` as the RIB says, or
//!   `Failed` once its last path went. Only the failed hop's buckets move. A failed member is
//!   removed when its prefix goes, or by [`Builder::forget_failed`]; a hop returning before that
//!   gets back what its mode gives a returning hop (`AutoRecovery`: exactly its old buckets).
//! - Merge rule: a static route (from the config or added by an operator) wins over BGP for the
//!   same prefix. The BGP prefix still gets its group (so it can be inspected) but is not
//!   installed; its withdrawal leaves the static route alone, and removing an operator static
//!   route installs the BGP prefix's group again. A BGP route that covers or is covered by a
//!   static route is installed normally, and removing it lets the FIB fall back to the covering
//!   route, static or BGP. Configured static routes change only with the config: the operator
//!   can neither replace nor remove them here.
//! - Operator static routes: the group is shaped by the prefix's policy and its hops are
//!   acquired like BGP hops (shared, ref-counted, resolved). It behaves like a BGP prefix whose
//!   hop set the operator gives, every hop wanted `Active`: replacing the set fails the hops
//!   left out (only their buckets move; [`Builder::forget_failed`] removes them, a hop put back
//!   before that returns as its mode says) and adds the new ones as its mode says.
//! - Operator drain ([`Builder::set_drained`]) is an override per next-hop address that
//!   persists: every group listing that address (BGP, operator static, configured static), now
//!   or later, has it `Draining` where its source (RIB, operator route, config) wants it
//!   `Active`. A failed member stays failed. Each group keeps what its source last wanted per
//!   address, so undraining restores exactly that (e.g. a hop under GRACEFUL_SHUTDOWN stays
//!   draining).
//! - Publishing: every operation that changed something returns one [`Snapshot`]. Groups the
//!   batch did not touch keep their `Arc<GroupTable>` (pointer-equal across snapshots); a batch
//!   that changed no route shares the previous `Arc<Fib4>`/`Arc<Fib6>`.
//!
//! FIB cost: the FIBs are updated by deltas (insert/remove), never rebuilt, and never copied in
//! the steady state: each is kept twice (`twin`), the copy the last snapshot published and a
//! spare that trails it by one batch; a FIB-changing batch replays the previous batch's deltas
//! onto the spare (once the workers have dropped it) and changes that. The price is memory: two
//! copies of each FIB (2 x 64 MiB of IPv4 tbl24). That replay costs as much as the previous
//! batch, so the owner calls [`Builder::catch_up`] between batches to do it off the next
//! change's path, and keeps batches bounded (the control thread's `MAX_BATCH_CHANGES`). The
//! group vector of a snapshot is paged (`ecmp_tables::paged`), so publishing a change to one
//! group copies one page of pointers.
//!
//! Next hops: [`NextHopResolver`] maps an address to its egress port and MAC when the hop is first
//! seen, and again on [`Builder::refresh_resolution`]. An unresolved hop is kept with port 0 and
//! MAC 00:00:00:00:00:00, which the data path drops as `unresolved`.
//!
//! Pure code: no threads, sockets or clocks.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use ecmp_proto::Prefix;
use ecmp_proto::ctl::{DrainReason, ReloadCounts};
use ecmp_tables::group::{DEFAULT_BUCKETS, GroupMode, GroupTable, MAX_BUCKETS, ResilientGroup};
use ecmp_tables::nexthop::{
    Action, Encap, EncapKind, GroupId, HopId, HopState, NextHop, PortId, PortInfo,
};
use ecmp_tables::policy::HashPolicy;
use ecmp_tables::snapshot::Groups;
use ecmp_tables::snapshot::Snapshot;
use ecmp_tables::{Fib4, Fib6, MAX_GROUP_ID, MAX_MEMBERS, TableError};

use crate::rib::{HopSet, NextHopState, PrefixChange};

/// Weight of every BGP member: paths carry no weight, so each next hop gets an equal share.
const BGP_WEIGHT: u32 = 1;

/// Why the builder refused a config item, a prefix or a next hop. Construction fails on the
/// first one; during [`Builder::apply`] the offending prefix or hop is skipped, the rest of the
/// batch is applied, and the error is kept for [`Builder::take_errors`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A policy's bucket count is not a power of two in 1..=65536 (`range` None: the default).
    #[error("policy {}: {source}", scope(.range))]
    Policy {
        /// The policy's range.
        range: Option<Prefix>,
        /// What the group builder said.
        source: TableError,
    },
    /// A static next hop's id is not its position + 1.
    #[error("static next hop at index {index} has id {id}, expected {}", .index + 1)]
    StaticHopId {
        /// Position in the static hop list.
        index: usize,
        /// The id it carries.
        id: HopId,
    },
    /// A static group lists a hop id that is not a static next hop.
    #[error("static group {group} lists unknown hop {hop}")]
    StaticMember {
        /// The group id.
        group: GroupId,
        /// The unknown hop id.
        hop: HopId,
    },
    /// A static route names a group id that is not a static group.
    #[error("static route {prefix} names unknown group {group}")]
    StaticRouteGroup {
        /// The route.
        prefix: Prefix,
        /// The unknown group id.
        group: GroupId,
    },
    /// The FIB refused a static route.
    #[error("static route {prefix}: {source}")]
    StaticRoute {
        /// The route.
        prefix: Prefix,
        /// What the FIB said.
        source: TableError,
    },
    /// Every group id up to the FIB's limit is in use; the prefix was not installed.
    #[error("{prefix}: all group ids up to {max} are in use")]
    GroupIdsExhausted {
        /// The prefix left out.
        prefix: Prefix,
        /// The largest group id.
        max: GroupId,
    },
    /// The policy encapsulates from an address of the other family than the next hop's: from
    /// [`Builder::apply`] the hop was left out of the prefix's group, from
    /// [`Builder::add_static_route`] the whole route was refused.
    #[error("{prefix}: next hop {next_hop} is not of the encapsulation source's family")]
    EncapFamily {
        /// The prefix.
        prefix: Prefix,
        /// The next hop left out.
        next_hop: IpAddr,
    },
    /// The resolver named a port beyond the port list; the hop is kept unresolved.
    #[error("next hop {next_hop} resolved to unknown port {port}")]
    UnknownPort {
        /// The next hop.
        next_hop: IpAddr,
        /// The port the resolver returned.
        port: PortId,
    },
    /// A group or FIB refused a change for the prefix (e.g. too many members, tbl8 exhausted);
    /// that change was skipped.
    #[error("{prefix}: {source}")]
    Table {
        /// The prefix.
        prefix: Prefix,
        /// What the table said.
        source: TableError,
    },
    /// An operator static route was given no next hop (remove it instead).
    #[error("static route {prefix}: no next hop given")]
    NoNextHops {
        /// The route.
        prefix: Prefix,
    },
    /// The prefix's static route comes from the config, which the operator cannot change here.
    #[error("static route {prefix} is configured; change it in the config")]
    ConfiguredStaticRoute {
        /// The route.
        prefix: Prefix,
    },
    /// No operator static route exists for the prefix.
    #[error("no static route {prefix}")]
    NoStaticRoute {
        /// The prefix.
        prefix: Prefix,
    },
    /// A reloaded config routes a prefix an operator added a static route for (`route-del` it
    /// first); nothing was applied.
    #[error("route {prefix}: an operator static route holds the prefix; remove it first")]
    OperatorRoute {
        /// The prefix.
        prefix: Prefix,
    },
    /// A reloaded config refers to a hop or group index it does not have; nothing was applied.
    #[error("{what} refers to {index}, which the config does not have")]
    ConfigIndex {
        /// The referring item.
        what: String,
        /// The missing index.
        index: usize,
    },
    /// A group refused a reloaded config's change; nothing was applied.
    #[error("group {group:?}: {source}")]
    ConfigGroup {
        /// The group's name.
        group: String,
        /// What the group builder said.
        source: TableError,
    },
    /// A reloaded config needs more hop or group ids than are left; nothing was applied.
    #[error("no {what} id left for the reloaded config")]
    ConfigIds {
        /// `"hop"` or `"group"`.
        what: &'static str,
    },
}

/// Merges several batches of RIB changes, oldest first, into one: per prefix, the last hop set,
/// and the hops any batch removed that are not back. Applying the result leaves every group
/// with the members and states applying the batches one by one would have, in one snapshot; hops
/// that join a new prefix together are balanced together.
pub fn coalesce(batches: impl IntoIterator<Item = PrefixChange>) -> Vec<PrefixChange> {
    // A sort instead of a map keyed by prefix: no node allocations, and feed lines list their
    // prefixes in order, so the input is mostly sorted runs already. Stable, so one prefix's
    // changes stay oldest first.
    let mut all: Vec<PrefixChange> = batches.into_iter().collect();
    all.sort_by_key(|c| c.prefix);
    let mut merged: Vec<PrefixChange> = Vec::with_capacity(all.len());
    for change in all {
        match merged.last_mut().filter(|m| m.prefix == change.prefix) {
            None => merged.push(change),
            Some(m) => {
                let mut removed: BTreeSet<IpAddr> = m.removed.iter().copied().collect();
                removed.extend(change.removed);
                m.hops = change.hops;
                m.removed = removed
                    .into_iter()
                    .filter(|a| !m.hops.contains_key(a))
                    .collect();
            }
        }
    }
    merged
}

fn scope(range: &Option<Prefix>) -> String {
    range.map_or_else(|| "default".to_owned(), |r| r.to_string())
}

/// Maps a next-hop address to its egress port and destination MAC.
pub trait NextHopResolver {
    /// The egress port and MAC for `addr`; `None` when unknown (the hop is kept unresolved).
    /// A known port with an unknown MAC is `Some((port, [0; 6]))`.
    fn resolve(&self, addr: IpAddr) -> Option<(PortId, [u8; 6])>;
}

impl<F: Fn(IpAddr) -> Option<(PortId, [u8; 6])>> NextHopResolver for F {
    fn resolve(&self, addr: IpAddr) -> Option<(PortId, [u8; 6])> {
        self(addr)
    }
}

/// The egress port by longest connected subnet, the MAC from a neighbour table the caller fills
/// (ARP/ND replies, static entries). An address outside every subnet is unresolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectedResolver {
    subnets: Vec<(Prefix, PortId)>,
    neighbors: HashMap<IpAddr, [u8; 6]>,
}

impl ConnectedResolver {
    /// A resolver for these connected subnets, with no neighbour known yet.
    pub fn new(subnets: Vec<(Prefix, PortId)>) -> Self {
        Self {
            subnets,
            neighbors: HashMap::new(),
        }
    }

    /// Records (or replaces) `addr`'s MAC.
    pub fn set_neighbor(&mut self, addr: IpAddr, mac: [u8; 6]) {
        self.neighbors.insert(addr, mac);
    }

    /// Forgets `addr`'s MAC.
    pub fn remove_neighbor(&mut self, addr: IpAddr) {
        self.neighbors.remove(&addr);
    }
}

impl NextHopResolver for ConnectedResolver {
    fn resolve(&self, addr: IpAddr) -> Option<(PortId, [u8; 6])> {
        let &(_, port) = self
            .subnets
            .iter()
            .filter(|(subnet, _)| contains_addr(subnet, addr))
            .max_by_key(|(subnet, _)| subnet.len())?;
        Some((port, self.neighbors.get(&addr).copied().unwrap_or([0; 6])))
    }
}

fn contains_addr(range: &Prefix, addr: IpAddr) -> bool {
    Prefix::new(addr, range.len()).is_ok_and(|p| p == *range)
}

/// What a prefix's next hops do to packets; the encapsulation's outer destination is the hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ActionTemplate {
    /// Rewrite MACs and decrement TTL.
    #[default]
    Rewrite,
    /// Encapsulate from `src` to the next hop's address.
    Encap {
        /// The tunnel kind.
        kind: EncapKind,
        /// This forwarder's tunnel endpoint.
        src: IpAddr,
    },
}

impl ActionTemplate {
    /// The action toward `next_hop`; `None` when an encapsulation's source is of the other family.
    pub fn action_for(&self, next_hop: IpAddr) -> Option<Action> {
        match *self {
            ActionTemplate::Rewrite => Some(Action::Rewrite),
            ActionTemplate::Encap { kind, src } => {
                (src.is_ipv4() == next_hop.is_ipv4()).then_some(Action::Encap(Encap {
                    kind,
                    src,
                    dst: next_hop,
                }))
            }
        }
    }
}

/// How a prefix's group is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupPolicy {
    /// How hops coming and going get buckets.
    pub mode: GroupMode,
    /// Buckets (a power of two in 1..=65536).
    pub buckets: u32,
    /// Which fields feed the hash.
    pub hash: HashPolicy,
    /// Rewrite or encapsulate.
    pub action: ActionTemplate,
}

impl Default for GroupPolicy {
    /// The config's group defaults: auto-recovery, [`DEFAULT_BUCKETS`], 5-tuple hash, rewrite.
    fn default() -> Self {
        Self {
            mode: GroupMode::AutoRecovery,
            buckets: DEFAULT_BUCKETS,
            hash: HashPolicy::default(),
            action: ActionTemplate::Rewrite,
        }
    }
}

/// A policy for the prefixes inside `range` (the longest covering range wins; ties go to the
/// first listed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixPolicy {
    /// Prefixes equal to or more specific than this one match.
    pub range: Prefix,
    /// What their groups look like.
    pub group: GroupPolicy,
}

impl PrefixPolicy {
    /// Whether `prefix` lies inside the range.
    pub fn covers(&self, prefix: &Prefix) -> bool {
        prefix.len() >= self.range.len() && contains_addr(&self.range, prefix.addr())
    }
}

/// The tables built from the static config, as plain data (the daemon's setup order).
#[derive(Debug, Clone, Default)]
pub struct StaticTables {
    /// Next hops; `hops[i].id` must be `i + 1`.
    pub hops: Vec<NextHop>,
    /// Group builders; index = group id - 1.
    pub groups: Vec<ResilientGroup>,
    /// Routes to those groups.
    pub routes: Vec<(Prefix, GroupId)>,
    /// The hops' names in the config, by the same index as `hops` (empty: unnamed, and a
    /// [`Builder::reload`] then finds none of them in the new file).
    pub hop_names: Vec<String>,
    /// Each hop's configured state, by the same index as `hops` (missing: active).
    pub hop_states: Vec<HopState>,
    /// The groups' names in the config, by the same index as `groups` (empty: unnamed).
    pub group_names: Vec<String>,
}

/// A configured next hop as a reloaded config file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigHop {
    /// Its name: what a reload matches it by.
    pub name: String,
    /// The hop; its `id` is ignored (the builder keeps or allocates ids), a zero `mac` means
    /// "resolve it" (the port stays the configured one).
    pub hop: NextHop,
    /// Its configured state.
    pub state: HopState,
}

/// A member of a [`ConfigGroup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigMember {
    /// Index into [`ConfigTables::hops`].
    pub hop: usize,
    /// Its weight in this group.
    pub weight: u32,
}

/// A configured group as a reloaded config file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigGroup {
    /// Its name: what a reload matches it by.
    pub name: String,
    /// How hops coming and going get buckets.
    pub mode: GroupMode,
    /// Buckets (a power of two in 1..=65536).
    pub buckets: u32,
    /// Which fields feed the hash.
    pub hash: HashPolicy,
    /// Members (distinct hops).
    pub members: Vec<ConfigMember>,
}

/// The tables and policies a config file asks for, by name and index rather than by id: what
/// [`Builder::reload`] moves the running tables to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigTables {
    /// `[[nexthop]]`, in file order.
    pub hops: Vec<ConfigHop>,
    /// `[[group]]`, in file order.
    pub groups: Vec<ConfigGroup>,
    /// `[[route]]`: prefix and index into `groups`.
    pub routes: Vec<(Prefix, usize)>,
    /// `[[bgp.policy]]`.
    pub policies: Vec<PrefixPolicy>,
    /// `[bgp]`.
    pub default_policy: GroupPolicy,
}

/// What [`Builder::reload`] changed.
#[derive(Debug, Clone, Default)]
pub struct ReloadSummary {
    /// Configured next hops, matched by name.
    pub hops: ReloadCounts,
    /// Configured groups, matched by name.
    pub groups: ReloadCounts,
    /// Configured routes, matched by prefix.
    pub routes: ReloadCounts,
    /// The BGP policies (`[bgp]`, `[[bgp.policy]]`) changed.
    pub policies: bool,
    /// The snapshot to publish; `None` when no table changed.
    pub snapshot: Option<Snapshot>,
}

/// Everything a [`Builder`] is built from, besides its resolver.
#[derive(Debug, Clone, Default)]
pub struct BuilderConfig {
    /// Per-range policies.
    pub policies: Vec<PrefixPolicy>,
    /// The policy of prefixes no range covers.
    pub default_policy: GroupPolicy,
    /// The ports, by port id.
    pub ports: Vec<PortInfo>,
    /// The instance seed (Maglev permutations).
    pub seed: u64,
    /// tbl8 groups of the IPv4 FIB (one per /24 holding routes longer than /24).
    pub max_tbl8: usize,
    /// The static config's hops, groups and routes.
    pub statics: StaticTables,
}

/// One member of a prefix's group, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberInfo {
    /// The next hop's address.
    pub addr: IpAddr,
    /// Its hop id.
    pub hop: HopId,
    /// Active, draining or failed.
    pub state: HopState,
    /// Why it is draining (`None` unless it is).
    pub reason: Option<DrainReason>,
    /// Its weight.
    pub weight: u32,
    /// Buckets it owns.
    pub buckets: usize,
}

/// One bucket, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketInfo {
    /// Its owner (0: none).
    pub hop: HopId,
    /// The owner differs from the one at the last full build (the `*` of sticky ECMP displays).
    pub replaced: bool,
}

/// A BGP prefix's route and group, for `route PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The prefix.
    pub prefix: Prefix,
    /// Its group id.
    pub group: GroupId,
    /// False when a static route for the same prefix wins.
    pub installed: bool,
    /// The policy its group was built with.
    pub policy: GroupPolicy,
    /// Members, ascending by address.
    pub members: Vec<MemberInfo>,
    /// Bucket owners, by bucket index.
    pub buckets: Vec<BucketInfo>,
}

/// A next hop in use, for `nexthops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopInfo {
    /// The hop as workers see it.
    pub hop: NextHop,
    /// Groups listing it (in any state).
    pub groups: u32,
    /// From the static config (not BGP).
    pub configured: bool,
    /// Its MAC is known.
    pub resolved: bool,
    /// An operator drained its address ([`Builder::set_drained`]).
    pub drained: bool,
}

/// A static route and its group, for `route PREFIX` and `routes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRouteInfo {
    /// The route and its group. `installed` is always true (a static route wins). For a
    /// configured route, `policy` is read from the configured group (mode, bucket count, hash)
    /// and `policy.action` is its first member's action as a template: configured hops carry
    /// their own actions ([`Builder::hop`] has each).
    pub route: RouteInfo,
    /// From the config file (false: added by an operator).
    pub configured: bool,
}

/// What removing a next hop would do to one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhatIf {
    /// The group.
    pub group: GroupId,
    /// Its BGP prefix or operator static route (None for a configured static group).
    pub prefix: Option<Prefix>,
    /// A static route's group (configured, or added by an operator), not a BGP prefix's.
    pub static_route: bool,
    /// Buckets that would change owner.
    pub buckets: usize,
}

/// A BGP prefix's or an operator static route's group.
#[derive(Debug, Clone)]
struct PrefixGroup {
    prefix: Prefix,
    policy: GroupPolicy,
    group: ResilientGroup,
    /// Every listed next hop (failed ones included) and its hop id.
    members: BTreeMap<IpAddr, HopId>,
    /// What the source (RIB, or operator: all active) last wanted; a listed address missing
    /// here is failed. Kept so an operator undrain can restore it.
    want: HopSet,
}

/// A configured group.
#[derive(Debug, Clone)]
struct StaticGroup {
    group: ResilientGroup,
    /// Each member's state as configured: what an operator undrain restores.
    configured: BTreeMap<HopId, HopState>,
}

#[derive(Debug, Clone)]
enum GroupSlot {
    Static(Box<StaticGroup>),
    Bgp(Box<PrefixGroup>),
    Operator(Box<PrefixGroup>),
    Free,
}

impl GroupSlot {
    fn group(&self) -> Option<&ResilientGroup> {
        match self {
            GroupSlot::Static(g) => Some(&g.group),
            GroupSlot::Bgp(g) | GroupSlot::Operator(g) => Some(&g.group),
            GroupSlot::Free => None,
        }
    }
}

/// The state a member gets: what its source wants, except that an operator drain turns
/// `Active` into `Draining` (a failed member stays failed).
fn effective(want: HopState, drained: bool) -> HopState {
    if drained && want == HopState::Active {
        HopState::Draining
    } else {
        want
    }
}

/// What a prefix's source wants for `addr`: failed when it no longer lists it.
fn wanted(hops: &HopSet, addr: &IpAddr) -> HopState {
    hops.get(addr)
        .map_or(HopState::Failed, |&s| HopState::from(s))
}

/// Members for display; `why` gives a draining member's reason from its address and hop.
fn member_infos(
    group: &ResilientGroup,
    members: impl Iterator<Item = (IpAddr, HopId)>,
    why: impl Fn(IpAddr, HopId) -> DrainReason,
) -> Vec<MemberInfo> {
    let owners = group.bucket_owners();
    let mut out: Vec<MemberInfo> = members
        .filter_map(|(addr, hop)| {
            let m = group.member(hop)?;
            Some(MemberInfo {
                addr,
                hop,
                state: m.state,
                reason: (m.state == HopState::Draining).then(|| why(addr, hop)),
                weight: m.weight,
                buckets: owners.iter().filter(|&&o| o == hop).count(),
            })
        })
        .collect();
    out.sort_by_key(|m| (m.addr, m.hop));
    out
}

/// Why a draining member of a BGP or operator group drains: its source's reason, else the
/// operator's drain (the only other way it drains).
fn source_reason(want: &HopSet, addr: IpAddr) -> DrainReason {
    match want.get(&addr) {
        Some(&NextHopState::Draining(reason)) => reason,
        _ => DrainReason::Operator,
    }
}

fn bucket_infos(group: &ResilientGroup) -> Vec<BucketInfo> {
    group
        .bucket_owners()
        .iter()
        .enumerate()
        .map(|(b, &hop)| BucketInfo {
            hop,
            replaced: group.replaced(b),
        })
        .collect()
}

/// What one operation changed, to publish.
#[derive(Debug, Default)]
struct Batch {
    fib: bool,
    hops: bool,
    groups: BTreeSet<GroupId>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        !self.fib && !self.hops && self.groups.is_empty()
    }
}

/// RIB changes in, snapshots out. See the module doc for the invariants and costs.
#[derive(Debug)]
pub struct Builder<R> {
    resolver: R,
    policies: Vec<PrefixPolicy>,
    default_policy: GroupPolicy,
    seed: u64,
    ports: Vec<PortInfo>,
    fib4: Twin<Fib4>,
    fib6: Twin<Fib6>,
    /// Configured static routes.
    static_routes: BTreeMap<Prefix, GroupId>,
    /// Static routes added by an operator.
    operator_routes: BTreeMap<Prefix, GroupId>,
    /// Next-hop addresses an operator drained.
    drained: BTreeSet<IpAddr>,
    /// Index = hop id: the hop is the config's (at start ids `1..=S`; a reload adds and frees
    /// configured ids like BGP ones).
    hop_static: Vec<bool>,
    /// The config's hops: name -> (hop id, configured state).
    static_hop_names: BTreeMap<String, (HopId, HopState)>,
    /// The config's groups: name -> group id.
    static_group_names: BTreeMap<String, GroupId>,
    /// Config hops given without a MAC (all zero): their MAC comes from the resolver, their
    /// port stays the configured one.
    static_unresolved: Vec<HopId>,
    /// Index = hop id; `[0]` and freed ids hold an unresolved placeholder.
    hops: Vec<NextHop>,
    /// Index = hop id: groups listing it.
    hop_refs: Vec<u32>,
    hop_ids: HashMap<(IpAddr, Action), HopId>,
    free_hops: VecDeque<HopId>,
    /// Index = group id - 1.
    groups: Vec<GroupSlot>,
    /// Index = group id; `[0]` and free ids hold `unset`.
    tables: Groups,
    unset: Arc<GroupTable>,
    free_groups: BTreeSet<GroupId>,
    routes: BTreeMap<Prefix, GroupId>,
    errors: Vec<BuildError>,
    /// Per live group: buckets whose owner changed from one published table to the next
    /// (a group's first fill is no move); dropped with the group.
    bucket_moves: BTreeMap<GroupId, u64>,
}

/// One group's bucket moves, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMoves {
    /// The group id.
    pub group: GroupId,
    /// The prefix of a BGP or operator group; none for a config group (which several routes
    /// may share).
    pub prefix: Option<Prefix>,
    /// Buckets that changed owner since the group was created.
    pub moves: u64,
}

fn placeholder(id: HopId) -> NextHop {
    NextHop {
        id,
        ..NextHop::UNSET
    }
}

/// Buckets owned in both tables by different hops: what a table change moved. Buckets that
/// had no owner (a new group's first fill) or lose theirs are not moves; tables of different
/// sizes (a group re-created) share no buckets.
fn moved_buckets(old: &GroupTable, new: &GroupTable) -> u64 {
    if old.bucket_count() != new.bucket_count() {
        return 0;
    }
    (0..new.bucket_count())
        .filter(|&b| match (old.pick(b), new.pick(b)) {
            (Some((_, was)), Some((_, is))) => was != is,
            _ => false,
        })
        .count() as u64
}

/// Index into `Builder::groups` of a group id (`None` for 0, which names no group).
fn slot_of(id: GroupId) -> Option<usize> {
    (id as usize).checked_sub(1)
}

fn check_buckets(range: Option<Prefix>, buckets: u32) -> Result<(), BuildError> {
    if buckets.is_power_of_two() && buckets <= MAX_BUCKETS {
        Ok(())
    } else {
        Err(BuildError::Policy {
            range,
            source: TableError::BucketCount(buckets),
        })
    }
}

fn fib_insert(
    fib4: &mut Twin<Fib4>,
    fib6: &mut Twin<Fib6>,
    prefix: Prefix,
    group: GroupId,
) -> Result<(), TableError> {
    fib_change(fib4, fib6, prefix, Some(group))
}

fn fib_change(
    fib4: &mut Twin<Fib4>,
    fib6: &mut Twin<Fib6>,
    prefix: Prefix,
    group: Option<GroupId>,
) -> Result<(), TableError> {
    match prefix.addr() {
        IpAddr::V4(a) => fib4.apply((a, prefix.len(), group)),
        IpAddr::V6(a) => fib6.apply((a, prefix.len(), group)),
    }
}

impl<R: NextHopResolver> Builder<R> {
    /// A builder holding the static tables and no BGP route.
    pub fn new(config: BuilderConfig, resolver: R) -> Result<Self, BuildError> {
        check_buckets(None, config.default_policy.buckets)?;
        for p in &config.policies {
            check_buckets(Some(p.range), p.group.buckets)?;
        }
        let statics = config.statics;
        let mut hops = Vec::with_capacity(statics.hops.len() + 1);
        hops.push(placeholder(0));
        for (index, hop) in statics.hops.iter().enumerate() {
            if hop.id as usize != index + 1 {
                return Err(BuildError::StaticHopId { index, id: hop.id });
            }
            hops.push(*hop);
        }
        let mut hop_refs = vec![0u32; hops.len()];
        for (i, g) in statics.groups.iter().enumerate() {
            for m in g.members().iter().filter(|m| m.hop != 0) {
                let refs = hop_refs
                    .get_mut(m.hop as usize)
                    .ok_or(BuildError::StaticMember {
                        group: i as GroupId + 1,
                        hop: m.hop,
                    })?;
                *refs += 1;
            }
        }
        let mut fib4 = Twin::new(Fib4::new(config.max_tbl8));
        let mut fib6 = Twin::new(Fib6::new());
        let mut static_routes = BTreeMap::new();
        for &(prefix, group) in &statics.routes {
            if group == 0 || group as usize > statics.groups.len() {
                return Err(BuildError::StaticRouteGroup { prefix, group });
            }
            fib_insert(&mut fib4, &mut fib6, prefix, group)
                .map_err(|source| BuildError::StaticRoute { prefix, source })?;
            static_routes.insert(prefix, group);
        }
        let unset = ResilientGroup::new(1, GroupMode::Manual, 0)
            .map_err(|source| BuildError::Policy {
                range: None,
                source,
            })?
            .table();
        let unset = Arc::new(unset);
        let mut tables = Groups::new(Arc::clone(&unset));
        tables.push(Arc::clone(&unset));
        for g in &statics.groups {
            tables.push(Arc::new(g.table()));
        }
        Ok(Self {
            resolver,
            policies: config.policies,
            default_policy: config.default_policy,
            seed: config.seed,
            ports: config.ports,
            fib4,
            fib6,
            static_routes,
            operator_routes: BTreeMap::new(),
            drained: BTreeSet::new(),
            hop_static: (0..=statics.hops.len()).map(|i| i != 0).collect(),
            static_hop_names: statics
                .hop_names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let state = statics.hop_states.get(i).copied();
                    (name.clone(), (i as HopId + 1, state.unwrap_or_default()))
                })
                .collect(),
            static_group_names: statics
                .group_names
                .iter()
                .enumerate()
                .map(|(i, name)| (name.clone(), i as GroupId + 1))
                .collect(),
            static_unresolved: statics
                .hops
                .iter()
                .filter(|h| h.mac == [0; 6])
                .map(|h| h.id)
                .collect(),
            hops,
            hop_refs,
            hop_ids: HashMap::new(),
            free_hops: VecDeque::new(),
            groups: statics
                .groups
                .into_iter()
                .map(|group| {
                    let configured = group
                        .members()
                        .iter()
                        .filter(|m| m.hop != 0)
                        .map(|m| (m.hop, m.state))
                        .collect();
                    GroupSlot::Static(Box::new(StaticGroup { group, configured }))
                })
                .collect(),
            tables,
            unset,
            free_groups: BTreeSet::new(),
            routes: BTreeMap::new(),
            errors: Vec::new(),
            bucket_moves: BTreeMap::new(),
        })
    }

    /// Applies one batch of RIB changes; returns the snapshot to publish, or `None` when nothing
    /// changed. Refused prefixes and hops are skipped (see [`Builder::take_errors`]).
    ///
    /// Each change is taken as the prefix's whole new hop set: a listed hop missing from it is
    /// failed whether or not [`PrefixChange::removed`] names it, so a replayed or coalesced
    /// change ([`coalesce`]) is applied correctly.
    pub fn apply(&mut self, changes: &[PrefixChange]) -> Option<Snapshot> {
        let mut batch = Batch::default();
        for change in changes {
            match self.routes.get(&change.prefix).copied() {
                None if change.hops.is_empty() => {}
                None => self.add_prefix(&mut batch, change),
                Some(gid) if change.hops.is_empty() => {
                    self.remove_prefix(&mut batch, change.prefix, gid);
                }
                Some(gid) => self.update_group(&mut batch, gid, &change.hops),
            }
        }
        self.finish(batch)
    }

    /// Rebalances `prefix`'s groups (the `clear` command): its BGP group and its static
    /// route's group (configured or operator), whichever exist. In each, every active hop ends
    /// within one bucket of its share, moving the fewest buckets, and the `replaced` marks
    /// reset. `None` when the prefix has no group.
    pub fn clear(&mut self, prefix: &Prefix) -> Option<Snapshot> {
        let mut batch = Batch::default();
        let gids = [
            self.routes.get(prefix),
            self.static_routes.get(prefix),
            self.operator_routes.get(prefix),
        ];
        for &gid in gids.into_iter().flatten() {
            let group = match slot_of(gid).and_then(|i| self.groups.get_mut(i)) {
                Some(GroupSlot::Static(g)) => &mut g.group,
                Some(GroupSlot::Bgp(g) | GroupSlot::Operator(g)) => &mut g.group,
                Some(GroupSlot::Free) | None => continue,
            };
            group.clear();
            batch.groups.insert(gid);
        }
        self.finish(batch)
    }

    /// Drains (`drained`) or undrains every member at `addr`, in every group listing it now or
    /// later (see the module doc): a drained hop keeps its established flows, takes no new ones
    /// and owns no bucket (only its buckets move); undraining restores what the group's source
    /// wants, returning the hop's buckets as its mode says (`AutoRecovery`: exactly those it
    /// had). `None` when no table changed: the address was already (un)drained, or no group
    /// lists it (the override is still recorded for later groups).
    pub fn set_drained(&mut self, addr: IpAddr, drained: bool) -> Option<Snapshot> {
        let changed = if drained {
            self.drained.insert(addr)
        } else {
            self.drained.remove(&addr)
        };
        if !changed {
            return None;
        }
        let mut batch = Batch::default();
        for (i, slot) in self.groups.iter_mut().enumerate() {
            let (group, targets) = match slot {
                GroupSlot::Static(g) => {
                    let targets: Vec<(HopId, HopState)> = g
                        .configured
                        .iter()
                        .filter(|&(&hop, _)| {
                            self.hops.get(hop as usize).is_some_and(|h| h.addr == addr)
                        })
                        .map(|(&hop, &want)| (hop, effective(want, drained)))
                        .collect();
                    (&mut g.group, targets)
                }
                GroupSlot::Bgp(g) | GroupSlot::Operator(g) => {
                    let Some(&hop) = g.members.get(&addr) else {
                        continue;
                    };
                    let target = effective(wanted(&g.want, &addr), drained);
                    (&mut g.group, vec![(hop, target)])
                }
                GroupSlot::Free => continue,
            };
            for (hop, target) in targets {
                // `set_state` refuses only an unlisted hop, which the filter leaves out.
                if group.member(hop).is_some_and(|m| m.state != target)
                    && group.set_state(hop, target).is_ok()
                {
                    batch.groups.insert(i as GroupId + 1);
                }
            }
        }
        self.finish(batch)
    }

    /// The next-hop addresses an operator drained, ascending.
    pub fn drained(&self) -> Vec<IpAddr> {
        self.drained.iter().copied().collect()
    }

    /// Adds an operator static route to `next_hops` (duplicates count once), or replaces the
    /// next-hop set of the one `prefix` has. A new route gets its own group, shaped by the
    /// prefix's policy like a BGP prefix's, with every hop active (draining if drained) and
    /// balanced together; it takes the prefix's FIB entry from a BGP route (which stays, not
    /// installed). A replaced set keeps the group: hops left out fail (only their buckets
    /// move; [`Builder::forget_failed`] removes them) and new hops join as the mode says
    /// (`AutoRecovery`/`Manual`: no buckets until [`Builder::clear`]).
    ///
    /// Refused, with nothing changed: an empty set ([`BuildError::NoNextHops`]), a configured
    /// static route ([`BuildError::ConfiguredStaticRoute`]), a hop the policy's encapsulation
    /// cannot reach ([`BuildError::EncapFamily`]), no group or hop id left, or a FIB refusal
    /// ([`BuildError::StaticRoute`]). A hop that does not resolve is kept unresolved and
    /// reported through [`Builder::take_errors`], as from [`Builder::apply`].
    pub fn add_static_route(
        &mut self,
        prefix: Prefix,
        next_hops: &[IpAddr],
    ) -> Result<Option<Snapshot>, BuildError> {
        if next_hops.is_empty() {
            return Err(BuildError::NoNextHops { prefix });
        }
        if self.static_routes.contains_key(&prefix) {
            return Err(BuildError::ConfiguredStaticRoute { prefix });
        }
        let existing = self.operator_routes.get(&prefix).copied();
        let policy = match existing.and_then(slot_of).and_then(|i| self.groups.get(i)) {
            Some(GroupSlot::Operator(g)) => g.policy,
            _ => self.policy_for(&prefix),
        };
        let hops: HopSet = next_hops
            .iter()
            .map(|&addr| (addr, NextHopState::Active))
            .collect();
        let mut new_hops = 0;
        for &addr in hops.keys() {
            let action = policy
                .action
                .action_for(addr)
                .ok_or(BuildError::EncapFamily {
                    prefix,
                    next_hop: addr,
                })?;
            if !self.hop_ids.contains_key(&(addr, action)) {
                new_hops += 1;
            }
        }
        // Checked before anything changes, so that acquiring hops and adding members cannot
        // fail half way. A replaced set keeps the hops it leaves out listed (failed).
        let listed = match existing.and_then(slot_of).and_then(|i| self.groups.get(i)) {
            Some(GroupSlot::Operator(g)) => {
                g.members.len() + hops.keys().filter(|a| !g.members.contains_key(a)).count()
            }
            _ => hops.len(),
        };
        let full = if new_hops > self.hop_room() {
            Some(HopId::MAX as usize)
        } else {
            (listed > MAX_MEMBERS).then_some(MAX_MEMBERS)
        };
        if let Some(max) = full {
            return Err(BuildError::Table {
                prefix,
                source: TableError::TooManyMembers { max },
            });
        }
        let mut batch = Batch::default();
        if let Some(gid) = existing {
            self.update_group(&mut batch, gid, &hops);
            return Ok(self.finish(batch));
        }
        let empty = self
            .new_group(policy)
            .map_err(|source| BuildError::Table { prefix, source })?;
        let gid = self.alloc_group().ok_or(BuildError::GroupIdsExhausted {
            prefix,
            max: MAX_GROUP_ID,
        })?;
        if let Err(source) = fib_insert(&mut self.fib4, &mut self.fib6, prefix, gid) {
            // Undoes `alloc_group` exactly: the id goes back to the free set, or is trimmed.
            self.free_group(gid);
            return Err(BuildError::StaticRoute { prefix, source });
        }
        batch.fib = true;
        let (group, members) = self.build_group(&mut batch, prefix, policy, empty, &hops);
        if let Some(slot) = slot_of(gid).and_then(|i| self.groups.get_mut(i)) {
            *slot = GroupSlot::Operator(Box::new(PrefixGroup {
                prefix,
                policy,
                group,
                members,
                want: hops,
            }));
        }
        self.operator_routes.insert(prefix, gid);
        batch.groups.insert(gid);
        Ok(self.finish(batch))
    }

    /// Removes the operator static route for `prefix`, releasing its group and hops. The FIB
    /// entry goes back to the prefix's BGP group when it has one, else the prefix is removed
    /// (its addresses fall back to the covering route). Refused, with nothing changed, for a
    /// configured route ([`BuildError::ConfiguredStaticRoute`]) or a prefix without an operator
    /// route ([`BuildError::NoStaticRoute`]).
    pub fn remove_static_route(&mut self, prefix: &Prefix) -> Result<Option<Snapshot>, BuildError> {
        let prefix = *prefix;
        if self.static_routes.contains_key(&prefix) {
            return Err(BuildError::ConfiguredStaticRoute { prefix });
        }
        let gid = *self
            .operator_routes
            .get(&prefix)
            .ok_or(BuildError::NoStaticRoute { prefix })?;
        // The FIB first: it is the only step that can fail.
        let fib = match self.routes.get(&prefix) {
            Some(&bgp) => fib_insert(&mut self.fib4, &mut self.fib6, prefix, bgp),
            None => fib_change(&mut self.fib4, &mut self.fib6, prefix, None),
        };
        fib.map_err(|source| BuildError::StaticRoute { prefix, source })?;
        let mut batch = Batch {
            fib: true,
            ..Batch::default()
        };
        self.operator_routes.remove(&prefix);
        let slot = slot_of(gid).and_then(|i| self.groups.get_mut(i));
        if let Some(slot) = slot.filter(|s| matches!(s, GroupSlot::Operator(_)))
            && let GroupSlot::Operator(g) = std::mem::replace(slot, GroupSlot::Free)
        {
            self.release_all(&mut batch, g.members.values());
        }
        self.free_group(gid);
        batch.groups.insert(gid);
        Ok(self.finish(batch))
    }

    /// Every static route, configured and operator, ascending by prefix.
    pub fn static_routes(&self) -> Vec<StaticRouteInfo> {
        let mut out: Vec<StaticRouteInfo> = self
            .static_routes
            .keys()
            .chain(self.operator_routes.keys())
            .filter_map(|p| self.static_route(p))
            .collect();
        out.sort_by_key(|r| r.route.prefix);
        out
    }

    /// The static route (configured or operator) for exactly `prefix`, with its group.
    pub fn static_route(&self, prefix: &Prefix) -> Option<StaticRouteInfo> {
        if let Some(&gid) = self.static_routes.get(prefix) {
            let GroupSlot::Static(g) = self.groups.get(slot_of(gid)?)? else {
                return None;
            };
            let listed: Vec<NextHop> = g
                .group
                .members()
                .iter()
                .filter_map(|m| self.hops.get(m.hop as usize).filter(|_| m.hop != 0))
                .copied()
                .collect();
            let action = match listed.first().map(|h| h.action) {
                Some(Action::Encap(e)) => ActionTemplate::Encap {
                    kind: e.kind,
                    src: e.src,
                },
                Some(Action::Rewrite) | None => ActionTemplate::Rewrite,
            };
            return Some(StaticRouteInfo {
                route: RouteInfo {
                    prefix: *prefix,
                    group: gid,
                    installed: true,
                    policy: GroupPolicy {
                        mode: g.group.mode(),
                        buckets: g.group.bucket_count(),
                        hash: g.group.policy(),
                        action,
                    },
                    members: member_infos(
                        &g.group,
                        listed.iter().map(|h| (h.addr, h.id)),
                        |_, hop| match g.configured.get(&hop) {
                            Some(HopState::Draining) => DrainReason::Configured,
                            _ => DrainReason::Operator,
                        },
                    ),
                    buckets: bucket_infos(&g.group),
                },
                configured: true,
            });
        }
        let gid = *self.operator_routes.get(prefix)?;
        let GroupSlot::Operator(g) = self.groups.get(slot_of(gid)?)? else {
            return None;
        };
        Some(StaticRouteInfo {
            route: RouteInfo {
                prefix: *prefix,
                group: gid,
                installed: true,
                policy: g.policy,
                members: member_infos(
                    &g.group,
                    g.members.iter().map(|(&a, &h)| (a, h)),
                    |addr, _| source_reason(&g.want, addr),
                ),
                buckets: bucket_infos(&g.group),
            },
            configured: false,
        })
    }

    /// Removes every failed member from every BGP and operator static group (their buckets
    /// already moved, so no bucket moves now); after this a returning hop is a new hop to its
    /// group.
    pub fn forget_failed(&mut self) -> Option<Snapshot> {
        let mut batch = Batch::default();
        let mut released = Vec::new();
        for (i, slot) in self.groups.iter_mut().enumerate() {
            let (GroupSlot::Bgp(g) | GroupSlot::Operator(g)) = slot else {
                continue;
            };
            let failed: Vec<(IpAddr, HopId)> = g
                .members
                .iter()
                .filter(|&(_, &hop)| {
                    g.group
                        .member(hop)
                        .is_some_and(|m| m.state == HopState::Failed)
                })
                .map(|(&addr, &hop)| (addr, hop))
                .collect();
            for (addr, hop) in failed {
                g.members.remove(&addr);
                if let Err(source) = g.group.remove_member(hop) {
                    self.errors.push(BuildError::Table {
                        prefix: g.prefix,
                        source,
                    });
                }
                released.push(hop);
                batch.groups.insert(i as GroupId + 1);
            }
        }
        for hop in released {
            self.release_hop(&mut batch, hop);
        }
        self.finish(batch)
    }

    /// Resolves every BGP next hop, and every config hop given without a MAC, again (after the
    /// resolver learnt or lost neighbours).
    pub fn refresh_resolution(&mut self) -> Option<Snapshot> {
        let mut batch = Batch::default();
        for i in 0..self.static_unresolved.len() {
            let id = self.static_unresolved[i] as usize;
            let Some(hop) = self.hops.get(id).copied() else {
                continue;
            };
            let mac = self
                .resolver
                .resolve(hop.addr)
                .map_or([0; 6], |(_, mac)| mac);
            if hop.mac != mac {
                self.hops[id].mac = mac;
                batch.hops = true;
            }
        }
        for id in 1..self.hops.len() {
            if self.hop_static[id] || self.hop_refs[id] == 0 {
                continue;
            }
            let (port, mac) = self.resolve(self.hops[id].addr);
            let hop = &mut self.hops[id];
            if (hop.port, hop.mac) != (port, mac) {
                hop.port = port;
                hop.mac = mac;
                batch.hops = true;
            }
        }
        self.finish(batch)
    }

    /// `Idle` mode's periodic step for every group in that mode (static and learnt): buckets
    /// idle for the group's idle timer move to hops under their share, or all needed ones once
    /// the group has been unbalanced for its unbalanced timer (see
    /// [`ResilientGroup::upkeep`]). Bucket use is what workers recorded in the groups' tables;
    /// `now_ms` is on the same clock (milliseconds since the process's epoch).
    pub fn upkeep(&mut self, now_ms: u64) -> Option<Snapshot> {
        let mut batch = Batch::default();
        let mut last_used = Vec::new();
        for (i, slot) in self.groups.iter_mut().enumerate() {
            let (group, prefix) = match slot {
                GroupSlot::Static(g) => (&mut g.group, None),
                GroupSlot::Bgp(g) | GroupSlot::Operator(g) => (&mut g.group, Some(g.prefix)),
                GroupSlot::Free => continue,
            };
            // Only idle groups have timers; the others act on bucket use when members change.
            if !matches!(group.mode(), GroupMode::Idle { .. }) {
                continue;
            }
            let Some(activity) = group.activity() else {
                continue;
            };
            activity.last_used_ms(&mut last_used);
            match group.upkeep(now_ms, &last_used) {
                Ok(0) => {}
                Ok(_) => {
                    batch.groups.insert(i as GroupId + 1);
                }
                Err(source) => {
                    if let Some(prefix) = prefix {
                        self.errors.push(BuildError::Table { prefix, source });
                    }
                }
            }
        }
        self.finish(batch)
    }

    /// The whole current state as a snapshot (for the first publication).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            generation: 0,
            fib_changed: 0,
            fib4: Arc::clone(self.fib4.cur()),
            fib6: Arc::clone(self.fib6.cur()),
            groups: self.tables.clone(),
            hops: self.hops.clone(),
            ports: self.ports.clone(),
        }
    }

    /// Whether a FIB's spare copy trails the published one, i.e. [`Builder::catch_up`] has
    /// work to do (see the module doc's FIB cost).
    pub fn lagging(&self) -> bool {
        self.fib4.lagging() || self.fib6.lagging()
    }

    /// Replays the last FIB-changing batch onto each spare FIB copy the workers have let go of,
    /// so the next FIB change does not pay for that replay; never waits for a worker. True when
    /// it replayed anything. Changes nothing a snapshot shows.
    pub fn catch_up(&mut self) -> bool {
        let v4 = self.fib4.catch_up();
        let v6 = self.fib6.catch_up();
        v4 || v6
    }

    /// Errors met since the last call, oldest first.
    pub fn take_errors(&mut self) -> Vec<BuildError> {
        std::mem::take(&mut self.errors)
    }

    /// The resolver.
    pub fn resolver(&self) -> &R {
        &self.resolver
    }

    /// The resolver, to teach it neighbours; follow with [`Builder::refresh_resolution`].
    pub fn resolver_mut(&mut self) -> &mut R {
        &mut self.resolver
    }

    /// The group id of a BGP prefix.
    pub fn group_id(&self, prefix: &Prefix) -> Option<GroupId> {
        self.routes.get(prefix).copied()
    }

    /// Every BGP prefix and its group id, ascending.
    pub fn routes(&self) -> impl Iterator<Item = (Prefix, GroupId)> + '_ {
        self.routes.iter().map(|(p, g)| (*p, *g))
    }

    /// The group builder of `id` (static, operator static or BGP).
    pub fn group(&self, id: GroupId) -> Option<&ResilientGroup> {
        self.groups.get(slot_of(id)?)?.group()
    }

    /// A BGP prefix's route, members and bucket owners (a static route for the same prefix:
    /// [`Builder::static_route`]).
    pub fn route(&self, prefix: &Prefix) -> Option<RouteInfo> {
        let gid = self.group_id(prefix)?;
        let GroupSlot::Bgp(g) = self.groups.get(slot_of(gid)?)? else {
            return None;
        };
        Some(RouteInfo {
            prefix: *prefix,
            group: gid,
            installed: !self.static_wins(prefix),
            policy: g.policy,
            members: member_infos(
                &g.group,
                g.members.iter().map(|(&a, &h)| (a, h)),
                |addr, _| source_reason(&g.want, addr),
            ),
            buckets: bucket_infos(&g.group),
        })
    }

    /// Whether the installed route for exactly `prefix` (static over BGP) can take new flows:
    /// one of its members is active, resolved and owns buckets. What an `[[bgp.announce]]`
    /// prefix is announced by.
    pub fn serves(&self, prefix: &Prefix) -> bool {
        let info = match self.static_route(prefix) {
            Some(s) => s.route,
            None => match self.route(prefix) {
                Some(r) => r,
                None => return false,
            },
        };
        info.members.iter().any(|m| {
            m.state == HopState::Active
                && m.buckets > 0
                && self.hop(m.hop).is_some_and(|h| h.mac != [0; 6])
        })
    }

    /// The next hop with id `id`, if in use.
    pub fn hop(&self, id: HopId) -> Option<&NextHop> {
        let i = id as usize;
        (i != 0 && (self.is_static(i) || self.hop_refs.get(i).is_some_and(|&r| r > 0)))
            .then(|| self.hops.get(i))
            .flatten()
    }

    /// Every next hop in use (static ones always), ascending by id.
    pub fn hops(&self) -> Vec<HopInfo> {
        (1..self.hops.len())
            .filter(|&i| self.is_static(i) || self.hop_refs[i] > 0)
            .map(|i| HopInfo {
                hop: self.hops[i],
                groups: self.hop_refs[i],
                configured: self.is_static(i),
                resolved: self.hops[i].mac != [0; 6],
                drained: self.drained.contains(&self.hops[i].addr),
            })
            .collect()
    }

    /// For each group listing a hop at `addr` (any action; configured and operator static
    /// groups included): the buckets that would move if it were removed. Nothing is changed.
    pub fn what_if_remove(&self, addr: IpAddr) -> Vec<WhatIf> {
        let mut out = Vec::new();
        for (i, slot) in self.groups.iter().enumerate() {
            let (group, prefix, static_route) = match slot {
                GroupSlot::Static(g) => (&g.group, None, true),
                GroupSlot::Bgp(g) => (&g.group, Some(g.prefix), false),
                GroupSlot::Operator(g) => (&g.group, Some(g.prefix), true),
                GroupSlot::Free => continue,
            };
            for m in group.members() {
                if m.hop != 0
                    && self
                        .hops
                        .get(m.hop as usize)
                        .is_some_and(|h| h.addr == addr)
                {
                    out.push(WhatIf {
                        group: i as GroupId + 1,
                        prefix,
                        static_route,
                        buckets: group.what_if_remove(m.hop),
                    });
                }
            }
        }
        out
    }

    /// Buckets of `prefix`'s group that would move if a path to `addr` appeared (or returned);
    /// `None` when the prefix has no BGP group or its policy cannot reach `addr`.
    pub fn what_if_add(&self, prefix: &Prefix, addr: IpAddr) -> Option<usize> {
        let gid = self.group_id(prefix)?;
        let GroupSlot::Bgp(g) = self.groups.get(slot_of(gid)?)? else {
            return None;
        };
        let action = g.policy.action.action_for(addr)?;
        // A hop not allocated yet gets an id no group lists.
        let hop = match self.hop_ids.get(&(addr, action)) {
            Some(&id) => id,
            None => HopId::try_from(self.hops.len()).ok()?,
        };
        Some(g.group.what_if_add(hop, BGP_WEIGHT))
    }

    /// The IPv4 FIB as of the last operation.
    pub fn fib4(&self) -> &Fib4 {
        self.fib4.cur()
    }

    /// The IPv6 FIB as of the last operation.
    pub fn fib6(&self) -> &Fib6 {
        self.fib6.cur()
    }

    /// A static route (configured or operator) holds the prefix's FIB entry.
    fn static_wins(&self, prefix: &Prefix) -> bool {
        self.static_routes.contains_key(prefix) || self.operator_routes.contains_key(prefix)
    }

    /// Whether hop id `i` is the config's.
    fn is_static(&self, i: usize) -> bool {
        self.hop_static.get(i).copied().unwrap_or(false)
    }

    /// Hop ids that can still be allocated.
    fn hop_room(&self) -> usize {
        self.free_hops.len() + (HopId::MAX as usize + 1).saturating_sub(self.hops.len())
    }

    fn policy_for(&self, prefix: &Prefix) -> GroupPolicy {
        let mut best: Option<&PrefixPolicy> = None;
        for p in self.policies.iter().filter(|p| p.covers(prefix)) {
            if best.is_none_or(|b| p.range.len() > b.range.len()) {
                best = Some(p);
            }
        }
        best.map_or(self.default_policy, |p| p.group)
    }

    /// Fills the empty `group` with `hops` (those it can reach), balanced together, then drains
    /// the ones to drain so they own no bucket. Refused hops are reported and left out.
    fn build_group(
        &mut self,
        batch: &mut Batch,
        prefix: Prefix,
        policy: GroupPolicy,
        mut group: ResilientGroup,
        hops: &HopSet,
    ) -> (ResilientGroup, BTreeMap<IpAddr, HopId>) {
        let mut members = BTreeMap::new();
        for &addr in hops.keys() {
            let Some(hop) = self.acquire_hop(batch, prefix, addr, policy.action) else {
                continue;
            };
            match group
                .add_member(hop, BGP_WEIGHT)
                .and_then(|()| group.set_maglev_key(hop, ecmp_tables::nexthop::maglev_key(addr)))
            {
                Ok(()) => {
                    members.insert(addr, hop);
                }
                Err(source) => {
                    self.errors.push(BuildError::Table { prefix, source });
                    self.release_hop(batch, hop);
                }
            }
        }
        // Members join together: balance once, then drain, so draining hops own no bucket.
        group.clear();
        for (addr, &hop) in &members {
            let state = effective(wanted(hops, addr), self.drained.contains(addr));
            if state == HopState::Draining
                && let Err(source) = group.set_state(hop, HopState::Draining)
            {
                self.errors.push(BuildError::Table { prefix, source });
            }
        }
        (group, members)
    }

    /// An empty group under `policy`.
    fn new_group(&self, policy: GroupPolicy) -> Result<ResilientGroup, TableError> {
        let mut group = ResilientGroup::new(policy.buckets, policy.mode, self.seed)?;
        group.set_policy(policy.hash);
        Ok(group)
    }

    fn add_prefix(&mut self, batch: &mut Batch, change: &PrefixChange) {
        let prefix = change.prefix;
        let policy = self.policy_for(&prefix);
        let group = match self.new_group(policy) {
            Ok(g) => g,
            Err(source) => {
                self.errors.push(BuildError::Table { prefix, source });
                return;
            }
        };
        let (group, members) = self.build_group(batch, prefix, policy, group, &change.hops);
        if members.is_empty() {
            return;
        }
        let Some(gid) = self.alloc_group() else {
            self.errors.push(BuildError::GroupIdsExhausted {
                prefix,
                max: MAX_GROUP_ID,
            });
            self.release_all(batch, members.values());
            return;
        };
        if !self.static_wins(&prefix) {
            if let Err(source) = fib_insert(&mut self.fib4, &mut self.fib6, prefix, gid) {
                self.errors.push(BuildError::Table { prefix, source });
                self.release_all(batch, members.values());
                self.free_group(gid);
                return;
            }
            batch.fib = true;
        }
        if let Some(slot) = slot_of(gid).and_then(|i| self.groups.get_mut(i)) {
            *slot = GroupSlot::Bgp(Box::new(PrefixGroup {
                prefix,
                policy,
                group,
                members,
                want: change.hops.clone(),
            }));
        }
        self.routes.insert(prefix, gid);
        batch.groups.insert(gid);
    }

    fn remove_prefix(&mut self, batch: &mut Batch, prefix: Prefix, gid: GroupId) {
        self.routes.remove(&prefix);
        if !self.static_wins(&prefix) {
            let removed = fib_change(&mut self.fib4, &mut self.fib6, prefix, None);
            match removed {
                Ok(_) => batch.fib = true,
                Err(source) => self.errors.push(BuildError::Table { prefix, source }),
            }
        }
        let slot = slot_of(gid).and_then(|i| self.groups.get_mut(i));
        let Some(slot) = slot.filter(|s| matches!(s, GroupSlot::Bgp(_))) else {
            return;
        };
        if let GroupSlot::Bgp(g) = std::mem::replace(slot, GroupSlot::Free) {
            self.release_all(batch, g.members.values());
        }
        self.free_group(gid);
        batch.groups.insert(gid);
    }

    /// Moves a BGP or operator static group to the hop set `hops`: listed hops take the state
    /// it wants (failed when left out, draining when drained), new ones join as the mode says.
    fn update_group(&mut self, batch: &mut Batch, gid: GroupId, hops: &HopSet) {
        // Taken out while hops are acquired (which needs `&mut self`), put back at the end.
        let Some(i) = slot_of(gid).filter(|&i| {
            matches!(
                self.groups.get(i),
                Some(GroupSlot::Bgp(_) | GroupSlot::Operator(_))
            )
        }) else {
            return;
        };
        let (mut g, operator) = match std::mem::replace(&mut self.groups[i], GroupSlot::Free) {
            GroupSlot::Bgp(g) => (g, false),
            GroupSlot::Operator(g) => (g, true),
            other => {
                self.groups[i] = other;
                return;
            }
        };
        let prefix = g.prefix;
        // Worked out up front: acquiring hops below needs `&mut self`.
        let targets: BTreeMap<IpAddr, HopState> = g
            .members
            .keys()
            .chain(hops.keys())
            .map(|a| (*a, effective(wanted(hops, a), self.drained.contains(a))))
            .collect();
        let want = |addr: &IpAddr| targets.get(addr).copied().unwrap_or(HopState::Failed);
        let current: Vec<(IpAddr, HopId, HopState)> = g
            .members
            .iter()
            .filter_map(|(&addr, &hop)| Some((addr, hop, g.group.member(hop)?.state)))
            .collect();
        let mut transitions: Vec<(HopId, HopState)> = current
            .iter()
            .filter(|&&(addr, _, state)| want(&addr) != state)
            .map(|&(addr, hop, _)| (hop, want(&addr)))
            .collect();
        // Hops leaving Active first: their buckets go to the hops that were already serving,
        // exactly as if the leave had come in an earlier batch; joins then follow their mode.
        let leaving_active = |&(hop, _): &(HopId, HopState)| {
            current
                .iter()
                .any(|&(_, h, s)| h == hop && s == HopState::Active)
        };
        transitions.sort_by_key(|t| !leaving_active(t));
        let mut changed = !transitions.is_empty();
        for (hop, state) in transitions {
            if let Err(source) = g.group.set_state(hop, state) {
                self.errors.push(BuildError::Table { prefix, source });
            }
        }
        for &addr in hops.keys() {
            if g.members.contains_key(&addr) {
                continue;
            }
            let state = want(&addr);
            let Some(hop) = self.acquire_hop(batch, prefix, addr, g.policy.action) else {
                continue;
            };
            let added = g.group.add_member(hop, BGP_WEIGHT).and_then(|()| {
                g.group
                    .set_maglev_key(hop, ecmp_tables::nexthop::maglev_key(addr))?;
                if state == HopState::Draining {
                    g.group.set_state(hop, HopState::Draining)
                } else {
                    Ok(())
                }
            });
            match added {
                Ok(()) => {
                    g.members.insert(addr, hop);
                    changed = true;
                }
                Err(source) => {
                    self.errors.push(BuildError::Table { prefix, source });
                    if g.group.member(hop).is_some() {
                        g.members.insert(addr, hop);
                        changed = true;
                    } else {
                        self.release_hop(batch, hop);
                    }
                }
            }
        }
        if changed {
            batch.groups.insert(gid);
        }
        g.want.clone_from(hops);
        self.groups[i] = if operator {
            GroupSlot::Operator(g)
        } else {
            GroupSlot::Bgp(g)
        };
    }

    /// The hop id for `addr` under `template`, allocated (and resolved) on first use; counts
    /// one more group listing it.
    fn acquire_hop(
        &mut self,
        batch: &mut Batch,
        prefix: Prefix,
        addr: IpAddr,
        template: ActionTemplate,
    ) -> Option<HopId> {
        let Some(action) = template.action_for(addr) else {
            self.errors.push(BuildError::EncapFamily {
                prefix,
                next_hop: addr,
            });
            return None;
        };
        if let Some(&id) = self.hop_ids.get(&(addr, action)) {
            self.hop_refs[id as usize] += 1;
            return Some(id);
        }
        let id = match self.free_hops.pop_front() {
            Some(id) => id,
            None => match HopId::try_from(self.hops.len()) {
                Ok(id) => {
                    self.hops.push(placeholder(id));
                    self.hop_refs.push(0);
                    self.hop_static.push(false);
                    id
                }
                Err(_) => {
                    self.errors.push(BuildError::Table {
                        prefix,
                        source: TableError::TooManyMembers {
                            max: HopId::MAX as usize,
                        },
                    });
                    return None;
                }
            },
        };
        let (port, mac) = self.resolve(addr);
        self.hops[id as usize] = NextHop {
            id,
            addr,
            port,
            mac,
            weight: BGP_WEIGHT,
            action,
        };
        self.hop_refs[id as usize] = 1;
        self.hop_ids.insert((addr, action), id);
        batch.hops = true;
        Some(id)
    }

    /// One group fewer lists `id`; a BGP hop no group lists is freed.
    fn release_hop(&mut self, batch: &mut Batch, id: HopId) {
        let i = id as usize;
        if self.is_static(i) {
            return;
        }
        let Some(refs) = self.hop_refs.get_mut(i) else {
            return;
        };
        *refs = refs.saturating_sub(1);
        if *refs == 0 {
            let hop = self.hops[i];
            self.hop_ids.remove(&(hop.addr, hop.action));
            self.hops[i] = placeholder(id);
            self.free_hops.push_back(id);
            batch.hops = true;
        }
    }

    fn release_all<'a>(&mut self, batch: &mut Batch, hops: impl Iterator<Item = &'a HopId>) {
        for &hop in hops {
            self.release_hop(batch, hop);
        }
    }

    /// Port and MAC for `addr`: unresolved (port 0, zero MAC) when the resolver does not know
    /// it or names a port that does not exist.
    fn resolve(&mut self, addr: IpAddr) -> (PortId, [u8; 6]) {
        match self.resolver.resolve(addr) {
            Some((port, mac)) if usize::from(port) < self.ports.len() => (port, mac),
            Some((port, _)) => {
                self.errors.push(BuildError::UnknownPort {
                    next_hop: addr,
                    port,
                });
                (0, [0; 6])
            }
            None => (0, [0; 6]),
        }
    }

    /// The lowest free group id, or the next one while below the FIB's limit.
    fn alloc_group(&mut self) -> Option<GroupId> {
        if let Some(id) = self.free_groups.pop_first() {
            return Some(id);
        }
        let id = GroupId::try_from(self.groups.len() + 1).ok()?;
        if id > MAX_GROUP_ID {
            return None;
        }
        self.groups.push(GroupSlot::Free);
        self.tables.push(Arc::clone(&self.unset));
        Some(id)
    }

    /// Groups whose buckets moved, with how many moved since each was created, by group id.
    pub fn bucket_moves(&self) -> Vec<GroupMoves> {
        self.bucket_moves
            .iter()
            .map(|(&group, &moves)| GroupMoves {
                group,
                prefix: slot_of(group).and_then(|s| self.groups.get(s)).and_then(
                    |slot| match slot {
                        GroupSlot::Bgp(g) | GroupSlot::Operator(g) => Some(g.prefix),
                        GroupSlot::Static(_) | GroupSlot::Free => None,
                    },
                ),
                moves,
            })
            .collect()
    }

    fn free_group(&mut self, id: GroupId) {
        let i = id as usize;
        if let Some(slot) = slot_of(id).and_then(|s| self.groups.get_mut(s)) {
            *slot = GroupSlot::Free;
            self.tables.set(i, Arc::clone(&self.unset));
            self.free_groups.insert(id);
            self.bucket_moves.remove(&id);
        }
        while matches!(self.groups.last(), Some(GroupSlot::Free)) {
            self.groups.pop();
            self.tables.pop();
            // The popped slot held id `groups.len() + 1` (counted after the pop).
            self.free_groups.remove(&(self.groups.len() as GroupId + 1));
        }
    }

    fn finish(&mut self, batch: Batch) -> Option<Snapshot> {
        if batch.is_empty() {
            return None;
        }
        for &gid in &batch.groups {
            let i = gid as usize;
            let Some(slot) = slot_of(gid).and_then(|s| self.groups.get(s)) else {
                continue;
            };
            let table = slot
                .group()
                .map_or_else(|| Arc::clone(&self.unset), |g| Arc::new(g.table()));
            if let Some(old) = self.tables.get(i) {
                let moved = moved_buckets(old, &table);
                if moved > 0 {
                    *self.bucket_moves.entry(gid).or_default() += moved;
                }
            }
            self.tables.set(i, table);
        }
        Some(self.snapshot())
    }
}

mod reload;
#[cfg(test)]
mod tests;
mod twin;

use twin::Twin;
