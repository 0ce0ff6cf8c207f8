//! Every error the API returns, as RFC 9457 problem details, mapped in one place.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

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

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_UNAVAILABLE: u64 = 1;

// ANCHOR: cache_control
/// How long any cache may keep a `410`: a delete is final and an expiry does
/// not move, so the answer cannot change.
pub const GONE_CACHE_CONTROL: &str = "public, max-age=86400";

/// Every other error: a `404` turns into a link the moment someone creates
/// the code, and a `429` or `503` describes a moment. No cache keeps them.
pub const ERROR_CACHE_CONTROL: &str = "no-store";
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

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        Self::Link(e)
    }
}

// ANCHOR: problem
/// The `application/problem+json` body.
#[derive(serde::Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    /// Extension member: the machine-readable rule a 422 broke.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}
// ANCHOR_END: problem

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

// ANCHOR: status_mapping
impl ApiError {
    /// Status, problem type and title: the only place errors meet status codes.
    pub fn classify(&self) -> (StatusCode, &'static str, &'static str) {
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
                L::Codegen(CodegenError::AllocatorUnavailable(_))
                | L::Store(StoreError::Unavailable(_)) => (
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
}
// ANCHOR_END: status_mapping

// ANCHOR: into_response
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.classify();
        let detail = match &self {
            Self::BadRequest(why) => why.clone(),
            Self::BodyTooLarge => "a create request is at most a few kilobytes".to_string(),
            Self::RateLimited(wait) | Self::Link(LinkError::TooManyMisses(wait)) => {
                format!("retry in {} s", retry_after_secs(*wait))
            }
            Self::Link(e) if status.is_server_error() => {
                // The cause can name hosts and queries: log it, do not send it.
                tracing::error!(error = %e, status = status.as_u16(), "request failed");
                match status {
                    StatusCode::SERVICE_UNAVAILABLE => {
                        "a dependency is unavailable; retry shortly".to_string()
                    }
                    _ => "internal error".to_string(),
                }
            }
            Self::Link(e) => e.to_string(),
        };
        let reason = match &self {
            Self::Link(LinkError::Invalid(i)) => Some(i.reason()),
            _ => None,
        };
        let problem = Problem {
            kind: format!("{PROBLEM_TYPE_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail,
            reason,
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let cache_control = if status == StatusCode::GONE {
            GONE_CACHE_CONTROL
        } else {
            ERROR_CACHE_CONTROL
        };
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
        let retry_after = match &self {
            Self::RateLimited(wait) | Self::Link(LinkError::TooManyMisses(wait)) => {
                Some(retry_after_secs(*wait))
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_AFTER_UNAVAILABLE),
            _ => None,
        };
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}
// ANCHOR_END: into_response

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
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
            LinkError::Codegen(CodegenError::AllocatorUnavailable(String::new())).into(),
            LinkError::Store(StoreError::Unavailable(String::new())).into(),
            LinkError::Store(StoreError::Timeout(Duration::from_secs(1))).into(),
            LinkError::Store(StoreError::CodeTaken).into(),
            LinkError::Store(StoreError::Backend(String::new())).into(),
        ];
        let returned: BTreeSet<(&str, u16)> = every_error
            .iter()
            .map(|e| {
                let (status, slug, _) = e.classify();
                (slug, status.as_u16())
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
