//! Every error the API returns, and the one place that maps them to HTTP.
//!
//! Responses follow RFC 9457 (Problem Details for HTTP APIs): the body is
//! `application/problem+json` with a `type` URI per kind of problem, a short
//! `title` that does not change between occurrences, the `status`, and a
//! `detail` that explains this occurrence.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

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

// ANCHOR: problem
/// The JSON body of an error response.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A summary of the kind of problem.
    pub title: &'static str,
    /// The HTTP status, repeated for clients that lose the status line.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
}
// ANCHOR_END: problem

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
        ("unavailable", 503),
        ("database-timeout", 503),
        ("database-conflict", 503),
        ("internal", 500),
    ];
}

// ANCHOR: status_map
impl ApiError {
    /// The status, the problem type's slug and its title: the whole mapping, in one match.
    pub fn classify(&self) -> (StatusCode, &'static str, &'static str) {
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
}
// ANCHOR_END: status_map

// ANCHOR: unavailable
/// The answer to a database error: a driver's request is worth retrying
/// (503 with `Retry-After`, and the same `Idempotency-Key`) only when the
/// failure says nothing about the request itself.
fn database_problem(e: &sqlx::Error) -> (StatusCode, &'static str, &'static str) {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => UNAVAILABLE,
        _ => match e.as_database_error().and_then(|d| d.code()) {
            Some(code) => sqlstate_problem(&code),
            None => INTERNAL,
        },
    }
}

const UNAVAILABLE: (StatusCode, &str, &str) = (
    StatusCode::SERVICE_UNAVAILABLE,
    "unavailable",
    "Database unavailable",
);
const INTERNAL: (StatusCode, &str, &str) = (
    StatusCode::INTERNAL_SERVER_ERROR,
    "internal",
    "Internal error",
);

/// Every SQLSTATE the service can meet, mapped on purpose
/// ([PostgreSQL error codes](https://www.postgresql.org/docs/current/errcodes-appendix.html)).
pub fn sqlstate_problem(code: &str) -> (StatusCode, &'static str, &'static str) {
    match code {
        // statement_timeout (or a cancel) stopped a statement: the
        // transaction rolled back; the database is slow, not gone.
        "57014" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database-timeout",
            "Database too slow",
        ),
        // A failover seen from the client: the server shuts down (57P01,
        // 57P02), refuses connections while starting (57P03), or the pool
        // still holds a connection to the old primary, now a read-only
        // standby (25006).
        "57P01" | "57P02" | "57P03" | "25006" => UNAVAILABLE,
        // Out of connections, memory or disk (class 53), or the connection
        // itself failed (class 08).
        c if c.starts_with("53") || c.starts_with("08") => UNAVAILABLE,
        // The database rolled the transaction back to break a deadlock or a
        // serialization conflict: running it again is the documented remedy.
        "40001" | "40P01" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database-conflict",
            "Transaction rolled back, retry",
        ),
        // A constraint or a data error that the parsing before the store
        // should have made impossible, or SQL this code got wrong: a bug.
        _ => INTERNAL,
    }
}
// ANCHOR_END: unavailable

// ANCHOR: into_response
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.classify();
        let detail = if status.is_server_error() {
            // The cause is for the log, not for the client.
            tracing::error!(error = %self, "request failed");
            match slug {
                "database-timeout" => {
                    "the database took too long; nothing was changed; retry shortly".to_string()
                }
                "database-conflict" => {
                    "the database rolled the request back; nothing was changed; retry".to_string()
                }
                "unavailable" => "the database is unavailable; retry shortly".to_string(),
                _ => "an internal error occurred".to_string(),
            }
        } else {
            self.to_string()
        };
        let problem = Problem {
            kind: format!("{PROBLEM_BASE}{slug}"),
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
// ANCHOR_END: into_response

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// SQLSTATEs and the answer each must get.
    const SQLSTATES: &[(&str, u16, &str)] = &[
        ("57014", 503, "database-timeout"),
        ("57P01", 503, "unavailable"),
        ("57P02", 503, "unavailable"),
        ("57P03", 503, "unavailable"),
        ("25006", 503, "unavailable"),
        ("53300", 503, "unavailable"),
        ("53100", 503, "unavailable"),
        ("08006", 503, "unavailable"),
        ("40001", 503, "database-conflict"),
        ("40P01", 503, "database-conflict"),
        ("23505", 500, "internal"),
        ("23514", 500, "internal"),
        ("22P02", 500, "internal"),
        ("42P01", 500, "internal"),
        ("57000", 500, "internal"),
    ];

    #[test]
    fn each_sqlstate_is_mapped_on_purpose() {
        for (code, status, slug) in SQLSTATES {
            let (s, t, _) = sqlstate_problem(code);
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
            store(StoreError::IdempotencyKeyReused(String::new())),
            store(StoreError::InvalidLayout(String::new())),
            store(StoreError::LotNameTaken(String::new())),
            store(StoreError::Database(sqlx::Error::PoolTimedOut)),
            store(StoreError::Database(sqlx::Error::RowNotFound)),
            store(StoreError::Corrupt(String::new())),
        ];
        let mut returned: BTreeSet<(&str, u16)> = every_error
            .iter()
            .map(|e| {
                let (status, slug, _) = e.classify();
                (slug, status.as_u16())
            })
            .collect();
        returned.extend(SQLSTATES.iter().map(|(code, _, _)| {
            let (status, slug, _) = sqlstate_problem(code);
            (slug, status.as_u16())
        }));
        let listed: BTreeSet<(&str, u16)> = ApiError::PROBLEM_TYPES.iter().copied().collect();
        assert_eq!(returned, listed);
        assert_eq!(
            listed.len(),
            ApiError::PROBLEM_TYPES.len(),
            "a type listed twice"
        );
    }
}
