//! The HTTP API: push a batch of records, query by time range, labels and
//! text, read the counters. Errors are problem+json through the errors block.

pub mod error;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query as QueryParams, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub use error::{ApiError, PROBLEM_TYPE_BASE};

use crate::domain::{Query, Record, TimeRange};
use crate::store::{LogStore, StoreStats};

// ANCHOR: limits
/// The most records one push may carry.
pub const MAX_PUSH_RECORDS: usize = 5_000;
/// The most lines one query returns.
pub const MAX_LIMIT: usize = 5_000;
/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// How long a request may take before the errors block answers 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
// ANCHOR_END: limits

/// The clock the service stamps "now" with (a test sets its own).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock, in milliseconds since the epoch.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store; its calls are blocking file I/O, run off the async threads.
    pub store: Arc<Mutex<LogStore>>,
    /// "Now", for the accepted window.
    pub clock: Clock,
}

impl AppState {
    /// State over an open store.
    pub fn new(store: LogStore, clock: Clock) -> Self {
        Self {
            store: Arc::new(Mutex::new(store)),
            clock,
        }
    }

    /// Runs `f` on the store on a blocking thread. A panic while the lock
    /// was held poisons it; the store's state is still the files', so the
    /// lock is taken over rather than failing every later request.
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut LogStore) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| ApiError::Task(e.to_string()))?
    }
}

// ANCHOR: bodies
/// `POST /push`: a batch of records.
#[derive(Debug, Serialize, Deserialize)]
pub struct PushBody {
    /// The records; all stored, or none.
    pub records: Vec<Record>,
}

/// What `POST /push` returns.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushReply {
    /// Records stored (durably: after fsync).
    pub stored: usize,
}

/// `GET /query` parameters.
#[derive(Debug, Deserialize)]
pub struct QueryArgs {
    /// The query text, e.g. `{service="api"} |= "timeout"`.
    pub query: String,
    /// Start of the range, ms since the epoch (included).
    pub start: i64,
    /// End of the range, ms since the epoch (excluded).
    pub end: i64,
    /// The most lines returned; default 100.
    pub limit: Option<usize>,
}

/// What `GET /query` returns.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueryReply {
    /// Matching lines, oldest first.
    pub lines: Vec<Record>,
    /// Partitions in the store.
    pub partitions_total: usize,
    /// Partitions the time range let the query open.
    pub partitions_scanned: usize,
    /// Chunks decompressed.
    pub chunks_scanned: usize,
}
// ANCHOR_END: bodies

async fn push(
    State(st): State<AppState>,
    body: Result<Json<PushBody>, JsonRejection>,
) -> Result<Json<PushReply>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::Malformed(e.body_text()))?;
    if body.records.len() > MAX_PUSH_RECORDS {
        return Err(ApiError::BatchTooLarge {
            got: body.records.len(),
            max: MAX_PUSH_RECORDS,
        });
    }
    let now = (st.clock)();
    // The write runs on a blocking task the request cannot cancel: a client
    // that hangs up after sending still gets its batch stored whole or not.
    let stored = st
        .with_store(move |s| Ok(s.append(&body.records, now)?))
        .await?;
    Ok(Json(PushReply { stored }))
}

async fn query(
    State(st): State<AppState>,
    args: Result<QueryParams<QueryArgs>, QueryRejection>,
) -> Result<Json<QueryReply>, ApiError> {
    let QueryParams(args) = args.map_err(|e| ApiError::Malformed(e.body_text()))?;
    let q = Query::parse(&args.query)?;
    let range = TimeRange::new(args.start, args.end)?;
    let limit = args.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Limit {
            got: limit,
            max: MAX_LIMIT,
        });
    }
    let r = st
        .with_store(move |s| Ok(s.query(&q, range, limit)?))
        .await?;
    Ok(Json(QueryReply {
        lines: r.lines,
        partitions_total: r.partitions_total,
        partitions_scanned: r.partitions_scanned,
        chunks_scanned: r.chunks_scanned,
    }))
}

async fn stats(State(st): State<AppState>) -> Result<Json<StoreStats>, ApiError> {
    Ok(Json(st.with_store(|s| Ok(s.stats())).await?))
}

async fn not_found() -> ApiError {
    ApiError::NoRoute
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

// ANCHOR: router
/// The routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/push", post(push))
        .route("/query", get(query))
        .route("/stats", get(stats))
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
