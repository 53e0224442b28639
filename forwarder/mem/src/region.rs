//! Anonymous mappings (hugetlb, THP-advised or small-page) and the typed view over them.
//!
//! The only module of this crate allowed `unsafe`: mmap, mprotect, madvise and munmap, and the
//! slice views, whose soundness rests on the invariant of [`Typed`] (every element initialised).

use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::error::MemError;
use crate::policy::HugePages;
use crate::smaps::{Backing, backing_of, pool};

/// The huge page size this allocator aligns to and asks hugetlb for (x86-64 and arm64 with 4 KiB
/// base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// The small page size; guard pages and the minimum alignment.
const SMALL_PAGE: usize = 4096;

/// A private anonymous read-write mapping of at least `len` bytes, starting page-aligned (2 MiB
/// aligned unless the policy is `off`), zero-filled by the kernel and not yet touched (call
/// [`Region::prefault`] to back it now, on the calling thread's NUMA node).
///
/// Small-page mappings sit between two inaccessible guard pages, so the kernel never merges them
/// with a neighbour and the smaps entry read back for [`Region::backing`] is this region's own.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    map_base: NonNull<u8>,
    map_len: usize,
}

// SAFETY: a `Region` owns its mapping exclusively, like a `Box<[u8]>`; shared access only hands
// out a raw pointer, through which writes are the caller's `unsafe` to justify.
unsafe impl Send for Region {}
// SAFETY: as above: `&Region` permits no safe mutation of the bytes.
unsafe impl Sync for Region {}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("map_len", &self.map_len)
            .finish()
    }
}

fn mmap(len: usize, flags: libc::c_int) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing; no
    // existing memory is affected.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

/// Unmaps `[at, at + len)`, a part of a mapping this module made and nothing references.
fn unmap(at: usize, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: the range lies inside a mapping made by `mmap` above that no reference points into
    // (it is either trimmed slack or the whole mapping of a region being dropped).
    unsafe { libc::munmap(at as *mut libc::c_void, len) };
}

/// The longest region [`Region::map`] accepts: its rounding up to a huge page plus the guard
/// pages and alignment slack must stay within `isize::MAX` (the most any slice may cover).
const MAX_LEN: usize = isize::MAX as usize - 2 * HUGE_PAGE - 2 * SMALL_PAGE;

impl Region {
    /// Maps `len` bytes for `table` under `policy`:
    /// - `Require`: `MAP_HUGETLB` (length rounded up to 2 MiB) or [`MemError::NoHugePages`].
    /// - `Auto`: `MAP_HUGETLB` when /proc/meminfo shows enough free pool pages and the mapping
    ///   succeeds; otherwise a 2 MiB-aligned mapping (over-mapped and trimmed) advised
    ///   `MADV_HUGEPAGE`, which the kernel backs with transparent huge pages at first touch when
    ///   THP is `madvise` or `always`.
    /// - `Off`: a small-page mapping advised `MADV_NOHUGEPAGE`.
    ///
    /// A length the rounding and padding below could overflow (beyond `isize::MAX` less two
    /// huge pages) is refused as [`MemError::Map`], never wrapped into a short mapping.
    pub fn map(table: &str, len: usize, policy: HugePages) -> Result<Region, MemError> {
        if len > MAX_LEN {
            return Err(MemError::Map {
                table: table.to_owned(),
                bytes: len,
                source: io::Error::new(io::ErrorKind::InvalidInput, "larger than any mapping"),
            });
        }
        let len = len.max(1);
        let huge_len = len.next_multiple_of(HUGE_PAGE);
        match policy {
            HugePages::Require => Self::hugetlb_2m(len).map_err(|source| {
                let p = pool();
                MemError::NoHugePages {
                    table: table.to_owned(),
                    bytes: huge_len,
                    free_pages: p.free,
                    page_kib: p.page_bytes >> 10,
                    source,
                }
            }),
            HugePages::Auto => {
                let p = pool();
                let room = p.page_bytes == HUGE_PAGE as u64
                    && p.free.saturating_mul(p.page_bytes) >= huge_len as u64;
                if room && let Ok(r) = Self::hugetlb(len) {
                    return Ok(r);
                }
                Self::advised(len, HUGE_PAGE, libc::MADV_HUGEPAGE, table)
            }
            HugePages::Off => Self::advised(len, SMALL_PAGE, libc::MADV_NOHUGEPAGE, table),
        }
    }

    /// [`Self::hugetlb`] only when the pool's default page is 2 MiB: with another default size
    /// the kernel would round the mapping to that size and `munmap` of the 2 MiB-rounded length
    /// would fail, leaking pool pages.
    fn hugetlb_2m(len: usize) -> io::Result<Region> {
        let page = pool().page_bytes;
        if page != HUGE_PAGE as u64 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the default huge page is {} KiB, not {} KiB",
                    page >> 10,
                    HUGE_PAGE >> 10
                ),
            ));
        }
        Self::hugetlb(len)
    }

    fn hugetlb(len: usize) -> io::Result<Region> {
        let map_len = len.next_multiple_of(HUGE_PAGE);
        let ptr = mmap(map_len, libc::MAP_HUGETLB)?;
        Ok(Region {
            ptr,
            len,
            map_base: ptr,
            map_len,
        })
    }

    /// A mapping of `len` bytes (rounded up to `align`) starting at a multiple of `align`, with
    /// a guard page either side, advised `advice`.
    fn advised(
        len: usize,
        align: usize,
        advice: libc::c_int,
        table: &str,
    ) -> Result<Region, MemError> {
        let size = len.next_multiple_of(align);
        let total = size + align + 2 * SMALL_PAGE;
        let raw = mmap(total, libc::MAP_NORESERVE).map_err(|source| MemError::Map {
            table: table.to_owned(),
            bytes: len,
            source,
        })?;
        let raw_at = raw.as_ptr() as usize;
        let start = (raw_at + SMALL_PAGE).next_multiple_of(align);
        let map_base = start - SMALL_PAGE;
        let map_end = start + size + SMALL_PAGE;
        unmap(raw_at, map_base - raw_at);
        unmap(map_end, raw_at + total - map_end);
        for guard in [map_base, start + size] {
            // SAFETY: a page of the mapping just made, outside the region handed out; nothing
            // references it. A failure only leaves it accessible (the entry may then merge,
            // which affects the smaps read-back, not memory safety), so it is ignored.
            unsafe { libc::mprotect(guard as *mut libc::c_void, SMALL_PAGE, libc::PROT_NONE) };
        }
        // SAFETY: advice on the region just mapped; it changes how the kernel backs the pages,
        // never their contents. A failure (a kernel without THP) leaves small pages, which
        // `backing` then reports.
        unsafe { libc::madvise(start as *mut libc::c_void, size, advice) };
        let ptr = NonNull::new(start as *mut u8).ok_or_else(|| MemError::Map {
            table: table.to_owned(),
            bytes: len,
            source: io::Error::other("aligned start is NULL"),
        })?;
        let map_base = NonNull::new(map_base as *mut u8).unwrap_or(ptr);
        Ok(Region {
            ptr,
            len,
            map_base,
            map_len: map_end - map_base.as_ptr() as usize,
        })
    }

    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Bytes asked for (the mapping may be longer).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a region has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Backs every page now (reads and writes back one byte per small page), so that the
    /// memory comes from the calling thread's NUMA node and no page fault is left for later.
    pub fn prefault(&mut self) {
        for off in (0..self.len).step_by(SMALL_PAGE) {
            // SAFETY: `off < len`, inside the mapping, which `&mut self` holds exclusively; the
            // byte is written back unchanged (volatile, so the write is not elided and faults
            // the page in for writing).
            unsafe {
                let p = self.ptr.as_ptr().add(off);
                p.write_volatile(p.read_volatile());
            }
        }
    }

    /// Where it lives, as table `name`.
    pub fn placement(&self, name: &'static str) -> crate::Placement {
        crate::Placement {
            name,
            addr: self.ptr.as_ptr() as usize,
            bytes: self.len,
        }
    }

    /// What the kernel backs the region with now (read from /proc/self/smaps).
    pub fn backing(&self) -> Backing {
        backing_of(self.ptr.as_ptr() as usize, self.len)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        unmap(self.map_base.as_ptr() as usize, self.map_len);
    }
}

/// `len` values of `T`, on a [`Region`] or (for small tables) a heap block. Invariant: every
/// element is initialised (the constructors write them, or rely on the kernel's zero fill for
/// [`Zeroed`](crate::Zeroed) types, whose zero value is all-zero bytes). A pointer and a length
/// rather than an enum, so a read through the slice costs no branch on where it lives.
pub(crate) struct Typed<T> {
    ptr: NonNull<T>,
    len: usize,
    /// The mapping, or `None` when `ptr` came from `Box::into_raw` (given back in `drop`).
    region: Option<Region>,
    _t: PhantomData<T>,
}

// SAFETY: `Typed<T>` owns its elements like a `Box<[T]>`.
unsafe impl<T: Send> Send for Typed<T> {}
// SAFETY: `&Typed<T>` gives only `&[T]`.
unsafe impl<T: Sync> Sync for Typed<T> {}

impl<T> Drop for Typed<T> {
    fn drop(&mut self) {
        if self.region.is_none() {
            let raw = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
            // SAFETY: `ptr`/`len` came from `Box::into_raw` in `heap` and were never freed;
            // this is the only place that frees them.
            drop(unsafe { Box::from_raw(raw) });
        }
        // A region unmaps itself; `T: Copy` elements need no drop.
    }
}

impl<T: Copy> Typed<T> {
    const FITS_PAGE: () = assert!(align_of::<T>() <= SMALL_PAGE && size_of::<T>() > 0);

    /// Takes over a heap block.
    pub(crate) fn heap(b: Box<[T]>) -> Self {
        let len = b.len();
        let raw = Box::into_raw(b);
        // `Box::into_raw` never returns NULL (a dangling, aligned pointer when empty).
        let ptr = NonNull::new(raw.cast::<T>()).unwrap_or(NonNull::dangling());
        Self {
            ptr,
            len,
            region: None,
            _t: PhantomData,
        }
    }

    fn on(region: Region, len: usize) -> Self {
        let ptr = NonNull::new(region.as_ptr().cast::<T>()).unwrap_or(NonNull::dangling());
        Self {
            ptr,
            len,
            region: Some(region),
            _t: PhantomData,
        }
    }

    fn region_for(table: &str, len: usize, policy: HugePages) -> Result<Region, MemError> {
        let () = Self::FITS_PAGE;
        let bytes = len
            .checked_mul(size_of::<T>())
            .ok_or_else(|| MemError::Map {
                table: table.to_owned(),
                bytes: usize::MAX,
                source: io::Error::other("length overflows"),
            })?;
        Region::map(table, bytes, policy)
    }

    /// `len` copies of `value` on a fresh region, written now (the first touch: call it on the
    /// thread that will use the table).
    pub(crate) fn filled(
        table: &str,
        len: usize,
        value: T,
        policy: HugePages,
    ) -> Result<Self, MemError> {
        let region = Self::region_for(table, len, policy)?;
        let p = region.as_ptr().cast::<T>();
        for i in 0..len {
            // SAFETY: the region holds `len * size_of::<T>()` bytes starting page-aligned (so
            // aligned for `T`, checked by `FITS_PAGE`), and `i < len`; `T: Copy` has no drop.
            unsafe { p.add(i).write(value) };
        }
        Ok(Self::on(region, len))
    }

    /// A copy of `src` on a fresh region, written now.
    pub(crate) fn copied(table: &str, src: &[T], policy: HugePages) -> Result<Self, MemError> {
        let region = Self::region_for(table, src.len(), policy)?;
        // SAFETY: the region is fresh (no overlap with `src`), aligned for `T` and holds
        // `src.len()` elements.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), region.as_ptr().cast::<T>(), src.len())
        };
        Ok(Self::on(region, src.len()))
    }

    #[inline(always)]
    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: aligned, `len` initialised elements (the invariant), owned by `self` and
        // borrowed for `&self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    #[inline(always)]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as `as_slice`, and `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The mapping, `None` on the heap.
    pub(crate) fn region(&self) -> Option<&Region> {
        self.region.as_ref()
    }
}

impl<T: crate::Zeroed> Typed<T> {
    /// `len` zeros on a fresh region, left untouched: the kernel's zero pages are valid values
    /// and cost no memory until written.
    pub(crate) fn zeroed(table: &str, len: usize, policy: HugePages) -> Result<Self, MemError> {
        let region = Self::region_for(table, len, policy)?;
        Ok(Self::on(region, len))
    }
}
