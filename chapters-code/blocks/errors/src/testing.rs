//! Test support (feature `testing`): real database failures of each class,
//! provoked on a real PostgreSQL and a real pool, and the check that a
//! chapter's error type answers each one as the block's rule says.
//!
//! Each chapter that maps database errors runs [`assert_database_failures`]
//! over every path by which a `sqlx::Error` reaches its `ApiError` (its
//! store, its saga, its cart...), so a chapter that answers a bug with a
//! 503 or a timeout with a 500 fails its own tests, not only the block's.

use std::fmt::{Debug, Display};
use std::time::Duration;

use axum::http::StatusCode;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

use crate::{ApiProblem, respond, retry_after_secs};

/// How each failure is provoked.
#[derive(Clone, Copy, Debug)]
pub enum Provoke {
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

/// Provokes `how` on the server at `url` and returns the error sqlx reports.
///
/// Panics when the failure cannot be provoked: this is test support.
pub async fn provoke(url: &str, how: Provoke) -> sqlx::Error {
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
            // Opening the pool's one connection is itself bounded by the
            // 50 ms acquire timeout, which a loaded machine can miss: try
            // again until the connection is held, then time out for real.
            for attempt in 1.. {
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_millis(50))
                    .connect_lazy(url)
                    .unwrap_or_else(|e| panic!("pool: {e}"));
                let _held = match pool.acquire().await {
                    Ok(held) => held,
                    Err(_) if attempt < 50 => continue,
                    Err(e) => panic!("no connection in {attempt} tries: {e}"),
                };
                return pool
                    .acquire()
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("a second connection from a pool of one"));
            }
            unreachable!("the loop returns or panics")
        }
    };
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .err()
        .unwrap_or_else(|| panic!("{how:?}: the statement succeeded"))
}

// ANCHOR: expected
/// Each failure, the status it must reach and its `Retry-After` in seconds.
pub const EXPECTED: &[(Provoke, StatusCode, Option<u64>)] = &[
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
// ANCHOR_END: expected

/// One way a `sqlx::Error` becomes a chapter's error: a name for the
/// failure message and the conversion.
pub type Path<E> = (&'static str, fn(sqlx::Error) -> E);

/// Provokes every failure of [`EXPECTED`] on the server at `url`, sends it
/// along every path, and asserts the status and `Retry-After` of the answer.
pub async fn assert_database_failures<E: ApiProblem + Display>(url: &str, paths: &[Path<E>]) {
    for (how, status, retry_after) in EXPECTED {
        for (path, wrap) in paths {
            let e = wrap(provoke(url, *how).await);
            let r = respond(&e);
            let got = (r.status, r.retry_after.map(retry_after_secs));
            assert_eq!(got, (*status, *retry_after), "{how:?} through {path}: {e}");
        }
    }
}
