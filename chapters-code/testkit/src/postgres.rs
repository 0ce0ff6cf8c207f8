//! A throwaway PostgreSQL database per test.

use std::path::Path;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

use crate::{redact, services_required, unavailable, unique_name};

/// Default server URL; `DATABASE_URL` overrides it.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How long to wait for the server before declaring it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Default pool size for a test database. The shared server allows 100
/// connections for every test binary running at once, so pools stay small;
/// a concurrency test asks for more with [`TestDb::pool_with`].
const DEFAULT_POOL_SIZE: u32 = 5;

/// The PostgreSQL server URL from `DATABASE_URL`, or the default.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_string())
}

/// A database created for one test, dropped (with its connections) on drop.
pub struct TestDb {
    /// A small pool connected to the new database.
    pub pool: PgPool,
    /// The URL of the new database, for code that opens its own connections.
    pub url: String,
    name: String,
    admin: PgConnectOptions,
}

/// Creates a fresh database on the server at `DATABASE_URL`, applying `schema` if given.
///
/// Returns `None` after printing a `SKIPPED` line when the server is unreachable
/// (or panics when `SDB_REQUIRE_SERVICES=1`). A schema that fails to apply is
/// always a panic: that is a bug, not a missing service.
pub async fn postgres(schema: Option<&Path>) -> Option<TestDb> {
    postgres_at(&database_url(), schema, services_required()).await
}

/// Like [`postgres`], with the server URL and the skip rule given explicitly.
pub async fn postgres_at(admin_url: &str, schema: Option<&Path>, required: bool) -> Option<TestDb> {
    match create(admin_url, schema).await {
        Ok(db) => Some(db),
        Err(CreateError::Unreachable(why)) => {
            unavailable("PostgreSQL", admin_url, &why, required);
            None
        }
        Err(CreateError::Failed(why)) => panic!("{why}"),
    }
}

/// Why [`create`] made no database: a missing service, or anything else (a bug).
enum CreateError {
    Unreachable(String),
    Failed(String),
}

/// Creates a fresh database on the server at `admin_url` and applies `schema`;
/// a database created before a later step fails is dropped with its [`TestDb`].
async fn create(admin_url: &str, schema: Option<&Path>) -> Result<TestDb, CreateError> {
    let admin: PgConnectOptions = admin_url.parse().map_err(|e| {
        CreateError::Failed(format!(
            "DATABASE_URL {admin_url:?} is not a PostgreSQL URL: {e}"
        ))
    })?;
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, admin.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(CreateError::Unreachable(e.to_string())),
        Err(_) => {
            return Err(CreateError::Unreachable("connection timed out".to_string()));
        }
    };
    let name = unique_name("sdb_test");
    if let Err(e) = conn
        .execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .await
    {
        return Err(CreateError::Failed(format!(
            "creating test database {name}: {e}"
        )));
    }
    let _ = conn.close().await;

    let db_opts = admin.clone().database(&name);
    let url = with_database(admin_url, &name);
    let pool = match PgPoolOptions::new()
        .max_connections(DEFAULT_POOL_SIZE)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(db_opts.clone())
        .await
    {
        Ok(p) => p,
        Err(e) => {
            // Nothing holds the new database yet: drop it through a TestDb
            // around a pool that never connects.
            drop(TestDb {
                pool: PgPoolOptions::new().connect_lazy_with(db_opts),
                url,
                name: name.clone(),
                admin,
            });
            return Err(CreateError::Failed(format!(
                "connecting to fresh test database {name}: {e}"
            )));
        }
    };
    let db = TestDb {
        pool,
        url,
        name,
        admin,
    };
    if let Some(schema) = schema
        && let Err(e) = db.apply_sql_file(schema).await
    {
        return Err(CreateError::Failed(format!(
            "applying {} to fresh database {}: {e}",
            schema.display(),
            db.name
        )));
    }
    Ok(db)
}

/// Why [`blocking_fresh_db`] could not run its closure; the message names the server and the schema.
#[derive(Debug)]
pub struct FreshDbError(String);

impl std::fmt::Display for FreshDbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FreshDbError {}

/// Runs `f` on a fresh database with `schema` applied, on a thread and runtime of its own (so callers may be inside a runtime), and always drops the database.
pub fn blocking_fresh_db<T, E, F>(admin_url: &str, schema: &Path, f: F) -> Result<T, E>
where
    F: AsyncFnOnce(&TestDb) -> Result<T, E> + Send,
    T: Send,
    E: From<FreshDbError> + Send,
{
    let context = |why: &dyn std::fmt::Display| {
        FreshDbError(format!(
            "a fresh database on {} with {}: {why}",
            redact(admin_url),
            schema.display()
        ))
    };
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| -> Result<T, E> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| context(&format!("building a tokio runtime: {e}")))?;
            rt.block_on(async {
                let db = match create(admin_url, Some(schema)).await {
                    Ok(db) => db,
                    Err(CreateError::Unreachable(why)) => {
                        return Err(context(&format!("PostgreSQL is unreachable: {why}")).into());
                    }
                    Err(CreateError::Failed(why)) => return Err(context(&why).into()),
                };
                // `db` is dropped (and with it the database) when `f` returns or panics.
                f(&db).await
            })
        });
        worker.join().unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            Err(context(&format!(
                "the closure panicked (the database was dropped): {why}"
            ))
            .into())
        })
    })
}

/// A blocking probe for code outside an async runtime (the generators):
/// the admin URL when the server answers, `None` after a `SKIPPED` line otherwise.
pub fn postgres_available_blocking() -> Option<String> {
    let url = database_url();
    let required = services_required();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("building a tokio runtime: {e}"),
    };
    rt.block_on(async {
        let opts: PgConnectOptions = url.parse().ok()?;
        match tokio::time::timeout(CONNECT_TIMEOUT, opts.connect()).await {
            Ok(Ok(c)) => {
                let _ = c.close().await;
                Some(url.clone())
            }
            Ok(Err(e)) => {
                unavailable("PostgreSQL", &url, &e, required);
                None
            }
            Err(_) => {
                unavailable("PostgreSQL", &url, &"connection timed out", required);
                None
            }
        }
    })
}

impl TestDb {
    /// The name of the database, unique to this test.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Applies a file of SQL statements (several per file are fine) to this database.
    pub async fn apply_sql_file(&self, path: &Path) -> Result<(), sqlx::Error> {
        let sql = std::fs::read_to_string(path).map_err(sqlx::Error::Io)?;
        self.apply_sql(&sql).await
    }

    /// Applies a string of SQL statements to this database.
    pub async fn apply_sql(&self, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// A new pool of up to `max` connections to this database, for concurrency tests.
    ///
    /// Keep `max` modest (32 or less): the server's 100 connections are shared
    /// with every other test binary that runs at the same time.
    pub async fn pool_with(&self, max: u32) -> PgPool {
        match PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(self.admin.clone().database(&self.name))
            .await
        {
            Ok(p) => p,
            Err(e) => panic!("connecting a pool of {max} to {}: {e}", self.name),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Dropping runs inside the test's runtime, which may be single-threaded
        // and is about to stop; a separate thread with its own runtime does the
        // cleanup, and we wait for it so no database outlives the test process.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let pool = self.pool.clone();
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                drop(pool);
                if let Ok(mut conn) = admin.connect().await {
                    let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                    let _ = conn.execute(AssertSqlSafe(sql)).await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    match url::Url::parse(base) {
        Ok(mut u) => {
            u.set_path(&format!("/{name}"));
            u.to_string()
        }
        Err(_) => base.to_string(),
    }
}
