//! Each SQLSTATE of the review's error-mapping item, provoked on a real
//! PostgreSQL, gets its class: the errors are the server's own, not built
//! by hand.

use std::time::Duration;

use block_errors::{Class, Constraint, Transient, classify_sqlx};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use testkit::TestDb;

const SCHEMA: &str = "
    CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL CHECK (n >= 0));
    CREATE TABLE child (id int PRIMARY KEY, t_id int NOT NULL REFERENCES t (id));
    CREATE TABLE booking (room int NOT NULL, during int4range NOT NULL,
        EXCLUDE USING gist (during WITH &&));
    INSERT INTO t VALUES (1, 1), (2, 2);
";

async fn db() -> Option<TestDb> {
    let db = testkit::postgres(None).await?;
    db.apply_sql(SCHEMA)
        .await
        .unwrap_or_else(|e| panic!("schema: {e}"));
    Some(db)
}

async fn connect(db: &TestDb) -> PgConnection {
    PgConnection::connect(&db.url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// The error `sql` fails with on `conn`.
async fn fails(conn: &mut PgConnection, sql: &'static str) -> sqlx::Error {
    match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Ok(_) => panic!("{sql} succeeded"),
        Err(e) => e,
    }
}

fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
        .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

// ANCHOR: provoked
#[tokio::test]
async fn statement_timeout_57014_is_a_retryable_timeout() {
    let Some(db) = db().await else { return };
    let mut conn = connect(&db).await;
    let e = fails(&mut conn, "SET statement_timeout = 1; SELECT pg_sleep(1)").await;
    assert_eq!(sqlstate(&e), "57014");
    assert_eq!(classify_sqlx(&e), Class::Retryable(Transient::Timeout));
}

#[tokio::test]
async fn a_write_on_a_read_only_session_25006_is_retryable_unavailable() {
    let Some(db) = db().await else { return };
    let mut conn = connect(&db).await;
    // What a standby says to every write; the setting makes this server say it.
    sqlx::raw_sql("SET default_transaction_read_only = on")
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = fails(&mut conn, "INSERT INTO t VALUES (3, 3)").await;
    assert_eq!(sqlstate(&e), "25006");
    assert_eq!(classify_sqlx(&e), Class::Retryable(Transient::Unavailable));
}

#[tokio::test]
async fn a_terminated_backend_57p01_is_retryable_unavailable() {
    let Some(db) = db().await else { return };
    let mut conn = connect(&db).await;
    let e = fails(&mut conn, "SELECT pg_terminate_backend(pg_backend_pid())").await;
    // The server sends 57P01 before it closes the socket; a driver that
    // sees the close first reports I/O. Both are the same class.
    assert!(
        e.as_database_error().is_none() || sqlstate(&e) == "57P01",
        "{e}"
    );
    assert_eq!(classify_sqlx(&e), Class::Retryable(Transient::Unavailable));
}

#[tokio::test]
async fn a_serialization_failure_40001_is_retryable_contention() {
    let Some(db) = db().await else { return };
    let (mut a, mut b) = (connect(&db).await, connect(&db).await);
    // Write skew: each reads the sum, then inserts a row the other's read
    // would have seen. SERIALIZABLE lets only one of them commit.
    for c in [&mut a, &mut b] {
        sqlx::raw_sql("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT sum(n) FROM t")
            .execute(&mut *c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // The first statement the server refuses, whichever it is.
    let steps = [
        (0, "INSERT INTO t VALUES (10, 1)"),
        (1, "INSERT INTO t VALUES (11, 1)"),
        (0, "COMMIT"),
        (1, "COMMIT"),
    ];
    let mut refused = None;
    for (who, sql) in steps {
        let c = if who == 0 { &mut a } else { &mut b };
        if let Err(e) = sqlx::raw_sql(sql).execute(c).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.unwrap_or_else(|| panic!("both SERIALIZABLE transactions committed"));
    assert_eq!(sqlstate(&e), "40001");
    assert_eq!(classify_sqlx(&e), Class::Retryable(Transient::Contention));
}

#[tokio::test]
async fn a_deadlock_40p01_is_retryable_contention() {
    let Some(db) = db().await else { return };
    let (mut a, mut b) = (connect(&db).await, connect(&db).await);
    for (c, id) in [(&mut a, 1), (&mut b, 2)] {
        sqlx::query("BEGIN")
            .execute(&mut *c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("UPDATE t SET n = n + 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Each now waits for the row the other holds; the server picks one to fail.
    let left = sqlx::query("UPDATE t SET n = n + 1 WHERE id = 2").execute(&mut a);
    let right = sqlx::query("UPDATE t SET n = n + 1 WHERE id = 1").execute(&mut b);
    let (l, r) = tokio::join!(left, right);
    let e = match (l, r) {
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => e,
        other => panic!("expected one deadlock victim: {other:?}"),
    };
    assert_eq!(sqlstate(&e), "40P01");
    assert_eq!(classify_sqlx(&e), Class::Retryable(Transient::Contention));
}

#[tokio::test]
async fn a_lock_not_available_55p03_is_retryable_contention() {
    let Some(db) = db().await else { return };
    let (mut a, mut b) = (connect(&db).await, connect(&db).await);
    sqlx::raw_sql("BEGIN; SELECT * FROM t WHERE id = 1 FOR UPDATE")
        .execute(&mut a)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = fails(&mut b, "SELECT * FROM t WHERE id = 1 FOR UPDATE NOWAIT").await;
    assert_eq!(sqlstate(&e), "55P03");
    assert_eq!(classify_sqlx(&e), Class::Retryable(Transient::Contention));
}

#[tokio::test]
async fn constraint_violations_are_conflicts_the_caller_maps() {
    let Some(db) = db().await else { return };
    let mut conn = connect(&db).await;
    let cases = [
        ("INSERT INTO t VALUES (1, 1)", "23505", Constraint::Unique),
        ("INSERT INTO t VALUES (5, -1)", "23514", Constraint::Check),
        (
            "INSERT INTO child VALUES (1, 99)",
            "23503",
            Constraint::ForeignKey,
        ),
        (
            "INSERT INTO booking VALUES (1, '[1,5)'), (2, '[3,8)')",
            "23P01",
            Constraint::Exclusion,
        ),
    ];
    for (sql, code, constraint) in cases {
        let e = fails(&mut conn, sql).await;
        assert_eq!(sqlstate(&e), code, "{sql}");
        assert_eq!(classify_sqlx(&e), Class::Conflict(constraint), "{sql}");
        assert!(block_errors::constraint_name(&e).is_some(), "{sql}");
    }
}

#[tokio::test]
async fn sql_and_data_the_code_got_wrong_are_bugs() {
    let Some(db) = db().await else { return };
    let mut conn = connect(&db).await;
    for (sql, code) in [
        ("SELECT 'x'::int", "22P02"),
        ("SELECT * FROM missing", "42P01"),
        ("INSERT INTO t (id) VALUES (7)", "23502"),
    ] {
        let e = fails(&mut conn, sql).await;
        assert_eq!(sqlstate(&e), code, "{sql}");
        assert_eq!(classify_sqlx(&e), Class::Bug, "{sql}");
    }
}
// ANCHOR_END: provoked

// ANCHOR: pool
#[tokio::test]
async fn an_exhausted_pool_is_overloaded_and_a_closed_one_unavailable() {
    let Some(db) = db().await else { return };
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect(&db.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let held = pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    let e = pool
        .acquire()
        .await
        .err()
        .unwrap_or_else(|| panic!("acquired a second"));
    assert_eq!(
        classify_sqlx(&e),
        Class::Retryable(Transient::Overloaded),
        "{e}"
    );
    drop(held);
    pool.close().await;
    let e = pool
        .acquire()
        .await
        .err()
        .unwrap_or_else(|| panic!("acquired after close"));
    assert!(matches!(e, sqlx::Error::PoolClosed), "{e}");
    assert_eq!(classify_sqlx(&e), Class::Retryable(Transient::Unavailable));
}

#[tokio::test]
async fn a_server_that_refuses_connections_is_retryable() {
    // Nothing listens on port 1: the connect fails at the socket.
    let e = PgConnection::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .err()
        .unwrap_or_else(|| panic!("connected to port 1"));
    assert!(matches!(e, sqlx::Error::Io(_)), "{e}");
    assert_eq!(classify_sqlx(&e), Class::Retryable(Transient::Unavailable));
}
// ANCHOR_END: pool
