//! Where "now" comes from: injected, so tests decide what time it is.
//!
//! Holds lapse after ten minutes and check-in closes half an hour after the
//! start. A test of those rules that slept through them would take an hour;
//! with a [`ManualClock`] it sets the time and runs in milliseconds. Nothing
//! in the crate calls `Utc::now()` or SQL `now()` except [`SystemClock`].

use std::sync::Mutex;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

// ANCHOR: clock
/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time, with microsecond precision.
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        // PostgreSQL keeps microseconds; truncating here makes a time read
        // back from the database equal the time that was written.
        let now = Utc::now();
        now.duration_trunc(TimeDelta::microseconds(1))
            .unwrap_or(now)
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    // A std Mutex: it is held for a copy, never across an await.
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}
// ANCHOR_END: clock

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_772_438_400, 0).unwrap_or_default();
        let c = ManualClock::new(start);
        assert_eq!(c.now(), start);
        c.advance(TimeDelta::minutes(11));
        assert_eq!(c.now(), start + TimeDelta::minutes(11));
        c.set(start);
        assert_eq!(c.now(), start);
        assert_eq!(SystemClock.now().timestamp_subsec_nanos() % 1_000, 0);
    }
}
