//! The token bucket, written here: pure state, time passed in.
//!
//! Tokens are counted in nanoseconds of credit (one token is one `period`),
//! so refilling is an addition of elapsed nanoseconds and nothing is ever
//! rounded: a replayed trace gives the same answers on every machine, and
//! the bucket decides exactly as GCRA does (see `tests/equivalence.rs`).

use std::sync::Mutex;
use std::time::Duration;

use crate::Limiter;
use crate::clock::{Clock, MonotonicClock};
use crate::quota::{Decision, Quota, Refused};

// ANCHOR: token_bucket
/// One client's bucket: credit in nanoseconds and when it was last counted (16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    credit: u64,
    at: u64,
}

impl TokenBucket {
    /// A full bucket at `now`: `burst` requests available at once.
    pub fn full(quota: &Quota, now: u64) -> Self {
        Self {
            credit: quota.capacity_ns(),
            at: now,
        }
    }

    /// The credit at `now`: what was left plus the time since, up to a full bucket.
    fn refilled(&self, quota: &Quota, now: u64) -> u64 {
        // A clock that went backwards refills nothing.
        let elapsed = now.saturating_sub(self.at);
        self.credit.saturating_add(elapsed).min(quota.capacity_ns())
    }

    /// Takes one token at `now`, or says how long until one is there.
    pub fn check(&mut self, quota: &Quota, now: u64) -> Decision {
        let credit = self.refilled(quota, now);
        self.at = self.at.max(now);
        if credit >= quota.period_ns() {
            self.credit = credit - quota.period_ns();
            Ok(())
        } else {
            self.credit = credit;
            Err(Refused {
                retry_after: Duration::from_nanos(quota.period_ns() - credit),
            })
        }
    }

    /// True when the bucket is full at `now`: forgetting it changes no later decision.
    pub fn is_full(&self, quota: &Quota, now: u64) -> bool {
        self.refilled(quota, now) == quota.capacity_ns()
    }

    /// The time at which the bucket will be full again if nothing takes from it.
    pub fn full_at(&self, quota: &Quota) -> u64 {
        let missing = quota.capacity_ns().saturating_sub(self.credit);
        self.at.saturating_add(missing)
    }
}
// ANCHOR_END: token_bucket

/// One bucket shared by every request: a global limit (flash-sale admission).
pub struct GlobalBucket<C = MonotonicClock> {
    quota: Quota,
    clock: C,
    bucket: Mutex<TokenBucket>,
}

impl GlobalBucket<MonotonicClock> {
    /// A full bucket on the process's clock.
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, MonotonicClock::new())
    }
}

impl<C: Clock> GlobalBucket<C> {
    /// A full bucket on `clock`.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        let bucket = TokenBucket::full(&quota, clock.now());
        Self {
            quota,
            clock,
            bucket: Mutex::new(bucket),
        }
    }

    /// The limit.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }
}

impl<K: ?Sized, C: Clock> Limiter<K> for GlobalBucket<C> {
    fn check(&self, _key: &K) -> Decision {
        // Read the clock inside the lock, so two callers' times reach the
        // bucket in order.
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        bucket.check(&self.quota, self.clock.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_period() {
        let q = Quota::with_period(Duration::from_millis(100), 3).expect("quota");
        let mut b = TokenBucket::full(&q, 0);
        for _ in 0..3 {
            assert_eq!(b.check(&q, 0), Ok(()));
        }
        assert_eq!(
            b.check(&q, 0),
            Err(Refused {
                retry_after: Duration::from_millis(100)
            })
        );
        assert_eq!(
            b.check(&q, 40_000_000),
            Err(Refused {
                retry_after: Duration::from_millis(60)
            })
        );
        assert_eq!(b.check(&q, 100_000_000), Ok(()));
        assert!(!b.is_full(&q, 100_000_000));
        assert_eq!(b.full_at(&q), 400_000_000);
        assert!(b.is_full(&q, 400_000_000));
    }
}
