//! The control thread's side of one feed connection: writes that never block, with a bounded
//! outbox for what the socket does not take at once.

use std::io;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

use rustix::io::Errno;
use rustix::net::SendFlags;

/// Bytes a connection's outbox holds for a client that is not reading; lines beyond are dropped.
pub const OUTBOX_MAX: usize = 64 * 1024;

/// The control thread's side of one connection.
#[derive(Debug)]
pub(super) struct Conn {
    stream: UnixStream,
    /// Bytes written but not yet taken by the socket; always whole lines but for a sent head.
    outbox: Vec<u8>,
}

impl Conn {
    pub(super) fn new(stream: UnixStream) -> Self {
        Conn {
            stream,
            outbox: Vec::new(),
        }
    }

    /// Queues `lines` (whole lines) and sends what the socket takes now; returns false (and
    /// queues nothing) when the outbox has no room for them.
    pub(super) fn send(&mut self, lines: &[u8]) -> bool {
        if self.outbox.len() + lines.len() > OUTBOX_MAX {
            return false;
        }
        self.outbox.extend_from_slice(lines);
        self.flush();
        true
    }

    /// Sends what the socket takes without blocking. A broken socket discards the outbox (its
    /// reader sees the end and reports the connection closed).
    pub(super) fn flush(&mut self) {
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

    /// Shuts the connection down both ways, which ends its reader's blocking read.
    pub(super) fn shutdown(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Both)
    }
}

#[cfg(test)]
mod tests;
