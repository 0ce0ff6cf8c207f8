//! The circuit breaker in front of the payment provider.
//!
//! The machine is the retry block's
//! ([`block_retry::breaker`]: closed, open, half-open, a guard that counts
//! a dropped call as a failure, a probe handed back when it never called,
//! a cool-down counted from the end of the call on a monotonic clock).
//! This module fixes its clock to the request's `DateTime<Utc>`, its
//! numbers to the checkout's, and its refusal to the checkout's words and
//! `Retry-After` in whole seconds.
//!
//! What counts as what is the checkout's decision (see `run`): a charge or
//! a declined card is a [`Outcome::Success`] (the provider is up), a
//! timeout or a "failed" answer a [`Outcome::Failure`], and a request that
//! ends before the charge (a replay, bad input, a database error)
//! [`Outcome::NotCalled`]. A call dropped mid-charge counts as a failure,
//! so the HTTP service does not drop one: it runs each checkout in a task of
//! its own (bounded, and waited for at shutdown), and a client that hangs up
//! cannot open the breaker for everyone. A killed process still drops them.

use chrono::{DateTime, TimeDelta, Utc};

pub use block_retry::breaker::{ConfigError as BreakerConfigError, Outcome};

// ANCHOR: config
/// Failures in a row that open the breaker.
pub const FAILURE_THRESHOLD: u32 = 5;
/// How long an open breaker refuses checkouts before it lets one probe through.
pub const COOL_DOWN: TimeDelta = TimeDelta::seconds(30);

/// The breaker's two numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long it stays open (more than zero).
    pub cool_down: TimeDelta,
}
// ANCHOR_END: config

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: FAILURE_THRESHOLD,
            cool_down: COOL_DOWN,
        }
    }
}

/// Where the breaker is, on the request clock.
pub type State = block_retry::breaker::State<DateTime<Utc>>;

/// One checkout's permit: see [`block_retry::breaker::Guard`].
pub type Guard<'a> = block_retry::breaker::Guard<'a, DateTime<Utc>>;

/// The refusal of an open breaker, in the checkout's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the payment provider is failing; nothing was done; retry in {} s",
    .retry_after.num_seconds()
)]
pub struct Refused {
    /// When to try again (whole seconds, at least one: it becomes `Retry-After`).
    pub retry_after: TimeDelta,
}

impl From<block_retry::breaker::Refused> for Refused {
    fn from(r: block_retry::breaker::Refused) -> Self {
        let secs = i64::try_from(r.retry_after_secs()).unwrap_or(i64::MAX / 1_000);
        Self {
            retry_after: TimeDelta::try_seconds(secs).unwrap_or(TimeDelta::MAX),
        }
    }
}

/// The block's breaker on the request clock, shared by every checkout of a process.
#[derive(Debug)]
pub struct Breaker {
    inner: block_retry::breaker::Breaker<DateTime<Utc>>,
}

impl Breaker {
    /// A closed breaker with `config`.
    pub fn new(config: BreakerConfig) -> Result<Self, BreakerConfigError> {
        // A negative cool-down is no cool-down: the block refuses it.
        let cool_down = config.cool_down.to_std().unwrap_or_default();
        Ok(Self {
            inner: block_retry::breaker::Breaker::new(block_retry::breaker::BreakerConfig {
                failure_threshold: config.failure_threshold,
                cool_down,
            })?,
        })
    }

    /// The state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> State {
        self.inner.state(now)
    }

    /// A permit for the checkout starting at `now`, in a guard, or the refusal.
    pub fn guard(&self, now: DateTime<Utc>) -> Result<Guard<'_>, Refused> {
        self.inner.guard(now).map_err(Refused::from)
    }
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            inner: block_retry::breaker::Breaker::new(block_retry::breaker::BreakerConfig {
                failure_threshold: FAILURE_THRESHOLD,
                cool_down: std::time::Duration::from_secs(COOL_DOWN.num_seconds().unsigned_abs()),
            })
            .unwrap_or_else(|_| unreachable!("the default config is valid")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("a valid time")
    }

    #[test]
    fn bad_configs_are_refused_and_the_default_is_closed() {
        let c = BreakerConfig::default();
        for (bad, why) in [
            (
                BreakerConfig {
                    failure_threshold: 0,
                    ..c
                },
                BreakerConfigError::ZeroThreshold,
            ),
            (
                BreakerConfig {
                    cool_down: TimeDelta::zero(),
                    ..c
                },
                BreakerConfigError::NoCoolDown,
            ),
            (
                BreakerConfig {
                    cool_down: TimeDelta::seconds(-5),
                    ..c
                },
                BreakerConfigError::NoCoolDown,
            ),
        ] {
            assert_eq!(Breaker::new(bad).err(), Some(why));
        }
        assert!(Breaker::new(c).is_ok());
        assert_eq!(
            Breaker::default().state(t(0)),
            State::Closed { failures: 0 }
        );
    }

    #[test]
    fn the_refusal_gives_whole_seconds_left() {
        let b = Breaker::new(BreakerConfig {
            failure_threshold: 1,
            cool_down: TimeDelta::seconds(30),
        })
        .expect("valid");
        let mut g = b.guard(t(0)).expect("closed");
        g.calling();
        g.record(Outcome::Failure);
        // Open until t(30) plus the call's few microseconds: 19.5 s and a
        // little left, rounded up to 20.
        let Err(r) = b.guard(t(10) + TimeDelta::milliseconds(500)) else {
            panic!("open");
        };
        assert_eq!(r.retry_after, TimeDelta::seconds(20));
        let probe = b.guard(t(31)).expect("the probe");
        let Err(r) = b.guard(t(31)) else {
            panic!("one probe");
        };
        assert_eq!(r.retry_after, TimeDelta::seconds(1));
        drop(probe);
    }
}
