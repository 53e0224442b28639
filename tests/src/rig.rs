//! The test kit's face of the in-process memory rig, [`ecmpfwd::rig`]: one worker (pipeline +
//! memory ports) for any config, run a frame or a burst at a time, with every frame accounted for
//! (sent once or dropped once, and every frame back in the pool). The rig itself lives in the
//! daemon, whose `demo` and `bench` commands run on it; this module builds it the way the
//! fixtures need it and adds the bare pipeline the stage benches use.

use std::sync::Arc;

use ecmp_dataplane::pipeline::Pipeline;
use ecmp_tables::snapshot::Snapshot;
use ecmpfwd::config::Config;
use ecmpfwd::setup;
use ecmpfwd::setup::pipeline_config;

pub use ecmpfwd::rig::{BurstOutcome, INGRESS, Outcome, POOL_FRAMES, Rig, RigError, RigOptions};

/// A rig for `cfg` with the default options (collecting ports, [`POOL_FRAMES`] frames, one
/// millisecond per poll), as `ecmpfwd run` builds its tables and pipeline.
pub fn for_config(cfg: &Config) -> Result<Rig, RigError> {
    with_options(cfg, RigOptions::default())
}

/// A rig for `cfg` sized and clocked by `opts` (e.g. counting ports for a bench).
pub fn with_options(cfg: &Config, opts: RigOptions) -> Result<Rig, RigError> {
    Ok(Rig::from_config(cfg, opts)?.0)
}

/// A bare pipeline and the snapshot it reads, for `cfg` (benches of the pipeline stage alone).
pub fn build_pipeline(cfg: &Config) -> Result<(Pipeline, Arc<Snapshot>), RigError> {
    let tables = setup::build(cfg)?;
    let mut pipeline = Pipeline::new(&pipeline_config(cfg))?;
    pipeline.on_new_snapshot(&tables.snapshot);
    Ok((pipeline, Arc::new(tables.snapshot)))
}
