//! Every error the API returns, and the one place that maps them to HTTP.
//!
//! Responses follow RFC 9457 (Problem Details for HTTP APIs): the body is
//! `application/problem+json` with a `type` URI per kind of problem, a short
//! `title` that does not change between occurrences, the `status`, and a
//! `detail` that explains this occurrence.

use axum::http::StatusCode;
use block_errors::{ApiProblem, Class, INTERNAL, Transient};

use crate::domain::{
    BookingError, KindError, LocationError, PlateError, RangeError, TransitionError,
};
use crate::idempotency::KeyError;
use crate::store::StoreError;

/// The start of every problem `type` URI: the chapter's page of problem
/// types in the published book, where each type has a section whose anchor
/// is its name (`...problems.html#hold-expired`). A book check compares it
/// with `[preprocessor.sources] site` in `book.toml` and the page's sections
/// with [`ApiError::PROBLEM_TYPES`].
pub const PROBLEM_BASE: &str =
    "https://designing-systems-in-rust.github.io/book/parking-reservation/problems.html#";

// ANCHOR: api_error
/// Why a request failed, from any layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `start`/`end` refused.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// `plate` refused.
    #[error(transparent)]
    Plate(#[from] PlateError),
    /// `kind` refused.
    #[error(transparent)]
    Kind(#[from] KindError),
    /// A well-formed range that cannot be booked now.
    #[error(transparent)]
    Booking(#[from] BookingError),
    /// The `Idempotency-Key` header refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A place or a search radius refused.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// The body, path or query string did not parse.
    #[error("{0}")]
    Malformed(String),
    /// `POST /reservations/{id}/{action}` with an action that does not exist.
    #[error("no action {0:?}; expected confirm, check-in, check-out or cancel")]
    UnknownAction(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
// ANCHOR_END: api_error

/// The body of every error response: the errors block's problem document.
pub use block_errors::Problem;

impl ApiError {
    /// Every problem type [`ApiError::classify`] returns, with its status; the
    /// book documents each on `src/parking-reservation/problems.md`.
    pub const PROBLEM_TYPES: &[(&str, u16)] = &[
        ("invalid-time-range", 400),
        ("invalid-plate", 400),
        ("invalid-spot-kind", 400),
        ("not-bookable", 400),
        ("invalid-idempotency-key", 400),
        ("invalid-location", 400),
        ("malformed-request", 400),
        ("invalid-layout", 400),
        ("unknown-action", 404),
        ("lot-not-found", 404),
        ("reservation-not-found", 404),
        ("no-spot-available", 409),
        ("conflict", 409),
        ("illegal-transition", 409),
        ("hold-expired", 409),
        ("spot-taken", 409),
        ("check-in-not-open", 409),
        ("check-in-closed", 409),
        ("not-due", 409),
        ("lot-name-taken", 409),
        ("idempotency-key-reused", 422),
        ("too-many-holds", 429),
        ("too-many-reservations", 429),
        ("already-parked", 409),
        ("unavailable", 503),
        ("database-timeout", 503),
        ("database-conflict", 503),
        ("internal", 500),
    ];
}

/// The chapter's side of the errors block, which builds the body and the
/// headers and logs a 5xx's cause instead of sending it.
impl ApiProblem for ApiError {
    const BASE: &'static str = PROBLEM_BASE;

    // ANCHOR: status_map
    /// The status, the problem type's slug and its title: the whole mapping, in one match.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        use StoreError as E;
        match self {
            ApiError::Range(_) => (S::BAD_REQUEST, "invalid-time-range", "Invalid time range"),
            ApiError::Plate(_) => (S::BAD_REQUEST, "invalid-plate", "Invalid licence plate"),
            ApiError::Kind(_) => (S::BAD_REQUEST, "invalid-spot-kind", "Invalid spot kind"),
            ApiError::Booking(_) => (S::BAD_REQUEST, "not-bookable", "Range cannot be booked"),
            ApiError::Key(_) => (
                S::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
            ),
            ApiError::Location(_) => (S::BAD_REQUEST, "invalid-location", "Invalid location"),
            ApiError::Malformed(_) => (S::BAD_REQUEST, "malformed-request", "Malformed request"),
            ApiError::UnknownAction(_) => (S::NOT_FOUND, "unknown-action", "No such action"),
            ApiError::Store(e) => match e {
                E::LotNotFound(_) => (S::NOT_FOUND, "lot-not-found", "No such lot"),
                E::ReservationNotFound(_) => {
                    (S::NOT_FOUND, "reservation-not-found", "No such reservation")
                }
                E::NoSpotAvailable { .. } => {
                    (S::CONFLICT, "no-spot-available", "No spot available")
                }
                E::Conflict { .. } => (S::CONFLICT, "conflict", "Lost a race for the spot"),
                E::Transition(t) => match t {
                    TransitionError::Illegal(_) => (
                        S::CONFLICT,
                        "illegal-transition",
                        "Not allowed in this state",
                    ),
                    TransitionError::HoldExpired { .. } => {
                        (S::CONFLICT, "hold-expired", "Hold expired")
                    }
                    TransitionError::TooEarlyToCheckIn { .. } => {
                        (S::CONFLICT, "check-in-not-open", "Check-in not open yet")
                    }
                    TransitionError::CheckInClosed { .. } => {
                        (S::CONFLICT, "check-in-closed", "Check-in closed")
                    }
                    TransitionError::NotDue { .. } => (S::CONFLICT, "not-due", "Not due yet"),
                },
                E::SpotTaken => (
                    S::CONFLICT,
                    "spot-taken",
                    "Spot taken after the hold lapsed",
                ),
                E::TooManyHolds { .. } => (
                    S::TOO_MANY_REQUESTS,
                    "too-many-holds",
                    "Too many unconfirmed holds",
                ),
                E::TooManyReservations { .. } => (
                    S::TOO_MANY_REQUESTS,
                    "too-many-reservations",
                    "Too many reservations for one plate",
                ),
                E::AlreadyParked => (S::CONFLICT, "already-parked", "Plate already parked"),
                E::IdempotencyKeyReused(_) => (
                    S::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    "Idempotency-Key reused with a different request",
                ),
                E::InvalidLayout(_) => (S::BAD_REQUEST, "invalid-layout", "Invalid lot layout"),
                E::LotNameTaken(_) => (S::CONFLICT, "lot-name-taken", "Lot name taken"),
                E::Database(e) => database_problem(e),
                E::Corrupt(_) => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
            },
        }
    }
    // ANCHOR_END: status_map

    fn detail(&self) -> String {
        self.to_string()
    }

    fn class(&self) -> Option<Class> {
        match self {
            ApiError::Store(StoreError::Database(e)) => Some(block_errors::classify_sqlx(e)),
            _ => None,
        }
    }
}

// ANCHOR: unavailable
/// The answer to a database error, by the class the errors block gives it:
/// a driver's request is worth retrying (503 with `Retry-After`, and the
/// same `Idempotency-Key`) only when the failure says nothing about the
/// request itself.
fn database_problem(e: &sqlx::Error) -> (StatusCode, &'static str, &'static str) {
    class_problem(block_errors::classify_sqlx(e))
}

/// This chapter's problem type for each class of failure.
pub fn class_problem(class: Class) -> (StatusCode, &'static str, &'static str) {
    match class {
        // statement_timeout stopped a statement: the transaction rolled
        // back; the database is slow, not gone.
        Class::Retryable(Transient::Timeout) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database-timeout",
            "Database too slow",
        ),
        // A deadlock or a serialization conflict rolled it back: running it
        // again is the documented remedy.
        Class::Retryable(Transient::Contention) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database-conflict",
            "Transaction rolled back, retry",
        ),
        // A failover, a shutdown, no connection; or (final) a refusal an
        // operator must fix, answered without `Retry-After`.
        Class::Retryable(_) | Class::Final => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Database unavailable",
        ),
        // A constraint the store did not turn into a refusal of its own, a
        // value the parsing should have refused, or SQL this code got wrong.
        Class::Conflict(_) | Class::Bug => INTERNAL,
    }
}
// ANCHOR_END: unavailable

block_errors::into_response!(ApiError);

#[cfg(test)]
mod tests {
    use block_errors::classify_sqlstate;

    /// SQLSTATEs and the answer each must get here.
    const SQLSTATES: &[(&str, u16, &str)] = &[
        ("57014", 503, "database-timeout"),
        ("57P01", 503, "unavailable"),
        ("57P02", 503, "unavailable"),
        ("57P03", 503, "unavailable"),
        ("25006", 503, "unavailable"),
        ("53300", 503, "unavailable"),
        ("08006", 503, "unavailable"),
        ("42501", 503, "unavailable"),
        ("40001", 503, "database-conflict"),
        ("40P01", 503, "database-conflict"),
        ("55P03", 503, "database-conflict"),
        ("23505", 500, "internal"),
        ("23514", 500, "internal"),
        ("23P01", 500, "internal"),
        ("22P02", 500, "internal"),
        ("42P01", 500, "internal"),
    ];

    #[test]
    fn each_sqlstate_is_mapped_on_purpose() {
        for (code, status, slug) in SQLSTATES {
            let (s, t, _) = class_problem(classify_sqlstate(code));
            assert_eq!((s.as_u16(), t), (*status, *slug), "SQLSTATE {code}");
        }
    }

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::domain::{Event, IllegalTransition, SpotKind, State};

    #[test]
    fn problem_types_lists_exactly_what_classify_returns() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let store = |e: StoreError| ApiError::Store(e);
        let transition = |e: TransitionError| store(StoreError::Transition(e));
        let every_error = [
            ApiError::Range(RangeError::EndNotAfterStart),
            ApiError::Plate(PlateError::Length),
            ApiError::Kind(KindError(String::new())),
            ApiError::Booking(BookingError::BeyondHorizon),
            ApiError::Key(KeyError::Empty),
            ApiError::Location(LocationError::Radius),
            ApiError::Malformed(String::new()),
            ApiError::UnknownAction(String::new()),
            store(StoreError::LotNotFound(1)),
            store(StoreError::ReservationNotFound(uuid::Uuid::nil())),
            store(StoreError::NoSpotAvailable {
                lot_id: 1,
                kind: SpotKind::Regular,
            }),
            store(StoreError::Conflict { attempts: 1 }),
            transition(TransitionError::Illegal(IllegalTransition {
                from: State::Held,
                event: Event::CheckOut,
            })),
            transition(TransitionError::HoldExpired { expired_at: t }),
            transition(TransitionError::TooEarlyToCheckIn { opens_at: t }),
            transition(TransitionError::CheckInClosed { closed_at: t }),
            transition(TransitionError::NotDue {
                event: Event::Expire,
                due_at: t,
            }),
            store(StoreError::SpotTaken),
            store(StoreError::TooManyHolds { limit: 2 }),
            store(StoreError::TooManyReservations { limit: 4 }),
            store(StoreError::AlreadyParked),
            store(StoreError::IdempotencyKeyReused(String::new())),
            store(StoreError::InvalidLayout(String::new())),
            store(StoreError::LotNameTaken(String::new())),
            store(StoreError::Database(sqlx::Error::PoolTimedOut)),
            store(StoreError::Database(sqlx::Error::RowNotFound)),
            store(StoreError::Corrupt(String::new())),
        ];
        let mut returned = block_errors::problem_types_of(&every_error);
        returned.extend(SQLSTATES.iter().map(|(code, _, _)| {
            let (status, slug, _) = class_problem(classify_sqlstate(code));
            (slug.to_string(), status.as_u16())
        }));
        block_errors::assert_problem_types(&returned, ApiError::PROBLEM_TYPES);
    }
}
