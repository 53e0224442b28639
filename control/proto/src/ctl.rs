//! The control socket's protocol, spoken by `ecmpctl` and served by the daemon's control thread.
//!
//! One JSON object per line each way: a [`Request`] (tagged by `cmd`), answered by exactly one
//! [`Reply`] line. Requests that change state (`drain`, `undrain`, `clear`, `route-add`,
//! `route-del`, `reload`) either apply completely or answer `ok: false` having changed nothing.
//! Everything here is plain data so scripts can use the JSON directly (`ecmpctl --json`).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::{Origin, Prefix};

/// Longest request line the server reads; longer lines get an error reply and are discarded.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Most flows one `flows` request may list. A cache holds millions of flows; listing them all
/// would make workers copy them and the reply grow to hundreds of megabytes, so a larger `top`
/// is refused (the totals per worker and per hop still count every flow). A listed IPv6 flow
/// takes under 200 bytes of JSON, so the list stays under 2 MB.
pub const MAX_FLOWS_LISTED: usize = 10_000;

/// One command to the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Every route (BGP and static) with its group summary.
    Routes {},
    /// One route's group in detail: members and the bucket map.
    Route {
        /// The exact prefix.
        prefix: Prefix,
    },
    /// Every group with its bucket map's digest, and the table's digest.
    Groups {},
    /// Every next hop in use.
    Nexthops {},
    /// Flow-cache contents: totals per hop and the first `top` flows.
    Flows {
        /// How many flows to list (0: totals only; at most [`MAX_FLOWS_LISTED`], more is
        /// refused).
        #[serde(default)]
        top: usize,
    },
    /// Counters per port, per worker and per drop reason, with rates.
    Stats {},
    /// Which next hop a 5-tuple takes now, and why (cache or bucket).
    Trace(TraceQuery),
    /// Make a next hop take no new flows (its established flows stay).
    Drain {
        /// The next hop's address.
        hop: IpAddr,
    },
    /// Undo `drain`.
    Undrain {
        /// The next hop's address.
        hop: IpAddr,
    },
    /// Rebalance a prefix's group as its mode defines.
    Clear {
        /// The exact prefix.
        prefix: Prefix,
    },
    /// Add (or replace) a static route.
    RouteAdd {
        /// The prefix.
        prefix: Prefix,
        /// Its next hops.
        via: Vec<IpAddr>,
    },
    /// Remove a static route.
    RouteDel {
        /// The prefix.
        prefix: Prefix,
    },
    /// What removing a next hop would move, without changing anything.
    WhatIfRemove {
        /// The next hop's address.
        hop: IpAddr,
    },
    /// What adding a next hop to a prefix's group would move, without changing anything.
    WhatIfAdd {
        /// The prefix.
        prefix: Prefix,
        /// The next hop's address.
        hop: IpAddr,
    },
    /// Feed sessions and their path counts.
    Peers {},
    /// The `[[bgp.announce]]` prefixes: announced or withdrawn, why, and since when.
    Announcements {},
    /// Route-update convergence (feed line received -> every worker on the new tables).
    Convergence {},
    /// The most recent route changes (feed and operator), oldest first.
    RouteEvents {
        /// How many to return at most (0: every one kept, up to [`ROUTE_EVENTS_KEPT`]).
        #[serde(default)]
        last: usize,
    },
    /// Read the config file again and apply what changed in it (next hops, groups, routes,
    /// policies, timeouts) as one table update; refused, with nothing applied, when the file
    /// fails validation or changes something only a restart can.
    Reload {},
    /// Start a packet capture: answered by one [`Reply`] (a [`CaptureStarted`] or the reason
    /// it could not start), then a stream of [`CaptureLine`]s on the same connection until the
    /// capture ends (count reached, time bound, or the client closes its side).
    Capture(CaptureRequest),
}

/// Route changes the control thread keeps for `route-events`; older ones are forgotten.
pub const ROUTE_EVENTS_KEPT: usize = 256;

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// True when the request was carried out.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The result, shaped by the request (one of the `*Reply` types below).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub result: serde_json::Value,
}

impl Reply {
    /// A successful reply carrying `result`.
    pub fn ok(result: impl Serialize) -> Reply {
        match serde_json::to_value(result) {
            Ok(result) => Reply {
                ok: true,
                error: None,
                result,
            },
            Err(e) => Reply::error(format!("cannot encode the reply: {e}")),
        }
    }

    /// A refusal.
    pub fn error(message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(message.into()),
            result: serde_json::Value::Null,
        }
    }
}

/// A 5-tuple for `trace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceQuery {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub proto: u8,
    /// Source port (0 for protocols without ports).
    #[serde(default)]
    pub sport: u16,
    /// Destination port.
    #[serde(default)]
    pub dport: u16,
}

/// A next hop's state in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HopStateName {
    /// Takes new flows.
    Active,
    /// Keeps established flows, takes no new ones.
    Draining,
    /// Gone: its buckets moved.
    Failed,
}

/// The BGP path-selection step a path lost at (see [`DrainReason::NotBest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Criterion {
    /// LOCAL_PREF: highest wins.
    LocalPref,
    /// AS_PATH length: shortest wins.
    AsPathLength,
    /// ORIGIN: lowest code wins (IGP 0 < EGP 1 < INCOMPLETE 2).
    Origin,
    /// MULTI_EXIT_DISC: lowest wins, among paths from the same neighbour AS.
    Med,
}

/// Why a member takes no new flows, for `route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DrainReason {
    /// Every path to it carries GRACEFUL_SHUTDOWN (65535:0, RFC 8326).
    GracefulShutdown,
    /// Its paths are still announced but lose BGP multipath selection to the prefix's best.
    NotBest {
        /// The step its best path lost at.
        criterion: Criterion,
        /// Its best path's value for that step (ORIGIN as its code).
        value: u32,
        /// The winners' value.
        best: u32,
    },
    /// An operator drained its address (`drain`).
    Operator,
    /// The config file gives it the draining state.
    Configured,
}

impl fmt::Display for DrainReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DrainReason::GracefulShutdown => f.write_str("graceful shutdown (65535:0)"),
            DrainReason::Operator => f.write_str("drained by operator"),
            DrainReason::Configured => f.write_str("configured draining"),
            DrainReason::NotBest {
                criterion,
                value,
                best,
            } => match criterion {
                Criterion::LocalPref => write!(f, "not best: local-pref {value} < {best}"),
                Criterion::AsPathLength => {
                    write!(f, "not best: as-path length {value} > {best}")
                }
                Criterion::Med => write!(f, "not best: med {value} > {best}"),
                Criterion::Origin => {
                    let name =
                        |code| Origin::from_code(code).map_or("?".to_owned(), |o| o.to_string());
                    write!(f, "not best: origin {} > {}", name(value), name(best))
                }
            },
        }
    }
}

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteOrigin {
    /// Learnt from the BGP feed.
    Bgp,
    /// From the config file.
    Config,
    /// Added with `route-add`.
    Operator,
}

/// One line of `routes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSummary {
    /// The prefix.
    pub prefix: Prefix,
    /// Where it came from.
    pub origin: RouteOrigin,
    /// Its group id.
    pub group: u32,
    /// False when another route for the same prefix wins (static over BGP).
    pub installed: bool,
    /// Group mode name.
    pub mode: String,
    /// Members by state.
    pub active: usize,
    /// Draining members.
    pub draining: usize,
    /// Failed members.
    pub failed: usize,
    /// Buckets in the group.
    pub buckets: usize,
    /// The digest of the group's bucket map ([`crate::digest::group_digest`]); absent from a
    /// daemon that predates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

/// One group, for `groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Its group id (this forwarder's own numbering: compare digests, not ids).
    pub group: u32,
    /// The routes using it, ascending.
    pub prefixes: Vec<Prefix>,
    /// Group mode name.
    pub mode: String,
    /// Buckets in the group.
    pub buckets: usize,
    /// Members taking new flows.
    pub active: usize,
    /// The digest of its bucket map.
    pub digest: Digest,
}

/// `groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsReply {
    /// Every group behind a route, ascending by id.
    pub groups: Vec<GroupSummary>,
    /// The digest of the installed routes with their groups' digests
    /// ([`crate::digest::table_digest`]): equal on forwarders that send every flow alike.
    pub digest: Digest,
}

/// Why an `[[bgp.announce]]` prefix is withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WithdrawReason {
    /// The route for the prefix has no active (resolved, undrained) next hop owning buckets, or
    /// there is no such route.
    NoActiveHop,
    /// A worker has not completed a poll for longer than the configured stall time.
    WorkersStalled {
        /// The first stalled worker.
        worker: usize,
        /// How long it had gone without a poll when noticed, in milliseconds.
        stalled_ms: u64,
    },
    /// The daemon is stopping (SIGTERM): withdrawn first, stopped after the grace time.
    ShuttingDown,
}

impl fmt::Display for WithdrawReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WithdrawReason::NoActiveHop => f.write_str("no active hop"),
            WithdrawReason::WorkersStalled { worker, stalled_ms } => {
                write!(f, "worker {worker} stalled (no poll for {stalled_ms} ms)")
            }
            WithdrawReason::ShuttingDown => f.write_str("shutting down"),
        }
    }
}

impl WithdrawReason {
    /// The reason's kind as one word, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            WithdrawReason::NoActiveHop => "no-active-hop",
            WithdrawReason::WorkersStalled { .. } => "workers-stalled",
            WithdrawReason::ShuttingDown => "shutting-down",
        }
    }
}

/// One `[[bgp.announce]]` prefix, for `announcements`, `stats` and the metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnounceLine {
    /// The announced prefix.
    pub prefix: Prefix,
    /// The next hop it is announced with (`self` or an address).
    pub next_hop: String,
    /// True while the companion is told to announce it.
    pub announced: bool,
    /// Why it is withdrawn (absent while announced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<WithdrawReason>,
    /// Seconds since it was last announced or withdrawn (since start if never announced).
    pub since_s: f64,
    /// The ExaBGP command written on every feed connection for the current state.
    pub command: String,
}

/// One member of a group, for `route`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDetail {
    /// The next hop's address.
    pub addr: IpAddr,
    /// Its hop id.
    pub hop: u32,
    /// Its state.
    pub state: HopStateName,
    /// Why it is draining (absent unless it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DrainReason>,
    /// Buckets it owns.
    pub buckets: usize,
}

/// One bucket, for `route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDetail {
    /// Owner hop id (0: none).
    pub hop: u32,
    /// The owner changed since the group was last balanced.
    pub replaced: bool,
}

/// `route PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDetail {
    /// The route's summary line.
    pub summary: RouteSummary,
    /// Hash fields, as configured.
    pub hash: String,
    /// Action (rewrite or an encapsulation).
    pub action: String,
    /// What the mode does with joining and returning hops, and whether the table agrees
    /// across forwarders (empty from a daemon that predates it).
    #[serde(default)]
    pub mode_note: String,
    /// Members, ascending by address.
    pub members: Vec<MemberDetail>,
    /// The bucket map, by bucket index.
    pub buckets: Vec<BucketDetail>,
}

/// One line of `nexthops`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NexthopSummary {
    /// Hop id.
    pub hop: u32,
    /// Address.
    pub addr: IpAddr,
    /// Egress port name.
    pub port: String,
    /// Destination MAC (all zero: unresolved).
    pub mac: String,
    /// The MAC is known.
    pub resolved: bool,
    /// Action.
    pub action: String,
    /// Groups listing it.
    pub groups: u32,
    /// From the config file.
    pub configured: bool,
    /// Drained by an operator.
    pub drained: bool,
}

/// Cached flows of one next hop, for `flows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopFlows {
    /// Hop id.
    pub hop: u32,
    /// Flows cached toward it, all workers.
    pub flows: u64,
}

/// One cached flow, for `flows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEntry {
    /// The worker holding it.
    pub worker: usize,
    /// The 5-tuple.
    pub flow: TraceQuery,
    /// The hop it is pinned to.
    pub hop: u32,
    /// The group it was picked from.
    pub group: u32,
}

/// `flows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowsReply {
    /// Flows cached, all workers.
    pub total: u64,
    /// Per worker.
    pub per_worker: Vec<u64>,
    /// Per next hop, most flows first.
    pub per_hop: Vec<HopFlows>,
    /// Up to `top` flows.
    pub flows: Vec<FlowEntry>,
    /// Flows the caches hold at most, all workers (zero from a daemon that predates it).
    #[serde(default)]
    pub capacity: u64,
}

/// One port's counters, for `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortCounters {
    /// Port name.
    pub name: String,
    /// Worker serving it.
    pub worker: usize,
    /// Received packets.
    pub rx_packets: u64,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Sent packets.
    pub tx_packets: u64,
    /// Sent bytes.
    pub tx_bytes: u64,
    /// Transmissions the port refused (ring full).
    pub tx_refused: u64,
    /// Received packets per second over the last interval.
    pub rx_pps: f64,
    /// Sent packets per second over the last interval.
    pub tx_pps: f64,
}

/// One next hop's packets, for `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HopCounters {
    /// Hop id.
    pub hop: u32,
    /// Its address.
    pub addr: IpAddr,
    /// Packets sent to it, all workers, since its id was given to this address.
    pub packets: u64,
    /// Packets per second over the last interval.
    pub pps: f64,
}

/// One worker's counters, for `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerCounters {
    /// Worker index.
    pub worker: usize,
    /// CPU it is pinned to, if pinned.
    pub cpu: Option<usize>,
    /// Packets it processed.
    pub packets: u64,
    /// Packets forwarded.
    pub forwarded: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// Flow-cache hits.
    pub cache_hits: u64,
    /// Flow-cache misses.
    pub cache_misses: u64,
    /// Table generation it runs.
    pub generation: u64,
    /// Packets per second over the last interval.
    pub pps: f64,
    /// Passes over its ports since start (zero from a daemon that predates it).
    #[serde(default)]
    pub polls: u64,
    /// Polls that received at least one frame: `busy_polls / polls` is its busy ratio.
    #[serde(default)]
    pub busy_polls: u64,
    /// Time-stamp counter cycles spent in polls that moved frames (tx and kicks included):
    /// `busy_cycles / forwarded` is its cost per forwarded packet.
    #[serde(default)]
    pub busy_cycles: u64,
    /// Non-empty rx bursts, one per port that delivered frames in a poll (zero from a daemon
    /// that predates it).
    #[serde(default)]
    pub bursts: u64,
    /// Flows stored in its flow cache since start.
    #[serde(default)]
    pub flow_inserts: u64,
    /// Established flows evicted from its flow cache to make room for new ones.
    #[serde(default)]
    pub flow_evictions: u64,
    /// New flows that found no free cache slot (forwarded from the buckets anyway).
    #[serde(default)]
    pub flows_not_cached: u64,
    /// Cached flows whose hop had failed or left its group, picked again from the buckets.
    #[serde(default)]
    pub flow_repicks: u64,
    /// Flows in its flow cache now (expired ones not yet reclaimed included).
    #[serde(default)]
    pub flow_entries: u64,
    /// Where its packet buffers are, for a runtime with a UMEM (AF_XDP); none otherwise or from
    /// a daemon that predates it.
    #[serde(default)]
    pub umem: Option<UmemFrames>,
}

/// Where a worker's UMEM frames were at its last reading (published every millisecond between
/// polls): a frame not free is with the kernel or in the worker's batches, or it leaked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UmemFrames {
    /// Frames the UMEM has.
    pub frames: u64,
    /// Frames not on its free list.
    pub outstanding: u64,
    /// Frames lent to the kernel: in the ports' fill, rx, tx and completion rings.
    pub kernel_held: u64,
    /// Frames in the worker's tx batches.
    pub in_worker: u64,
}

impl UmemFrames {
    /// Frames neither free, with the kernel nor in the worker's hands: leaked (0 unless a bug).
    pub fn unaccounted(&self) -> u64 {
        self.outstanding
            .saturating_sub(self.kernel_held + self.in_worker)
    }
}

/// `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsReply {
    /// Seconds since the daemon started.
    pub uptime_s: f64,
    /// The time-stamp counter's rate (ticks per second) that `busy_cycles` count in, measured
    /// over the daemon's life; none from a daemon too young to tell or that predates it.
    #[serde(default)]
    pub tsc_hz: Option<f64>,
    /// Per port.
    pub ports: Vec<PortCounters>,
    /// Per worker.
    pub workers: Vec<WorkerCounters>,
    /// Drops by reason (name, count), all workers; reasons never seen are left out.
    pub drops: Vec<(String, u64)>,
    /// Per next hop of the running table, by hop id (empty from a daemon that predates it).
    #[serde(default)]
    pub hops: Vec<HopCounters>,
    /// Feed counters (lines, events, errors...), name -> value.
    pub feed: Vec<(String, u64)>,
    /// The big tables and how the kernel backs them (read back when asked); empty from a
    /// daemon that predates it.
    #[serde(default)]
    pub memory: Vec<TableBacking>,
    /// The `[[bgp.announce]]` prefixes' states (empty when none is configured, or from a daemon
    /// that predates them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announce: Vec<AnnounceLine>,
    /// The DPDK devices behind the ports, read when asked (empty for other backends, or from a
    /// daemon that predates them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceState>,
}

/// One DPDK device's link and counters, for `stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// The port's name.
    pub port: String,
    /// The device as configured (a PCI address or a vdev spec).
    pub device: String,
    /// Carrier up.
    pub link_up: bool,
    /// Link speed in Mb/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// Packets the device received.
    pub ipackets: u64,
    /// Packets the device sent.
    pub opackets: u64,
    /// Packets the device dropped because no rx descriptor was free (the workers fell behind).
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Receive mbuf allocation failures (the pool ran dry).
    pub rx_nombuf: u64,
    /// The driver's extended statistics, (name, value).
    pub xstats: Vec<(String, u64)>,
    /// Why the device could not be read, when it could not (the fields above are then zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One big table's memory, for `stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableBacking {
    /// Which table (`fib4 tbl24`, `flow cache buckets`, `umem`...).
    pub name: String,
    /// The worker owning it; none for the shared FIBs.
    pub worker: Option<usize>,
    /// Its size.
    pub bytes: u64,
    /// `hugetlb`, `thp` (transparent huge pages), `4k` or `unknown`.
    pub backing: String,
    /// Bytes on huge pages of either kind.
    pub huge_bytes: u64,
}

/// How `trace` found the hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "kebab-case")]
pub enum TraceVia {
    /// The flow is cached on a worker.
    Cache {
        /// That worker.
        worker: usize,
    },
    /// A new flow would take this bucket.
    Bucket {
        /// Bucket index.
        bucket: usize,
    },
}

/// `trace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceReply {
    /// The worker RSS would hand this flow to, when known.
    pub worker: Option<usize>,
    /// Group id of the route.
    pub group: u32,
    /// Hop id picked.
    pub hop: u32,
    /// Its address.
    pub addr: IpAddr,
    /// Cache or bucket.
    pub via: TraceVia,
}

/// One group's answer in `what-if-remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatIfGroup {
    /// Group id.
    pub group: u32,
    /// Its prefix (None for a config group).
    pub prefix: Option<Prefix>,
    /// Buckets that would change owner.
    pub buckets: usize,
}

/// `what-if-remove` / `what-if-add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatIfReply {
    /// Per group listing the hop.
    pub groups: Vec<WhatIfGroup>,
    /// Buckets moving, all groups.
    pub buckets: usize,
    /// Cached flows that would move to another hop, all workers (None when unknown).
    pub flows: Option<u64>,
}

/// One line of `peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLine {
    /// Peer address.
    pub peer: IpAddr,
    /// Peer AS.
    pub asn: Option<u32>,
    /// Session state (connected, up, down).
    pub state: String,
    /// Paths held.
    pub paths: usize,
    /// Of those, stale.
    pub stale: usize,
    /// Why it last went down.
    pub last_down_reason: Option<String>,
}

/// `convergence`: update received -> every worker on the new generation, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvergenceReply {
    /// Publications measured.
    pub samples: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Worst.
    pub max_us: f64,
    /// Histogram buckets (upper bound in microseconds, count), non-empty ones only.
    pub histogram: Vec<(f64, u64)>,
}

/// Where a route change came from, for `route-events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteEventSource {
    /// A batch of feed updates (or paths going stale).
    Feed,
    /// An operator command (`drain`, `route add`...).
    Operator,
}

/// One line of `route-events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteEvent {
    /// Seconds since the control thread started.
    pub uptime_s: f64,
    /// The table generation published with it (0: the change published nothing).
    pub generation: u64,
    /// Feed or operator.
    pub source: RouteEventSource,
    /// The prefix, when the change is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<Prefix>,
    /// What changed, for people (`4 next hops, 198.18.3.1 gone`, `withdrawn`, `drain 198.18.2.1`).
    pub what: String,
}

/// What a state-changing command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// A new table generation was published.
    pub published: bool,
    /// The generation now (after publishing, if it did).
    pub generation: u64,
}

/// How many items of one kind a reload added, removed and changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadCounts {
    /// In the new file only.
    pub added: usize,
    /// In the old file only.
    pub removed: usize,
    /// In both, with a difference.
    pub changed: usize,
}

impl ReloadCounts {
    /// Nothing added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added == 0 && self.removed == 0 && self.changed == 0
    }
}

/// What `reload` applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReply {
    /// `[[nexthop]]` entries, matched by name.
    pub nexthops: ReloadCounts,
    /// `[[group]]` entries, matched by name.
    pub groups: ReloadCounts,
    /// `[[route]]` entries, matched by prefix.
    pub routes: ReloadCounts,
    /// Other keys whose new values were applied (`bgp`, `feed.stale_time`, ...).
    pub settings: Vec<String>,
    /// A new table generation was published (false when no table changed).
    pub published: bool,
    /// The generation now (after publishing, if it did).
    pub generation: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_their_tag() {
        let cases = [
            (r#"{"cmd":"routes"}"#, Request::Routes {}),
            (r#"{"cmd":"groups"}"#, Request::Groups {}),
            (r#"{"cmd":"announcements"}"#, Request::Announcements {}),
            (
                r#"{"cmd":"route","prefix":"198.19.0.0/24"}"#,
                Request::Route {
                    prefix: "198.19.0.0/24".parse().unwrap(),
                },
            ),
            (r#"{"cmd":"flows"}"#, Request::Flows { top: 0 }),
            (
                r#"{"cmd":"drain","hop":"198.18.1.1"}"#,
                Request::Drain {
                    hop: "198.18.1.1".parse().unwrap(),
                },
            ),
            (
                r#"{"cmd":"trace","src":"198.18.0.1","dst":"198.19.0.1","proto":6,"sport":1000,"dport":80}"#,
                Request::Trace(TraceQuery {
                    src: "198.18.0.1".parse().unwrap(),
                    dst: "198.19.0.1".parse().unwrap(),
                    proto: 6,
                    sport: 1000,
                    dport: 80,
                }),
            ),
            (
                r#"{"cmd":"route-add","prefix":"2001:2:ffff::/48","via":["2001:2:0:1::1"]}"#,
                Request::RouteAdd {
                    prefix: "2001:2:ffff::/48".parse().unwrap(),
                    via: vec!["2001:2:0:1::1".parse().unwrap()],
                },
            ),
        ];
        for (line, want) in cases {
            let got: Request = serde_json::from_str(line).unwrap();
            assert_eq!(got, want, "{line}");
            let again: Request =
                serde_json::from_str(&serde_json::to_string(&got).unwrap()).unwrap();
            assert_eq!(again, want);
        }
    }

    #[test]
    fn unknown_commands_and_fields_are_refused() {
        for line in [
            r#"{"cmd":"reboot"}"#,
            r#"{"cmd":"routes","extra":1}"#,
            r#"{"cmd":"route"}"#,
            r#"{"cmd":"route","prefix":"10.0.0.1/33"}"#,
            r#"{"cmd":"drain","hop":"not-an-address"}"#,
            r#"{}"#,
        ] {
            assert!(serde_json::from_str::<Request>(line).is_err(), "{line}");
        }
    }

    #[test]
    fn drain_reasons_say_why_and_round_trip() {
        let cases = [
            (
                DrainReason::NotBest {
                    criterion: Criterion::LocalPref,
                    value: 1,
                    best: 100,
                },
                "not best: local-pref 1 < 100",
                r#"{"kind":"not-best","criterion":"local-pref","value":1,"best":100}"#,
            ),
            (
                DrainReason::NotBest {
                    criterion: Criterion::AsPathLength,
                    value: 3,
                    best: 1,
                },
                "not best: as-path length 3 > 1",
                r#"{"kind":"not-best","criterion":"as-path-length","value":3,"best":1}"#,
            ),
            (
                DrainReason::NotBest {
                    criterion: Criterion::Origin,
                    value: 2,
                    best: 0,
                },
                "not best: origin incomplete > igp",
                r#"{"kind":"not-best","criterion":"origin","value":2,"best":0}"#,
            ),
            (
                DrainReason::NotBest {
                    criterion: Criterion::Med,
                    value: 50,
                    best: 10,
                },
                "not best: med 50 > 10",
                r#"{"kind":"not-best","criterion":"med","value":50,"best":10}"#,
            ),
            (
                DrainReason::GracefulShutdown,
                "graceful shutdown (65535:0)",
                r#"{"kind":"graceful-shutdown"}"#,
            ),
            (
                DrainReason::Operator,
                "drained by operator",
                r#"{"kind":"operator"}"#,
            ),
        ];
        for (reason, text, json) in cases {
            assert_eq!(reason.to_string(), text);
            assert_eq!(serde_json::to_string(&reason).unwrap(), json);
            assert_eq!(serde_json::from_str::<DrainReason>(json).unwrap(), reason);
        }
    }

    #[test]
    fn a_member_without_a_reason_omits_the_field() {
        let active = MemberDetail {
            addr: "198.18.1.1".parse().unwrap(),
            hop: 1,
            state: HopStateName::Active,
            reason: None,
            buckets: 4,
        };
        let json = serde_json::to_string(&active).unwrap();
        assert!(!json.contains("reason"), "{json}");
        // Replies from a daemon that predates the field still parse.
        let old = r#"{"addr":"198.18.1.1","hop":1,"state":"active","buckets":4}"#;
        assert_eq!(serde_json::from_str::<MemberDetail>(old).unwrap(), active);
    }

    #[test]
    fn replies_carry_result_or_error() {
        let ok = serde_json::to_string(&Reply::ok(Changed {
            published: true,
            generation: 7,
        }))
        .unwrap();
        assert_eq!(
            ok,
            r#"{"ok":true,"result":{"generation":7,"published":true}}"#
        );
        let err = serde_json::to_string(&Reply::error("no such prefix")).unwrap();
        assert_eq!(err, r#"{"ok":false,"error":"no such prefix"}"#);
        let back: Reply = serde_json::from_str(&err).unwrap();
        assert!(!back.ok);
        assert_eq!(back.result, serde_json::Value::Null);
    }
}

/// Longest capture a client may ask for, and how long one runs when it names no bound.
pub const CAPTURE_MAX_SECONDS: u64 = 24 * 3600;
/// The snapshot length when the request names none (tcpdump's default).
pub const CAPTURE_DEFAULT_SNAPLEN: u32 = 262_144;

/// What `ecmpctl capture` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Only this port (by its config name); every port when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Frames as received.
    #[serde(default)]
    pub rx: bool,
    /// Frames as sent (after rewrite or encapsulation).
    #[serde(default)]
    pub tx: bool,
    /// Dropped frames, each with its drop reason.
    #[serde(default)]
    pub drops: bool,
    /// Stop after this many packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Stop after this many seconds (at most [`CAPTURE_MAX_SECONDS`], the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// Bytes kept of each frame.
    #[serde(default = "default_snaplen")]
    pub snaplen: u32,
    /// A tcpdump filter expression (compiled by the daemon's libpcap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

fn default_snaplen() -> u32 {
    CAPTURE_DEFAULT_SNAPLEN
}

/// The reply that starts a capture stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStarted {
    /// Every port's name, indexed by the `port` of [`CapturedPacket`].
    pub ports: Vec<String>,
    /// The snapshot length in force (the daemon may lower the requested one to its frame size).
    pub snaplen: u32,
}

/// Which way a captured frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureDir {
    /// Received.
    Rx,
    /// Sent.
    Tx,
    /// Dropped.
    Drop,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedPacket {
    /// Index into [`CaptureStarted::ports`]: the port it came in on (rx, drop) or left by (tx).
    pub port: u16,
    /// Which way.
    pub dir: CaptureDir,
    /// When its burst was handled, ns since the Unix epoch.
    pub ts_ns: u64,
    /// The frame's length (the captured bytes may be fewer).
    pub len: u32,
    /// The captured bytes, hex.
    pub data: String,
    /// Why it was dropped (drops only): the drop reason's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<String>,
}

/// How a capture ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureEnd {
    /// Packets streamed.
    pub captured: u64,
    /// Matching frames the workers could not keep (their capture ring was full).
    pub ring_dropped: u64,
    /// Why it stopped: `count`, `time` or `shutdown`.
    pub reason: String,
}

/// One line of a capture stream after its [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureLine {
    /// A frame.
    Packet(CapturedPacket),
    /// The last line.
    End(CaptureEnd),
}

/// Lower-case hex of `bytes` (captured frames travel as JSON strings).
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// The bytes of a hex string, or None when it is not one.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod capture_tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_decode(&hex_encode(&all)), Some(all));
        assert_eq!(hex_encode(&[0x0a, 0xff]), "0aff");
        assert_eq!(hex_decode("0AfF"), Some(vec![0x0a, 0xff]));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
    }

    #[test]
    fn a_capture_request_defaults_what_it_does_not_name() {
        let r: Request = serde_json::from_str(r#"{"cmd":"capture","rx":true}"#).unwrap();
        assert_eq!(
            r,
            Request::Capture(CaptureRequest {
                port: None,
                rx: true,
                tx: false,
                drops: false,
                count: None,
                seconds: None,
                snaplen: CAPTURE_DEFAULT_SNAPLEN,
                filter: None,
            })
        );
        let line = CaptureLine::Packet(CapturedPacket {
            port: 1,
            dir: CaptureDir::Drop,
            ts_ns: 5,
            len: 60,
            data: "00".to_owned(),
            drop: Some("ttl-expired".to_owned()),
        });
        let text = serde_json::to_string(&line).unwrap();
        assert_eq!(serde_json::from_str::<CaptureLine>(&text).unwrap(), line);
    }
}
