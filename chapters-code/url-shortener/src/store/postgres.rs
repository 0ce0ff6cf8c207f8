//! The PostgreSQL adapter.
//!
//! Queries are plain SQL constants, each run as a prepared statement
//! (sqlx caches them per connection). The schema they rely on is
//! `sql/schema.sql`, embedded as [`SCHEMA`].

use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{DailyClicks, DayCount, DeleteOutcome, LinkStore, StoreError};
use crate::codegen::{BlockAllocator, BoxFuture, CodegenError};
use crate::domain::{Code, Link, NewLink, TargetUrl, TokenHash};

/// The schema, applied by [`PgStore::migrate`] and by the tests.
pub const SCHEMA: &str = include_str!("../../sql/schema.sql");

// ANCHOR: statement_timeout
/// Server-side cap on any statement, a backstop behind the service's own
/// per-call timeout: a query the service gave up on must not keep running.
const STATEMENT_TIMEOUT: &str = "2s";
// ANCHOR_END: statement_timeout

/// A link store on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Wraps an existing pool (the schema must already be applied).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Connects a pool of up to `max_connections` to `url`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = pool_options(max_connections)
            .connect_with(connect_options(url)?)
            .await
            .map_err(db_error)?;
        Ok(Self { pool })
    }

    /// A pool that connects on first use: the service starts even when the
    /// database is down, and answers 503 until it is back.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Ok(Self {
            pool: pool_options(max_connections).connect_lazy_with(connect_options(url)?),
        })
    }

    /// Applies [`SCHEMA`]. Safe to run at every start and from several
    /// processes at once: the advisory lock serialises them, and the whole
    /// string runs as one implicit transaction.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let sql = format!("SELECT pg_advisory_xact_lock(7426001);\n{SCHEMA}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    /// The pool, for callers that run their own queries (benchmarks, tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The ticket-server allocator for the id space `name`, on this database.
    pub fn allocator(&self, name: &str) -> PgBlockAllocator {
        PgBlockAllocator {
            pool: self.pool.clone(),
            name: name.to_string(),
        }
    }
}

fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url)
        .map(|o| {
            o.options([("statement_timeout", STATEMENT_TIMEOUT)])
                .application_name("url-shortener")
        })
        .map_err(|e| StoreError::Backend(format!("bad database URL: {e}")))
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        // Waiting longer for a connection than a caller waits for an answer is pointless.
        .acquire_timeout(Duration::from_secs(2))
}

// ANCHOR: insert_link
/// `RETURNING` gives back the timestamps as stored (PostgreSQL keeps
/// microseconds, chrono has nanoseconds), so the returned link equals a later `get`.
const INSERT_LINK: &str = "
    INSERT INTO links (code, target, created_at, expires_at, token_hash)
    VALUES ($1, $2, $3, $4, $5)
    RETURNING created_at, expires_at";
// ANCHOR_END: insert_link

// ANCHOR: get_link
/// The redirect lookup: one index scan on `links_code_key`.
pub const GET_LINK: &str = "
    SELECT code, target, created_at, expires_at, deleted_at, token_hash
    FROM links
    WHERE code = $1";
// ANCHOR_END: get_link

// ANCHOR: delete_link
/// Only the holder of the token deletes: the hash is part of the `WHERE`.
/// `deleted_at IS NULL`, re-checked on the locked row, makes concurrent
/// deletes report one `Deleted` and otherwise `AlreadyDeleted`. `owner` is
/// NULL for an unknown code and false for a wrong token.
const DELETE_LINK: &str = "
    WITH marked AS (
        UPDATE links SET deleted_at = $2
        WHERE code = $1 AND token_hash = $3 AND deleted_at IS NULL
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM marked) AS marked,
           (SELECT token_hash = $3 FROM links WHERE code = $1) AS owner";
// ANCHOR_END: delete_link

// ANCHOR: add_clicks
/// One statement per batch: the arrays are unnested into rows, joined to
/// `links` for the id, and added to the day's counter. `ORDER BY` makes
/// every flusher lock counter rows in the same order, so two nodes flushing
/// overlapping batches wait for each other instead of deadlocking.
const ADD_CLICKS: &str = "
    INSERT INTO link_clicks_daily (link_id, day, count)
    SELECT l.id, c.day, c.count
    FROM UNNEST($1::text[], $2::date[], $3::bigint[]) AS c (code, day, count)
    JOIN links l ON l.code = c.code
    ORDER BY l.id, c.day
    ON CONFLICT (link_id, day)
    DO UPDATE SET count = link_clicks_daily.count + EXCLUDED.count";
// ANCHOR_END: add_clicks

// ANCHOR: daily_clicks
/// Stats: the link by its unique index, then its counters by the primary key.
pub const DAILY_CLICKS: &str = "
    SELECT d.day, d.count
    FROM links l
    JOIN link_clicks_daily d ON d.link_id = l.id
    WHERE l.code = $1
    ORDER BY d.day";
// ANCHOR_END: daily_clicks

#[derive(sqlx::FromRow)]
struct LinkRow {
    code: String,
    target: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
    token_hash: Vec<u8>,
}

impl TryFrom<LinkRow> for Link {
    type Error = StoreError;

    fn try_from(row: LinkRow) -> Result<Self, StoreError> {
        // The CHECK constraints make these failures impossible unless someone
        // edited the table by hand; report them instead of panicking.
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Backend(format!("stored {what} is invalid: {e}"))
        };
        Ok(Link {
            code: Code::parse(&row.code).map_err(|e| corrupt("code", &e))?,
            target: TargetUrl::from_stored(&row.target).map_err(|e| corrupt("target", &e))?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            deleted_at: row.deleted_at,
            token_hash: TokenHash::from_slice(&row.token_hash)
                .ok_or_else(|| corrupt("token hash", &"not 32 bytes"))?,
        })
    }
}

impl LinkStore for PgStore {
    // ANCHOR: pg_insert
    async fn insert(&self, link: NewLink) -> Result<Link, StoreError> {
        let result: Result<(DateTime<Utc>, Option<DateTime<Utc>>), _> = sqlx::query_as(INSERT_LINK)
            .bind(link.code.as_str())
            .bind(link.target.as_str())
            .bind(link.created_at)
            .bind(link.expires_at.map(|e| e.instant()))
            .bind(link.token_hash.as_bytes().as_slice())
            .fetch_one(&self.pool)
            .await;
        match result {
            Ok((created_at, expires_at)) => Ok(Link {
                created_at,
                expires_at,
                ..link.into_link()
            }),
            // The unique index is the arbiter: of two concurrent inserts of
            // one code, the second waits for the first to commit, then fails here.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::CodeTaken),
            Err(e) => Err(db_error(e)),
        }
    }
    // ANCHOR_END: pg_insert

    async fn get(&self, code: &Code) -> Result<Option<Link>, StoreError> {
        let row: Option<LinkRow> = sqlx::query_as(GET_LINK)
            .bind(code.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(Link::try_from).transpose()
    }

    async fn delete(
        &self,
        code: &Code,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        let (marked, owner): (bool, Option<bool>) = sqlx::query_as(DELETE_LINK)
            .bind(code.as_str())
            .bind(at)
            .bind(token.as_bytes().as_slice())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(match (marked, owner) {
            (true, _) => DeleteOutcome::Deleted,
            (false, Some(true)) => DeleteOutcome::AlreadyDeleted,
            (false, Some(false)) => DeleteOutcome::WrongToken,
            (false, None) => DeleteOutcome::NotFound,
        })
    }

    async fn add_clicks(&self, batch: &[DailyClicks]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let codes: Vec<&str> = batch.iter().map(|c| c.code.as_str()).collect();
        let days: Vec<NaiveDate> = batch.iter().map(|c| c.day).collect();
        let counts: Vec<i64> = batch
            .iter()
            .map(|c| i64::try_from(c.count).unwrap_or(i64::MAX))
            .collect();
        sqlx::query(ADD_CLICKS)
            .bind(codes)
            .bind(days)
            .bind(counts)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    async fn daily_clicks(&self, code: &Code) -> Result<Vec<DayCount>, StoreError> {
        let rows: Vec<(NaiveDate, i64)> = sqlx::query_as(DAILY_CLICKS)
            .bind(code.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(day, count)| DayCount {
                day,
                count: u64::try_from(count).unwrap_or(0),
            })
            .collect())
    }
}

// ANCHOR: pg_allocator
/// The ticket server on PostgreSQL: leases blocks from the `id_blocks` table.
#[derive(Clone, Debug)]
pub struct PgBlockAllocator {
    pool: PgPool,
    name: String,
}

/// Moves the space's counter forward by `$2` and returns where the block
/// starts; the first lease of a space creates its row. One statement, so
/// one short row lock: concurrent leases queue for microseconds.
const LEASE_BLOCK: &str = "
    INSERT INTO id_blocks (name, next_id) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET next_id = id_blocks.next_id + EXCLUDED.next_id
    RETURNING next_id - $2";

impl BlockAllocator for PgBlockAllocator {
    fn lease(&self, size: u64) -> BoxFuture<'_, Result<Range<u64>, CodegenError>> {
        Box::pin(async move {
            let size_i64 = i64::try_from(size).map_err(|_| CodegenError::SpaceExhausted)?;
            let start: i64 = sqlx::query_scalar(LEASE_BLOCK)
                .bind(&self.name)
                .bind(size_i64)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| {
                    // The errors block's class: a bug is a 500, not a retry.
                    CodegenError::AllocatorUnavailable(
                        block_errors::classify_sqlx(&e),
                        e.to_string(),
                    )
                })?;
            let start = u64::try_from(start).map_err(|_| CodegenError::SpaceExhausted)?;
            Ok(start..start + size)
        })
    }
}
// ANCHOR_END: pg_allocator

// ANCHOR: db_error
/// Sorts sqlx errors by the classes of the errors block (`block_errors`): a
/// retryable failure (a timeout, a standby's read-only 25006, a deadlock,
/// a full pool) is "try again later" (503 with `Retry-After`); a final one
/// (a missing grant) a 503 without it; the rest a bug or a broken schema
/// (500). `tests/error_mapping.rs` provokes each on a real PostgreSQL.
pub fn db_error(e: sqlx::Error) -> StoreError {
    use block_errors::{Class, Transient};
    match block_errors::classify_sqlx(&e) {
        // statement_timeout stopped it: the same answer as our own timeout.
        Class::Retryable(Transient::Timeout) => StoreError::Timeout(STATEMENT_TIMEOUT_LIMIT),
        Class::Retryable(_) => StoreError::Unavailable(e.to_string()),
        // Until an operator acts (a missing grant): no wait helps.
        Class::Final => StoreError::Refused(e.to_string()),
        Class::Conflict(_) | Class::Bug => StoreError::Backend(e.to_string()),
    }
}

/// [`STATEMENT_TIMEOUT`] as a duration, for the error that reports it.
const STATEMENT_TIMEOUT_LIMIT: Duration = Duration::from_secs(2);
// ANCHOR_END: db_error

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_timeout_and_its_duration_agree() {
        assert_eq!(
            format!("{}s", STATEMENT_TIMEOUT_LIMIT.as_secs()),
            STATEMENT_TIMEOUT
        );
    }
}
