//! The memory layer's errors.

use std::io;

/// Why a table's memory could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MemError {
    /// `hugepages = "require"` and the hugetlb pool could not supply the table.
    #[error(
        "{table}: hugepages = \"require\" but the hugetlb pool cannot supply {bytes} bytes \
         ({free_pages} free {page_kib} KiB pages; reserve more with vm.nr_hugepages): {source}"
    )]
    NoHugePages {
        /// The table asking.
        table: String,
        /// Bytes asked for, rounded up to whole huge pages.
        bytes: usize,
        /// Free pages in the pool when it was asked (from /proc/meminfo).
        free_pages: u64,
        /// The pool's page size in KiB.
        page_kib: u64,
        /// What mmap said.
        source: io::Error,
    },
    /// `hugepages = "require"` on a machine with no hugetlb pool at all.
    #[error(
        "hugepages = \"require\" but the hugetlb pool is empty (HugePages_Total {total}, \
         HugePages_Free {free} in /proc/meminfo); reserve pages with vm.nr_hugepages or use \
         \"auto\""
    )]
    NoPool {
        /// Pages in the pool.
        total: u64,
        /// Free pages in the pool.
        free: u64,
    },
    /// `hugepages = "require"`, and a big table ended up elsewhere (the pool ran out).
    #[error("{table}: hugepages = \"require\" but the kernel backs it with {backing}")]
    NotHugeTlb {
        /// The table.
        table: String,
        /// What the kernel reports instead.
        backing: String,
    },
    /// The mapping itself failed (out of memory or address space).
    #[error("{table}: mapping {bytes} bytes failed: {source}")]
    Map {
        /// The table asking.
        table: String,
        /// Bytes asked for.
        bytes: usize,
        /// What mmap said.
        source: io::Error,
    },
}
