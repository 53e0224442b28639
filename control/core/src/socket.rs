//! What the feed and control socket front ends share: binding a Unix stream socket (replacing a
//! stale one, setting its mode, removing the file again when done) and the `SO_PEERCRED` check
//! every accepted connection has to pass.
//!
//! The socket's mode is set right after `bind`; a peer that connects in between still has to
//! pass the `SO_PEERCRED` check, which is the real gate.
//!
//! Limits both front ends apply to what a client may hold, so that no client (a broken
//! companion, a stuck script) can take memory, threads or the service away from the others:
//! - at most `max_clients` connections at once ([`Slots`]); a newcomer past that takes the slot
//!   of the connection that has waited longest while evictable (the front end says when a
//!   connection is: between control requests, or before a feed connection's first valid line),
//!   and is refused only when none is;
//! - a line must end within `line_timeout` of its first byte ([`DEFAULT_LINE_TIMEOUT`]), or the
//!   connection is closed: a client dribbling bytes holds its slot and buffer only that long;
//! - a line longer than the front end's limit is discarded to its newline, but only while it
//!   stays within [`DISCARD_FACTOR`] times that limit: a client that sends more without a
//!   newline is not speaking the protocol and is closed instead of read to its end.
//!
//! A connection idle between lines is never timed out: the companion may have nothing to say for
//! hours, and `ecmpctl top` keeps its connection between frames.

use std::fs::{self, Permissions};
use std::io;
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often an accept thread looks for new connections and the stop flag when idle.
pub const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Default permission bits of the feed and control socket files (owner and group read/write).
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;
/// Default longest time from a line's first byte to its newline, on either socket. Real clients
/// write a line in one go (microseconds); ten seconds leaves room for a loaded machine.
pub const DEFAULT_LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// An oversized line is read and discarded to its newline only while it stays within this many
/// times the line limit; past that the connection is closed.
pub const DISCARD_FACTOR: usize = 16;
/// How long a connection thread's read blocks before it looks at the line timeout again (and,
/// for control connections, the stop flag).
pub(crate) const READ_POLL: Duration = Duration::from_millis(50);

/// Why a front end's socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// A configuration value is out of range.
    #[error("invalid socket config: {0}")]
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
}

/// The socket file we bound; removed on drop unless another file has replaced it since.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev_ino: Option<(u64, u64)>,
}

impl SocketFile {
    /// The path it was bound at.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds a Unix stream socket at `path` (a stale socket there is removed first; a live one or a
/// non-socket file is an error), sets its mode and makes it non-blocking.
pub(crate) fn bind_socket(
    path: PathBuf,
    mode: u32,
) -> Result<(UnixListener, SocketFile), SocketError> {
    if mode & !0o777 != 0 {
        return Err(SocketError::Config("mode has bits beyond 0o777"));
    }
    let io_err = |op: &'static str| {
        let path = path.clone();
        move |source| SocketError::Io { path, op, source }
    };
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(&path).is_ok() {
                return Err(SocketError::InUse(path));
            }
            fs::remove_file(&path).map_err(io_err("remove stale socket"))?;
        }
        Ok(_) => return Err(SocketError::NotASocket(path)),
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

/// Who may connect: our own effective uid, and the listed uids and gids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerCheck {
    own_uid: u32,
    allowed_uids: Vec<u32>,
    allowed_gids: Vec<u32>,
}

impl PeerCheck {
    /// The rule for this process (its effective uid) plus the listed ids.
    pub(crate) fn new(allowed_uids: &[u32], allowed_gids: &[u32]) -> Self {
        PeerCheck {
            own_uid: rustix::process::geteuid().as_raw(),
            allowed_uids: allowed_uids.to_vec(),
            allowed_gids: allowed_gids.to_vec(),
        }
    }

    /// Whether a peer with these credentials may connect.
    fn allows(&self, uid: u32, gid: u32) -> bool {
        uid == self.own_uid || self.allowed_uids.contains(&uid) || self.allowed_gids.contains(&gid)
    }

    /// Puts an accepted stream in blocking mode and checks its peer's `SO_PEERCRED`; false: close
    /// it.
    pub(crate) fn admit(&self, stream: &UnixStream) -> bool {
        // Accepted sockets do not inherit O_NONBLOCK on Linux; set it anyway so the connection
        // threads' blocking reads never depend on that.
        if stream.set_nonblocking(false).is_err() {
            return false;
        }
        match rustix::net::sockopt::socket_peercred(stream) {
            Ok(cred) => self.allows(cred.uid.as_raw(), cred.gid.as_raw()),
            Err(_) => false,
        }
    }
}

/// A connection's [`Mark`] value while it may not be evicted.
const BUSY: u64 = 0;
/// A connection's [`Mark`] value once evicted: it must stop.
const EVICTED: u64 = u64::MAX;

/// Whether a connection may be evicted, and since when: [`BUSY`], [`EVICTED`] or one plus the
/// milliseconds since the slots' epoch at which it became evictable. Changed only by
/// compare-and-swap, so a connection that just turned busy is never evicted under it.
#[derive(Debug)]
struct Mark(AtomicU64);

/// One admitted connection in [`Slots`].
#[derive(Debug)]
struct Entry {
    id: u64,
    /// A clone of the connection, shut down to evict it or when the front end closes.
    stream: UnixStream,
    mark: Arc<Mark>,
}

/// The connections a front end serves at once, at most `max` (see the module doc).
#[derive(Debug)]
pub(crate) struct Slots {
    max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    live: Mutex<Vec<Entry>>,
}

/// What [`Slots::admit`] did with a new connection.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Admitted; `evicted` tells whether another connection was closed to make room.
    Admitted {
        /// The connection's slot, held by its thread.
        slot: Slot,
        /// Another connection was evicted for it.
        evicted: bool,
    },
    /// Every slot is taken by a connection that may not be evicted.
    Full,
    /// The connection could not be cloned (out of file descriptors).
    Failed,
}

/// A connection's place in [`Slots`]: evictable from admission until [`Slot::busy`]; freed on
/// drop.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
    slots: Arc<Slots>,
    mark: Arc<Mark>,
}

impl Slots {
    /// Room for `max` connections.
    pub(crate) fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            live: Mutex::new(Vec::new()),
        })
    }

    fn now_mark(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(EVICTED - 1)
            .saturating_add(1)
            .min(EVICTED - 1)
    }

    /// Takes a slot for `stream` (evictable from now), evicting the connection that has been
    /// evictable longest when all are taken.
    pub(crate) fn admit(self: &Arc<Self>, stream: &UnixStream) -> Admission {
        let Ok(clone) = stream.try_clone() else {
            return Admission::Failed;
        };
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let mut evicted = false;
        while live.len() >= self.max {
            // Oldest evictable first; one that turned busy meanwhile loses its turn.
            let oldest = live
                .iter()
                .enumerate()
                .filter_map(|(i, e)| {
                    let m = e.mark.0.load(Ordering::Acquire);
                    (m != BUSY && m != EVICTED).then_some((m, i))
                })
                .min();
            let Some((mark, index)) = oldest else {
                return Admission::Full;
            };
            let entry = live.swap_remove(index);
            if entry
                .mark
                .0
                .compare_exchange(mark, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Ends the evicted thread's read; an error means the peer closed already.
                let _ = entry.stream.shutdown(Shutdown::Both);
                evicted = true;
            } else {
                // It turned busy: keep it and look again.
                live.push(entry);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mark = Arc::new(Mark(AtomicU64::new(self.now_mark())));
        live.push(Entry {
            id,
            stream: clone,
            mark: Arc::clone(&mark),
        });
        Admission::Admitted {
            slot: Slot {
                id,
                slots: Arc::clone(self),
                mark,
            },
            evicted,
        }
    }

    /// Shuts every admitted connection down, which ends their threads' reads.
    pub(crate) fn shutdown_all(&self) {
        for entry in self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            // An error means the socket is closed already.
            let _ = entry.stream.shutdown(Shutdown::Both);
        }
    }

    /// Connections admitted now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Slot {
    /// The connection may not be evicted from now on (it is handling a request, or proved to be
    /// a feed client); false when it was evicted already and must stop.
    pub(crate) fn busy(&self) -> bool {
        let mut current = self.mark.0.load(Ordering::Acquire);
        loop {
            if current == EVICTED {
                return false;
            }
            if current == BUSY {
                return true;
            }
            match self
                .mark
                .0
                .compare_exchange(current, BUSY, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    /// The connection waits for its next request and may be evicted from now on; false when it
    /// was evicted already and must stop.
    pub(crate) fn evictable(&self) -> bool {
        let mark = self.slots.now_mark();
        match self
            .mark
            .0
            .compare_exchange(BUSY, mark, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(now) => now != EVICTED,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut live = self
            .slots
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = live.iter().position(|e| e.id == self.id) {
            live.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests;
