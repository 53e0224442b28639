//! Runs a lab driver script (scripts/lib/*.py) bounded in time: the drivers clean up after
//! themselves on SIGTERM, so that comes first; SIGKILL and `scripts/lab down` only if it does not
//! end in time.

// Each test binary that includes this module uses only some of it.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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

/// The lab script a driver's lab belongs to: [`wait_bounded`] takes it down after a time-out.
#[derive(Clone, Copy, Debug)]
pub enum Lab {
    /// `scripts/lab`: one forwarder between a client and its backends.
    Single,
    /// `scripts/lab-scale`: several forwarders behind an ECMP router.
    Scale,
}

impl Lab {
    fn script(self) -> &'static str {
        match self {
            Lab::Single => "scripts/lab",
            Lab::Scale => "scripts/lab-scale",
        }
    }
}

/// Waits for `child` up to `limit`; on time-out stops it (SIGTERM, then SIGKILL after 15 s),
/// tears down the `lab` named `prefix` and returns `None`.
pub fn wait_bounded(
    child: &mut Child,
    limit: Duration,
    root: &Path,
    lab: Lab,
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
            let _ = Command::new(root.join(lab.script()))
                .args(["down", "--prefix", prefix])
                .status();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How a driver run ([`run_driver`]) ended, and everything it printed.
pub struct DriverRun {
    /// What `script` was run (for messages).
    pub script: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub out: String,
    /// Its standard error.
    pub err: String,
}

impl DriverRun {
    /// Asserts the verdict of a driver that prints its claims (`[ok]` / `[FAIL]` lines and a
    /// final `N claim(s) failed`): it exited 0, every claim held and at least `claims` were
    /// made. Returns its standard output.
    pub fn assert_claims(self, claims: usize) -> String {
        let DriverRun {
            script,
            status,
            out,
            err,
        } = self;
        assert!(
            status.success(),
            "{script} failed ({status}):\n{out}\n{err}"
        );
        assert!(out.contains("\n0 claim(s) failed"), "{script}:\n{out}");
        assert!(!out.contains("[FAIL]"), "{script}:\n{out}");
        let made = out.matches("[ok]").count();
        assert!(
            made >= claims,
            "{script}: {made} claims, expected {claims}:\n{out}"
        );
        out
    }
}

/// Runs `python3 scripts/lib/SCRIPT ARGS... --exabgp E --prefix PREFIX --bin-dir D` (E from
/// [`exabgp`], D this test profile's binaries, checked to hold `bins`), reading its output on
/// the side, bounded by `limit` ([`wait_bounded`], which takes the `lab` down on a time-out).
/// Panics with what it printed if it did not end in time.
pub fn run_driver(
    script: &str,
    args: &[&str],
    lab: Lab,
    prefix: &str,
    bins: &[&str],
    limit: Duration,
) -> DriverRun {
    let root = root();
    let mut child = Command::new("python3")
        .arg(root.join("scripts/lib").join(script))
        .args(args)
        .args(["--exabgp", &exabgp(), "--prefix", prefix, "--bin-dir"])
        .arg(bin_dir(bins))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = read_on_the_side(child.stdout.take());
    let err = read_on_the_side(child.stderr.take());
    let status = wait_bounded(&mut child, limit, &root, lab, prefix);
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let status =
        status.unwrap_or_else(|| panic!("{script} did not finish within {limit:?}:\n{out}\n{err}"));
    DriverRun {
        script: script.to_owned(),
        status,
        out,
        err,
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
