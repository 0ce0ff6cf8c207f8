//! Every error the API returns, as RFC 9457 problem details, mapped in one place.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::codegen::CodegenError;
use crate::shortener::{Gone, LinkError};
use crate::store::StoreError;

/// Where the documentation of each problem type lives (the `type` member).
pub const PROBLEM_TYPE_BASE: &str = "https://docs.url-shortener.example/problems/";

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_UNAVAILABLE: u64 = 1;

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
            Self::RateLimited(wait) => format!("retry in {} s", retry_after_secs(*wait)),
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
        let retry_after = match &self {
            Self::RateLimited(wait) => Some(retry_after_secs(*wait)),
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
