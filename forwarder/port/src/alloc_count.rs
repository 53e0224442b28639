//! A counting global allocator, so tests anywhere in the workspace can prove that a code path
//! does not allocate without writing `unsafe` themselves:
//!
//! ```text
//! #[global_allocator]
//! static GLOBAL: ecmp_port::alloc_count::CountingAllocator = ecmp_port::alloc_count::CountingAllocator;
//! let before = ecmp_port::alloc_count::allocations();
//! // ... the code under test ...
//! assert_eq!(ecmp_port::alloc_count::allocations() - before, 0);
//! ```
//! Counts are per thread, so allocations of the test harness's other threads do not count.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Forwards to the system allocator and counts allocations of the current thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

fn count() {
    // `try_with`: the thread-local may already be gone while a thread exits.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

/// Allocations (alloc, alloc_zeroed, realloc) made by the current thread so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// allocator contract is exactly `System`'s; the counter is a const-initialised thread-local
// `Cell`, whose access never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above; `ptr` came from `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}
