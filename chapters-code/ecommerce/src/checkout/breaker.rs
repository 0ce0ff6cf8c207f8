//! A circuit breaker in front of the payment provider: closed, open, half-open.
//!
//! [`CircuitBreaker`] is the state machine, pure: every method takes the
//! time as an argument, so tests drive it with a clock of their own.
//! [`Breaker`] is the same machine behind a mutex, which is what the
//! checkout holds. Neither does I/O.
//!
//! - **Closed**: calls go through. [`FAILURE_THRESHOLD`] failures in a row
//!   (a timeout, or the provider answering "failed") open it; any answer
//!   that shows the provider is up (a charge, a declined card) resets the
//!   count.
//! - **Open**: calls are refused at once for [`COOL_DOWN`], with the time
//!   left as the refusal's `retry_after`.
//! - **Half-open**: after the cool-down the first caller gets the one
//!   probe; everyone else is refused until the probe ends. A probe that
//!   succeeds closes the breaker, one that fails opens it for another
//!   cool-down, one that ends without calling the provider (the key
//!   replayed an answer, the database failed) hands the probe back. A
//!   request cancelled while its call is in flight counts as a failure
//!   (see [`Guard`]).
//!
//! Every permit carries the epoch it was issued in, and the epoch moves on
//! at every change of state: a slow call that started while the breaker
//! was closed and ends after it opened cannot count twice, and only the
//! probe's own result can close a half-open breaker.

use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

// ANCHOR: config
/// Failures in a row that open a closed breaker.
pub const FAILURE_THRESHOLD: u32 = 5;
/// How long an open breaker refuses calls before it lets one probe through.
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

/// A configuration the breaker cannot work with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BreakerConfigError {
    /// A threshold of 0 would open the breaker before any call.
    #[error("the failure threshold must be at least 1")]
    ZeroThreshold,
    /// A cool-down of zero or less would never refuse anything.
    #[error("the cool-down must be longer than zero")]
    NoCoolDown,
}

// ANCHOR: state
/// Where the breaker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Calls go through; `failures` in a row so far.
    Closed {
        /// Consecutive failures, below the threshold.
        failures: u32,
    },
    /// Calls are refused until `until`.
    Open {
        /// When the cool-down ends.
        until: DateTime<Utc>,
    },
    /// The cool-down is over; one probe may be out.
    HalfOpen {
        /// True while the probe's call is in flight.
        probing: bool,
    },
}
// ANCHOR_END: state

/// How a call through the breaker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The provider answered (a charge or a decline): it is up.
    Success,
    /// A timeout or a "failed" answer: it may be down.
    Failure,
    /// The provider was not called after all: no evidence either way.
    NotCalled,
}

/// Leave to make one call, issued by [`CircuitBreaker::acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a permit must be given back with `record`"]
pub struct Permit {
    epoch: u64,
    probe: bool,
}

impl Permit {
    /// True for the half-open breaker's single probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// The refusal of an open breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the payment provider is failing; nothing was done; retry in {} s",
    .retry_after.num_seconds()
)]
pub struct Refused {
    /// When to try again (at least one second: it becomes `Retry-After`).
    pub retry_after: TimeDelta,
}

// ANCHOR: machine
/// The state machine, pure: the caller passes the time.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: State,
    epoch: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Result<Self, BreakerConfigError> {
        if config.failure_threshold == 0 {
            return Err(BreakerConfigError::ZeroThreshold);
        }
        if config.cool_down <= TimeDelta::zero() {
            return Err(BreakerConfigError::NoCoolDown);
        }
        Ok(Self {
            config,
            state: State::Closed { failures: 0 },
            epoch: 0,
        })
    }

    /// The state at `now` (an open breaker whose cool-down ended reads as half-open).
    pub fn state(&self, now: DateTime<Utc>) -> State {
        match self.state {
            State::Open { until } if now >= until => State::HalfOpen { probing: false },
            s => s,
        }
    }

    /// Leave to call the provider at `now`, or the refusal.
    pub fn acquire(&mut self, now: DateTime<Utc>) -> Result<Permit, Refused> {
        match self.state(now) {
            State::Closed { .. } => Ok(Permit {
                epoch: self.epoch,
                probe: false,
            }),
            State::Open { until } => Err(Refused {
                retry_after: at_least_a_second(until - now),
            }),
            // One probe at a time; it ends within the provider timeout.
            State::HalfOpen { probing: true } => Err(Refused {
                retry_after: TimeDelta::seconds(1),
            }),
            State::HalfOpen { probing: false } => {
                self.enter(State::HalfOpen { probing: true });
                Ok(Permit {
                    epoch: self.epoch,
                    probe: true,
                })
            }
        }
    }

    /// Reports how the call behind `permit` ended, at `now`.
    pub fn record(&mut self, permit: Permit, outcome: Outcome, now: DateTime<Utc>) {
        if permit.epoch != self.epoch {
            return; // issued before the last change of state: stale evidence
        }
        match (self.state, outcome) {
            (State::Closed { .. }, Outcome::Success) => {
                self.state = State::Closed { failures: 0 };
            }
            (State::Closed { failures }, Outcome::Failure) => {
                if failures + 1 >= self.config.failure_threshold {
                    self.open(now);
                } else {
                    self.state = State::Closed {
                        failures: failures + 1,
                    };
                }
            }
            (State::HalfOpen { probing: true }, Outcome::Success) if permit.probe => {
                self.enter(State::Closed { failures: 0 });
            }
            (State::HalfOpen { probing: true }, Outcome::Failure) if permit.probe => {
                self.open(now);
            }
            (State::HalfOpen { probing: true }, Outcome::NotCalled) if permit.probe => {
                self.enter(State::HalfOpen { probing: false });
            }
            // Closed + NotCalled changes nothing; an open breaker has no live permits.
            _ => {}
        }
    }

    fn open(&mut self, now: DateTime<Utc>) {
        self.enter(State::Open {
            until: now + self.config.cool_down,
        });
    }

    fn enter(&mut self, state: State) {
        self.state = state;
        self.epoch += 1;
    }
}
// ANCHOR_END: machine

/// `Retry-After` is in whole seconds; never tell a client "0".
fn at_least_a_second(d: TimeDelta) -> TimeDelta {
    let whole = (d + TimeDelta::milliseconds(999)).num_seconds();
    TimeDelta::seconds(whole.max(1))
}

/// The machine behind a mutex, shared by every checkout of a process.
#[derive(Debug)]
pub struct Breaker {
    machine: Mutex<CircuitBreaker>,
}

impl Breaker {
    /// A closed breaker with `config`.
    pub fn new(config: BreakerConfig) -> Result<Self, BreakerConfigError> {
        Ok(Self {
            machine: Mutex::new(CircuitBreaker::new(config)?),
        })
    }

    /// See [`CircuitBreaker::state`].
    pub fn state(&self, now: DateTime<Utc>) -> State {
        self.lock().state(now)
    }

    /// See [`CircuitBreaker::acquire`].
    pub fn acquire(&self, now: DateTime<Utc>) -> Result<Permit, Refused> {
        self.lock().acquire(now)
    }

    /// See [`CircuitBreaker::record`].
    pub fn record(&self, permit: Permit, outcome: Outcome, now: DateTime<Utc>) {
        self.lock().record(permit, outcome, now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        // The machine's methods do not panic; a poisoned lock still holds a valid state.
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// ANCHOR: guard
/// A permit held by one request, which reports how it ended even when the
/// request is dropped half-way.
///
/// Dropped before [`Guard::calling`] (an early return, an error, a replay,
/// a cancelled request) it reports [`Outcome::NotCalled`]. Dropped after
/// it, the request was cancelled while the provider call was in flight
/// (axum drops a handler's future when its client hangs up): that reports
/// [`Outcome::Failure`], as a timeout would, since the call may still be
/// running and a shopper who gave up waiting is what an outage looks like.
///
/// It records at the request's time plus the time elapsed since the guard
/// was taken, on tokio's monotonic clock: a cool-down counts from when the
/// call ended, not from when the request arrived.
pub struct Guard<'a> {
    breaker: &'a Breaker,
    permit: Option<Permit>,
    started: DateTime<Utc>,
    taken: tokio::time::Instant,
    calling: bool,
}

impl Guard<'_> {
    /// The provider is about to be called: from here on a drop is a failure.
    pub fn calling(&mut self) {
        self.calling = true;
    }

    /// Reports how the call ended.
    pub fn record(mut self, outcome: Outcome) {
        if let Some(p) = self.permit.take() {
            self.breaker.record(p, outcome, self.now());
        }
    }

    /// The request's time, moved on by the time elapsed since the guard was taken.
    fn now(&self) -> DateTime<Utc> {
        self.started + TimeDelta::from_std(self.taken.elapsed()).unwrap_or(TimeDelta::zero())
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            let outcome = if self.calling {
                Outcome::Failure
            } else {
                Outcome::NotCalled
            };
            self.breaker.record(p, outcome, self.now());
        }
    }
}
// ANCHOR_END: guard

impl Breaker {
    /// Like [`Breaker::acquire`], with the permit in a [`Guard`].
    pub fn guard(&self, now: DateTime<Utc>) -> Result<Guard<'_>, Refused> {
        Ok(Guard {
            breaker: self,
            permit: Some(self.acquire(now)?),
            started: now,
            taken: tokio::time::Instant::now(),
            calling: false,
        })
    }
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            machine: Mutex::new(CircuitBreaker {
                config: BreakerConfig::default(),
                state: State::Closed { failures: 0 },
                epoch: 0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("a valid time")
    }

    fn breaker(threshold: u32, cool_s: i64) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: threshold,
            cool_down: TimeDelta::seconds(cool_s),
        })
        .expect("a valid config")
    }

    fn fail(b: &mut CircuitBreaker, now: DateTime<Utc>) {
        let p = b.acquire(now).expect("a permit");
        b.record(p, Outcome::Failure, now);
    }

    #[test]
    fn bad_configs_are_refused() {
        let c = BreakerConfig::default();
        let zero = BreakerConfig {
            failure_threshold: 0,
            ..c
        };
        let none = BreakerConfig {
            cool_down: TimeDelta::zero(),
            ..c
        };
        assert_eq!(
            CircuitBreaker::new(zero).err(),
            Some(BreakerConfigError::ZeroThreshold)
        );
        assert_eq!(
            CircuitBreaker::new(none).err(),
            Some(BreakerConfigError::NoCoolDown)
        );
        assert!(Breaker::new(c).is_ok());
        assert_eq!(
            Breaker::default().state(t(0)),
            State::Closed { failures: 0 }
        );
    }

    // ANCHOR: transitions
    #[test]
    fn threshold_failures_in_a_row_open_it_and_a_success_resets_the_count() {
        let mut b = breaker(3, 30);
        fail(&mut b, t(0));
        fail(&mut b, t(0));
        let p = b.acquire(t(1)).expect("still closed");
        b.record(p, Outcome::Success, t(1));
        assert_eq!(b.state(t(1)), State::Closed { failures: 0 });
        fail(&mut b, t(2));
        fail(&mut b, t(2));
        assert_eq!(b.state(t(2)), State::Closed { failures: 2 });
        fail(&mut b, t(2));
        assert_eq!(b.state(t(2)), State::Open { until: t(32) });
        let refused = b.acquire(t(12)).expect_err("open");
        assert_eq!(refused.retry_after, TimeDelta::seconds(20));
    }

    #[test]
    fn after_the_cool_down_one_probe_goes_and_its_success_closes_it() {
        let mut b = breaker(1, 30);
        fail(&mut b, t(0));
        assert!(b.acquire(t(29)).is_err(), "open for the whole cool-down");
        assert_eq!(b.state(t(30)), State::HalfOpen { probing: false });
        let probe = b.acquire(t(30)).expect("the probe");
        assert!(probe.is_probe());
        let other = b.acquire(t(30)).expect_err("only one probe");
        assert_eq!(other.retry_after, TimeDelta::seconds(1));
        b.record(probe, Outcome::Success, t(31));
        assert_eq!(b.state(t(31)), State::Closed { failures: 0 });
        assert!(!b.acquire(t(31)).expect("closed").is_probe());
    }

    #[test]
    fn a_failed_probe_opens_it_for_another_cool_down() {
        let mut b = breaker(1, 30);
        fail(&mut b, t(0));
        let probe = b.acquire(t(40)).expect("the probe");
        b.record(probe, Outcome::Failure, t(42));
        assert_eq!(b.state(t(42)), State::Open { until: t(72) });
    }

    #[test]
    fn a_probe_that_never_called_hands_the_probe_back() {
        let mut b = breaker(1, 30);
        fail(&mut b, t(0));
        let probe = b.acquire(t(30)).expect("the probe");
        b.record(probe, Outcome::NotCalled, t(30));
        assert_eq!(b.state(t(30)), State::HalfOpen { probing: false });
        assert!(b.acquire(t(30)).expect("a new probe").is_probe());
    }

    #[test]
    fn a_guard_dropped_during_the_call_fails_and_before_it_hands_the_probe_back() {
        let b = Breaker::new(BreakerConfig {
            failure_threshold: 1,
            cool_down: TimeDelta::seconds(30),
        })
        .expect("a valid config");
        let mut call = b.guard(t(0)).expect("closed");
        call.calling();
        drop(call);
        assert!(matches!(b.state(t(0)), State::Open { until } if until >= t(30)));
        drop(b.guard(t(31)).expect("the probe"));
        assert_eq!(b.state(t(31)), State::HalfOpen { probing: false });
        let mut probe = b.guard(t(31)).expect("the probe again");
        probe.calling();
        drop(probe);
        assert!(matches!(b.state(t(31)), State::Open { until } if until >= t(61)));
    }

    #[test]
    fn a_late_answer_from_before_the_change_counts_for_nothing() {
        let mut b = breaker(2, 30);
        let slow_ok = b.acquire(t(0)).expect("closed");
        let slow_fail = b.acquire(t(0)).expect("closed");
        fail(&mut b, t(0));
        fail(&mut b, t(0));
        assert!(matches!(b.state(t(1)), State::Open { .. }));
        // A success issued while closed must not close an open breaker...
        b.record(slow_ok, Outcome::Success, t(1));
        assert_eq!(b.state(t(1)), State::Open { until: t(30) });
        // ...nor a half-open one, whose probe is still out.
        let probe = b.acquire(t(30)).expect("the probe");
        b.record(slow_ok, Outcome::Success, t(31));
        b.record(slow_fail, Outcome::Failure, t(31));
        assert_eq!(b.state(t(31)), State::HalfOpen { probing: true });
        b.record(probe, Outcome::Success, t(31));
        assert_eq!(b.state(t(31)), State::Closed { failures: 0 });
    }
    // ANCHOR_END: transitions

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(
            at_least_a_second(TimeDelta::milliseconds(1)),
            TimeDelta::seconds(1)
        );
        assert_eq!(
            at_least_a_second(TimeDelta::milliseconds(1_001)),
            TimeDelta::seconds(2)
        );
        assert_eq!(at_least_a_second(TimeDelta::zero()), TimeDelta::seconds(1));
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Move the clock on by this many seconds.
        Wait(i64),
        /// Ask for a permit.
        Acquire,
        /// End the `n`th outstanding permit (modulo) with an outcome.
        End(usize, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0i64..40).prop_map(Op::Wait),
            Just(Op::Acquire),
            (any::<usize>(), 0u8..3).prop_map(|(n, o)| Op::End(n, o)),
        ]
    }

    proptest! {
        // ANCHOR: properties
        /// Under any interleaving of calls, answers and time: an open breaker
        /// refuses everything until its cool-down ends, at most one probe is
        /// ever out, a closed breaker's count stays below the threshold, and
        /// `threshold` failures in a row from a closed breaker open it.
        #[test]
        fn invariants_hold_under_any_history(
            threshold in 1u32..5,
            cool in 1i64..60,
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let mut b = breaker(threshold, cool);
            let mut now = t(0);
            let mut out: Vec<Permit> = Vec::new();
            let mut failures_in_a_row = 0u32;
            for op in ops {
                match op {
                    Op::Wait(s) => now += TimeDelta::seconds(s),
                    Op::Acquire => {
                        let before = b.state(now);
                        match b.acquire(now) {
                            Ok(p) => {
                                prop_assert!(!matches!(before, State::Open { .. }), "an open breaker gave a permit");
                                prop_assert!(before != State::HalfOpen { probing: true }, "a second probe");
                                prop_assert_eq!(p.is_probe(), matches!(before, State::HalfOpen { .. }));
                                out.push(p);
                            }
                            Err(r) => {
                                prop_assert!(r.retry_after >= TimeDelta::seconds(1));
                                prop_assert!(!matches!(before, State::Closed { .. }), "a closed breaker refused");
                            }
                        }
                    }
                    Op::End(n, o) if !out.is_empty() => {
                        let p = out.remove(n % out.len());
                        let outcome = [Outcome::Success, Outcome::Failure, Outcome::NotCalled][usize::from(o)];
                        let before = b.state(now);
                        let live = p.epoch == b.epoch;
                        b.record(p, outcome, now);
                        let after = b.state(now);
                        if live && matches!(before, State::Closed { .. }) {
                            match outcome {
                                Outcome::Failure => failures_in_a_row += 1,
                                Outcome::Success => failures_in_a_row = 0,
                                Outcome::NotCalled => {}
                            }
                            if failures_in_a_row >= threshold {
                                prop_assert_eq!(after, State::Open { until: now + TimeDelta::seconds(cool) });
                            }
                        }
                        if !live {
                            prop_assert_eq!(before, after, "a stale permit changed the state");
                        }
                    }
                    Op::End(..) => {}
                }
                if !matches!(b.state(now), State::Closed { .. }) {
                    failures_in_a_row = 0;
                }
                if let State::Closed { failures } = b.state(now) {
                    prop_assert!(failures < threshold);
                    prop_assert_eq!(failures, failures_in_a_row);
                }
                let probes_live = out.iter().filter(|p| p.probe && p.epoch == b.epoch).count();
                prop_assert!(probes_live <= 1, "two probes out");
            }
        }
        // ANCHOR_END: properties
    }
}
