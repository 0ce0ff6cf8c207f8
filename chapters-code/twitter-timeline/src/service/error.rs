//! Every error the API returns, as RFC 9457 problem details, mapped in one place.

use axum::http::StatusCode;
use block_errors::ApiProblem;

use crate::app::AppError;
use crate::cache::CacheError;
use crate::store::StoreError;
use crate::timeline::TimelineError;

/// The start of every problem `type` URI: the chapter's page of problem
/// types in the published book, one section per type (`...problems.html#not-author`).
pub const PROBLEM_TYPE_BASE: &str =
    "https://designing-systems-in-rust.github.io/book/twitter-timeline/problems.html#";

/// An error as the HTTP layer sees it.
#[derive(Debug)]
pub enum ApiError {
    /// A use case failed.
    App(AppError),
    /// The body or query is not what we expect (syntax, types, unknown fields).
    BadRequest(String),
    /// No valid `X-User-Id` header: who is acting is unknown.
    Unauthenticated,
    /// `X-User-Id` was sent to a service configured not to trust it.
    UntrustedHeader,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail())
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        Self::BadRequest(e.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Self::BadRequest(e.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        Self::BadRequest(e.body_text())
    }
}

impl ApiError {
    /// Every problem type [`ApiError::classify`] returns, with its status;
    /// `src/twitter-timeline/problems.md` documents each.
    pub const PROBLEM_TYPES: &[(&str, u16)] = &[
        ("malformed-request", 400),
        ("unauthenticated", 401),
        ("invalid-post", 422),
        ("invalid-handle", 422),
        ("invalid-cursor", 400),
        ("invalid-limit", 400),
        ("unknown-user", 404),
        ("post-not-found", 404),
        ("not-author", 403),
        ("self-action", 422),
        ("blocked", 403),
        ("handle-taken", 409),
        ("clock-behind", 503),
        ("unavailable", 503),
        ("internal", 500),
    ];
}

/// The chapter's side of the errors block, which builds the body and the
/// headers and logs a 5xx's cause instead of sending it.
impl ApiProblem for ApiError {
    const BASE: &'static str = PROBLEM_TYPE_BASE;

    // ANCHOR: status_mapping
    /// Status, problem type and title: the only place errors meet status codes.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        use StoreError as E;
        let store = |e: &StoreError| match e {
            E::UnknownUser(_) => (S::NOT_FOUND, "unknown-user", "No such user"),
            E::PostNotFound => (S::NOT_FOUND, "post-not-found", "No such post"),
            E::NotAuthor => (S::FORBIDDEN, "not-author", "Not the author"),
            E::SelfAction => (S::UNPROCESSABLE_ENTITY, "self-action", "Not on yourself"),
            E::Blocked => (S::FORBIDDEN, "blocked", "Blocked"),
            E::HandleTaken => (S::CONFLICT, "handle-taken", "Handle taken"),
            E::Unavailable(_) | E::Refused(_) => {
                (S::SERVICE_UNAVAILABLE, "unavailable", "Unavailable")
            }
            E::Backend(_) => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        };
        match self {
            Self::BadRequest(_) => (S::BAD_REQUEST, "malformed-request", "Malformed request"),
            Self::Unauthenticated | Self::UntrustedHeader => {
                (S::UNAUTHORIZED, "unauthenticated", "Unauthenticated")
            }
            Self::App(e) => match e {
                AppError::Body(_) => (S::UNPROCESSABLE_ENTITY, "invalid-post", "Invalid post"),
                AppError::Handle(_) => {
                    (S::UNPROCESSABLE_ENTITY, "invalid-handle", "Invalid handle")
                }
                AppError::Cursor(_) => (S::BAD_REQUEST, "invalid-cursor", "Invalid cursor"),
                AppError::Limit(_) => (S::BAD_REQUEST, "invalid-limit", "Invalid page size"),
                AppError::Id(_) => (S::SERVICE_UNAVAILABLE, "clock-behind", "Clock behind"),
                AppError::Timeline(TimelineError::Store(e)) => store(e),
                AppError::Timeline(TimelineError::Cache(CacheError::Unavailable(_))) => {
                    (S::SERVICE_UNAVAILABLE, "unavailable", "Unavailable")
                }
                AppError::Timeline(TimelineError::Cache(
                    CacheError::Garbage(_) | CacheError::Rejected(_),
                )) => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
            },
        }
    }
    // ANCHOR_END: status_mapping

    /// A refusal that waiting will not cure gets no `Retry-After`.
    fn class(&self) -> Option<block_errors::Class> {
        match self {
            Self::App(AppError::Timeline(TimelineError::Store(StoreError::Refused(_)))) => {
                Some(block_errors::Class::Final)
            }
            _ => None,
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::BadRequest(why) => why.clone(),
            Self::Unauthenticated => "send the acting user's id in X-User-Id".to_string(),
            Self::UntrustedHeader => {
                "this service does not take X-User-Id from the request".to_string()
            }
            Self::App(e) => e.to_string(),
        }
    }

    fn extensions(&self, problem: block_errors::Problem) -> block_errors::Problem {
        match self {
            Self::App(AppError::Body(b)) => problem.with("reason", b.reason().into()),
            _ => problem,
        }
    }
}

block_errors::into_response!(ApiError);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BodyError, CursorError, HandleError, IdError, UserId};

    #[test]
    fn problem_types_lists_exactly_what_classify_returns() {
        let store = |e: StoreError| ApiError::App(e.into());
        let every_error = [
            ApiError::BadRequest(String::new()),
            ApiError::Unauthenticated,
            ApiError::UntrustedHeader,
            ApiError::App(BodyError::Empty.into()),
            ApiError::App(HandleError::Invalid.into()),
            ApiError::App(CursorError::NotOurs.into()),
            ApiError::App(AppError::Limit(0)),
            ApiError::App(IdError::ClockBehind { behind_ms: 1 }.into()),
            store(StoreError::UnknownUser(UserId(1))),
            store(StoreError::PostNotFound),
            store(StoreError::NotAuthor),
            store(StoreError::SelfAction),
            store(StoreError::Blocked),
            store(StoreError::HandleTaken),
            store(StoreError::Unavailable(String::new())),
            store(StoreError::Refused(String::new())),
            store(StoreError::Backend(String::new())),
            ApiError::App(AppError::Timeline(TimelineError::Cache(
                CacheError::Unavailable(String::new()),
            ))),
            ApiError::App(AppError::Timeline(TimelineError::Cache(
                CacheError::Garbage(String::new()),
            ))),
            ApiError::App(AppError::Timeline(TimelineError::Cache(
                CacheError::Rejected(String::new()),
            ))),
        ];
        block_errors::assert_problem_types(
            &block_errors::problem_types_of(&every_error),
            ApiError::PROBLEM_TYPES,
        );
    }
}
