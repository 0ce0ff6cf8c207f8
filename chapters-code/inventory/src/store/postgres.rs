//! The PostgreSQL store: every state change is ONE statement.
//!
//! A reserve is a single `WITH` statement that does the guarded UPDATE of
//! the stock row, inserts the reservation, appends the movement and queues
//! it in the outbox. Autocommit, one round trip: the stock row's lock is
//! held for the time PostgreSQL needs to execute it, never across a network
//! round trip to the application. That is the lesson of Shopify's write-up
//! (connection hold time, not rows, was the limit), applied to a counter.
//!
//! The guard (`WHERE on_hand - reserved >= $3`) turns "not enough stock"
//! into zero rows, a normal answer. The CHECK constraints in
//! `sql/schema.sql` are what holds if the guard is ever wrong.

use chrono::{DateTime, TimeDelta, Utc};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::{InventoryStore, LAZY_RECLAIM_LIMIT, Outcome, Stock, StoreError, replay};
use crate::domain::{
    Balance, Count, Decision, Event, Movement, MovementKind, Qty, Reservation, Sku, State,
    StockKey, TransitionError, Warehouse, decide,
};

// ANCHOR: timeouts
/// Server-side cap on any statement: a stock row locked by a stalled writer
/// (or a database too slow to answer) turns into `503 unavailable` and a
/// retry, not a request that hangs while its client has long given up.
pub const STATEMENT_TIMEOUT: &str = "2s";
/// How long a request waits for a pooled connection before `503 unavailable`.
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
// ANCHOR_END: timeouts

/// The schema this store is written against (`sql/schema.sql`).
pub const SCHEMA_SQL: &str = include_str!("../../sql/schema.sql");

// ANCHOR: reserve_sql
/// Hold `$3` units of (`$1`, `$2`) as reservation `$4`, expiring at `$5`, at `$6`.
pub const RESERVE_SQL: &str = "
WITH s AS (
    UPDATE stock
       SET reserved = reserved + $3, version = version + 1
     WHERE sku = $1 AND warehouse = $2
       AND on_hand - reserved - committed >= $3   -- the guard
    RETURNING sku, warehouse, on_hand, reserved, committed, version
), r AS (
    INSERT INTO reservations (id, sku, warehouse, qty, state, expires_at)
    SELECT $4, sku, warehouse, $3, 'held', $5 FROM s
), m AS (
    INSERT INTO movements (sku, warehouse, kind, d_on_hand, d_reserved, d_committed,
                           on_hand_after, reserved_after, committed_after, version,
                           reservation_id, at)
    SELECT sku, warehouse, 'reserve', 0, $3, 0, on_hand, reserved, committed, version,
           $4, $6 FROM s
    RETURNING id
), o AS (
    INSERT INTO outbox (movement_id) SELECT id FROM m
)
SELECT on_hand, reserved, version FROM s";
// ANCHOR_END: reserve_sql

// ANCHOR: commit_sql
/// Commit reservation `$1` at `$2`: only a hold that has not run out. The
/// units move from `reserved` to `committed`; `on_hand` stays, because the
/// sold units are still on the shelf until they ship.
pub const COMMIT_SQL: &str = "
WITH r AS (
    UPDATE reservations SET state = 'committed', updated_at = clock_timestamp()
     WHERE id = $1 AND state = 'held' AND expires_at > $2
    RETURNING id, sku, warehouse, qty
), s AS (
    UPDATE stock
       SET reserved = stock.reserved - r.qty, committed = stock.committed + r.qty,
           version = stock.version + 1
      FROM r
     WHERE stock.sku = r.sku AND stock.warehouse = r.warehouse
    RETURNING stock.sku, stock.warehouse, stock.on_hand, stock.reserved, stock.committed,
              stock.version, r.qty, r.id
), m AS (
    INSERT INTO movements (sku, warehouse, kind, d_on_hand, d_reserved, d_committed,
                           on_hand_after, reserved_after, committed_after, version,
                           reservation_id, at)
    SELECT sku, warehouse, 'commit', 0, -qty, qty, on_hand, reserved, committed, version,
           id, $2 FROM s
    RETURNING id
), o AS (
    INSERT INTO outbox (movement_id) SELECT id FROM m
)
SELECT qty FROM s";
// ANCHOR_END: commit_sql

/// Ship committed reservation `$1` at `$2`: the units leave the building.
pub const SHIP_SQL: &str = "
WITH r AS (
    UPDATE reservations SET state = 'shipped', updated_at = clock_timestamp()
     WHERE id = $1 AND state = 'committed'
    RETURNING id, sku, warehouse, qty
), s AS (
    UPDATE stock
       SET on_hand = stock.on_hand - r.qty, committed = stock.committed - r.qty,
           version = stock.version + 1
      FROM r
     WHERE stock.sku = r.sku AND stock.warehouse = r.warehouse
    RETURNING stock.sku, stock.warehouse, stock.on_hand, stock.reserved, stock.committed,
              stock.version, r.qty, r.id
), m AS (
    INSERT INTO movements (sku, warehouse, kind, d_on_hand, d_reserved, d_committed,
                           on_hand_after, reserved_after, committed_after, version,
                           reservation_id, at)
    SELECT sku, warehouse, 'ship', -qty, 0, -qty, on_hand, reserved, committed, version,
           id, $2 FROM s
    RETURNING id
), o AS (
    INSERT INTO outbox (movement_id) SELECT id FROM m
)
SELECT qty FROM s";

/// The statement of release (`'released'`, any time) or expire (`'expired'`,
/// only once due): the units go back from `reserved`.
fn give_back_sql(to: &str, kind: &str, time_rule: &str) -> String {
    format!(
        "
WITH r AS (
    UPDATE reservations SET state = '{to}', updated_at = clock_timestamp()
     WHERE id = $1 AND state = 'held' {time_rule}
    RETURNING id, sku, warehouse, qty
), s AS (
    UPDATE stock
       SET reserved = stock.reserved - r.qty, version = stock.version + 1
      FROM r
     WHERE stock.sku = r.sku AND stock.warehouse = r.warehouse
    RETURNING stock.sku, stock.warehouse, stock.on_hand, stock.reserved, stock.committed,
              stock.version, r.qty, r.id
), m AS (
    INSERT INTO movements (sku, warehouse, kind, d_on_hand, d_reserved, d_committed,
                           on_hand_after, reserved_after, committed_after, version,
                           reservation_id, at)
    SELECT sku, warehouse, '{kind}', 0, -qty, 0, on_hand, reserved, committed, version,
           id, $2 FROM s
    RETURNING id
), o AS (
    INSERT INTO outbox (movement_id) SELECT id FROM m
)
SELECT qty FROM s"
    )
}

// ANCHOR: receive_sql
/// Add `$3` units to (`$1`, `$2`) at `$4` as receipt `$5`, creating the
/// position on first receipt. A receipt id already recorded makes the whole
/// statement fail on `movements_receipt_once` (23505), adding nothing.
pub const RECEIVE_SQL: &str = "
WITH s AS (
    INSERT INTO stock AS st (sku, warehouse, on_hand, reserved, version)
    VALUES ($1, $2, $3, 0, 1)
    ON CONFLICT (sku, warehouse)
    DO UPDATE SET on_hand = st.on_hand + EXCLUDED.on_hand, version = st.version + 1
    RETURNING sku, warehouse, on_hand, reserved, committed, version
), m AS (
    INSERT INTO movements (sku, warehouse, kind, d_on_hand, d_reserved, d_committed,
                           on_hand_after, reserved_after, committed_after, version, at,
                           receipt_id)
    SELECT sku, warehouse, 'receive', $3, 0, 0, on_hand, reserved, committed, version, $4, $5
      FROM s
    RETURNING id
), o AS (
    INSERT INTO outbox (movement_id) SELECT id FROM m
)
SELECT on_hand, reserved, version FROM s";
// ANCHOR_END: receive_sql

// ANCHOR: adjust_sql
/// A count of `$3` units of (`$1`, `$2`) at `$4`, taken when the position
/// showed `$5` on hand: one statement, a compare-and-set.
///
/// A count is what is on the shelf, and so is `on_hand` (a sale moves units
/// to `committed` and leaves them there until they ship). The count is
/// applied only if `on_hand` is still what the counter saw when they started
/// (`$5`): a receipt or a shipment in between makes the count stale, and it
/// is refused rather than written over them. `cur` locks the row and reads
/// it as it is once the lock is ours (READ COMMITTED re-reads a row a
/// concurrent writer changed); the guards, the delta and the other columns
/// come from `cur`, never from the UPDATE's own scan of `stock`, which sees
/// the statement's older snapshot. Zero rows from `s` and `cur` tells the
/// caller why. The answer is the row as the statement left it (or found it).
pub const ADJUST_SQL: &str = "
WITH cur AS (
    SELECT on_hand, reserved, committed, version FROM stock
     WHERE sku = $1 AND warehouse = $2
       FOR UPDATE
), s AS (
    UPDATE stock
       SET on_hand = $3, reserved = cur.reserved, committed = cur.committed,
           version = stock.version + 1
      FROM cur
     WHERE stock.sku = $1 AND stock.warehouse = $2
       AND cur.on_hand = $5                     -- what the counter saw
       AND cur.reserved + cur.committed <= $3   -- never below what is promised
       AND cur.on_hand <> $3                    -- no movement for no change
    RETURNING stock.sku, stock.warehouse, stock.on_hand, stock.reserved, stock.committed,
              stock.version, $3 - cur.on_hand AS delta
), m AS (
    INSERT INTO movements (sku, warehouse, kind, d_on_hand, d_reserved, d_committed,
                           on_hand_after, reserved_after, committed_after, version, at)
    SELECT sku, warehouse, 'adjust', delta, 0, 0, on_hand, reserved, committed, version, $4
      FROM s
    RETURNING id
), o AS (
    INSERT INTO outbox (movement_id) SELECT id FROM m
)
SELECT cur.on_hand AS on_hand_before,
       cur.reserved + cur.committed AS promised_before,
       COALESCE(s.on_hand, cur.on_hand) AS on_hand,
       COALESCE(s.reserved, cur.reserved) AS reserved,
       COALESCE(s.committed, cur.committed) AS committed,
       COALESCE(s.version, cur.version) AS version,
       COALESCE((SELECT sum(due.qty) FROM (
                   SELECT r.qty FROM reservations AS r
                    WHERE r.sku = $1 AND r.warehouse = $2
                      AND r.state = 'held' AND r.expires_at <= $4
                    ORDER BY r.expires_at LIMIT $6) AS due), 0)::bigint AS reclaimable
  FROM cur LEFT JOIN s ON true";
// ANCHOR_END: adjust_sql

/// Read one position with the units in the lapsed holds a reserve would
/// reclaim (the first `$4`, oldest first: no more than one reserve takes back).
pub const STOCK_SQL: &str = "
SELECT s.on_hand, s.reserved, s.committed, s.version,
       COALESCE((SELECT sum(due.qty) FROM (
                   SELECT r.qty FROM reservations AS r
                    WHERE r.sku = s.sku AND r.warehouse = s.warehouse
                      AND r.state = 'held' AND r.expires_at <= $3
                    ORDER BY r.expires_at LIMIT $4) AS due), 0)::bigint AS reclaimable
  FROM stock AS s
 WHERE s.sku = $1 AND s.warehouse = $2";

/// A [`InventoryStore`] on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    release_sql: String,
    expire_sql: String,
}

impl PgStore {
    /// A store over an existing pool (the schema must be applied).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            release_sql: give_back_sql("released", "release", ""),
            expire_sql: give_back_sql("expired", "expire", "AND expires_at <= $2"),
        }
    }

    /// Connects with a pool of up to `max` connections, every statement
    /// capped at [`STATEMENT_TIMEOUT`] and every wait for a connection at
    /// [`ACQUIRE_TIMEOUT`].
    pub async fn connect(url: &str, max: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?
            .options([("statement_timeout", STATEMENT_TIMEOUT)])
            .application_name("inventory");
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Self::new(pool))
    }

    /// Applies `sql/schema.sql` if the database has no `stock` table yet; true if it did.
    pub async fn ensure_schema(&self) -> Result<bool, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('public.stock') IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        if exists {
            return Ok(false);
        }
        sqlx::raw_sql(AssertSqlSafe(SCHEMA_SQL))
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// The pool, for the relay and the tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Why a reserve found no row to update: unknown SKU or warehouse, or too little stock.
    async fn why_not(&self, key: &StockKey, qty: Qty, now: DateTime<Utc>) -> StoreError {
        match self.stock(key, now).await {
            Ok(s) => StoreError::OutOfStock {
                key: key.clone(),
                requested: qty.get(),
                available: s.balance.available(),
            },
            Err(e) => e,
        }
    }

    /// Expires the lapsed holds of one position (at most
    /// [`LAZY_RECLAIM_LIMIT`]). A hold that a release, a commit or another
    /// reclaim ended between the SELECT and its expire is skipped: its units
    /// are back (or sold) either way, and the caller's retry sees the truth.
    async fn reclaim(&self, key: &StockKey, now: DateTime<Utc>) -> Result<(), StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM reservations
              WHERE sku = $1 AND warehouse = $2 AND state = 'held' AND expires_at <= $3
              ORDER BY expires_at LIMIT $4",
        )
        .bind(key.sku.as_str())
        .bind(key.warehouse.as_str())
        .bind(now)
        .bind(i64::from(LAZY_RECLAIM_LIMIT))
        .fetch_all(&self.pool)
        .await?;
        for &id in &ids {
            match self.expire(id, now).await {
                Ok(_) => {}
                // Released, committed (by an earlier clock) or expired by
                // someone else in between: not ours to expire, and no error
                // for the reserve that came to reclaim it.
                Err(StoreError::Transition(
                    TransitionError::HoldExpired { .. } | TransitionError::Illegal { .. },
                )) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn try_reserve(
        &self,
        key: &StockKey,
        qty: Qty,
        id: Uuid,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Outcome>, StoreError> {
        let row = sqlx::query(RESERVE_SQL)
            .bind(key.sku.as_str())
            .bind(key.warehouse.as_str())
            .bind(qty.get())
            .bind(id)
            .bind(expires_at)
            .bind(now)
            .fetch_optional(&self.pool)
            .await;
        match row {
            Ok(Some(_)) => Ok(Some(Outcome {
                reservation: Reservation {
                    id,
                    key: key.clone(),
                    qty,
                    state: State::Held,
                    expires_at,
                },
                replayed: false,
            })),
            // Zero rows: too little stock, or a retry that finds its own
            // hold holding the units. Only this path pays for the lookup.
            Ok(None) => self.existing(id, key, qty).await,
            // The id is taken (a concurrent retry of the same request won
            // the row): the whole statement rolled back; answer as the other did.
            Err(e) if is_unique_violation(&e, "reservations_pkey") => {
                match self.existing(id, key, qty).await? {
                    Some(o) => Ok(Some(o)),
                    None => Err(StoreError::Database(e)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The replay of reserve `id` if that reservation exists.
    async fn existing(
        &self,
        id: Uuid,
        key: &StockKey,
        qty: Qty,
    ) -> Result<Option<Outcome>, StoreError> {
        match self.reservation(id).await {
            Ok(r) => replay(r, key, qty).map(Some),
            Err(StoreError::ReservationNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Runs the statement of `event`; when it changed nothing, reads the
    /// reservation and lets the domain rule say why (or that it was a repeat).
    async fn transition(
        &self,
        id: Uuid,
        event: Event,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let sql: &str = match event {
            Event::Commit => COMMIT_SQL,
            Event::Ship => SHIP_SQL,
            Event::Release => &self.release_sql,
            Event::Expire => &self.expire_sql,
        };
        let changed = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        let r = self.reservation(id).await?;
        if changed {
            return Ok(Outcome {
                reservation: r,
                replayed: false,
            });
        }
        match decide(&r, event, now)? {
            Decision::AlreadyDone => Ok(Outcome {
                reservation: r,
                replayed: true,
            }),
            // The statement's WHERE and `decide` disagree: a bug, not a race
            // (a race ends in a terminal state, which `decide` judges).
            Decision::Apply(to) => Err(StoreError::Corrupt(format!(
                "{event} of {id} changed nothing, but the rule says {} -> {to}",
                r.state
            ))),
        }
    }
}

fn code_of(e: &sqlx::Error) -> Option<(String, String)> {
    let d = e.as_database_error()?;
    Some((
        d.code().map(|c| c.to_string()).unwrap_or_default(),
        d.constraint().unwrap_or_default().to_string(),
    ))
}

// ANCHOR: check_then_act
/// The reserve most people write first, kept to show what the CHECKs catch:
/// read the balance, decide in the application, then add to `reserved`
/// without a guard. Two clients that read the same balance both add.
/// Returns `Ok(false)` when it saw too little stock.
pub async fn check_then_act_reserve(
    pool: &PgPool,
    key: &StockKey,
    qty: Qty,
) -> Result<bool, sqlx::Error> {
    let available: Option<i64> = sqlx::query_scalar(
        "SELECT on_hand - reserved FROM stock WHERE sku = $1 AND warehouse = $2",
    )
    .bind(key.sku.as_str())
    .bind(key.warehouse.as_str())
    .fetch_optional(pool)
    .await?;
    if available.unwrap_or(0) < qty.get() {
        return Ok(false);
    }
    // No `AND on_hand - reserved >= $3`: only the CHECK `never_oversold` stands here.
    sqlx::query("UPDATE stock SET reserved = reserved + $3 WHERE sku = $1 AND warehouse = $2")
        .bind(key.sku.as_str())
        .bind(key.warehouse.as_str())
        .bind(qty.get())
        .execute(pool)
        .await?;
    Ok(true)
}
// ANCHOR_END: check_then_act

/// True when `e` is a unique violation (SQLSTATE 23505) of `constraint`.
fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    code_of(e).is_some_and(|(code, c)| code == "23505" && c == constraint)
}

/// True when `e` is a CHECK constraint refusing a row (SQLSTATE 23514).
pub fn is_check_violation(e: &sqlx::Error) -> bool {
    code_of(e).is_some_and(|(code, _)| code == "23514")
}

/// A foreign-key violation on `stock` names the missing catalog entry.
fn catalog_error(e: sqlx::Error, key: &StockKey) -> StoreError {
    // 23503: foreign_key_violation, told apart by the constraint's name.
    match code_of(&e) {
        Some((code, c)) if code == "23503" && c == "stock_sku_fkey" => {
            StoreError::UnknownSku(key.sku.clone())
        }
        Some((code, c)) if code == "23503" && c == "stock_warehouse_fkey" => {
            StoreError::UnknownWarehouse(key.warehouse.clone())
        }
        _ => StoreError::Database(e),
    }
}

/// A position from a row with `on_hand`, `reserved`, `version` and `reclaimable`
/// (what [`ADJUST_SQL`] and [`STOCK_SQL`] both return).
fn decode_stock(key: &StockKey, row: &PgRow) -> Result<Stock, StoreError> {
    Ok(Stock {
        key: key.clone(),
        balance: Balance {
            on_hand: row.try_get("on_hand")?,
            reserved: row.try_get("reserved")?,
            committed: row.try_get("committed")?,
        },
        version: row.try_get("version")?,
        reclaimable: row.try_get("reclaimable")?,
    })
}

fn decode_reservation(row: &PgRow) -> Result<Reservation, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(what.to_string());
    let state: String = row.try_get("state")?;
    let sku: String = row.try_get("sku")?;
    let warehouse: String = row.try_get("warehouse")?;
    let qty: i64 = row.try_get("qty")?;
    Ok(Reservation {
        id: row.try_get("id")?,
        key: StockKey::new(
            Sku::parse(&sku).map_err(|_| corrupt("sku"))?,
            Warehouse::parse(&warehouse).map_err(|_| corrupt("warehouse"))?,
        ),
        qty: Qty::new(qty).map_err(|_| corrupt("qty"))?,
        state: State::parse(&state).ok_or_else(|| corrupt("state"))?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl InventoryStore for PgStore {
    async fn add_sku(&self, sku: &Sku) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO skus (sku) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(sku.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn add_warehouse(&self, w: &Warehouse) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO warehouses (code) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(w.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn receive(
        &self,
        id: Uuid,
        key: &StockKey,
        qty: Qty,
        now: DateTime<Utc>,
    ) -> Result<Stock, StoreError> {
        let res = sqlx::query(RECEIVE_SQL)
            .bind(key.sku.as_str())
            .bind(key.warehouse.as_str())
            .bind(qty.get())
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await;
        match res {
            Ok(_) => {}
            // Recorded before (a retry, or a concurrent twin that committed
            // first): the same receipt is answered, another is refused.
            Err(e) if is_unique_violation(&e, "movements_receipt_once") => {
                let first: Option<(String, String, i64)> = sqlx::query_as(
                    "SELECT sku, warehouse, d_on_hand FROM movements WHERE receipt_id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                let same = first.is_some_and(|(s, w, q)| {
                    s == key.sku.as_str() && w == key.warehouse.as_str() && q == qty.get()
                });
                if !same {
                    return Err(StoreError::ReceiptReused(id));
                }
            }
            Err(e) => return Err(catalog_error(e, key)),
        }
        self.stock(key, now).await
    }

    // ANCHOR: reserve
    async fn reserve_with_id(
        &self,
        id: Uuid,
        key: &StockKey,
        qty: Qty,
        ttl: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let expires_at = now + ttl;
        if let Some(o) = self.try_reserve(key, qty, id, expires_at, now).await? {
            return Ok(o);
        }
        // Zero rows: too little stock, unless lapsed holds can be reclaimed.
        // Then one more try, whatever the reclaim found: a hold released or
        // expired by someone else since the first try also gave units back.
        self.reclaim(key, now).await?;
        if let Some(o) = self.try_reserve(key, qty, id, expires_at, now).await? {
            return Ok(o);
        }
        Err(self.why_not(key, qty, now).await)
    }
    // ANCHOR_END: reserve

    async fn commit(&self, id: Uuid, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        self.transition(id, Event::Commit, now).await
    }

    async fn release(&self, id: Uuid, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        self.transition(id, Event::Release, now).await
    }

    async fn expire(&self, id: Uuid, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        self.transition(id, Event::Expire, now).await
    }

    async fn ship(&self, id: Uuid, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        self.transition(id, Event::Ship, now).await
    }

    // ANCHOR: sweeper
    async fn expire_due(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        // A plain read: each expire is its own guarded statement, so two
        // sweepers that pick the same id expire it once (the other gets a
        // replay), and a hold that a commit or release ends in between is
        // skipped. The sweepers do not split the work between them; a
        // `FOR UPDATE SKIP LOCKED` here would not either, because the read
        // runs in autocommit and its locks end with it.
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM reservations
              WHERE state = 'held' AND expires_at <= $1
              ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut n = 0;
        for id in ids {
            match self.expire(id, now).await {
                Ok(o) if !o.replayed => n += 1,
                Ok(_) => {}
                // Committed in between (its clock was earlier): not ours to expire.
                Err(StoreError::Transition(TransitionError::HoldExpired { .. }))
                | Err(StoreError::Transition(TransitionError::Illegal { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
    // ANCHOR_END: sweeper

    async fn adjust(
        &self,
        key: &StockKey,
        counted: Count,
        seen: Count,
        now: DateTime<Utc>,
    ) -> Result<Stock, StoreError> {
        let mut created = false;
        loop {
            let row = sqlx::query(ADJUST_SQL)
                .bind(key.sku.as_str())
                .bind(key.warehouse.as_str())
                .bind(counted.get())
                .bind(now)
                .bind(seen.get())
                .bind(i64::from(LAZY_RECLAIM_LIMIT))
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                let on_hand: i64 = row.try_get("on_hand_before")?;
                if on_hand != seen.get() {
                    return Err(StoreError::CountStale {
                        key: key.clone(),
                        seen: seen.get(),
                        on_hand,
                    });
                }
                let promised: i64 = row.try_get("promised_before")?;
                if counted.get() < promised {
                    return Err(StoreError::CountBelowReserved {
                        key: key.clone(),
                        counted: counted.get(),
                        reserved: promised,
                    });
                }
                // The row the count produced, not a later read of it.
                return decode_stock(key, &row);
            }
            if created {
                return Err(StoreError::Corrupt(format!("position {key} vanished")));
            }
            // A known position that was never stocked is created at zero
            // (no movement: zero is what its empty ledger folds to), then counted.
            sqlx::query(
                "INSERT INTO stock (sku, warehouse) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(key.sku.as_str())
            .bind(key.warehouse.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| catalog_error(e, key))?;
            created = true;
        }
    }

    async fn stock(&self, key: &StockKey, now: DateTime<Utc>) -> Result<Stock, StoreError> {
        let row = sqlx::query(STOCK_SQL)
            .bind(key.sku.as_str())
            .bind(key.warehouse.as_str())
            .bind(now)
            .bind(i64::from(LAZY_RECLAIM_LIMIT))
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            return decode_stock(key, &row);
        }
        let (sku, wh): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM skus WHERE sku = $1),
                    EXISTS (SELECT 1 FROM warehouses WHERE code = $2)",
        )
        .bind(key.sku.as_str())
        .bind(key.warehouse.as_str())
        .fetch_one(&self.pool)
        .await?;
        if !sku {
            return Err(StoreError::UnknownSku(key.sku.clone()));
        }
        if !wh {
            return Err(StoreError::UnknownWarehouse(key.warehouse.clone()));
        }
        Ok(Stock {
            key: key.clone(),
            balance: Balance::default(),
            version: 0,
            reclaimable: 0,
        })
    }

    async fn reservation(&self, id: Uuid) -> Result<Reservation, StoreError> {
        let row = sqlx::query(
            "SELECT id, sku, warehouse, qty, state, expires_at FROM reservations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::ReservationNotFound(id))?;
        decode_reservation(&row)
    }

    async fn movements(&self, key: &StockKey) -> Result<Vec<Movement>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, d_on_hand, d_reserved, d_committed FROM movements
              WHERE sku = $1 AND warehouse = $2 ORDER BY id",
        )
        .bind(key.sku.as_str())
        .bind(key.warehouse.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                Ok(Movement {
                    key: key.clone(),
                    kind: MovementKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("movement kind {kind:?}")))?,
                    d_on_hand: row.try_get("d_on_hand")?,
                    d_reserved: row.try_get("d_reserved")?,
                    d_committed: row.try_get("d_committed")?,
                })
            })
            .collect()
    }
}
