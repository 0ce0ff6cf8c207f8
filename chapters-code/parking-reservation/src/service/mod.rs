//! The HTTP API (axum): parse, call the store, map errors in one place.
//!
//! | route | does |
//! |---|---|
//! | `GET /lots/{lot}/availability?start=&end=` | spots per kind, and how many are free for the range |
//! | `POST /lots/{lot}/reservations` | hold a spot of a kind for a range (optional `Idempotency-Key`) |
//! | `GET /reservations/{id}` | one reservation |
//! | `POST /reservations/{id}/confirm` | confirm a hold before it lapses |
//! | `POST /reservations/{id}/check-in` | arrive (from 15 minutes before the start) |
//! | `POST /reservations/{id}/check-out` | leave; the charge is computed and recorded |
//! | `POST /reservations/{id}/cancel` | cancel (fee per the policy) |
//! | `GET /reservations/{id}/history` | every transition, with its time and charge |
//! | `POST /lots/{lot}/walk-ins` | a driver at the gate: reserve, confirm and check in now |
//! | `GET /lots/near?latitude=&longitude=&radius_m=` | lots near a place, nearest first |
//!
//! Handlers parse everything into domain types before touching the store,
//! so a bad input is refused with a named error and changes nothing.

mod error;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use uuid::Uuid;

pub use error::{ApiError, PROBLEM_BASE, Problem};

use crate::assign::KindAvailability;
use crate::clock::Clock;
use crate::domain::{
    Event, Location, LocationError, LotId, NEAR_RADIUS_MAX_M, Plate, Reservation, ReserveRequest,
    SpotKind, TimeRange, Transition, check_bookable, floor_to_slot,
};
use crate::idempotency::IdempotencyKey;
use crate::store::{LotNear, ReservationStore};

// ANCHOR: headers
/// The header a client sets to make a reserve safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set to `true` on a response that replays an earlier request's result.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// A request taking longer than this is answered 503 and its transaction rolled back.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
// ANCHOR_END: headers

/// What every handler shares: the store and the clock.
pub struct AppState<S> {
    /// Where reservations live.
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

// ANCHOR: reserve_body
/// The body of `POST /lots/{lot}/reservations`; fields are parsed by the domain types.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReserveBody {
    /// `compact`, `regular`, `large`, `ev` or `accessible`.
    pub kind: String,
    /// RFC 3339, on a 15-minute boundary.
    pub start: String,
    /// RFC 3339, on a 15-minute boundary, after `start`.
    pub end: String,
    /// The car's licence plate.
    pub plate: String,
}

impl ReserveBody {
    /// The request, parsed; the first bad field is the error.
    pub fn parse(&self, lot_id: LotId) -> Result<ReserveRequest, ApiError> {
        Ok(ReserveRequest {
            lot_id,
            kind: self.kind.parse::<SpotKind>()?,
            range: TimeRange::parse(&self.start, &self.end)?,
            plate: Plate::parse(&self.plate)?,
        })
    }
}
// ANCHOR_END: reserve_body

// ANCHOR: availability_types
/// The query of `GET /lots/{lot}/availability`.
#[derive(Debug, Clone, Deserialize)]
pub struct AvailabilityQuery {
    /// RFC 3339, on a 15-minute boundary.
    pub start: String,
    /// RFC 3339, on a 15-minute boundary, after `start`.
    pub end: String,
}

/// The answer of `GET /lots/{lot}/availability`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// The lot.
    pub lot_id: LotId,
    /// The range asked about.
    #[serde(flatten)]
    pub range: TimeRange,
    /// Per kind the lot has: all spots, and those free for the whole range.
    pub kinds: Vec<KindAvailability>,
}
// ANCHOR_END: availability_types

// ANCHOR: router
/// The service's routes over `state`.
pub fn router<S: ReservationStore>(state: AppState<S>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/lots/{lot_id}/availability", get(availability::<S>))
        .route("/lots/near", get(lots_near::<S>))
        .route("/lots/{lot_id}/reservations", post(reserve::<S>))
        .route("/lots/{lot_id}/walk-ins", post(walk_in::<S>))
        .route("/reservations/{id}", get(get_reservation::<S>))
        .route("/reservations/{id}/history", get(history::<S>))
        .route("/reservations/{id}/{action}", post(transition::<S>))
        // The errors block's answer: a problem document with Retry-After.
        .layer(axum::middleware::from_fn(block_errors::timeout(
            PROBLEM_BASE,
            REQUEST_TIMEOUT,
        )))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
// ANCHOR_END: router

/// Serves the API on `listener` until `shutdown` completes, then finishes
/// the requests in flight (their transactions commit or roll back) and returns.
pub async fn serve<S: ReservationStore>(
    listener: TcpListener,
    state: AppState<S>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::Malformed(e.to_string())
}

async fn availability<S: ReservationStore>(
    State(app): State<AppState<S>>,
    lot_id: Result<Path<LotId>, PathRejection>,
    query: Result<Query<AvailabilityQuery>, QueryRejection>,
) -> Result<Json<Availability>, ApiError> {
    let Path(lot_id) = lot_id.map_err(malformed)?;
    let Query(q) = query.map_err(malformed)?;
    let range = TimeRange::parse(&q.start, &q.end)?;
    let kinds = app.store.availability(lot_id, range).await?;
    Ok(Json(Availability {
        lot_id,
        range,
        kinds,
    }))
}

// ANCHOR: reserve_handler
async fn reserve<S: ReservationStore>(
    State(app): State<AppState<S>>,
    lot_id: Result<Path<LotId>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<ReserveBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(lot_id) = lot_id.map_err(malformed)?;
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .map(|v| IdempotencyKey::parse(v.as_bytes()))
        .transpose()?;
    let Json(body) = body.map_err(malformed)?;
    let request = body.parse(lot_id)?;
    let now = app.clock.now();
    check_bookable(&request.range, now)?;
    let reserved = app.store.reserve(&request, key.as_ref(), now).await?;
    let mut response = (StatusCode::CREATED, Json(&reserved.reservation)).into_response();
    let location = format!("/reservations/{}", reserved.reservation.id);
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if reserved.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}
// ANCHOR_END: reserve_handler

async fn get_reservation<S: ReservationStore>(
    State(app): State<AppState<S>>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Reservation>, ApiError> {
    let Path(id) = id.map_err(malformed)?;
    Ok(Json(app.store.get(id).await?))
}

// ANCHOR: transition_handler
async fn transition<S: ReservationStore>(
    State(app): State<AppState<S>>,
    path: Result<Path<(Uuid, String)>, PathRejection>,
) -> Result<Json<Reservation>, ApiError> {
    let Path((id, action)) = path.map_err(malformed)?;
    // The sweeper's events (expire, no-show) are not offered to clients.
    let event = match action.as_str() {
        "confirm" => Event::Confirm,
        "check-in" => Event::CheckIn,
        "check-out" => Event::CheckOut,
        "cancel" => Event::Cancel,
        _ => return Err(ApiError::UnknownAction(action)),
    };
    let now = app.clock.now();
    Ok(Json(app.store.apply(id, event, now).await?))
}
// ANCHOR_END: transition_handler

async fn history<S: ReservationStore>(
    State(app): State<AppState<S>>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Vec<Transition>>, ApiError> {
    let Path(id) = id.map_err(malformed)?;
    Ok(Json(app.store.history(id).await?))
}

// ANCHOR: walk_in
/// The body of `POST /lots/{lot}/walk-ins`: a driver at the gate with no reservation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WalkInBody {
    /// `compact`, `regular`, `large`, `ev` or `accessible`.
    pub kind: String,
    /// When the driver will leave: RFC 3339, on a 15-minute boundary.
    pub end: String,
    /// The car's licence plate.
    pub plate: String,
}

/// A walk-in is a reservation that starts now: reserve from the current
/// slot to `end`, confirm, check in, in one store call (one transaction),
/// with an optional `Idempotency-Key` as for a reserve. It
/// takes only a spot that no reservation holds for any part of the stay, so
/// reserved capacity is never given away at the gate; a lot that is fully
/// reserved turns walk-ins away with 409 `no-spot-available` even while cars
/// are still to come.
async fn walk_in<S: ReservationStore>(
    State(app): State<AppState<S>>,
    lot_id: Result<Path<LotId>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<WalkInBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(lot_id) = lot_id.map_err(malformed)?;
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .map(|v| IdempotencyKey::parse(v.as_bytes()))
        .transpose()?;
    let Json(body) = body.map_err(malformed)?;
    let now = app.clock.now();
    let start = floor_to_slot(now).to_rfc3339();
    let request = ReserveBody {
        kind: body.kind,
        start,
        end: body.end,
        plate: body.plate,
    }
    .parse(lot_id)?;
    check_bookable(&request.range, now)?;
    let parked = app.store.walk_in(&request, key.as_ref(), now).await?;
    let mut response = (StatusCode::CREATED, Json(&parked.reservation)).into_response();
    if parked.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}
// ANCHOR_END: walk_in

/// The query of `GET /lots/near`.
#[derive(Debug, Clone, Deserialize)]
pub struct NearQuery {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// How far to look, metres (1 to 50,000).
    pub radius_m: f64,
}

async fn lots_near<S: ReservationStore>(
    State(app): State<AppState<S>>,
    query: Result<Query<NearQuery>, QueryRejection>,
) -> Result<Json<Vec<LotNear>>, ApiError> {
    let Query(q) = query.map_err(malformed)?;
    let at = Location::new(q.latitude, q.longitude)?;
    if !(1.0..=NEAR_RADIUS_MAX_M).contains(&q.radius_m) {
        return Err(LocationError::Radius.into());
    }
    Ok(Json(app.store.lots_near(at, q.radius_m).await?))
}
