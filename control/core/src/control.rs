//! The control thread: it owns the [`Rib`] and the [`Builder`], turns what the socket front ends
//! hand it into published snapshots, answers control requests and runs the upkeep hook.
//!
//! Threads:
//! - the control thread ([`ControlThread::run`], or the thread [`ControlThread::spawn`] starts)
//!   owns the RIB, the builder and the write side of every feed connection; nothing else
//!   touches them;
//! - each [`FrontEnd`] (the feed socket, the control socket) runs its own accept and connection
//!   threads and reaches the control thread only through one bounded channel of messages, so a
//!   feed flood slows its reader down instead of growing memory.
//!
//! Invariants:
//! - A feed connection's `Connected` message is queued before its reader starts, so the control
//!   thread writes the route-refresh request and begins the refresh before it applies any line
//!   of that connection. The refresh covers only the peers whose paths no open connection
//!   feeds (each peer's last line came on a connection that has closed since, or on none): a
//!   second client of the socket (an operator's `socat`, a stray or hostile connection) must not
//!   put the live companion's paths on a refresh timer that only the second client could stop.
//! - RIB changes are collected from the first change after a publish until `batch_window` has
//!   passed, then merged with [`coalesce`] and applied as one [`Builder::apply`]: a burst of lines
//!   becomes one snapshot, and no state between two lines of one batch is ever published. The
//!   window is counted from the first change, so a steady stream still publishes every window.
//!   A batch is also built as soon as it holds [`MAX_BATCH_CHANGES`] changes (counted after
//!   whole lines: one line's changes are never split), because the FIB's spare copy replays the
//!   previous batch before the next change (see [`Builder`]): bounded batches bound what a lone
//!   update after a full-table load waits for.
//! - Start-up hold: the first feed-learnt changes of a process (one that starts with an empty
//!   RIB) are not published line by line. A companion answers the first route refresh with every
//!   path of every peer in quick succession; publishing the VIP's group with its first path alone
//!   would pin every flow seen in those milliseconds to that path in the flow caches, where it
//!   stays after the group is whole (a restarted forwarder would break those flows). So the first
//!   batch is built once the feed has been quiet for [`STARTUP_QUIET`], or
//!   [`ControlConfig::startup_hold`] after its first change, or at [`MAX_BATCH_CHANGES`],
//!   whichever comes first; it is not counted in the convergence histogram (the wait is on
//!   purpose). Later batches follow `batch_window`.
//! - Between messages the control thread lets the builder replay that batch onto the spare as
//!   soon as the workers let go of it ([`Builder::catch_up`]), looking every [`SPARE_POLL`] while
//!   there is one to replay, so the next update usually finds it done.
//! - The control thread never blocks on a client: feed writes are `MSG_DONTWAIT`; what the
//!   socket does not take waits in a bounded per-connection outbox (whole lines only are dropped,
//!   and counted, when it is full), retried on every loop turn. Control clients are written to by
//!   their own connection threads.
//! - Stopping: the control thread notices the stop flag within [`STOP_POLL`], waits for every
//!   front end's accept thread to end (draining the channel meanwhile), shuts every connection
//!   down (which ends the blocking reads), joins every thread the front ends started and lets
//!   them remove their socket files, if the files are still the ones they bound.
//! - Events read after the stop flag was seen are not applied; changes already applied to the RIB
//!   are published before [`ControlThread::run`] returns.
//! - Announcements ([`crate::announce`]): every loop turn (at most every [`ANNOUNCE_POLL`]) the
//!   `[[bgp.announce]]` prefixes are judged against the builder's routes and the workers' poll
//!   counters, and what changed is written to every feed connection; a new connection gets the
//!   whole state right after its route-refresh request. Setting the withdraw flag
//!   ([`ControlHandle::withdraw_all`], SIGTERM) withdraws everything on the next turn while the
//!   thread keeps serving; stopping afterwards writes nothing more.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ecmp_proto::FeedEvent;
use ecmp_proto::ctl::{CaptureRequest, CaptureStarted, CapturedPacket};
use ecmp_proto::ctl::{
    FlowsReply, ReloadReply, Reply, Request, StatsReply, TraceQuery, TraceReply,
};
use ecmp_tables::Snapshot;

use crate::announce::{AnnounceConfig, Announcer, Health, StallWatch};
use crate::builder::{Builder, ConfigTables, NextHopResolver, coalesce};
use crate::rib::{PrefixChange, Rib, RibConfig};

mod commands;
mod convergence;
mod events;
mod outbox;
mod reload;
mod scrape;
mod stats;
#[cfg(test)]
mod tests;

use convergence::Convergence;
use events::RouteEvents;
use outbox::Conn;
pub use outbox::OUTBOX_MAX;
pub use scrape::{CONVERGENCE_BOUNDS, MetricsSnapshot, SecondsHistogram};
pub(crate) use stats::{Counters, bump, set_text};
pub use stats::{FeedStats, StatsHandle};

/// The longest the control thread waits before looking at the stop flag again.
pub const STOP_POLL: Duration = Duration::from_millis(20);
/// Messages queued from the front ends to the control thread before their threads wait.
const CHANNEL_DEPTH: usize = 4096;
/// Messages the control thread takes from the channel before it looks at its timers again.
const DRAIN_MAX: usize = 1024;
/// How often the control thread looks whether workers took a publication, while one is pending.
const CONVERGENCE_POLL: Duration = Duration::from_micros(100);
/// How often the control thread looks whether workers let go of the FIB's spare copy, while it
/// trails the published one.
pub const SPARE_POLL: Duration = Duration::from_micros(100);
/// How often the announcements are judged at most (the loop turns at least every
/// [`STOP_POLL`]).
pub const ANNOUNCE_POLL: Duration = Duration::from_millis(10);
/// Changes in one batch at most (see the module doc): the spare FIB replays at most this many
/// changes in front of a later update, and a million routes load in about 120 publications
/// (benches/RESULTS.md, "Control side at 1M routes").
pub const MAX_BATCH_CHANGES: usize = 8192;
/// How long the feed must be quiet (no line that changed the RIB) before the start-up batch is
/// built (see the module doc). ExaBGP resent 4,000 ADD-PATH paths as 324 lines in 2.5 s, a line
/// every 8 ms on average (../shared/reference/bgp-feed.md), so a gap this long ends the resend.
pub const STARTUP_QUIET: Duration = Duration::from_millis(200);

/// Why the control thread or a front end's thread could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A thread could not be started.
    #[error("starting a control plane thread: {0}")]
    Spawn(io::Error),
    /// A thread panicked.
    #[error("control plane thread `{0}` panicked")]
    Panicked(&'static str),
}

/// Why the data side could not answer a query (flows, trace); the text is what the operator
/// reads in the error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataQueryError {
    /// A worker did not answer within its bound.
    #[error("worker {0} did not answer")]
    NoAnswer(usize),
    /// There is no worker to ask.
    #[error("no worker")]
    NoWorkers,
    /// The traced packet would not be forwarded; the drop reason's name.
    #[error("the packet would be dropped: {0}")]
    WouldDrop(&'static str),
    /// The query cannot be turned into a packet.
    #[error("{0}")]
    BadQuery(String),
}

/// What the control thread asks of the data side. The daemon implements it over its workers; the
/// control plane never sees the data path's types.
pub trait Dataplane: Send {
    /// Counters per port, worker and drop reason (the feed counters are filled in by the
    /// control thread).
    fn stats(&self) -> StatsReply;
    /// Flow-cache totals and up to `top` flows.
    fn flows(&self, top: usize) -> Result<FlowsReply, DataQueryError>;
    /// Which hop this 5-tuple takes now.
    fn trace(&self, query: &TraceQuery) -> Result<TraceReply, DataQueryError>;
    /// The generation the latest publication got.
    fn generation(&self) -> u64;
    /// The oldest generation any worker still runs (every worker runs it or a newer one).
    fn applied_generation(&self) -> u64;
    /// The name of port `port`, for display.
    fn port_name(&self, port: u16) -> Option<String>;
    /// Each worker's poll count (passes over its ports, empty or not), what a stall is judged
    /// by; called every [`ANNOUNCE_POLL`] while prefixes are announced, so it must be cheap.
    fn worker_polls(&self) -> Vec<u64> {
        self.stats().workers.iter().map(|w| w.polls).collect()
    }
    /// Starts a packet capture on the workers; the stream ends it when dropped. A data side
    /// that cannot capture refuses.
    fn capture(
        &self,
        request: &CaptureRequest,
    ) -> Result<(CaptureStarted, Box<dyn CaptureStream>), DataQueryError> {
        let _ = request;
        Err(DataQueryError::BadQuery(
            "this data plane cannot capture".to_owned(),
        ))
    }
}

/// A running capture, read by the control connection that started it (never by the control
/// thread, which must not block on a client). Dropping it stops the capture.
pub trait CaptureStream: Send {
    /// Appends the frames captured since the last call to `out`, waiting up to `wait` for the
    /// first one.
    fn next(&mut self, out: &mut Vec<CapturedPacket>, wait: Duration);
    /// Matching frames lost so far because a worker's capture ring was full.
    fn ring_dropped(&self) -> u64;
}

/// What starting a capture answers: the stream, or why not.
pub(crate) type CaptureAnswer = Result<(CaptureStarted, Box<dyn CaptureStream>), String>;

/// Work the control thread does between messages: neighbour tracking, idle-mode timers. Runs
/// on every loop turn (at least every [`STOP_POLL`]); must not block.
pub trait Upkeep<R>: Send {
    /// Does what is due at `now`; returns the snapshot to publish when it changed the builder.
    fn run(&mut self, builder: &mut Builder<R>, now: Instant) -> Option<Snapshot>;
}

/// What a config file asks of the control thread: the configured tables and policies, and the
/// timing of the RIB and of batching. Built by the daemon (which parses and validates the file);
/// the control thread never reads the file itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredConfig {
    /// The file, for messages.
    pub origin: String,
    /// Next hops, groups, routes, BGP policies.
    pub tables: ConfigTables,
    /// `[feed]` stale time and refresh timeout.
    pub rib: RibConfig,
    /// `[feed]` batch window.
    pub batch_window: Duration,
    /// Keys outside the tables whose values changed (`bgp`, `feed.stale_time`, ...), for the
    /// reply; the counts of next hops, groups and routes come from the builder.
    pub settings: Vec<String>,
}

/// Where a reload reads the config from (the daemon implements it over its config file).
pub trait ConfigSource: Send {
    /// Reads and checks the file again, against the running config: what it asks for, or why it
    /// cannot be applied (the text the operator reads: the validation error with its
    /// `file:line: key`, or every key that needs a restart). Changes nothing.
    fn load(&mut self) -> Result<DesiredConfig, String>;
    /// How the reload `load` began ended: applied (what `load` returned is now the running
    /// config) or refused with this text. `signal`: asked for through the reload flag (SIGHUP),
    /// not by a control request.
    fn finished(&mut self, outcome: &Result<ReloadReply, String>, signal: bool);
}

/// What the front ends tell the control thread.
pub(crate) enum Msg {
    /// A new feed connection; the stream is the control thread's write side, `refresh` the
    /// route-refresh request to write to it first.
    Connected {
        /// The connection's id, unique per front end.
        id: u64,
        /// The write side.
        stream: UnixStream,
        /// Written to the connection before anything else.
        refresh: Arc<[u8]>,
    },
    /// A decoded feed line, when its read completed (convergence is measured from there) and
    /// the id of the connection it came on.
    Event(FeedEvent, Instant, u64),
    /// A control socket request; the answer goes back on `reply`.
    Command {
        /// The request.
        request: Request,
        /// Where the answer goes (the connection thread waits on it).
        reply: SyncSender<Reply>,
    },
    /// The feed connection's reader ended.
    Closed(u64),
    /// A scrape of the metrics front end; the snapshot goes back on `reply`.
    Metrics {
        /// Where the snapshot goes (the scraping thread waits on it).
        reply: SyncSender<Box<MetricsSnapshot>>,
    },
    /// A control connection asks to start a capture; it streams the result itself.
    Capture {
        /// What to capture.
        request: CaptureRequest,
        /// Where the stream (or the refusal) goes.
        reply: SyncSender<CaptureAnswer>,
    },
}

/// What a front end gets from the control thread when it starts: the channel to it, the stop
/// flag and the counters. Only this crate's front ends can use it.
pub struct Link {
    pub(crate) tx: SyncSender<Msg>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) counters: Arc<Counters>,
}

/// A socket front end served by the control thread: the feed socket
/// ([`FeedServer`](crate::feed_server::FeedServer)), the control socket
/// ([`CtlListener`](crate::ctl_server::CtlListener)) or the metrics listener
/// ([`MetricsListener`](crate::metrics_server::MetricsListener)).
pub trait FrontEnd: Send {
    /// Starts the front end's threads; they reach the control thread only through `link` and
    /// end once its stop flag is set.
    fn start(self: Box<Self>, link: Link) -> Result<Box<dyn Serving>, ControlError>;
}

/// A started front end, ended by the control thread in three steps once it stops serving.
pub trait Serving {
    /// Whether the accept thread still runs (it ends within an accept poll of the stop flag,
    /// but may be waiting for room in the channel meanwhile).
    fn accepting(&self) -> bool;
    /// Once `accepting` is false: joins the accept thread and shuts down the connections the
    /// front end holds itself, which ends their blocking reads.
    fn close(&mut self) -> Result<(), ControlError>;
    /// Once the channel is gone: joins every connection thread and removes the socket file.
    fn join(self: Box<Self>) -> Result<(), ControlError>;
}

/// How the control thread batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// How long changes are collected before one snapshot is built from all of them. Zero (the
    /// default) still batches: the control thread applies every line already queued (up to
    /// 1024) before it builds, so a burst becomes few snapshots while a lone update is published
    /// at once (the convergence target is 1 ms; see benches/RESULTS.md).
    pub batch_window: Duration,
    /// The longest the first feed-learnt batch of a process is held while the feed is still
    /// sending (see the module doc); zero publishes it like any other batch. The daemon's
    /// default is [`DEFAULT_STARTUP_HOLD`]; this struct's default is zero, for embedders that
    /// start with routes of their own.
    pub startup_hold: Duration,
}

/// Default time changes are collected before one snapshot is built (zero: see
/// [`ControlConfig::batch_window`]).
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::ZERO;

/// The daemon's default [`ControlConfig::startup_hold`]: long enough for a companion's answer to
/// the first route refresh (ExaBGP: milliseconds for a few paths, 2.5 s for 4,000), short enough
/// that a feed which never goes quiet still gets its routes published soon after start.
pub const DEFAULT_STARTUP_HOLD: Duration = Duration::from_secs(2);

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            batch_window: DEFAULT_BATCH_WINDOW,
            startup_hold: Duration::ZERO,
        }
    }
}

/// A control thread not yet running, with the front ends it will serve. See the module doc.
pub struct ControlThread {
    config: ControlConfig,
    front_ends: Vec<Box<dyn FrontEnd>>,
    dataplane: Option<Box<dyn Dataplane>>,
    counters: Arc<Counters>,
    config_source: Option<Box<dyn ConfigSource>>,
    reload_flag: Option<Arc<AtomicBool>>,
    announce: AnnounceConfig,
    withdraw: Arc<AtomicBool>,
}

impl std::fmt::Debug for ControlThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlThread")
            .field("config", &self.config)
            .field("front_ends", &self.front_ends.len())
            .field("dataplane", &self.dataplane.is_some())
            .field("config_source", &self.config_source.is_some())
            .finish_non_exhaustive()
    }
}

impl ControlThread {
    /// A control thread with no front end yet: it then runs only the upkeep hook.
    pub fn new(config: ControlConfig) -> ControlThread {
        ControlThread {
            config,
            front_ends: Vec::new(),
            dataplane: None,
            counters: Arc::default(),
            config_source: None,
            reload_flag: None,
            announce: AnnounceConfig::default(),
            withdraw: Arc::default(),
        }
    }

    /// Tells the companion to announce `config`'s prefixes while they can be served (see
    /// [`crate::announce`]).
    pub fn with_announcements(mut self, config: AnnounceConfig) -> ControlThread {
        self.announce = config;
        self
    }

    /// The flag that withdraws every announcement (the thread keeps serving), for
    /// [`ControlThread::run`]; [`ControlHandle::withdraw_all`] sets it for a spawned thread.
    pub fn withdraw_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.withdraw)
    }

    /// Also serves `front_end` (started, in order, when the thread runs).
    pub fn serve(mut self, front_end: impl FrontEnd + 'static) -> ControlThread {
        self.front_ends.push(Box::new(front_end));
        self
    }

    /// `dataplane` answers the data-side commands (stats, flows, trace) and tells when workers
    /// took a publication (convergence). Without one those commands answer with an error.
    pub fn with_dataplane(mut self, dataplane: Box<dyn Dataplane>) -> ControlThread {
        self.dataplane = Some(dataplane);
        self
    }

    /// `source` answers the `reload` command; setting `flag` (a SIGHUP handler does) asks for
    /// the same reload, noticed within [`STOP_POLL`], its outcome going to
    /// [`ConfigSource::finished`]. Without a source `reload` answers with an error.
    pub fn with_config_source(
        mut self,
        source: Box<dyn ConfigSource>,
        flag: Arc<AtomicBool>,
    ) -> ControlThread {
        self.config_source = Some(source);
        self.reload_flag = Some(flag);
        self
    }

    /// A reader of this thread's counters, valid after it stops too.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.counters))
    }

    /// Serves on the calling thread until `stop` is set; returns the RIB and builder as they
    /// ended. `publish` gets every snapshot, in order.
    pub fn run<R: NextHopResolver>(
        self,
        rib: Rib,
        builder: Builder<R>,
        publish: impl FnMut(Snapshot),
        stop: Arc<AtomicBool>,
    ) -> Result<(Rib, Builder<R>), ControlError> {
        self.run_with(rib, builder, publish, None, stop)
    }

    /// [`ControlThread::run`] with an upkeep hook the control thread calls on every loop turn.
    pub fn run_with<R: NextHopResolver>(
        self,
        rib: Rib,
        builder: Builder<R>,
        publish: impl FnMut(Snapshot),
        upkeep: Option<Box<dyn Upkeep<R>>>,
        stop: Arc<AtomicBool>,
    ) -> Result<(Rib, Builder<R>), ControlError> {
        let ControlThread {
            config,
            front_ends,
            dataplane,
            counters,
            config_source,
            reload_flag,
            announce,
            withdraw,
        } = self;
        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        let startup = if config.startup_hold.is_zero() || rib.path_count() > 0 {
            Startup::Over
        } else {
            Startup::Waiting(config.startup_hold)
        };
        let mut control = Control {
            rib,
            builder,
            publish,
            counters: Arc::clone(&counters),
            batch_window: config.batch_window,
            startup,
            conns: BTreeMap::new(),
            feeders: BTreeMap::new(),
            pending: Vec::new(),
            batch_due: None,
            first_rx: None,
            dataplane,
            converging: Vec::new(),
            convergence: Convergence::new(),
            started: Instant::now(),
            upkeep,
            events: RouteEvents::new(Instant::now()),
            config_source,
            reload_flag,
            announcer: Announcer::new(announce.entries, Instant::now()),
            stall: StallWatch::new(announce.stall_time),
            withdraw,
            announce_due: Instant::now(),
        };
        let mut serving = Vec::with_capacity(front_ends.len());
        for front_end in front_ends {
            let link = Link {
                tx: tx.clone(),
                stop: Arc::clone(&stop),
                counters: Arc::clone(&counters),
            };
            match front_end.start(link) {
                Ok(s) => serving.push(s),
                Err(e) => {
                    // The ones already started end on the stop flag like on a normal stop.
                    stop.store(true, Ordering::Relaxed);
                    drop(tx);
                    let _ = control.shut_down(rx, serving);
                    return Err(e);
                }
            }
        }
        // Kept until the loop ends, so the channel stays open without any front end.
        control.serve(&rx, &stop);
        drop(tx);
        control.shut_down(rx, serving)?;
        Ok((control.rib, control.builder))
    }

    /// [`ControlThread::run`] on a thread of its own.
    pub fn spawn<R, P>(
        self,
        rib: Rib,
        builder: Builder<R>,
        publish: P,
    ) -> Result<ControlHandle<R>, ControlError>
    where
        R: NextHopResolver + Send + 'static,
        P: FnMut(Snapshot) + Send + 'static,
    {
        self.spawn_with(rib, builder, publish, None)
    }

    /// [`ControlThread::run_with`] on a thread of its own.
    pub fn spawn_with<R, P>(
        self,
        rib: Rib,
        builder: Builder<R>,
        publish: P,
        upkeep: Option<Box<dyn Upkeep<R>>>,
    ) -> Result<ControlHandle<R>, ControlError>
    where
        R: NextHopResolver + Send + 'static,
        P: FnMut(Snapshot) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = self.stats();
        let withdraw = self.withdraw_flag();
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("feed-control".to_owned())
            .spawn(move || self.run_with(rib, builder, publish, upkeep, flag))
            .map_err(ControlError::Spawn)?;
        Ok(ControlHandle {
            stop,
            stats,
            withdraw,
            thread: Some(thread),
        })
    }
}

type Served<R> = Result<(Rib, Builder<R>), ControlError>;

/// A control thread started by [`ControlThread::spawn`]. Dropping it stops and joins it.
#[derive(Debug)]
pub struct ControlHandle<R> {
    stop: Arc<AtomicBool>,
    stats: StatsHandle,
    withdraw: Arc<AtomicBool>,
    thread: Option<JoinHandle<Served<R>>>,
}

impl<R> ControlHandle<R> {
    /// Asks the thread to stop (it does within [`STOP_POLL`] plus the time to close
    /// connections).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Withdraws every announced prefix (within [`STOP_POLL`]); the thread keeps serving, so a
    /// stop can follow once upstream routers have moved their traffic away.
    pub fn withdraw_all(&self) {
        self.withdraw.store(true, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn stats(&self) -> FeedStats {
        self.stats.get()
    }

    /// Stops the thread and waits for it; returns the RIB and builder as they ended.
    pub fn join(mut self) -> Served<R> {
        self.stop();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| ControlError::Panicked("feed-control"))?,
            None => Err(ControlError::Panicked("feed-control")),
        }
    }
}

impl<R> Drop for ControlHandle<R> {
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            // Already failing or discarded: the result has no one to go to.
            let _ = thread.join();
        }
    }
}

/// Commands as newline-terminated lines, one write.
fn lines_of(commands: Vec<String>) -> Vec<u8> {
    let mut out = Vec::new();
    for c in commands {
        out.extend_from_slice(c.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The session a feed event is about (none for the companion's shutdown).
fn event_peer(event: &FeedEvent) -> Option<std::net::IpAddr> {
    match event {
        FeedEvent::State { neighbor, .. }
        | FeedEvent::Update { neighbor, .. }
        | FeedEvent::EndOfRib { neighbor, .. } => Some(neighbor.peer),
        FeedEvent::Shutdown => None,
    }
}

/// The start-up hold's states (see the module doc).
#[derive(Debug, Clone, Copy)]
enum Startup {
    /// No feed change yet; the hold lasts this long from the first.
    Waiting(Duration),
    /// Changes pending since the first; built at the latest at `until`.
    Holding {
        /// The first change plus the hold.
        until: Instant,
    },
    /// The first batch is built (or there is no hold): batches follow `batch_window`.
    Over,
}

struct Control<R, P> {
    rib: Rib,
    builder: Builder<R>,
    publish: P,
    counters: Arc<Counters>,
    batch_window: Duration,
    /// Where the start-up hold is (see the module doc).
    startup: Startup,
    conns: BTreeMap<u64, Conn>,
    /// Per peer, the feed connection its last line came on (see the module doc).
    feeders: BTreeMap<std::net::IpAddr, u64>,
    /// RIB changes not yet built, oldest first.
    pending: Vec<PrefixChange>,
    /// When `pending` is built and published.
    batch_due: Option<Instant>,
    /// When the oldest line behind `pending` was read.
    first_rx: Option<Instant>,
    /// The data side, for data-side commands and convergence.
    dataplane: Option<Box<dyn Dataplane>>,
    /// Publications not yet taken by every worker: (generation, oldest line's read time).
    converging: Vec<(u64, Instant)>,
    /// Update read -> every worker on the new generation.
    convergence: Convergence,
    /// When the thread started (for uptime).
    started: Instant,
    /// Called on every loop turn.
    upkeep: Option<Box<dyn Upkeep<R>>>,
    /// Recent route changes, for `route-events`.
    events: RouteEvents,
    /// Where `reload` reads the config.
    config_source: Option<Box<dyn ConfigSource>>,
    /// Set (by SIGHUP) to ask for a reload.
    reload_flag: Option<Arc<AtomicBool>>,
    /// The `[[bgp.announce]]` prefixes' states.
    announcer: Announcer,
    /// Worker progress, for the announcements.
    stall: StallWatch,
    /// Set to withdraw every announcement (stopping).
    withdraw: Arc<AtomicBool>,
    /// When the announcements are judged next.
    announce_due: Instant,
}

impl<R: NextHopResolver, P: FnMut(Snapshot)> Control<R, P> {
    fn serve(&mut self, rx: &Receiver<Msg>, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let mut wake = now + STOP_POLL;
            for due in [self.batch_due, self.rib.next_deadline()]
                .into_iter()
                .flatten()
            {
                wake = wake.min(due);
            }
            if !self.converging.is_empty() {
                wake = wake.min(now + CONVERGENCE_POLL);
            }
            if self.builder.lagging() {
                wake = wake.min(now + SPARE_POLL);
            }
            match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(msg) => {
                    self.handle(msg);
                    for msg in rx.try_iter().take(DRAIN_MAX) {
                        self.handle(msg);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The run loop holds a sender until this returns; nothing else ends the channel.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if self.rib.next_deadline().is_some_and(|d| d <= now) {
                let changes = self.rib.expire(now);
                self.add_changes(changes, now);
            }
            if self.batch_due.is_some_and(|d| d <= now) {
                self.build();
            }
            for conn in self.conns.values_mut() {
                conn.flush();
            }
            self.check_convergence();
            if self
                .reload_flag
                .as_ref()
                .is_some_and(|f| f.swap(false, Ordering::Relaxed))
            {
                self.reload(true);
            }
            if let Some(upkeep) = &mut self.upkeep
                && let Some(snapshot) = upkeep.run(&mut self.builder, Instant::now())
            {
                self.publish_snapshot(snapshot, None);
            }
            self.announce(Instant::now());
            // Last, so a batch just published above is not waited for: its workers move on
            // while the loop sleeps, and the next turn finds the spare free.
            self.builder.catch_up();
        }
        self.build();
    }

    fn handle(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Connected {
                id,
                stream,
                refresh,
            } => {
                let mut conn = Conn::new(stream);
                if !conn.send(&refresh) {
                    bump(&self.counters.dropped_writes);
                }
                let state = lines_of(self.announcer.commands());
                if !state.is_empty() && !conn.send(&state) {
                    bump(&self.counters.dropped_writes);
                }
                // Before inserting it: the new connection feeds nothing yet.
                let conns = &self.conns;
                let feeders = &self.feeders;
                self.rib.begin_refresh_if(now, |peer| {
                    feeders.get(&peer).is_none_or(|c| !conns.contains_key(c))
                });
                self.conns.insert(id, conn);
            }
            Msg::Event(event, read_at, conn) => {
                if let Some(peer) = event_peer(&event)
                    && self.feeders.get(&peer) != Some(&conn)
                {
                    self.feeders.insert(peer, conn);
                }
                let changes = self.rib.apply(&event, now);
                if !changes.is_empty() && self.first_rx.is_none() {
                    self.first_rx = Some(read_at);
                }
                self.add_changes(changes, now);
            }
            Msg::Command { request, reply } => {
                let answer = self.command(request);
                // The connection thread may have timed out and gone; nothing to tell then.
                let _ = reply.try_send(answer);
            }
            Msg::Capture { request, reply } => {
                let answer = match &self.dataplane {
                    Some(d) => d.capture(&request).map_err(|e| e.to_string()),
                    None => Err("no data plane to capture from".to_owned()),
                };
                // A connection that gave up waiting drops the stream here, which stops it.
                let _ = reply.try_send(answer);
            }
            Msg::Closed(id) => {
                self.conns.remove(&id);
            }
            Msg::Metrics { reply } => {
                // The scraping thread may have timed out and gone; nothing to tell then.
                let _ = reply.try_send(Box::new(self.metrics_snapshot()));
            }
        }
    }

    fn add_changes(&mut self, changes: Vec<PrefixChange>, now: Instant) {
        if changes.is_empty() {
            return;
        }
        self.pending.extend(changes);
        match self.startup {
            Startup::Over => {
                if self.batch_due.is_none() {
                    self.batch_due = Some(now + self.batch_window);
                }
            }
            Startup::Waiting(hold) => {
                let until = now + hold;
                self.startup = Startup::Holding { until };
                self.batch_due = Some((now + STARTUP_QUIET).min(until));
            }
            Startup::Holding { until } => {
                self.batch_due = Some((now + STARTUP_QUIET).min(until));
            }
        }
        if self.pending.len() >= MAX_BATCH_CHANGES {
            self.build();
        }
    }

    /// Judges the announcements (at most every [`ANNOUNCE_POLL`], at once when the withdraw
    /// flag is set) and writes what changed to every feed connection.
    fn announce(&mut self, now: Instant) {
        if self.announcer.is_empty() {
            return;
        }
        let shutting_down = self.withdraw.load(Ordering::Relaxed);
        if now < self.announce_due && !shutting_down {
            return;
        }
        self.announce_due = now + ANNOUNCE_POLL;
        let stalled = match &self.dataplane {
            Some(dp) => self.stall.observe(&dp.worker_polls(), now),
            None => None,
        };
        let builder = &self.builder;
        let health = Health {
            serving: |p: &ecmp_proto::Prefix| builder.serves(p),
            stalled,
            shutting_down,
        };
        let changed = lines_of(self.announcer.update(&health, now));
        if changed.is_empty() {
            return;
        }
        for conn in self.conns.values_mut() {
            if !conn.send(&changed) {
                bump(&self.counters.dropped_writes);
            }
            // At once: a withdrawal is what moves traffic away.
            conn.flush();
        }
    }

    /// Builds and publishes everything pending as one snapshot.
    fn build(&mut self) {
        self.batch_due = None;
        if self.pending.is_empty() {
            return;
        }
        let changes = coalesce(std::mem::take(&mut self.pending));
        let mut first_rx = self.first_rx.take();
        if matches!(self.startup, Startup::Holding { .. }) {
            self.startup = Startup::Over;
            // Held on purpose: not an update's convergence time.
            first_rx = None;
        }
        let published = match self.builder.apply(&changes) {
            Some(snapshot) => {
                self.publish_snapshot(snapshot, first_rx);
                self.generation()
            }
            None => 0,
        };
        self.events.feed_batch(&changes, published);
        for error in self.builder.take_errors() {
            bump(&self.counters.build_errors);
            set_text(&self.counters.last_build_error, error.to_string());
        }
        // Stored after publishing, so a reader that sees the new counts also sees the snapshot.
        let c = &self.counters;
        c.paths
            .store(self.rib.path_count() as u64, Ordering::Relaxed);
        c.prefixes
            .store(self.rib.prefix_count() as u64, Ordering::Relaxed);
    }

    /// Ends every front end and every connection; the first error wins, but every thread is
    /// joined either way.
    fn shut_down(
        &mut self,
        rx: Receiver<Msg>,
        mut serving: Vec<Box<dyn Serving>>,
    ) -> Result<(), ControlError> {
        let keep = |msg: Msg, conns: &mut BTreeMap<u64, Conn>| {
            if let Msg::Connected { id, stream, .. } = msg {
                conns.insert(id, Conn::new(stream));
            }
        };
        // An acceptor may be waiting for room in the channel: keep draining until they end.
        while serving.iter().any(|s| s.accepting()) {
            for msg in rx.try_iter() {
                keep(msg, &mut self.conns);
            }
            thread::sleep(Duration::from_millis(1));
        }
        let mut result = Ok(());
        for s in &mut serving {
            result = result.and(s.close());
        }
        for msg in rx.try_iter() {
            keep(msg, &mut self.conns);
        }
        for conn in self.conns.values() {
            // Ends the reader's blocking read; an error means the socket is closed already.
            let _ = conn.shutdown();
        }
        self.conns.clear();
        // Connection threads blocked on a full channel get an error and end.
        drop(rx);
        for s in serving {
            result = result.and(s.join());
        }
        result
    }
}
