//! Every error the API returns, as RFC 9457 problem details, mapped in one place.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::{CommandError, Refusal};
use crate::saga::SagaError;
use crate::store::StoreError;

/// Problem `type` URIs: this page's sections (`src/order-management/problems.md`).
pub const PROBLEM_TYPE_BASE: &str =
    "https://designing-systems-in-rust.github.io/book/order-management/problems.html#";

// ANCHOR: api_error
/// Why a request failed, from any layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body or path did not parse (syntax, types, unknown fields, unknown command).
    #[error("{0}")]
    Malformed(String),
    /// A command only the checkout saga may send.
    #[error("{0} is sent by the checkout saga, not by clients")]
    SagaOnly(&'static str),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
// ANCHOR_END: api_error

impl From<SagaError> for ApiError {
    fn from(e: SagaError) -> Self {
        match e {
            SagaError::Store(s) => ApiError::Store(s),
            SagaError::Database(d) => ApiError::Store(StoreError::Database(d)),
            other => ApiError::Store(StoreError::Corrupt(other.to_string())),
        }
    }
}

/// The JSON body of an error response.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A summary of the kind of problem.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// For a stale version: the version now stored, to read and retry from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

impl ApiError {
    /// Every problem type [`ApiError::classify`] returns, with its status; the
    /// book documents each on `src/order-management/problems.md`.
    pub const PROBLEM_TYPES: &[(&str, u16)] = &[
        ("malformed-request", 422),
        ("invalid-order", 422),
        ("invalid-command", 422),
        ("saga-only-command", 403),
        ("order-not-found", 404),
        ("stale-version", 409),
        ("illegal-transition", 409),
        ("order-locked", 409),
        ("guard-failed", 409),
        ("order-exists", 409),
        ("unavailable", 503),
        ("internal", 500),
    ];
}

// ANCHOR: status_map
impl ApiError {
    /// The status, the problem type and its title: the whole mapping, in one match.
    pub fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        use StoreError as E;
        match self {
            ApiError::Malformed(_) => (
                S::UNPROCESSABLE_ENTITY,
                "malformed-request",
                "Malformed request",
            ),
            ApiError::SagaOnly(_) => (
                S::FORBIDDEN,
                "saga-only-command",
                "Command reserved to the saga",
            ),
            ApiError::Store(e) => match e {
                E::InvalidOrder(_) => (S::UNPROCESSABLE_ENTITY, "invalid-order", "Invalid order"),
                E::Command(CommandError::InvalidShipment(_) | CommandError::Invalid(_)) => (
                    S::UNPROCESSABLE_ENTITY,
                    "invalid-command",
                    "Invalid command",
                ),
                E::Command(CommandError::Refused(r)) => match r {
                    Refusal::Illegal { .. } => (
                        S::CONFLICT,
                        "illegal-transition",
                        "Not allowed in this state",
                    ),
                    Refusal::Locked { .. } => (S::CONFLICT, "order-locked", "Checkout in progress"),
                    Refusal::GuardFailed { .. } => (
                        S::CONFLICT,
                        "guard-failed",
                        "A condition of the transition failed",
                    ),
                },
                E::NotFound(_) => (S::NOT_FOUND, "order-not-found", "No such order"),
                E::VersionConflict { .. } => (S::CONFLICT, "stale-version", "Stale version"),
                E::AlreadyExists(_) => (S::CONFLICT, "order-exists", "Order exists"),
                E::Database(d) if is_unavailable(d) => (
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Database unavailable",
                ),
                E::Database(_) | E::Corrupt(_) => {
                    (S::INTERNAL_SERVER_ERROR, "internal", "Internal error")
                }
            },
        }
    }
}
// ANCHOR_END: status_map

/// Errors that mean "the database is not reachable right now".
fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    ) || e
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c.starts_with("57"))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.classify();
        let detail = if status.is_server_error() {
            // The cause can name hosts and queries: log it, do not send it.
            tracing::error!(error = %self, "request failed");
            "the server could not complete the request; retry later".to_string()
        } else {
            self.to_string()
        };
        let current_version = match &self {
            ApiError::Store(StoreError::VersionConflict { actual, .. }) => Some(*actual),
            _ => None,
        };
        let problem = Problem {
            kind: format!("{PROBLEM_TYPE_BASE}{kind}"),
            title,
            status: status.as_u16(),
            detail,
            current_version,
        };
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::domain::{CommandKind, OrderError, State};

    #[test]
    fn problem_types_lists_exactly_what_classify_returns() {
        let refused = |r| StoreError::Command(CommandError::Refused(r)).into();
        let every_error: Vec<ApiError> = vec![
            ApiError::Malformed(String::new()),
            ApiError::SagaOnly("approve"),
            StoreError::InvalidOrder(OrderError::LineCount(0)).into(),
            StoreError::Command(CommandError::InvalidShipment(String::new())).into(),
            StoreError::Command(CommandError::Invalid(String::new())).into(),
            refused(Refusal::Illegal {
                from: State::Created,
                command: CommandKind::Ship,
            }),
            refused(Refusal::Locked {
                from: State::Pending,
                command: CommandKind::Cancel,
            }),
            refused(Refusal::GuardFailed {
                from: State::Cancelled,
                command: CommandKind::Refund,
                guard: crate::domain::Guard::WasPaid,
            }),
            StoreError::NotFound(uuid::Uuid::nil()).into(),
            StoreError::VersionConflict {
                expected: 1,
                actual: 2,
            }
            .into(),
            StoreError::AlreadyExists(uuid::Uuid::nil()).into(),
            StoreError::Database(sqlx::Error::PoolTimedOut).into(),
            StoreError::Database(sqlx::Error::RowNotFound).into(),
            StoreError::Corrupt(String::new()).into(),
        ];
        let returned: BTreeSet<(&str, u16)> = every_error
            .iter()
            .map(|e| {
                let (status, kind, _) = e.classify();
                (kind, status.as_u16())
            })
            .collect();
        let listed: BTreeSet<(&str, u16)> = ApiError::PROBLEM_TYPES.iter().copied().collect();
        assert_eq!(returned, listed);
        assert_eq!(
            listed.len(),
            ApiError::PROBLEM_TYPES.len(),
            "a type listed twice"
        );
    }
}
