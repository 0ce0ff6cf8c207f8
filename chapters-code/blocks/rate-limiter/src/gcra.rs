//! GCRA, from the `governor` crate, behind the same [`Limiter`] trait.
//!
//! GCRA keeps one number per limit, the theoretical arrival time (TAT) of
//! the next request; `governor` stores it in an `AtomicU64` updated by
//! compare-and-swap, so it takes no lock. It decides exactly as the token
//! bucket of [`crate::bucket`] configured with the same [`Quota`]: the
//! bucket's credit is `burst × period − (TAT − now)`.

use governor::clock::{Clock as GovernorClock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};

use crate::Limiter;
use crate::quota::{Decision, Quota, Refused};

// ANCHOR: gcra
/// One GCRA state shared by every request (a global limit), from `governor`.
pub struct GovernorGcra<C: GovernorClock = DefaultClock> {
    inner: governor::RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
}

impl GovernorGcra<DefaultClock> {
    /// A limiter on governor's default clock.
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, DefaultClock::default())
    }
}

impl<C: GovernorClock> GovernorGcra<C> {
    /// A limiter on `clock` (`governor::clock::FakeRelativeClock` in tests).
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        Self {
            inner: governor::RateLimiter::direct_with_clock(quota.to_governor(), clock),
        }
    }
}

impl<K: ?Sized, C> Limiter<K> for GovernorGcra<C>
where
    C: GovernorClock + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    fn check(&self, _key: &K) -> Decision {
        self.inner.check().map_err(|not_until| Refused {
            retry_after: not_until.wait_time_from(self.inner.clock().now()),
        })
    }
}
// ANCHOR_END: gcra

/// A GCRA state per key, from `governor` (its `DashMap`). For comparison:
/// its map grows with every key until `retain_recent` is called, so a
/// service facing invented keys uses [`crate::KeyedBuckets`] instead.
pub struct GovernorKeyed<K: std::hash::Hash + Eq + Clone, C: GovernorClock = DefaultClock> {
    inner: governor::RateLimiter<
        K,
        governor::state::keyed::DashMapStateStore<K>,
        C,
        NoOpMiddleware<C::Instant>,
    >,
}

impl<K: std::hash::Hash + Eq + Clone, C: GovernorClock> GovernorKeyed<K, C> {
    /// A keyed limiter on `clock`.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        Self {
            inner: governor::RateLimiter::dashmap_with_clock(quota.to_governor(), clock),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> GovernorKeyed<K, DefaultClock> {
    /// A keyed limiter on governor's default clock.
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, DefaultClock::default())
    }
}

impl<K, C> Limiter<K> for GovernorKeyed<K, C>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    C: GovernorClock + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    fn check(&self, key: &K) -> Decision {
        self.inner.check_key(key).map_err(|not_until| Refused {
            retry_after: not_until.wait_time_from(self.inner.clock().now()),
        })
    }
}
