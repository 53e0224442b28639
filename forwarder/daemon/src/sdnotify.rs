//! systemd's service notifications (sd_notify(3)) and the watchdog that sends them.
//!
//! The protocol is one datagram per message on the Unix socket named by `$NOTIFY_SOCKET` (a
//! path, or an abstract name written with a leading `@`), holding newline-separated
//! `KEY=value` assignments: `READY=1`, `WATCHDOG=1`, `STATUS=...`, `STOPPING=1`. With no
//! `$NOTIFY_SOCKET` (not started by systemd) every message is skipped.
//!
//! The watchdog pings from the control thread (it runs as part of its upkeep), and only while
//! every worker made progress since the previous ping: a stalled worker or a stuck control
//! thread both stop the pings, and systemd restarts the service (`WatchdogSec=`,
//! `Restart=on-watchdog` or `on-failure`).

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// Why a notification could not be set up or sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor an abstract name (`@...`).
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor an abstract name (@...)")]
    BadSocketName(String),
    /// The notification socket could not be created or addressed.
    #[error("NOTIFY_SOCKET {name:?}: {source}")]
    Socket {
        /// The socket's name as given.
        name: String,
        /// The error.
        source: std::io::Error,
    },
    /// The datagram was not accepted (systemd gone, or a full queue).
    #[error("sending {message:?} to NOTIFY_SOCKET: {source}")]
    Send {
        /// The message.
        message: String,
        /// The error.
        source: std::io::Error,
    },
    /// `$WATCHDOG_USEC` is not a positive number of microseconds.
    #[error("WATCHDOG_USEC={0:?} is not a positive number of microseconds")]
    BadWatchdog(String),
}

/// The sending side of `$NOTIFY_SOCKET`.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    name: String,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names; `None` when it is unset or empty.
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(name) if !name.is_empty() => Notifier::to(&name).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier sending to `name` (a path, or `@` and an abstract name).
    pub fn to(name: &str) -> Result<Notifier, NotifyError> {
        let socket_err = |source| NotifyError::Socket {
            name: name.to_owned(),
            source,
        };
        let addr = if let Some(abstract_name) = name.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name.as_bytes()).map_err(socket_err)?
        } else if name.starts_with('/') {
            SocketAddr::from_pathname(name).map_err(socket_err)?
        } else {
            return Err(NotifyError::BadSocketName(name.to_owned()));
        };
        let socket = UnixDatagram::unbound().map_err(socket_err)?;
        Ok(Notifier {
            socket,
            addr,
            name: name.to_owned(),
        })
    }

    /// Sends one message (newline-separated assignments) as one datagram.
    pub fn send(&self, message: &str) -> Result<(), NotifyError> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.addr)
            .map(|_| ())
            .map_err(|source| NotifyError::Send {
                message: message.to_owned(),
                source,
            })
    }

    /// [`Notifier::send`], logging a failure instead of returning it: a notification that does
    /// not arrive is systemd's to act on (a start timeout, a watchdog restart), not a reason to
    /// stop forwarding.
    pub fn send_or_log(&self, message: &str) {
        if let Err(e) = self.send(message) {
            tracing::warn!("{e}");
        }
    }

    /// The socket's name as `$NOTIFY_SOCKET` gave it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// How often systemd expects a watchdog ping, from `$WATCHDOG_USEC`; `None` when unset or
/// meant for another process (`$WATCHDOG_PID` names a pid that is not ours).
pub fn watchdog_from_env() -> Result<Option<Duration>, NotifyError> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`watchdog_from_env`] over given values (`own`: this process's pid).
pub fn watchdog_interval(
    usec: Option<&str>,
    pid: Option<&str>,
    own: u32,
) -> Result<Option<Duration>, NotifyError> {
    let Some(usec) = usec.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(own)) {
        return Ok(None);
    }
    match usec.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(Some(Duration::from_micros(n))),
        _ => Err(NotifyError::BadWatchdog(usec.to_owned())),
    }
}

/// The workers that did not advance between two readings of their poll counts (a worker
/// that appeared since is not judged yet).
pub fn stalled(before: &[u64], now: &[u64]) -> Vec<usize> {
    before
        .iter()
        .zip(now)
        .enumerate()
        .filter(|(_, (b, n))| n <= b)
        .map(|(i, _)| i)
        .collect()
}

/// Pings the watchdog at half its interval while every worker makes progress. `progress`
/// reads each worker's poll count.
pub struct Watchdog<F> {
    notifier: Notifier,
    every: Duration,
    progress: F,
    /// Poll counts at the previous check and when it was made.
    last: Option<(Instant, Vec<u64>)>,
    /// Whether the last check found a stall (logged once per stall, not once per check).
    stalling: bool,
}

impl<F: FnMut() -> Vec<u64>> Watchdog<F> {
    /// A watchdog for an interval of `interval` (`$WATCHDOG_USEC`).
    pub fn new(notifier: Notifier, interval: Duration, progress: F) -> Self {
        Watchdog {
            notifier,
            every: interval / 2,
            progress,
            last: None,
            stalling: false,
        }
    }

    /// Checks and pings when due; returns whether it pinged.
    pub fn tick(&mut self, now: Instant) -> bool {
        let counts = match &self.last {
            Some((at, _)) if now.duration_since(*at) < self.every => return false,
            _ => (self.progress)(),
        };
        let Some((_, before)) = self.last.replace((now, counts)) else {
            // The first reading is only a baseline: progress is judged from the next one.
            return false;
        };
        let counts = self.last.as_ref().map_or(&[][..], |(_, c)| c.as_slice());
        let stuck = stalled(&before, counts);
        if stuck.is_empty() {
            if self.stalling {
                tracing::info!("every worker polls again; watchdog pings resume");
            }
            self.stalling = false;
            self.notifier.send_or_log("WATCHDOG=1");
            true
        } else {
            if !self.stalling {
                tracing::error!(
                    "worker(s) {stuck:?} made no poll in {:?}: watchdog not pinged (systemd \
                     acts if this lasts)",
                    self.every
                );
            }
            self.stalling = true;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn bound() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let name = path.to_str().unwrap().to_owned();
        (dir, rx, name)
    }

    fn recv(rx: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = rx.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn messages_arrive_as_one_datagram_each_on_a_path() {
        let (_dir, rx, name) = bound();
        let n = Notifier::to(&name).unwrap();
        n.send("READY=1\nSTATUS=forwarding").unwrap();
        n.send("WATCHDOG=1").unwrap();
        assert_eq!(recv(&rx), "READY=1\nSTATUS=forwarding");
        assert_eq!(recv(&rx), "WATCHDOG=1");
    }

    #[test]
    fn abstract_names_start_with_an_at_sign() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ecmpfwd-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let n = Notifier::to(&format!("@{name}")).unwrap();
        n.send("STOPPING=1").unwrap();
        assert_eq!(recv(&rx), "STOPPING=1");
    }

    #[test]
    fn relative_names_are_refused_and_a_gone_socket_is_a_send_error() {
        assert!(matches!(
            Notifier::to("run/notify"),
            Err(NotifyError::BadSocketName(_))
        ));
        let (dir, rx, name) = bound();
        drop(rx);
        drop(dir);
        let n = Notifier::to(&name).unwrap();
        assert!(matches!(n.send("READY=1"), Err(NotifyError::Send { .. })));
    }

    #[test]
    fn watchdog_interval_follows_usec_and_pid() {
        let me = 4242;
        assert_eq!(watchdog_interval(None, None, me).unwrap(), None);
        assert_eq!(
            watchdog_interval(Some("3000000"), None, me).unwrap(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            watchdog_interval(Some("3000000"), Some("4242"), me).unwrap(),
            Some(Duration::from_secs(3))
        );
        // Meant for another process (e.g. a wrapper that exec'd us lost the pid).
        assert_eq!(
            watchdog_interval(Some("3000000"), Some("1"), me).unwrap(),
            None
        );
        for bad in ["0", "-5", "soon"] {
            assert!(matches!(
                watchdog_interval(Some(bad), None, me),
                Err(NotifyError::BadWatchdog(_))
            ));
        }
    }

    #[test]
    fn stalled_names_the_workers_that_did_not_advance() {
        assert_eq!(stalled(&[1, 2, 3], &[2, 3, 4]), Vec::<usize>::new());
        assert_eq!(stalled(&[1, 2, 3], &[2, 2, 4]), vec![1]);
        assert_eq!(stalled(&[5, 5], &[5, 5]), vec![0, 1]);
        assert_eq!(stalled(&[], &[1]), Vec::<usize>::new());
    }

    #[test]
    fn watchdog_pings_at_half_the_interval_only_while_workers_progress() {
        let (_dir, rx, name) = bound();
        rx.set_nonblocking(true).unwrap();
        let polls = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let read = {
            let polls = Arc::clone(&polls);
            move || polls.iter().map(|p| p.load(Ordering::Relaxed)).collect()
        };
        let mut dog = Watchdog::new(Notifier::to(&name).unwrap(), Duration::from_secs(2), read);
        let t0 = Instant::now();
        let step = |polls: &[AtomicU64; 2], which: &[usize]| {
            for &w in which {
                polls[w].fetch_add(10, Ordering::Relaxed);
            }
        };
        let drain = || {
            let mut buf = [0u8; 64];
            let mut seen = Vec::new();
            while let Ok(n) = rx.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            seen
        };
        assert!(!dog.tick(t0), "the first check is a baseline");
        step(&polls, &[0, 1]);
        assert!(!dog.tick(t0 + Duration::from_millis(500)), "not due yet");
        assert!(dog.tick(t0 + Duration::from_secs(1)));
        assert_eq!(drain(), ["WATCHDOG=1"]);
        // Worker 1 stalls: no ping while it does.
        step(&polls, &[0]);
        assert!(!dog.tick(t0 + Duration::from_secs(2)));
        step(&polls, &[0]);
        assert!(!dog.tick(t0 + Duration::from_secs(3)));
        assert!(drain().is_empty());
        // It polls again: pings resume.
        step(&polls, &[0, 1]);
        assert!(dog.tick(t0 + Duration::from_secs(4)));
        assert_eq!(drain(), ["WATCHDOG=1"]);
    }
}
