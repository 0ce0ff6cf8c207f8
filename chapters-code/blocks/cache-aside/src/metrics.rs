//! What the cache reports: events, and a sink of counters for them.
//!
//! A chapter that has its own counters implements [`Observer`] for them;
//! [`CacheMetrics`] is the block's own sink (tests, benches).

use std::sync::atomic::{AtomicU64, Ordering};

/// Something the cache did that an operator wants counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A lookup (any layer).
    Lookup,
    /// Redis answered with a readable entry.
    RedisHit,
    /// A Redis command failed or timed out (the breaker then opens).
    RedisError,
    /// Redis held a value the codec does not accept: read as a miss.
    Garbage,
    /// The database was read.
    Load,
    /// A fill was stored.
    FillStored,
    /// A fill was refused: a change came between its ticket and its write.
    FillStale,
    /// A "not found" was not cached: the negative set is full.
    NegativeFull,
}

impl Event {
    /// Every event, in the order of [`CacheMetrics`]' counters.
    pub const ALL: [Event; 8] = [
        Event::Lookup,
        Event::RedisHit,
        Event::RedisError,
        Event::Garbage,
        Event::Load,
        Event::FillStored,
        Event::FillStale,
        Event::NegativeFull,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Receives the cache's events.
pub trait Observer: Send + Sync + 'static {
    /// Called once per event; must be cheap (it runs on the read path).
    fn record(&self, event: Event);
}

/// Ignores every event.
#[derive(Debug, Default)]
pub struct Ignore;

impl Observer for Ignore {
    fn record(&self, _: Event) {}
}

/// A counter per [`Event`].
#[derive(Debug, Default)]
pub struct CacheMetrics {
    counts: [AtomicU64; Event::ALL.len()],
}

impl CacheMetrics {
    /// How many times `event` happened.
    pub fn get(&self, event: Event) -> u64 {
        self.counts[event.index()].load(Ordering::Relaxed)
    }
}

impl Observer for CacheMetrics {
    fn record(&self, event: Event) {
        // Relaxed: independent counters, read only for reports.
        self.counts[event.index()].fetch_add(1, Ordering::Relaxed);
    }
}
