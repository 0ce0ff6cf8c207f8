//! Storage: one trait, an in-memory adapter and the PostgreSQL adapter,
//! with the same semantics (`tests/store_behaviour.rs` runs one suite
//! against both).

mod memory;
mod postgres;

use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use memory::MemoryStore;
pub use postgres::{
    COMMIT_SQL, PgStore, RECEIVE_SQL, RESERVE_SQL, SCHEMA_SQL, SHIP_SQL, STOCK_SQL,
    check_then_act_reserve, is_check_violation,
};

use crate::domain::{
    Balance, Count, Movement, Qty, Reservation, Sku, StockKey, TransitionError, Warehouse,
};

/// Why a store operation was refused or failed. Refusals change nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SKU is not in the catalog.
    #[error("unknown SKU {0}")]
    UnknownSku(Sku),
    /// The warehouse is not in the catalog.
    #[error("unknown warehouse {0}")]
    UnknownWarehouse(Warehouse),
    /// Fewer units available than requested.
    #[error("{key}: {requested} requested, {available} available")]
    OutOfStock {
        /// The position.
        key: StockKey,
        /// Units asked for.
        requested: i64,
        /// Units that could be promised at the time.
        available: i64,
    },
    /// No reservation has this id.
    #[error("no reservation {0}")]
    ReservationNotFound(Uuid),
    /// A reserve named a reservation id that already holds another request
    /// (another position or quantity).
    #[error("reservation {0} already exists for a different position or quantity")]
    IdReused(Uuid),
    /// A receive named a receipt id already recorded for another position
    /// or quantity.
    #[error("receipt {0} already recorded for a different position or quantity")]
    ReceiptReused(Uuid),
    /// The reservation's state or clock refuses the event.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A count below what is promised (held or sold and not shipped).
    #[error("{key}: counted {counted}, but {reserved} are reserved or sold and not shipped")]
    CountBelowReserved {
        /// The position.
        key: StockKey,
        /// The count given.
        counted: i64,
        /// Units held by open reservations or sold and not yet shipped.
        reserved: i64,
    },
    /// A count taken when `on_hand` was `seen`, but a receipt, a shipment or
    /// another count has changed it since: the count no longer describes the shelf.
    #[error("{key}: the count was taken at {seen} on hand, which is now {on_hand}")]
    CountStale {
        /// The position.
        key: StockKey,
        /// What the counter saw when they started.
        seen: i64,
        /// What the position holds now.
        on_hand: i64,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database returned something the code cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// A position's stored balance, its version, and the units in the lapsed
/// holds a reserve would reclaim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stock {
    /// The position.
    pub key: StockKey,
    /// On hand and reserved, as stored.
    pub balance: Balance,
    /// Bumped by every movement of this position.
    pub version: i64,
    /// Units in holds whose time has run out but that no one has expired yet
    /// (the sweeper has not come by, no reserve has reclaimed them), counting
    /// only the oldest [`LAZY_RECLAIM_LIMIT`], the most one reserve reclaims.
    pub reclaimable: i64,
}

impl Stock {
    /// Units a reserve would get now: available plus lapsed holds, which a
    /// reserve reclaims lazily.
    pub fn available_now(&self) -> i64 {
        self.balance.available() + self.reclaimable
    }
}

/// The answer to reserve, commit, ship, release or expire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The reservation after the call.
    pub reservation: Reservation,
    /// True when the event had already happened and nothing changed.
    pub replayed: bool,
}

// ANCHOR: store_trait
/// Where stock and reservations live.
pub trait InventoryStore: Send + Sync + 'static {
    /// Adds a SKU to the catalog (idempotent).
    fn add_sku(&self, sku: &Sku) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds a warehouse to the catalog (idempotent).
    fn add_warehouse(&self, w: &Warehouse) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Goods arrived: `on_hand += qty`, as receipt `id`, chosen by the
    /// client (a delivery's id). Idempotent: a retry with the same id,
    /// position and quantity adds nothing and answers with the position as
    /// it is now; the same id for a different receipt is `ReceiptReused`.
    fn receive(
        &self,
        id: Uuid,
        key: &StockKey,
        qty: Qty,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Stock, StoreError>> + Send;

    /// Holds `qty` units for `ttl` as reservation `id`, chosen by the client,
    /// or refuses with `OutOfStock`. Lapsed holds of the position are
    /// reclaimed first when that makes the difference. Idempotent: a retry
    /// with the same id, position and quantity answers with the reservation
    /// as it is now (`replayed`), whatever the stock; the same id for a
    /// different request is `IdReused`.
    fn reserve_with_id(
        &self,
        id: Uuid,
        key: &StockKey,
        qty: Qty,
        ttl: TimeDelta,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// A reserve under a fresh id: for callers that never retry (the
    /// tests, the load generator). The HTTP route takes the client's id.
    fn reserve(
        &self,
        key: &StockKey,
        qty: Qty,
        ttl: TimeDelta,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Reservation, StoreError>> + Send {
        async move {
            self.reserve_with_id(Uuid::new_v4(), key, qty, ttl, now)
                .await
                .map(|o| o.reservation)
        }
    }

    /// Payment succeeded: the held units are sold (`reserved` to
    /// `committed`), still on the shelf. Idempotent.
    fn commit(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// The checkout gave up: the held units are available again. Idempotent.
    fn release(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// The hold ran out (`now >= expires_at`): as release, by the clock. Idempotent.
    fn expire(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// The sold units left the building: `on_hand` and `committed` drop. Idempotent.
    fn ship(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// The sweeper: expires up to `limit` lapsed holds, returns how many.
    fn expire_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// A stock count: sets `on_hand` to `counted` if it is still `seen`, the
    /// on-hand figure the counter started from (`CountStale` otherwise), and
    /// never below what is promised; answers with the position as the count left it.
    fn adjust(
        &self,
        key: &StockKey,
        counted: Count,
        seen: Count,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Stock, StoreError>> + Send;

    /// One position as it is now; `OutOfStock`-free: an unstocked but known
    /// position reads as zero.
    fn stock(
        &self,
        key: &StockKey,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Stock, StoreError>> + Send;

    /// One reservation.
    fn reservation(&self, id: Uuid)
    -> impl Future<Output = Result<Reservation, StoreError>> + Send;

    /// The ledger of one position, oldest first.
    fn movements(
        &self,
        key: &StockKey,
    ) -> impl Future<Output = Result<Vec<Movement>, StoreError>> + Send;
}
// ANCHOR_END: store_trait

/// The lapsed holds one reserve reclaims at most before it retries.
pub const LAZY_RECLAIM_LIMIT: u32 = 100;

/// The answer to a reserve whose id already names reservation `r`: a replay
/// if it is the same request, `IdReused` if not.
pub(crate) fn replay(r: Reservation, key: &StockKey, qty: Qty) -> Result<Outcome, StoreError> {
    if &r.key == key && r.qty == qty {
        Ok(Outcome {
            reservation: r,
            replayed: true,
        })
    } else {
        Err(StoreError::IdReused(r.id))
    }
}
