//! The control thread's answers to control socket requests (see [`crate::ctl_server`]).
//!
//! Every request runs here, between feed batches, on the thread that owns the RIB and the
//! builder, so a command sees and changes one consistent state. A state-changing command that
//! fails changes nothing (the builder's operations are all-or-nothing) and publishes nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use ecmp_proto::Prefix;
use ecmp_proto::ctl::{
    BucketDetail, Changed, GroupSummary, GroupsReply, HopStateName, MAX_FLOWS_LISTED, MemberDetail,
    NexthopSummary, PeerLine, Reply, Request, RouteDetail, RouteOrigin, RouteSummary, StatsReply,
    WhatIfGroup, WhatIfReply,
};
use ecmp_proto::digest::{group_digest, table_digest};
use ecmp_tables::Snapshot;
use ecmp_tables::group::GroupMode;
use ecmp_tables::nexthop::HopState;

use super::{CONVERGENCE_BOUNDS, Control, MetricsSnapshot, bump};
use crate::builder::{NextHopResolver, RouteInfo};
use crate::rib::PeerState;

pub(super) fn state_name(state: HopState) -> HopStateName {
    match state {
        HopState::Active => HopStateName::Active,
        HopState::Draining => HopStateName::Draining,
        HopState::Failed => HopStateName::Failed,
    }
}

fn mode_name(mode: GroupMode) -> String {
    match mode {
        GroupMode::Manual => "manual".to_owned(),
        GroupMode::AutoRecovery => "auto-recovery".to_owned(),
        GroupMode::Idle {
            idle_timer_ms,
            unbalanced_timer_ms,
        } => format!("idle({idle_timer_ms}ms,{unbalanced_timer_ms}ms)"),
        GroupMode::Maglev => "maglev".to_owned(),
        GroupMode::Rendezvous => "rendezvous".to_owned(),
    }
}

/// What `ecmpctl route` says about a mode: how hops get buckets, and whether forwarders agree.
pub(super) fn mode_note(mode: GroupMode) -> String {
    const LOCAL: &str = "under traffic the table depends on this forwarder's history (which \
                         buckets flows used), so forwarders meant to agree use maglev or rendezvous";
    match mode {
        GroupMode::Manual => format!(
            "manual: a joining or returning hop gets no buckets until `clear` (IOS-XR sticky \
             ECMP), even before traffic; members listed together share the buckets by weight \
             whatever their order; {LOCAL}"
        ),
        GroupMode::AutoRecovery => format!(
            "auto-recovery: before traffic the table depends only on the members; then a \
             returning hop gets back exactly its old buckets and a joining hop those no flow \
             has used, the rest on `clear`; {LOCAL}"
        ),
        GroupMode::Idle { idle_timer_ms, .. } => format!(
            "idle: before traffic the table depends only on the members; then a joining hop \
             gets the buckets no flow has used at once, and busy ones once idle for \
             {idle_timer_ms} ms; {LOCAL}"
        ),
        GroupMode::Maglev => "maglev: a pure function of seed, members and weights, identical on \
                              every forwarder whatever the order of updates"
            .to_owned(),
        GroupMode::Rendezvous => "rendezvous: a pure function of seed, members and weights, \
                                  identical on every forwarder whatever the order of updates; a \
                                  change moves only the changed hop's buckets"
            .to_owned(),
    }
}

fn hash_text(h: &ecmp_tables::policy::HashPolicy) -> String {
    let mut out = format!("{:?} {:?}", h.fields, h.algo).to_lowercase();
    if h.symmetric {
        out.push_str(" symmetric");
    }
    if h.inner {
        out.push_str(" inner");
    }
    out
}

fn mac_text(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Each bucket's owner by next-hop address, what the digests read: hop ids are this process's
/// own numbering, addresses are what forwarders share.
fn owners(info: &RouteInfo) -> Vec<Option<IpAddr>> {
    info.buckets
        .iter()
        .map(|b| {
            info.members
                .iter()
                .find(|m| m.hop == b.hop && b.hop != 0)
                .map(|m| m.addr)
        })
        .collect()
}

fn summary(info: &RouteInfo, origin: RouteOrigin) -> RouteSummary {
    let count = |s: HopState| info.members.iter().filter(|m| m.state == s).count();
    RouteSummary {
        prefix: info.prefix,
        origin,
        group: info.group,
        installed: info.installed,
        mode: mode_name(info.policy.mode),
        active: count(HopState::Active),
        draining: count(HopState::Draining),
        failed: count(HopState::Failed),
        buckets: info.buckets.len(),
        digest: Some(group_digest(&owners(info))),
    }
}

fn detail(info: RouteInfo, origin: RouteOrigin) -> RouteDetail {
    RouteDetail {
        summary: summary(&info, origin),
        hash: hash_text(&info.policy.hash),
        action: format!("{:?}", info.policy.action),
        mode_note: mode_note(info.policy.mode),
        members: info
            .members
            .iter()
            .map(|m| MemberDetail {
                addr: m.addr,
                hop: m.hop,
                state: state_name(m.state),
                reason: m.reason,
                buckets: m.buckets,
            })
            .collect(),
        buckets: info
            .buckets
            .iter()
            .map(|b| BucketDetail {
                hop: b.hop,
                replaced: b.replaced,
            })
            .collect(),
    }
}

impl<R: NextHopResolver, P: FnMut(Snapshot)> Control<R, P> {
    /// Publishes a snapshot; `first_rx` (when a feed line caused it) starts a convergence sample.
    pub(super) fn publish_snapshot(&mut self, snapshot: Snapshot, first_rx: Option<Instant>) {
        // Counted first, so whoever has received a snapshot sees it counted.
        bump(&self.counters.publishes);
        (self.publish)(snapshot);
        if let (Some(dp), Some(t)) = (&self.dataplane, first_rx) {
            self.converging.push((dp.generation(), t));
        }
    }

    /// Records the publications every worker has taken by now.
    pub(super) fn check_convergence(&mut self) {
        let Some(dp) = &self.dataplane else {
            self.converging.clear();
            return;
        };
        if self.converging.is_empty() {
            return;
        }
        let applied = dp.applied_generation();
        let now = Instant::now();
        let convergence = &mut self.convergence;
        self.converging.retain(|&(generation, t)| {
            if generation <= applied {
                convergence.record(now.saturating_duration_since(t));
                false
            } else {
                true
            }
        });
    }

    pub(super) fn generation(&self) -> u64 {
        match &self.dataplane {
            Some(dp) => dp.generation(),
            None => self
                .counters
                .publishes
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Publishes what an operator command produced, notes it among the route events and says so.
    fn changed(&mut self, snapshot: Option<Snapshot>, what: String) -> Reply {
        let published = snapshot.is_some();
        if let Some(s) = snapshot {
            self.publish_snapshot(s, None);
        }
        let generation = if published { self.generation() } else { 0 };
        self.events.operator(what, generation);
        Reply::ok(Changed {
            published,
            generation: self.generation(),
        })
    }

    fn origin_of(&self, prefix: &Prefix) -> Option<RouteOrigin> {
        self.builder
            .static_routes()
            .iter()
            .find(|s| s.route.prefix == *prefix)
            .map(|s| {
                if s.configured {
                    RouteOrigin::Config
                } else {
                    RouteOrigin::Operator
                }
            })
    }

    pub(super) fn command(&mut self, request: Request) -> Reply {
        match request {
            Request::Routes {} => {
                let mut out: Vec<RouteSummary> = self
                    .route_infos()
                    .iter()
                    .map(|(info, origin)| summary(info, *origin))
                    .collect();
                out.sort_by_key(|r| r.prefix);
                Reply::ok(out)
            }
            Request::Groups {} => Reply::ok(self.groups_reply()),
            Request::Route { prefix } => {
                let mut routes = Vec::new();
                if let Some(origin) = self.origin_of(&prefix)
                    && let Some(s) = self
                        .builder
                        .static_routes()
                        .into_iter()
                        .find(|s| s.route.prefix == prefix)
                {
                    routes.push(detail(s.route, origin));
                }
                if let Some(info) = self.builder.route(&prefix) {
                    routes.push(detail(info, RouteOrigin::Bgp));
                }
                if routes.is_empty() {
                    Reply::error(format!("no route for {prefix}"))
                } else {
                    Reply::ok(routes)
                }
            }
            Request::Nexthops {} => Reply::ok(self.nexthop_lines()),
            Request::Flows { top } if top > MAX_FLOWS_LISTED => Reply::error(format!(
                "flows lists at most {MAX_FLOWS_LISTED} flows (asked for {top}); the totals count \
                 every flow"
            )),
            Request::Flows { top } => match &self.dataplane {
                Some(dp) => dp
                    .flows(top)
                    .map_or_else(|e| Reply::error(e.to_string()), Reply::ok),
                None => Reply::error("no data plane attached"),
            },
            Request::Stats {} => {
                let mut stats = self.data_stats();
                let f = super::StatsHandle(std::sync::Arc::clone(&self.counters)).get();
                stats.feed = vec![
                    ("connections".to_owned(), f.connections),
                    ("rejected_peers".to_owned(), f.rejected_peers),
                    ("lines".to_owned(), f.lines),
                    ("not_json".to_owned(), f.not_json),
                    ("command_errors".to_owned(), f.command_errors),
                    ("ignored".to_owned(), f.ignored),
                    ("decode_errors".to_owned(), f.decode_errors),
                    ("oversized".to_owned(), f.oversized),
                    ("abandoned".to_owned(), f.abandoned),
                    ("line_timeouts".to_owned(), f.line_timeouts),
                    ("refused_busy".to_owned(), f.refused_busy),
                    ("evicted".to_owned(), f.evicted),
                    ("publishes".to_owned(), f.publishes),
                    ("build_errors".to_owned(), f.build_errors),
                    ("paths".to_owned(), f.paths),
                    ("prefixes".to_owned(), f.prefixes),
                ];
                stats.announce = self.announcer.lines(Instant::now());
                Reply::ok(stats)
            }
            Request::Trace(query) => match &self.dataplane {
                Some(dp) => dp
                    .trace(&query)
                    .map_or_else(|e| Reply::error(e.to_string()), Reply::ok),
                None => Reply::error("no data plane attached"),
            },
            Request::Drain { hop } | Request::Undrain { hop } if !self.hop_known(hop) => {
                Reply::error(format!("{hop} is not a next hop of any group"))
            }
            Request::Drain { hop } => {
                let s = self.builder.set_drained(hop, true);
                self.changed(s, format!("drain {hop}"))
            }
            Request::Undrain { hop } => {
                let s = self.builder.set_drained(hop, false);
                self.changed(s, format!("undrain {hop}"))
            }
            Request::Clear { prefix } => {
                if self.builder.group_id(&prefix).is_none() {
                    return Reply::error(format!("no BGP route for {prefix}"));
                }
                let s = self.builder.clear(&prefix);
                self.changed(s, format!("clear {prefix}"))
            }
            Request::RouteAdd { prefix, via } => {
                match self.builder.add_static_route(prefix, &via) {
                    Ok(s) => {
                        let hops: Vec<String> = via.iter().map(ToString::to_string).collect();
                        self.changed(s, format!("route add {prefix} via {}", hops.join(" ")))
                    }
                    Err(e) => Reply::error(e.to_string()),
                }
            }
            Request::RouteDel { prefix } => match self.builder.remove_static_route(&prefix) {
                Ok(s) => self.changed(s, format!("route del {prefix}")),
                Err(e) => Reply::error(e.to_string()),
            },
            Request::WhatIfRemove { hop } => {
                let groups: Vec<WhatIfGroup> = self
                    .builder
                    .what_if_remove(hop)
                    .into_iter()
                    .map(|w| WhatIfGroup {
                        group: w.group,
                        prefix: w.prefix,
                        buckets: w.buckets,
                    })
                    .collect();
                if groups.is_empty() {
                    return Reply::error(format!("{hop} is not a next hop of any group"));
                }
                let ids: Vec<u32> = self
                    .builder
                    .hops()
                    .iter()
                    .filter(|h| h.hop.addr == hop)
                    .map(|h| h.hop.id)
                    .collect();
                // Every flow cached on the hop moves when it goes; flows on other hops stay.
                let flows = self.dataplane.as_ref().and_then(|dp| {
                    let f = dp.flows(0).ok()?;
                    Some(
                        f.per_hop
                            .iter()
                            .filter(|h| ids.contains(&h.hop))
                            .map(|h| h.flows)
                            .sum(),
                    )
                });
                Reply::ok(WhatIfReply {
                    buckets: groups.iter().map(|g| g.buckets).sum(),
                    groups,
                    flows,
                })
            }
            Request::WhatIfAdd { prefix, hop } => match self.builder.what_if_add(&prefix, hop) {
                Some(buckets) => Reply::ok(WhatIfReply {
                    groups: vec![WhatIfGroup {
                        group: self.builder.group_id(&prefix).unwrap_or_default(),
                        prefix: Some(prefix),
                        buckets,
                    }],
                    buckets,
                    // Cached flows stay pinned to their hop while it remains a member, so a
                    // join moves none of them; only flows not cached yet see the new buckets.
                    flows: None,
                }),
                None => Reply::error(format!(
                    "no BGP route for {prefix}, or its action cannot reach {hop}"
                )),
            },
            Request::Peers {} => Reply::ok(self.peer_lines()),
            Request::Announcements {} => Reply::ok(self.announcer.lines(Instant::now())),
            Request::Convergence {} => Reply::ok(self.convergence.report()),
            // The connection thread turns a capture into `Msg::Capture` and streams it itself.
            Request::Capture(_) => Reply::error("capture is served by its connection"),
            Request::RouteEvents { last } => Reply::ok(self.events.recent(last)),
            Request::Reload {} => self.reload(false),
        }
    }

    /// Every route, static ones first, with where it came from.
    fn route_infos(&self) -> Vec<(RouteInfo, RouteOrigin)> {
        let mut out: Vec<(RouteInfo, RouteOrigin)> = self
            .builder
            .static_routes()
            .into_iter()
            .map(|s| {
                let origin = if s.configured {
                    RouteOrigin::Config
                } else {
                    RouteOrigin::Operator
                };
                (s.route, origin)
            })
            .collect();
        let bgp: Vec<Prefix> = self.builder.routes().map(|(p, _)| p).collect();
        out.extend(
            bgp.iter()
                .filter_map(|p| self.builder.route(p))
                .map(|info| (info, RouteOrigin::Bgp)),
        );
        out
    }

    /// Every group behind a route with its digest, and the table's digest (installed routes).
    pub(super) fn groups_reply(&self) -> GroupsReply {
        let mut groups: BTreeMap<u32, GroupSummary> = BTreeMap::new();
        let mut installed = Vec::new();
        for (info, _) in self.route_infos() {
            let digest = group_digest(&owners(&info));
            if info.installed {
                installed.push((info.prefix, digest));
            }
            let entry = groups.entry(info.group).or_insert_with(|| GroupSummary {
                group: info.group,
                prefixes: Vec::new(),
                mode: mode_name(info.policy.mode),
                buckets: info.buckets.len(),
                active: info
                    .members
                    .iter()
                    .filter(|m| m.state == HopState::Active)
                    .count(),
                digest,
            });
            entry.prefixes.push(info.prefix);
        }
        let mut groups: Vec<GroupSummary> = groups.into_values().collect();
        for g in &mut groups {
            g.prefixes.sort_unstable();
        }
        GroupsReply {
            groups,
            digest: table_digest(installed),
        }
    }

    /// Every next hop in use, for `nexthops` and the metrics.
    fn nexthop_lines(&self) -> Vec<NexthopSummary> {
        let drained: Vec<IpAddr> = self.builder.drained();
        self.builder
            .hops()
            .iter()
            .map(|h| NexthopSummary {
                hop: h.hop.id,
                addr: h.hop.addr,
                port: self
                    .dataplane
                    .as_ref()
                    .and_then(|dp| dp.port_name(h.hop.port))
                    .unwrap_or_else(|| format!("port{}", h.hop.port)),
                mac: mac_text(h.hop.mac),
                resolved: h.resolved,
                action: format!("{:?}", h.hop.action),
                groups: h.groups,
                configured: h.configured,
                drained: drained.contains(&h.hop.addr),
            })
            .collect()
    }

    /// Feed sessions, for `peers` and the metrics.
    fn peer_lines(&self) -> Vec<PeerLine> {
        self.rib
            .peers()
            .into_iter()
            .map(|p| PeerLine {
                peer: p.neighbor.peer,
                asn: p.neighbor.peer_as,
                state: match p.state {
                    PeerState::Connected => "connected",
                    PeerState::Up => "up",
                    PeerState::Down => "down",
                }
                .to_owned(),
                paths: p.paths,
                stale: p.stale,
                last_down_reason: p.last_down_reason,
            })
            .collect()
    }

    /// The data side's counters, or an empty set (with the control thread's uptime) when no
    /// data plane is attached.
    fn data_stats(&self) -> StatsReply {
        match &self.dataplane {
            Some(dp) => dp.stats(),
            None => StatsReply {
                uptime_s: self.started.elapsed().as_secs_f64(),
                tsc_hz: None,
                ports: Vec::new(),
                workers: Vec::new(),
                drops: Vec::new(),
                hops: Vec::new(),
                feed: Vec::new(),
                memory: Vec::new(),
                announce: Vec::new(),
                devices: Vec::new(),
            },
        }
    }

    /// What one scrape shows; the data side's counters are read from what the workers
    /// publish (no worker is asked anything).
    pub(super) fn metrics_snapshot(&self) -> MetricsSnapshot {
        let stats = self.data_stats();
        MetricsSnapshot {
            stats,
            feed: super::StatsHandle(std::sync::Arc::clone(&self.counters)).get(),
            nexthops: self.nexthop_lines(),
            peers: self.peer_lines(),
            bucket_moves: self.builder.bucket_moves(),
            routes: (self.builder.static_routes().len() + self.builder.routes().count()) as u64,
            generation: self.generation(),
            applied_generation: self.dataplane.as_ref().map(|dp| dp.applied_generation()),
            convergence: self.convergence.seconds_histogram(&CONVERGENCE_BOUNDS),
            announce: self.announcer.lines(Instant::now()),
        }
    }

    fn hop_known(&self, addr: IpAddr) -> bool {
        self.builder.hops().iter().any(|h| h.hop.addr == addr)
            || self.builder.drained().contains(&addr)
    }
}
