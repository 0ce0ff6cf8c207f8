//! Every error the proxy and its admin route return, as RFC 9457 problem details.

use axum::http::StatusCode;
use block_errors::ApiProblem;

/// The start of every problem `type` URI: the chapter's page of problem types.
pub const PROBLEM_TYPE_BASE: &str =
    "https://designing-systems-in-rust.github.io/book/load-balancer/problems.html#";

/// Why a new backend set was refused; the set in force stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// The set names no backend.
    #[error("the backend set is empty; the pool needs at least one backend")]
    Empty,
    /// More backends than the proxy accepts.
    #[error("{0} backends; at most {max} are accepted", max = super::admin::MAX_BACKENDS)]
    TooMany(usize),
    /// A weight outside `1..=MAX_WEIGHT`.
    #[error("backend {addr}: weight {weight} is outside 1..={max}", max = super::admin::MAX_WEIGHT)]
    InvalidWeight {
        /// The backend, as given.
        addr: String,
        /// The weight given.
        weight: i64,
    },
    /// An address that is not `ip:port`.
    #[error("{0:?} is not an address of the form ip:port")]
    InvalidAddress(String),
    /// The same address twice.
    #[error("{0} is listed twice")]
    Duplicate(String),
    /// A new backend that does not accept a connection.
    #[error("{0} does not accept connections")]
    Unreachable(String),
}

/// An error as the HTTP layer sees it.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No backend is up.
    #[error("no backend is up")]
    NoBackend,
    /// Every attempt failed before the request reached a backend.
    #[error("no backend accepted the connection after {0} attempt(s)")]
    Unreachable(u32),
    /// A request that is not idempotent failed after it may have reached the backend.
    #[error(
        "the backend failed after it may have received this {0} request; it was not retried, since a {0} is not idempotent"
    )]
    Interrupted(String),
    /// The last attempt timed out.
    #[error("the backend did not answer in time")]
    Timeout,
    /// The request body is larger than the proxy buffers.
    #[error(
        "the request body is larger than {} bytes",
        super::config::MAX_BODY_BYTES
    )]
    BodyTooLarge,
    /// The request body could not be read.
    #[error("the request body could not be read: {0}")]
    BadBody(String),
    /// The admin route refused a backend set.
    #[error("{0}")]
    BadSet(SetError),
    /// The admin body is not the JSON expected.
    #[error("{0}")]
    Malformed(String),
    /// No or a wrong admin token.
    #[error("the admin routes need the token in `Authorization: Bearer <token>`")]
    Unauthorized,
}

impl ProxyError {
    /// Every problem type [`ApiProblem::classify`] returns, with its status;
    /// `src/load-balancer/problems.md` documents each.
    pub const PROBLEM_TYPES: &[(&str, u16)] = &[
        ("no-backend", 503),
        ("upstream-unreachable", 502),
        ("upstream-interrupted", 502),
        ("upstream-timeout", 504),
        ("body-too-large", 413),
        ("malformed-request", 400),
        ("empty-pool", 422),
        ("too-many-backends", 422),
        ("invalid-weight", 422),
        ("invalid-address", 422),
        ("duplicate-address", 422),
        ("unreachable-backend", 422),
        ("admin-unauthorized", 401),
    ];
}

impl ApiProblem for ProxyError {
    const BASE: &'static str = PROBLEM_TYPE_BASE;

    // ANCHOR: status_mapping
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::NoBackend => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no-backend",
                "No backend available",
            ),
            Self::Unreachable(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream-unreachable",
                "Backends unreachable",
            ),
            Self::Interrupted(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream-interrupted",
                "Backend failed during a non-idempotent request",
            ),
            Self::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream-timeout",
                "Backend timed out",
            ),
            Self::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            ),
            Self::BadBody(_) | Self::Malformed(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
            ),
            Self::BadSet(e) => {
                let (kind, title) = match e {
                    SetError::Empty => ("empty-pool", "Empty backend set"),
                    SetError::TooMany(_) => ("too-many-backends", "Too many backends"),
                    SetError::InvalidWeight { .. } => ("invalid-weight", "Invalid weight"),
                    SetError::InvalidAddress(_) => ("invalid-address", "Invalid address"),
                    SetError::Duplicate(_) => ("duplicate-address", "Duplicate address"),
                    SetError::Unreachable(_) => ("unreachable-backend", "Unreachable backend"),
                };
                (StatusCode::UNPROCESSABLE_ENTITY, kind, title)
            }
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "admin-unauthorized",
                "Admin token required",
            ),
        }
    }
    // ANCHOR_END: status_mapping

    fn detail(&self) -> String {
        self.to_string()
    }

    fn detail_is_public(&self) -> bool {
        // A 502/503/504 here describes the pool, not an internal bug: say what happened.
        true
    }
}

block_errors::into_response!(ProxyError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_types_lists_exactly_what_classify_returns() {
        let every_error = [
            ProxyError::NoBackend,
            ProxyError::Unreachable(1),
            ProxyError::Interrupted("POST".into()),
            ProxyError::Timeout,
            ProxyError::BodyTooLarge,
            ProxyError::BadBody(String::new()),
            ProxyError::Malformed(String::new()),
            ProxyError::BadSet(SetError::Empty),
            ProxyError::BadSet(SetError::TooMany(1)),
            ProxyError::BadSet(SetError::InvalidWeight {
                addr: String::new(),
                weight: 0,
            }),
            ProxyError::BadSet(SetError::InvalidAddress(String::new())),
            ProxyError::BadSet(SetError::Duplicate(String::new())),
            ProxyError::BadSet(SetError::Unreachable(String::new())),
            ProxyError::Unauthorized,
        ];
        block_errors::assert_problem_types(
            &block_errors::problem_types_of(&every_error),
            ProxyError::PROBLEM_TYPES,
        );
    }
}
