//! The write side on real PostgreSQL: a message commits with its caller's
//! transaction or not at all, and bad input is refused with a named error.

mod common;

use block_outbox::{EnqueueError, InvalidMessage, NewMessage, enqueue};
use common::*;

async fn rows(pool: &sqlx::PgPool) -> i64 {
    ok(
        "count",
        sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(pool)
            .await,
    )
}

// ANCHOR: commits_with
/// A message enqueued in a transaction that commits is in the outbox; one
/// enqueued in a transaction that rolls back is not: no dual write.
#[tokio::test]
async fn a_message_exists_exactly_when_its_transaction_committed() {
    let Some(db) = db().await else { return };
    let payload = serde_json::json!({ "n": 1 });
    let mut tx = ok("begin", db.pool.begin().await);
    ok(
        "enqueue",
        enqueue(&mut tx, &NewMessage::new("thing", "a1", "made", &payload)).await,
    );
    ok("rollback", tx.rollback().await);
    assert_eq!(rows(&db.pool).await, 0, "a rolled-back message stayed");

    let mut tx = ok("begin", db.pool.begin().await);
    let m = NewMessage::new("thing", "a1", "made", &payload);
    ok("enqueue", enqueue(&mut tx, &m).await);
    ok("commit", tx.commit().await);
    let stored: (uuid::Uuid, String) = ok(
        "read back",
        sqlx::query_as("SELECT message_id, payload::text FROM outbox")
            .fetch_one(&db.pool)
            .await,
    );
    assert_eq!(stored.0, m.message_id);
    assert_eq!(
        ok("json", serde_json::from_str::<serde_json::Value>(&stored.1)),
        payload
    );
}
// ANCHOR_END: commits_with

/// A name the broker could not carry is refused before any SQL runs: the
/// caller's transaction stays usable and nothing is written.
#[tokio::test]
async fn a_bad_name_is_refused_and_changes_nothing() {
    let Some(db) = db().await else { return };
    let payload = serde_json::json!({});
    let mut tx = ok("begin", db.pool.begin().await);
    let refused = enqueue(&mut tx, &NewMessage::new("thing", "a..b", "made", &payload)).await;
    assert!(
        matches!(
            refused,
            Err(EnqueueError::Invalid(InvalidMessage::AggregateId(_)))
        ),
        "{refused:?}"
    );
    // The transaction was not aborted: the caller can go on and commit.
    ok(
        "enqueue after the refusal",
        enqueue(&mut tx, &NewMessage::new("thing", "a1", "made", &payload)).await,
    );
    ok("commit", tx.commit().await);
    assert_eq!(rows(&db.pool).await, 1);
}

/// The same message id twice is a named error, and the rollback the caller
/// must then do leaves the first message alone.
#[tokio::test]
async fn a_repeated_message_id_is_a_named_error() {
    let Some(db) = db().await else { return };
    let payload = serde_json::json!({});
    let m = NewMessage::new("thing", "a1", "made", &payload);
    let mut tx = ok("begin", db.pool.begin().await);
    ok("enqueue", enqueue(&mut tx, &m).await);
    ok("commit", tx.commit().await);
    let mut tx = ok("begin", db.pool.begin().await);
    let again = enqueue(&mut tx, &m).await;
    assert!(
        matches!(again, Err(EnqueueError::Duplicate(id)) if id == m.message_id),
        "{again:?}"
    );
    ok("rollback", tx.rollback().await);
    assert_eq!(rows(&db.pool).await, 1);
}

// ANCHOR: purge_test
/// Old published rows are purged; an unpublished row older still is kept.
#[tokio::test]
async fn a_purge_never_deletes_an_unpublished_message() {
    let Some(db) = db().await else { return };
    for v in 1..=3 {
        enqueue_one(&db.pool, "a1", v).await;
    }
    ok(
        "age the rows, publish two",
        db.apply_sql(
            "UPDATE outbox SET created_at = now() - interval '2 days';
             UPDATE outbox SET published_at = now() - interval '1 day'
              WHERE aggregate_version <= 2",
        )
        .await,
    );
    let purged = ok(
        "purge",
        block_outbox::purge_published(&db.pool, std::time::Duration::from_secs(60), 100).await,
    );
    assert_eq!(purged, 2);
    assert_eq!(rows(&db.pool).await, 1);
    assert_eq!(
        unpublished(&db.pool).await,
        1,
        "the unpublished row was purged"
    );
}
// ANCHOR_END: purge_test
