//! The HTTP service (axum).
//!
//! | route | success | errors |
//! |---|---|---|
//! | `POST /api/users` | 201 | 400, 409, 422 |
//! | `POST /api/posts` | 201 | 400, 401, 404, 422, 503 |
//! | `DELETE /api/posts/{id}` | 204 | 400, 401, 403, 404 |
//! | `PUT /api/follows/{user}` | 204 | 400, 401, 403, 404, 422 |
//! | `DELETE /api/follows/{user}` | 204 | 400, 401, 404 |
//! | `PUT /api/blocks/{user}` | 204 | 400, 401, 404, 422 |
//! | `GET /api/timeline?cursor=&limit=` | 200 | 400, 401, 404, 503 |
//! | `GET /health` | 200 | |
//!
//! The acting user comes from `X-User-Id`, standing in for the
//! authentication gateway in front of the service (out of scope here). The
//! gateway must remove a copy sent by the client; a deployment without one
//! sets `TRUST_USER_HEADER=false` ([`router_with`]) and the header is refused.

pub mod error;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::app::{Page, Timelines};
use crate::domain::{Post, PostId, UserId};
use crate::timeline::HomeTimeline;
pub use error::ApiError;

/// The header naming the acting user.
pub const USER_HEADER: &str = "x-user-id";

/// A request body is a post of at most 280 characters plus JSON.
const MAX_BODY_BYTES: usize = 4 * 1024;

// ANCHOR: api_types
/// `POST /api/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1 to 15 characters of `a-z`, `0-9`, `_`.
    pub handle: String,
}

/// `POST /api/posts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPost {
    /// 1 to 280 characters.
    pub body: String,
}

/// The query of `GET /api/timeline`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 100; 20 when absent.
    pub limit: Option<usize>,
}

/// The reply of `POST /api/users`.
#[derive(Debug, serde::Serialize)]
pub struct UserCreated {
    /// The new user's id.
    pub id: UserId,
}
// ANCHOR_END: api_types

fn acting_user(headers: &HeaderMap) -> Result<UserId, ApiError> {
    headers
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .map(UserId)
        .ok_or(ApiError::Unauthenticated)
}

fn post_id(raw: &str) -> Result<PostId, ApiError> {
    raw.parse::<u64>()
        .ok()
        .and_then(PostId::from_raw)
        .ok_or_else(|| ApiError::BadRequest(format!("{raw:?} is not a post id")))
}

fn user_id(raw: i64) -> Result<UserId, ApiError> {
    if raw > 0 {
        Ok(UserId(raw))
    } else {
        Err(ApiError::BadRequest(format!("{raw} is not a user id")))
    }
}

// ANCHOR: router
/// The routes over one strategy's use cases.
pub fn router<T: HomeTimeline>(app: Timelines<T>) -> Router {
    Router::new()
        .route("/api/users", post(create_user::<T>))
        .route("/api/posts", post(create_post::<T>))
        .route("/api/posts/{id}", axum::routing::delete(delete_post::<T>))
        .route(
            "/api/follows/{user}",
            put(follow::<T>).delete(unfollow::<T>),
        )
        .route("/api/blocks/{user}", put(block::<T>))
        .route("/api/timeline", get(timeline::<T>))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}
// ANCHOR_END: router

// ANCHOR: trust
/// [`router`], taking `X-User-Id` as the acting user only if
/// `trust_user_header`. Trusted, the header must come from a gateway that
/// authenticates the caller and removes any copy the client sent: passed
/// through as the client wrote it, it lets anyone act as anyone. Not
/// trusted (`TRUST_USER_HEADER=false`), every request that carries it is
/// refused with a 401 before any handler runs.
pub fn router_with<T: HomeTimeline>(app: Timelines<T>, trust_user_header: bool) -> Router {
    let routes = router(app);
    if trust_user_header {
        routes
    } else {
        routes.layer(axum::middleware::from_fn(refuse_user_header))
    }
}

async fn refuse_user_header(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.headers().contains_key(USER_HEADER) {
        return ApiError::UntrustedHeader.into_response();
    }
    next.run(req).await
}
// ANCHOR_END: trust

async fn create_user<T: HomeTimeline>(
    State(app): State<Timelines<T>>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body?;
    let id = app.create_user(&body.handle).await?;
    Ok((StatusCode::CREATED, Json(UserCreated { id })))
}

async fn create_post<T: HomeTimeline>(
    State(app): State<Timelines<T>>,
    headers: HeaderMap,
    body: Result<Json<NewPost>, JsonRejection>,
) -> Result<(StatusCode, Json<Post>), ApiError> {
    let author = acting_user(&headers)?;
    let Json(body) = body?;
    let post = app.post(author, &body.body).await?;
    Ok((StatusCode::CREATED, Json(post)))
}

async fn delete_post<T: HomeTimeline>(
    State(app): State<Timelines<T>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let by = acting_user(&headers)?;
    let Path(id) = id?;
    app.delete(by, post_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn follow<T: HomeTimeline>(
    State(app): State<Timelines<T>>,
    headers: HeaderMap,
    other: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let me = acting_user(&headers)?;
    let Path(other) = other?;
    app.follow(me, user_id(other)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unfollow<T: HomeTimeline>(
    State(app): State<Timelines<T>>,
    headers: HeaderMap,
    other: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let me = acting_user(&headers)?;
    let Path(other) = other?;
    app.unfollow(me, user_id(other)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn block<T: HomeTimeline>(
    State(app): State<Timelines<T>>,
    headers: HeaderMap,
    other: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let me = acting_user(&headers)?;
    let Path(other) = other?;
    app.block(me, user_id(other)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn timeline<T: HomeTimeline>(
    State(app): State<Timelines<T>>,
    headers: HeaderMap,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let reader = acting_user(&headers)?;
    let Query(q) = query?;
    Ok(Json(app.home(reader, q.cursor.as_deref(), q.limit).await?))
}
