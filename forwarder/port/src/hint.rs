//! CPU hints the data path needs and safe Rust cannot express: a software prefetch.
//!
//! Prefetching is what lets a burst hide memory latency: stage one of the pipeline asks for the
//! flow-cache lines of all 32 packets, stage two finds them in cache. A plain load of the line
//! would stall the pipeline's reorder buffer instead; `_mm_prefetch` does not.
#![allow(unsafe_code)]

/// Asks the CPU to bring the cache line holding `*r` into all cache levels. A hint only: it
/// never faults and never changes what the program computes.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only needs SSE, which every x86_64 CPU has; it reads no memory
    // architecturally and cannot fault, and `r` is a valid reference anyway.
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// [`prefetch`] of the line at `p`, which need not point into anything: a prefetch of any
/// address never faults (so a caller indexing a table can skip the bounds check a reference
/// would need; an index out of range only wastes the hint).
#[inline(always)]
pub fn prefetch_ptr<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only needs SSE, which every x86_64 CPU has; it reads no memory
    // architecturally and cannot fault, whatever the address.
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_is_harmless_on_any_reference() {
        let v = vec![0u64; 1024];
        for x in v.iter().step_by(8) {
            super::prefetch(x);
        }
        super::prefetch(&v);
        // Past the end, and nowhere at all: still only a hint.
        super::prefetch_ptr(v.as_ptr().wrapping_add(1 << 20));
        super::prefetch_ptr(core::ptr::null::<u64>());
        assert_eq!(v.iter().sum::<u64>(), 0);
    }
}
