//! Counters of what the service did, for tests, benchmarks and logs.
//!
//! Plain atomics with relaxed ordering: each counter is independent and
//! read only for reporting, so no ordering between them is needed.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by the cache, the click pipeline and the handlers.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Redirect lookups (hits and misses of every layer).
    pub lookups: AtomicU64,
    /// Lookups answered by Redis.
    pub redis_hits: AtomicU64,
    /// Redis commands that failed or timed out.
    pub redis_errors: AtomicU64,
    /// Values read from Redis that did not parse, treated as misses.
    pub redis_garbage: AtomicU64,
    /// Lookups that reached the store.
    pub store_loads: AtomicU64,
    /// Clicks dropped because the click channel was full or closed.
    pub clicks_dropped: AtomicU64,
    /// Clicks written to the store.
    pub clicks_flushed: AtomicU64,
    /// Clicks lost because the store kept failing.
    pub clicks_lost: AtomicU64,
    /// Redirects refused with 429 because the client's miss budget was spent.
    pub misses_refused: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// See [`Metrics::lookups`].
    pub lookups: u64,
    /// See [`Metrics::redis_hits`].
    pub redis_hits: u64,
    /// See [`Metrics::redis_errors`].
    pub redis_errors: u64,
    /// See [`Metrics::redis_garbage`].
    pub redis_garbage: u64,
    /// See [`Metrics::store_loads`].
    pub store_loads: u64,
    /// See [`Metrics::clicks_dropped`].
    pub clicks_dropped: u64,
    /// See [`Metrics::clicks_flushed`].
    pub clicks_flushed: u64,
    /// See [`Metrics::clicks_lost`].
    pub clicks_lost: u64,
    /// See [`Metrics::misses_refused`].
    pub misses_refused: u64,
}

impl Metrics {
    /// Adds one to `counter`.
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            lookups: get(&self.lookups),
            redis_hits: get(&self.redis_hits),
            redis_errors: get(&self.redis_errors),
            redis_garbage: get(&self.redis_garbage),
            store_loads: get(&self.store_loads),
            clicks_dropped: get(&self.clicks_dropped),
            clicks_flushed: get(&self.clicks_flushed),
            clicks_lost: get(&self.clicks_lost),
            misses_refused: get(&self.misses_refused),
        }
    }
}
