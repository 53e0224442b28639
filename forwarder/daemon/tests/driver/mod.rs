//! Runs a lab driver script (scripts/lib/*.py) bounded in time: the drivers clean up after
//! themselves on SIGTERM, so that comes first; SIGKILL and `scripts/lab down` only if it does not
//! end in time.

// Each test binary that includes this module uses only some of it.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
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

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// ExaBGP's executable: `ECMP_EXABGP`, else the venv scripts/test installs; panics saying how to
/// get it when it is missing.
pub fn exabgp() -> String {
    let exabgp = std::env::var("ECMP_EXABGP")
        .unwrap_or_else(|_| root().join(".venv-exabgp/bin/exabgp").display().to_string());
    assert!(
        Path::new(&exabgp).is_file(),
        "ExaBGP not found at {exabgp}: run scripts/test (it installs it) or set ECMP_EXABGP"
    );
    exabgp
}

/// The directory of this test profile's `ecmpfwd`, checked to hold `bins` as well (a driver
/// runs them from there with `--bin-dir`).
pub fn bin_dir(bins: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_ecmpfwd"))
        .parent()
        .expect("binary dir")
        .to_owned();
    for bin in bins {
        assert!(
            dir.join(bin).is_file(),
            "{bin} is not built in {}: cargo build --workspace --bins",
            dir.display()
        );
    }
    dir
}
