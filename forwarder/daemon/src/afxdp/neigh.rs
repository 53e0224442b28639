//! Neighbour resolution for next hops on rewrite ports, run by the control thread.
//!
//! MACs come from the kernel's neighbour table: dumped once at start, then followed through a
//! netlink subscription (a full re-dump after an overrun). Static `[[neighbor]]` entries and MACs
//! given on a `[[nexthop]]` always win. Packets for a hop without a MAC are dropped and counted
//! as `unresolved` by the data path.
//!
//! Because ecmpfwd's traffic bypasses the kernel, the kernel never sees the neighbours in use and
//! would let their entries go stale and unconfirmed. So every [`REFRESH`] the upkeep asks the
//! kernel to (re)resolve every next hop in use (`NTF_USE`), and every [`RETRY`] it asks again for
//! those still unresolved. A neighbour the kernel declares failed loses its MAC here too.
//!
//! The same upkeep runs the `idle` groups' timers every [`IDLE_EVERY`]: buckets idle for the
//! group's idle timer move to hops under their share (bucket use is what the workers recorded,
//! on the process-wide clock `epoch` that workers and this thread share).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ecmp_control::builder::{Builder, ConnectedResolver};
use ecmp_control::control::Upkeep;
use ecmp_io::netlink::{self, NeighEvent, Neighbour, NeighbourWatch};
use ecmp_tables::Snapshot;

use super::{AfXdpError, LivePort};
use crate::config::Config;

/// How often neighbour events are read.
const POLL: Duration = Duration::from_millis(5);
/// How often unresolved hops are asked for again.
const RETRY: Duration = Duration::from_secs(1);
/// How often every hop in use is re-confirmed.
const REFRESH: Duration = Duration::from_secs(15);
/// How often `idle` groups are looked at (their timers are seconds long).
const IDLE_EVERY: Duration = Duration::from_millis(100);

pub(super) struct NeighUpkeep {
    watch: NeighbourWatch,
    /// Port id -> interface index.
    ifindex: Vec<u32>,
    /// Static entries: never replaced by the kernel's view.
    statics: HashMap<IpAddr, [u8; 6]>,
    /// What the resolver was told (besides statics).
    learnt: HashMap<IpAddr, [u8; 6]>,
    events: Vec<NeighEvent>,
    next_poll: Instant,
    next_retry: Instant,
    next_refresh: Instant,
    /// Consecutive netlink errors (logged once per streak).
    failing: bool,
    idle: IdleTimers,
}

impl NeighUpkeep {
    pub(super) fn new(
        cfg: &Config,
        ports: &[LivePort],
        epoch: Instant,
    ) -> Result<Self, AfXdpError> {
        let watch = NeighbourWatch::new().map_err(AfXdpError::NeighbourWatch)?;
        let statics = static_neighbours(cfg);
        let now = Instant::now();
        Ok(NeighUpkeep {
            watch,
            ifindex: ports.iter().map(|p| p.ifindex).collect(),
            statics,
            learnt: HashMap::new(),
            events: Vec::new(),
            next_poll: now,
            next_retry: now,
            next_refresh: now + REFRESH,
            failing: false,
            idle: IdleTimers::new(epoch),
        })
    }

    /// Loads the statics and the kernel's table into the builder's resolver and asks the kernel
    /// for the hops it does not know yet (before the first snapshot is taken).
    pub(super) fn prime(&mut self, builder: &mut Builder<ConnectedResolver>) {
        for (&addr, &mac) in &self.statics {
            builder.resolver_mut().set_neighbor(addr, mac);
        }
        self.redump(builder);
        let _ = builder.refresh_resolution();
        self.ask_kernel(builder, false);
    }

    fn ours(&self, n: &Neighbour) -> bool {
        self.ifindex.contains(&n.ifindex) && !self.statics.contains_key(&n.addr)
    }

    /// Applies one kernel entry; true when the resolver changed.
    fn learn(&mut self, builder: &mut Builder<ConnectedResolver>, n: &Neighbour) -> bool {
        if !self.ours(n) {
            return false;
        }
        match (n.usable(), n.mac) {
            (true, Some(mac)) => {
                if self.learnt.get(&n.addr) == Some(&mac) {
                    return false;
                }
                self.learnt.insert(n.addr, mac);
                builder.resolver_mut().set_neighbor(n.addr, mac);
                true
            }
            _ => self.forget(builder, n.addr),
        }
    }

    fn forget(&mut self, builder: &mut Builder<ConnectedResolver>, addr: IpAddr) -> bool {
        if self.learnt.remove(&addr).is_some() {
            builder.resolver_mut().remove_neighbor(addr);
            true
        } else {
            false
        }
    }

    /// Replaces what was learnt with a fresh dump; true when the resolver changed.
    fn redump(&mut self, builder: &mut Builder<ConnectedResolver>) -> bool {
        let table = match netlink::neighbours() {
            Ok(t) => t,
            Err(e) => {
                self.report(&e.to_string());
                return false;
            }
        };
        let mut changed = false;
        let present: Vec<IpAddr> = table.iter().map(|n| n.addr).collect();
        let gone: Vec<IpAddr> = self
            .learnt
            .keys()
            .filter(|a| !present.contains(a))
            .copied()
            .collect();
        for addr in gone {
            changed |= self.forget(builder, addr);
        }
        for n in &table {
            changed |= self.learn(builder, n);
        }
        changed
    }

    fn report(&mut self, what: &str) {
        if !self.failing {
            tracing::warn!("neighbour table: {what}");
        }
        self.failing = true;
    }

    /// Asks the kernel to resolve hops: the unresolved ones, or (`all`) every hop in use.
    fn ask_kernel(&mut self, builder: &Builder<ConnectedResolver>, all: bool) {
        for h in builder.hops() {
            if (h.resolved && !all) || self.statics.contains_key(&h.hop.addr) {
                continue;
            }
            let Some(&ifindex) = self.ifindex.get(usize::from(h.hop.port)) else {
                continue;
            };
            // Unreachable addresses fail inside the kernel later, not here; an error here
            // is a netlink problem worth one log line.
            if let Err(e) = netlink::resolve(ifindex, h.hop.addr) {
                self.report(&e.to_string());
            }
        }
    }
}

impl Upkeep<ConnectedResolver> for NeighUpkeep {
    fn run(&mut self, builder: &mut Builder<ConnectedResolver>, now: Instant) -> Option<Snapshot> {
        let mut changed = false;
        if now >= self.next_poll {
            self.next_poll = now + POLL;
            let mut events = std::mem::take(&mut self.events);
            events.clear();
            match self.watch.poll_events(&mut events) {
                Ok(_) => self.failing = false,
                Err(e) => self.report(&e.to_string()),
            }
            let mut overrun = false;
            for ev in &events {
                match ev {
                    NeighEvent::New(n) => changed |= self.learn(builder, n),
                    NeighEvent::Del(n) if self.ours(n) => changed |= self.forget(builder, n.addr),
                    NeighEvent::Del(_) => {}
                    NeighEvent::Overrun => overrun = true,
                }
            }
            self.events = events;
            if overrun {
                changed |= self.redump(builder);
            }
        }
        if now >= self.next_refresh {
            self.next_refresh = now + REFRESH;
            self.next_retry = now + RETRY;
            self.ask_kernel(builder, true);
        } else if now >= self.next_retry {
            self.next_retry = now + RETRY;
            self.ask_kernel(builder, false);
        }
        let snapshot = if changed {
            builder.refresh_resolution()
        } else {
            None
        };
        // The builder's state is cumulative: the later snapshot includes the earlier one.
        self.idle.run(builder, now).or(snapshot)
    }
}

/// The neighbours the config fixes: `[[neighbor]]` entries and MACs given on a `[[nexthop]]`.
pub(crate) fn static_neighbours(cfg: &Config) -> HashMap<IpAddr, [u8; 6]> {
    cfg.neighbors
        .iter()
        .map(|n| (n.address, n.mac.0))
        .chain(
            cfg.nexthops
                .iter()
                .filter_map(|h| Some((h.address, h.mac?.0))),
        )
        .collect()
}

/// The `idle` groups' timers, run every [`IDLE_EVERY`] on the clock the workers stamp bucket
/// use with. All of the DPDK runtime's upkeep (its neighbours are all static), and part of the
/// AF_XDP runtime's.
pub(crate) struct IdleTimers {
    /// The clock workers stamp bucket use with.
    epoch: Instant,
    next: Instant,
}

impl IdleTimers {
    /// Timers on the workers' clock `epoch`.
    pub(crate) fn new(epoch: Instant) -> Self {
        IdleTimers {
            epoch,
            next: Instant::now() + IDLE_EVERY,
        }
    }
}

impl Upkeep<ConnectedResolver> for IdleTimers {
    fn run(&mut self, builder: &mut Builder<ConnectedResolver>, now: Instant) -> Option<Snapshot> {
        if now < self.next {
            return None;
        }
        self.next = now + IDLE_EVERY;
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        builder.upkeep(now_ms)
    }
}
