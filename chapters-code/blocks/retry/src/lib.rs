//! Part II block: retries with backoff and jitter, deadlines, and the
//! circuit breaker.
//!
//! A retry is selfish: it spends the dependency's capacity on the caller's
//! behalf at the moment the dependency has least of it, and retries at
//! several layers multiply. So each piece here bounds what a caller may
//! spend:
//!
//! - [`backoff`]: capped exponential backoff with no, full, equal or
//!   decorrelated jitter, as AWS's "Exponential Backoff and Jitter"
//!   defines them, and a seeded random source;
//! - [`deadline`]: the caller's budget as one instant passed down, which
//!   each hop turns into its own timeout and which refuses work that
//!   cannot finish;
//! - [`retry`]: an attempt limit and a deadline around an operation,
//!   retrying only what the caller classifies as retryable;
//! - [`breaker`]: a circuit breaker (closed, open, half-open) that stops
//!   calling a dependency that keeps failing, pure with a fake clock, with
//!   a guard that counts a dropped call as a failure;
//! - [`sim`]: the AWS study reproduced, a deterministic simulation of
//!   clients contending for one row with optimistic concurrency.
//!
//! The block knows no error type: callers pass the classification.

pub mod backoff;
pub mod breaker;
pub mod deadline;
pub mod retry;
pub mod sim;

#[cfg(feature = "book")]
pub mod book;

pub use backoff::{Backoff, BackoffError, Jitter, Rng};
pub use breaker::{Breaker, BreakerConfig, CircuitBreaker, Guard, Moment, Outcome, Refused, State};
pub use deadline::{Deadline, DeadlineError};
pub use retry::{Attempt, RetryError, RetryPolicy, retry};
