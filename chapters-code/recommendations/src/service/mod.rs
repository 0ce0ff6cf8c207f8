//! The HTTP service: `GET /users/{id}/recommendations?k=`.
//!
//! A request takes one version of the model for its whole life (see
//! [`crate::ann::versioned`]), reads the user's history, runs the funnel
//! (retrieve, rank within a deadline, filter, diversify) and answers with
//! the stage that produced each item.

pub mod error;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use tokio::sync::Semaphore;

pub use error::ApiError;

use crate::ann::versioned::Versioned;
use crate::candidates::Scored;
use crate::data::{ItemIx, Kind};
use crate::model::{self, ItemId, MMR_LAMBDA, Model, Stage};
use crate::rank::{self, Features, Rank};
use crate::store::{Interactions, UserId};
use crate::vector::dot;

// ANCHOR: limits
/// Largest `k` served: a bound on the work one request can ask for.
pub const MAX_K: usize = 50;
/// `k` when the request does not say.
pub const DEFAULT_K: usize = 10;
/// How long ranking may take before the answer falls back to the retrieval order.
pub const RANK_DEADLINE: Duration = Duration::from_millis(30);
/// Rankings in flight at once; beyond it a request skips ranking. A ranking
/// that misses its deadline keeps running on its blocking thread (it cannot
/// be cancelled), so this bounds the threads a slow ranker can hold.
pub const RANK_SLOTS: usize = 32;
// ANCHOR_END: limits

/// What every handler shares.
pub struct AppState<S> {
    /// The model, swapped whole by the offline job.
    pub model: Arc<Versioned<Model>>,
    /// Interactions.
    pub store: Arc<S>,
    /// A ranker that replaces the loaded model's own (tests slow it down);
    /// `None` in production, so each request ranks with its version's weights.
    pub ranker: Option<Arc<dyn Rank>>,
    /// See [`RANK_DEADLINE`].
    pub rank_deadline: Duration,
    /// See [`RANK_SLOTS`].
    pub rank_slots: Arc<Semaphore>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            model: self.model.clone(),
            store: self.store.clone(),
            ranker: self.ranker.clone(),
            rank_deadline: self.rank_deadline,
            rank_slots: self.rank_slots.clone(),
        }
    }
}

impl<S: Interactions + 'static> AppState<S> {
    /// State that ranks with each model version's own ranker.
    pub fn new(model: Arc<Versioned<Model>>, store: Arc<S>) -> Self {
        Self {
            model,
            store,
            ranker: None,
            rank_deadline: RANK_DEADLINE,
            rank_slots: Arc::new(Semaphore::new(RANK_SLOTS)),
        }
    }

    /// Ranks with `ranker` instead of the model's own (for tests).
    pub fn with_ranker(mut self, ranker: Arc<dyn Rank>) -> Self {
        self.ranker = Some(ranker);
        self
    }
}

// ANCHOR: response
/// One recommended item.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Item {
    /// The item's public id.
    pub item: ItemId,
    /// The score it was ordered by.
    pub score: f32,
    /// The stage that produced it: `two-tower`, `item-item` or `popularity`.
    pub stage: String,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recommendations {
    /// The user asked about.
    pub user: UserId,
    /// The model version that produced every item.
    pub version: u64,
    /// `personal`, or `cold-start` for a user with no usable history.
    pub path: String,
    /// False when ranking missed its deadline and the retrieval order was kept.
    pub ranked: bool,
    /// Best first, at most k.
    pub items: Vec<Item>,
}
// ANCHOR_END: response

// ANCHOR: router
/// The routes.
pub fn router<S: Interactions + 'static>(state: AppState<S>) -> Router {
    Router::new()
        .route("/users/{id}/recommendations", get(recommend::<S>))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}
// ANCHOR_END: router

// ANCHOR: parse
/// Parses `k` from the raw query: absent is the default, anything else
/// must be a whole number in 1..=MAX_K.
pub fn parse_k(query: Option<&str>) -> Result<usize, ApiError> {
    let mut k = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "k" {
            k = Some(value);
        }
    }
    let Some(raw) = k else {
        return Ok(DEFAULT_K);
    };
    match raw.parse::<usize>() {
        Ok(k) if (1..=MAX_K).contains(&k) => Ok(k),
        _ => Err(ApiError::InvalidK {
            got: raw.chars().take(32).collect(),
            max: MAX_K,
        }),
    }
}

/// Parses a user id: a positive whole number.
pub fn parse_user(raw: &str) -> Result<UserId, ApiError> {
    match raw.parse::<UserId>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::InvalidUserId(raw.chars().take(32).collect())),
    }
}
// ANCHOR_END: parse

/// Retrieval for one request, under the catalog's read lock (no await inside).
struct Retrieved {
    user_vector: Vec<f32>,
    history: Vec<ItemIx>,
    bought: Vec<ItemIx>,
    candidates: Vec<(Scored, Stage)>,
    features: Vec<Features>,
}

fn retrieve_for(model: &Model, events: &[(ItemId, Kind)]) -> Retrieved {
    let catalog = model.catalog.read().unwrap_or_else(|e| e.into_inner());
    // Items the model does not know (added after it was built, or removed)
    // are left out of the user vector: a missing embedding is skipped.
    let known = |id: &ItemId| catalog.index_of(*id);
    let history: Vec<ItemIx> = events.iter().filter_map(|(id, _)| known(id)).collect();
    let bought = events
        .iter()
        .filter(|(_, kind)| *kind == Kind::Purchase)
        .filter_map(|(id, _)| known(id))
        .collect();
    let (user_vector, candidates) = model::retrieve(model, &catalog, &history);
    let scored: Vec<Scored> = candidates.iter().map(|c| c.0).collect();
    let features = model::features(model, &catalog, &history, &scored, &user_vector);
    Retrieved {
        user_vector,
        history,
        bought,
        candidates,
        features,
    }
}

// ANCHOR: rank_deadline
/// Ranks within the deadline; `None` means "keep the retrieval order"
/// (deadline missed, or every ranking slot busy).
async fn rank_within<S>(
    state: &AppState<S>,
    model: &Arc<Model>,
    features: Vec<Features>,
) -> Option<Vec<f32>> {
    let permit = state.rank_slots.clone().try_acquire_owned().ok()?;
    let ranker: Arc<dyn Rank> = match &state.ranker {
        Some(r) => r.clone(),
        None => model.clone(),
    };
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        ranker.scores(&features)
    });
    match tokio::time::timeout(state.rank_deadline, task).await {
        Ok(Ok(scores)) => Some(scores),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "ranker panicked; serving the retrieval order");
            None
        }
        Err(_) => {
            tracing::warn!("ranker missed its deadline; serving the retrieval order");
            None
        }
    }
}
// ANCHOR_END: rank_deadline

// ANCHOR: handler
async fn recommend<S: Interactions + 'static>(
    State(state): State<AppState<S>>,
    Path(raw_user): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Recommendations>, ApiError> {
    let user = parse_user(&raw_user)?;
    let k = parse_k(query.as_deref())?;
    let events = state.store.history(user).await?.unwrap_or_default();
    // One version of the model for the whole request.
    let model = state.model.load();
    let r = retrieve_for(&model, &events);
    let path = if r.user_vector.is_empty() {
        "cold-start"
    } else {
        "personal"
    };
    let scores = rank_within(&state, &model, r.features).await;
    let ranked = scores.is_some();
    let retrieval: Vec<Scored> = r.candidates.iter().map(|c| c.0).collect();
    let ordered = match &scores {
        Some(scores) => rank::order_by(&retrieval, scores),
        // The stages' scores are on different scales (a cosine, a sum of
        // co-occurrences), so the fallback keeps the list's order and
        // scores by position, from 1 down.
        None => {
            let n = retrieval.len().max(1) as f32;
            retrieval
                .iter()
                .enumerate()
                .map(|(pos, s)| Scored {
                    item: s.item,
                    score: 1.0 - pos as f32 / n,
                })
                .collect()
        }
    };
    let catalog = model.catalog.read().unwrap_or_else(|e| e.into_inner());
    let in_stock = |i: ItemIx| catalog.in_stock.get(i as usize).copied().unwrap_or(false);
    let mut exclude = r.bought;
    exclude.extend(&r.history);
    let allowed = rank::business_filter(ordered, in_stock, &exclude);
    let similarity = |a: ItemIx, b: ItemIx| {
        dot(
            catalog.index.vector(a as usize),
            catalog.index.vector(b as usize),
        )
    };
    let picked = rank::mmr(&allowed, k, MMR_LAMBDA, similarity);
    let stage_of = |i: ItemIx| {
        r.candidates
            .iter()
            .find(|c| c.0.item == i)
            .map_or(Stage::Popularity, |c| c.1)
    };
    let items = picked
        .iter()
        .map(|p| Item {
            item: catalog.ids[p.item as usize],
            score: p.score,
            stage: stage_name(stage_of(p.item)).to_string(),
        })
        .collect();
    Ok(Json(Recommendations {
        user,
        version: model.version,
        path: path.to_string(),
        ranked,
        items,
    }))
}
// ANCHOR_END: handler

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::TwoTower => "two-tower",
        Stage::ItemItem => "item-item",
        Stage::Popularity => "popularity",
    }
}
