//! The HTTP handlers: translate requests into use cases and results into responses.

use std::net::{IpAddr, SocketAddr};
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
use crate::domain::{Link, ManagementToken, TokenError};
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
    /// Sent once, with the 201: the bearer token that deletes the link and
    /// reads its statistics. Absent on a 200 for an existing link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management_token: Option<String>,
}
// ANCHOR_END: api_types

impl LinkView {
    fn new(link: &Link, token: Option<&ManagementToken>, base_url: &str) -> Self {
        Self {
            code: link.code.to_string(),
            short_url: format!("{base_url}/{}", link.code),
            target: link.target.to_string(),
            expires_at: link.expires_at,
            management_token: token.map(ToString::to_string),
        }
    }
}

// ANCHOR: create_link
/// `POST /api/links`: 201 with the new link and its management token (200
/// when an identical link was already there). The create limit ran before
/// this handler (the block's layer, [`super::rate_limit::create_limit`]).
pub async fn create_link<S: LinkStore>(
    State(app): State<AppState<S>>,
    body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
) -> Result<Response, ApiError> {
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
    let view = LinkView::new(&created.link, created.token.as_ref(), &app.base_url);
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
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    code: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(code)) = code else {
        return Err(LinkError::NotFound.into());
    };
    let client = app.client(&headers, peer);
    let target = app
        .shortener
        .resolve_for(Some(client), &code, Utc::now())
        .await?;
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

// ANCHOR: manage
/// `DELETE /api/links/{code}`: 204; 403 without the link's token, and for
/// an unknown code (the same answer); 410 already deleted; 429 when the
/// client's miss budget is spent.
pub async fn delete_link<S: LinkStore>(
    State(app): State<AppState<S>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    let token = bearer_token(&headers).map_err(LinkError::from)?;
    let client = app.client(&headers, peer);
    app.shortener
        .delete(Some(client), &code, &token, Utc::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/links/{code}/stats`: total and per-day clicks, for the
/// token's holder; refused like a delete.
pub async fn stats<S: LinkStore>(
    State(app): State<AppState<S>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Json<Stats>, ApiError> {
    let token = bearer_token(&headers).map_err(LinkError::from)?;
    let client = app.client(&headers, peer);
    let stats = app
        .shortener
        .stats(Some(client), &code, &token, Utc::now())
        .await?;
    Ok(Json(stats))
}

/// The token of `Authorization: Bearer <token>`.
fn bearer_token(headers: &HeaderMap) -> Result<ManagementToken, TokenError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(TokenError::Missing)?;
    let value = value.to_str().map_err(|_| TokenError::Malformed)?;
    match value.split_once(' ') {
        // The scheme name is case-insensitive (RFC 9110, section 11.1).
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            ManagementToken::parse(token.trim())
        }
        _ => Err(TokenError::Malformed),
    }
}
// ANCHOR_END: manage

/// `GET /health`: the process is up (it does not probe dependencies, so a
/// database outage does not take every node out of the load balancer).
pub async fn health() -> &'static str {
    "ok"
}

impl<S> AppState<S> {
    /// The client the request is counted against (see `crate::proxy`).
    fn client(
        &self,
        headers: &HeaderMap,
        peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ) -> IpAddr {
        let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
        self.proxies.client(headers, peer)
    }
}

/// Shared by the handlers: the base URL without a trailing slash.
pub(super) fn base_url_string(base: &url::Url) -> Arc<str> {
    Arc::from(base.as_str().trim_end_matches('/'))
}
