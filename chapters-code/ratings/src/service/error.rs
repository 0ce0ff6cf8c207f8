//! Every error the API returns, as RFC 9457 problem details, mapped in one place.

use std::time::Duration;

use axum::http::StatusCode;
use block_errors::{ApiProblem, Class, INTERNAL, class_problem, classify_sqlx};

use crate::domain::{BodyError, RatingError};
use crate::store::StoreError;

/// The start of every problem `type` URI: the chapter's page of problem types.
pub const PROBLEM_TYPE_BASE: &str =
    "https://designing-systems-in-rust.github.io/book/ratings/problems.html#";

// ANCHOR: api_error
/// Why a request failed, from any layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The stars were not 1 to 5.
    #[error(transparent)]
    Rating(#[from] RatingError),
    /// The text was empty, too long or had control characters.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A moderation request named no actor or reason, or an author's event.
    #[error("{0}")]
    Moderation(String),
    /// The body, path or query did not parse.
    #[error("{0}")]
    Malformed(String),
    /// The account submitted too many reviews too fast.
    #[error("too many reviews from this account; retry in {}s", .0.as_secs().max(1))]
    TooManyReviews(Duration),
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
        ("invalid-rating", 400),
        ("invalid-body", 400),
        ("invalid-moderation", 400),
        ("not-purchased", 403),
        ("own-review", 403),
        ("no-such-route", 404),
        ("unknown-product", 404),
        ("unknown-user", 404),
        ("review-not-found", 404),
        ("method-not-allowed", 405),
        ("already-reviewed", 409),
        ("already-voted", 409),
        ("illegal-transition", 409),
        ("not-votable", 409),
        ("too-many-reviews", 429),
        ("unavailable", 503),
        ("internal", 500),
    ];
}

/// The chapter's side of the errors block.
impl ApiProblem for ApiError {
    const BASE: &'static str = PROBLEM_TYPE_BASE;

    /// Status, problem type and title: the only place errors meet status codes.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        use StoreError as E;
        match self {
            ApiError::Malformed(_) => (S::BAD_REQUEST, "malformed-request", "Malformed request"),
            ApiError::Rating(_) => (S::BAD_REQUEST, "invalid-rating", "Rating outside 1 to 5"),
            ApiError::Body(_) => (S::BAD_REQUEST, "invalid-body", "Invalid review text"),
            ApiError::Moderation(_) => (
                S::BAD_REQUEST,
                "invalid-moderation",
                "Invalid moderation request",
            ),
            ApiError::TooManyReviews(_) => {
                (S::TOO_MANY_REQUESTS, "too-many-reviews", "Too many reviews")
            }
            ApiError::NoRoute => (S::NOT_FOUND, "no-such-route", "No such route"),
            ApiError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::Store(e) => match e {
                E::UnknownProduct(_) => (S::NOT_FOUND, "unknown-product", "Unknown product"),
                E::UnknownUser(_) => (S::NOT_FOUND, "unknown-user", "Unknown user"),
                E::ReviewNotFound(_) | E::NoReviewOf { .. } => {
                    (S::NOT_FOUND, "review-not-found", "No such review")
                }
                E::NotPurchased { .. } => (S::FORBIDDEN, "not-purchased", "Not a verified buyer"),
                E::OwnReview => (S::FORBIDDEN, "own-review", "Own review"),
                E::AlreadyReviewed { .. } => (S::CONFLICT, "already-reviewed", "Already reviewed"),
                E::AlreadyVoted { .. } => (S::CONFLICT, "already-voted", "Already voted"),
                E::Illegal(_) => (S::CONFLICT, "illegal-transition", "Transition not allowed"),
                E::NotVotable { .. } => (S::CONFLICT, "not-votable", "Review not published"),
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

    fn retry_after(&self, status: StatusCode) -> Option<Duration> {
        match self {
            Self::TooManyReviews(wait) => Some(*wait),
            _ => block_errors::default_retry_after(self.class(), status),
        }
    }
}
// ANCHOR_END: status_map

block_errors::into_response!(ApiError);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::moderation::IllegalTransition;
    use crate::domain::{ModEvent, ModState, ProductId, ReviewId, UserId};

    #[test]
    fn every_listed_problem_type_is_returned_and_no_other() {
        let (user, product, review) = (UserId(1), ProductId(2), ReviewId(3));
        let all = [
            ApiError::Malformed("x".into()),
            ApiError::Rating(RatingError(9)),
            ApiError::Body(BodyError::Empty),
            ApiError::Moderation("x".into()),
            ApiError::TooManyReviews(Duration::from_secs(1)),
            ApiError::NoRoute,
            ApiError::MethodNotAllowed,
            StoreError::UnknownProduct(product).into(),
            StoreError::UnknownUser(user).into(),
            StoreError::ReviewNotFound(review).into(),
            StoreError::NoReviewOf { user, product }.into(),
            StoreError::NotPurchased { user, product }.into(),
            StoreError::OwnReview.into(),
            StoreError::AlreadyReviewed { user, product }.into(),
            StoreError::AlreadyVoted {
                voter: user,
                review,
            }
            .into(),
            StoreError::Illegal(IllegalTransition {
                from: ModState::Deleted,
                event: ModEvent::Approve,
            })
            .into(),
            StoreError::NotVotable {
                review,
                state: ModState::Pending,
            }
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
