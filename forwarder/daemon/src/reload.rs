//! Reloading the config without a restart (`ecmpctl reload`, SIGHUP): the daemon's side.
//!
//! The daemon reads and validates the file exactly as `ecmpfwd check` does, then compares it
//! with the running config:
//! - keys only a restart can change (ports, workers, the flow cache's size, the FIB's tbl8
//!   count, memory, the instance's name, seed and RSS key, static neighbours, the control and
//!   feed sockets) refuse the whole reload, naming every such key ([`restart_keys`]);
//! - next hops, groups and routes become a [`ConfigTables`] (names and indices, not ids) and the
//!   BGP policies and the feed's timing a [`DesiredConfig`], which the control thread applies as
//!   one table update ([`ecmp_control::builder::Builder::reload`]);
//! - the flow cache's timeouts go to the workers once the control thread applied the rest
//!   ([`FileSource`]'s hook; the AF_XDP runtime posts them to every worker's mailbox): each
//!   worker switches between two polls, and a flow already cached keeps the expiry its last
//!   packet gave it until its next packet, which counts from the new timeout
//!   ([`ecmp_dataplane::flowcache::FlowCache::set_timeouts`]). The cache's capacity sizes memory
//!   allocated at start and stays a restart key.
//!
//! Nothing is applied from a file that fails validation or needs a restart; the running config
//! this module compares against becomes the new file only once the control thread applied it.

use std::path::PathBuf;

use ecmp_control::builder::{
    ConfigGroup, ConfigHop, ConfigMember, ConfigTables, GroupPolicy, PrefixPolicy,
};
use ecmp_control::control::{ConfigSource, DesiredConfig};
use ecmp_control::rib::RibConfig;
use ecmp_dataplane::flowcache::FlowTimeouts;
use ecmp_proto::Prefix;
use ecmp_proto::ctl::ReloadReply;
use ecmp_tables::nexthop::NextHop;

use crate::config::{self, Config, ControlSpec, FeedSpec, PortSpec};
use crate::setup;

/// The BGP policies of a config in the control plane's terms: `[[bgp.policy]]` and `[bgp]`.
pub type Policies = (Vec<PrefixPolicy>, GroupPolicy);

/// How a runtime turns a config's `[bgp]` into [`Policies`] (the same conversion its start-up
/// uses); the text is the error shown to the operator.
pub type PolicyFn = fn(&Config) -> Result<Policies, String>;

/// Every key whose change from `old` to `new` needs a restart, in file order.
pub fn restart_keys(old: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut key = |changed: bool, name: String| {
        if changed {
            keys.push(name);
        }
    };
    let (oi, ni) = (&old.instance, &new.instance);
    key(oi.name != ni.name, "instance.name".into());
    key(oi.seed != ni.seed, "instance.seed".into());
    key(oi.rss_key != ni.rss_key, "instance.rss_key".into());
    key(old.ports.len() != new.ports.len(), "port".into());
    for (i, (o, n)) in old.ports.iter().zip(&new.ports).enumerate() {
        for k in port_keys(o, n) {
            key(true, format!("port[{i}].{k}"));
        }
    }
    key(old.workers.len() != new.workers.len(), "worker".into());
    for (i, (o, n)) in old.workers.iter().zip(&new.workers).enumerate() {
        key(o.core != n.core, format!("worker[{i}].core"));
        key(o.ports != n.ports, format!("worker[{i}].ports"));
    }
    key(
        old.flow_cache.capacity != new.flow_cache.capacity,
        "flow_cache.capacity".into(),
    );
    key(old.fib != new.fib, "fib.max_tbl8".into());
    key(old.memory != new.memory, "memory.hugepages".into());
    let neighbors = |c: &Config| -> Vec<_> {
        c.neighbors
            .iter()
            .map(|n| (n.address, n.mac, n.port))
            .collect()
    };
    key(neighbors(old) != neighbors(new), "neighbor".into());
    match (&old.control, &new.control) {
        (Some(o), Some(n)) => {
            for k in control_keys(o, n) {
                key(true, format!("control.{k}"));
            }
        }
        (None, None) => {}
        _ => key(true, "control".into()),
    }
    // The control thread takes its announcements when it starts.
    let announce = |c: &Config| {
        let a = &c.announce;
        let entries: Vec<_> = a
            .entries
            .iter()
            .map(|e| {
                (
                    e.prefix,
                    e.next_hop,
                    e.med,
                    e.communities.clone(),
                    e.neighbors.clone(),
                )
            })
            .collect();
        (entries, a.stall_time, a.grace)
    };
    key(announce(old) != announce(new), "bgp.announce".into());
    match (&old.feed, &new.feed) {
        (Some(o), Some(n)) => {
            for k in feed_keys(o, n) {
                key(true, format!("feed.{k}"));
            }
        }
        (None, None) => {}
        _ => key(true, "feed".into()),
    }
    keys
}

fn port_keys(o: &PortSpec, n: &PortSpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    if o.name != n.name {
        out.push("name");
    }
    match (&o.kind, &n.kind) {
        (
            config::PortKind::AfXdp {
                interface: oi,
                queues: oq,
                mode: om,
                zero_copy: oz,
            },
            config::PortKind::AfXdp {
                interface: ni,
                queues: nq,
                mode: nm,
                zero_copy: nz,
            },
        ) => {
            for (changed, k) in [
                (oi != ni, "interface"),
                (oq != nq, "queues"),
                (om != nm, "mode"),
                (oz != nz, "zero_copy"),
            ] {
                if changed {
                    out.push(k);
                }
            }
        }
        (
            config::PortKind::Pcap {
                input: oi,
                output: oo,
            },
            config::PortKind::Pcap {
                input: ni,
                output: no,
            },
        ) => {
            if oi != ni {
                out.push("input");
            }
            if oo != no {
                out.push("output");
            }
        }
        (
            config::PortKind::Dpdk {
                device: od,
                queues: oq,
            },
            config::PortKind::Dpdk {
                device: nd,
                queues: nq,
            },
        ) => {
            if od != nd {
                out.push("device");
            }
            if oq != nq {
                out.push("queues");
            }
        }
        (config::PortKind::Memory, config::PortKind::Memory) => {}
        _ => out.push("kind"),
    }
    if o.mac != n.mac {
        out.push("mac");
    }
    if o.addresses != n.addresses {
        out.push("addresses");
    }
    if o.mtu != n.mtu {
        out.push("mtu");
    }
    out
}

fn control_keys(o: &ControlSpec, n: &ControlSpec) -> Vec<&'static str> {
    [
        (o.socket != n.socket, "socket"),
        (o.mode != n.mode, "mode"),
        (o.group != n.group, "group"),
        (o.allowed_uids != n.allowed_uids, "allowed_uids"),
        (o.allowed_gids != n.allowed_gids, "allowed_gids"),
        (o.max_clients != n.max_clients, "max_clients"),
    ]
    .into_iter()
    .filter_map(|(changed, k)| changed.then_some(k))
    .collect()
}

/// The feed's socket keys (its timing keys are applied, see [`applied_keys`]).
fn feed_keys(o: &FeedSpec, n: &FeedSpec) -> Vec<&'static str> {
    [
        (o.socket != n.socket, "socket"),
        (o.mode != n.mode, "mode"),
        (o.group != n.group, "group"),
        (o.allowed_uids != n.allowed_uids, "allowed_uids"),
        (o.allowed_gids != n.allowed_gids, "allowed_gids"),
        (o.max_line != n.max_line, "max_line"),
    ]
    .into_iter()
    .filter_map(|(changed, k)| changed.then_some(k))
    .collect()
}

/// Keys besides next hops, groups and routes whose change a reload applies, in file order.
pub fn applied_keys(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if old.hash != new.hash {
        out.push("hash".to_owned());
    }
    let (of, nf) = (&old.flow_cache, &new.flow_cache);
    for (changed, name) in [
        (
            of.idle_timeout != nf.idle_timeout,
            "flow_cache.idle_timeout",
        ),
        (
            of.embryonic_timeout != nf.embryonic_timeout,
            "flow_cache.embryonic_timeout",
        ),
        (of.fin_timeout != nf.fin_timeout, "flow_cache.fin_timeout"),
    ] {
        if changed {
            out.push(name.to_owned());
        }
    }
    if old.feed.is_some() && new.feed.is_some() {
        let (o, n) = (rib_config(old), rib_config(new));
        if o.stale_time != n.stale_time {
            out.push("feed.stale_time".to_owned());
        }
        if o.refresh_timeout != n.refresh_timeout {
            out.push("feed.refresh_timeout".to_owned());
        }
        if batch_window(old) != batch_window(new) {
            out.push("feed.batch_window".to_owned());
        }
    }
    if old.bgp != new.bgp {
        out.push("bgp".to_owned());
    }
    out
}

/// The RIB's timing as the config sets it (the defaults without `[feed]`).
pub fn rib_config(cfg: &Config) -> RibConfig {
    match &cfg.feed {
        Some(f) => RibConfig {
            stale_time: f.stale_time,
            refresh_timeout: f.refresh_timeout,
        },
        None => RibConfig::default(),
    }
}

fn batch_window(cfg: &Config) -> std::time::Duration {
    cfg.feed
        .as_ref()
        .map_or(config::DEFAULT_BATCH_WINDOW, |f| f.batch_window)
}

fn prefix(p: config::Prefix) -> Result<Prefix, String> {
    Prefix::new(p.addr, p.len).map_err(|e| format!("{p}: {e}"))
}

/// The configured next hops, groups and routes of `cfg` by name and index, plus `policies`.
pub fn config_tables(cfg: &Config, policies: Policies) -> Result<ConfigTables, String> {
    let hops = cfg
        .nexthops
        .iter()
        .map(|h| ConfigHop {
            name: h.name.clone(),
            hop: NextHop {
                id: 0,
                addr: h.address,
                port: h.port as u16,
                // As at start: no configured MAC is all zeroes, resolved at run time.
                mac: h.mac.map_or([0; 6], |m| m.0),
                weight: h.weight,
                action: h.action.into(),
            },
            state: h.state.into(),
        })
        .collect();
    let groups = cfg
        .groups
        .iter()
        .map(|g| ConfigGroup {
            name: g.name.clone(),
            mode: setup::mode_of(g),
            buckets: g.buckets,
            hash: g.hash.into(),
            members: g
                .members
                .iter()
                .map(|m| ConfigMember {
                    hop: m.nexthop,
                    weight: m.weight,
                })
                .collect(),
        })
        .collect();
    let routes = cfg
        .routes
        .iter()
        .map(|r| Ok((prefix(r.prefix)?, r.group)))
        .collect::<Result<_, String>>()?;
    let (policies, default_policy) = policies;
    Ok(ConfigTables {
        hops,
        groups,
        routes,
        policies,
        default_policy,
    })
}

/// What the control thread is to apply to move from `old` to `new`, or why it cannot: `new`
/// fails the checks `ecmpfwd check` makes, or changes keys that need a restart.
pub fn desired(old: &Config, new: &Config, policies: PolicyFn) -> Result<DesiredConfig, String> {
    setup::build(new).map_err(|e| e.to_string())?;
    setup::check_workers(new).map_err(|e| e.to_string())?;
    // What the workers' caches would refuse is refused here, before anything is applied.
    flow_timeouts(new)
        .check()
        .map_err(|e| format!("{}: {e}", new.origin))?;
    let restart = restart_keys(old, new);
    if !restart.is_empty() {
        return Err(format!(
            "{}: not applied, a restart is needed to change {}",
            new.origin,
            restart.join(", ")
        ));
    }
    Ok(DesiredConfig {
        origin: new.origin.clone(),
        tables: config_tables(new, policies(new)?)?,
        rib: rib_config(new),
        batch_window: batch_window(new),
        settings: applied_keys(old, new),
    })
}

/// The flow-cache timeouts of `cfg` in the data path's terms.
pub fn flow_timeouts(cfg: &Config) -> FlowTimeouts {
    setup::pipeline_config(cfg).flow_cache.timeouts()
}

/// How a runtime hands its workers new flow-cache timeouts (without waiting for them).
pub type TimeoutsFn = Box<dyn FnMut(FlowTimeouts) + Send>;

/// The config file a running forwarder reloads from.
pub struct FileSource {
    path: PathBuf,
    running: Config,
    /// Loaded and handed to the control thread, not yet applied.
    pending: Option<Config>,
    policies: PolicyFn,
    timeouts: TimeoutsFn,
}

impl FileSource {
    /// Reloads from the file `running` was loaded from (its `origin`); a reload that changes the
    /// flow-cache timeouts hands them to `timeouts` once the control thread applied it.
    pub fn new(running: Config, policies: PolicyFn, timeouts: TimeoutsFn) -> Self {
        FileSource {
            path: PathBuf::from(&running.origin),
            running,
            pending: None,
            policies,
            timeouts,
        }
    }
}

impl ConfigSource for FileSource {
    fn load(&mut self) -> Result<DesiredConfig, String> {
        self.pending = None;
        let new = Config::load(&self.path).map_err(|e| e.to_string())?;
        let desired = desired(&self.running, &new, self.policies)?;
        self.pending = Some(new);
        Ok(desired)
    }

    fn finished(&mut self, outcome: &Result<ReloadReply, String>, signal: bool) {
        let by = if signal { "SIGHUP" } else { "control socket" };
        let pending = self.pending.take();
        match outcome {
            Ok(r) => {
                if let Some(cfg) = pending {
                    let new = flow_timeouts(&cfg);
                    if new != flow_timeouts(&self.running) {
                        (self.timeouts)(new);
                    }
                    self.running = cfg;
                }
                tracing::info!(
                    "reload ({by}): {}: next hops +{} -{} ~{}, groups +{} -{} ~{}, routes +{} \
                     -{} ~{}, settings [{}], generation {}{}",
                    self.running.origin,
                    r.nexthops.added,
                    r.nexthops.removed,
                    r.nexthops.changed,
                    r.groups.added,
                    r.groups.removed,
                    r.groups.changed,
                    r.routes.added,
                    r.routes.removed,
                    r.routes.changed,
                    r.settings.join(", "),
                    r.generation,
                    if r.published {
                        ""
                    } else {
                        " (no table changed)"
                    },
                );
            }
            Err(e) => tracing::warn!("reload ({by}) refused: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
