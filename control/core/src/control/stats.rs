//! The counters of the feed and the control thread: written by the feed front end's threads and
//! the control thread, read from any thread through a [`StatsHandle`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Counters of one control thread and its feed, as read by [`StatsHandle::get`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections closed at once because the peer's uid/gid is not allowed.
    pub rejected_peers: u64,
    /// `accept` calls that failed (e.g. out of file descriptors).
    pub accept_errors: u64,
    /// Complete lines within `max_line` (the ones handed to the decoder).
    pub lines: u64,
    /// Lines that are not JSON (ExaBGP's `done` and `error` acknowledgements, garbage); skipped.
    pub not_json: u64,
    /// Of those, ExaBGP's `error` acknowledgements: the companion refused a command ecmpfwd
    /// wrote (an announce or withdraw no neighbour's `api` takes from the helper's process, a
    /// route refresh before any session is up).
    pub command_errors: u64,
    /// JSON lines with nothing for the control plane (other message types, other families).
    pub ignored: u64,
    /// Lines of a known type that failed to decode; skipped whole.
    pub decode_errors: u64,
    /// The latest decode error.
    pub last_error: Option<String>,
    /// Lines longer than `max_line`; discarded up to their newline.
    pub oversized: u64,
    /// Connections closed because an oversized line went on past `DISCARD_FACTOR` times
    /// `max_line` without a newline.
    pub abandoned: u64,
    /// Connections closed because a line did not end within `line_timeout` of its first byte.
    pub line_timeouts: u64,
    /// Connections closed at once because `max_clients` were served and none could be evicted.
    pub refused_busy: u64,
    /// Connections that had sent no valid line, closed to make room for a newcomer.
    pub evicted: u64,
    /// Lines to a client that were dropped because its outbox was full or its socket failed.
    pub dropped_writes: u64,
    /// Snapshots published.
    pub publishes: u64,
    /// Prefixes or hops the builder refused.
    pub build_errors: u64,
    /// The latest builder error.
    pub last_build_error: Option<String>,
    /// Paths in the RIB after the latest batch.
    pub paths: u64,
    /// Prefixes in the RIB after the latest batch.
    pub prefixes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) rejected_peers: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) lines: AtomicU64,
    pub(crate) not_json: AtomicU64,
    pub(crate) command_errors: AtomicU64,
    pub(crate) ignored: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) oversized: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) line_timeouts: AtomicU64,
    pub(crate) refused_busy: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) dropped_writes: AtomicU64,
    pub(crate) publishes: AtomicU64,
    pub(crate) build_errors: AtomicU64,
    pub(crate) paths: AtomicU64,
    pub(crate) prefixes: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
    pub(crate) last_build_error: Mutex<Option<String>>,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn set_text(slot: &Mutex<Option<String>>, text: String) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
}

fn get_text(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Reads a control thread's counters from any thread.
#[derive(Debug, Clone)]
pub struct StatsHandle(pub(super) Arc<Counters>);

impl StatsHandle {
    /// The counters now (each read on its own, so two may be a few events apart).
    pub fn get(&self) -> FeedStats {
        let c = &self.0;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FeedStats {
            connections: load(&c.connections),
            rejected_peers: load(&c.rejected_peers),
            accept_errors: load(&c.accept_errors),
            lines: load(&c.lines),
            not_json: load(&c.not_json),
            command_errors: load(&c.command_errors),
            ignored: load(&c.ignored),
            decode_errors: load(&c.decode_errors),
            last_error: get_text(&c.last_error),
            oversized: load(&c.oversized),
            abandoned: load(&c.abandoned),
            line_timeouts: load(&c.line_timeouts),
            refused_busy: load(&c.refused_busy),
            evicted: load(&c.evicted),
            dropped_writes: load(&c.dropped_writes),
            publishes: load(&c.publishes),
            build_errors: load(&c.build_errors),
            last_build_error: get_text(&c.last_build_error),
            paths: load(&c.paths),
            prefixes: load(&c.prefixes),
        }
    }
}
