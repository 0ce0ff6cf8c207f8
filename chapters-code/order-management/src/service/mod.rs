//! The HTTP API: create an order, send it a command at the version you
//! read, read it, read its history. Errors are problem+json, mapped in
//! [`error`]; a refused request changes nothing.

pub mod error;

use std::future::Future;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use uuid::Uuid;

pub use error::{ApiError, Problem};

use crate::domain::{Command, NewOrder, Order};
use crate::saga::Orchestrator;
use crate::store::{Keyed, OrderStore, RecordedEvent, StoreError};

/// How a `place` command is carried out.
#[derive(Clone)]
pub enum Checkout {
    /// Approve at once (the in-memory demo: no stock, no payment provider).
    Instant,
    /// Start the checkout saga and run it in the background (PostgreSQL).
    Saga(Arc<Orchestrator>),
}

/// What the handlers share.
pub struct AppState<S> {
    /// Where orders live.
    pub store: Arc<S>,
    /// What `place` does.
    pub checkout: Checkout,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            store: Arc::clone(&self.store),
            checkout: self.checkout.clone(),
        }
    }
}

// ANCHOR: api_types
/// `POST /orders/{id}/commands`: a command and the version it was decided on.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// The version the client read; a different stored version is a 409.
    pub expected_version: i64,
    /// What to do.
    pub command: Command,
}

/// `GET /orders/{id}/events`.
#[derive(Debug, Serialize)]
pub struct History {
    /// The order.
    pub order_id: Uuid,
    /// Its events, oldest first.
    pub events: Vec<RecordedEvent>,
}
// ANCHOR_END: api_types

// ANCHOR: router
/// The routes.
pub fn router<S: OrderStore>(state: AppState<S>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/orders", post(create::<S>))
        .route("/orders/{id}", get(read::<S>))
        .route("/orders/{id}/events", get(history::<S>))
        .route("/orders/{id}/commands", post(command::<S>))
        .with_state(state)
}
// ANCHOR_END: router

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve<S: OrderStore>(
    listener: TcpListener,
    state: AppState<S>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(raw) = id.map_err(|e| ApiError::Malformed(e.body_text()))?;
    // An id that is not a UUID names no order.
    raw.parse::<Uuid>()
        .map_err(|_| crate::store::StoreError::NotFound(Uuid::nil()).into())
}

fn malformed(e: JsonRejection) -> ApiError {
    ApiError::Malformed(e.body_text())
}

// ANCHOR: create
/// `POST /orders`. With an `Idempotency-Key` header (the idempotency block's
/// rules: 1 to 255 visible ASCII), a retry gets the first answer and
/// creates nothing; the key is scoped to the order's customer (the service
/// has no accounts: see the failure-modes page).
async fn create<S: OrderStore>(
    State(app): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Json<NewOrder>, JsonRejection>,
) -> Result<Response, ApiError> {
    let key = headers
        .get("idempotency-key")
        .map(|v| block_idempotency::IdempotencyKey::parse(v.as_bytes()))
        .transpose()
        .map_err(|e| ApiError::Malformed(format!("Idempotency-Key: {e}")))?;
    let Json(request) = body.map_err(malformed)?;
    let id = Uuid::new_v4();
    let (status, body) = match key {
        None => (
            StatusCode::CREATED,
            json_of(&app.store.create(id, &request).await?)?,
        ),
        Some(key) => {
            let scope = block_idempotency::KeyScope {
                account: request.customer_id.to_string(),
                endpoint: crate::store::CREATE_ENDPOINT,
                key,
            };
            let answer = match app.store.create_keyed(id, &request, &scope).await? {
                Keyed::Created(order) => crate::store::created_answer(&order)?,
                Keyed::Replay(answer) => answer,
            };
            let status = StatusCode::from_u16(answer.status)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            (status, answer.body)
        }
    };
    let location = body
        .get("id")
        .and_then(|v| v.as_str())
        .map(|id| format!("/orders/{id}"))
        .unwrap_or_default();
    Ok((status, [(header::LOCATION, location)], Json(body)).into_response())
}
// ANCHOR_END: create

fn json_of(order: &Order) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(order).map_err(|e| StoreError::Corrupt(e.to_string()).into())
}

async fn read<S: OrderStore>(
    State(app): State<AppState<S>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Order>, ApiError> {
    let id = path_id(id)?;
    Ok(Json(app.store.get(id).await?))
}

async fn history<S: OrderStore>(
    State(app): State<AppState<S>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<History>, ApiError> {
    let order_id = path_id(id)?;
    let events = app.store.history(order_id).await?;
    Ok(Json(History { order_id, events }))
}

// ANCHOR: command
async fn command<S: OrderStore>(
    State(app): State<AppState<S>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<CommandRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let Json(req) = body.map_err(malformed)?;
    let kind = req.command.kind();
    if kind.is_saga_only() {
        return Err(ApiError::SagaOnly(kind.as_str()));
    }
    if req.command != Command::Place {
        let order = app
            .store
            .apply(id, req.expected_version, &req.command)
            .await?;
        return Ok(Json(order).into_response());
    }
    match &app.checkout {
        Checkout::Instant => {
            let placed = app
                .store
                .apply(id, req.expected_version, &Command::Place)
                .await?;
            let amount_cents = placed.total_cents;
            let order = app
                .store
                .apply(id, placed.version, &Command::Approve { amount_cents })
                .await?;
            Ok(Json(order).into_response())
        }
        Checkout::Saga(orchestrator) => {
            // The order is pending (locked) when this returns; the saga
            // finishes in the background and the client polls the order.
            // No task waits in memory for a turn: with every turn taken,
            // the saga is left to the timer, whose row is durable.
            let saga = orchestrator.start(id, req.expected_version).await?;
            if let Err(e) = orchestrator.hand_off(saga).await {
                tracing::warn!(%saga, error = %e, "saga not handed off; its timer resumes it");
            }
            let order = app.store.get(id).await?;
            Ok((StatusCode::ACCEPTED, Json(order)).into_response())
        }
    }
}
// ANCHOR_END: command
