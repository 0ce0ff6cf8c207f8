//! Part II block: errors over HTTP.
//!
//! Two halves. [`class`] sorts every failure of PostgreSQL, the sqlx pool
//! and Redis into one of four classes (retryable with `Retry-After`, a
//! conflict the caller maps to its own 4xx, final, or a bug), so a statement
//! timeout means the same thing in every chapter. [`problem`] turns a
//! chapter's error into an RFC 9457 `application/problem+json` response
//! with its `Retry-After` and `Cache-Control`, and keeps the cause of a 5xx
//! in the log rather than on the wire. Each chapter keeps its own problem
//! types; the block owns their shape.

pub mod class;
pub mod problem;
pub mod timeout;

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "book")]
pub mod book;

pub use class::{
    Class, Constraint, RETRY_AFTER, Rule, Transient, classify_redis, classify_redis_code,
    classify_redis_reply, classify_sqlstate, classify_sqlx, constraint_name,
};
pub use problem::{
    ApiProblem, INTERNAL, NO_STORE, PROBLEM_JSON, Problem, ProblemResponse, UNAVAILABLE,
    assert_problem_types, class_problem, default_retry_after, hidden_detail, problem_types_of,
    respond, retry_after_secs,
};
pub use timeout::{timed_out, timeout};

/// For [`into_response!`]: the chapters' axum, named from inside the macro.
#[doc(hidden)]
pub use axum as __axum;
