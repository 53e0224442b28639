//! Errors of the data-path layer (set-up only: the per-packet path reports drops, not errors).

use ecmp_tables::error::TableError;

use crate::flowcache::FlowCacheError;

/// Why a pipeline or worker could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The flow cache configuration is invalid.
    #[error("flow cache: {0}")]
    FlowCache(#[from] FlowCacheError),
    /// The snapshot cell refused a new reader (too many workers for the cell).
    #[error("tables: {0}")]
    Table(#[from] TableError),
}
