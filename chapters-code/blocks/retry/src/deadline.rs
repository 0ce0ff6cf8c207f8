//! Deadline propagation: one instant a caller passes down, which each hop
//! turns into the timeout of its own call.
//!
//! A timeout per hop ("2 s for the database, 2 s for the provider") adds
//! up: three hops of 2 s can keep a client waiting 6 s after it gave up at
//! 2 s. A deadline is the client's budget as an instant: every hop asks how
//! much is [`Deadline::remaining`], uses that as its timeout, and refuses
//! to start work that cannot finish in it ([`Deadline::budget_for`]).
//! It is measured on tokio's monotonic clock, so a wall clock that jumps
//! cannot stretch it, and tests with paused time drive it.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Why work was not started or not finished within its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineError {
    /// Less time was left than the work needs at least: it was not started.
    #[error("only {left:?} left before the deadline, the work needs {needed:?}; not started")]
    TooLittleTime {
        /// Time left when the work was asked for.
        left: Duration,
        /// The least the work needs.
        needed: Duration,
    },
    /// The work was started and the deadline passed before it finished.
    #[error("the deadline passed while the work ran")]
    Elapsed,
}

// ANCHOR: deadline
/// The instant by which the caller needs an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self::at(
            Instant::now()
                .checked_add(budget)
                .unwrap_or_else(far_future),
        )
    }

    /// A deadline at `at`.
    pub fn at(at: Instant) -> Self {
        Self { at }
    }

    /// The instant itself.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// Time left at `now`; zero once passed.
    pub fn remaining_at(&self, now: Instant) -> Duration {
        self.at.saturating_duration_since(now)
    }

    /// Time left now: the timeout to give the next call.
    pub fn remaining(&self) -> Duration {
        self.remaining_at(Instant::now())
    }

    /// True once the deadline has passed.
    pub fn is_expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// The timeout for work that needs at least `needed`, at `now`: all
    /// the time left, or a refusal when less than `needed` is left.
    pub fn budget_for_at(&self, needed: Duration, now: Instant) -> Result<Duration, DeadlineError> {
        let left = self.remaining_at(now);
        if left.is_zero() || left < needed {
            return Err(DeadlineError::TooLittleTime { left, needed });
        }
        Ok(left)
    }

    /// [`Deadline::budget_for_at`] now.
    pub fn budget_for(&self, needed: Duration) -> Result<Duration, DeadlineError> {
        self.budget_for_at(needed, Instant::now())
    }

    /// The deadline to pass to a callee allowed at most `limit`: the
    /// earlier of this one and `limit` from now, so it only ever shrinks.
    pub fn child(&self, limit: Duration) -> Self {
        (*self).min(Self::after(limit))
    }

    /// Runs `work` with the time left as its timeout, or refuses to start
    /// it when less than `needed` is left.
    pub async fn run<F: Future>(
        &self,
        needed: Duration,
        work: F,
    ) -> Result<F::Output, DeadlineError> {
        self.budget_for(needed)?;
        tokio::time::timeout_at(self.at, work)
            .await
            .map_err(|_| DeadlineError::Elapsed)
    }
}
// ANCHOR_END: deadline

/// About thirty years from now: a deadline that will not come.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}
