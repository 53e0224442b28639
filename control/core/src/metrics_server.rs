//! The `/metrics` front end: a Prometheus server scrapes `GET /metrics` over TCP and gets the
//! control thread's [`MetricsSnapshot`] rendered by [`crate::metrics::render`].
//!
//! Threads: one, which accepts and serves connections one at a time. A scrape asks the control
//! thread for a snapshot through the same bounded channel the other front ends use and renders
//! it on this thread, so the control thread only gathers numbers; the workers are never asked
//! anything (their counters are read from what they publish).
//!
//! Why a std `TcpListener` rather than an HTTP crate: the server answers one request shape and
//! must bound everything a client can make it do, which is a few lines here: a request head of at
//! most [`MAX_HEAD`] bytes, read within [`REQUEST_TIMEOUT`], one request per connection
//! (`Connection: close`), writes bounded by [`WRITE_TIMEOUT`]. `GET /metrics` (any query string)
//! is answered, other paths get 404, other methods 405, malformed or oversized heads 400/431.
//! Serving one connection at a time bounds the threads and memory a client can use; a stalled
//! client delays the next scrape by at most those timeouts, never the control thread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::control::{ControlError, FrontEnd, Link, Msg, Serving};
use crate::metrics::{MetricsError, render};
use crate::socket::ACCEPT_POLL;

/// Longest request head read; a longer one is answered 431 and the connection closed.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its whole request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long writing one response may block before the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a scrape waits for the control thread's snapshot.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The classic text exposition's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A bound metrics listener, served once handed to
/// [`ControlThread::serve`](crate::control::ControlThread::serve).
#[derive(Debug)]
pub struct MetricsListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsListener {
    /// Binds `addr` (port 0 picks a free port: see [`MetricsListener::local_addr`]).
    pub fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let bind = || {
            let listener = TcpListener::bind(addr)?;
            // Accept polls, so the thread notices the stop flag.
            listener.set_nonblocking(true)?;
            let local = listener.local_addr()?;
            Ok((listener, local))
        };
        let (listener, addr) = bind().map_err(|source| MetricsError::Bind { addr, source })?;
        Ok(MetricsListener { listener, addr })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl FrontEnd for MetricsListener {
    fn start(self: Box<Self>, link: Link) -> Result<Box<dyn Serving>, ControlError> {
        let server = Server {
            listener: self.listener,
            tx: link.tx,
            stop: link.stop,
        };
        let thread = thread::Builder::new()
            .name("metrics-http".to_owned())
            .spawn(move || server.run())
            .map_err(ControlError::Spawn)?;
        Ok(Box::new(MetricsServing {
            thread: Some(thread),
        }))
    }
}

struct MetricsServing {
    thread: Option<JoinHandle<()>>,
}

impl Serving for MetricsServing {
    fn accepting(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn close(&mut self) -> Result<(), ControlError> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(ControlError::Panicked("metrics-http")),
            _ => Ok(()),
        }
    }

    fn join(self: Box<Self>) -> Result<(), ControlError> {
        Ok(())
    }
}

struct Server {
    listener: TcpListener,
    tx: SyncSender<Msg>,
    stop: Arc<AtomicBool>,
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Metrics,
    NotFound,
    BadMethod,
    Malformed,
    TooLarge,
}

impl Server {
    fn run(self) {
        while !self.stop.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((stream, _)) => self.serve(stream),
                // WouldBlock, or a failed accept (out of descriptors): look again later.
                Err(_) => thread::sleep(ACCEPT_POLL),
            }
        }
    }

    fn serve(&self, mut stream: TcpStream) {
        // Accepted sockets may inherit non-blocking mode; the timeouts below bound the reads.
        if stream.set_nonblocking(false).is_err()
            || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
        {
            return;
        }
        let response = match read_head(&mut stream) {
            Asked::Metrics => match self.scrape() {
                Ok(body) => response("200 OK", CONTENT_TYPE, &body),
                Err(e) => response("500 Internal Server Error", "text/plain", &e),
            },
            Asked::NotFound => response("404 Not Found", "text/plain", "try /metrics\n"),
            Asked::BadMethod => response("405 Method Not Allowed", "text/plain", "GET only\n"),
            Asked::Malformed => response("400 Bad Request", "text/plain", "bad request\n"),
            Asked::TooLarge => response(
                "431 Request Header Fields Too Large",
                "text/plain",
                "request head too large\n",
            ),
        };
        // A client that went away or stalled past the write timeout gets nothing more.
        let _ = stream.write_all(response.as_bytes());
        let _ = stream.shutdown(Shutdown::Both);
    }

    fn scrape(&self) -> Result<String, String> {
        let (reply_tx, reply_rx) = sync_channel(1);
        self.tx
            .send(Msg::Metrics { reply: reply_tx })
            .map_err(|_| "the control thread is stopping\n".to_owned())?;
        match reply_rx.recv_timeout(ANSWER_TIMEOUT) {
            Ok(snapshot) => render(&snapshot).map_err(|e| format!("{e}\n")),
            Err(RecvTimeoutError::Timeout) => {
                Err("the control thread did not answer in time\n".to_owned())
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err("the control thread is stopping\n".to_owned())
            }
        }
    }
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Reads the request head (up to the blank line) within [`REQUEST_TIMEOUT`] and
/// [`MAX_HEAD`], and says what it asks for. A body, if any, is not read.
fn read_head(stream: &mut TcpStream) -> Asked {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = find_end(&head) {
            return parse_head(&head[..end]);
        }
        if head.len() > MAX_HEAD {
            return Asked::TooLarge;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Asked::Malformed;
        }
        match stream.read(&mut buf) {
            Ok(0) => return Asked::Malformed,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Asked::Malformed,
        }
    }
}

/// Where the head ends (before its blank line); bare `\n` line ends are accepted too.
fn find_end(head: &[u8]) -> Option<usize> {
    let crlf = head.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = head.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
    .filter(|&end| end <= MAX_HEAD)
}

fn parse_head(head: &[u8]) -> Asked {
    let Ok(text) = std::str::from_utf8(head) else {
        return Asked::Malformed;
    };
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Asked::Malformed;
    };
    if !version.starts_with("HTTP/1.") {
        return Asked::Malformed;
    }
    if method != "GET" {
        return Asked::BadMethod;
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path == "/metrics" {
        Asked::Metrics
    } else {
        Asked::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_as_metrics_not_found_or_refused() {
        let cases: [(&[u8], Asked); 8] = [
            (b"GET /metrics HTTP/1.1\r\nHost: x", Asked::Metrics),
            (b"GET /metrics?name[]=x HTTP/1.0", Asked::Metrics),
            (b"GET / HTTP/1.1\r\nHost: x", Asked::NotFound),
            (b"GET /metricsx HTTP/1.1", Asked::NotFound),
            (b"POST /metrics HTTP/1.1", Asked::BadMethod),
            (b"GET /metrics", Asked::Malformed),
            (b"GET /metrics SPDY/3", Asked::Malformed),
            (b"\xff\xfe /metrics HTTP/1.1", Asked::Malformed),
        ];
        for (head, want) in cases {
            assert_eq!(parse_head(head), want, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line_within_the_limit() {
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(20));
        assert_eq!(find_end(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        let mut long = vec![b'a'; MAX_HEAD + 1];
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(find_end(&long), None);
    }
}
