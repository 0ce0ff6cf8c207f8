//! A circuit breaker: closed, open, half-open, general over what it guards.
//!
//! [`CircuitBreaker`] is the state machine, pure: every method takes the
//! time as an argument, so tests drive it with a clock of their own (any
//! [`Moment`]: a `Duration` since a fake origin, an `Instant`, a
//! `DateTime<Utc>`). [`Breaker`] is the same machine behind a mutex, which
//! is what a service holds, and [`Guard`] is one call's permit, which
//! reports how the call ended even when the caller's future is dropped.
//! Neither does I/O, and neither knows what the call is: the caller says
//! which results count as [`Outcome::Success`] or [`Outcome::Failure`].
//!
//! - **Closed**: calls go through. `failure_threshold` failures in a row
//!   open it; any [`Outcome::Success`] resets the count.
//! - **Open**: calls are refused at once for `cool_down`, with the time
//!   left as the refusal's `retry_after`.
//! - **Half-open**: after the cool-down the first caller gets the one
//!   probe; everyone else is refused until the probe ends. A probe that
//!   succeeds closes the breaker, one that fails opens it for another
//!   cool-down, one that ends without making the call
//!   ([`Outcome::NotCalled`]) hands the probe back.
//!
//! Every permit carries the epoch it was issued in, and the epoch moves on
//! at every change of state: a slow call that started while the breaker
//! was closed and ends after it opened cannot count twice, and only the
//! probe's own result can close a half-open breaker.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// A point in time the breaker can be driven with.
///
/// The machine only adds a cool-down to a moment and asks how long is left
/// until another, so a test clock is a plain `Duration` since an origin.
pub trait Moment: Copy + Ord + Debug {
    /// This moment moved on by `d` (saturating at the type's end).
    fn plus(self, d: Duration) -> Self;
    /// How long from `self` until `later`; zero if `later` is not after it.
    fn until(self, later: Self) -> Duration;
}

impl Moment for Duration {
    fn plus(self, d: Duration) -> Self {
        self.saturating_add(d)
    }
    fn until(self, later: Self) -> Duration {
        later.saturating_sub(self)
    }
}

impl Moment for std::time::Instant {
    fn plus(self, d: Duration) -> Self {
        self.checked_add(d).unwrap_or(self)
    }
    fn until(self, later: Self) -> Duration {
        later.saturating_duration_since(self)
    }
}

impl Moment for tokio::time::Instant {
    fn plus(self, d: Duration) -> Self {
        self.checked_add(d).unwrap_or(self)
    }
    fn until(self, later: Self) -> Duration {
        later.saturating_duration_since(self)
    }
}

impl Moment for DateTime<Utc> {
    fn plus(self, d: Duration) -> Self {
        TimeDelta::from_std(d)
            .ok()
            .and_then(|d| self.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
    fn until(self, later: Self) -> Duration {
        (later - self).to_std().unwrap_or(Duration::ZERO)
    }
}

// ANCHOR: config
/// The breaker's two numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long it stays open (more than zero), counted from the end of the
    /// call that opened it.
    pub cool_down: Duration,
}
// ANCHOR_END: config

/// A configuration the breaker cannot work with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A threshold of 0 would open the breaker before any call.
    #[error("the failure threshold must be at least 1")]
    ZeroThreshold,
    /// A cool-down of zero would never refuse anything.
    #[error("the cool-down must be longer than zero")]
    NoCoolDown,
}

// ANCHOR: state
/// Where the breaker is, at a time of type `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State<T> {
    /// Calls go through; `failures` in a row so far.
    Closed {
        /// Consecutive failures, below the threshold.
        failures: u32,
    },
    /// Calls are refused until `until`.
    Open {
        /// When the cool-down ends.
        until: T,
    },
    /// The cool-down is over; one probe may be out.
    HalfOpen {
        /// True while the probe's call is in flight.
        probing: bool,
    },
}
// ANCHOR_END: state

/// How a call through the breaker ended, as the caller classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The dependency answered in a way that shows it is up (even a "no").
    Success,
    /// A timeout or an answer that shows it may be down.
    Failure,
    /// The dependency was not called after all: no evidence either way.
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

    /// The epoch the permit was issued in (tests compare it with the breaker's).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// The refusal of an open (or probing) breaker: nothing was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the circuit breaker is open; nothing was called; retry in {} s", self.retry_after_secs())]
pub struct Refused {
    /// Time left until the breaker may let a call through (zero while a probe is out).
    pub retry_after: Duration,
}

impl Refused {
    /// `retry_after` in whole seconds, rounded up and at least one, for a
    /// `Retry-After` header: never tell a client "0".
    pub fn retry_after_secs(&self) -> u64 {
        let whole = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        whole.max(1)
    }
}

// ANCHOR: machine
/// The state machine, pure: the caller passes the time.
#[derive(Clone, Debug)]
pub struct CircuitBreaker<T> {
    config: BreakerConfig,
    state: State<T>,
    epoch: u64,
}

impl<T: Moment> CircuitBreaker<T> {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        if config.failure_threshold == 0 {
            return Err(ConfigError::ZeroThreshold);
        }
        if config.cool_down.is_zero() {
            return Err(ConfigError::NoCoolDown);
        }
        Ok(Self {
            config,
            state: State::Closed { failures: 0 },
            epoch: 0,
        })
    }

    /// The state at `now` (an open breaker whose cool-down ended reads as half-open).
    pub fn state(&self, now: T) -> State<T> {
        match self.state {
            State::Open { until } if now >= until => State::HalfOpen { probing: false },
            s => s,
        }
    }

    /// The current epoch: it moves on at every change of state.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Leave to make the call at `now`, or the refusal.
    pub fn acquire(&mut self, now: T) -> Result<Permit, Refused> {
        match self.state(now) {
            State::Closed { .. } => Ok(Permit {
                epoch: self.epoch,
                probe: false,
            }),
            State::Open { until } => Err(Refused {
                retry_after: now.until(until),
            }),
            // One probe at a time; it ends within the caller's timeout.
            State::HalfOpen { probing: true } => Err(Refused {
                retry_after: Duration::ZERO,
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
    pub fn record(&mut self, permit: Permit, outcome: Outcome, now: T) {
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

    fn open(&mut self, now: T) {
        self.enter(State::Open {
            until: now.plus(self.config.cool_down),
        });
    }

    fn enter(&mut self, state: State<T>) {
        self.state = state;
        self.epoch += 1;
    }
}
// ANCHOR_END: machine

/// The machine behind a mutex, shared by every caller of a process.
#[derive(Debug)]
pub struct Breaker<T> {
    machine: Mutex<CircuitBreaker<T>>,
}

impl<T: Moment> Breaker<T> {
    /// A closed breaker with `config`.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            machine: Mutex::new(CircuitBreaker::new(config)?),
        })
    }

    /// See [`CircuitBreaker::state`].
    pub fn state(&self, now: T) -> State<T> {
        self.lock().state(now)
    }

    /// See [`CircuitBreaker::acquire`].
    pub fn acquire(&self, now: T) -> Result<Permit, Refused> {
        self.lock().acquire(now)
    }

    /// See [`CircuitBreaker::record`].
    pub fn record(&self, permit: Permit, outcome: Outcome, now: T) {
        self.lock().record(permit, outcome, now);
    }

    /// Like [`Breaker::acquire`], with the permit in a [`Guard`].
    pub fn guard(&self, now: T) -> Result<Guard<'_, T>, Refused> {
        Ok(Guard {
            breaker: self,
            permit: Some(self.acquire(now)?),
            started: now,
            taken: tokio::time::Instant::now(),
            calling: false,
        })
    }

    // ANCHOR: call
    /// Runs `call` through the breaker at `now`: refused at once while
    /// open, otherwise awaited, and its result classified by `classify`.
    /// Dropping the returned future while `call` runs counts as a failure.
    pub async fn call<F, R>(
        &self,
        now: T,
        call: F,
        classify: impl FnOnce(&R) -> Outcome,
    ) -> Result<R, Refused>
    where
        F: Future<Output = R>,
    {
        let mut guard = self.guard(now)?;
        guard.calling();
        let result = call.await;
        guard.record(classify(&result));
        Ok(result)
    }
    // ANCHOR_END: call

    fn lock(&self) -> std::sync::MutexGuard<'_, CircuitBreaker<T>> {
        // The machine's methods do not panic; a poisoned lock still holds a valid state.
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// ANCHOR: guard
/// A permit held by one call, which reports how it ended even when the
/// caller's future is dropped half-way.
///
/// Dropped before [`Guard::calling`] (an early return, an error, a replay,
/// a cancelled request) it reports [`Outcome::NotCalled`]. Dropped after
/// it, the caller was cancelled while the call was in flight (axum drops a
/// handler's future when its client hangs up): that reports
/// [`Outcome::Failure`], as a timeout would, since the call may still be
/// running and a caller who gave up waiting is what an outage looks like.
///
/// It records at the caller's time plus the time elapsed since the guard
/// was taken, on tokio's monotonic clock: a cool-down counts from when the
/// call ended, not from when the request arrived, and a wall clock that
/// jumps cannot shorten it.
pub struct Guard<'a, T: Moment> {
    breaker: &'a Breaker<T>,
    permit: Option<Permit>,
    started: T,
    taken: tokio::time::Instant,
    calling: bool,
}

impl<T: Moment> Guard<'_, T> {
    /// The call is about to be made: from here on a drop is a failure.
    pub fn calling(&mut self) {
        self.calling = true;
    }

    /// True for the half-open breaker's single probe.
    pub fn is_probe(&self) -> bool {
        self.permit.is_some_and(|p| p.is_probe())
    }

    /// Reports how the call ended.
    pub fn record(mut self, outcome: Outcome) {
        if let Some(p) = self.permit.take() {
            self.breaker.record(p, outcome, self.now());
        }
    }

    /// The caller's time, moved on by the time elapsed since the guard was taken.
    fn now(&self) -> T {
        self.started.plus(self.taken.elapsed())
    }
}

impl<T: Moment> Drop for Guard<'_, T> {
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

// ANCHOR: transitions_table
/// The breaker's transitions as data: (from, event, to). The page's state
/// diagram is generated from this table, and a test drives the machine
/// through every row, so the picture and the code cannot disagree.
pub const TRANSITIONS: &[(&str, &str, &str)] = &[
    ("Closed", "success (count reset)", "Closed"),
    ("Closed", "failure below the threshold", "Closed"),
    ("Closed", "the threshold-th failure in a row", "Open"),
    ("Open", "call before the cool-down ends (refused)", "Open"),
    (
        "Open",
        "first call after the cool-down (the probe)",
        "HalfOpen",
    ),
    ("HalfOpen", "other call while probing (refused)", "HalfOpen"),
    ("HalfOpen", "probe not called (handed back)", "HalfOpen"),
    ("HalfOpen", "probe succeeds", "Closed"),
    ("HalfOpen", "probe fails", "Open"),
];
// ANCHOR_END: transitions_table

/// The mermaid state diagram of [`TRANSITIONS`].
pub fn state_diagram() -> String {
    let mut out = String::from("```mermaid\nstateDiagram-v2\n    [*] --> Closed\n");
    for (from, event, to) in TRANSITIONS {
        out.push_str(&format!("    {from} --> {to}: {event}\n"));
    }
    out.push_str("```\n");
    out
}
