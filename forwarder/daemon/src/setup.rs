//! Builds the tables the data path reads (FIB, groups, next hops, ports) from a validated config.
//!
//! Ids follow the config's order: next hop `i` is hop id `i + 1`, group `i` is group id `i + 1`,
//! port `i` is port id `i` (id 0 means "unset" for hops and groups, rule 8).

use std::net::IpAddr;
use std::sync::Arc;

use ecmp_tables::group::{GroupMode, GroupTable, ResilientGroup};
use ecmp_tables::nexthop::{GroupId, HopId, HopState, NextHop};
use ecmp_tables::snapshot::Snapshot;
use ecmp_tables::{Fib4, Fib6, TableError};

use ecmp_dataplane::flowcache::FlowCacheConfig;
use ecmp_dataplane::pipeline::PipelineConfig;

use crate::config::{self, Config, WorkerSpec};

/// Why the tables could not be built from a (syntactically valid) config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A table refused an entry; the location names the config item.
    #[error("{origin}:{line}: {key}: {source}")]
    Table {
        /// The config file.
        origin: String,
        /// Line of the offending item.
        line: usize,
        /// The key path of the item.
        key: String,
        /// What the table said.
        source: TableError,
    },
    /// `run` needs at least one worker.
    #[error("{origin}: no [[worker]] configured")]
    NoWorkers {
        /// The config file.
        origin: String,
    },
    /// A worker does not poll a port it may have to forward to (a worker's port index is the
    /// port id of its next hops, l3fwd's layout).
    #[error(
        "{origin}:{line}: worker on core {core} does not serve port {port:?}; every worker must \
         serve every port it may forward to"
    )]
    WorkerMissesPort {
        /// The config file.
        origin: String,
        /// The worker's line.
        line: usize,
        /// The worker's core.
        core: usize,
        /// The port's name.
        port: String,
    },
    /// A worker polls several queues of one port.
    #[error(
        "{origin}:{line}: worker on core {core} polls {queues} queues of port {port:?}; give each \
         queue its own worker"
    )]
    WorkerQueues {
        /// The config file.
        origin: String,
        /// The worker's line.
        line: usize,
        /// The worker's core.
        core: usize,
        /// How many queues of the port it lists.
        queues: usize,
        /// The port's name.
        port: String,
    },
}

/// The flow-cache and hashing settings of `cfg` in the data path's terms.
pub fn pipeline_config(cfg: &Config) -> PipelineConfig {
    let fc = &cfg.flow_cache;
    PipelineConfig {
        seed: cfg.instance.seed,
        rss_key: cfg.instance.rss_key,
        flow_cache: FlowCacheConfig {
            capacity: fc.capacity,
            idle_timeout_ms: fc.idle_timeout.as_millis() as u64,
            embryonic_timeout_ms: fc.embryonic_timeout.as_millis() as u64,
            fin_timeout_ms: fc.fin_timeout.as_millis() as u64,
        },
    }
}

/// Checks the workers every runtime needs: at least one, and each polling exactly one queue of
/// every port (a verdict names a port id, which indexes the worker's own port list).
pub fn check_workers(cfg: &Config) -> Result<(), SetupError> {
    if cfg.workers.is_empty() {
        return Err(SetupError::NoWorkers {
            origin: cfg.origin.clone(),
        });
    }
    cfg.workers.iter().try_for_each(|w| check_worker(cfg, w))
}

fn check_worker(cfg: &Config, w: &WorkerSpec) -> Result<(), SetupError> {
    for (pi, p) in cfg.ports.iter().enumerate() {
        let queues = w.ports.iter().filter(|q| q.port == pi).count();
        if queues == 0 {
            return Err(SetupError::WorkerMissesPort {
                origin: cfg.origin.clone(),
                line: w.line,
                core: w.core,
                port: p.name.clone(),
            });
        }
        if queues > 1 {
            return Err(SetupError::WorkerQueues {
                origin: cfg.origin.clone(),
                line: w.line,
                core: w.core,
                queues,
                port: p.name.clone(),
            });
        }
    }
    Ok(())
}

/// The control-side tables: group builders plus the data-path snapshot pieces.
pub struct Tables {
    /// One builder per group; index = group id - 1.
    pub groups: Vec<ResilientGroup>,
    /// Group names; index = group id - 1.
    pub group_names: Vec<String>,
    /// Next-hop names; index = hop id - 1.
    pub hop_names: Vec<String>,
    /// The snapshot to publish.
    pub snapshot: Snapshot,
    /// What group id 0 ("no route") maps to in a snapshot: a group with no members.
    unset_group: Arc<GroupTable>,
}

impl Tables {
    /// Group id by name.
    pub fn group_id(&self, name: &str) -> Option<GroupId> {
        self.group_names
            .iter()
            .position(|n| n == name)
            .map(|i| i as GroupId + 1)
    }

    /// Hop id by name.
    pub fn hop_id(&self, name: &str) -> Option<HopId> {
        self.hop_names
            .iter()
            .position(|n| n == name)
            .map(|i| i as HopId + 1)
    }

    /// The group builder of `id`.
    pub fn group_mut(&mut self, id: GroupId) -> Option<&mut ResilientGroup> {
        self.groups.get_mut((id as usize).checked_sub(1)?)
    }

    /// A snapshot with the groups' current tables (shares the FIBs and hops with the last one).
    pub fn rebuild_snapshot(&self) -> Snapshot {
        let mut groups = Vec::with_capacity(self.groups.len() + 1);
        groups.push(Arc::clone(&self.unset_group));
        groups.extend(self.groups.iter().map(|g| Arc::new(g.table())));
        Snapshot {
            generation: 0,
            fib_changed: 0,
            fib4: Arc::clone(&self.snapshot.fib4),
            fib6: Arc::clone(&self.snapshot.fib6),
            groups: groups.into(),
            hops: self.snapshot.hops.clone(),
            ports: self.snapshot.ports.clone(),
        }
    }
}

/// A configured group's mode in the tables' terms.
pub fn mode_of(g: &config::GroupSpec) -> GroupMode {
    match g.mode {
        config::GroupMode::Manual => GroupMode::Manual,
        config::GroupMode::AutoRecovery => GroupMode::AutoRecovery,
        config::GroupMode::Idle => GroupMode::Idle {
            idle_timer_ms: g.idle_timer.as_millis() as u64,
            unbalanced_timer_ms: g.unbalanced_timer.as_millis() as u64,
        },
        config::GroupMode::Maglev => GroupMode::Maglev,
        config::GroupMode::Rendezvous => GroupMode::Rendezvous,
    }
}

/// Builds every table from `cfg`.
pub fn build(cfg: &Config) -> Result<Tables, SetupError> {
    let err = |line: usize, key: String| {
        let origin = cfg.origin.clone();
        move |source: TableError| SetupError::Table {
            origin,
            line,
            key,
            source,
        }
    };

    let mut hops = Vec::with_capacity(cfg.nexthops.len() + 1);
    hops.push(NextHop::UNSET);
    for (i, h) in cfg.nexthops.iter().enumerate() {
        hops.push(NextHop {
            id: i as HopId + 1,
            addr: h.address,
            port: h.port as u16,
            // A hop without a configured MAC stays unresolved (all zeroes, dropped as
            // `unresolved`) until neighbour resolution fills it in.
            mac: h.mac.map_or([0; 6], |m| m.0),
            weight: h.weight,
            action: h.action.into(),
        });
    }

    let mut groups = Vec::with_capacity(cfg.groups.len());
    for (gi, g) in cfg.groups.iter().enumerate() {
        let e = |k: &str| err(g.line, format!("group[{gi}].{k}"));
        let mut rg =
            ResilientGroup::new(g.buckets, mode_of(g), cfg.instance.seed).map_err(e("buckets"))?;
        rg.set_policy(g.hash.into());
        for m in &g.members {
            let hop = m.nexthop as HopId + 1;
            rg.add_member(hop, m.weight).map_err(e("members"))?;
            let key = ecmp_tables::nexthop::maglev_key(cfg.nexthops[m.nexthop].address);
            rg.set_maglev_key(hop, key).map_err(e("members"))?;
        }
        // Members join together: balance once, then apply the configured initial states so a
        // hop configured draining or failed owns no buckets from the start. The states are set
        // together so the table does not depend on the order the members are listed in.
        rg.clear();
        let states: Vec<(HopId, HopState)> = g
            .members
            .iter()
            .map(|m| (m.nexthop as HopId + 1, cfg.nexthops[m.nexthop].state.into()))
            .filter(|&(_, state)| state != HopState::Active)
            .collect();
        rg.set_states(&states).map_err(e("members"))?;
        groups.push(rg);
    }

    let mut fib4 = Fib4::new(cfg.fib.max_tbl8 as usize);
    let mut fib6 = Fib6::new();
    for (ri, r) in cfg.routes.iter().enumerate() {
        let gid = r.group as GroupId + 1;
        let e = err(r.line, format!("route[{ri}].prefix"));
        match r.prefix.addr {
            IpAddr::V4(a) => fib4.insert(a, r.prefix.len, gid).map_err(e)?,
            IpAddr::V6(a) => fib6.insert(a, r.prefix.len, gid).map_err(e)?,
        };
    }

    let unset_group = ResilientGroup::new(1, GroupMode::Manual, 0)
        .map_err(err(0, "group".into()))?
        .table();
    let mut tables = Tables {
        unset_group: Arc::new(unset_group),
        groups,
        group_names: cfg.groups.iter().map(|g| g.name.clone()).collect(),
        hop_names: cfg.nexthops.iter().map(|h| h.name.clone()).collect(),
        snapshot: Snapshot {
            generation: 0,
            fib_changed: 0,
            fib4: Arc::new(fib4),
            fib6: Arc::new(fib6),
            groups: Vec::new().into(),
            hops,
            ports: cfg.ports.iter().map(|p| p.port_info()).collect(),
        },
    };
    tables.snapshot = tables.rebuild_snapshot();
    Ok(tables)
}
