//! Shared fixtures of the block's tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::time::{Duration, Instant};

use block_outbox::{NewMessage, enqueue};
use sqlx::PgPool;
use testkit::TestDb;
use uuid::Uuid;

/// `sql/outbox.sql` of this block.
pub fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/outbox.sql")
}

/// A throwaway database with the outbox; `None` after a SKIPPED line.
pub async fn db() -> Option<TestDb> {
    testkit::postgres(Some(&schema_path())).await
}

/// Unwraps a test step, naming it on failure.
pub fn ok<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// The aggregate id of aggregate `n`.
pub fn aggregate(n: usize) -> String {
    format!("a{n}")
}

/// Enqueues `versions` messages for each of `aggregates` aggregates, one
/// transaction per message, aggregate after aggregate (so consecutive ids
/// belong to one aggregate: the layout that tempts relays to reorder).
pub async fn enqueue_many(pool: &PgPool, aggregates: usize, versions: i64) {
    for a in 0..aggregates {
        for v in 1..=versions {
            enqueue_one(pool, &aggregate(a), v).await;
        }
    }
}

/// Enqueues version `v` of `aggregate` in a transaction of its own.
pub async fn enqueue_one(pool: &PgPool, aggregate: &str, v: i64) -> Uuid {
    let payload = serde_json::json!({ "aggregate": aggregate, "version": v });
    let mut tx = ok("begin", pool.begin().await);
    let mut m = NewMessage::new("thing", aggregate, "changed", &payload);
    m.aggregate_version = Some(v);
    ok("enqueue", enqueue(&mut tx, &m).await);
    ok("commit", tx.commit().await);
    m.message_id
}

/// Rows the relay has not marked yet.
pub async fn unpublished(pool: &PgPool) -> i64 {
    ok(
        "unpublished",
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(pool)
            .await,
    )
}

/// Waits until `done()` or panics after `limit` with `what`.
pub async fn eventually<F: AsyncFnMut() -> bool>(limit: Duration, what: &str, mut done: F) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "{what} (waited {limit:?})");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection to the server's maintenance database, for what a test does
/// to its own database from outside (refuse connections, end sessions).
pub async fn admin() -> PgPool {
    ok(
        "admin pool",
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&testkit::database_url())
            .await,
    )
}

/// Ends the sessions on database `name` whose last query starts with `like`
/// (`%` for all); returns how many.
pub async fn terminate(admin: &PgPool, name: &str, like: &str) -> i64 {
    ok(
        "terminate",
        sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid() AND query ILIKE $2",
        )
        .bind(name)
        .bind(like)
        .fetch_one(admin)
        .await,
    )
}

/// The variable that turns a test binary into a crash test's child process.
pub const CHILD_ROLE: &str = "OUTBOX_CHILD_ROLE";

/// Re-runs this test binary as a child playing `role`, which must die at
/// its failpoint ([`testkit::die_in_child`]).
pub async fn die_in_child(entry: &str, role: &str, vars: &[(&str, &str)]) {
    testkit::die_in_child(CHILD_ROLE, entry, role, vars).await;
}

/// A variable the parent must have set for the child.
pub fn child_var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) => v,
        Err(_) => panic!("the child needs {name}"),
    }
}
