//! Part II block: rate limiting and admission.
//!
//! A limit protects the service from a client that asks too much (per
//! client) and from all clients together asking more than it can finish
//! (global admission). It must be checked before any work is done for the
//! request: before its body is read, before any store is touched.
//!
//! - [`quota`]: a limit (one request per period, a burst), and a refusal
//!   with its `Retry-After`;
//! - [`clock`]: time the caller can replace, so every decision can be
//!   replayed exactly in a test;
//! - [`bucket`]: the token bucket, written here, as pure state
//!   ([`TokenBucket`]) and as one global bucket ([`GlobalBucket`]);
//! - [`gcra`]: GCRA from the `governor` crate behind the same trait;
//!   configured alike, it makes the same decisions as the bucket;
//! - [`keyed`]: a bucket per client in a map bounded in memory;
//! - [`redis_window`]: a sliding window in Redis, one Lua script, for a
//!   limit shared by several instances;
//! - [`layer`]: the tower layer that refuses with `429` and `Retry-After`
//!   before the handler runs, and the client key (the TCP peer, or the last
//!   `X-Forwarded-For` entry only behind a proxy we run);
//! - [`fairness`]: the burst-beside-steady-clients experiment of the page;
//! - [`windows`]: pure models of window counters, for the boundary burst.

use std::future::Future;
use std::hash::Hash;

pub mod bucket;
pub mod clock;
pub mod fairness;
pub mod gcra;
pub mod keyed;
pub mod layer;
pub mod quota;
pub mod redis_window;
pub mod windows;

#[cfg(feature = "book")]
pub mod book;
#[cfg(feature = "book")]
pub mod report;

pub use bucket::{GlobalBucket, TokenBucket};
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use gcra::{GovernorGcra, GovernorKeyed};
pub use keyed::KeyedBuckets;
pub use layer::{RateLimitLayer, by_client_ip, client_ip, everyone, too_many_requests};
pub use quota::{Decision, Quota, QuotaError, Refused};
pub use redis_window::{OnError, RedisWindow};

// ANCHOR: traits
/// An in-process limiter: answers at once, for a key.
pub trait Limiter<K: ?Sized>: Send + Sync + 'static {
    /// Admits one request of `key` (and counts it), or refuses with a wait.
    fn check(&self, key: &K) -> Decision;
}

/// A limiter as the layer sees it: in process, or across the network (Redis).
pub trait AsyncLimiter<K>: Send + Sync + 'static {
    /// Admits one request of `key` (and counts it), or refuses with a wait.
    fn check(&self, key: &K) -> impl Future<Output = Decision> + Send;
}
// ANCHOR_END: traits

/// Admits everything: the ceiling the limiters are measured against.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLimit;

impl<K: ?Sized> Limiter<K> for NoLimit {
    fn check(&self, _key: &K) -> Decision {
        Ok(())
    }
}

// The in-process limiters answer the layer at once. (A blanket impl over
// every `Limiter` would overlap with the Redis one for the compiler.)
impl<K: Send + Sync> AsyncLimiter<K> for NoLimit {
    fn check(&self, key: &K) -> impl Future<Output = Decision> + Send {
        std::future::ready(Limiter::check(self, key))
    }
}

impl<K: Send + Sync, C: Clock> AsyncLimiter<K> for GlobalBucket<C> {
    fn check(&self, key: &K) -> impl Future<Output = Decision> + Send {
        std::future::ready(Limiter::check(self, key))
    }
}

impl<K, C> AsyncLimiter<K> for GovernorGcra<C>
where
    K: Send + Sync,
    C: governor::clock::Clock + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    fn check(&self, key: &K) -> impl Future<Output = Decision> + Send {
        std::future::ready(Limiter::check(self, key))
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static, C: Clock> AsyncLimiter<K>
    for KeyedBuckets<K, C>
{
    fn check(&self, key: &K) -> impl Future<Output = Decision> + Send {
        std::future::ready(Limiter::check(self, key))
    }
}

impl<K, C> AsyncLimiter<K> for gcra::GovernorKeyed<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: governor::clock::Clock + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    fn check(&self, key: &K) -> impl Future<Output = Decision> + Send {
        std::future::ready(Limiter::check(self, key))
    }
}
