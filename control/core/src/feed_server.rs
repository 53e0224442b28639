//! The feed socket server: the BGP companion's helper connects to a Unix socket and streams
//! ExaBGP JSON lines; the RIB and builder turn them into published snapshots.
//!
//! Threads:
//! - the control thread ([`FeedServer::run`], or the thread [`FeedServer::spawn`] starts) owns the
//!   [`Rib`], the [`Builder`] and the write side of every connection; nothing else touches them;
//! - one accept thread checks each peer's `SO_PEERCRED` and starts a reader per connection;
//! - each reader thread splits its connection into lines (at most `max_line` bytes), decodes
//!   them and sends the events over one bounded channel, so a feed flood slows its reader down
//!   instead of growing memory.
//!
//! Invariants:
//! - A connection's `Connected` message is queued before its reader starts, so the control thread
//!   writes the route-refresh request and calls [`Rib::begin_refresh_all`] before it applies any
//!   line of that connection.
//! - RIB changes are collected from the first change after a publish until `batch_window` has
//!   passed, then merged with [`coalesce`] and applied as one [`Builder::apply`]: a burst of lines
//!   becomes one snapshot, and no state between two lines of one batch is ever published. The
//!   window is counted from the first change, so a steady stream still publishes every window.
//! - The control thread never blocks on a client: writes are `MSG_DONTWAIT`; what the socket
//!   does not take waits in a bounded per-connection outbox (whole lines only are dropped, and
//!   counted, when it is full), retried on every loop turn.
//! - Stopping: the control thread notices the stop flag within [`STOP_POLL`], shuts every
//!   connection down (which ends the readers' blocking reads), joins every thread it started and
//!   removes the socket file, if the file is still the one it bound.
//! - Events read after the stop flag was seen are not applied; changes already applied to the RIB
//!   are published before [`FeedServer::run`] returns.
//!
//! The socket's mode is set right after `bind`; a peer that connects in between still has to
//! pass the `SO_PEERCRED` check, which is the real gate.

use std::collections::BTreeMap;
use std::fs::{self, Permissions};
use std::io::{self, Read};
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ecmp_proto::{Family, FeedEvent};
use ecmp_tables::Snapshot;
use rustix::io::Errno;
use rustix::net::SendFlags;

use ecmp_proto::ctl::{Reply, Request};

use crate::builder::{Builder, NextHopResolver, coalesce};
use crate::ctl_server::{CtlAcceptor, CtlListener, Dataplane, Upkeep};
use crate::feed::{FeedError, decode_line};
use crate::rib::{PrefixChange, Rib};

/// How often the accept thread looks for new connections and the stop flag when idle.
pub const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// The longest the control thread waits before looking at the stop flag again.
pub const STOP_POLL: Duration = Duration::from_millis(20);
/// Bytes a connection's outbox holds for a client that is not reading; lines beyond are dropped.
pub const OUTBOX_MAX: usize = 64 * 1024;
/// Default permission bits of the feed and control socket files (owner and group read/write).
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;
/// Default longest feed line in bytes, newline excluded.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;
/// Default time changes are collected before one snapshot is built (zero: see
/// [`FeedServerConfig::batch_window`]).
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::ZERO;
/// Messages queued from the readers to the control thread before readers wait.
const CHANNEL_DEPTH: usize = 4096;
/// Bytes read from a connection per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// Messages the control thread takes from the channel before it looks at its timers again.
const DRAIN_MAX: usize = 1024;
/// How often the control thread looks whether workers took a publication, while one is pending.
const CONVERGENCE_POLL: Duration = Duration::from_micros(100);

/// Why the feed server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum FeedServerError {
    /// A configuration value is out of range.
    #[error("invalid feed server config: {0}")]
    Config(&'static str),
    /// Another server answers on the socket path; it is left alone.
    #[error("{0}: a server is already listening")]
    InUse(PathBuf),
    /// The path exists and is not a socket; it is left alone.
    #[error("{0}: exists and is not a socket")]
    NotASocket(PathBuf),
    /// A filesystem or socket call on the path failed (stat, remove, bind, chmod, set flags).
    #[error("{path}: {op}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A server thread could not be started.
    #[error("starting a feed server thread: {0}")]
    Spawn(io::Error),
    /// A server thread panicked.
    #[error("feed server thread `{0}` panicked")]
    Panicked(&'static str),
}

/// How the feed socket is set up and fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedServerConfig {
    /// Permission bits of the socket file.
    pub mode: u32,
    /// Peer uids allowed besides our own effective uid.
    pub allowed_uids: Vec<u32>,
    /// Peer gids allowed. Both lists empty: only our own effective uid may connect.
    pub allowed_gids: Vec<u32>,
    /// Longest accepted line in bytes, newline excluded; longer lines are discarded and counted.
    pub max_line: usize,
    /// How long changes are collected before one snapshot is built from all of them. Zero (the
    /// default) still batches: the control thread applies every line already queued (up to
    /// 1024) before it builds, so a burst becomes few snapshots while a lone update is published
    /// at once (the convergence target is 1 ms; see benches/RESULTS.md).
    pub batch_window: Duration,
    /// Families asked for with `announce route-refresh AFI SAFI` on every new connection.
    /// [`Rib::begin_refresh_all`] marks the paths of both families, so a family left out here has
    /// its paths dropped at the refresh timeout unless the companion resends them anyway: leave
    /// one out only when the companion does not carry it.
    pub refresh_families: Vec<Family>,
}

impl Default for FeedServerConfig {
    fn default() -> Self {
        FeedServerConfig {
            mode: DEFAULT_SOCKET_MODE,
            allowed_uids: Vec::new(),
            allowed_gids: Vec::new(),
            max_line: DEFAULT_MAX_LINE,
            batch_window: DEFAULT_BATCH_WINDOW,
            refresh_families: Family::ALL.to_vec(),
        }
    }
}

/// Counters of one server, as read by [`StatsHandle::get`].
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
    /// Lines that are not JSON (ExaBGP's `done`, garbage); skipped.
    pub not_json: u64,
    /// JSON lines with nothing for the control plane (other message types, other families).
    pub ignored: u64,
    /// Lines of a known type that failed to decode; skipped whole.
    pub decode_errors: u64,
    /// The latest decode error.
    pub last_error: Option<String>,
    /// Lines longer than `max_line`; discarded up to their newline.
    pub oversized: u64,
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
struct Counters {
    connections: AtomicU64,
    rejected_peers: AtomicU64,
    accept_errors: AtomicU64,
    lines: AtomicU64,
    not_json: AtomicU64,
    ignored: AtomicU64,
    decode_errors: AtomicU64,
    oversized: AtomicU64,
    dropped_writes: AtomicU64,
    publishes: AtomicU64,
    build_errors: AtomicU64,
    paths: AtomicU64,
    prefixes: AtomicU64,
    last_error: Mutex<Option<String>>,
    last_build_error: Mutex<Option<String>>,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn set_text(slot: &Mutex<Option<String>>, text: String) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
}

fn get_text(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Reads a server's counters from any thread.
#[derive(Debug, Clone)]
pub struct StatsHandle(Arc<Counters>);

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
            ignored: load(&c.ignored),
            decode_errors: load(&c.decode_errors),
            last_error: get_text(&c.last_error),
            oversized: load(&c.oversized),
            dropped_writes: load(&c.dropped_writes),
            publishes: load(&c.publishes),
            build_errors: load(&c.build_errors),
            last_build_error: get_text(&c.last_build_error),
            paths: load(&c.paths),
            prefixes: load(&c.prefixes),
        }
    }
}

/// Whether a peer with these credentials may feed us.
fn peer_allowed(uid: u32, gid: u32, own_uid: u32, config: &FeedServerConfig) -> bool {
    uid == own_uid || config.allowed_uids.contains(&uid) || config.allowed_gids.contains(&gid)
}

/// The socket file we bound; removed on drop unless another file has replaced it since.
#[derive(Debug)]
pub(crate) struct SocketFile {
    pub(crate) path: PathBuf,
    dev_ino: Option<(u64, u64)>,
}

/// Binds a Unix stream socket at `path` (a stale socket there is removed first; a live one or a
/// non-socket file is an error), sets its mode and makes it non-blocking.
pub(crate) fn bind_socket(
    path: PathBuf,
    mode: u32,
) -> Result<(UnixListener, SocketFile), FeedServerError> {
    if mode & !0o777 != 0 {
        return Err(FeedServerError::Config("mode has bits beyond 0o777"));
    }
    let io_err = |op: &'static str| {
        let path = path.clone();
        move |source| FeedServerError::Io { path, op, source }
    };
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(&path).is_ok() {
                return Err(FeedServerError::InUse(path));
            }
            fs::remove_file(&path).map_err(io_err("remove stale socket"))?;
        }
        Ok(_) => return Err(FeedServerError::NotASocket(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("stat")(e)),
    }
    let listener = UnixListener::bind(&path).map_err(io_err("bind"))?;
    let dev_ino = fs::symlink_metadata(&path)
        .map(|m| (m.dev(), m.ino()))
        .map_err(io_err("stat"))?;
    let file = SocketFile {
        path: path.clone(),
        dev_ino: Some(dev_ino),
    };
    fs::set_permissions(&path, Permissions::from_mode(mode)).map_err(io_err("chmod"))?;
    // Non-blocking so the accept thread can look at the stop flag between connections.
    listener
        .set_nonblocking(true)
        .map_err(io_err("set non-blocking"))?;
    Ok((listener, file))
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let current = fs::symlink_metadata(&self.path).map(|m| (m.dev(), m.ino()));
        if current.ok() == self.dev_ino {
            // Nothing to do on failure: the next bind removes a stale socket anyway.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A bound feed socket, not yet serving. See the module doc.
pub struct FeedServer {
    /// None: control socket only (no BGP feed configured).
    listener: Option<UnixListener>,
    file: Option<SocketFile>,
    config: FeedServerConfig,
    counters: Arc<Counters>,
    ctl: Option<CtlListener>,
    dataplane: Option<Box<dyn Dataplane>>,
}

impl std::fmt::Debug for FeedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedServer")
            .field("path", &self.file.as_ref().map(|f| f.path.clone()))
            .field("ctl", &self.ctl.as_ref().map(|c| c.path().to_owned()))
            .field("dataplane", &self.dataplane.is_some())
            .finish_non_exhaustive()
    }
}

impl FeedServer {
    /// Binds `path` (a stale socket there is removed first; a live one or a non-socket file is
    /// an error) and sets its mode.
    pub fn bind(
        path: impl Into<PathBuf>,
        config: FeedServerConfig,
    ) -> Result<FeedServer, FeedServerError> {
        if config.max_line == 0 {
            return Err(FeedServerError::Config("max_line must be at least 1"));
        }
        let (listener, file) = bind_socket(path.into(), config.mode)?;
        Ok(FeedServer {
            listener: Some(listener),
            file: Some(file),
            config,
            counters: Arc::default(),
            ctl: None,
            dataplane: None,
        })
    }

    /// A server without a feed socket: the control thread serves only the control socket
    /// ([`FeedServer::with_control`]) and the upkeep hook, for a forwarder with static routes.
    pub fn without_feed() -> FeedServer {
        FeedServer {
            listener: None,
            file: None,
            config: FeedServerConfig::default(),
            counters: Arc::default(),
            ctl: None,
            dataplane: None,
        }
    }

    /// Also serves the control socket `ctl` on the control thread; `dataplane` answers the
    /// data-side commands (stats, flows, trace) and tells when workers took a publication
    /// (convergence). Without a dataplane those commands answer with an error.
    pub fn with_control(
        mut self,
        ctl: CtlListener,
        dataplane: Option<Box<dyn Dataplane>>,
    ) -> FeedServer {
        self.ctl = Some(ctl);
        self.dataplane = dataplane;
        self
    }

    /// The feed socket's path (None without a feed socket).
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// A reader of this server's counters, valid after it stops too.
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
    ) -> Result<(Rib, Builder<R>), FeedServerError> {
        self.run_with(rib, builder, publish, None, stop)
    }

    /// [`FeedServer::run`] with an upkeep hook the control thread calls on every loop turn.
    pub fn run_with<R: NextHopResolver>(
        self,
        rib: Rib,
        builder: Builder<R>,
        publish: impl FnMut(Snapshot),
        upkeep: Option<Box<dyn Upkeep<R>>>,
        stop: Arc<AtomicBool>,
    ) -> Result<(Rib, Builder<R>), FeedServerError> {
        let FeedServer {
            listener,
            file,
            config,
            counters,
            ctl,
            dataplane,
        } = self;
        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        let own_uid = rustix::process::geteuid().as_raw();
        let ctl_live = Arc::new(Mutex::new(Vec::new()));
        let (ctl_accept, ctl_file) = match ctl {
            Some(CtlListener {
                listener,
                file,
                config,
            }) => {
                let acceptor = CtlAcceptor {
                    listener,
                    config,
                    stop: Arc::clone(&stop),
                    tx: tx.clone(),
                    own_uid,
                    live: Arc::clone(&ctl_live),
                };
                let handle = thread::Builder::new()
                    .name("ctl-accept".to_owned())
                    .spawn(move || acceptor.run())
                    .map_err(FeedServerError::Spawn)?;
                (Some(handle), Some(file))
            }
            None => (None, None),
        };
        let acceptor = Acceptor {
            listener,
            config: config.clone(),
            counters: Arc::clone(&counters),
            stop: Arc::clone(&stop),
            tx,
            own_uid,
        };
        let accept = thread::Builder::new()
            .name("feed-accept".to_owned())
            .spawn(move || acceptor.run())
            .map_err(FeedServerError::Spawn)?;
        let mut control = Control {
            rib,
            builder,
            publish,
            counters,
            refresh: refresh_lines(&config.refresh_families),
            batch_window: config.batch_window,
            conns: BTreeMap::new(),
            pending: Vec::new(),
            batch_due: None,
            first_rx: None,
            dataplane,
            converging: Vec::new(),
            convergence: Convergence::new(),
            started: Instant::now(),
            upkeep,
        };
        control.serve(&rx, &stop);
        // The control acceptor ends on the stop flag; its connections end on shutdown.
        let ctl_threads = ctl_accept.map(|a| a.join());
        for stream in ctl_live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let readers = control.shut_down(rx, accept);
        drop(file);
        drop(ctl_file);
        let readers = readers?;
        let mut panicked = false;
        for reader in readers {
            panicked |= reader.join().is_err();
        }
        match ctl_threads {
            Some(Ok(threads)) => {
                for t in threads {
                    panicked |= t.join().is_err();
                }
            }
            Some(Err(_)) => panicked = true,
            None => {}
        }
        if panicked {
            return Err(FeedServerError::Panicked("feed-conn"));
        }
        Ok((control.rib, control.builder))
    }

    /// [`FeedServer::run`] on a thread of its own.
    pub fn spawn<R, P>(
        self,
        rib: Rib,
        builder: Builder<R>,
        publish: P,
    ) -> Result<FeedServerHandle<R>, FeedServerError>
    where
        R: NextHopResolver + Send + 'static,
        P: FnMut(Snapshot) + Send + 'static,
    {
        self.spawn_with(rib, builder, publish, None)
    }

    /// [`FeedServer::run_with`] on a thread of its own.
    pub fn spawn_with<R, P>(
        self,
        rib: Rib,
        builder: Builder<R>,
        publish: P,
        upkeep: Option<Box<dyn Upkeep<R>>>,
    ) -> Result<FeedServerHandle<R>, FeedServerError>
    where
        R: NextHopResolver + Send + 'static,
        P: FnMut(Snapshot) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = self.stats();
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("feed-control".to_owned())
            .spawn(move || self.run_with(rib, builder, publish, upkeep, flag))
            .map_err(FeedServerError::Spawn)?;
        Ok(FeedServerHandle {
            stop,
            stats,
            thread: Some(thread),
        })
    }
}

type Served<R> = Result<(Rib, Builder<R>), FeedServerError>;

/// A server started by [`FeedServer::spawn`]. Dropping it stops and joins it.
#[derive(Debug)]
pub struct FeedServerHandle<R> {
    stop: Arc<AtomicBool>,
    stats: StatsHandle,
    thread: Option<JoinHandle<Served<R>>>,
}

impl<R> FeedServerHandle<R> {
    /// Asks the server to stop (it does within [`STOP_POLL`] plus the time to close connections).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The server's counters now.
    pub fn stats(&self) -> FeedStats {
        self.stats.get()
    }

    /// Stops the server and waits for it; returns the RIB and builder as they ended.
    pub fn join(mut self) -> Served<R> {
        self.stop();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| FeedServerError::Panicked("feed-control"))?,
            None => Err(FeedServerError::Panicked("feed-control")),
        }
    }
}

impl<R> Drop for FeedServerHandle<R> {
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            // Already failing or discarded: the result has no one to go to.
            let _ = thread.join();
        }
    }
}

fn refresh_lines(families: &[Family]) -> Vec<u8> {
    let mut out = Vec::new();
    for family in families {
        let name = match family {
            Family::Ipv4Unicast => "ipv4 unicast",
            Family::Ipv6Unicast => "ipv6 unicast",
        };
        out.extend_from_slice(b"announce route-refresh ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out
}

/// What readers and the acceptors tell the control thread.
pub(crate) enum Msg {
    /// A new connection; the stream is the control thread's write side.
    Connected { id: u64, stream: UnixStream },
    /// A decoded feed line, and when its read completed (convergence is measured from there).
    Event(FeedEvent, Instant),
    /// A control socket request; the answer goes back on `reply`.
    Command {
        /// The request.
        request: Request,
        /// Where the answer goes (the connection thread waits on it).
        reply: SyncSender<Reply>,
    },
    /// The connection's reader ended.
    Closed(u64),
}

struct Acceptor {
    /// None: no feed socket; the thread only waits for the stop flag.
    listener: Option<UnixListener>,
    config: FeedServerConfig,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    tx: SyncSender<Msg>,
    own_uid: u32,
}

impl Acceptor {
    /// Accepts until the stop flag is set; returns the reader threads it started.
    fn run(self) -> Vec<JoinHandle<()>> {
        let mut readers: Vec<JoinHandle<()>> = Vec::new();
        let mut next_id = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let Some(listener) = &self.listener else {
                thread::sleep(ACCEPT_POLL);
                continue;
            };
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(ACCEPT_POLL);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    bump(&self.counters.accept_errors);
                    thread::sleep(ACCEPT_POLL);
                    continue;
                }
            };
            if !self.admit(&stream) {
                bump(&self.counters.rejected_peers);
                continue;
            }
            let Ok(write_side) = stream.try_clone() else {
                bump(&self.counters.accept_errors);
                continue;
            };
            next_id += 1;
            let id = next_id;
            if self
                .tx
                .send(Msg::Connected {
                    id,
                    stream: write_side,
                })
                .is_err()
            {
                break;
            }
            bump(&self.counters.connections);
            reap(&mut readers);
            let reader = Reader {
                stream,
                id,
                max_line: self.config.max_line,
                counters: Arc::clone(&self.counters),
                tx: self.tx.clone(),
            };
            match thread::Builder::new()
                .name(format!("feed-conn-{id}"))
                .spawn(move || reader.run())
            {
                Ok(handle) => readers.push(handle),
                Err(_) => {
                    // The control thread holds the write side; tell it the connection is gone.
                    bump(&self.counters.accept_errors);
                    if self.tx.send(Msg::Closed(id)).is_err() {
                        break;
                    }
                }
            }
        }
        readers
    }

    fn admit(&self, stream: &UnixStream) -> bool {
        // Accepted sockets do not inherit O_NONBLOCK on Linux; set it anyway so the readers'
        // blocking reads never depend on that.
        if stream.set_nonblocking(false).is_err() {
            return false;
        }
        match rustix::net::sockopt::socket_peercred(stream) {
            Ok(cred) => peer_allowed(
                cred.uid.as_raw(),
                cred.gid.as_raw(),
                self.own_uid,
                &self.config,
            ),
            Err(_) => false,
        }
    }
}

/// Joins the readers whose connections ended, so finished threads do not pile up.
fn reap(readers: &mut Vec<JoinHandle<()>>) {
    let (done, running): (Vec<_>, Vec<_>) = readers.drain(..).partition(|r| r.is_finished());
    *readers = running;
    for reader in done {
        // Finished, so this returns at once; a reader that panicked has closed its connection
        // already and there is no one to report it to.
        let _ = reader.join();
    }
}

struct Reader {
    stream: UnixStream,
    id: u64,
    max_line: usize,
    counters: Arc<Counters>,
    tx: SyncSender<Msg>,
}

impl Reader {
    fn run(mut self) {
        let mut splitter = LineSplitter::new(self.max_line);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut open = true;
        while open {
            let n = match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let chunk = buf.get(..n).unwrap_or_default();
            splitter.feed(chunk, |piece| {
                if open {
                    open = self.handle(piece);
                }
            });
        }
        if open {
            splitter.finish(|piece| {
                open = self.handle(piece);
            });
        }
        // The control thread may already be gone when stopping; nothing left to tell then.
        let _ = self.tx.send(Msg::Closed(self.id));
    }

    /// Decodes and forwards one piece; `false` when the control thread is gone.
    fn handle(&self, piece: Piece<'_>) -> bool {
        let line = match piece {
            Piece::Oversized => {
                bump(&self.counters.oversized);
                return true;
            }
            Piece::Line(line) => line,
        };
        bump(&self.counters.lines);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(text) = std::str::from_utf8(line) else {
            bump(&self.counters.not_json);
            return true;
        };
        match decode_line(text) {
            Ok(Some(event)) => self.tx.send(Msg::Event(event, Instant::now())).is_ok(),
            Ok(None) => {
                bump(&self.counters.ignored);
                true
            }
            Err(FeedError::NotJson) => {
                bump(&self.counters.not_json);
                true
            }
            Err(e) => {
                bump(&self.counters.decode_errors);
                set_text(&self.counters.last_error, e.to_string());
                true
            }
        }
    }
}

/// One unit of input after line splitting.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    /// A line (newline excluded) of at most `max_line` bytes.
    Line(&'a [u8]),
    /// A line longer than `max_line`, reported once, when it passes the limit.
    Oversized,
}

/// Splits a byte stream into lines while holding at most `max_line` bytes of any line.
#[derive(Debug)]
struct LineSplitter {
    max_line: usize,
    partial: Vec<u8>,
    /// Inside an oversized line: drop bytes up to the next newline.
    discarding: bool,
}

impl LineSplitter {
    fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line,
            partial: Vec::new(),
            discarding: false,
        }
    }

    fn feed(&mut self, mut bytes: &[u8], mut out: impl FnMut(Piece<'_>)) {
        while !bytes.is_empty() {
            let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
                if !self.discarding {
                    if self.partial.len() + bytes.len() > self.max_line {
                        self.discarding = true;
                        self.partial.clear();
                        out(Piece::Oversized);
                    } else {
                        self.partial.extend_from_slice(bytes);
                    }
                }
                return;
            };
            let (head, tail) = bytes.split_at(nl);
            bytes = tail.get(1..).unwrap_or_default();
            if self.discarding {
                self.discarding = false;
            } else if self.partial.len() + head.len() > self.max_line {
                self.partial.clear();
                out(Piece::Oversized);
            } else if self.partial.is_empty() {
                out(Piece::Line(head));
            } else {
                self.partial.extend_from_slice(head);
                out(Piece::Line(&self.partial));
                self.partial.clear();
            }
        }
    }

    /// End of stream: a last line without its newline is still a line.
    fn finish(&mut self, mut out: impl FnMut(Piece<'_>)) {
        if !self.discarding && !self.partial.is_empty() {
            out(Piece::Line(&self.partial));
        }
        self.partial.clear();
        self.discarding = false;
    }
}

/// The control thread's side of one connection.
#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    /// Bytes written but not yet taken by the socket; always whole lines but for a sent head.
    outbox: Vec<u8>,
}

impl Conn {
    fn new(stream: UnixStream) -> Self {
        Conn {
            stream,
            outbox: Vec::new(),
        }
    }

    /// Queues `lines` (whole lines) and sends what the socket takes now; returns false (and
    /// queues nothing) when the outbox has no room for them.
    fn send(&mut self, lines: &[u8]) -> bool {
        if self.outbox.len() + lines.len() > OUTBOX_MAX {
            return false;
        }
        self.outbox.extend_from_slice(lines);
        self.flush();
        true
    }

    /// Sends what the socket takes without blocking. A broken socket discards the outbox (its
    /// reader sees the end and reports the connection closed).
    fn flush(&mut self) {
        while !self.outbox.is_empty() {
            match rustix::net::send(
                &self.stream,
                &self.outbox,
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(0) => return,
                Ok(n) => {
                    self.outbox.drain(..n.min(self.outbox.len()));
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(_) => {
                    self.outbox.clear();
                    return;
                }
            }
        }
    }
}

struct Control<R, P> {
    rib: Rib,
    builder: Builder<R>,
    publish: P,
    counters: Arc<Counters>,
    refresh: Vec<u8>,
    batch_window: Duration,
    conns: BTreeMap<u64, Conn>,
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
    /// When the server started (for uptime).
    started: Instant,
    /// Called on every loop turn.
    upkeep: Option<Box<dyn Upkeep<R>>>,
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
            match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(msg) => {
                    self.handle(msg);
                    for msg in rx.try_iter().take(DRAIN_MAX) {
                        self.handle(msg);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Every sender is gone: the acceptor ended, which it does only once stopping.
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
            if let Some(upkeep) = &mut self.upkeep
                && let Some(snapshot) = upkeep.run(&mut self.builder, Instant::now())
            {
                self.publish_snapshot(snapshot, None);
            }
        }
        self.build();
    }

    fn handle(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Connected { id, stream } => {
                let mut conn = Conn::new(stream);
                if !conn.send(&self.refresh) {
                    bump(&self.counters.dropped_writes);
                }
                self.conns.insert(id, conn);
                self.rib.begin_refresh_all(now);
            }
            Msg::Event(event, read_at) => {
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
            Msg::Closed(id) => {
                self.conns.remove(&id);
            }
        }
    }

    fn add_changes(&mut self, changes: Vec<PrefixChange>, now: Instant) {
        if changes.is_empty() {
            return;
        }
        self.pending.extend(changes);
        if self.batch_due.is_none() {
            self.batch_due = Some(now + self.batch_window);
        }
    }

    /// Builds and publishes everything pending as one snapshot.
    fn build(&mut self) {
        self.batch_due = None;
        if self.pending.is_empty() {
            return;
        }
        let changes = coalesce(std::mem::take(&mut self.pending));
        let first_rx = self.first_rx.take();
        if let Some(snapshot) = self.builder.apply(&changes) {
            self.publish_snapshot(snapshot, first_rx);
        }
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

    /// Ends the acceptor and every connection; returns the reader threads to join.
    fn shut_down(
        &mut self,
        rx: Receiver<Msg>,
        accept: JoinHandle<Vec<JoinHandle<()>>>,
    ) -> Result<Vec<JoinHandle<()>>, FeedServerError> {
        let keep = |msg: Msg, conns: &mut BTreeMap<u64, Conn>| {
            if let Msg::Connected { id, stream } = msg {
                conns.insert(id, Conn::new(stream));
            }
        };
        // The acceptor may be waiting for room in the channel: keep draining until it ends.
        while !accept.is_finished() {
            for msg in rx.try_iter() {
                keep(msg, &mut self.conns);
            }
            thread::sleep(Duration::from_millis(1));
        }
        let readers = accept.join();
        for msg in rx.try_iter() {
            keep(msg, &mut self.conns);
        }
        for conn in self.conns.values() {
            // Ends the reader's blocking read; an error means the socket is closed already.
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
        self.conns.clear();
        // Readers blocked on a full channel get an error and end.
        drop(rx);
        readers.map_err(|_| FeedServerError::Panicked("feed-accept"))
    }
}

mod commands;
mod convergence;
#[cfg(test)]
mod tests;

use convergence::Convergence;
