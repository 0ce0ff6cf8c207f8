//! Every error the API returns, as RFC 9457 problem details, mapped in one place.

use axum::http::StatusCode;
use block_errors::{ApiProblem, Class, INTERNAL, class_problem, classify_sqlx};

/// The body of every error response: the errors block's problem document.
pub use block_errors::Problem;

use block_idempotency::ClaimError;

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
            // The order's last saga is still recording its end: checkout is
            // still in progress as far as the order is concerned.
            SagaError::Busy(_) => ApiError::Store(StoreError::Command(CommandError::Refused(
                Refusal::Locked {
                    from: crate::domain::State::Pending,
                    command: crate::domain::CommandKind::Place,
                },
            ))),
            other => ApiError::Store(StoreError::Corrupt(other.to_string())),
        }
    }
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
        ("idempotency-key-reused", 422),
        ("idempotency-key-in-use", 409),
        ("unavailable", 503),
        ("internal", 500),
    ];
}

/// The chapter's side of the errors block, which builds the body and the
/// headers and logs a 5xx's cause instead of sending it.
impl ApiProblem for ApiError {
    const BASE: &'static str = PROBLEM_TYPE_BASE;

    // ANCHOR: status_map
    /// The status, the problem type and its title: the whole mapping, in one match.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
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
                E::Key(k) => match k {
                    ClaimError::KeyReused => (
                        S::UNPROCESSABLE_ENTITY,
                        "idempotency-key-reused",
                        "Idempotency-Key used with another request",
                    ),
                    ClaimError::KeyInUse => (
                        S::CONFLICT,
                        "idempotency-key-in-use",
                        "A request with this Idempotency-Key is in progress",
                    ),
                    ClaimError::Database(d) => class_problem(classify_sqlx(d)),
                    ClaimError::Corrupt(_) => INTERNAL,
                },
                // The errors block's class: 503 for what a retry may cure.
                E::Database(d) => class_problem(classify_sqlx(d)),
                E::Corrupt(_) => INTERNAL,
            },
        }
    }
    // ANCHOR_END: status_map

    fn detail(&self) -> String {
        self.to_string()
    }

    fn class(&self) -> Option<Class> {
        match self {
            ApiError::Store(StoreError::Database(d) | StoreError::Key(ClaimError::Database(d))) => {
                Some(classify_sqlx(d))
            }
            _ => None,
        }
    }

    fn extensions(&self, problem: block_errors::Problem) -> block_errors::Problem {
        // A stale version: the version now stored, to read and retry from.
        match self {
            ApiError::Store(StoreError::VersionConflict { actual, .. }) => {
                problem.with("current_version", (*actual).into())
            }
            _ => problem,
        }
    }
}

block_errors::into_response!(ApiError);

#[cfg(test)]
mod tests {
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
            StoreError::Key(ClaimError::KeyReused).into(),
            StoreError::Key(ClaimError::KeyInUse).into(),
            StoreError::Database(sqlx::Error::PoolTimedOut).into(),
            StoreError::Database(sqlx::Error::RowNotFound).into(),
            StoreError::Corrupt(String::new()).into(),
        ];
        block_errors::assert_problem_types(
            &block_errors::problem_types_of(&every_error),
            ApiError::PROBLEM_TYPES,
        );
    }
}
