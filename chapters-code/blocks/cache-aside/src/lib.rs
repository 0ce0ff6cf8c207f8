//! Part II block: cache-aside that never contradicts the database.
//!
//! A cache-aside read is "look in the cache; on a miss read the database
//! and put what you read into the cache". The last step is the trap: the
//! value was read at one moment and is written at a later one, and a writer
//! may have changed or deleted the row in between and already invalidated
//! the cache. A plain `SET` then puts the old value back, for every
//! instance, for the whole TTL. This crate closes that race and states how
//! stale a reader can be.
//!
//! - **Conditional fills** ([`rule::fill_decision`], the `FILL` script in
//!   [`redis`]): each key has a version token beside it. A reader takes the
//!   token *before* it reads the database; every change writes a fresh
//!   token *after* the database committed; a fill stores only if the token
//!   is still the reader's. A fill that read before a change therefore
//!   cannot land after it. This is the ticket idea of Facebook's memcache
//!   leases, kept in Redis with a Lua script.
//! - **Tombstones** ([`CacheAside::tombstone`]): a delete moves the version
//!   and leaves the answer "gone" in place for a short TTL, so the readers
//!   after it need no database read and no racing fill can store the row.
//! - **Bounded negative entries**: a "not found" lives a short TTL, and at
//!   most a fixed number of them exist in Redis at once (a sorted set by
//!   expiry), and each keeps its version key only as long as itself (one
//!   the set refuses keeps none), so a new item is not hidden long and a
//!   scanner's guesses leave at most twice the limit in keys. A
//!   [`CacheAside::peek`] writes nothing. In the process, moka's capacity
//!   bounds them.
//! - **The staleness bound** ([`rule::Bound`]): after a change's
//!   invalidation returns, Redis never serves the old value; a process's
//!   memory may, for at most its TTL plus the load timeout.
//! - **Fail open**: every Redis call has a timeout; reads and fills also a
//!   breaker. Changes pass the breaker and return a [`ChangeError`] when
//!   Redis did not apply them, for the caller to retry. Garbage read back
//!   is a miss and an [`Event::Garbage`], never a panic.
//! - **The harness** ([`harness`]): two instances, a load paused between
//!   its database read and its fill, a change on the other, and readers
//!   checked against the bound. The block's tests and the chapters' use it.
//!
//! Modules: [`rule`] (pure: keys, tokens, the fill rule, the bound),
//! [`redis`] (the shared layer), [`aside`] (the read and write paths with
//! the in-process layer), [`harness`], [`metrics`].

pub mod aside;
#[cfg(feature = "book")]
pub mod book;
pub mod harness;
pub mod metrics;
pub mod redis;
pub mod rule;

pub use aside::{CacheAside, FillHook, LoadError, LocalConfig};
pub use metrics::{CacheMetrics, Event, Ignore, Observer};
pub use redis::{ChangeError, FillMode, FillOutcome, Lookup, RedisCache, RedisConfig};
pub use rule::{Bound, FillDecision, Key, KeyError, Token};

// ANCHOR: codec
/// How values are written to Redis and read back. `decode` parses with the
/// rules of input: anything `encode` could not have produced is `None`.
pub trait Codec: Send + Sync + 'static {
    /// What is cached; a "not found" is a value too (see [`Codec::is_negative`]).
    type Value: Clone + Send + Sync + 'static;

    /// The value as a Redis string.
    fn encode(&self, value: &Self::Value) -> String;

    /// The value `raw` stands for, or `None` for anything else.
    fn decode(&self, raw: &str) -> Option<Self::Value>;

    /// Whether `value` says "no such item": cached briefly and bounded in number.
    fn is_negative(&self, value: &Self::Value) -> bool;
}
// ANCHOR_END: codec
