//! The statements on PostgreSQL, run on the caller's connection.
//!
//! Each function takes a `&mut PgConnection`, which may be a transaction:
//! a chapter claims the key, does its work and stores the answer in one
//! transaction where it can, so the answer and the work commit together
//! or not at all. Every time a statement compares is the database's own
//! (`clock_timestamp()`, not `now()`, which is frozen at the start of a
//! transaction that may have waited on a lock for a while).

use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::{
    ClaimError, Claimed, Decision, FinalAnswer, Fingerprint, FinishError, KeyScope, KeyStore, Lock,
    PURGE_BATCH, PURGE_BUDGET, Purged, decide,
};

/// The block's table, as the block declares it (`sql/keys.sql`).
pub const TABLE_SQL: &str = include_str!("../sql/keys.sql");

// ANCHOR: claim_sql
/// Inserts a new key with a lease. A concurrent insert of the same scope
/// waits here for the other transaction, then does nothing if it committed.
/// The conflict is the UNIQUE scope constraint's (no target is named, so a
/// schema without it shows the double work instead of an error).
pub const INSERT_SQL: &str = "\
INSERT INTO idempotency_keys (account_id, endpoint, key, fingerprint, locked_until)
VALUES ($1, $2, $3, $4, clock_timestamp() + $5 * interval '1 millisecond')
ON CONFLICT DO NOTHING
RETURNING id, generation";

/// Reads an existing key, locked, with whether its lease still runs.
pub const EXISTING_SQL: &str = "\
SELECT id, fingerprint, recovery_point, response_status, response_body,
       locked_until > clock_timestamp() AS held
FROM idempotency_keys
WHERE account_id = $1 AND endpoint = $2 AND key = $3
FOR UPDATE";

/// Takes an expired key over: the generation goes up, so the earlier
/// holder's writes (which name the old generation) change nothing.
pub const TAKE_OVER_SQL: &str = "\
UPDATE idempotency_keys
SET generation = generation + 1,
    locked_until = clock_timestamp() + $2 * interval '1 millisecond'
WHERE id = $1
RETURNING generation";
// ANCHOR_END: claim_sql

// ANCHOR: finish_sql
/// Stores the final answer, only for the holder of the current generation.
pub const FINISH_SQL: &str = "\
UPDATE idempotency_keys
SET recovery_point = 'finished', response_status = $3, response_body = $4,
    finished_at = clock_timestamp(), locked_until = NULL
WHERE id = $1 AND generation = $2 AND finished_at IS NULL";

/// Records how far the work got, only for the current holder.
pub const ADVANCE_SQL: &str = "\
UPDATE idempotency_keys SET recovery_point = $3
WHERE id = $1 AND generation = $2 AND finished_at IS NULL";

/// Ends the lease early, only for the current holder.
pub const RELEASE_SQL: &str = "\
UPDATE idempotency_keys SET locked_until = NULL
WHERE id = $1 AND generation = $2 AND finished_at IS NULL";
// ANCHOR_END: finish_sql

// ANCHOR: purge_sql
/// Deletes one batch of finished keys older than the retention (through the
/// partial index on `finished_at`).
pub const PURGE_SQL: &str = "\
DELETE FROM idempotency_keys
WHERE id IN (
    SELECT id FROM idempotency_keys
    WHERE finished_at IS NOT NULL
      AND finished_at < clock_timestamp() - $1 * interval '1 millisecond'
    LIMIT $2)";

/// Counts the unfinished keys as old as the retention, once per purge
/// (through the partial index on `created_at`): those are work to recover,
/// never garbage (a retry must find its key, or it does the work twice).
pub const UNFINISHED_SQL: &str = "\
SELECT count(*) FROM idempotency_keys
WHERE finished_at IS NULL
  AND created_at < clock_timestamp() - $1 * interval '1 millisecond'";
// ANCHOR_END: purge_sql

/// The stored answer of a key, read only.
pub const ANSWER_SQL: &str = "\
SELECT fingerprint, response_status, response_body FROM idempotency_keys
WHERE account_id = $1 AND endpoint = $2 AND key = $3";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn answer(row: &PgRow) -> Result<Option<FinalAnswer>, ClaimError> {
    let status: Option<i16> = row.try_get("response_status")?;
    let Some(status) = status else {
        return Ok(None);
    };
    let body: Option<serde_json::Value> = row.try_get("response_body")?;
    Ok(Some(FinalAnswer {
        status: u16::try_from(status).map_err(|e| ClaimError::Corrupt(e.to_string()))?,
        body: body.unwrap_or(serde_json::Value::Null),
    }))
}

// ANCHOR: claim
/// Claims `scope` on `conn` (a transaction, usually the caller's own).
///
/// A new key is inserted with a lease of `lease`. An existing one is
/// replayed, refused, or taken over by [`decide`]; the row is locked
/// (`FOR UPDATE`) until the caller's transaction ends.
pub async fn claim(
    conn: &mut PgConnection,
    scope: &KeyScope,
    fingerprint: &Fingerprint,
    lease: Duration,
) -> Result<Claimed, ClaimError> {
    // Twice at most: the row may be purged between the INSERT that found it
    // and the SELECT that reads it, and then the next INSERT wins.
    for _ in 0..2 {
        let inserted = sqlx::query(INSERT_SQL)
            .bind(&scope.account)
            .bind(scope.endpoint)
            .bind(scope.key.as_str())
            .bind(fingerprint.as_str())
            .bind(millis(lease))
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = inserted {
            return Ok(Claimed::New(Lock {
                id: row.try_get("id")?,
                generation: row.try_get("generation")?,
            }));
        }
        let Some(row) = sqlx::query(EXISTING_SQL)
            .bind(&scope.account)
            .bind(scope.endpoint)
            .bind(scope.key.as_str())
            .fetch_optional(&mut *conn)
            .await?
        else {
            continue;
        };
        let stored: String = row.try_get("fingerprint")?;
        let finished = answer(&row)?;
        let held: Option<bool> = row.try_get("held")?;
        match decide(
            &stored,
            fingerprint,
            finished.is_some(),
            held.unwrap_or(false),
        )? {
            Decision::Replay => {
                return finished
                    .map(Claimed::Replay)
                    .ok_or_else(|| ClaimError::Corrupt("finished without an answer".into()));
            }
            Decision::TakeOver => {
                let id: i64 = row.try_get("id")?;
                let generation: i64 = sqlx::query_scalar(TAKE_OVER_SQL)
                    .bind(id)
                    .bind(millis(lease))
                    .fetch_one(&mut *conn)
                    .await?;
                return Ok(Claimed::TakenOver {
                    lock: Lock { id, generation },
                    recovery_point: row.try_get("recovery_point")?,
                });
            }
        }
    }
    Err(ClaimError::KeyInUse)
}
// ANCHOR_END: claim

// ANCHOR: finish
/// Stores `answer` as the key's final answer, in the caller's transaction.
///
/// [`FinishError::Fenced`] when another request took the key over: the
/// caller must then roll back, so its work does not commit either.
pub async fn finish(
    conn: &mut PgConnection,
    lock: Lock,
    answer: &FinalAnswer,
) -> Result<(), FinishError> {
    let status = i16::try_from(answer.status).unwrap_or(500);
    let done = sqlx::query(FINISH_SQL)
        .bind(lock.id)
        .bind(lock.generation)
        .bind(status)
        .bind(&answer.body)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(FinishError::Fenced)
    }
}
// ANCHOR_END: finish

/// Records a recovery point, in the caller's transaction; fenced like [`finish`].
pub async fn advance(conn: &mut PgConnection, lock: Lock, point: &str) -> Result<(), FinishError> {
    fenced(
        sqlx::query(ADVANCE_SQL)
            .bind(lock.id)
            .bind(lock.generation)
            .bind(point),
        conn,
    )
    .await
}

/// Ends the lease now, so a retry need not wait for it; fenced like [`finish`].
pub async fn release(conn: &mut PgConnection, lock: Lock) -> Result<(), FinishError> {
    fenced(
        sqlx::query(RELEASE_SQL).bind(lock.id).bind(lock.generation),
        conn,
    )
    .await
}

async fn fenced(
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    conn: &mut PgConnection,
) -> Result<(), FinishError> {
    match query.execute(conn).await?.rows_affected() {
        1 => Ok(()),
        _ => Err(FinishError::Fenced),
    }
}

/// Deletes every finished key older than `retention`, [`PURGE_BATCH`] at a
/// time, for at most [`PURGE_BUDGET`]: [`purge_with`] with the defaults.
pub async fn purge(conn: &mut PgConnection, retention: Duration) -> Result<Purged, ClaimError> {
    purge_with(conn, retention, PURGE_BATCH, PURGE_BUDGET).await
}

// ANCHOR: purge
/// Deletes finished keys older than `retention`, `batch` per statement,
/// until a batch comes back short or `budget` is spent (then
/// [`Purged::more_left`]); then counts the unfinished keys, once. Run it on
/// a connection outside a transaction, so that each batch commits, and
/// releases its locks, on its own.
pub async fn purge_with(
    conn: &mut PgConnection,
    retention: Duration,
    batch: i64,
    budget: Duration,
) -> Result<Purged, ClaimError> {
    // LIMIT 0 would delete nothing, for ever: the smallest batch is one key.
    let batch = batch.max(1);
    let started = std::time::Instant::now();
    let mut purged = Purged::default();
    loop {
        let deleted = sqlx::query(PURGE_SQL)
            .bind(millis(retention))
            .bind(batch)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        purged.deleted += deleted;
        if deleted < batch.unsigned_abs() {
            break; // a short batch: nothing expired is left
        }
        if started.elapsed() >= budget {
            purged.more_left = true;
            break;
        }
    }
    let unfinished: i64 = sqlx::query_scalar(UNFINISHED_SQL)
        .bind(millis(retention))
        .fetch_one(&mut *conn)
        .await?;
    purged.unfinished_kept = u64::try_from(unfinished).unwrap_or(0);
    Ok(purged)
}
// ANCHOR_END: purge

/// The final answer of `scope`, without claiming anything: `None` when the
/// key is new or unfinished, [`ClaimError::KeyReused`] on another request.
pub async fn final_answer(
    conn: &mut PgConnection,
    scope: &KeyScope,
    fingerprint: &Fingerprint,
) -> Result<Option<FinalAnswer>, ClaimError> {
    let Some(row) = sqlx::query(ANSWER_SQL)
        .bind(&scope.account)
        .bind(scope.endpoint)
        .bind(scope.key.as_str())
        .fetch_optional(conn)
        .await?
    else {
        return Ok(None);
    };
    let stored: String = row.try_get("fingerprint")?;
    if stored != fingerprint.as_str() {
        return Err(ClaimError::KeyReused);
    }
    answer(&row)
}

/// The columns (name, type) the block's statements use, as `information_schema` names them.
pub const COLUMNS: &[(&str, &str)] = &[
    ("id", "bigint"),
    ("account_id", "text"),
    ("endpoint", "text"),
    ("key", "text"),
    ("fingerprint", "text"),
    ("created_at", "timestamp with time zone"),
    ("generation", "bigint"),
    ("locked_until", "timestamp with time zone"),
    ("recovery_point", "text"),
    ("response_status", "smallint"),
    ("response_body", "jsonb"),
    ("finished_at", "timestamp with time zone"),
];

/// What a chapter's own `idempotency_keys` lacks of the block's columns
/// (missing or of another type), and whether the scope constraint exists.
pub async fn missing_columns(conn: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_name = 'idempotency_keys' AND table_schema = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut missing: Vec<String> = COLUMNS
        .iter()
        .filter(|(name, ty)| !rows.iter().any(|(n, t)| n == name && t == ty))
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect();
    let scope: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint
         WHERE conname = 'idempotency_keys_scope' AND contype = 'u')",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !scope {
        missing.push("constraint idempotency_keys_scope".into());
    }
    Ok(missing)
}

/// The block's statements over a pool, each call in its own transaction.
#[derive(Clone)]
pub struct PgKeys {
    pool: PgPool,
}

impl PgKeys {
    /// Keys in the `idempotency_keys` table reachable through `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl KeyStore for PgKeys {
    async fn claim(
        &self,
        scope: &KeyScope,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Claimed, ClaimError> {
        let mut tx = self.pool.begin().await?;
        let claimed = claim(&mut tx, scope, fingerprint, lease).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn finish(&self, lock: Lock, answer: &FinalAnswer) -> Result<(), FinishError> {
        let mut conn = self.pool.acquire().await?;
        finish(&mut conn, lock, answer).await
    }

    async fn release(&self, lock: Lock) -> Result<(), FinishError> {
        let mut conn = self.pool.acquire().await?;
        release(&mut conn, lock).await
    }

    async fn purge(&self, retention: Duration) -> Result<Purged, ClaimError> {
        let mut conn = self.pool.acquire().await?;
        purge(&mut conn, retention).await
    }
}
