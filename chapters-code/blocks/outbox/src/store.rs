//! The outbox's SQL, the enqueue that runs in the caller's transaction, and
//! the consumer's inbox.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::message::{InvalidMessage, NewMessage};

/// `sql/outbox.sql`: the outbox, its wake-up trigger and the inbox. A
/// chapter applies it beside its own schema.
pub const SCHEMA_SQL: &str = include_str!("../sql/outbox.sql");

/// Why [`enqueue`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// A name would not make a valid subject; refused before any SQL ran.
    #[error(transparent)]
    Invalid(#[from] InvalidMessage),
    /// The message id, or the aggregate's version, is in the outbox already.
    /// The caller's transaction is aborted: roll it back.
    #[error("the outbox already holds message {0} or its aggregate version")]
    Duplicate(Uuid),
    /// The database failed; the caller's transaction should be rolled back.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

// ANCHOR: enqueue
/// Inserts `message` into the outbox on `conn`, which is the caller's
/// transaction (`&mut *tx`): the message commits with the business change
/// or vanishes with it. Returns the row's id.
pub async fn enqueue(
    conn: &mut PgConnection,
    message: &NewMessage<'_>,
) -> Result<i64, EnqueueError> {
    message.check()?;
    let inserted = sqlx::query_scalar(
        "INSERT INTO outbox (message_id, aggregate_type, aggregate_id, aggregate_version,
                             event_type, payload)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id",
    )
    .bind(message.message_id)
    .bind(message.aggregate_type)
    .bind(message.aggregate_id)
    .bind(message.aggregate_version)
    .bind(message.event_type)
    .bind(message.payload)
    .fetch_one(conn)
    .await;
    match inserted {
        Ok(id) => Ok(id),
        Err(e) if is_unique_violation(&e) => Err(EnqueueError::Duplicate(message.message_id)),
        Err(e) => Err(e.into()),
    }
}
// ANCHOR_END: enqueue

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23505")
}

// ANCHOR: first_delivery
/// The inbox: records that `consumer` received `message_id`, on `conn`,
/// which is the transaction that applies the message's effect. True the
/// first time; false for a redelivery or a re-publish, whose effect the
/// caller then skips. The UNIQUE constraint decides, so two deliveries of
/// one message racing in two transactions cannot both see true: the second
/// waits for the first to commit and then finds the row.
pub async fn first_delivery(
    conn: &mut PgConnection,
    consumer: &str,
    message_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}
// ANCHOR_END: first_delivery

// ANCHOR: purge
/// Deletes at most `limit` rows that were published more than `older_than`
/// ago, oldest first; returns how many. An unpublished row is never
/// deleted, however old: it is work the relay has not done yet.
pub async fn purge_published(
    pool: &sqlx::PgPool,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(
        "DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox
              WHERE published_at < clock_timestamp() - make_interval(secs => $1)
              ORDER BY id LIMIT $2)",
    )
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}
// ANCHOR_END: purge
