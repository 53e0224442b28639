//! The recent route changes `route-events` (and `ecmpctl top`) show: a bounded ring, oldest
//! dropped first, written only by the control thread.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Instant;

use ecmp_proto::ctl::{ROUTE_EVENTS_KEPT, RouteEvent, RouteEventSource};

use crate::rib::{NextHopState, PrefixChange};

#[derive(Debug)]
pub(super) struct RouteEvents {
    ring: VecDeque<RouteEvent>,
    started: Instant,
}

impl RouteEvents {
    pub(super) fn new(started: Instant) -> Self {
        RouteEvents {
            ring: VecDeque::with_capacity(ROUTE_EVENTS_KEPT),
            started,
        }
    }

    fn push(&mut self, event: RouteEvent) {
        if self.ring.len() == ROUTE_EVENTS_KEPT {
            self.ring.pop_front();
        }
        self.ring.push_back(event);
    }

    fn event(&self, generation: u64, source: RouteEventSource, what: String) -> RouteEvent {
        RouteEvent {
            uptime_s: self.started.elapsed().as_secs_f64(),
            generation,
            source,
            prefix: None,
            what,
        }
    }

    /// One feed batch. A batch bigger than the ring (a full table loading) is one summary line
    /// and its last changes: describing every one of a million prefixes would slow the load.
    pub(super) fn feed_batch(&mut self, changes: &[PrefixChange], generation: u64) {
        let listed = ROUTE_EVENTS_KEPT - 1;
        if changes.len() > listed {
            let what = format!(
                "{} prefixes changed in one batch; the last {listed} follow",
                changes.len()
            );
            let e = self.event(generation, RouteEventSource::Feed, what);
            self.push(e);
        }
        for c in &changes[changes.len().saturating_sub(listed)..] {
            let mut e = self.event(generation, RouteEventSource::Feed, describe(c));
            e.prefix = Some(c.prefix);
            self.push(e);
        }
    }

    /// One operator command that changed (or would have changed) the tables.
    pub(super) fn operator(&mut self, what: String, generation: u64) {
        let e = self.event(generation, RouteEventSource::Operator, what);
        self.push(e);
    }

    /// The latest `last` events (every one kept when 0), oldest first.
    pub(super) fn recent(&self, last: usize) -> Vec<RouteEvent> {
        let n = if last == 0 {
            self.ring.len()
        } else {
            last.min(self.ring.len())
        };
        self.ring
            .iter()
            .skip(self.ring.len() - n)
            .cloned()
            .collect()
    }
}

fn describe(c: &PrefixChange) -> String {
    if c.hops.is_empty() {
        return "withdrawn".to_owned();
    }
    let mut what = format!(
        "{} next hop{}",
        c.hops.len(),
        if c.hops.len() == 1 { "" } else { "s" }
    );
    let draining = c
        .hops
        .values()
        .filter(|s| matches!(s, NextHopState::Draining(_)))
        .count();
    if draining > 0 {
        let _ = write!(what, " ({draining} draining)");
    }
    if !c.removed.is_empty() {
        let gone: Vec<String> = c.removed.iter().map(ToString::to_string).collect();
        let _ = write!(what, ", {} gone", gone.join(" "));
    }
    what
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::HopSet;

    fn change(prefix: &str, hops: usize, removed: &[&str]) -> PrefixChange {
        let mut set = HopSet::new();
        for i in 0..hops {
            set.insert(
                format!("198.18.{}.1", i + 1).parse().unwrap(),
                NextHopState::Active,
            );
        }
        PrefixChange {
            prefix: prefix.parse().unwrap(),
            hops: set,
            removed: removed.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn changes_are_described_and_kept_oldest_first() {
        let mut ev = RouteEvents::new(Instant::now());
        ev.feed_batch(
            &[
                change("198.19.0.1/32", 3, &["198.18.4.1"]),
                change("198.19.0.2/32", 0, &["198.18.1.1"]),
            ],
            7,
        );
        ev.operator("drain 198.18.2.1".to_owned(), 8);
        let all = ev.recent(0);
        let text: Vec<(&str, u64)> = all
            .iter()
            .map(|e| (e.what.as_str(), e.generation))
            .collect();
        assert_eq!(
            text,
            [
                ("3 next hops, 198.18.4.1 gone", 7),
                ("withdrawn", 7),
                ("drain 198.18.2.1", 8)
            ]
        );
        assert_eq!(all[0].prefix, Some("198.19.0.1/32".parse().unwrap()));
        assert_eq!(all[2].source, RouteEventSource::Operator);
        assert_eq!(ev.recent(1), all[2..]);
        assert_eq!(ev.recent(99), all);
    }

    #[test]
    fn the_ring_is_bounded_and_a_big_batch_is_summarised() {
        let mut ev = RouteEvents::new(Instant::now());
        for i in 0..ROUTE_EVENTS_KEPT + 10 {
            ev.operator(format!("op {i}"), i as u64);
        }
        let all = ev.recent(0);
        assert_eq!(all.len(), ROUTE_EVENTS_KEPT);
        assert_eq!(all[0].what, "op 10", "the oldest went first");

        let big: Vec<PrefixChange> = (0..1000)
            .map(|i| change(&format!("10.{}.{}.0/24", i / 256, i % 256), 1, &[]))
            .collect();
        ev.feed_batch(&big, 99);
        let all = ev.recent(0);
        assert_eq!(all.len(), ROUTE_EVENTS_KEPT);
        assert_eq!(
            all[0].what,
            format!(
                "1000 prefixes changed in one batch; the last {} follow",
                ROUTE_EVENTS_KEPT - 1
            )
        );
        assert_eq!(
            all.last().unwrap().prefix,
            Some("10.3.231.0/24".parse().unwrap())
        );
    }
}
