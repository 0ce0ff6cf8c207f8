//! The contention ladder: seven ways to take a unit of one hot SKU, each
//! behind the [`Rung`] trait, plus the ceiling they are measured against.
//!
//! Every rung starts from `units` in stock and answers each attempt with
//! [`Attempt::Reserved`], [`Attempt::SoldOut`] or [`Attempt::Busy`] (the
//! rung declined to wait; the client may retry). The load generator in
//! [`load`] runs them at several client counts and counts the oversell:
//! units handed out beyond the stock.

pub mod buckets;
pub mod load;

use std::future::Future;
use std::pin::Pin;

use sqlx::PgPool;
use sqlx::postgres::PgRow;

pub use buckets::Buckets;

use crate::domain::{Qty, Sku, StockKey, Warehouse};
use crate::redis_front::RedisFront;
use crate::store::{InventoryStore, PgStore, StoreError};

/// Positions of the `store-spread` run.
pub const SPREAD_POSITIONS: usize = 1_000;

/// A boxed future, so rungs of different types sit behind one `dyn Rung`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The answer to one attempt to take a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The client got a unit.
    Reserved,
    /// No unit left (as far as this rung can tell).
    SoldOut,
    /// The rung would have had to wait for another client; try again.
    Busy,
}

// ANCHOR: rung
/// One way to take a unit of a hot SKU.
pub trait Rung: Send + Sync {
    /// A short id, used in result names and test names.
    fn id(&self) -> &'static str;
    /// Puts exactly `units` in stock and forgets every earlier claim.
    fn setup(&self, units: i64) -> BoxFuture<'_, anyhow::Result<()>>;
    /// One attempt by client `client` to take one unit.
    fn reserve(&self, client: u32) -> BoxFuture<'_, anyhow::Result<Attempt>>;
    /// Units still in stock, as the rung's storage says.
    fn remaining(&self) -> BoxFuture<'_, anyhow::Result<i64>>;
}
// ANCHOR_END: rung

/// Each rung keeps its stock under a SKU of its own, so all can share one database.
pub(crate) fn rung_sku(id: &str) -> i64 {
    RUNG_IDS
        .iter()
        .position(|r| *r == id)
        .map_or(0, |p| p as i64 + 1)
}

/// Every rung id, in ladder order.
pub const RUNG_IDS: [&str; 10] = [
    "naive",
    "conditional",
    "for-update",
    "skip-locked",
    "advisory",
    "buckets",
    "buckets-fallback",
    "redis",
    "store",
    "ceiling",
];

/// Sets the hot row of `sku` to `units`.
async fn set_hot_row(pool: &PgPool, sku: i64, units: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO hot_stock (sku, available) VALUES ($1, $2)
         ON CONFLICT (sku) DO UPDATE SET available = EXCLUDED.available",
    )
    .bind(sku)
    .bind(units)
    .execute(pool)
    .await?;
    Ok(())
}

async fn hot_row(pool: &PgPool, sku: i64) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT available FROM hot_stock WHERE sku = $1")
            .bind(sku)
            .fetch_one(pool)
            .await?,
    )
}

fn reserved_if(row: Option<PgRow>) -> Attempt {
    if row.is_some() {
        Attempt::Reserved
    } else {
        Attempt::SoldOut
    }
}

// ANCHOR: naive
/// Rung 1: read the count, decide in Rust, write the new count back.
pub struct Naive(pub PgPool);

impl Rung for Naive {
    fn id(&self) -> &'static str {
        "naive"
    }
    fn setup(&self, units: i64) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(set_hot_row(&self.0, rung_sku(self.id()), units))
    }
    fn reserve(&self, _client: u32) -> BoxFuture<'_, anyhow::Result<Attempt>> {
        Box::pin(async move {
            let sku = rung_sku(self.id());
            let mut tx = self.0.begin().await?;
            let available: i64 =
                sqlx::query_scalar("SELECT available FROM hot_stock WHERE sku = $1")
                    .bind(sku)
                    .fetch_one(&mut *tx)
                    .await?;
            if available < 1 {
                return Ok(Attempt::SoldOut);
            }
            // Another client may have written since we read: its unit is lost.
            sqlx::query("UPDATE hot_stock SET available = $2 WHERE sku = $1")
                .bind(sku)
                .bind(available - 1)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Attempt::Reserved)
        })
    }
    fn remaining(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(hot_row(&self.0, rung_sku(self.id())))
    }
}
// ANCHOR_END: naive

// ANCHOR: conditional
/// Rung 2: one guarded UPDATE; the row lock serialises, the guard decides.
pub struct Conditional(pub PgPool);

impl Rung for Conditional {
    fn id(&self) -> &'static str {
        "conditional"
    }
    fn setup(&self, units: i64) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(set_hot_row(&self.0, rung_sku(self.id()), units))
    }
    fn reserve(&self, _client: u32) -> BoxFuture<'_, anyhow::Result<Attempt>> {
        Box::pin(async move {
            let row = sqlx::query(
                "UPDATE hot_stock SET available = available - 1
                  WHERE sku = $1 AND available >= 1 RETURNING available",
            )
            .bind(rung_sku(self.id()))
            .fetch_optional(&self.0)
            .await?;
            Ok(reserved_if(row))
        })
    }
    fn remaining(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(hot_row(&self.0, rung_sku(self.id())))
    }
}
// ANCHOR_END: conditional

// ANCHOR: for_update
/// Rung 3: lock the row, read, decide in Rust, write, commit.
pub struct ForUpdate(pub PgPool);

impl Rung for ForUpdate {
    fn id(&self) -> &'static str {
        "for-update"
    }
    fn setup(&self, units: i64) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(set_hot_row(&self.0, rung_sku(self.id()), units))
    }
    fn reserve(&self, _client: u32) -> BoxFuture<'_, anyhow::Result<Attempt>> {
        Box::pin(async move {
            let sku = rung_sku(self.id());
            let mut tx = self.0.begin().await?;
            // The lock is held from here to COMMIT: three more round trips.
            let available: i64 =
                sqlx::query_scalar("SELECT available FROM hot_stock WHERE sku = $1 FOR UPDATE")
                    .bind(sku)
                    .fetch_one(&mut *tx)
                    .await?;
            if available < 1 {
                return Ok(Attempt::SoldOut);
            }
            sqlx::query("UPDATE hot_stock SET available = available - 1 WHERE sku = $1")
                .bind(sku)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Attempt::Reserved)
        })
    }
    fn remaining(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(hot_row(&self.0, rung_sku(self.id())))
    }
}
// ANCHOR_END: for_update

// ANCHOR: skip_locked
/// Rung 4: one row per unit; a reserve claims the first free row nobody
/// else has locked (Shopify's design).
pub struct SkipLocked(pub PgPool);

impl Rung for SkipLocked {
    fn id(&self) -> &'static str {
        "skip-locked"
    }
    fn setup(&self, units: i64) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let sku = rung_sku(self.id());
            let mut tx = self.0.begin().await?;
            sqlx::query("DELETE FROM hot_units WHERE sku = $1")
                .bind(sku)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO hot_units (sku) SELECT $1 FROM generate_series(1, $2)")
                .bind(sku)
                .bind(units)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            sqlx::query("VACUUM ANALYZE hot_units")
                .execute(&self.0)
                .await?;
            Ok(())
        })
    }
    fn reserve(&self, client: u32) -> BoxFuture<'_, anyhow::Result<Attempt>> {
        Box::pin(async move {
            let sku = rung_sku(self.id());
            let row = sqlx::query(
                "UPDATE hot_units SET reserved_by = $2
                  WHERE id = (SELECT id FROM hot_units
                               WHERE sku = $1 AND reserved_by IS NULL
                               ORDER BY id LIMIT 1
                               FOR UPDATE SKIP LOCKED)
                 RETURNING id",
            )
            .bind(sku)
            .bind(i64::from(client))
            .fetch_optional(&self.0)
            .await?;
            if row.is_some() {
                return Ok(Attempt::Reserved);
            }
            // Nothing unlocked was free: sold out, or every free row is
            // being claimed by someone else right now.
            let free: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM hot_units WHERE sku = $1 AND reserved_by IS NULL)",
            )
            .bind(sku)
            .fetch_one(&self.0)
            .await?;
            Ok(if free {
                Attempt::Busy
            } else {
                Attempt::SoldOut
            })
        })
    }
    fn remaining(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar(
                "SELECT count(*) FROM hot_units WHERE sku = $1 AND reserved_by IS NULL",
            )
            .bind(rung_sku(self.id()))
            .fetch_one(&self.0)
            .await?)
        })
    }
}
// ANCHOR_END: skip_locked

// ANCHOR: advisory
/// Rung 5: whoever gets the SKU's advisory lock updates; the others are
/// told "busy" at once instead of queueing on the row (Alibaba's flash sale).
pub struct Advisory(pub PgPool);

impl Rung for Advisory {
    fn id(&self) -> &'static str {
        "advisory"
    }
    fn setup(&self, units: i64) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(set_hot_row(&self.0, rung_sku(self.id()), units))
    }
    fn reserve(&self, _client: u32) -> BoxFuture<'_, anyhow::Result<Attempt>> {
        Box::pin(async move {
            // One statement: the lock is the transaction's, released at its end.
            let (got, left): (bool, Option<i64>) = sqlx::query_as(
                "WITH l AS (SELECT pg_try_advisory_xact_lock($1) AS got),
                      u AS (UPDATE hot_stock SET available = available - 1
                             WHERE sku = $1 AND available >= 1 AND (SELECT got FROM l)
                            RETURNING available)
                 SELECT (SELECT got FROM l), (SELECT available FROM u)",
            )
            .bind(rung_sku(self.id()))
            .fetch_one(&self.0)
            .await?;
            Ok(match (got, left) {
                (false, _) => Attempt::Busy,
                (true, Some(_)) => Attempt::Reserved,
                (true, None) => Attempt::SoldOut,
            })
        })
    }
    fn remaining(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(hot_row(&self.0, rung_sku(self.id())))
    }
}
// ANCHOR_END: advisory

/// The Redis rung: [`RedisFront`] decrements in Lua, then records the claim in PostgreSQL.
pub struct RedisRung(pub RedisFront);

impl Rung for RedisRung {
    fn id(&self) -> &'static str {
        "redis"
    }
    fn setup(&self, units: i64) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.0.setup(units))
    }
    fn reserve(&self, client: u32) -> BoxFuture<'_, anyhow::Result<Attempt>> {
        Box::pin(async move {
            let _ = client;
            Ok(if self.0.reserve(1).await?.is_some() {
                Attempt::Reserved
            } else {
                Attempt::SoldOut
            })
        })
    }
    fn remaining(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(self.0.durable_remaining())
    }
}

/// The chapter's own reserve ([`PgStore::reserve`]): the conditional UPDATE
/// plus the reservation, the ledger row and the outbox row, in one statement.
/// On one hot position (`store`) or spread over many (`store-spread`).
pub struct StoreRung {
    store: PgStore,
    keys: Vec<StockKey>,
}

impl StoreRung {
    /// The rung over `pool` (which must have `sql/schema.sql` applied), on
    /// `positions` positions (1: the hot SKU).
    pub fn new(pool: PgPool, positions: usize) -> anyhow::Result<Self> {
        let warehouse = Warehouse::parse("LADDER")?;
        let keys = if positions <= 1 {
            vec![StockKey::new(Sku::parse("HOT-STORE")?, warehouse)]
        } else {
            (1..=positions)
                .map(|i| {
                    Ok(StockKey::new(
                        Sku::parse(&format!("S-{i}"))?,
                        warehouse.clone(),
                    ))
                })
                .collect::<anyhow::Result<_>>()?
        };
        Ok(Self {
            store: PgStore::new(pool),
            keys,
        })
    }
}

impl Rung for StoreRung {
    fn id(&self) -> &'static str {
        if self.keys.len() > 1 {
            "store-spread"
        } else {
            "store"
        }
    }
    fn setup(&self, units: i64) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let pool = self.store.pool();
            let skus: Vec<String> = self.keys.iter().map(|k| k.sku.to_string()).collect();
            let warehouse = self
                .keys
                .first()
                .map(|k| k.warehouse.to_string())
                .unwrap_or_default();
            sqlx::query("INSERT INTO skus (sku) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING")
                .bind(&skus)
                .execute(pool)
                .await?;
            sqlx::query("INSERT INTO warehouses (code) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(&warehouse)
                .execute(pool)
                .await?;
            // Reset in place (movements are append-only, so the counters are
            // set directly; these positions' ledgers are not checked here).
            // The previous run's holds are closed in the same transaction:
            // left open, they would lapse during the next run and a lazy
            // reclaim would give back units the reset already counted.
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE reservations SET state = 'released', updated_at = clock_timestamp()
                  WHERE sku = ANY($1) AND warehouse = $2 AND state = 'held'",
            )
            .bind(&skus)
            .bind(&warehouse)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO stock (sku, warehouse, on_hand, reserved, committed)
                 SELECT unnest($1::text[]), $2, $3, 0, 0
                 ON CONFLICT (sku, warehouse)
                 DO UPDATE SET on_hand = $3, reserved = 0, committed = 0",
            )
            .bind(&skus)
            .bind(&warehouse)
            .bind(units)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }
    fn reserve(&self, _client: u32) -> BoxFuture<'_, anyhow::Result<Attempt>> {
        Box::pin(async move {
            let now = chrono::Utc::now();
            let key = &self.keys[rand::random_range(0..self.keys.len())];
            match self
                .store
                .reserve(key, Qty::new(1)?, chrono::TimeDelta::minutes(10), now)
                .await
            {
                Ok(_) => Ok(Attempt::Reserved),
                Err(StoreError::OutOfStock { .. }) => Ok(Attempt::SoldOut),
                Err(e) => Err(e.into()),
            }
        })
    }
    fn remaining(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move {
            let mut total = 0;
            for k in &self.keys {
                total += self
                    .store
                    .stock(k, chrono::Utc::now())
                    .await?
                    .balance
                    .available();
            }
            Ok(total)
        })
    }
}

// ANCHOR: ceiling
/// The ceiling: the same single-row UPDATE with no guard and no CHECK.
/// Nothing that keeps a count on one row can do less work per request.
pub struct Ceiling(pub PgPool);

impl Rung for Ceiling {
    fn id(&self) -> &'static str {
        "ceiling"
    }
    fn setup(&self, units: i64) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO ceiling_counter (id, n) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n",
            )
            .bind(units)
            .execute(&self.0)
            .await?;
            Ok(())
        })
    }
    fn reserve(&self, _client: u32) -> BoxFuture<'_, anyhow::Result<Attempt>> {
        Box::pin(async move {
            sqlx::query("UPDATE ceiling_counter SET n = n - 1 WHERE id = 1")
                .execute(&self.0)
                .await?;
            Ok(Attempt::Reserved)
        })
    }
    fn remaining(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move {
            Ok(
                sqlx::query_scalar("SELECT n FROM ceiling_counter WHERE id = 1")
                    .fetch_one(&self.0)
                    .await?,
            )
        })
    }
}
// ANCHOR_END: ceiling

/// Every rung over one database (with `sql/schema.sql` and `sql/ladder.sql`)
/// and one Redis key prefix, in ladder order; the ceiling last.
pub fn all_rungs(pool: &PgPool, redis: RedisFront) -> anyhow::Result<Vec<Box<dyn Rung>>> {
    Ok(vec![
        Box::new(Naive(pool.clone())),
        Box::new(Conditional(pool.clone())),
        Box::new(ForUpdate(pool.clone())),
        Box::new(SkipLocked(pool.clone())),
        Box::new(Advisory(pool.clone())),
        Box::new(Buckets::new(pool.clone(), buckets::BUCKETS, false)),
        Box::new(Buckets::new(pool.clone(), buckets::BUCKETS, true)),
        Box::new(RedisRung(redis)),
        Box::new(StoreRung::new(pool.clone(), 1)?),
        Box::new(Ceiling(pool.clone())),
    ])
}

// ANCHOR: spread
/// Not a rung: the conditional UPDATE spread over `skus` rows, each request
/// on a random one. What one core does when no SKU is hot.
pub struct Spread {
    pool: PgPool,
    skus: i64,
}

impl Spread {
    /// Over `skus` SKUs (at least 1).
    pub fn new(pool: PgPool, skus: i64) -> Self {
        Self {
            pool,
            skus: skus.max(1),
        }
    }
}

impl Rung for Spread {
    fn id(&self) -> &'static str {
        "spread"
    }
    fn setup(&self, units: i64) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            sqlx::query("TRUNCATE spread_stock")
                .execute(&self.pool)
                .await?;
            sqlx::query(
                "INSERT INTO spread_stock (sku, available)
                 SELECT s, $2 FROM generate_series(1, $1) AS s",
            )
            .bind(self.skus)
            .bind(units)
            .execute(&self.pool)
            .await?;
            sqlx::query("VACUUM ANALYZE spread_stock")
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }
    fn reserve(&self, _client: u32) -> BoxFuture<'_, anyhow::Result<Attempt>> {
        Box::pin(async move {
            let sku = rand::random_range(1..=self.skus);
            let row = sqlx::query(
                "UPDATE spread_stock SET available = available - 1
                  WHERE sku = $1 AND available >= 1 RETURNING available",
            )
            .bind(sku)
            .fetch_optional(&self.pool)
            .await?;
            Ok(reserved_if(row))
        })
    }
    fn remaining(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move {
            Ok(
                sqlx::query_scalar("SELECT COALESCE(sum(available), 0)::bigint FROM spread_stock")
                    .fetch_one(&self.pool)
                    .await?,
            )
        })
    }
}
// ANCHOR_END: spread
