//! Helpers shared by the integration tests in `tests/tests/` and by the benches.
//!
//! - [`golden`]: the golden fixtures of `tests/golden/` (input frame -> expected output frame and
//!   verdict) and the worker/pipeline built for their config (ARCHITECTURE.md rule 11: the same
//!   cases drive tests and benchmarks).
//! - [`rig`]: the daemon's in-process memory rig ([`ecmpfwd::rig`]) for any config, run a frame
//!   or a burst at a time, with every frame accounted for (sent once or dropped once).
//! - [`hex`]: the hex text format of fixture and corpus files.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

pub mod golden;
pub mod hex;
pub mod rig;

pub use golden::{
    Expected, GoldenCase, golden_cases, golden_config, golden_dir, golden_pipeline, golden_rig,
    golden_rig_with,
};
pub use rig::{Outcome, Rig};

/// Why a fixture could not be loaded, built or run.
#[derive(Debug, thiserror::Error)]
pub enum TestsError {
    /// The config did not load.
    #[error("config: {0}")]
    Config(#[from] ecmpfwd::config::ConfigError),
    /// The tables could not be built from the config.
    #[error("setup: {0}")]
    Setup(#[from] ecmpfwd::setup::SetupError),
    /// The worker or pipeline could not be built.
    #[error("dataplane: {0}")]
    Dataplane(#[from] ecmp_dataplane::error::DataplaneError),
    /// The frame pool refused a frame (pool exhausted, frame too large).
    #[error("port: {0}")]
    Port(#[from] ecmp_port::PortError),
    /// A fixture file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A hex file did not decode.
    #[error("{}: {source}", path.display())]
    Hex {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: hex::HexError,
    },
    /// A verdict file is neither `tx <port>` (a port of the config) nor `drop <reason>`.
    #[error("{}: bad verdict {text:?}", path.display())]
    Verdict {
        /// The file.
        path: PathBuf,
        /// Its content.
        text: String,
    },
    /// A case definition could not be built into a frame.
    #[error("building a frame: {0}")]
    Frame(#[from] ecmp_testkit::frames::FrameError),
    /// A case names a next hop the config does not have.
    #[error("no next hop {0:?} in the config")]
    UnknownHop(String),
    /// The worker sent a frame on a port the config does not have.
    #[error("sent on port {0}, which the config does not have")]
    UnknownPort(u16),
    /// A golden case's outcome is not the one declared with it in `golden_inputs`.
    #[error("{case}: declared {declared}, the pipeline gives {got}")]
    Undeclared {
        /// The case name.
        case: String,
        /// `tx` or the declared drop reason's name.
        declared: &'static str,
        /// `tx` or the drop reason's name the pipeline gave.
        got: &'static str,
    },
    /// The rig could not be built or did not account for a frame.
    #[error("rig: {0}")]
    Rig(#[from] ecmpfwd::rig::RigError),
}

impl TestsError {
    fn file(path: &Path, source: std::io::Error) -> Self {
        TestsError::File {
            path: path.to_path_buf(),
            source,
        }
    }
}
