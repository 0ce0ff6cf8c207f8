//! Shared fixtures of the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

pub mod saga;

use std::path::PathBuf;

use order_management::domain::{Command, CommandError, LineRequest, NewOrder, Order, Refusal};
use order_management::store::{OrderStore, PgStore, StoreError};
use testkit::TestDb;
use uuid::Uuid;

/// `sql/schema.sql` of this crate.
pub fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/schema.sql")
}

/// A throwaway database with the schema and a store over it; `None` after a SKIPPED line.
pub async fn pg_store() -> Option<(TestDb, PgStore)> {
    let db = testkit::postgres(Some(&schema_path())).await?;
    with_outbox(&db).await;
    let store = PgStore::new(db.pool.clone());
    Some((db, store))
}

/// Like [`pg_store`], with a pool of `max` connections for concurrency tests.
pub async fn pg_store_with(max: u32) -> Option<(TestDb, PgStore)> {
    let db = testkit::postgres(Some(&schema_path())).await?;
    with_outbox(&db).await;
    let store = PgStore::new(db.pool_with(max).await);
    Some((db, store))
}

/// Applies the blocks' tables beside the schema: the outbox block's (the
/// outbox and the inbox) and the idempotency block's key table.
pub async fn with_outbox(db: &TestDb) {
    ok(
        "outbox schema",
        db.apply_sql(block_outbox::SCHEMA_SQL).await,
    );
    ok(
        "idempotency keys",
        db.apply_sql(block_idempotency::pg::TABLE_SQL).await,
    );
}

/// An order of `lines` as (sku, quantity, unit price in cents).
pub fn new_order(lines: &[(&str, u32, i64)]) -> NewOrder {
    NewOrder {
        customer_id: Uuid::from_u128(42),
        lines: lines
            .iter()
            .map(|(sku, quantity, unit_price_cents)| LineRequest {
                sku: (*sku).to_string(),
                quantity: *quantity,
                unit_price_cents: *unit_price_cents,
            })
            .collect(),
    }
}

/// The usual test order: two lines, 3 x A at 1.00 and 1 x B at 2.50.
pub fn two_lines() -> NewOrder {
    new_order(&[("A", 3, 100), ("B", 1, 250)])
}

/// The rule by which a store refused a command, if that is what it answered.
pub fn refusal<T>(answer: &Result<T, StoreError>) -> Option<&Refusal> {
    match answer {
        Err(StoreError::Command(CommandError::Refused(why))) => Some(why),
        _ => None,
    }
}

/// Unwraps a test step, naming it on failure.
pub fn ok<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Creates an order and drives it to `paid` through the store (no saga).
pub async fn paid_order<S: OrderStore>(store: &S, id: Uuid, request: &NewOrder) -> Order {
    ok("create", store.create(id, request).await);
    ok("place", store.apply(id, 1, &Command::Place).await);
    let total = ok("get", store.get(id).await).total_cents;
    ok(
        "approve",
        store
            .apply(
                id,
                2,
                &Command::Approve {
                    amount_cents: total,
                },
            )
            .await,
    )
}

/// A shipment of everything left on every line.
pub fn ship_everything(order: &Order) -> Command {
    Command::Ship {
        lines: order.everything_left(),
    }
}

/// Rows of `table` for one order (`order_events` and `outbox` key it differently).
pub async fn count_rows(pool: &sqlx::PgPool, table: &str, order: Uuid) -> i64 {
    let sql = match table {
        "order_events" => "SELECT count(*) FROM order_events WHERE order_id = $1",
        "outbox" => "SELECT count(*) FROM outbox WHERE aggregate_id = $1::text",
        other => panic!("no count for {other}"),
    };
    ok(
        "count",
        sqlx::query_scalar::<_, i64>(sql)
            .bind(order)
            .fetch_one(pool)
            .await,
    )
}

/// The variable that turns a test binary into a crash test's child process:
/// its value names the role the child plays.
pub const CHILD_ROLE: &str = "OM_CHILD_ROLE";

/// Re-runs this test binary as a child playing `role`, which must die at
/// its failpoint ([`testkit::die_in_child`]).
pub async fn die_in_child(entry: &str, role: &str, vars: &[(&str, &str)]) {
    testkit::die_in_child(CHILD_ROLE, entry, role, vars).await;
}

/// A small pool of the child's own, to the parent's test database.
pub async fn child_pool(url: &str) -> sqlx::PgPool {
    ok(
        "child pool",
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await,
    )
}

/// A variable the parent must have set for the child.
pub fn child_var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) => v,
        Err(_) => panic!("the child needs {name}"),
    }
}
