//! A spawned child process that cannot outlive its test.
//!
//! [`Proc`] stops its process by PID when dropped (also while a failed assertion unwinds): SIGTERM
//! first, so a process that cleans up on it (an AF_XDP sink detaching its XDP program, the daemon
//! writing its counters) gets to, then SIGKILL after [`TERM_GRACE`]. Every wait is bounded.
//!
//! A process started as `ip netns exec NS PROGRAM` keeps the PID of `ip`, which execs the program,
//! so the guard signals the program itself.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a dropped [`Proc`] may take to exit on SIGTERM before it gets SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

/// How often the bounded waits look again.
const POLL: Duration = Duration::from_millis(10);

/// Sends `sig` (a `kill` name such as `TERM`) to `pid`; whether `kill` succeeded.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success())
}

/// A spawned process: on drop, SIGTERM, then SIGKILL by PID if it still runs after
/// [`TERM_GRACE`]; reaped either way.
pub struct Proc(pub Child);

impl Proc {
    /// Spawns `cmd`, panicking (with the program's name) if it cannot start.
    pub fn spawn(cmd: &mut Command) -> Proc {
        match cmd.spawn() {
            Ok(child) => Proc(child),
            Err(e) => panic!("spawn {:?}: {e}", cmd.get_program()),
        }
    }

    /// Its PID.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Sends it `sig` (a `kill` name such as `TERM`); whether `kill` succeeded.
    pub fn signal(&self, sig: &str) -> bool {
        signal(self.id(), sig)
    }

    /// Waits up to `limit` for the exit; panics past it (the drop then stops the process).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.exited() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "pid {} did not exit within {limit:?}",
                self.id()
            );
            std::thread::sleep(POLL);
        }
    }

    /// The exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().expect("try_wait")
    }

    /// Waits up to `limit` for the process to create `path` (a ready file); panics if it exits
    /// first or time runs out.
    pub fn wait_for_file(&mut self, path: &Path, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !path.exists() {
            if let Some(st) = self.exited() {
                panic!(
                    "pid {} exited ({st}) before {} appeared",
                    self.id(),
                    path.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not appear within {limit:?}",
                path.display()
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            signal(self.0.id(), "TERM");
            let deadline = Instant::now() + TERM_GRACE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(POLL);
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
