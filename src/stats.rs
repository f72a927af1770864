//! Traffic counters with PgBouncer's SHOW STATS definitions, updated on the data path with relaxed
//! atomics on the writing thread's shard (no lock, no shared cache line), and plain snapshots,
//! summed over the shards, for the admin console and metrics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::latency::Shards;

/// One shard of a pool's counters; the alignment keeps two shards off a shared (or
/// prefetched-pair) cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counters {
    server_assignment_count: AtomicU64,
    xact_count: AtomicU64,
    query_count: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    xact_time: AtomicU64,
    query_time: AtomicU64,
    wait_time: AtomicU64,
    client_parse_count: AtomicU64,
    server_parse_count: AtomicU64,
    bind_count: AtomicU64,
    client_login_count: AtomicU64,
}

/// Counters of one pool since start. Times are microseconds, sizes bytes.
#[derive(Debug, Default)]
pub struct PoolStats {
    // Per-thread shards so worker threads never write the same cache line; summed on read.
    counters: Shards<Counters>,
    period: Mutex<Period>,
    /// Query times (µs) for SHOW LATENCY.
    pub query_latency: crate::latency::Histogram,
    /// Client wait times (µs) for SHOW LATENCY.
    pub wait_latency: crate::latency::Histogram,
    /// Transaction times (µs) for the metrics endpoint.
    pub xact_latency: crate::latency::Histogram,
}

/// The last `stats_period`: totals at its end, what changed during it, and its length.
#[derive(Debug, Clone, Copy, Default)]
struct Period {
    last: Totals,
    delta: Totals,
    secs: u64,
}

/// A copy of [`PoolStats`] at one moment, in SHOW STATS_TOTALS column order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Times a server was handed to a client.
    pub server_assignment_count: u64,
    /// Transactions pooled.
    pub xact_count: u64,
    /// Statements pooled.
    pub query_count: u64,
    /// Bytes from clients.
    pub bytes_received: u64,
    /// Bytes to clients.
    pub bytes_sent: u64,
    /// µs linked to a server inside transactions.
    pub xact_time: u64,
    /// µs executing queries.
    pub query_time: u64,
    /// µs clients waited for a server.
    pub wait_time: u64,
    /// Parse messages from clients.
    pub client_parse_count: u64,
    /// Parse messages sent to servers.
    pub server_parse_count: u64,
    /// Bind messages forwarded.
    pub bind_count: u64,
    /// Successful client logins.
    pub client_login_count: u64,
}

impl Totals {
    /// Field-wise `self - earlier` (never below zero).
    pub fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            server_assignment_count: self
                .server_assignment_count
                .saturating_sub(earlier.server_assignment_count),
            xact_count: self.xact_count.saturating_sub(earlier.xact_count),
            query_count: self.query_count.saturating_sub(earlier.query_count),
            bytes_received: self.bytes_received.saturating_sub(earlier.bytes_received),
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            xact_time: self.xact_time.saturating_sub(earlier.xact_time),
            query_time: self.query_time.saturating_sub(earlier.query_time),
            wait_time: self.wait_time.saturating_sub(earlier.wait_time),
            client_parse_count: self
                .client_parse_count
                .saturating_sub(earlier.client_parse_count),
            server_parse_count: self
                .server_parse_count
                .saturating_sub(earlier.server_parse_count),
            bind_count: self.bind_count.saturating_sub(earlier.bind_count),
            client_login_count: self
                .client_login_count
                .saturating_sub(earlier.client_login_count),
        }
    }

    /// PgBouncer's averages over a period of `secs` seconds in which `self` happened: counts and
    /// bytes per second; xact_time, query_time and wait_time in µs per transaction, query and
    /// server assignment.
    pub fn averages(&self, secs: u64) -> Totals {
        let rate = |n: u64| n.checked_div(secs).unwrap_or(0);
        let per = |t: u64, n: u64| t.checked_div(n).unwrap_or(0);
        Totals {
            server_assignment_count: rate(self.server_assignment_count),
            xact_count: rate(self.xact_count),
            query_count: rate(self.query_count),
            bytes_received: rate(self.bytes_received),
            bytes_sent: rate(self.bytes_sent),
            xact_time: per(self.xact_time, self.xact_count),
            query_time: per(self.query_time, self.query_count),
            wait_time: per(self.wait_time, self.server_assignment_count),
            client_parse_count: rate(self.client_parse_count),
            server_parse_count: rate(self.server_parse_count),
            bind_count: rate(self.bind_count),
            client_login_count: rate(self.client_login_count),
        }
    }

    /// Field-wise sum (SHOW STATS sums the pools of a database).
    pub fn add(&mut self, o: &Totals) {
        self.server_assignment_count += o.server_assignment_count;
        self.xact_count += o.xact_count;
        self.query_count += o.query_count;
        self.bytes_received += o.bytes_received;
        self.bytes_sent += o.bytes_sent;
        self.xact_time += o.xact_time;
        self.query_time += o.query_time;
        self.wait_time += o.wait_time;
        self.client_parse_count += o.client_parse_count;
        self.server_parse_count += o.server_parse_count;
        self.bind_count += o.bind_count;
        self.client_login_count += o.client_login_count;
    }
}

impl PoolStats {
    /// A server was assigned after the client waited `wait_us`.
    pub fn assigned(&self, wait_us: u64) {
        let c = self.counters.mine();
        c.server_assignment_count.fetch_add(1, Relaxed);
        self.wait_latency.record(wait_us);
        if wait_us > 0 {
            c.wait_time.fetch_add(wait_us, Relaxed);
        }
    }

    /// A transaction ended after `us` microseconds.
    pub fn xact(&self, us: u64) {
        let c = self.counters.mine();
        c.xact_count.fetch_add(1, Relaxed);
        c.xact_time.fetch_add(us, Relaxed);
        self.xact_latency.record(us);
    }

    /// A query (ReadyForQuery round trip) ended after `us` microseconds.
    pub fn query(&self, us: u64) {
        let c = self.counters.mine();
        c.query_count.fetch_add(1, Relaxed);
        c.query_time.fetch_add(us, Relaxed);
        self.query_latency.record(us);
    }

    /// Bytes moved: `received` from the client, `sent` to it.
    pub fn traffic(&self, received: u64, sent: u64) {
        let c = self.counters.mine();
        if received > 0 {
            c.bytes_received.fetch_add(received, Relaxed);
        }
        if sent > 0 {
            c.bytes_sent.fetch_add(sent, Relaxed);
        }
    }

    /// A client logged in.
    pub fn login(&self) {
        self.counters
            .mine()
            .client_login_count
            .fetch_add(1, Relaxed);
    }

    /// Parse/Bind counts of the prepared-statement path.
    pub fn prepared(&self, client_parse: u64, server_parse: u64, bind: u64) {
        let c = self.counters.mine();
        c.client_parse_count.fetch_add(client_parse, Relaxed);
        c.server_parse_count.fetch_add(server_parse, Relaxed);
        c.bind_count.fetch_add(bind, Relaxed);
    }

    /// Closes a `stats_period` of `secs` seconds: what happened since the last tick becomes
    /// the period [`PoolStats::last_period`] reports.
    pub fn tick(&self, secs: u64) {
        let now = self.totals();
        let mut period = self
            .period
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        period.delta = now.since(&period.last);
        period.last = now;
        period.secs = secs;
    }

    /// What changed during the last closed period, and its length in seconds.
    pub fn last_period(&self) -> (Totals, u64) {
        let period = self
            .period
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (period.delta, period.secs)
    }

    /// The counters now.
    pub fn totals(&self) -> Totals {
        // Wrapping, as one shared atomic would.
        let sum = |field: fn(&Counters) -> &AtomicU64| {
            self.counters
                .all()
                .iter()
                .fold(0u64, |n, c| n.wrapping_add(field(c).load(Relaxed)))
        };
        Totals {
            server_assignment_count: sum(|c| &c.server_assignment_count),
            xact_count: sum(|c| &c.xact_count),
            query_count: sum(|c| &c.query_count),
            bytes_received: sum(|c| &c.bytes_received),
            bytes_sent: sum(|c| &c.bytes_sent),
            xact_time: sum(|c| &c.xact_time),
            query_time: sum(|c| &c.query_time),
            wait_time: sum(|c| &c.wait_time),
            client_parse_count: sum(|c| &c.client_parse_count),
            server_parse_count: sum(|c| &c.server_parse_count),
            bind_count: sum(|c| &c.bind_count),
            client_login_count: sum(|c| &c.client_login_count),
        }
    }
}

/// One unit of a gauge (things now in some state: lookups in flight, cancels waiting), added
/// when made and taken back when dropped, also when the task holding it is cancelled.
pub struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    /// Adds one to `gauge` until the returned value is dropped.
    pub fn new(gauge: &'a AtomicUsize) -> Self {
        gauge.fetch_add(1, Relaxed);
        Counted(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let s = PoolStats::default();
        s.assigned(10);
        s.xact(100);
        s.query(40);
        s.query(50);
        s.traffic(7, 9);
        let mut sum = s.totals();
        sum.add(&s.totals());
        assert_eq!(sum.query_count, 4);
        assert_eq!(sum.query_time, 180);
        assert_eq!(sum.wait_time, 20);
        assert_eq!((sum.bytes_received, sum.bytes_sent), (14, 18));
    }

    #[test]
    fn shards_sum_exactly_across_threads() {
        let s = PoolStats::default();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        s.xact(1);
                        s.query_latency.record(5);
                    }
                });
            }
        });
        let t = s.totals();
        assert_eq!((t.xact_count, t.xact_time), (40_000, 40_000));
        assert_eq!(s.xact_latency.snapshot().count(), 40_000);
        let q = s.query_latency.snapshot();
        assert_eq!(
            (q.count(), q.count_at_most(4), q.count_at_most(5)),
            (40_000, 0, 40_000)
        );
    }

    #[test]
    fn averages_follow_pgbouncer() {
        let s = PoolStats::default();
        s.tick(60);
        for _ in 0..120 {
            s.assigned(5);
            s.xact(100);
            s.query(40);
        }
        s.traffic(6000, 600);
        s.tick(60);
        let (delta, secs) = s.last_period();
        let avg = delta.averages(secs);
        assert_eq!((avg.xact_count, avg.query_count), (2, 2));
        assert_eq!((avg.bytes_received, avg.bytes_sent), (100, 10));
        assert_eq!((avg.xact_time, avg.query_time, avg.wait_time), (100, 40, 5));
    }
}
