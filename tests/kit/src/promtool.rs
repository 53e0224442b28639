//! `promtool check metrics` (Debian's prometheus package) on an exposition text: the
//! independent judge of the metric names, types and units the control side serves.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on `text`: its verdict and what it printed. Panics if promtool
/// is missing (scripts/test installs it), so a test cannot pass without the check.
pub fn check_metrics(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}
