//! What the feed and control socket front ends share: binding a Unix stream socket (replacing a
//! stale one, setting its mode, removing the file again when done) and the `SO_PEERCRED` check
//! every accepted connection has to pass.
//!
//! The socket's mode is set right after `bind`; a peer that connects in between still has to
//! pass the `SO_PEERCRED` check, which is the real gate.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often an accept thread looks for new connections and the stop flag when idle.
pub const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Default permission bits of the feed and control socket files (owner and group read/write).
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

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

#[cfg(test)]
mod tests;
