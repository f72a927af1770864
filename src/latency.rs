//! Latency histograms for `SHOW LATENCY` and the metrics endpoint: lock-free log-linear buckets (four per power of two, so
//! a percentile is within 25% of the true value) over microseconds, merged on read.
//!
//! Also home of [`Shards`], the per-thread copies that keep data-path counters (these histograms
//! and [`crate::stats::PoolStats`]) from bouncing one cache line between every worker thread.

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Four buckets per power of two over 64 bits, plus the exact values 0..4.
const BUCKETS: usize = 4 + 62 * 4;

/// Cap on shards: each pool holds 3 histograms of 2 KiB per shard, and some run thousands of pools.
const MAX_SHARDS: usize = 4;

/// Shards per sharded value: one per core up to [`MAX_SHARDS`], as a power of two.
fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, NonZeroUsize::get)
            .min(MAX_SHARDS)
            .next_power_of_two()
    })
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Round-robin on a thread's first write, so a runtime's workers land on distinct shards.
    static SLOT: Cell<usize> = Cell::new(NEXT_SLOT.fetch_add(1, Relaxed));
}

/// One copy of `T` per shard; each thread writes its own, readers combine them all.
#[derive(Debug)]
pub(crate) struct Shards<T>(Box<[T]>);

impl<T: Default> Default for Shards<T> {
    fn default() -> Self {
        Shards((0..shard_count()).map(|_| T::default()).collect())
    }
}

impl<T> Shards<T> {
    /// The calling thread's copy.
    pub(crate) fn mine(&self) -> &T {
        // `default` makes at least one shard, and `slot & (len - 1) <= len - 1`, so the index is
        // in range; len being a power of two makes the mask spread threads evenly.
        &self.0[SLOT.get() & (self.0.len() - 1)]
    }

    /// Every copy, to combine on read.
    pub(crate) fn all(&self) -> &[T] {
        &self.0
    }
}

/// One shard's buckets; the alignment keeps two shards off a shared (or prefetched-pair) cache line.
#[derive(Debug)]
#[repr(align(128))]
struct Buckets([AtomicU64; BUCKETS]);

impl Default for Buckets {
    fn default() -> Self {
        Buckets([const { AtomicU64::new(0) }; BUCKETS])
    }
}

/// A histogram of microsecond durations; recording is one relaxed atomic add on the thread's shard.
#[derive(Debug, Default)]
pub struct Histogram {
    shards: Shards<Buckets>,
}

fn bucket(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros() as usize; // ≥ 2
    let sub = ((us >> (exp - 2)) & 3) as usize;
    4 + (exp - 2) * 4 + sub
}

/// The largest value that falls into bucket `index` (percentiles report this upper bound).
fn upper_bound(index: usize) -> u64 {
    if index < 4 {
        return index as u64;
    }
    let exp = (index - 4) / 4 + 2;
    let sub = ((index - 4) % 4) as u64;
    let width = 1u64 << (exp - 2);
    ((4 + sub) << (exp - 2)).saturating_add(width - 1)
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&self, us: u64) {
        if let Some(c) = self.shards.mine().0.get(bucket(us)) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// A plain copy of the counts, for merging pools of one database.
    pub fn snapshot(&self) -> Snapshot {
        let mut sum = vec![0u64; BUCKETS];
        for shard in self.shards.all() {
            for (total, c) in sum.iter_mut().zip(&shard.0) {
                // Wrapping, as one shared atomic would.
                *total = total.wrapping_add(c.load(Relaxed));
            }
        }
        Snapshot(sum)
    }
}

/// Bucket counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot(Vec<u64>);

impl Snapshot {
    /// Adds another snapshot's counts.
    pub fn merge(&mut self, other: &Snapshot) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// How many values are certainly at most `limit_us`: the buckets whose every value is ≤ the
    /// limit (a bucket straddling it counts toward the next limit, so this never over-counts).
    pub fn count_at_most(&self, limit_us: u64) -> u64 {
        self.0
            .iter()
            .enumerate()
            .take_while(|(index, _)| upper_bound(*index) <= limit_us)
            .map(|(_, n)| n)
            .sum()
    }

    /// The `q` quantile (0.0..=1.0) in microseconds, as its bucket's upper bound; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        // Rank of the wanted value, 1-based; the float is bounded by total so the cast is exact enough.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, n) in self.0.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_bound(index);
            }
        }
        upper_bound(self.0.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_bounds_contain_their_values() {
        for us in [
            0u64,
            1,
            3,
            4,
            5,
            7,
            8,
            100,
            1000,
            123_456,
            u64::MAX / 2,
            u64::MAX,
        ] {
            let b = bucket(us);
            assert!(b < BUCKETS, "{us}");
            assert!(
                upper_bound(b) >= us,
                "{us}: bucket {b} ends at {}",
                upper_bound(b)
            );
            if b > 0 {
                assert!(upper_bound(b - 1) < us, "{us}");
            }
        }
    }

    #[test]
    fn quantiles_are_within_a_quarter() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(us);
        }
        let s = h.snapshot();
        for (q, exact) in [(0.5, 500u64), (0.95, 950), (0.99, 990)] {
            let got = s.quantile(q);
            assert!(
                got >= exact && got <= exact + exact / 4,
                "p{q}: {got} vs {exact}"
            );
        }
        assert_eq!(Snapshot::default().quantile(0.5), 0);
        let mut merged = s.clone();
        merged.merge(&s);
        assert_eq!(merged.count(), 2000);
        assert_eq!(merged.quantile(0.5), s.quantile(0.5));
    }

    #[test]
    fn count_at_most_never_over_counts() {
        let h = Histogram::default();
        for us in [0u64, 3, 7, 8, 100, 999, 1000, 1001, 5000] {
            h.record(us);
        }
        let s = h.snapshot();
        assert_eq!(s.count_at_most(u64::MAX), 9);
        assert_eq!(s.count_at_most(7), 3);
        // 896..=1023 share a bucket: at 1000 µs the values 999 and 1000 are not yet certain.
        assert_eq!(s.count_at_most(1000), 5);
        assert_eq!(s.count_at_most(1023), 8);
        let mut last = 0;
        for limit in (0..10_000).step_by(7) {
            let n = s.count_at_most(limit);
            assert!(n >= last);
            last = n;
        }
    }
}
