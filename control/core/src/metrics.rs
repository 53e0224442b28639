//! The Prometheus exposition: what the control thread knows of the daemon, as of one moment
//! ([`MetricsSnapshot`]), rendered to the text format by [`render`]. Served over HTTP by
//! [`crate::metrics_server`].
//!
//! The classic text format (0.0.4), written by the `prometheus` crate's encoder, rather than
//! OpenMetrics: the Prometheus server reads both, but `promtool check metrics` of the Debian
//! release (2.42) reads only the classic one (an OpenMetrics counter family is named without
//! `_total` and its samples with it, which that promtool takes for two families).
//!
//! Names follow the Prometheus conventions: `ecmpfwd_` first, base units in the name (`_bytes`,
//! `_seconds`), `_total` on counters only. [`METRICS`] lists every family, with its type, labels
//! and meaning; the README's metric list is that table, and a test keeps the two in step.

use ecmp_proto::ctl::{NexthopSummary, PeerLine};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

pub use crate::control::{CONVERGENCE_BOUNDS, MetricsSnapshot, SecondsHistogram};

/// Why the exposition could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The encoder refused a family (a bug: families are built here).
    #[error("encoding the metrics: {0}")]
    Encode(String),
    /// The listening socket could not be set up.
    #[error("metrics listener on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// One exported family: name, type, labels and meaning (the README's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDoc {
    /// Full name, as scraped (a histogram's samples add `_bucket`, `_sum`, `_count`).
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Label names.
    pub labels: &'static [&'static str],
    /// What it counts.
    pub help: &'static str,
}

const fn doc(
    name: &'static str,
    kind: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDoc {
    MetricDoc {
        name,
        kind,
        labels,
        help,
    }
}

const PW: &[&str] = &["port", "worker"];
const W: &[&str] = &["worker"];
const HOP: &[&str] = &["hop", "addr", "port"];
const PEER: &[&str] = &["peer"];
const NONE: &[&str] = &[];
const ANNOUNCE: &[&str] = &["prefix", "state"];
const PREFIX: &[&str] = &["prefix"];

/// Every family [`render`] can produce, in the order it produces them. A family with no
/// series (no ports without a data plane, no drops yet, no peers) is left out of a scrape.
pub const METRICS: &[MetricDoc] = &[
    doc(
        "ecmpfwd_uptime_seconds",
        "gauge",
        NONE,
        "Seconds since the daemon started.",
    ),
    doc(
        "ecmpfwd_port_rx_packets_total",
        "counter",
        PW,
        "Frames received on a port's queue served by a worker.",
    ),
    doc(
        "ecmpfwd_port_rx_bytes_total",
        "counter",
        PW,
        "Bytes received on a port's queue served by a worker.",
    ),
    doc(
        "ecmpfwd_port_tx_packets_total",
        "counter",
        PW,
        "Frames sent on a port's queue served by a worker.",
    ),
    doc(
        "ecmpfwd_port_tx_bytes_total",
        "counter",
        PW,
        "Bytes sent on a port's queue served by a worker.",
    ),
    doc(
        "ecmpfwd_port_tx_refused_total",
        "counter",
        PW,
        "Transmissions the port's queue refused (ring full).",
    ),
    doc(
        "ecmpfwd_worker_rx_packets_total",
        "counter",
        W,
        "Packets a worker received, all its ports.",
    ),
    doc(
        "ecmpfwd_worker_forwarded_packets_total",
        "counter",
        W,
        "Packets a worker forwarded.",
    ),
    doc(
        "ecmpfwd_worker_dropped_packets_total",
        "counter",
        W,
        "Packets a worker dropped, all reasons.",
    ),
    doc(
        "ecmpfwd_worker_polls_total",
        "counter",
        W,
        "Passes a worker made over its ports, empty or not.",
    ),
    doc(
        "ecmpfwd_worker_busy_polls_total",
        "counter",
        W,
        "Polls that received at least one frame (busy ratio: rate of this / rate of polls).",
    ),
    doc(
        "ecmpfwd_worker_bursts_total",
        "counter",
        W,
        "Non-empty rx bursts (one per port that delivered frames in a poll).",
    ),
    doc(
        "ecmpfwd_worker_busy_seconds_total",
        "counter",
        W,
        "Time in polls that moved frames, tx and kicks included (TSC): rate() is the worker's busy share of its core.",
    ),
    doc(
        "ecmpfwd_worker_table_generation",
        "gauge",
        W,
        "Table generation the workers run (the oldest any worker runs).",
    ),
    doc(
        "ecmpfwd_flow_cache_hits_total",
        "counter",
        W,
        "Packets whose flow was cached with a usable hop.",
    ),
    doc(
        "ecmpfwd_flow_cache_misses_total",
        "counter",
        W,
        "Packets whose flow was not cached (picked from the buckets).",
    ),
    doc(
        "ecmpfwd_flow_cache_inserts_total",
        "counter",
        W,
        "Flows stored in the flow cache.",
    ),
    doc(
        "ecmpfwd_flow_cache_evictions_total",
        "counter",
        W,
        "Established flows evicted to make room for new ones.",
    ),
    doc(
        "ecmpfwd_flow_cache_not_cached_total",
        "counter",
        W,
        "New flows that found no free cache slot (forwarded from the buckets anyway).",
    ),
    doc(
        "ecmpfwd_flow_cache_repicks_total",
        "counter",
        W,
        "Cached flows whose hop failed or left its group, picked again from the buckets.",
    ),
    doc(
        "ecmpfwd_flow_cache_entries",
        "gauge",
        W,
        "Flows in the flow cache now (expired ones not yet reclaimed included).",
    ),
    doc(
        "ecmpfwd_umem_frames",
        "gauge",
        &["worker", "where"],
        "A worker's AF_XDP buffers by where they are: free, kernel (its rings), worker (its batches), unaccounted (leaked; 0 unless a bug).",
    ),
    doc(
        "ecmpfwd_drops_total",
        "counter",
        &["reason"],
        "Packets dropped, by reason, all workers (a reason appears once it happened).",
    ),
    doc(
        "ecmpfwd_table_memory_bytes",
        "gauge",
        &["table", "worker", "backing"],
        "Size of a big table (worker empty for the shared FIBs).",
    ),
    doc(
        "ecmpfwd_table_memory_huge_bytes",
        "gauge",
        &["table", "worker", "backing"],
        "Bytes of a big table on huge pages.",
    ),
    doc(
        "ecmpfwd_nexthop_resolved",
        "gauge",
        HOP,
        "1 when the next hop's MAC is known, else 0.",
    ),
    doc(
        "ecmpfwd_nexthop_drained",
        "gauge",
        HOP,
        "1 when an operator drained the next hop, else 0.",
    ),
    doc(
        "ecmpfwd_nexthop_groups",
        "gauge",
        HOP,
        "Groups listing the next hop.",
    ),
    doc(
        "ecmpfwd_nexthop_packets_total",
        "counter",
        HOP,
        "Packets sent to the next hop, all workers (restarts from 0 when its hop id is given to another address).",
    ),
    doc(
        "ecmpfwd_group_bucket_moves_total",
        "counter",
        &["group", "prefix"],
        "Buckets that changed owner since the group was created (only groups that moved any; prefix empty for a config group).",
    ),
    doc(
        "ecmpfwd_feed_peer_up",
        "gauge",
        &["peer", "state"],
        "1 for a feed peer's current session state (connected, up, down), 0 for the others.",
    ),
    doc(
        "ecmpfwd_feed_peer_paths",
        "gauge",
        PEER,
        "Paths held from a feed peer.",
    ),
    doc(
        "ecmpfwd_feed_peer_stale_paths",
        "gauge",
        PEER,
        "Of those, stale (kept across a session restart until refreshed).",
    ),
    doc(
        "ecmpfwd_feed_connections_total",
        "counter",
        NONE,
        "Feed connections accepted.",
    ),
    doc(
        "ecmpfwd_feed_rejected_peers_total",
        "counter",
        NONE,
        "Feed connections closed because the peer's uid or gid is not allowed.",
    ),
    doc(
        "ecmpfwd_feed_lines_total",
        "counter",
        NONE,
        "Feed lines (updates) handed to the decoder.",
    ),
    doc(
        "ecmpfwd_feed_not_json_lines_total",
        "counter",
        NONE,
        "Feed lines that are not JSON; skipped.",
    ),
    doc(
        "ecmpfwd_feed_command_errors_total",
        "counter",
        NONE,
        "Of those, the companion's `error` acknowledgements: a command ecmpfwd wrote was refused.",
    ),
    doc(
        "ecmpfwd_feed_ignored_lines_total",
        "counter",
        NONE,
        "JSON feed lines with nothing for the control plane.",
    ),
    doc(
        "ecmpfwd_feed_decode_errors_total",
        "counter",
        NONE,
        "Feed lines of a known type that failed to decode; skipped.",
    ),
    doc(
        "ecmpfwd_feed_oversized_lines_total",
        "counter",
        NONE,
        "Feed lines longer than the limit; discarded.",
    ),
    doc(
        "ecmpfwd_feed_dropped_writes_total",
        "counter",
        NONE,
        "Lines to a feed client dropped (its outbox was full or its socket failed).",
    ),
    doc(
        "ecmpfwd_table_publishes_total",
        "counter",
        NONE,
        "Table snapshots published.",
    ),
    doc(
        "ecmpfwd_table_build_errors_total",
        "counter",
        NONE,
        "Prefixes or hops the table builder refused.",
    ),
    doc(
        "ecmpfwd_rib_paths",
        "gauge",
        NONE,
        "Paths in the RIB after the latest batch.",
    ),
    doc(
        "ecmpfwd_rib_prefixes",
        "gauge",
        NONE,
        "Prefixes in the RIB after the latest batch.",
    ),
    doc(
        "ecmpfwd_routes",
        "gauge",
        NONE,
        "Routes held, BGP and static.",
    ),
    doc(
        "ecmpfwd_table_generation",
        "gauge",
        NONE,
        "Generation of the latest published tables.",
    ),
    doc(
        "ecmpfwd_table_applied_generation",
        "gauge",
        NONE,
        "Oldest table generation any worker still runs.",
    ),
    doc(
        "ecmpfwd_convergence_seconds",
        "histogram",
        NONE,
        "Route update read from the feed -> every worker on the tables it produced.",
    ),
    doc(
        "ecmpfwd_announce_state",
        "gauge",
        ANNOUNCE,
        "1 for an [[bgp.announce]] prefix's current state: announced, or withdrawn because of \
         no-active-hop, workers-stalled or shutting-down; 0 for the others.",
    ),
    doc(
        "ecmpfwd_announce_state_seconds",
        "gauge",
        PREFIX,
        "Seconds since an [[bgp.announce]] prefix was last announced or withdrawn.",
    ),
];

/// Every state of an announced prefix, each a series of `ecmpfwd_announce_state`.
const ANNOUNCE_STATES: [&str; 4] = [
    "announced",
    "no-active-hop",
    "workers-stalled",
    "shutting-down",
];

fn labels(pairs: &[(&str, String)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut l = LabelPair::default();
            l.set_name((*name).to_owned());
            l.set_value(value.clone());
            l
        })
        .collect()
}

fn counter(pairs: &[(&str, String)], v: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v as f64);
    let mut m = Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

fn counter_seconds(pairs: &[(&str, String)], v: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v);
    let mut m = Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

fn gauge(pairs: &[(&str, String)], v: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::from_label(labels(pairs));
    m.set_gauge(g);
    m
}

/// The families being built, each checked against [`METRICS`] as it is added.
struct Families {
    out: Vec<MetricFamily>,
    next: usize,
}

impl Families {
    /// Adds the next family of [`METRICS`]; `name` must be it (the order is the table's).
    fn add(&mut self, name: &str, metrics: Vec<Metric>) -> Result<(), MetricsError> {
        let Some(d) = METRICS.get(self.next).filter(|d| d.name == name) else {
            return Err(MetricsError::Encode(format!(
                "{name} is not the next family of METRICS"
            )));
        };
        self.next += 1;
        if metrics.is_empty() {
            return Ok(());
        }
        let mut f = MetricFamily::default();
        f.set_name(d.name.to_owned());
        f.set_help(d.help.to_owned());
        f.set_field_type(match d.kind {
            "counter" => MetricType::COUNTER,
            "gauge" => MetricType::GAUGE,
            _ => MetricType::HISTOGRAM,
        });
        f.set_metric(metrics);
        self.out.push(f);
        Ok(())
    }
}

/// The exposition of `s` in the classic text format.
pub fn render(s: &MetricsSnapshot) -> Result<String, MetricsError> {
    let mut f = Families {
        out: Vec::new(),
        next: 0,
    };
    let st = &s.stats;
    f.add("ecmpfwd_uptime_seconds", vec![gauge(&[], st.uptime_s)])?;

    let port = |p: &ecmp_proto::ctl::PortCounters| {
        [("port", p.name.clone()), ("worker", p.worker.to_string())]
    };
    let per_port = |v: fn(&ecmp_proto::ctl::PortCounters) -> u64| -> Vec<Metric> {
        st.ports.iter().map(|p| counter(&port(p), v(p))).collect()
    };
    f.add("ecmpfwd_port_rx_packets_total", per_port(|p| p.rx_packets))?;
    f.add("ecmpfwd_port_rx_bytes_total", per_port(|p| p.rx_bytes))?;
    f.add("ecmpfwd_port_tx_packets_total", per_port(|p| p.tx_packets))?;
    f.add("ecmpfwd_port_tx_bytes_total", per_port(|p| p.tx_bytes))?;
    f.add("ecmpfwd_port_tx_refused_total", per_port(|p| p.tx_refused))?;

    let per_worker = |v: fn(&ecmp_proto::ctl::WorkerCounters) -> u64| -> Vec<Metric> {
        st.workers
            .iter()
            .map(|w| counter(&[("worker", w.worker.to_string())], v(w)))
            .collect()
    };
    f.add("ecmpfwd_worker_rx_packets_total", per_worker(|w| w.packets))?;
    f.add(
        "ecmpfwd_worker_forwarded_packets_total",
        per_worker(|w| w.forwarded),
    )?;
    f.add(
        "ecmpfwd_worker_dropped_packets_total",
        per_worker(|w| w.dropped),
    )?;
    f.add("ecmpfwd_worker_polls_total", per_worker(|w| w.polls))?;
    f.add(
        "ecmpfwd_worker_busy_polls_total",
        per_worker(|w| w.busy_polls),
    )?;
    f.add("ecmpfwd_worker_bursts_total", per_worker(|w| w.bursts))?;
    // In seconds, the base unit: the cycles over the TSC rate the daemon measured.
    let busy = st
        .tsc_hz
        .filter(|hz| *hz > 0.0)
        .map_or_else(Vec::new, |hz| {
            st.workers
                .iter()
                .map(|w| {
                    counter_seconds(
                        &[("worker", w.worker.to_string())],
                        w.busy_cycles as f64 / hz,
                    )
                })
                .collect()
        });
    f.add("ecmpfwd_worker_busy_seconds_total", busy)?;
    let worker_gauge = |v: fn(&ecmp_proto::ctl::WorkerCounters) -> u64| -> Vec<Metric> {
        st.workers
            .iter()
            .map(|w| gauge(&[("worker", w.worker.to_string())], v(w) as f64))
            .collect()
    };
    f.add(
        "ecmpfwd_worker_table_generation",
        worker_gauge(|w| w.generation),
    )?;
    f.add(
        "ecmpfwd_flow_cache_hits_total",
        per_worker(|w| w.cache_hits),
    )?;
    f.add(
        "ecmpfwd_flow_cache_misses_total",
        per_worker(|w| w.cache_misses),
    )?;
    f.add(
        "ecmpfwd_flow_cache_inserts_total",
        per_worker(|w| w.flow_inserts),
    )?;
    f.add(
        "ecmpfwd_flow_cache_evictions_total",
        per_worker(|w| w.flow_evictions),
    )?;
    f.add(
        "ecmpfwd_flow_cache_not_cached_total",
        per_worker(|w| w.flows_not_cached),
    )?;
    f.add(
        "ecmpfwd_flow_cache_repicks_total",
        per_worker(|w| w.flow_repicks),
    )?;
    f.add(
        "ecmpfwd_flow_cache_entries",
        worker_gauge(|w| w.flow_entries),
    )?;
    f.add(
        "ecmpfwd_umem_frames",
        st.workers
            .iter()
            .filter_map(|w| w.umem.map(|u| (w.worker, u)))
            .flat_map(|(w, u)| {
                [
                    ("free", u.frames.saturating_sub(u.outstanding)),
                    ("kernel", u.kernel_held),
                    ("worker", u.in_worker),
                    ("unaccounted", u.unaccounted()),
                ]
                .map(|(at, n)| {
                    gauge(
                        &[("worker", w.to_string()), ("where", at.to_owned())],
                        n as f64,
                    )
                })
            })
            .collect(),
    )?;
    f.add(
        "ecmpfwd_drops_total",
        st.drops
            .iter()
            .map(|(reason, n)| counter(&[("reason", reason.clone())], *n))
            .collect(),
    )?;

    let table = |t: &ecmp_proto::ctl::TableBacking| {
        [
            ("table", t.name.clone()),
            (
                "worker",
                t.worker.map(|w| w.to_string()).unwrap_or_default(),
            ),
            ("backing", t.backing.clone()),
        ]
    };
    f.add(
        "ecmpfwd_table_memory_bytes",
        st.memory
            .iter()
            .map(|t| gauge(&table(t), t.bytes as f64))
            .collect(),
    )?;
    f.add(
        "ecmpfwd_table_memory_huge_bytes",
        st.memory
            .iter()
            .map(|t| gauge(&table(t), t.huge_bytes as f64))
            .collect(),
    )?;

    let hop = |h: &NexthopSummary| {
        [
            ("hop", h.hop.to_string()),
            ("addr", h.addr.to_string()),
            ("port", h.port.clone()),
        ]
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    f.add(
        "ecmpfwd_nexthop_resolved",
        s.nexthops
            .iter()
            .map(|h| gauge(&hop(h), flag(h.resolved)))
            .collect(),
    )?;
    f.add(
        "ecmpfwd_nexthop_drained",
        s.nexthops
            .iter()
            .map(|h| gauge(&hop(h), flag(h.drained)))
            .collect(),
    )?;
    f.add(
        "ecmpfwd_nexthop_groups",
        s.nexthops
            .iter()
            .map(|h| gauge(&hop(h), f64::from(h.groups)))
            .collect(),
    )?;
    // Joined on id and address: a hop id reused between the two reads is left out once.
    f.add(
        "ecmpfwd_nexthop_packets_total",
        s.nexthops
            .iter()
            .filter_map(|h| {
                st.hops
                    .iter()
                    .find(|c| c.hop == h.hop && c.addr == h.addr)
                    .map(|c| counter(&hop(h), c.packets))
            })
            .collect(),
    )?;

    f.add(
        "ecmpfwd_group_bucket_moves_total",
        s.bucket_moves
            .iter()
            .map(|g| {
                let prefix = g.prefix.map(|p| p.to_string()).unwrap_or_default();
                counter(
                    &[("group", g.group.to_string()), ("prefix", prefix)],
                    g.moves,
                )
            })
            .collect(),
    )?;

    // Every state gets a series, so a peer going down is a 1 -> 0 change, not a vanishing one.
    f.add(
        "ecmpfwd_feed_peer_up",
        s.peers
            .iter()
            .flat_map(|p| {
                ["connected", "up", "down"].map(|state| {
                    gauge(
                        &[("peer", p.peer.to_string()), ("state", state.to_owned())],
                        flag(p.state == state),
                    )
                })
            })
            .collect(),
    )?;
    let peer = |p: &PeerLine| [("peer", p.peer.to_string())];
    f.add(
        "ecmpfwd_feed_peer_paths",
        s.peers
            .iter()
            .map(|p| gauge(&peer(p), p.paths as f64))
            .collect(),
    )?;
    f.add(
        "ecmpfwd_feed_peer_stale_paths",
        s.peers
            .iter()
            .map(|p| gauge(&peer(p), p.stale as f64))
            .collect(),
    )?;

    let fd = &s.feed;
    for (name, v) in [
        ("ecmpfwd_feed_connections_total", fd.connections),
        ("ecmpfwd_feed_rejected_peers_total", fd.rejected_peers),
        ("ecmpfwd_feed_lines_total", fd.lines),
        ("ecmpfwd_feed_not_json_lines_total", fd.not_json),
        ("ecmpfwd_feed_command_errors_total", fd.command_errors),
        ("ecmpfwd_feed_ignored_lines_total", fd.ignored),
        ("ecmpfwd_feed_decode_errors_total", fd.decode_errors),
        ("ecmpfwd_feed_oversized_lines_total", fd.oversized),
        ("ecmpfwd_feed_dropped_writes_total", fd.dropped_writes),
        ("ecmpfwd_table_publishes_total", fd.publishes),
        ("ecmpfwd_table_build_errors_total", fd.build_errors),
    ] {
        f.add(name, vec![counter(&[], v)])?;
    }
    f.add("ecmpfwd_rib_paths", vec![gauge(&[], fd.paths as f64)])?;
    f.add("ecmpfwd_rib_prefixes", vec![gauge(&[], fd.prefixes as f64)])?;
    f.add("ecmpfwd_routes", vec![gauge(&[], s.routes as f64)])?;
    f.add(
        "ecmpfwd_table_generation",
        vec![gauge(&[], s.generation as f64)],
    )?;
    f.add(
        "ecmpfwd_table_applied_generation",
        s.applied_generation
            .map(|g| gauge(&[], g as f64))
            .into_iter()
            .collect(),
    )?;

    let c = &s.convergence;
    let mut h = Histogram::default();
    h.set_sample_sum(c.sum);
    h.set_sample_count(c.count);
    h.set_bucket(
        c.buckets
            .iter()
            .map(|&(bound, n)| {
                let mut b = Bucket::default();
                b.set_upper_bound(bound);
                b.set_cumulative_count(n);
                b
            })
            .collect(),
    );
    let mut m = Metric::default();
    m.set_histogram(h);
    f.add("ecmpfwd_convergence_seconds", vec![m])?;

    // Every state gets a series, as for peers: a withdrawal is a 1 -> 0 change of `announced`.
    f.add(
        "ecmpfwd_announce_state",
        s.announce
            .iter()
            .flat_map(|a| {
                let now = a.reason.map_or("announced", |r| r.kind());
                ANNOUNCE_STATES.map(|state| {
                    gauge(
                        &[
                            ("prefix", a.prefix.to_string()),
                            ("state", state.to_owned()),
                        ],
                        flag(state == now),
                    )
                })
            })
            .collect(),
    )?;
    f.add(
        "ecmpfwd_announce_state_seconds",
        s.announce
            .iter()
            .map(|a| gauge(&[("prefix", a.prefix.to_string())], a.since_s))
            .collect(),
    )?;

    if f.next != METRICS.len() {
        return Err(MetricsError::Encode(format!(
            "{} families of METRICS were not rendered",
            METRICS.len() - f.next
        )));
    }
    let mut out = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&f.out, &mut out)
        .map_err(|e| MetricsError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests;
