//! [`Builder::reload`]: moves the configured hops, groups and routes and the BGP policies to what
//! a reloaded config file asks for, as one batch published as one snapshot.
//!
//! Matching: hops and groups by name, routes by prefix. A kept hop keeps its id and a kept group
//! its id and its [`ResilientGroup`] (bucket table, bucket-use history), so the flows cached on
//! it stay where they are. New hops and groups get ids the way BGP ones do (lowest free group id,
//! oldest freed hop id, else the next one); ids of removed ones are freed after the batch, so no
//! id is given up and reused within one reload.
//!
//! Per kept group, in this order: members the file no longer lists are removed (only their
//! buckets move), the hash policy is set, kept members take their new weight, address (member
//! key) and state, and new members join as the group's mode says (`manual`: no buckets until
//! `clear`). A group whose mode or bucket count changed is built again from scratch, as at start.
//! A configured state is combined with the operator's drains exactly as at start and on
//! `drain`: an operator-drained address stays draining.
//!
//! All or nothing: every group is changed on a copy and every id counted before anything is
//! touched; the FIB is changed last of the checks and put back, in reverse order, if it refuses
//! an entry. Only then are the copies and the new ids committed. The one exception is what the
//! new BGP policies do to BGP and operator groups: those are rebuilt like [`Builder::apply`]
//! builds a prefix, a refused hop skipped and reported through [`Builder::take_errors`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ecmp_proto::Prefix;
use ecmp_proto::ctl::ReloadCounts;
use ecmp_tables::group::ResilientGroup;
use ecmp_tables::nexthop::{GroupId, HopId, HopState, NextHop, maglev_key};
use ecmp_tables::{MAX_GROUP_ID, TableError};

use super::{
    Batch, BuildError, Builder, ConfigGroup, ConfigTables, GroupSlot, NextHopResolver,
    ReloadSummary, StaticGroup, check_buckets, effective, fib_change, placeholder, slot_of,
};

/// One member as a group is to have it: hop id, weight, configured state, address.
type Target = (HopId, u32, HopState, IpAddr);

/// A configured group as it is to be: its id, its builder and configured states, whether its
/// id is new, whether it differs from the running one.
struct Planned {
    gid: GroupId,
    group: StaticGroup,
    fresh: bool,
    changed: bool,
}

/// A group built from scratch, as the daemon's setup builds one at start: members join
/// together, then the ones not wanted active leave together.
fn fresh_group(
    g: &ConfigGroup,
    targets: &[Target],
    seed: u64,
    drained: &BTreeSet<IpAddr>,
) -> Result<ResilientGroup, TableError> {
    let mut group = ResilientGroup::new(g.buckets, g.mode, seed)?;
    group.set_policy(g.hash);
    for &(hop, weight, _, addr) in targets {
        group.add_member(hop, weight)?;
        group.set_maglev_key(hop, maglev_key(addr))?;
    }
    group.clear();
    let states: Vec<(HopId, HopState)> = targets
        .iter()
        .map(|&(hop, _, want, addr)| (hop, effective(want, drained.contains(&addr))))
        .filter(|&(_, state)| state != HopState::Active)
        .collect();
    group.set_states(&states)?;
    Ok(group)
}

/// Moves a running group (same mode and bucket count) to `targets` with the group mode's
/// semantics; true when its table or members changed.
fn update_group(
    group: &mut ResilientGroup,
    g: &ConfigGroup,
    targets: &[Target],
    drained: &BTreeSet<IpAddr>,
) -> Result<bool, TableError> {
    let before = (
        group.members().to_vec(),
        group.bucket_owners().to_vec(),
        group.policy(),
    );
    let listed: BTreeSet<HopId> = targets.iter().map(|t| t.0).collect();
    let leaving: Vec<HopId> = group
        .members()
        .iter()
        .filter(|m| m.hop != 0 && !listed.contains(&m.hop))
        .map(|m| m.hop)
        .collect();
    // Leavers first, so their buckets go to the members that were already serving.
    for hop in leaving {
        group.remove_member(hop)?;
    }
    group.set_policy(g.hash);
    for &(hop, weight, want, addr) in targets {
        let state = effective(want, drained.contains(&addr));
        match group.member(hop).copied() {
            Some(m) => {
                if m.weight != weight {
                    group.set_weight(hop, weight)?;
                }
                group.set_maglev_key(hop, maglev_key(addr))?;
                if m.state != state {
                    group.set_state(hop, state)?;
                }
            }
            None => {
                group.add_member(hop, weight)?;
                group.set_maglev_key(hop, maglev_key(addr))?;
                if state != HopState::Active {
                    group.set_state(hop, state)?;
                }
            }
        }
    }
    let after = (
        group.members().to_vec(),
        group.bucket_owners().to_vec(),
        group.policy(),
    );
    Ok(before != after)
}

impl<R: NextHopResolver> Builder<R> {
    /// Moves the configured tables and the BGP policies to `desired` (see the module doc):
    /// returns what changed and the snapshot to publish (`None` when no table changed).
    /// Operator drains, operator static routes and BGP routes are kept.
    ///
    /// Refused, with nothing changed: a policy or group the tables refuse, an index `desired`
    /// does not have, a configured route for a prefix an operator static route holds, no id
    /// left, or a FIB refusal.
    pub fn reload(&mut self, desired: &ConfigTables) -> Result<ReloadSummary, BuildError> {
        self.check_desired(desired)?;

        // Hop ids: kept by name; new ones as `acquire_hop` would hand them out.
        let fresh_hops = desired
            .hops
            .iter()
            .filter(|h| !self.static_hop_names.contains_key(&h.name))
            .count();
        if fresh_hops > self.hop_room() {
            return Err(BuildError::ConfigIds { what: "hop" });
        }
        let mut free = self.free_hops.iter().copied();
        let mut next = self.hops.len();
        let hop_ids: Vec<HopId> = desired
            .hops
            .iter()
            .map(|h| match self.static_hop_names.get(&h.name) {
                Some(&(id, _)) => id,
                // Within `hop_room`, checked above.
                None => free.next().unwrap_or_else(|| {
                    next += 1;
                    (next - 1) as HopId
                }),
            })
            .collect();
        let records: Vec<NextHop> = desired
            .hops
            .iter()
            .zip(&hop_ids)
            .map(|(h, &id)| {
                let mut hop = NextHop { id, ..h.hop };
                if hop.mac == [0; 6] {
                    hop.mac = self
                        .resolver
                        .resolve(hop.addr)
                        .map_or([0; 6], |(_, mac)| mac);
                }
                hop
            })
            .collect();

        let plans = self.plan_groups(desired, &hop_ids, &records)?;
        let gids: Vec<GroupId> = plans.iter().map(|p| p.gid).collect();

        // Routes: the FIB entry of each prefix before and after (a BGP route holds a prefix no
        // static route holds; operator routes were refused above).
        let new_routes: BTreeMap<Prefix, GroupId> = desired
            .routes
            .iter()
            .map(|&(prefix, gi)| (prefix, gids[gi]))
            .collect();
        let mut routes = ReloadCounts::default();
        let mut ops: Vec<(Prefix, Option<GroupId>, Option<GroupId>)> = Vec::new();
        let prefixes: BTreeSet<Prefix> = self
            .static_routes
            .keys()
            .chain(new_routes.keys())
            .copied()
            .collect();
        for prefix in prefixes {
            let old = self.static_routes.get(&prefix).copied();
            let new = new_routes.get(&prefix).copied();
            match (old, new) {
                (None, Some(_)) => routes.added += 1,
                (Some(_), None) => routes.removed += 1,
                (Some(a), Some(b)) if a != b => routes.changed += 1,
                _ => {}
            }
            let bgp = self.routes.get(&prefix).copied();
            let (before, after) = (old.or(bgp), new.or(bgp));
            if before != after {
                ops.push((prefix, before, after));
            }
        }
        for (i, &(prefix, _, after)) in ops.iter().enumerate() {
            if let Err(source) = fib_change(&mut self.fib4, &mut self.fib6, prefix, after) {
                // Each undo brings back a state the FIB held a moment ago, so it fits again.
                for &(p, before, _) in ops[..i].iter().rev() {
                    if let Err(source) = fib_change(&mut self.fib4, &mut self.fib6, p, before) {
                        self.errors
                            .push(BuildError::StaticRoute { prefix: p, source });
                    }
                }
                return Err(BuildError::StaticRoute { prefix, source });
            }
        }

        // Nothing can fail from here on.
        let mut batch = Batch {
            fib: !ops.is_empty(),
            ..Batch::default()
        };
        let hops = self.commit_hops(&mut batch, desired, &hop_ids, &records);
        let groups = self.commit_groups(&mut batch, desired, plans);
        self.static_routes = new_routes;
        let policies =
            self.policies != desired.policies || self.default_policy != desired.default_policy;
        if policies {
            self.policies.clone_from(&desired.policies);
            self.default_policy = desired.default_policy;
            self.repolicy(&mut batch);
        }
        Ok(ReloadSummary {
            hops,
            groups,
            routes,
            policies,
            snapshot: self.finish(batch),
        })
    }

    /// The checks that need no plan: policies, indices, operator routes.
    fn check_desired(&self, desired: &ConfigTables) -> Result<(), BuildError> {
        check_buckets(None, desired.default_policy.buckets)?;
        for p in &desired.policies {
            check_buckets(Some(p.range), p.group.buckets)?;
        }
        for g in &desired.groups {
            if let Some(m) = g.members.iter().find(|m| m.hop >= desired.hops.len()) {
                return Err(BuildError::ConfigIndex {
                    what: format!("group {:?}", g.name),
                    index: m.hop,
                });
            }
        }
        for &(prefix, gi) in &desired.routes {
            if gi >= desired.groups.len() {
                return Err(BuildError::ConfigIndex {
                    what: format!("route {prefix}"),
                    index: gi,
                });
            }
            if self.operator_routes.contains_key(&prefix) {
                return Err(BuildError::OperatorRoute { prefix });
            }
        }
        Ok(())
    }

    /// Every configured group as it is to be, built on copies; group ids as `alloc_group`
    /// will hand them out.
    fn plan_groups(
        &self,
        desired: &ConfigTables,
        hop_ids: &[HopId],
        records: &[NextHop],
    ) -> Result<Vec<Planned>, BuildError> {
        let mut free = self.free_groups.iter().copied();
        let mut next = self.groups.len() + 1;
        let mut plans = Vec::with_capacity(desired.groups.len());
        for g in &desired.groups {
            let err = |source| BuildError::ConfigGroup {
                group: g.name.clone(),
                source,
            };
            let targets: Vec<Target> = g
                .members
                .iter()
                .map(|m| {
                    let state = desired.hops[m.hop].state;
                    (hop_ids[m.hop], m.weight, state, records[m.hop].addr)
                })
                .collect();
            let configured: BTreeMap<HopId, HopState> = targets
                .iter()
                .map(|&(hop, _, want, _)| (hop, want))
                .collect();
            let old = self.static_group_names.get(&g.name).and_then(|&gid| {
                match self.groups.get(slot_of(gid)?) {
                    Some(GroupSlot::Static(s)) => Some((gid, s)),
                    _ => None,
                }
            });
            let plan = match old {
                Some((gid, s))
                    if s.group.mode() == g.mode && s.group.bucket_count() == g.buckets =>
                {
                    let mut group = s.group.clone();
                    let moved =
                        update_group(&mut group, g, &targets, &self.drained).map_err(err)?;
                    Planned {
                        gid,
                        changed: moved || s.configured != configured,
                        group: StaticGroup { group, configured },
                        fresh: false,
                    }
                }
                _ => {
                    let group = fresh_group(g, &targets, self.seed, &self.drained).map_err(err)?;
                    let gid = match old {
                        Some((gid, _)) => gid,
                        None => match free.next() {
                            Some(gid) => gid,
                            None => {
                                next += 1;
                                GroupId::try_from(next - 1)
                                    .ok()
                                    .filter(|&id| id <= MAX_GROUP_ID)
                                    .ok_or(BuildError::ConfigIds { what: "group" })?
                            }
                        },
                    };
                    Planned {
                        gid,
                        group: StaticGroup { group, configured },
                        fresh: old.is_none(),
                        changed: true,
                    }
                }
            };
            plans.push(plan);
        }
        Ok(plans)
    }

    /// Installs the new hop records and ids, frees the removed ones.
    fn commit_hops(
        &mut self,
        batch: &mut Batch,
        desired: &ConfigTables,
        hop_ids: &[HopId],
        records: &[NextHop],
    ) -> ReloadCounts {
        let mut counts = ReloadCounts::default();
        let unresolved: BTreeSet<HopId> = self.static_unresolved.iter().copied().collect();
        let mut names = BTreeMap::new();
        for ((h, &id), record) in desired.hops.iter().zip(hop_ids).zip(records) {
            let i = id as usize;
            match self.static_hop_names.get(&h.name) {
                Some(&(_, state)) => {
                    let old = self.hops[i];
                    let old_mac = if unresolved.contains(&id) {
                        [0; 6]
                    } else {
                        old.mac
                    };
                    let configured = NextHop {
                        mac: old_mac,
                        ..old
                    };
                    if configured != (NextHop { id, ..h.hop }) || state != h.state {
                        counts.changed += 1;
                    }
                }
                None => {
                    counts.added += 1;
                    if self.free_hops.front() == Some(&id) {
                        self.free_hops.pop_front();
                    } else {
                        // The next id (`reload` handed them out in this order).
                        self.hops.push(placeholder(id));
                        self.hop_refs.push(0);
                        self.hop_static.push(false);
                    }
                }
            }
            if self.hops[i] != *record {
                self.hops[i] = *record;
                batch.hops = true;
            }
            self.hop_static[i] = true;
            names.insert(h.name.clone(), (id, h.state));
        }
        let removed: Vec<HopId> = self
            .static_hop_names
            .iter()
            .filter(|(name, _)| !names.contains_key(*name))
            .map(|(_, &(id, _))| id)
            .collect();
        for id in removed {
            counts.removed += 1;
            let i = id as usize;
            self.hops[i] = placeholder(id);
            self.hop_static[i] = false;
            self.hop_refs[i] = 0;
            self.free_hops.push_back(id);
            batch.hops = true;
        }
        self.static_unresolved = desired
            .hops
            .iter()
            .zip(hop_ids)
            .filter(|(h, _)| h.hop.mac == [0; 6])
            .map(|(_, &id)| id)
            .collect();
        self.static_hop_names = names;
        counts
    }

    /// Installs the planned groups, frees the removed ones, recounts the configured hops' refs.
    fn commit_groups(
        &mut self,
        batch: &mut Batch,
        desired: &ConfigTables,
        plans: Vec<Planned>,
    ) -> ReloadCounts {
        let mut counts = ReloadCounts::default();
        // New ids first, in the order `plan_groups` counted them.
        for plan in plans.iter().filter(|p| p.fresh) {
            let id = self.alloc_group();
            debug_assert_eq!(id, Some(plan.gid), "group ids handed out as planned");
        }
        let mut names = BTreeMap::new();
        for (g, plan) in desired.groups.iter().zip(plans) {
            names.insert(g.name.clone(), plan.gid);
            if plan.fresh {
                counts.added += 1;
            } else if plan.changed {
                counts.changed += 1;
            }
            if plan.changed
                && let Some(slot) = slot_of(plan.gid).and_then(|i| self.groups.get_mut(i))
            {
                *slot = GroupSlot::Static(Box::new(plan.group));
                batch.groups.insert(plan.gid);
            }
        }
        let removed: Vec<GroupId> = self
            .static_group_names
            .iter()
            .filter(|(name, _)| !names.contains_key(*name))
            .map(|(_, &gid)| gid)
            .collect();
        for gid in removed {
            counts.removed += 1;
            self.free_group(gid);
            batch.groups.insert(gid);
        }
        self.static_group_names = names;
        for i in 0..self.hop_refs.len() {
            if self.hop_static[i] {
                self.hop_refs[i] = 0;
            }
        }
        for slot in &self.groups {
            if let GroupSlot::Static(g) = slot {
                for m in g.group.members().iter().filter(|m| m.hop != 0) {
                    if let Some(refs) = self.hop_refs.get_mut(m.hop as usize) {
                        *refs += 1;
                    }
                }
            }
        }
        counts
    }

    /// Reshapes every BGP and operator group whose prefix's policy changed: a new hash is set
    /// in place (no bucket moves); a new mode, bucket count or action builds the group again
    /// from its source's hop set, like a new prefix.
    fn repolicy(&mut self, batch: &mut Batch) {
        for i in 0..self.groups.len() {
            let (prefix, old) = match &self.groups[i] {
                GroupSlot::Bgp(g) | GroupSlot::Operator(g) => (g.prefix, g.policy),
                GroupSlot::Static(_) | GroupSlot::Free => continue,
            };
            let policy = self.policy_for(&prefix);
            if policy == old {
                continue;
            }
            let gid = i as GroupId + 1;
            batch.groups.insert(gid);
            let same_shape =
                (policy.mode, policy.buckets, policy.action) == (old.mode, old.buckets, old.action);
            if same_shape {
                if let GroupSlot::Bgp(g) | GroupSlot::Operator(g) = &mut self.groups[i] {
                    g.group.set_policy(policy.hash);
                    g.policy = policy;
                }
                continue;
            }
            let empty = match self.new_group(policy) {
                Ok(g) => g,
                Err(source) => {
                    self.errors.push(BuildError::Table { prefix, source });
                    continue;
                }
            };
            let (mut g, operator) = match std::mem::replace(&mut self.groups[i], GroupSlot::Free) {
                GroupSlot::Bgp(g) => (g, false),
                GroupSlot::Operator(g) => (g, true),
                other => {
                    self.groups[i] = other;
                    continue;
                }
            };
            let want = g.want.clone();
            // The new hops are acquired before the old ones are released, so a hop in both
            // keeps its id.
            let (group, members) = self.build_group(batch, prefix, policy, empty, &want);
            let old_members = std::mem::replace(&mut g.members, members);
            self.release_all(batch, old_members.values());
            g.group = group;
            g.policy = policy;
            self.groups[i] = if operator {
                GroupSlot::Operator(g)
            } else {
                GroupSlot::Bgp(g)
            };
        }
    }
}
