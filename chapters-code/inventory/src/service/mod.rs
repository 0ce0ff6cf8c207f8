//! The HTTP API (axum): parse, call the store, map errors in one place.
//!
//! | route | does |
//! |---|---|
//! | `PUT /skus/{sku}`, `PUT /warehouses/{code}` | add to the catalog (idempotent) |
//! | `POST /stock/{sku}/{warehouse}/receive` | goods arrived: `{"id": receipt, "qty": n}` |
//! | `POST /stock/{sku}/{warehouse}/reservations` | hold units: `{"id": uuid, "qty": n, "ttl_seconds": s}` (idempotent by id) |
//! | `POST /reservations/{id}/commit` | payment succeeded (idempotent) |
//! | `POST /reservations/{id}/release` | checkout abandoned (idempotent) |
//! | `POST /reservations/{id}/ship` | the sold units left the building (idempotent) |
//! | `POST /stock/{sku}/{warehouse}/adjust` | a stock count: `{"counted": n, "seen_on_hand": m}` |
//! | `GET /stock/{sku}/{warehouse}` | availability, read from the ledger |
//! | `GET /reservations/{id}` | one reservation |
//!
//! Handlers parse everything into domain types before touching the store,
//! so a bad input is refused with a named error and changes nothing.

mod error;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use error::{ApiError, PROBLEM_TYPE_BASE, Problem};

use crate::domain::{
    Count, DEFAULT_TTL, MAX_TTL_SECS, MIN_TTL_SECS, Qty, Reservation, Sku, StockKey, Warehouse,
};
use crate::store::{InventoryStore, Outcome, Stock};

/// Where "now" comes from (tests move it).
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The largest request body read: every body is a few small fields, so
/// anything longer is refused (`malformed-request`) before it is parsed.
pub const MAX_BODY_BYTES: usize = 1024;

/// A request taking longer than this is answered 503 with `Retry-After`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler shares.
pub struct AppState<S> {
    /// Where stock lives.
    pub store: Arc<S>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
        }
    }
}

impl<S> AppState<S> {
    /// State over `store` and `clock`.
    pub fn new(store: S, clock: Arc<dyn Clock>) -> Self {
        Self {
            store: Arc::new(store),
            clock,
        }
    }
}

// ANCHOR: bodies
/// Body of `receive`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveBody {
    /// The receipt's id, chosen by the client (a delivery or ASN id as a
    /// UUID): a retry after a lost answer sends the same id and adds nothing.
    pub id: Uuid,
    /// Units that arrived (parsed as a raw number, then checked: 0 and negatives are named errors).
    pub qty: i64,
}

/// Body of `reserve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveBody {
    /// The reservation's id, chosen by the client (a UUID v4): a retry
    /// after a lost answer sends the same id and gets the same hold.
    pub id: Uuid,
    /// Units to hold.
    pub qty: i64,
    /// How long to hold them; ten minutes when absent.
    pub ttl_seconds: Option<i64>,
}

/// Body of `adjust`: a compare-and-set, like Shopify's `compareQuantity`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustBody {
    /// Units found by the count.
    pub counted: i64,
    /// `on_hand` as the counter read it before counting; the count is
    /// refused (`count-stale`) if it has changed since.
    pub seen_on_hand: i64,
}

/// What `GET /stock/...` returns.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Availability {
    /// SKU.
    pub sku: String,
    /// Warehouse.
    pub warehouse: String,
    /// Units in the building.
    pub on_hand: i64,
    /// Units in open holds.
    pub reserved: i64,
    /// Units sold and not yet shipped (still on hand).
    pub committed: i64,
    /// Units a reserve can get now (lapsed holds included: a reserve reclaims them).
    pub available: i64,
    /// Bumped by every movement.
    pub version: i64,
}

/// What the reservation routes return.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReservationBody {
    /// Its id.
    pub id: Uuid,
    /// SKU.
    pub sku: String,
    /// Warehouse.
    pub warehouse: String,
    /// Units.
    pub qty: i64,
    /// `held`, `committed`, `shipped`, `released` or `expired`.
    pub state: String,
    /// When a hold lapses.
    pub expires_at: DateTime<Utc>,
    /// True when the call repeated an earlier one and changed nothing.
    #[serde(default)]
    pub replayed: bool,
}
// ANCHOR_END: bodies

impl From<Stock> for Availability {
    fn from(s: Stock) -> Self {
        Availability {
            sku: s.key.sku.to_string(),
            warehouse: s.key.warehouse.to_string(),
            on_hand: s.balance.on_hand,
            reserved: s.balance.reserved,
            committed: s.balance.committed,
            available: s.available_now(),
            version: s.version,
        }
    }
}

fn reservation_body(r: Reservation, replayed: bool) -> ReservationBody {
    ReservationBody {
        id: r.id,
        sku: r.key.sku.to_string(),
        warehouse: r.key.warehouse.to_string(),
        qty: r.qty.get(),
        state: r.state.to_string(),
        expires_at: r.expires_at,
        replayed,
    }
}

fn malformed_json(e: JsonRejection) -> ApiError {
    ApiError::Malformed(e.body_text())
}

fn malformed_path(e: PathRejection) -> ApiError {
    ApiError::Malformed(e.body_text())
}

fn position(p: Result<Path<(String, String)>, PathRejection>) -> Result<StockKey, ApiError> {
    let Path((sku, warehouse)) = p.map_err(malformed_path)?;
    Ok(StockKey::new(
        Sku::parse(&sku)?,
        Warehouse::parse(&warehouse)?,
    ))
}

fn reservation_id(p: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(id) = p.map_err(malformed_path)?;
    Uuid::parse_str(&id).map_err(|_| ApiError::Malformed(format!("{id:?} is not a reservation id")))
}

// ANCHOR: parse_ttl
fn ttl(seconds: Option<i64>) -> Result<TimeDelta, ApiError> {
    match seconds {
        None => Ok(DEFAULT_TTL),
        Some(s) if (MIN_TTL_SECS..=MAX_TTL_SECS).contains(&s) => Ok(TimeDelta::seconds(s)),
        Some(got) => Err(ApiError::Ttl {
            got,
            min: MIN_TTL_SECS,
            max: MAX_TTL_SECS,
        }),
    }
}
// ANCHOR_END: parse_ttl

async fn add_sku<S: InventoryStore>(
    State(st): State<AppState<S>>,
    p: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(sku) = p.map_err(malformed_path)?;
    st.store.add_sku(&Sku::parse(&sku)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_warehouse<S: InventoryStore>(
    State(st): State<AppState<S>>,
    p: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(code) = p.map_err(malformed_path)?;
    st.store.add_warehouse(&Warehouse::parse(&code)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn receive<S: InventoryStore>(
    State(st): State<AppState<S>>,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<ReceiveBody>, JsonRejection>,
) -> Result<Json<Availability>, ApiError> {
    let key = position(p)?;
    let Json(body) = body.map_err(malformed_json)?;
    let qty = Qty::new(body.qty)?;
    Ok(Json(
        st.store
            .receive(body.id, &key, qty, st.clock.now())
            .await?
            .into(),
    ))
}

// ANCHOR: reserve_handler
async fn reserve<S: InventoryStore>(
    State(st): State<AppState<S>>,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<ReserveBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let key = position(p)?;
    let Json(body) = body.map_err(malformed_json)?;
    // The id is the only secret a hold has: refuse any that is not random
    // (nil, v1 time and MAC, v3/v5 from a name). Randomness itself cannot
    // be checked, only the version the client claims.
    if body.id.get_version() != Some(uuid::Version::Random) {
        return Err(ApiError::Malformed(
            "id: a random UUID (version 4) is required".into(),
        ));
    }
    let qty = Qty::new(body.qty)?;
    let ttl = ttl(body.ttl_seconds)?;
    let o = st
        .store
        .reserve_with_id(body.id, &key, qty, ttl, st.clock.now())
        .await?;
    // A retry that finds its hold answers 200 with `replayed`, not 201.
    let status = if o.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, outcome(o)).into_response())
}
// ANCHOR_END: reserve_handler

fn outcome(o: Outcome) -> Json<ReservationBody> {
    Json(reservation_body(o.reservation, o.replayed))
}

async fn commit<S: InventoryStore>(
    State(st): State<AppState<S>>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<ReservationBody>, ApiError> {
    let id = reservation_id(p)?;
    Ok(outcome(st.store.commit(id, st.clock.now()).await?))
}

async fn release<S: InventoryStore>(
    State(st): State<AppState<S>>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<ReservationBody>, ApiError> {
    let id = reservation_id(p)?;
    Ok(outcome(st.store.release(id, st.clock.now()).await?))
}

async fn ship<S: InventoryStore>(
    State(st): State<AppState<S>>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<ReservationBody>, ApiError> {
    let id = reservation_id(p)?;
    Ok(outcome(st.store.ship(id, st.clock.now()).await?))
}

async fn adjust<S: InventoryStore>(
    State(st): State<AppState<S>>,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<AdjustBody>, JsonRejection>,
) -> Result<Json<Availability>, ApiError> {
    let key = position(p)?;
    let Json(body) = body.map_err(malformed_json)?;
    let counted = Count::new(body.counted)?;
    let seen = Count::new(body.seen_on_hand)?;
    Ok(Json(
        st.store
            .adjust(&key, counted, seen, st.clock.now())
            .await?
            .into(),
    ))
}

async fn availability<S: InventoryStore>(
    State(st): State<AppState<S>>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Availability>, ApiError> {
    let key = position(p)?;
    Ok(Json(st.store.stock(&key, st.clock.now()).await?.into()))
}

async fn get_reservation<S: InventoryStore>(
    State(st): State<AppState<S>>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<ReservationBody>, ApiError> {
    let id = reservation_id(p)?;
    Ok(Json(reservation_body(
        st.store.reservation(id).await?,
        false,
    )))
}

async fn not_found() -> ApiError {
    ApiError::NoRoute
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

// ANCHOR: router
/// The routes over `state`.
pub fn router<S: InventoryStore>(state: AppState<S>) -> Router {
    Router::new()
        .route("/skus/{sku}", put(add_sku::<S>))
        .route("/warehouses/{code}", put(add_warehouse::<S>))
        .route("/stock/{sku}/{warehouse}", get(availability::<S>))
        .route("/stock/{sku}/{warehouse}/receive", post(receive::<S>))
        .route("/stock/{sku}/{warehouse}/reservations", post(reserve::<S>))
        .route("/stock/{sku}/{warehouse}/adjust", post(adjust::<S>))
        .route("/reservations/{id}", get(get_reservation::<S>))
        .route("/reservations/{id}/commit", post(commit::<S>))
        .route("/reservations/{id}/release", post(release::<S>))
        .route("/reservations/{id}/ship", post(ship::<S>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        // The errors block's answer: a 503 problem document with Retry-After.
        .layer(axum::middleware::from_fn(block_errors::timeout(
            PROBLEM_TYPE_BASE,
            REQUEST_TIMEOUT,
        )))
        .with_state(state)
}
// ANCHOR_END: router
