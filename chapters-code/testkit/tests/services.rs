//! The testkit against the real local services, and against unreachable ones.

use std::io::Write;

use redis::AsyncCommands;
use sqlx::Row;

/// A PostgreSQL URL where nothing listens (port 1 is reserved and unused).
const DEAD_POSTGRES: &str = "postgres://postgres@127.0.0.1:1/test";
const DEAD_REDIS: &str = "redis://127.0.0.1:1";

#[tokio::test]
async fn each_test_database_is_fresh_and_dropped_afterwards() {
    let Some(db) = testkit::postgres(None).await else {
        return;
    };
    let name = db.name().to_string();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("counting tables");
    assert_eq!(tables, 0, "a fresh database has no tables");
    drop(db);

    let admin = sqlx::PgPool::connect(&testkit::database_url())
        .await
        .expect("admin connection");
    let still_there: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&admin)
            .await
            .expect("querying pg_database");
    assert!(
        !still_there,
        "database {name} should be dropped with its TestDb"
    );
}

#[tokio::test]
async fn schema_file_is_applied_to_the_new_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = dir.path().join("schema.sql");
    std::fs::File::create(&schema)
        .and_then(|mut f| {
            f.write_all(
                b"CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);\n\
                  INSERT INTO t VALUES (1, 'one'), (2, 'two');\n",
            )
        })
        .expect("writing schema");
    let Some(db) = testkit::postgres(Some(&schema)).await else {
        return;
    };
    let row = sqlx::query("SELECT count(*) AS n FROM t")
        .fetch_one(&db.pool)
        .await
        .expect("select");
    assert_eq!(row.get::<i64, _>("n"), 2);

    let bigger = db.pool_with(8).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&bigger)
        .await
        .expect("select");
    assert_eq!(n, 2, "pool_with connects to the same database");
}

#[tokio::test]
async fn invalid_sql_is_reported_with_the_error() {
    let Some(db) = testkit::postgres(None).await else {
        return;
    };
    let err = db
        .apply_sql("CREATE TABLE broken (id int PRIMARY KEY,);")
        .await;
    assert!(err.is_err(), "a syntax error must be reported");
}

#[tokio::test]
async fn unreachable_postgres_skips_when_not_required() {
    assert!(
        testkit::postgres_at(DEAD_POSTGRES, None, false)
            .await
            .is_none()
    );
}

#[tokio::test]
#[should_panic(expected = "required")]
async fn unreachable_postgres_fails_when_required() {
    let _ = testkit::postgres_at(DEAD_POSTGRES, None, true).await;
}

/// A temporary schema file holding `sql`; the directory lives as long as the guard.
fn schema_file(sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("schema.sql");
    std::fs::write(&path, sql).expect("writing schema");
    (dir, path)
}

/// An admin pool on the server, or `None` after a `SKIPPED` line (a panic when required).
async fn admin_pool() -> Option<sqlx::PgPool> {
    let url = testkit::database_url();
    match sqlx::PgPool::connect(&url).await {
        Ok(pool) => Some(pool),
        Err(e) => {
            testkit::unavailable("PostgreSQL", &url, &e, testkit::services_required());
            None
        }
    }
}

async fn database_exists(admin: &sqlx::PgPool, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(admin)
        .await
        .expect("querying pg_database")
}

/// The generators call `blocking_fresh_db` from inside a runtime, where a
/// plain `block_on` panics ("Cannot start a runtime from within a runtime").
#[tokio::test]
async fn blocking_fresh_db_works_inside_a_runtime_and_drops_the_database() {
    let Some(admin) = admin_pool().await else {
        return;
    };
    assert!(
        tokio::runtime::Handle::try_current().is_ok(),
        "inside a runtime"
    );
    let (_dir, schema) =
        schema_file("CREATE TABLE t (id int PRIMARY KEY);\nINSERT INTO t VALUES (1), (2);\n");
    let (name, rows) = testkit::blocking_fresh_db(
        &testkit::database_url(),
        &schema,
        async |db| -> Result<(String, i64), testkit::FreshDbError> {
            let rows = sqlx::query_scalar("SELECT count(*) FROM t")
                .fetch_one(&db.pool)
                .await
                .expect("the schema is applied");
            Ok((db.name().to_string(), rows))
        },
    )
    .expect("blocking_fresh_db");
    assert_eq!(rows, 2, "the closure sees the schema and its rows");
    assert!(
        !database_exists(&admin, &name).await,
        "database {name} should be dropped when blocking_fresh_db returns"
    );
}

#[test]
fn blocking_fresh_db_names_an_unreachable_server_and_the_schema() {
    let (_dir, schema) = schema_file("SELECT 1;");
    let err = testkit::blocking_fresh_db(
        DEAD_POSTGRES,
        &schema,
        async |_| -> Result<(), testkit::FreshDbError> { panic!("no database, no call") },
    )
    .expect_err("nothing listens on port 1");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1"), "names the server: {msg}");
    assert!(
        msg.contains(&schema.display().to_string()),
        "names the schema: {msg}"
    );
    assert!(msg.contains("unreachable"), "says why: {msg}");
}

/// The name of the test database a message mentions (`sdb_test_<pid>_<n>_<hex>`).
fn database_named_in(msg: &str) -> String {
    let start = msg
        .find("sdb_test_")
        .expect("a database name in the message");
    msg[start..]
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .expect("name")
        .to_string()
}

#[tokio::test]
async fn blocking_fresh_db_names_a_failing_schema_and_drops_the_database() {
    let Some(admin) = admin_pool().await else {
        return;
    };
    let (_dir, schema) = schema_file("CREATE TABLE broken (id int PRIMARY KEY,);");
    let err = testkit::blocking_fresh_db(
        &testkit::database_url(),
        &schema,
        async |_| -> Result<(), testkit::FreshDbError> { panic!("the schema failed, no call") },
    )
    .expect_err("a syntax error in the schema");
    let msg = err.to_string();
    assert!(
        msg.contains(&schema.display().to_string()),
        "names the schema: {msg}"
    );
    assert!(
        msg.contains("syntax error"),
        "carries PostgreSQL's error: {msg}"
    );
    let name = database_named_in(&msg);
    assert!(
        !database_exists(&admin, &name).await,
        "database {name} should be dropped after the schema failed"
    );
}

#[tokio::test]
async fn blocking_fresh_db_drops_the_database_when_the_closure_panics() {
    let Some(admin) = admin_pool().await else {
        return;
    };
    let (_dir, schema) = schema_file("CREATE TABLE t (id int);");
    let seen = std::sync::Mutex::new(None);
    let err = testkit::blocking_fresh_db(
        &testkit::database_url(),
        &schema,
        async |db| -> Result<(), testkit::FreshDbError> {
            *seen.lock().expect("lock") = Some(db.name().to_string());
            panic!("a bug in the generator");
        },
    )
    .expect_err("the panic is reported as an error");
    assert!(err.to_string().contains("a bug in the generator"), "{err}");
    let name = seen.lock().expect("lock").take().expect("the closure ran");
    assert!(
        !database_exists(&admin, &name).await,
        "database {name} should be dropped after the closure panicked"
    );
}

#[tokio::test]
async fn redis_keys_under_the_prefix_are_deleted_afterwards() {
    let Some(r) = testkit::redis().await else {
        return;
    };
    let other = testkit::redis().await.expect("second prefix");
    assert_ne!(r.prefix, other.prefix, "each test gets its own prefix");

    let mut conn = r.conn.clone();
    for i in 0..1200 {
        let _: () = conn.set(r.key(&format!("k{i}")), i).await.expect("SET");
    }
    let key0 = r.key("k0");
    drop(r);

    let mut check = other.conn.clone();
    let exists: bool = check.exists(&key0).await.expect("EXISTS");
    assert!(!exists, "keys under a dropped prefix are deleted");
}

#[tokio::test]
async fn unreachable_redis_skips_when_not_required() {
    assert!(testkit::redis_at(DEAD_REDIS, false).await.is_none());
}

#[tokio::test]
#[should_panic(expected = "required")]
async fn unreachable_redis_fails_when_required() {
    let _ = testkit::redis_at(DEAD_REDIS, true).await;
}

#[tokio::test]
async fn nats_greets_with_info() {
    if let Some(url) = testkit::nats().await {
        assert!(url.starts_with("nats://"));
    }
}

#[tokio::test]
async fn rabbitmq_answers_the_amqp_header() {
    if let Some(url) = testkit::rabbitmq().await {
        assert!(url.starts_with("amqp://"));
    }
}
