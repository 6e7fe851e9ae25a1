//! The counters of an instance, and the lock-free latency histogram of its calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one instance.
#[derive(Debug, Default)]
pub struct InstanceStats {
    /// Batches accepted.
    pub batches_ok: AtomicU64,
    /// Batches that ended in a permanent or fatal error.
    pub batches_failed: AtomicU64,
    /// Retries after transient errors.
    pub retries: AtomicU64,
    /// Records accepted.
    pub records_ok: AtomicU64,
    /// Records refused as permanently bad.
    pub records_rejected: AtomicU64,
    /// Records a best-effort instance was too slow to take.
    pub records_dropped: AtomicU64,
    /// How long `handle_batch` calls take.
    pub call_seconds: Histogram,
    /// Calls that carried several queued batches at once.
    pub coalesced: AtomicU64,
}

/// A latency histogram with fixed buckets, updated without locks.
#[derive(Debug)]
pub struct Histogram {
    counts: [AtomicU64; HISTOGRAM_BOUNDS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// Upper bounds (seconds) of the histogram buckets; `+Inf` is implied.
pub const HISTOGRAM_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = HISTOGRAM_BOUNDS.iter().position(|b| secs <= *b)
            && let Some(c) = self.counts.get(i)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// Cumulative counts per bucket bound, the total count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut acc = 0;
        let buckets = HISTOGRAM_BOUNDS
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                acc += c.load(Ordering::Relaxed);
                (*b, acc)
            })
            .collect();
        (
            buckets,
            self.count.load(Ordering::Relaxed),
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }
}
