//! The control socket front end: `ecmpctl` (or a script) sends one JSON [`Request`] per line and
//! gets one [`Reply`] line back.
//!
//! Threads: an accept thread checks each peer's `SO_PEERCRED` (same rule as the feed socket) and
//! starts one thread per connection, up to `max_clients`. A connection thread reads a line,
//! decodes it and hands the request to the control thread (the one that owns the RIB and the
//! builder, see [`crate::control`]), waits for the answer and writes it back itself.
//!
//! Invariants:
//! - Bad input changes nothing: an oversized line, a line that is not UTF-8 or not a valid
//!   request (bad JSON, JSON nested deeper than serde_json's recursion limit of 128, unknown
//!   command or field) gets an error reply from the connection thread and never reaches
//!   the control thread; a request the control thread refuses changed no state.
//! - The control thread never writes to a control client: a client that stops reading blocks
//!   only its own connection thread, whose write times out after [`WRITE_TIMEOUT`] and closes
//!   the connection.
//! - At most `max_clients` connections are served at once (see [`crate::socket`] for the limits
//!   both front ends share). One more takes the slot of the connection that has waited longest
//!   for its next request, which is closed; when every connection is busy (inside a request, a
//!   reply or a capture), the newcomer is answered with an error line and closed.
//! - A request line must end within `line_timeout` of its first byte, and one longer than
//!   [`MAX_REQUEST`] is discarded to its newline only within `DISCARD_FACTOR` times that:
//!   otherwise the client gets an error line and the connection is closed.
//! - A reply is as large as what it lists: `flows` lists at most
//!   [`MAX_FLOWS_LISTED`](ecmp_proto::ctl::MAX_FLOWS_LISTED) flows.
//!
//! Memory: a connection holds its read buffer (8 KiB), at most [`MAX_REQUEST`] bytes of a
//! request and the reply it is writing, so `max_clients * (8 KiB + 64 KiB)` (18 MiB at the
//! default 256) plus the replies being written and the threads' stacks.

use std::io::{self, BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ecmp_proto::ctl::{CAPTURE_MAX_SECONDS, CaptureEnd, CaptureLine, CaptureRequest};
use ecmp_proto::ctl::{MAX_REQUEST, Reply, Request};

use crate::control::{ControlError, FrontEnd, Link, Msg, Serving};
use crate::socket::{
    ACCEPT_POLL, Admission, DEFAULT_LINE_TIMEOUT, DEFAULT_SOCKET_MODE, DISCARD_FACTOR, PeerCheck,
    READ_POLL, Slot, Slots, SocketError, SocketFile, bind_socket,
};

/// How long a connection thread waits for the control thread's answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing one reply to a client may block before the connection is closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// While streaming a capture: how long a look at the client's side may block.
const CAPTURE_READ_POLL: Duration = Duration::from_millis(1);
/// While streaming a capture: how long to wait for frames before looking at the client again.
const CAPTURE_WAIT: Duration = Duration::from_millis(20);

/// How the control socket is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlConfig {
    /// Permission bits of the socket file.
    pub mode: u32,
    /// Peer uids allowed besides our own effective uid.
    pub allowed_uids: Vec<u32>,
    /// Peer gids allowed.
    pub allowed_gids: Vec<u32>,
    /// Connections served at once.
    pub max_clients: usize,
    /// Longest time from a request line's first byte to its newline before the connection is
    /// closed.
    pub line_timeout: Duration,
}

/// Default number of control connections served at once.
pub const DEFAULT_MAX_CLIENTS: usize = 256;

impl Default for CtlConfig {
    fn default() -> Self {
        CtlConfig {
            mode: DEFAULT_SOCKET_MODE,
            allowed_uids: Vec::new(),
            allowed_gids: Vec::new(),
            max_clients: DEFAULT_MAX_CLIENTS,
            line_timeout: DEFAULT_LINE_TIMEOUT,
        }
    }
}

/// A bound control socket, served once handed to
/// [`ControlThread::serve`](crate::control::ControlThread::serve).
#[derive(Debug)]
pub struct CtlListener {
    listener: UnixListener,
    file: SocketFile,
    config: CtlConfig,
}

impl CtlListener {
    /// Binds `path` (a stale socket there is removed; a live one or another file is an error).
    pub fn bind(path: impl Into<PathBuf>, config: CtlConfig) -> Result<Self, SocketError> {
        if config.max_clients == 0 {
            return Err(SocketError::Config("max_clients must be at least 1"));
        }
        if config.line_timeout.is_zero() {
            return Err(SocketError::Config("line_timeout must be above zero"));
        }
        let (listener, file) = bind_socket(path.into(), config.mode)?;
        Ok(CtlListener {
            listener,
            file,
            config,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl FrontEnd for CtlListener {
    fn start(self: Box<Self>, link: Link) -> Result<Box<dyn Serving>, ControlError> {
        let CtlListener {
            listener,
            file,
            config,
        } = *self;
        let slots = Slots::new(config.max_clients);
        let acceptor = CtlAcceptor {
            listener,
            peers: PeerCheck::new(&config.allowed_uids, &config.allowed_gids),
            line_timeout: config.line_timeout,
            stop: Arc::clone(&link.stop),
            tx: link.tx,
            slots: Arc::clone(&slots),
        };
        let accept = thread::Builder::new()
            .name("ctl-accept".to_owned())
            .spawn(move || acceptor.run())
            .map_err(ControlError::Spawn)?;
        Ok(Box::new(CtlServing {
            accept: Some(accept),
            threads: Vec::new(),
            slots,
            _file: file,
        }))
    }
}

/// A started control socket front end.
struct CtlServing {
    /// Returns the connection threads still running; None once joined.
    accept: Option<JoinHandle<Vec<JoinHandle<()>>>>,
    threads: Vec<JoinHandle<()>>,
    /// Live connections, shared with the acceptor and the connection threads (for shutdown).
    slots: Arc<Slots>,
    /// Removed when this is dropped, after every thread has been joined.
    _file: SocketFile,
}

impl Serving for CtlServing {
    fn accepting(&self) -> bool {
        self.accept.as_ref().is_some_and(|a| !a.is_finished())
    }

    fn close(&mut self) -> Result<(), ControlError> {
        let joined = self.accept.take().map(JoinHandle::join);
        // The acceptor ended on the stop flag; its connections end on shutdown.
        self.slots.shutdown_all();
        match joined {
            Some(Ok(threads)) => {
                self.threads = threads;
                Ok(())
            }
            Some(Err(_)) => Err(ControlError::Panicked("ctl-accept")),
            None => Ok(()),
        }
    }

    fn join(self: Box<Self>) -> Result<(), ControlError> {
        let mut panicked = false;
        for t in self.threads {
            panicked |= t.join().is_err();
        }
        if panicked {
            return Err(ControlError::Panicked("ctl-conn"));
        }
        Ok(())
    }
}

/// Runs the accept loop until `stop`; returns the connection threads still running.
struct CtlAcceptor {
    listener: UnixListener,
    peers: PeerCheck,
    line_timeout: Duration,
    stop: Arc<AtomicBool>,
    tx: SyncSender<Msg>,
    /// Live connections, each freed by its thread when it ends.
    slots: Arc<Slots>,
}

impl CtlAcceptor {
    fn run(self) -> Vec<JoinHandle<()>> {
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(ACCEPT_POLL);
                    continue;
                }
                Err(_) => {
                    thread::sleep(ACCEPT_POLL);
                    continue;
                }
            };
            threads.retain(|t| !t.is_finished());
            if !self.peers.admit(&stream) {
                continue;
            }
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let slot = match self.slots.admit(&stream) {
                Admission::Admitted { slot, .. } => slot,
                Admission::Full => {
                    let _ = write_reply(&mut stream, &Reply::error("too many control clients"));
                    continue;
                }
                Admission::Failed => continue,
            };
            let conn = CtlConn {
                stream,
                slot,
                line_timeout: self.line_timeout,
                tx: self.tx.clone(),
                stop: Arc::clone(&self.stop),
            };
            // On a spawn error the closure (and with it the slot) is dropped.
            if let Ok(t) = thread::Builder::new()
                .name("ctl-conn".to_owned())
                .spawn(move || conn.run())
            {
                threads.push(t);
            }
        }
        threads
    }
}

fn write_reply(stream: &mut UnixStream, reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

struct CtlConn {
    stream: UnixStream,
    /// Evictable while waiting for a request with nothing of it read yet.
    slot: Slot,
    line_timeout: Duration,
    tx: SyncSender<Msg>,
    stop: Arc<AtomicBool>,
}

/// One line read from a client, bounded.
enum Line {
    Text(String),
    NotUtf8(std::str::Utf8Error),
    Oversized,
    /// The line did not end within the line timeout: reply and close.
    TimedOut,
    /// An oversized line went on past `DISCARD_FACTOR * MAX_REQUEST` bytes: reply and close.
    Abandoned,
    End,
}

impl CtlConn {
    fn run(mut self) {
        let Ok(read_side) = self.stream.try_clone() else {
            return;
        };
        let _ = read_side.set_read_timeout(Some(READ_POLL));
        let mut reader = BufReader::new(read_side);
        let mut buf = Vec::new();
        loop {
            // Nothing of the next request read yet: a newcomer may take this slot meanwhile.
            if reader.buffer().is_empty() && !self.slot.evictable() {
                break;
            }
            let reply = match self.read_line(&mut reader, &mut buf) {
                Line::End => break,
                Line::TimedOut => {
                    let _ = write_reply(
                        &mut self.stream,
                        &Reply::error(format!(
                            "request not completed within {:?}: closing",
                            self.line_timeout
                        )),
                    );
                    break;
                }
                Line::Abandoned => {
                    let _ = write_reply(
                        &mut self.stream,
                        &Reply::error(format!(
                            "request longer than {MAX_REQUEST} bytes and no newline within {} \
                             bytes: closing",
                            MAX_REQUEST * DISCARD_FACTOR
                        )),
                    );
                    break;
                }
                Line::Oversized => Reply::error(format!(
                    "request longer than {MAX_REQUEST} bytes: discarded"
                )),
                Line::NotUtf8(e) => Reply::error(format!("request is not UTF-8: {e}")),
                Line::Text(text) if text.trim().is_empty() => continue,
                Line::Text(text) => match serde_json::from_str::<Request>(&text) {
                    Err(e) => Reply::error(format!("bad request: {e}")),
                    Ok(Request::Capture(request)) => {
                        // A capture owns the connection until it ends.
                        self.capture(request, &mut reader);
                        break;
                    }
                    Ok(request) => self.ask(request),
                },
            };
            if write_reply(&mut self.stream, &reply).is_err() {
                break;
            }
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Reads up to a newline, keeping at most MAX_REQUEST bytes; an oversized line is consumed
    /// to its newline and reported once (or abandoned past the discard bound). The line must end
    /// within the line timeout of its first byte.
    fn read_line(&self, reader: &mut BufReader<UnixStream>, buf: &mut Vec<u8>) -> Line {
        buf.clear();
        let mut oversized = false;
        let mut seen = 0usize;
        let mut started: Option<Instant> = None;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Line::End;
            }
            if started.is_some_and(|t| t.elapsed() >= self.line_timeout) {
                return Line::TimedOut;
            }
            let chunk = match reader.fill_buf() {
                Ok([]) => return Line::End,
                Ok(chunk) => chunk,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(_) => return Line::End,
            };
            if started.is_none() {
                // The request begins: this connection is busy until its reply is written. One
                // evicted meanwhile stops without reading it.
                if !self.slot.busy() {
                    return Line::End;
                }
                started = Some(Instant::now());
            }
            let (piece, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(nl) => (&chunk[..nl], Some(nl + 1)),
                None => (chunk, None),
            };
            if !oversized {
                if buf.len() + piece.len() > MAX_REQUEST {
                    oversized = true;
                    buf.clear();
                } else {
                    buf.extend_from_slice(piece);
                }
            }
            let used = done.unwrap_or(chunk.len());
            seen = seen.saturating_add(used);
            reader.consume(used);
            if done.is_none() && seen > MAX_REQUEST * DISCARD_FACTOR {
                return Line::Abandoned;
            }
            if done.is_some() {
                if oversized {
                    return Line::Oversized;
                }
                // Strictly: a lossy conversion could turn a malformed request into another one.
                return match std::str::from_utf8(buf) {
                    Ok(text) => Line::Text(text.to_owned()),
                    Err(e) => Line::NotUtf8(e),
                };
            }
        }
    }

    /// Starts a capture through the control thread, then streams it to the client from this
    /// thread: the control thread never waits on a capture's client.
    fn capture(&mut self, request: CaptureRequest, reader: &mut BufReader<UnixStream>) {
        let (reply_tx, reply_rx) = sync_channel(1);
        let limit = Duration::from_secs(
            request
                .seconds
                .unwrap_or(CAPTURE_MAX_SECONDS)
                .min(CAPTURE_MAX_SECONDS),
        );
        let count = request.count;
        let started = if self
            .tx
            .send(Msg::Capture {
                request,
                reply: reply_tx,
            })
            .is_err()
        {
            Err("the control thread is stopping".to_owned())
        } else {
            match reply_rx.recv_timeout(ANSWER_TIMEOUT) {
                Ok(answer) => answer,
                Err(RecvTimeoutError::Timeout) => {
                    Err("the control thread did not answer in time".to_owned())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    Err("the control thread is stopping".to_owned())
                }
            }
        };
        let (started, mut stream) = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = write_reply(&mut self.stream, &Reply::error(e));
                return;
            }
        };
        if write_reply(&mut self.stream, &Reply::ok(started)).is_err() {
            return;
        }
        // Reads only tell whether the client has closed its side; keep them short so the
        // stream keeps moving (the receive timeout does not touch the write side).
        let _ = reader.get_ref().set_read_timeout(Some(CAPTURE_READ_POLL));
        let deadline = Instant::now() + limit;
        let mut captured = 0u64;
        let mut batch = Vec::new();
        let reason = loop {
            if self.stop.load(Ordering::Relaxed) {
                break "shutdown";
            }
            if Instant::now() >= deadline {
                break "time";
            }
            stream.next(&mut batch, CAPTURE_WAIT);
            let mut out = Vec::new();
            for packet in batch.drain(..) {
                if count.is_some_and(|c| captured >= c) {
                    break;
                }
                captured += 1;
                if serde_json::to_writer(&mut out, &CaptureLine::Packet(packet)).is_err() {
                    return;
                }
                out.push(b'\n');
            }
            if !out.is_empty() && self.stream.write_all(&out).is_err() {
                return;
            }
            if count.is_some_and(|c| captured >= c) {
                break "count";
            }
            match reader.fill_buf() {
                // The client closed its side (or sent more, which a capture does not take).
                Ok(_) => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return,
            }
        };
        let end = CaptureLine::End(CaptureEnd {
            captured,
            ring_dropped: stream.ring_dropped(),
            reason: reason.to_owned(),
        });
        if let Ok(mut line) = serde_json::to_vec(&end) {
            line.push(b'\n');
            let _ = self.stream.write_all(&line);
        }
    }

    fn ask(&self, request: Request) -> Reply {
        let (reply_tx, reply_rx) = sync_channel(1);
        if self
            .tx
            .send(Msg::Command {
                request,
                reply: reply_tx,
            })
            .is_err()
        {
            return Reply::error("the control thread is stopping");
        }
        match reply_rx.recv_timeout(ANSWER_TIMEOUT) {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout) => {
                Reply::error("the control thread did not answer in time")
            }
            Err(RecvTimeoutError::Disconnected) => Reply::error("the control thread is stopping"),
        }
    }
}
