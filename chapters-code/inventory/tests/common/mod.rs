//! Shared fixtures of the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use inventory::domain::{Count, Qty, Sku, StockKey, Warehouse};
use inventory::store::{InventoryStore, PgStore};
use testkit::TestDb;

/// `sql/schema.sql` of this crate.
pub fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/schema.sql")
}

/// `sql/ladder.sql` of this crate.
pub fn ladder_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/ladder.sql")
}

/// A throwaway database with the schema and a store over a pool of `max`; `None` after a SKIPPED line.
pub async fn pg_store(max: u32) -> Option<(TestDb, PgStore)> {
    let db = testkit::postgres(Some(&schema_path())).await?;
    let pool = if max <= 5 {
        db.pool.clone()
    } else {
        db.pool_with(max).await
    };
    Some((db, PgStore::new(pool)))
}

/// A fixed instant, so tests do not depend on the wall clock.
pub fn t0() -> DateTime<Utc> {
    match DateTime::from_timestamp(1_900_000_000, 0) {
        Some(t) => t,
        None => panic!("a valid instant"),
    }
}

/// A parsed SKU (test input: a panic is the right failure).
pub fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// A parsed warehouse.
pub fn wh(s: &str) -> Warehouse {
    Warehouse::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// The position `sku@wh`.
pub fn key(s: &str, w: &str) -> StockKey {
    StockKey::new(sku(s), wh(w))
}

/// A quantity.
pub fn qty(n: i64) -> Qty {
    Qty::new(n).unwrap_or_else(|e| panic!("{e}"))
}

/// A count.
pub fn count(n: i64) -> Count {
    Count::new(n).unwrap_or_else(|e| panic!("{e}"))
}

/// Registers the SKU and warehouse of `k` and receives `n` units (if n > 0).
pub async fn stocked<S: InventoryStore>(store: &S, k: &StockKey, n: i64) {
    store
        .add_sku(&k.sku)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .add_warehouse(&k.warehouse)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    if n > 0 {
        store
            .receive(uuid::Uuid::new_v4(), k, qty(n), t0())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
