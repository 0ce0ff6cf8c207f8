//! Every error the API returns, as RFC 9457 problem details, mapped in one place.

use axum::http::StatusCode;
use block_errors::{ApiProblem, INTERNAL};

use crate::domain::{CardinalityError, QueryError, RangeError};
use crate::store::StoreError;

/// The start of every problem `type` URI: the chapter's page of problem types.
pub const PROBLEM_TYPE_BASE: &str =
    "https://designing-systems-in-rust.github.io/book/logging/problems.html#";

// ANCHOR: api_error
/// Why a request failed, from any layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body or the query string did not parse.
    #[error("{0}")]
    Malformed(String),
    /// The query text did not parse.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The time range is inverted or too wide.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// `limit` outside 1..=max.
    #[error("limit must be between 1 and {max}, got {got}")]
    Limit {
        /// The value given.
        got: usize,
        /// Largest allowed.
        max: usize,
    },
    /// More records in one push than allowed.
    #[error("at most {max} records per push, got {got}")]
    BatchTooLarge {
        /// Records given.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// No route has this path.
    #[error("no such route")]
    NoRoute,
    /// The path exists, but not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking store task did not finish (a panic: a bug).
    #[error("store task failed: {0}")]
    Task(String),
}
// ANCHOR_END: api_error

// ANCHOR: status_map
impl ApiError {
    /// Every problem type the API can return, with its status; `problems.md`
    /// has a section for each, and a test checks `classify` against this list.
    pub const PROBLEM_TYPES: &[(&str, u16)] = &[
        ("malformed-request", 400),
        ("malformed-query", 400),
        ("invalid-time-range", 400),
        ("invalid-limit", 400),
        ("no-such-route", 404),
        ("method-not-allowed", 405),
        ("batch-too-large", 413),
        ("label-cardinality-exceeded", 422),
        ("timestamp-out-of-window", 422),
        ("internal", 500),
    ];
}

impl ApiProblem for ApiError {
    const BASE: &'static str = PROBLEM_TYPE_BASE;

    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::Malformed(_) => (S::BAD_REQUEST, "malformed-request", "Malformed request"),
            ApiError::Query(_) => (S::BAD_REQUEST, "malformed-query", "Malformed query"),
            ApiError::Range(_) => (S::BAD_REQUEST, "invalid-time-range", "Invalid time range"),
            ApiError::Limit { .. } => (S::BAD_REQUEST, "invalid-limit", "Invalid limit"),
            ApiError::NoRoute => (S::NOT_FOUND, "no-such-route", "No such route"),
            ApiError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::BatchTooLarge { .. } => {
                (S::PAYLOAD_TOO_LARGE, "batch-too-large", "Batch too large")
            }
            ApiError::Store(StoreError::Cardinality(
                CardinalityError::TooManyValues { .. } | CardinalityError::TooManyLabels { .. },
            )) => (
                S::UNPROCESSABLE_ENTITY,
                "label-cardinality-exceeded",
                "Label cardinality limit exceeded",
            ),
            ApiError::Store(StoreError::OutOfWindow { .. }) => (
                S::UNPROCESSABLE_ENTITY,
                "timestamp-out-of-window",
                "Timestamp outside the accepted window",
            ),
            ApiError::Store(StoreError::Io(_) | StoreError::Chunk(_)) | ApiError::Task(_) => {
                INTERNAL
            }
        }
    }

    fn detail(&self) -> String {
        self.to_string()
    }
}
// ANCHOR_END: status_map

block_errors::into_response!(ApiError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_problem_type_is_returned_and_no_other() {
        let all = [
            ApiError::Malformed("x".into()),
            ApiError::Query(QueryError::Empty),
            ApiError::Range(RangeError::TooWide),
            ApiError::Limit { got: 0, max: 1 },
            ApiError::NoRoute,
            ApiError::MethodNotAllowed,
            ApiError::BatchTooLarge { got: 2, max: 1 },
            StoreError::Cardinality(CardinalityError::TooManyLabels { got: 2, limit: 1 }).into(),
            StoreError::OutOfWindow {
                ts_ms: 0,
                oldest: 1,
                newest: 2,
            }
            .into(),
            StoreError::Io(std::io::Error::other("disk")).into(),
        ];
        block_errors::assert_problem_types(
            &block_errors::problem_types_of(&all),
            ApiError::PROBLEM_TYPES,
        );
    }
}
