//! Every error the API returns, as RFC 9457 problem details, mapped in one place.

use std::time::Duration;

use axum::http::StatusCode;
use block_errors::{ApiProblem, NO_STORE};

use crate::codegen::CodegenError;
use crate::domain::TokenError;
use crate::shortener::{Gone, LinkError};
use crate::store::StoreError;

/// The start of every problem `type` URI: the chapter's page of problem
/// types in the published book, where each type has a section whose anchor
/// is its name (`...problems.html#alias-taken`). A book check compares it
/// with `[preprocessor.sources] site` in `book.toml` and the page's sections
/// with [`ApiError::PROBLEM_TYPES`].
pub const PROBLEM_TYPE_BASE: &str =
    "https://designing-systems-in-rust.github.io/book/url-shortener/problems.html#";

// ANCHOR: cache_control
/// How long any cache may keep a `410`: a delete is final and an expiry does
/// not move, so the answer cannot change.
pub const GONE_CACHE_CONTROL: &str = "public, max-age=86400";

/// Every other error: a `404` turns into a link the moment someone creates
/// the code, and a `429` or `503` describes a moment. No cache keeps them.
pub const ERROR_CACHE_CONTROL: &str = NO_STORE;
// ANCHOR_END: cache_control

/// An error as the HTTP layer sees it.
#[derive(Debug)]
pub enum ApiError {
    /// A use case failed.
    Link(LinkError),
    /// The body is not the JSON we expect (syntax, types, unknown fields).
    BadRequest(String),
    /// The body is larger than any valid request.
    BodyTooLarge,
    /// The client must wait this long before creating another link.
    RateLimited(Duration),
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::BodyTooLarge,
            // Syntax, types, a missing field or content type: all "malformed".
            _ => Self::BadRequest(e.body_text()),
        }
    }
}

/// The detail, for logs and test messages (the wire hides a 5xx's).
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail())
    }
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        Self::Link(e)
    }
}

impl ApiError {
    /// Every problem type [`ApiError::classify`] returns, with its status; the
    /// book documents each on `src/url-shortener/problems.md`.
    pub const PROBLEM_TYPES: &[(&str, u16)] = &[
        ("malformed-request", 400),
        ("body-too-large", 413),
        ("rate-limited", 429),
        ("too-many-misses", 429),
        ("invalid-input", 422),
        ("management-token-required", 403),
        ("management-token-wrong", 403),
        ("not-found", 404),
        ("expired", 410),
        ("deleted", 410),
        ("alias-taken", 409),
        ("no-free-code", 503),
        ("code-space-exhausted", 503),
        ("store-unavailable", 503),
        ("store-timeout", 503),
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
        use LinkError as L;
        match self {
            Self::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
            ),
            Self::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            ),
            Self::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            Self::Link(e) => match e {
                L::Invalid(_) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-input",
                    "Invalid input",
                ),
                L::NotFound => (StatusCode::NOT_FOUND, "not-found", "No such link"),
                L::Gone(Gone::Expired) => (StatusCode::GONE, "expired", "Link expired"),
                L::Gone(Gone::Deleted) => (StatusCode::GONE, "deleted", "Link deleted"),
                L::AliasTaken => (StatusCode::CONFLICT, "alias-taken", "Alias taken"),
                L::Forbidden(TokenError::Missing | TokenError::Malformed) => (
                    StatusCode::FORBIDDEN,
                    "management-token-required",
                    "Management token required",
                ),
                L::Forbidden(TokenError::Wrong) => (
                    StatusCode::FORBIDDEN,
                    "management-token-wrong",
                    "Wrong management token",
                ),
                L::TooManyMisses(_) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-misses",
                    "Too many unknown codes",
                ),
                L::NoFreeCode(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no-free-code",
                    "No free code",
                ),
                L::Codegen(CodegenError::SpaceExhausted) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "code-space-exhausted",
                    "Code space exhausted",
                ),
                // The errors block's class: a bug in the allocator's SQL is a 500.
                L::Codegen(CodegenError::AllocatorUnavailable(class, _))
                    if class.status() == StatusCode::INTERNAL_SERVER_ERROR =>
                {
                    block_errors::INTERNAL
                }
                L::Codegen(CodegenError::AllocatorUnavailable(..))
                | L::Store(StoreError::Unavailable(_) | StoreError::Refused(_)) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "Store unavailable",
                ),
                L::Store(StoreError::Timeout(_)) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-timeout",
                    "Store timed out",
                ),
                L::Store(StoreError::CodeTaken | StoreError::Backend(_)) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                ),
            },
        }
    }
    // ANCHOR_END: status_mapping

    fn detail(&self) -> String {
        match self {
            Self::BadRequest(why) => why.clone(),
            Self::BodyTooLarge => "a create request is at most a few kilobytes".to_string(),
            Self::RateLimited(wait) | Self::Link(LinkError::TooManyMisses(wait)) => {
                format!("retry in {} s", block_errors::retry_after_secs(*wait))
            }
            Self::Link(e) => e.to_string(),
        }
    }

    fn class(&self) -> Option<block_errors::Class> {
        match self {
            Self::Link(LinkError::Codegen(CodegenError::AllocatorUnavailable(class, _))) => {
                Some(*class)
            }
            Self::Link(LinkError::Store(StoreError::Refused(_))) => {
                Some(block_errors::Class::Final)
            }
            _ => None,
        }
    }

    fn retry_after(&self, status: StatusCode) -> Option<Duration> {
        match self {
            Self::RateLimited(wait) | Self::Link(LinkError::TooManyMisses(wait)) => Some(*wait),
            // Every code is handed out: no wait brings one back.
            Self::Link(LinkError::Codegen(CodegenError::SpaceExhausted)) => None,
            _ => block_errors::default_retry_after(self.class(), status),
        }
    }

    fn extensions(&self, problem: block_errors::Problem) -> block_errors::Problem {
        match self {
            Self::Link(LinkError::Invalid(i)) => problem.with("reason", i.reason().into()),
            _ => problem,
        }
    }

    fn cache_control(&self, status: StatusCode) -> &'static str {
        if status == StatusCode::GONE {
            GONE_CACHE_CONTROL
        } else {
            ERROR_CACHE_CONTROL
        }
    }
}

block_errors::into_response!(ApiError);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::UrlError;

    #[test]
    fn problem_types_lists_exactly_what_classify_returns() {
        let every_error = [
            ApiError::BadRequest(String::new()),
            ApiError::BodyTooLarge,
            ApiError::RateLimited(Duration::from_secs(1)),
            LinkError::Invalid(UrlError::Empty.into()).into(),
            LinkError::NotFound.into(),
            LinkError::Gone(Gone::Expired).into(),
            LinkError::Gone(Gone::Deleted).into(),
            LinkError::AliasTaken.into(),
            LinkError::Forbidden(TokenError::Missing).into(),
            LinkError::Forbidden(TokenError::Malformed).into(),
            LinkError::Forbidden(TokenError::Wrong).into(),
            LinkError::TooManyMisses(Duration::from_secs(1)).into(),
            LinkError::NoFreeCode(1).into(),
            LinkError::Codegen(CodegenError::SpaceExhausted).into(),
            LinkError::Codegen(CodegenError::AllocatorUnavailable(
                block_errors::Class::Final,
                String::new(),
            ))
            .into(),
            LinkError::Codegen(CodegenError::AllocatorUnavailable(
                block_errors::Class::Bug,
                String::new(),
            ))
            .into(),
            LinkError::Store(StoreError::Unavailable(String::new())).into(),
            LinkError::Store(StoreError::Refused(String::new())).into(),
            LinkError::Store(StoreError::Timeout(Duration::from_secs(1))).into(),
            LinkError::Store(StoreError::CodeTaken).into(),
            LinkError::Store(StoreError::Backend(String::new())).into(),
        ];
        block_errors::assert_problem_types(
            &block_errors::problem_types_of(&every_error),
            ApiError::PROBLEM_TYPES,
        );
    }
}
