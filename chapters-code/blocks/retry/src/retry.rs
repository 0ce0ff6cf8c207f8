//! Retry with capped exponential backoff and jitter, an attempt limit and a
//! deadline, for the errors the caller says are worth retrying.
//!
//! [`retry`] never sleeps past the deadline: a backoff that would end at or
//! after it gives up at once, and each attempt runs with the time left as
//! its timeout. So the whole call takes at most the deadline's budget,
//! whatever the operation does. It does not know any error type: the
//! caller passes `is_retryable`, a classification such as "a serialization
//! failure, a 503, a timeout", and everything else is returned at once.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::{Backoff, Rng};
use crate::deadline::Deadline;

/// How often and how patiently to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `1 + max_retries` attempts).
    pub max_retries: u32,
    /// The delay before each retry.
    pub backoff: Backoff,
}

/// One attempt, as the operation sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// The caller's deadline, to pass further down.
    pub deadline: Deadline,
}

/// Why [`retry`] gave up.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryError<E> {
    /// The operation failed with an error the caller does not retry.
    #[error("failed with an error that is not retried (attempt {attempts})")]
    NotRetryable {
        /// The error.
        error: E,
        /// Attempts made.
        attempts: u32,
    },
    /// Every attempt the policy allows failed.
    #[error("gave up after {attempts} attempts")]
    Exhausted {
        /// The last error.
        error: E,
        /// Attempts made.
        attempts: u32,
    },
    /// The deadline came (or the next backoff would pass it) first.
    #[error("the deadline came after {attempts} attempts")]
    Deadline {
        /// The last error, if an attempt ended with one.
        error: Option<E>,
        /// Attempts made (the last one may have been cut short).
        attempts: u32,
    },
}

impl<E> RetryError<E> {
    /// Attempts made before giving up.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::NotRetryable { attempts, .. }
            | Self::Exhausted { attempts, .. }
            | Self::Deadline { attempts, .. } => *attempts,
        }
    }
}

/// What to do after a failed attempt, decided without a clock of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Sleep this long, then try again.
    RetryAfter(Duration),
    /// Do not retry: the attempt limit is reached.
    Exhausted,
    /// Do not retry: the backoff would end at or after the deadline.
    Deadline,
}

// ANCHOR: decide
impl RetryPolicy {
    /// After `attempts` attempts have failed with a retryable error, at
    /// `now`, the next step; `prev` is the last delay (decorrelated jitter
    /// grows from it) and is updated.
    pub fn next(
        &self,
        attempts: u32,
        prev: &mut Duration,
        deadline: Deadline,
        now: Instant,
        rng: &mut Rng,
    ) -> Next {
        if attempts > self.max_retries {
            return Next::Exhausted;
        }
        let delay = self.backoff.delay(attempts - 1, *prev, rng);
        *prev = delay;
        // Sleeping to the deadline leaves no time for the attempt.
        if delay >= deadline.remaining_at(now) {
            return Next::Deadline;
        }
        Next::RetryAfter(delay)
    }
}
// ANCHOR_END: decide

// ANCHOR: retry
/// Runs `op` until it succeeds, fails with an error `is_retryable` refuses,
/// uses up `policy.max_retries`, or meets `deadline`.
pub async fn retry<T, E, Op, Fut>(
    policy: &RetryPolicy,
    deadline: Deadline,
    rng: &mut Rng,
    is_retryable: impl Fn(&E) -> bool,
    mut op: Op,
) -> Result<T, RetryError<E>>
where
    Op: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempts = 0;
    let mut prev = policy.backoff.base();
    let mut last = None;
    loop {
        // Refuse to start an attempt with no time left for it.
        if deadline.is_expired() {
            return Err(RetryError::Deadline {
                error: last,
                attempts,
            });
        }
        attempts += 1;
        let attempt = Attempt {
            number: attempts,
            deadline,
        };
        let error = match tokio::time::timeout_at(deadline.instant(), op(attempt)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_) => {
                return Err(RetryError::Deadline {
                    error: last,
                    attempts,
                });
            }
        };
        if !is_retryable(&error) {
            return Err(RetryError::NotRetryable { error, attempts });
        }
        match policy.next(attempts, &mut prev, deadline, Instant::now(), rng) {
            Next::RetryAfter(delay) => tokio::time::sleep(delay).await,
            Next::Exhausted => return Err(RetryError::Exhausted { error, attempts }),
            Next::Deadline => {
                return Err(RetryError::Deadline {
                    error: Some(error),
                    attempts,
                });
            }
        }
        last = Some(error);
    }
}
// ANCHOR_END: retry
