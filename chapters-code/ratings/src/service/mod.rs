//! The axum routes: submit, edit, delete and appeal a review, vote, moderate,
//! and read the aggregate and the reviews. Errors are problem+json.

pub mod error;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use block_rate_limiter::MonotonicClock;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

pub use error::{ApiError, PROBLEM_TYPE_BASE};

use crate::domain::votes::VOTE_BURST;
use crate::domain::{Aggregate, Body, ModEvent, ProductId, Rating, Review, ReviewId, UserId};
use crate::spam::rules::{Flag, Rules, Submission};
use crate::store::{AuditEntry, MAX_PAGE, NewReview, ReviewStore, Verdict};

/// Largest request body read, in bytes: a 5,000-character review in any script fits.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A request that takes longer gets the errors block's 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Reviews per page when the client does not say.
pub const DEFAULT_PAGE: i64 = 20;

/// What the handlers share.
pub struct AppState<S> {
    /// The store.
    pub store: Arc<S>,
    /// The synchronous spam tier's state (one per process).
    pub rules: Arc<Mutex<Rules<MonotonicClock>>>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            rules: self.rules.clone(),
        }
    }
}

impl<S: ReviewStore> AppState<S> {
    /// State over `store`, with fresh rules.
    pub fn new(store: S) -> Self {
        Self {
            store: Arc::new(store),
            rules: Arc::new(Mutex::new(Rules::new(MonotonicClock::new()))),
        }
    }
}

fn malformed_json(e: JsonRejection) -> ApiError {
    ApiError::Malformed(e.body_text())
}

fn malformed_path(e: PathRejection) -> ApiError {
    ApiError::Malformed(e.body_text())
}

/// A new review as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// The author (authenticated by the gateway in front; see the API page).
    pub user_id: i64,
    /// 1 to 5.
    pub rating: i64,
    /// The text.
    pub body: String,
}

/// An edit as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    /// 1 to 5.
    pub rating: i64,
    /// The text.
    pub body: String,
}

/// A vote as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    /// Who found the review helpful.
    pub voter_id: i64,
}

/// A moderation decision as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModerateBody {
    /// approve, not_recommend or remove.
    pub event: ModEvent,
    /// Who decides: 1 to 64 characters.
    pub actor: String,
    /// Why: 1 to 500 characters.
    pub reason: String,
}

/// An appeal as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppealBody {
    /// Why: 1 to 500 characters.
    pub reason: String,
}

/// The product's rating as returned.
#[derive(Debug, Serialize, Deserialize)]
pub struct RatingBody {
    /// Published reviews.
    pub count: i64,
    /// Reviews per star, one star first.
    pub stars: [i64; 5],
    /// The mean, absent with no reviews.
    pub mean: Option<f64>,
    /// The ranking score (Wilson lower bound of 4 and 5 stars).
    pub score: f64,
}

/// A page of reviews.
#[derive(Debug, Serialize)]
pub struct PageBody {
    /// Newest first.
    pub reviews: Vec<Review>,
    /// Pass as `before` for the next page; absent on the last.
    pub next: Option<i64>,
}

/// The answer to a vote.
#[derive(Debug, Serialize, Deserialize)]
pub struct VoteAnswer {
    /// The review's helpful votes now.
    pub helpful: i64,
    /// True when the votes contain a burst from new accounts.
    pub suspicious: bool,
}

/// The query of a page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Only reviews with ids below this.
    pub before: Option<i64>,
    /// At most this many (1 to 100).
    pub limit: Option<i64>,
}

fn text_field(name: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    let n = v.chars().count();
    if n == 0 || n > max || v.chars().any(char::is_control) {
        return Err(ApiError::Moderation(format!(
            "{name} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(v.to_owned())
}

fn seconds(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

// ANCHOR: submit
async fn submit<S: ReviewStore>(
    State(st): State<AppState<S>>,
    product: Result<Path<i64>, PathRejection>,
    body: Result<Json<SubmitBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Review>), ApiError> {
    let Path(product) = product.map_err(malformed_path)?;
    let Json(b) = body.map_err(malformed_json)?;
    // Parse everything before anything is counted or stored.
    let new = NewReview {
        user: UserId(b.user_id),
        product: ProductId(product),
        rating: Rating::new(b.rating)?,
        body: Body::parse(&b.body)?,
    };
    let now = Utc::now();
    let since = st.store.user_since(new.user).await?;
    let last_day = st
        .store
        .reviews_by_since(new.user, now - TimeDelta::days(1))
        .await?;
    let text = new.body.as_str().to_owned();
    let s = Submission {
        user: new.user.0,
        product: new.product.0,
        account_age: seconds(now) - seconds(since),
        reviews_last_day: last_day + 1,
        at: seconds(now),
        text: &text,
    };
    let judged = st.rules.lock().unwrap_or_else(|p| p.into_inner()).judge(&s);
    let verdict = match judged {
        Ok(()) => Verdict::approve("passed the synchronous rules"),
        Err(Flag::RateLimited) => {
            return Err(ApiError::TooManyReviews(
                crate::spam::rules::PER_ACCOUNT_PERIOD,
            ));
        }
        // Held, not refused: the author is told nothing a spammer could tune against.
        Err(flag) => Verdict::hold(flag.reason()),
    };
    let review = st.store.submit(new, verdict, now).await?;
    st.rules
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remember(&s);
    Ok((StatusCode::CREATED, Json(review)))
}
// ANCHOR_END: submit

async fn edit<S: ReviewStore>(
    State(st): State<AppState<S>>,
    path: Result<Path<(i64, i64)>, PathRejection>,
    body: Result<Json<EditBody>, JsonRejection>,
) -> Result<Json<Review>, ApiError> {
    let Path((product, user)) = path.map_err(malformed_path)?;
    let Json(b) = body.map_err(malformed_json)?;
    let rating = Rating::new(b.rating)?;
    let text = Body::parse(&b.body)?;
    let r = st
        .store
        .edit(UserId(user), ProductId(product), rating, text, Utc::now())
        .await?;
    Ok(Json(r))
}

async fn delete<S: ReviewStore>(
    State(st): State<AppState<S>>,
    path: Result<Path<(i64, i64)>, PathRejection>,
) -> Result<Json<Review>, ApiError> {
    let Path((product, user)) = path.map_err(malformed_path)?;
    let r = st.store.review_of(UserId(user), ProductId(product)).await?;
    let r = st
        .store
        .moderate(
            r.id,
            ModEvent::Delete,
            "author",
            "deleted by the author",
            Utc::now(),
        )
        .await?;
    Ok(Json(r))
}

async fn appeal<S: ReviewStore>(
    State(st): State<AppState<S>>,
    path: Result<Path<(i64, i64)>, PathRejection>,
    body: Result<Json<AppealBody>, JsonRejection>,
) -> Result<Json<Review>, ApiError> {
    let Path((product, user)) = path.map_err(malformed_path)?;
    let Json(b) = body.map_err(malformed_json)?;
    let reason = text_field("reason", &b.reason, 500)?;
    let r = st.store.review_of(UserId(user), ProductId(product)).await?;
    let r = st
        .store
        .moderate(r.id, ModEvent::Appeal, "author", &reason, Utc::now())
        .await?;
    Ok(Json(r))
}

async fn moderate<S: ReviewStore>(
    State(st): State<AppState<S>>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<ModerateBody>, JsonRejection>,
) -> Result<Json<Review>, ApiError> {
    let Path(id) = id.map_err(malformed_path)?;
    let Json(b) = body.map_err(malformed_json)?;
    if b.event.is_authors() {
        return Err(ApiError::Moderation(format!(
            "{} is the author's, on the review's own route",
            b.event
        )));
    }
    let actor = text_field("actor", &b.actor, 64)?;
    let reason = text_field("reason", &b.reason, 500)?;
    let r = st
        .store
        .moderate(ReviewId(id), b.event, &actor, &reason, Utc::now())
        .await?;
    Ok(Json(r))
}

async fn audit<S: ReviewStore>(
    State(st): State<AppState<S>>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let Path(id) = id.map_err(malformed_path)?;
    // 404 for an unknown review, not an empty list.
    st.store.review(ReviewId(id)).await?;
    Ok(Json(st.store.audit(ReviewId(id)).await?))
}

// ANCHOR: vote
async fn vote<S: ReviewStore>(
    State(st): State<AppState<S>>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<VoteBody>, JsonRejection>,
) -> Result<Json<VoteAnswer>, ApiError> {
    let Path(id) = id.map_err(malformed_path)?;
    let Json(b) = body.map_err(malformed_json)?;
    let helpful = st
        .store
        .vote(UserId(b.voter_id), ReviewId(id), Utc::now())
        .await?;
    let votes = st.store.votes(ReviewId(id)).await?;
    let suspicious = VOTE_BURST.first_burst(&votes).is_some();
    if suspicious {
        tracing::warn!(
            review = id,
            "helpful votes contain a burst from new accounts"
        );
    }
    Ok(Json(VoteAnswer {
        helpful,
        suspicious,
    }))
}
// ANCHOR_END: vote

async fn rating<S: ReviewStore>(
    State(st): State<AppState<S>>,
    product: Result<Path<i64>, PathRejection>,
) -> Result<Json<RatingBody>, ApiError> {
    let Path(product) = product.map_err(malformed_path)?;
    let a: Aggregate = st.store.aggregate(ProductId(product)).await?;
    Ok(Json(RatingBody {
        count: a.count,
        stars: a.stars,
        mean: a.mean(),
        score: a.score(),
    }))
}

async fn page<S: ReviewStore>(
    State(st): State<AppState<S>>,
    product: Result<Path<i64>, PathRejection>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<PageBody>, ApiError> {
    let Path(product) = product.map_err(malformed_path)?;
    let Query(q) = q.map_err(|e| ApiError::Malformed(e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Malformed(format!(
            "limit must be 1 to {MAX_PAGE}, got {limit}"
        )));
    }
    // An unknown product is a 404, not an empty page.
    st.store.aggregate(ProductId(product)).await?;
    let reviews = st
        .store
        .page(ProductId(product), q.before.map(ReviewId), limit)
        .await?;
    let full = i64::try_from(reviews.len()).is_ok_and(|n| n == limit);
    let next = if full {
        reviews.last().map(|r| r.id.0)
    } else {
        None
    };
    Ok(Json(PageBody { reviews, next }))
}

async fn not_found() -> ApiError {
    ApiError::NoRoute
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

// ANCHOR: router
/// The routes over `state`.
pub fn router<S: ReviewStore>(state: AppState<S>) -> Router {
    Router::new()
        .route("/products/{product}/rating", get(rating::<S>))
        .route(
            "/products/{product}/reviews",
            post(submit::<S>).get(page::<S>),
        )
        .route(
            "/products/{product}/reviews/{user}",
            put(edit::<S>).delete(delete::<S>),
        )
        .route(
            "/products/{product}/reviews/{user}/appeal",
            post(appeal::<S>),
        )
        .route("/reviews/{id}/votes", post(vote::<S>))
        .route("/reviews/{id}/moderation", post(moderate::<S>))
        .route("/reviews/{id}/audit", get(audit::<S>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(block_errors::timeout(
            PROBLEM_TYPE_BASE,
            REQUEST_TIMEOUT,
        )))
        .with_state(state)
}
// ANCHOR_END: router
