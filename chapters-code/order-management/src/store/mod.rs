//! Storage: one trait, two adapters with the same semantics.
//!
//! [`OrderStore`] is what the service and the saga need: create an order,
//! apply a command at an expected version, read an order and its history.
//! [`MemoryStore`] keeps everything behind one mutex and is the reference
//! behaviour; [`PgStore`] keeps the current row in `orders`, appends to
//! `order_events` and writes the `outbox` row, all in one transaction, and
//! relies on `WHERE version = $expected` so that of two writers who read
//! the same version, exactly one commits. The model-based test
//! (`tests/model.rs`) drives both with random command sequences and checks
//! they agree after every step.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{Command, CommandError, Event, FoldError, NewOrder, Order, OrderError};

mod memory;
mod postgres;

pub use memory::MemoryStore;
pub(crate) use postgres::is_unique_violation;
pub use postgres::{LOAD_SQL, PgStore, SCHEMA_SQL};

/// What every store does before it writes a command: refuse a stale
/// `expected_version` (the client acted on an old read), decide, and fold
/// the event into the next state. Returns the event and that state.
pub(crate) fn decide_at(
    order: &Order,
    expected_version: i64,
    command: &Command,
) -> Result<(Event, Order), StoreError> {
    if order.version != expected_version {
        return Err(StoreError::VersionConflict {
            expected: expected_version,
            actual: order.version,
        });
    }
    let event = order.decide(command)?;
    let mut next = order.clone();
    next.evolve(&event)?;
    Ok((event, next))
}

/// One stored event, as the history route returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordedEvent {
    /// The order's version after the event.
    pub version: i64,
    /// What happened.
    pub event: Event,
    /// When it was recorded (the database's clock).
    pub recorded_at: DateTime<Utc>,
}

// ANCHOR: store_error
/// Why a store operation failed. Whatever the error, nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No order has this id.
    #[error("order {0} does not exist")]
    NotFound(Uuid),
    /// An order with this id exists already.
    #[error("order {0} already exists")]
    AlreadyExists(Uuid),
    /// The order changed since the caller read it: it is at `actual`, not `expected`.
    #[error("order is at version {actual}, not {expected}: read it again and retry")]
    VersionConflict {
        /// The version the caller read.
        expected: i64,
        /// The version now stored.
        actual: i64,
    },
    /// The new order breaks a rule.
    #[error(transparent)]
    InvalidOrder(#[from] OrderError),
    /// The state machine or the command's data refused it.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row or event does not parse, or the log does not fold.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The `Idempotency-Key` was used with another request, or a request
    /// with it is still in progress (the idempotency block's refusals).
    #[error(transparent)]
    Key(#[from] block_idempotency::ClaimError),
}

/// The endpoint an order-creating key is scoped to.
pub const CREATE_ENDPOINT: &str = "POST /orders";

/// The answer stored with a key: what the first request got (201 and the order).
pub fn created_answer(order: &Order) -> Result<block_idempotency::FinalAnswer, StoreError> {
    Ok(block_idempotency::FinalAnswer {
        status: 201,
        body: serde_json::to_value(order).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

/// The fingerprint of a create: the endpoint, the account and the order asked for.
pub fn create_fingerprint(
    key: &block_idempotency::KeyScope,
    request: &NewOrder,
) -> Result<block_idempotency::Fingerprint, StoreError> {
    block_idempotency::Fingerprint::of_json(CREATE_ENDPOINT, &key.account, request)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// What a create with an `Idempotency-Key` did.
#[derive(Clone, Debug, PartialEq)]
pub enum Keyed {
    /// The key was new: the order was created, and this answer stored with the key.
    Created(Order),
    /// The key was finished: the first request's answer, replayed; nothing written.
    Replay(block_idempotency::FinalAnswer),
}
// ANCHOR_END: store_error

impl From<FoldError> for StoreError {
    fn from(e: FoldError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

// ANCHOR: store_trait
/// Everything the service and the saga need from storage.
pub trait OrderStore: Send + Sync + 'static {
    /// Creates the order `id` (version 1, state `created`) with its first event.
    fn create(
        &self,
        id: Uuid,
        request: &NewOrder,
    ) -> impl Future<Output = Result<Order, StoreError>> + Send;

    /// Like [`OrderStore::create`], under an `Idempotency-Key`: the key's
    /// claim, the order and the key's final answer (201 and the order)
    /// commit together, so a retry with the key replays the answer and
    /// creates nothing, whichever answer the first request's client lost.
    fn create_keyed(
        &self,
        id: Uuid,
        request: &NewOrder,
        key: &block_idempotency::KeyScope,
    ) -> impl Future<Output = Result<Keyed, StoreError>> + Send;

    /// The order as stored.
    fn get(&self, id: Uuid) -> impl Future<Output = Result<Order, StoreError>> + Send;

    /// Every event of the order, oldest first.
    fn history(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Applies `command` if the order is still at `expected_version`: the new
    /// row, the event and (in PostgreSQL) the outbox message commit together,
    /// or nothing does.
    fn apply(
        &self,
        id: Uuid,
        expected_version: i64,
        command: &Command,
    ) -> impl Future<Output = Result<Order, StoreError>> + Send;
}
// ANCHOR_END: store_trait
