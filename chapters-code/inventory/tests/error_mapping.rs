//! Real sqlx errors, one per class of the errors block, through the
//! chapter's `ApiError`: each reaches the status and `Retry-After` the block
//! gives its class. The errors come from a real PostgreSQL and a real pool.

use std::time::Duration;

use axum::http::StatusCode;
use inventory::service::ApiError;
use inventory::store::StoreError;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

/// How each failure is provoked.
#[derive(Clone, Copy, Debug)]
enum Provoke {
    /// `statement_timeout` cancels a sleep: 57014.
    StatementTimeout,
    /// A write in a read-only transaction, what a standby answers: 25006.
    ReadOnly,
    /// Raised by the server with the deadlock's SQLSTATE: 40P01.
    Deadlock,
    /// A second row with the same key, a constraint no route maps: 23505.
    UnmappedUnique,
    /// A table the code names and the schema lacks: 42P01.
    MissingTable,
    /// Raised by the server with a missing grant's SQLSTATE: 42501.
    MissingGrant,
    /// A pool of one whose connection is held: `PoolTimedOut`.
    PoolTimeout,
}

async fn provoke(url: &str, how: Provoke) -> sqlx::Error {
    let mut conn = PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let sql = match how {
        Provoke::StatementTimeout => "SET statement_timeout = 1; SELECT pg_sleep(1)",
        Provoke::ReadOnly => "BEGIN READ ONLY; CREATE TABLE never (id int)",
        Provoke::Deadlock => "DO $$ BEGIN RAISE SQLSTATE '40P01'; END $$",
        Provoke::UnmappedUnique => {
            "CREATE TEMP TABLE u (id int PRIMARY KEY); INSERT INTO u VALUES (1), (1)"
        }
        Provoke::MissingTable => "SELECT * FROM no_such_table",
        Provoke::MissingGrant => "DO $$ BEGIN RAISE SQLSTATE '42501'; END $$",
        Provoke::PoolTimeout => {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_millis(50))
                .connect(url)
                .await
                .unwrap_or_else(|e| panic!("pool: {e}"));
            let _held = pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
            return pool
                .acquire()
                .await
                .err()
                .unwrap_or_else(|| panic!("a second connection from a pool of one"));
        }
    };
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .err()
        .unwrap_or_else(|| panic!("{how:?}: the statement succeeded"))
}

/// Turns a database error into the chapter's `ApiError` along one path.
type Wrap = fn(sqlx::Error) -> ApiError;

// ANCHOR: mapping_table
/// Each failure, the status it must reach and its `Retry-After` in seconds.
const EXPECTED: &[(Provoke, StatusCode, Option<u64>)] = &[
    (
        Provoke::StatementTimeout,
        StatusCode::SERVICE_UNAVAILABLE,
        Some(1),
    ),
    (Provoke::ReadOnly, StatusCode::SERVICE_UNAVAILABLE, Some(1)),
    (Provoke::Deadlock, StatusCode::SERVICE_UNAVAILABLE, Some(1)),
    (
        Provoke::PoolTimeout,
        StatusCode::SERVICE_UNAVAILABLE,
        Some(1),
    ),
    (Provoke::MissingGrant, StatusCode::SERVICE_UNAVAILABLE, None),
    (
        Provoke::UnmappedUnique,
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
    ),
    (
        Provoke::MissingTable,
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
    ),
];

#[tokio::test]
async fn each_database_failure_gets_its_class_status_and_retry_after() {
    let Some(db) = testkit::postgres(None).await else {
        return;
    };
    let paths: [(&str, Wrap); 1] = [("store", |e| StoreError::Database(e).into())];
    for (how, status, retry_after) in EXPECTED {
        for (path, wrap) in paths {
            let e = wrap(provoke(&db.url, *how).await);
            let r = block_errors::respond(&e);
            let got = (r.status, r.retry_after.map(block_errors::retry_after_secs));
            assert_eq!(got, (*status, *retry_after), "{how:?} through {path}: {e}");
        }
    }
}
// ANCHOR_END: mapping_table
