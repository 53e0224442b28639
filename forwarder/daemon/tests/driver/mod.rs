//! Runs a lab driver script (scripts/lib/*.py) bounded in time: the drivers clean up after
//! themselves on SIGTERM, so that comes first; SIGKILL and `scripts/lab down` only if it does not
//! end in time.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Reads `pipe` (a child's stdout or stderr; `None` reads nothing) to its end on a thread of its
/// own: a driver that fills a pipe nobody reads blocks, and [`wait_bounded`] would then time it
/// out. Join the handle, after the child has ended, for the text.
pub fn read_on_the_side<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

/// Waits for `child` up to `limit`; on time-out stops it (SIGTERM, then SIGKILL after 15 s),
/// tears down the lab `prefix` and returns `None`.
pub fn wait_bounded(
    child: &mut Child,
    limit: Duration,
    root: &Path,
    prefix: &str,
) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() > end {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = Command::new(root.join("scripts/lab"))
                .args(["down", "--prefix", prefix])
                .status();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
