//! The HTTP handlers: translate requests into use cases and results into responses.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::AppState;
use super::error::ApiError;
use super::rate_limit::client_ip;
use crate::domain::Link;
use crate::shortener::{LinkError, Stats};
use crate::store::{LinkStore, StoreError};

// ANCHOR: api_types
/// `POST /api/links` body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// The URL to shorten.
    pub url: String,
    /// A custom code instead of a generated one.
    #[serde(default)]
    pub alias: Option<String>,
    /// When the link stops redirecting (RFC 3339)...
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// ...or how many seconds from now; not both.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
}

/// A link as the API returns it.
#[derive(Debug, serde::Serialize)]
pub struct LinkView {
    /// The code.
    pub code: String,
    /// The full short URL to hand out.
    pub short_url: String,
    /// The normalised target.
    pub target: String,
    /// When it stops redirecting, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}
// ANCHOR_END: api_types

impl LinkView {
    fn new(link: &Link, base_url: &str) -> Self {
        Self {
            code: link.code.to_string(),
            short_url: format!("{base_url}/{}", link.code),
            target: link.target.to_string(),
            expires_at: link.expires_at,
        }
    }
}

// ANCHOR: create_link
/// `POST /api/links`: 201 with the new link (200 when the hash strategy
/// found the same link already there).
pub async fn create_link<S: LinkStore>(
    State(app): State<AppState<S>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
) -> Result<Response, ApiError> {
    // Limit first: a flood of malformed requests is still a flood.
    if let Some(limiter) = &app.limiter {
        let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
        limiter
            .check(client_ip(&headers, peer, app.trust_forwarded_for))
            .map_err(ApiError::RateLimited)?;
    }
    // Read as a JSON object first: serde would also accept the fields as a
    // positional array (`["https://..."]`), which no client should rely on.
    let Json(object) = body?;
    let body: CreateBody = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ApiError::BadRequest(format!("Failed to deserialize the JSON body: {e}")))?;
    let now = Utc::now();
    let request = app
        .shortener
        .validate(
            &body.url,
            body.alias.as_deref(),
            body.expires_at,
            body.ttl_seconds,
            now,
        )
        .map_err(LinkError::from)?;
    let created = app.shortener.create(request, now).await?;
    let view = LinkView::new(&created.link, &app.base_url);
    let status = if created.is_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = HeaderValue::from_str(&view.short_url).ok();
    let mut response = (status, Json(view)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
// ANCHOR_END: create_link

// ANCHOR: redirect
/// `GET /{code}`: 302 to the target.
///
/// 302, not 301: browsers cache a 301 for ever, so the second visit would
/// skip us, and we would lose the click, and the power to expire, delete or
/// fix the link. `Cache-Control: private, max-age=0` says the same to any
/// cache on the way: shared caches must not store it, browsers must ask again.
pub async fn redirect<S: LinkStore>(
    State(app): State<AppState<S>>,
    code: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(code)) = code else {
        return Err(LinkError::NotFound.into());
    };
    let target = app.shortener.resolve(&code, Utc::now()).await?;
    let location = HeaderValue::from_str(&target).map_err(|_| {
        LinkError::Store(StoreError::Backend(format!(
            "target of {code} is not a header value"
        )))
    })?;
    let headers = [
        (header::LOCATION, location),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=0"),
        ),
    ];
    Ok((StatusCode::FOUND, headers).into_response())
}
// ANCHOR_END: redirect

/// `DELETE /api/links/{code}`: 204; 404 unknown; 410 already deleted.
pub async fn delete_link<S: LinkStore>(
    State(app): State<AppState<S>>,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.shortener.delete(&code, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/links/{code}/stats`: total and per-day clicks.
pub async fn stats<S: LinkStore>(
    State(app): State<AppState<S>>,
    Path(code): Path<String>,
) -> Result<Json<Stats>, ApiError> {
    Ok(Json(app.shortener.stats(&code).await?))
}

/// `GET /health`: the process is up (it does not probe dependencies, so a
/// database outage does not take every node out of the load balancer).
pub async fn health() -> &'static str {
    "ok"
}

/// Shared by the handlers: the base URL without a trailing slash.
pub(super) fn base_url_string(base: &url::Url) -> Arc<str> {
    Arc::from(base.as_str().trim_end_matches('/'))
}
