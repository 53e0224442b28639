//! The memory backing of ecmpfwd's big tables (flow cache buckets and extension records, tbl24
//! and tbl8, the IPv6 root, the AF_XDP UMEM): one allocator that puts them on huge pages.
//!
//! - [`HugePages`]: the policy, `auto` (hugetlb when the pool has room, else a 2 MiB-aligned
//!   mapping with `madvise(MADV_HUGEPAGE)`), `require` (hugetlb or an error naming the table) or
//!   `off` (small pages, `MADV_NOHUGEPAGE`). One per process, set at start-up with
//!   [`set_policy`]; [`Auto`](HugePages::Auto) until then.
//! - [`Region`]: a raw mapping of bytes (what the UMEM is: the kernel writes into it).
//! - [`HugeArray`]: a fixed-length slice of plain values on a region (or on the heap when it is
//!   smaller than a huge page, where a huge page cannot help and a mapping per small table would
//!   only cost system calls and map entries).
//! - [`Backing`]: what the kernel actually gave, read back from `/proc/self/smaps`, never
//!   assumed from what was asked: a 2 MiB-aligned heap block with `madvise` measured no huge
//!   pages at all, while an untouched anonymous mapping with `madvise` got them.
//!
//! Why a crate of its own: `ecmp-tables` forbids `unsafe` and is shared with control, which must
//! not depend on `ecmp-port` or `ecmp-io`, so the mapping code cannot live in either. This is the
//! third place allowed to hold `unsafe` (after `ecmp-port` and `ecmp-io`), confined to the
//! `region` module, each block with a `// SAFETY:` comment.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

mod array;
mod error;
mod policy;
#[allow(unsafe_code)]
mod region;
mod smaps;

pub use array::{HugeArray, Zeroed};
pub use error::MemError;
pub use policy::{HugePages, policy, set_policy};
pub use region::{HUGE_PAGE, Region};
pub use smaps::{Backing, Pool, pool};

use smaps::Smaps;

/// Where a table lives: enough to ask the kernel how it is backed from any thread, for as long
/// as the table lives (a placement outliving its table reads whatever is mapped there later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Which table.
    pub name: &'static str,
    /// Its first byte's address.
    pub addr: usize,
    /// Its length in bytes.
    pub bytes: usize,
}

impl Placement {
    /// Name, bytes and backing now.
    pub fn memory(&self) -> TableMemory {
        read_back(std::slice::from_ref(self)).remove(0)
    }
}

/// The backing of every table in `tables` (reading /proc/self/smaps once).
pub fn read_back(tables: &[Placement]) -> Vec<TableMemory> {
    let smaps = Smaps::read();
    tables
        .iter()
        .map(|p| TableMemory {
            name: p.name.to_owned(),
            bytes: p.bytes,
            backing: smaps
                .as_ref()
                .map_or(Backing::Unknown, |s| s.backing(p.addr, p.bytes)),
        })
        .collect()
}

/// Under `require`, every table of at least a huge page must be on hugetlb pages: the error
/// names the first that is not and what it got instead.
pub fn check_required(policy: HugePages, tables: &[TableMemory]) -> Result<(), MemError> {
    if policy != HugePages::Require {
        return Ok(());
    }
    match tables
        .iter()
        .find(|t| t.bytes >= HUGE_PAGE && !matches!(t.backing, Backing::HugeTlb { .. }))
    {
        Some(t) => Err(MemError::NotHugeTlb {
            table: t.name.clone(),
            backing: t.backing.to_string(),
        }),
        None => Ok(()),
    }
}

/// One table's memory as the kernel backs it, for the start-up log and `ecmpctl stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMemory {
    /// Which table (`"flow cache buckets"`, `"fib4 tbl24"`, ...).
    pub name: String,
    /// Bytes the table occupies (its length, not what was mapped around it).
    pub bytes: usize,
    /// What the kernel gave it.
    pub backing: Backing,
}

impl std::fmt::Display for TableMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {:.1} MiB on {}",
            self.name,
            self.bytes as f64 / (1u64 << 20) as f64,
            self.backing
        )
    }
}
