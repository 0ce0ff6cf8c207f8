//! Load phases that end at their deadline, whatever the path they measure.
//!
//! A phase stops sending at its deadline, and it also stops *waiting*: a
//! request still in flight then (a reserve sitting out a deadlock, a retry
//! pausing between attempts) is abandoned by [`by`] and counted as cut off,
//! never hidden. So a phase lasts its deadline plus the time to clean up,
//! however slow the path. Abandoning the future only frees the client; the
//! database may still be running the statement, so [`quiesce`] ends the
//! abandoned transactions before the audit that follows reads the tables.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

/// How long [`quiesce`] waits for each ended session to exit.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// `work`, unless `deadline` passes first: then `None`, and `work` is dropped.
pub async fn by<F: Future>(deadline: Instant, work: F) -> Option<F::Output> {
    tokio::time::timeout_at(deadline.into(), work).await.ok()
}

/// Ends every session of `pool`'s database that is running a statement or
/// holds a transaction open, other than this one, and waits until they have
/// exited (their transactions rolled back); returns how many it ended.
///
/// Idle sessions (the pool's spare connections) are left alone. Meant for a
/// throwaway database after a phase cut requests off: anything else busy in
/// it would be ended too. It runs on a connection of its own, because every
/// connection of the pool may belong to an abandoned request.
pub async fn quiesce(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, $1))
         FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND backend_type = 'client backend' AND state <> 'idle'",
    )
    .bind(i64::try_from(EXIT_WAIT.as_millis()).unwrap_or(i64::MAX))
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(u64::try_from(ended).unwrap_or(0))
}
