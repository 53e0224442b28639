//! The process's huge page policy.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::MemError;
use crate::smaps::pool;

/// How big tables are backed; `[memory] hugepages` in the daemon's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HugePages {
    /// hugetlb pages when the pool has room, else THP through `madvise`, else small pages.
    #[default]
    Auto,
    /// hugetlb pages or a start-up error naming the table.
    Require,
    /// Small pages only (`MADV_NOHUGEPAGE`, so not even THP set to `always` backs them).
    Off,
}

impl HugePages {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HugePages::Auto => "auto",
            HugePages::Require => "require",
            HugePages::Off => "off",
        }
    }
}

impl fmt::Display for HugePages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HugePages {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(HugePages::Auto),
            "require" => Ok(HugePages::Require),
            "off" => Ok(HugePages::Off),
            other => Err(format!(
                "unknown hugepages policy {other:?} (auto, require or off)"
            )),
        }
    }
}

static POLICY: AtomicU8 = AtomicU8::new(0);

fn encode(p: HugePages) -> u8 {
    match p {
        HugePages::Auto => 0,
        HugePages::Require => 1,
        HugePages::Off => 2,
    }
}

/// The policy allocations without an explicit one follow.
pub fn policy() -> HugePages {
    match POLICY.load(Ordering::Relaxed) {
        1 => HugePages::Require,
        2 => HugePages::Off,
        _ => HugePages::Auto,
    }
}

/// Sets the process's policy, once at start-up before the tables are built. `Require` checks
/// that a hugetlb pool exists at all, so a machine without one fails here with a clear error
/// rather than at the first table.
pub fn set_policy(p: HugePages) -> Result<(), MemError> {
    if p == HugePages::Require {
        let pool = pool();
        if pool.free == 0 {
            return Err(MemError::NoPool {
                total: pool.total,
                free: pool.free,
            });
        }
    }
    POLICY.store(encode(p), Ordering::Relaxed);
    Ok(())
}
