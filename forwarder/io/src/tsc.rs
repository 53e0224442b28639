//! The CPU's time-stamp counter, for cost accounting on the forwarding cores.
//!
//! Reading it costs about 20-40 cycles and no syscall, so a worker can bracket every poll with
//! it. Cycles are counted at the TSC's fixed rate (the nominal frequency on CPUs with an
//! invariant TSC, `constant_tsc` and `nonstop_tsc` in /proc/cpuinfo), not at the core's current
//! clock: the same unit DPDK's `rte_rdtsc` and testpmd's `--record-core-cycles` use, and one
//! that converts exactly to time through [`TscClock::hz`]. On other architectures the counter is
//! CLOCK_MONOTONIC in ns (a 1 GHz "TSC"), so the accounting still adds up there.
#![allow(unsafe_code)]

use std::time::Instant;

/// The counter now.
#[inline]
pub fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC reads a register and has no preconditions; every x86_64 CPU has it.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        crate::packet::monotonic_ns()
    }
}

/// The counter's rate, measured against the monotonic clock since this value was made: the
/// longer it lives, the more exact (one `Instant` read and one counter read per call).
#[derive(Debug, Clone, Copy)]
pub struct TscClock {
    tsc0: u64,
    t0: Instant,
}

impl TscClock {
    /// Starts measuring; keep it for the life of the process for the best rate.
    pub fn new() -> Self {
        Self {
            tsc0: cycles(),
            t0: Instant::now(),
        }
    }

    /// Counter ticks per second; `None` until a millisecond has passed (too short to tell).
    pub fn hz(&self) -> Option<f64> {
        let (tsc, ns) = (cycles(), self.t0.elapsed().as_nanos());
        (ns >= 1_000_000).then(|| tsc.wrapping_sub(self.tsc0) as f64 * 1e9 / ns as f64)
    }
}

impl Default for TscClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_moves_forward_at_a_plausible_rate() {
        let clock = TscClock::new();
        assert_eq!(clock.hz(), None, "too early to tell");
        let a = cycles();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = cycles();
        assert!(b > a);
        let hz = clock.hz().expect("20 ms is enough");
        // Any CPU of the last decades, and the 1 GHz fallback.
        assert!((1e8..1e10).contains(&hz), "{hz} Hz");
        // 20 ms of sleep is at least 20 ms of ticks at that rate.
        assert!((b - a) as f64 >= 0.019 * hz, "{} ticks at {hz} Hz", b - a);
    }
}
