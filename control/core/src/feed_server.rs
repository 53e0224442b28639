//! The feed socket front end: the BGP companion's helper connects to a Unix socket and streams
//! ExaBGP JSON lines; they reach the control thread ([`crate::control`]) as decoded events.
//!
//! Threads:
//! - one accept thread checks each peer's `SO_PEERCRED` and starts a reader per connection, up
//!   to `max_clients` (see [`crate::socket`] for the limits both front ends share); when all are
//!   taken, a newcomer evicts the oldest connection that has not yet sent a valid line (the
//!   companion's helper has, within moments of connecting), else it is closed at once, before
//!   it is told anything or starts a refresh;
//! - each reader thread splits its connection into lines (at most `max_line` bytes), decodes
//!   them and sends the events over the control thread's bounded channel, so a feed flood slows
//!   its reader down instead of growing memory. A line that does not end within
//!   `line_timeout`, or an oversized one that goes on past `DISCARD_FACTOR` times `max_line`,
//!   closes the connection.
//!
//! Memory: a connection holds its read buffer ([`READ_CHUNK`]) and at most `max_line` bytes of
//! a partial line, so all of them together at most `max_clients * (max_line + READ_CHUNK)`
//! (at the defaults 128 * (1 MiB + 64 KiB) = 136 MiB), plus their threads' stacks.
//!
//! The control thread holds the write side of every connection: it writes the route-refresh
//! request (queued with the connection, before its reader starts) and never blocks on a client.

use std::io::{self, Read};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ecmp_proto::Family;

use crate::control::{ControlError, Counters, FrontEnd, Link, Msg, Serving, bump, set_text};
use crate::feed::{FeedError, decode_line};
use crate::socket::{
    ACCEPT_POLL, Admission, DEFAULT_LINE_TIMEOUT, DEFAULT_SOCKET_MODE, DISCARD_FACTOR, PeerCheck,
    READ_POLL, Slot, Slots, SocketError, SocketFile, bind_socket,
};

/// Bytes read from a connection per `read` call.
pub const READ_CHUNK: usize = 64 * 1024;

/// How the feed socket is set up and read.
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
    /// Connections served at once (the companion needs one; a few more for restarts and tools).
    pub max_clients: usize,
    /// Longest time from a line's first byte to its newline before the connection is closed.
    pub line_timeout: Duration,
    /// Families asked for with `announce route-refresh AFI SAFI` on every new connection.
    /// [`Rib::begin_refresh`](crate::rib::Rib::begin_refresh) marks the paths of both
    /// families, so a family left out here has its paths dropped at the refresh timeout unless
    /// the companion resends them anyway: leave one out only when the companion does not carry
    /// it.
    pub refresh_families: Vec<Family>,
}

/// Default longest feed line in bytes, newline excluded.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;
/// Default number of feed connections served at once.
pub const DEFAULT_FEED_MAX_CLIENTS: usize = 128;

impl Default for FeedServerConfig {
    fn default() -> Self {
        FeedServerConfig {
            mode: DEFAULT_SOCKET_MODE,
            allowed_uids: Vec::new(),
            allowed_gids: Vec::new(),
            max_line: DEFAULT_MAX_LINE,
            max_clients: DEFAULT_FEED_MAX_CLIENTS,
            line_timeout: DEFAULT_LINE_TIMEOUT,
            refresh_families: Family::ALL.to_vec(),
        }
    }
}

/// A bound feed socket, served once handed to
/// [`ControlThread::serve`](crate::control::ControlThread::serve). See the module doc.
#[derive(Debug)]
pub struct FeedServer {
    listener: UnixListener,
    file: SocketFile,
    config: FeedServerConfig,
}

impl FeedServer {
    /// Binds `path` (a stale socket there is removed first; a live one or a non-socket file is
    /// an error) and sets its mode.
    pub fn bind(
        path: impl Into<PathBuf>,
        config: FeedServerConfig,
    ) -> Result<FeedServer, SocketError> {
        if config.max_line == 0 {
            return Err(SocketError::Config("max_line must be at least 1"));
        }
        if config.max_clients == 0 {
            return Err(SocketError::Config("max_clients must be at least 1"));
        }
        if config.line_timeout.is_zero() {
            return Err(SocketError::Config("line_timeout must be above zero"));
        }
        let (listener, file) = bind_socket(path.into(), config.mode)?;
        Ok(FeedServer {
            listener,
            file,
            config,
        })
    }

    /// The feed socket's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl FrontEnd for FeedServer {
    fn start(self: Box<Self>, link: Link) -> Result<Box<dyn Serving>, ControlError> {
        let FeedServer {
            listener,
            file,
            config,
        } = *self;
        let acceptor = Acceptor {
            listener,
            peers: PeerCheck::new(&config.allowed_uids, &config.allowed_gids),
            max_line: config.max_line,
            line_timeout: config.line_timeout,
            slots: Slots::new(config.max_clients),
            refresh: refresh_lines(&config.refresh_families).into(),
            link,
        };
        let accept = thread::Builder::new()
            .name("feed-accept".to_owned())
            .spawn(move || acceptor.run())
            .map_err(ControlError::Spawn)?;
        Ok(Box::new(FeedServing {
            accept: Some(accept),
            readers: Vec::new(),
            _file: file,
        }))
    }
}

/// A started feed front end.
struct FeedServing {
    /// Returns the reader threads it started; None once joined.
    accept: Option<JoinHandle<Vec<JoinHandle<()>>>>,
    readers: Vec<JoinHandle<()>>,
    /// Removed when this is dropped, after every thread has been joined.
    _file: SocketFile,
}

impl Serving for FeedServing {
    fn accepting(&self) -> bool {
        self.accept.as_ref().is_some_and(|a| !a.is_finished())
    }

    fn close(&mut self) -> Result<(), ControlError> {
        // The control thread holds every connection's write side and shuts them down itself.
        match self.accept.take().map(JoinHandle::join) {
            Some(Ok(readers)) => {
                self.readers = readers;
                Ok(())
            }
            Some(Err(_)) => Err(ControlError::Panicked("feed-accept")),
            None => Ok(()),
        }
    }

    fn join(self: Box<Self>) -> Result<(), ControlError> {
        let mut panicked = false;
        for reader in self.readers {
            panicked |= reader.join().is_err();
        }
        if panicked {
            return Err(ControlError::Panicked("feed-conn"));
        }
        Ok(())
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

struct Acceptor {
    listener: UnixListener,
    peers: PeerCheck,
    max_line: usize,
    line_timeout: Duration,
    slots: Arc<Slots>,
    /// Written to every new connection by the control thread.
    refresh: Arc<[u8]>,
    link: Link,
}

impl Acceptor {
    /// Accepts until the stop flag is set; returns the reader threads it started.
    fn run(self) -> Vec<JoinHandle<()>> {
        let counters = &self.link.counters;
        let mut readers: Vec<JoinHandle<()>> = Vec::new();
        let mut next_id = 0u64;
        while !self.link.stop.load(Ordering::Relaxed) {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(ACCEPT_POLL);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    bump(&counters.accept_errors);
                    thread::sleep(ACCEPT_POLL);
                    continue;
                }
            };
            if !self.peers.admit(&stream) {
                bump(&counters.rejected_peers);
                continue;
            }
            let slot = match self.slots.admit(&stream) {
                Admission::Admitted { slot, evicted } => {
                    if evicted {
                        bump(&counters.evicted);
                    }
                    slot
                }
                Admission::Full => {
                    bump(&counters.refused_busy);
                    continue;
                }
                Admission::Failed => {
                    bump(&counters.accept_errors);
                    continue;
                }
            };
            let Ok(write_side) = stream.try_clone() else {
                bump(&counters.accept_errors);
                continue;
            };
            next_id += 1;
            let id = next_id;
            if self
                .link
                .tx
                .send(Msg::Connected {
                    id,
                    stream: write_side,
                    refresh: Arc::clone(&self.refresh),
                })
                .is_err()
            {
                break;
            }
            bump(&counters.connections);
            reap(&mut readers);
            let reader = Reader {
                stream,
                id,
                slot,
                max_line: self.max_line,
                line_timeout: self.line_timeout,
                counters: Arc::clone(counters),
                tx: self.link.tx.clone(),
            };
            match thread::Builder::new()
                .name(format!("feed-conn-{id}"))
                .spawn(move || reader.run())
            {
                Ok(handle) => readers.push(handle),
                Err(_) => {
                    // The control thread holds the write side; tell it the connection is gone.
                    bump(&counters.accept_errors);
                    if self.link.tx.send(Msg::Closed(id)).is_err() {
                        break;
                    }
                }
            }
        }
        readers
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
    /// Evictable until the first line that decodes.
    slot: Slot,
    max_line: usize,
    line_timeout: Duration,
    counters: Arc<Counters>,
    tx: SyncSender<Msg>,
}

impl Reader {
    fn run(mut self) {
        let mut splitter = LineSplitter::new(self.max_line);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut open = true;
        // When the line being read began (None between lines).
        let mut line_started: Option<Instant> = None;
        // A timed-out read only means no bytes came: the line timeout is looked at every poll.
        let polls = self.stream.set_read_timeout(Some(READ_POLL)).is_ok();
        let mut ended = false;
        while open {
            let n = match self.stream.read(&mut buf) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => n,
                Err(e)
                    if polls
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    if line_started.is_some_and(|t| t.elapsed() >= self.line_timeout) {
                        bump(&self.counters.line_timeouts);
                        break;
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let chunk = buf.get(..n).unwrap_or_default();
            let fed = splitter.feed(chunk, |piece| {
                if open {
                    open = self.handle(piece);
                }
            });
            if fed.abandon {
                bump(&self.counters.abandoned);
                break;
            }
            let now = Instant::now();
            line_started = match line_started {
                _ if !splitter.in_line() => None,
                Some(t) if !fed.ended_line => Some(t),
                _ => Some(now),
            };
            if line_started.is_some_and(|t| now.duration_since(t) >= self.line_timeout) {
                bump(&self.counters.line_timeouts);
                break;
            }
        }
        if open && ended {
            splitter.finish(|piece| {
                open = self.handle(piece);
            });
        } else {
            // Closed by us (timeout, discard bound, eviction): the client sees the end; an error
            // means it is gone already.
            let _ = self.stream.shutdown(Shutdown::Both);
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
        let decoded = decode_line(text);
        // A valid line proves a feed client: from now on it keeps its slot. One evicted
        // meanwhile stops here, before its line changes anything.
        if decoded.is_ok() && !self.slot.busy() {
            return false;
        }
        match decoded {
            Ok(Some(event)) => self
                .tx
                .send(Msg::Event(event, Instant::now(), self.id))
                .is_ok(),
            Ok(None) => {
                bump(&self.counters.ignored);
                true
            }
            Err(FeedError::NotJson) => {
                bump(&self.counters.not_json);
                // ExaBGP answers every command read from its API process with `done` or
                // `error`; an `error` is the one sign that an announcement went nowhere.
                if text == "error" {
                    bump(&self.counters.command_errors);
                }
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

/// What one [`LineSplitter::feed`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Fed {
    /// At least one line ended (oversized or not).
    ended_line: bool,
    /// The oversized line being discarded passed `DISCARD_FACTOR * max_line` bytes: close.
    abandon: bool,
}

/// Splits a byte stream into lines while holding at most `max_line` bytes of any line.
#[derive(Debug)]
struct LineSplitter {
    max_line: usize,
    partial: Vec<u8>,
    /// Inside an oversized line: drop bytes up to the next newline.
    discarding: bool,
    /// Bytes of the oversized line seen so far.
    discarded: usize,
}

impl LineSplitter {
    fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line,
            partial: Vec::new(),
            discarding: false,
            discarded: 0,
        }
    }

    /// Inside a line: some of it was fed but not its newline.
    fn in_line(&self) -> bool {
        self.discarding || !self.partial.is_empty()
    }

    fn feed(&mut self, mut bytes: &[u8], mut out: impl FnMut(Piece<'_>)) -> Fed {
        let mut fed = Fed::default();
        let discard_limit = self.max_line.saturating_mul(DISCARD_FACTOR);
        while !bytes.is_empty() {
            let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
                if self.discarding {
                    self.discarded = self.discarded.saturating_add(bytes.len());
                } else if self.partial.len() + bytes.len() > self.max_line {
                    self.discarding = true;
                    self.discarded = self.partial.len() + bytes.len();
                    self.partial.clear();
                    out(Piece::Oversized);
                } else {
                    self.partial.extend_from_slice(bytes);
                }
                fed.abandon = self.discarding && self.discarded > discard_limit;
                return fed;
            };
            let (head, tail) = bytes.split_at(nl);
            bytes = tail.get(1..).unwrap_or_default();
            fed.ended_line = true;
            if self.discarding {
                self.discarding = false;
                self.discarded = 0;
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
        fed
    }

    /// End of stream: a last line without its newline is still a line.
    fn finish(&mut self, mut out: impl FnMut(Piece<'_>)) {
        if !self.discarding && !self.partial.is_empty() {
            out(Piece::Line(&self.partial));
        }
        self.partial.clear();
        self.discarding = false;
        self.discarded = 0;
    }
}

#[cfg(test)]
mod tests;
