//! What the kernel gave: `/proc/self/smaps` for a mapping, `/proc/meminfo` for the pool.

use std::fmt;

/// How a table's memory is backed, as read back from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// hugetlb pages (the mapping's kernel page size is larger than a small page).
    HugeTlb {
        /// The page size in bytes.
        page_bytes: usize,
    },
    /// Small-page mapping of which `huge_bytes` are transparent huge pages (AnonHugePages).
    Thp {
        /// Bytes the kernel backs with transparent huge pages (at most the table's length).
        huge_bytes: usize,
    },
    /// Small pages only.
    Small,
    /// The kernel's report could not be read (no /proc, or the address is in no mapping).
    Unknown,
}

impl Backing {
    /// A short word for logs and JSON: `hugetlb`, `thp`, `4k` or `unknown`.
    pub fn kind(&self) -> &'static str {
        match self {
            Backing::HugeTlb { .. } => "hugetlb",
            Backing::Thp { .. } => "thp",
            Backing::Small => "4k",
            Backing::Unknown => "unknown",
        }
    }

    /// Bytes on huge pages of either kind, out of a table of `len` bytes.
    pub fn huge_bytes(&self, len: usize) -> usize {
        match *self {
            Backing::HugeTlb { .. } => len,
            Backing::Thp { huge_bytes } => huge_bytes,
            Backing::Small | Backing::Unknown => 0,
        }
    }
}

impl fmt::Display for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Backing::HugeTlb { page_bytes } => write!(f, "hugetlb {} KiB pages", page_bytes >> 10),
            Backing::Thp { huge_bytes } => write!(
                f,
                "transparent huge pages ({:.1} MiB)",
                huge_bytes as f64 / (1u64 << 20) as f64
            ),
            Backing::Small => f.write_str("4 KiB pages"),
            Backing::Unknown => f.write_str("unknown pages (/proc/self/smaps unreadable)"),
        }
    }
}

/// The hugetlb pool of the default huge page size (`/proc/meminfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pool {
    /// Pages reserved (HugePages_Total).
    pub total: u64,
    /// Pages free (HugePages_Free).
    pub free: u64,
    /// Page size in bytes (Hugepagesize).
    pub page_bytes: u64,
}

/// The pool now; all zero when /proc/meminfo is unreadable.
pub fn pool() -> Pool {
    std::fs::read_to_string("/proc/meminfo")
        .map(|s| parse_pool(&s))
        .unwrap_or_default()
}

fn kib_field(line: &str, name: &str) -> Option<u64> {
    let rest = line.strip_prefix(name)?.strip_prefix(':')?;
    rest.split_whitespace().next()?.parse().ok()
}

pub(crate) fn parse_pool(meminfo: &str) -> Pool {
    let mut pool = Pool::default();
    for line in meminfo.lines() {
        if let Some(v) = kib_field(line, "HugePages_Total") {
            pool.total = v;
        } else if let Some(v) = kib_field(line, "HugePages_Free") {
            pool.free = v;
        } else if let Some(v) = kib_field(line, "Hugepagesize") {
            pool.page_bytes = v * 1024;
        }
    }
    pool
}

/// The backing of `len` bytes at `addr`, from the smaps entry of the mapping holding `addr`.
/// THP bytes are clamped to `len`: the entry may be larger than the table (a heap arena).
pub(crate) fn backing_of(addr: usize, len: usize) -> Backing {
    Smaps::read().map_or(Backing::Unknown, |s| s.backing(addr, len))
}

/// One reading of /proc/self/smaps, for looking several tables up.
pub(crate) struct Smaps(String);

impl Smaps {
    pub(crate) fn read() -> Option<Smaps> {
        std::fs::read_to_string("/proc/self/smaps").ok().map(Smaps)
    }

    pub(crate) fn backing(&self, addr: usize, len: usize) -> Backing {
        parse_backing(&self.0, addr, len)
    }
}

pub(crate) fn parse_backing(smaps: &str, addr: usize, len: usize) -> Backing {
    let mut inside = false;
    let mut page_kib = None;
    let mut anon_huge_kib = None;
    for line in smaps.lines() {
        if let Some((lo, hi)) = header(line) {
            if inside {
                break;
            }
            inside = lo <= addr && addr < hi;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(v) = kib_field(line, "KernelPageSize") {
            page_kib = Some(v);
        } else if let Some(v) = kib_field(line, "AnonHugePages") {
            anon_huge_kib = Some(v);
        }
    }
    match (page_kib, anon_huge_kib) {
        (Some(p), _) if p > 4 => Backing::HugeTlb {
            page_bytes: (p * 1024) as usize,
        },
        (Some(_), Some(h)) if h > 0 => Backing::Thp {
            huge_bytes: ((h * 1024) as usize).min(len),
        },
        (Some(_), _) => Backing::Small,
        (None, _) => Backing::Unknown,
    }
}

/// The address range of an smaps entry's first line (`lo-hi perms offset dev inode [path]`).
fn header(line: &str) -> Option<(usize, usize)> {
    let range = line.split_whitespace().next()?;
    let (lo, hi) = range.split_once('-')?;
    let lo = usize::from_str_radix(lo, 16).ok()?;
    let hi = usize::from_str_radix(hi, 16).ok()?;
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
7f0000000000-7f0000400000 rw-p 00000000 00:00 0
Size:               4096 kB
KernelPageSize:        4 kB
AnonHugePages:      2048 kB
7f0000400000-7f0000600000 rw-p 00000000 00:0f 123 /anon_hugepage (deleted)
Size:               2048 kB
KernelPageSize:     2048 kB
AnonHugePages:         0 kB
7f0000600000-7f0000601000 rw-p 00000000 00:00 0
Size:                  4 kB
KernelPageSize:        4 kB
AnonHugePages:         0 kB
";

    #[test]
    fn reads_the_entry_holding_the_address() {
        assert_eq!(
            parse_backing(SMAPS, 0x7f00_0000_1000, 1 << 22),
            Backing::Thp {
                huge_bytes: 2 << 20
            }
        );
        assert_eq!(
            parse_backing(SMAPS, 0x7f00_0000_0000, 1 << 20),
            Backing::Thp {
                huge_bytes: 1 << 20
            },
            "clamped to the table's length"
        );
        assert_eq!(
            parse_backing(SMAPS, 0x7f00_0040_0000, 2 << 20),
            Backing::HugeTlb {
                page_bytes: 2 << 20
            }
        );
        assert_eq!(parse_backing(SMAPS, 0x7f00_0060_0000, 4096), Backing::Small);
        assert_eq!(parse_backing(SMAPS, 0x1000, 4096), Backing::Unknown);
    }

    #[test]
    fn reads_the_pool() {
        let p = parse_pool(
            "MemTotal: 1 kB\nHugePages_Total:      16\nHugePages_Free:        3\nHugepagesize:       2048 kB\n",
        );
        assert_eq!(
            p,
            Pool {
                total: 16,
                free: 3,
                page_bytes: 2 << 20
            }
        );
    }
}
