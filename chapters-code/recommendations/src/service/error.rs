//! Every error the API returns, as RFC 9457 problem details, mapped in one place.

use axum::http::StatusCode;
use block_errors::{ApiProblem, INTERNAL};

use crate::store::StoreError;

/// The start of every problem `type` URI: the chapter's page of problem types.
pub const PROBLEM_TYPE_BASE: &str =
    "https://designing-systems-in-rust.github.io/book/recommendations/problems.html#";

// ANCHOR: api_error
/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `k` missing its value, not a number, or outside 1..=max.
    #[error("k must be a whole number from 1 to {max}, got {got:?}")]
    InvalidK {
        /// What was sent.
        got: String,
        /// The largest k served.
        max: usize,
    },
    /// The user id in the path is not a positive whole number.
    #[error("user id must be a positive whole number, got {0:?}")]
    InvalidUserId(String),
    /// No route has this path.
    #[error("no such route")]
    NoRoute,
    /// The path exists, but not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The interactions store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug: a task panicked.
    #[error("internal: {0}")]
    Internal(String),
}
// ANCHOR_END: api_error

impl ApiError {
    /// Every problem type the API can return, with its status; `problems.md`
    /// has a section for each, and a test checks `classify` against this list.
    pub const PROBLEM_TYPES: &[(&str, u16)] = &[
        ("invalid-k", 400),
        ("invalid-user-id", 400),
        ("no-such-route", 404),
        ("method-not-allowed", 405),
        ("unavailable", 503),
        ("internal", 500),
    ];
}

impl ApiProblem for ApiError {
    const BASE: &'static str = PROBLEM_TYPE_BASE;

    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::InvalidK { .. } => (S::BAD_REQUEST, "invalid-k", "Invalid k"),
            ApiError::InvalidUserId(_) => (S::BAD_REQUEST, "invalid-user-id", "Invalid user id"),
            ApiError::NoRoute => (S::NOT_FOUND, "no-such-route", "No such route"),
            ApiError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::Store(StoreError::Unavailable(_)) => (
                S::SERVICE_UNAVAILABLE,
                "unavailable",
                "Interactions store unavailable",
            ),
            ApiError::Internal(_) => INTERNAL,
        }
    }

    fn detail(&self) -> String {
        self.to_string()
    }

    fn retry_after(&self, status: StatusCode) -> Option<std::time::Duration> {
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(std::time::Duration::from_secs(1))
    }
}

block_errors::into_response!(ApiError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_problem_type_is_returned_and_no_other() {
        let all = [
            ApiError::InvalidK {
                got: "0".into(),
                max: 1,
            },
            ApiError::InvalidUserId("x".into()),
            ApiError::NoRoute,
            ApiError::MethodNotAllowed,
            StoreError::Unavailable("x".into()).into(),
            ApiError::Internal("x".into()),
        ];
        block_errors::assert_problem_types(
            &block_errors::problem_types_of(&all),
            ApiError::PROBLEM_TYPES,
        );
    }
}
