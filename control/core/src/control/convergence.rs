//! The convergence histogram: from reading the first feed line of a batch to every worker
//! running the generation that batch produced.

use std::time::Duration;

use ecmp_proto::ctl::ConvergenceReply;
use hdrhistogram::Histogram;

use super::scrape::SecondsHistogram;

/// Longest time recorded; anything slower is clamped (and still counted).
const MAX_NS: u64 = 60_000_000_000;

#[derive(Debug)]
pub(super) struct Convergence {
    histogram: Option<Histogram<u64>>,
}

impl Convergence {
    pub(super) fn new() -> Self {
        // 3 significant digits over 1 ns..60 s: a few tens of KiB, allocated once.
        Convergence {
            histogram: Histogram::new_with_bounds(1, MAX_NS, 3).ok(),
        }
    }

    pub(super) fn record(&mut self, took: Duration) {
        if let Some(h) = &mut self.histogram {
            let ns = u64::try_from(took.as_nanos()).unwrap_or(MAX_NS);
            h.saturating_record(ns.clamp(1, MAX_NS));
        }
    }

    pub(super) fn report(&self) -> ConvergenceReply {
        let Some(h) = self.histogram.as_ref().filter(|h| !h.is_empty()) else {
            return ConvergenceReply {
                samples: 0,
                p50_us: 0.0,
                p99_us: 0.0,
                max_us: 0.0,
                histogram: Vec::new(),
            };
        };
        let us = |ns: u64| ns as f64 / 1000.0;
        // Log-2 buckets from 1 µs: readable in a terminal, fine enough for a p99 target of 1 ms.
        let histogram = h
            .iter_log(1000, 2.0)
            .filter(|v| v.count_since_last_iteration() > 0)
            .map(|v| (us(v.value_iterated_to()), v.count_since_last_iteration()))
            .collect();
        ConvergenceReply {
            samples: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p99_us: us(h.value_at_quantile(0.99)),
            max_us: us(h.max()),
            histogram,
        }
    }
}

impl Convergence {
    /// The samples counted into `bounds` (upper bounds in seconds, ascending): fixed buckets,
    /// so that a scraper sees the same series on every scrape, empty ones included.
    pub(super) fn seconds_histogram(&self, bounds: &[f64]) -> SecondsHistogram {
        let mut buckets: Vec<(f64, u64)> = bounds.iter().map(|&b| (b, 0)).collect();
        let Some(h) = self.histogram.as_ref().filter(|h| !h.is_empty()) else {
            return SecondsHistogram {
                sum: 0.0,
                count: 0,
                buckets,
            };
        };
        for v in h.iter_recorded() {
            // The highest value the sample's bucket stands for: never counted below its bound.
            let s = h.highest_equivalent(v.value_iterated_to()) as f64 / 1e9;
            let n = v.count_at_value();
            for (bound, count) in buckets.iter_mut() {
                if s <= *bound {
                    *count += n;
                }
            }
        }
        SecondsHistogram {
            sum: h.mean() * h.len() as f64 / 1e9,
            count: h.len(),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_buckets_follow_the_samples() {
        let mut c = Convergence::new();
        assert_eq!(c.report().samples, 0);
        for _ in 0..99 {
            c.record(Duration::from_micros(100));
        }
        c.record(Duration::from_millis(5));
        let r = c.report();
        assert_eq!(r.samples, 100);
        assert!((99.0..=101.0).contains(&r.p50_us), "{r:?}");
        assert!((99.0..=101.0).contains(&r.p99_us), "{r:?}");
        assert!((4990.0..=5010.0).contains(&r.max_us), "{r:?}");
        assert_eq!(r.histogram.iter().map(|b| b.1).sum::<u64>(), 100);
        assert_eq!(r.histogram.len(), 2, "{r:?}");
    }

    #[test]
    fn the_seconds_histogram_is_cumulative_over_fixed_bounds() {
        let mut c = Convergence::new();
        let bounds = [0.0005, 0.001, 0.01];
        let empty = c.seconds_histogram(&bounds);
        assert_eq!(empty.count, 0);
        assert_eq!(empty.buckets, vec![(0.0005, 0), (0.001, 0), (0.01, 0)]);
        for _ in 0..3 {
            c.record(Duration::from_micros(100));
        }
        c.record(Duration::from_millis(5));
        c.record(Duration::from_secs(2));
        let h = c.seconds_histogram(&bounds);
        assert_eq!(h.count, 5);
        assert_eq!(h.buckets, vec![(0.0005, 3), (0.001, 3), (0.01, 4)]);
        assert!((2.0052..2.0056).contains(&h.sum), "{h:?}");
    }
}
