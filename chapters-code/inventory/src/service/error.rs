//! Every error the API returns, as RFC 9457 problem details, mapped in one place.

use axum::http::StatusCode;
use block_errors::{ApiProblem, Class, INTERNAL, class_problem, classify_sqlx};

/// The body of every error response: the errors block's problem document.
pub use block_errors::Problem;

use crate::domain::{CodeError, Event, QtyError, State, TransitionError};
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
        ("reservation-id-reused", 409),
        ("receipt-id-reused", 409),
        ("hold-expired", 409),
        ("already-committed", 409),
        ("already-released", 409),
        ("count-below-reserved", 409),
        ("count-stale", 409),
        ("not-committed", 409),
        ("unavailable", 503),
        ("internal", 500),
    ];
}

/// The chapter's side of the errors block, which builds the body and the
/// headers and logs a 5xx's cause instead of sending it.
impl ApiProblem for ApiError {
    const BASE: &'static str = PROBLEM_TYPE_BASE;

    /// Status, problem type and title: the only place errors meet status codes.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
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
                E::IdReused(_) => (
                    S::CONFLICT,
                    "reservation-id-reused",
                    "Reservation id already used for another request",
                ),
                E::ReceiptReused(_) => (
                    S::CONFLICT,
                    "receipt-id-reused",
                    "Receipt id already used for another receipt",
                ),
                E::Transition(t) => match t {
                    TransitionError::HoldExpired { .. } => {
                        (S::CONFLICT, "hold-expired", "The hold expired")
                    }
                    TransitionError::Illegal {
                        from: State::Held,
                        event: Event::Ship,
                    } => (S::CONFLICT, "not-committed", "Reservation not committed"),
                    TransitionError::Illegal {
                        from: State::Committed | State::Shipped,
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
                E::CountStale { .. } => (S::CONFLICT, "count-stale", "The count is stale"),
                // The errors block's class: 503 for what a retry may cure.
                E::Database(e) => class_problem(classify_sqlx(e)),
                E::Corrupt(_) => INTERNAL,
            },
        }
    }

    fn detail(&self) -> String {
        self.to_string()
    }

    fn class(&self) -> Option<Class> {
        match self {
            Self::Store(StoreError::Database(e)) => Some(classify_sqlx(e)),
            _ => None,
        }
    }
}
// ANCHOR_END: status_map

block_errors::into_response!(ApiError);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Sku, StockKey, Warehouse};

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
            StoreError::IdReused(uuid::Uuid::nil()).into(),
            StoreError::ReceiptReused(uuid::Uuid::nil()).into(),
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
                key: key.clone(),
                counted: 1,
                reserved: 2,
            }
            .into(),
            StoreError::CountStale {
                key,
                seen: 1,
                on_hand: 2,
            }
            .into(),
            StoreError::Transition(TransitionError::Illegal {
                from: State::Held,
                event: Event::Ship,
            })
            .into(),
            StoreError::Database(sqlx::Error::PoolTimedOut).into(),
            StoreError::Corrupt("x".into()).into(),
        ];
        block_errors::assert_problem_types(
            &block_errors::problem_types_of(&all),
            ApiError::PROBLEM_TYPES,
        );
    }
}
