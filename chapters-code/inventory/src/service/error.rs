//! Every error the API returns, as RFC 9457 problem details, mapped in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::{CodeError, QtyError, State, TransitionError};
use crate::store::StoreError;

/// The start of every problem `type` URI: the chapter's page of problem
/// types, where each type has a section whose anchor is its name.
pub const PROBLEM_TYPE_BASE: &str =
    "https://designing-systems-in-rust.github.io/book/inventory/problems.html#";

// ANCHOR: api_error
/// Why a request failed, from any layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A quantity or count was zero, negative or absurd.
    #[error(transparent)]
    Quantity(#[from] QtyError),
    /// A SKU or warehouse code did not parse.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// `ttl_seconds` outside the allowed range.
    #[error("ttl_seconds must be between {min} and {max}, got {got}")]
    Ttl {
        /// The value given.
        got: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// The body, path or id did not parse.
    #[error("{0}")]
    Malformed(String),
    /// No route has this path.
    #[error("no such route")]
    NoRoute,
    /// The path exists, but not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
// ANCHOR_END: api_error

/// The `application/problem+json` body.
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
}

// ANCHOR: status_map
impl ApiError {
    /// Every problem type the API can return, with its status; `problems.md`
    /// has a section for each, and a test checks `classify` against this list.
    pub const PROBLEM_TYPES: &[(&str, u16)] = &[
        ("malformed-request", 400),
        ("invalid-quantity", 400),
        ("invalid-code", 400),
        ("invalid-ttl", 400),
        ("no-such-route", 404),
        ("method-not-allowed", 405),
        ("unknown-sku", 404),
        ("unknown-warehouse", 404),
        ("reservation-not-found", 404),
        ("out-of-stock", 409),
        ("hold-expired", 409),
        ("already-committed", 409),
        ("already-released", 409),
        ("count-below-reserved", 409),
        ("unavailable", 503),
        ("internal", 500),
    ];

    /// Status, problem type and title: the only place errors meet status codes.
    pub fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        use StoreError as E;
        match self {
            ApiError::Malformed(_) => (S::BAD_REQUEST, "malformed-request", "Malformed request"),
            ApiError::Quantity(_) => (S::BAD_REQUEST, "invalid-quantity", "Invalid quantity"),
            ApiError::Code(_) => (
                S::BAD_REQUEST,
                "invalid-code",
                "Invalid SKU or warehouse code",
            ),
            ApiError::Ttl { .. } => (S::BAD_REQUEST, "invalid-ttl", "Invalid hold time"),
            ApiError::NoRoute => (S::NOT_FOUND, "no-such-route", "No such route"),
            ApiError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::Store(e) => match e {
                E::UnknownSku(_) => (S::NOT_FOUND, "unknown-sku", "Unknown SKU"),
                E::UnknownWarehouse(_) => (S::NOT_FOUND, "unknown-warehouse", "Unknown warehouse"),
                E::ReservationNotFound(_) => {
                    (S::NOT_FOUND, "reservation-not-found", "No such reservation")
                }
                E::OutOfStock { .. } => (S::CONFLICT, "out-of-stock", "Not enough stock"),
                E::Transition(t) => match t {
                    TransitionError::HoldExpired { .. } => {
                        (S::CONFLICT, "hold-expired", "The hold expired")
                    }
                    TransitionError::Illegal {
                        from: State::Committed,
                        ..
                    } => (
                        S::CONFLICT,
                        "already-committed",
                        "Reservation already committed",
                    ),
                    TransitionError::Illegal { .. } | TransitionError::NotDue { .. } => (
                        S::CONFLICT,
                        "already-released",
                        "Reservation already released",
                    ),
                },
                E::CountBelowReserved { .. } => (
                    S::CONFLICT,
                    "count-below-reserved",
                    "Count below reserved units",
                ),
                E::Database(e) if is_unavailable(e) => (
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

/// Errors that mean "the database is not reachable right now", worth a retry later.
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
        let (status, slug, title) = self.classify();
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "the server could not complete the request; retry shortly".to_string()
        } else {
            self.to_string()
        };
        let problem = Problem {
            kind: format!("{PROBLEM_TYPE_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, Sku, StockKey, Warehouse};

    #[test]
    fn every_listed_problem_type_is_returned_and_no_other() {
        let key = StockKey::new(
            Sku::parse("A").expect("valid"),
            Warehouse::parse("W").expect("valid"),
        );
        let t = chrono::DateTime::from_timestamp(0, 0).expect("valid");
        let all = [
            ApiError::Malformed("x".into()),
            ApiError::Quantity(QtyError::Zero),
            ApiError::Code(CodeError::Empty { what: "SKU" }),
            ApiError::Ttl {
                got: 0,
                min: 1,
                max: 2,
            },
            ApiError::NoRoute,
            ApiError::MethodNotAllowed,
            StoreError::UnknownSku(key.sku.clone()).into(),
            StoreError::UnknownWarehouse(key.warehouse.clone()).into(),
            StoreError::ReservationNotFound(uuid::Uuid::nil()).into(),
            StoreError::OutOfStock {
                key: key.clone(),
                requested: 2,
                available: 1,
            }
            .into(),
            StoreError::Transition(TransitionError::HoldExpired { expires_at: t }).into(),
            StoreError::Transition(TransitionError::Illegal {
                from: State::Committed,
                event: Event::Release,
            })
            .into(),
            StoreError::Transition(TransitionError::Illegal {
                from: State::Released,
                event: Event::Commit,
            })
            .into(),
            StoreError::CountBelowReserved {
                key,
                counted: 1,
                reserved: 2,
            }
            .into(),
            StoreError::Database(sqlx::Error::PoolTimedOut).into(),
            StoreError::Corrupt("x".into()).into(),
        ];
        let got: Vec<(&str, u16)> = all
            .iter()
            .map(|e| {
                let (s, slug, _) = e.classify();
                (slug, s.as_u16())
            })
            .collect();
        assert_eq!(got, ApiError::PROBLEM_TYPES);
    }
}
