//! The consumer side's inbox on real PostgreSQL: deliveries of one message
//! racing in several transactions apply its effect once.

mod common;

use std::sync::Arc;

use block_outbox::first_delivery;
use common::*;
use uuid::Uuid;

/// Concurrent deliveries of one message.
const DELIVERIES: usize = 8;

/// Delivers `message` `DELIVERIES` times at once; each delivery applies the
/// effect (a row in `effects`) in the transaction that records the inbox row.
async fn racing_deliveries(db: &testkit::TestDb) -> i64 {
    ok(
        "effects table",
        db.apply_sql("CREATE TABLE effects (message_id uuid NOT NULL)")
            .await,
    );
    let pool = db.pool_with(DELIVERIES as u32).await;
    let message = Uuid::new_v4();
    let start = Arc::new(tokio::sync::Barrier::new(DELIVERIES));
    let tasks: Vec<_> = (0..DELIVERIES)
        .map(|_| {
            let (pool, start) = (pool.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                let mut tx = ok("begin", pool.begin().await);
                start.wait().await;
                if ok(
                    "inbox",
                    first_delivery(&mut tx, "projection", message).await,
                ) {
                    ok(
                        "effect",
                        sqlx::query("INSERT INTO effects VALUES ($1)")
                            .bind(message)
                            .execute(&mut *tx)
                            .await,
                    );
                }
                ok("commit", tx.commit().await);
            })
        })
        .collect();
    for t in tasks {
        ok("delivery", t.await);
    }
    ok(
        "effects",
        sqlx::query_scalar("SELECT count(*) FROM effects")
            .fetch_one(&db.pool)
            .await,
    )
}

// ANCHOR: inbox_tests
/// Eight deliveries of one message race, each in its own transaction: the
/// effect is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deliveries_of_one_message_apply_it_once() {
    let Some(db) = db().await else { return };
    assert_eq!(racing_deliveries(&db).await, 1);
}

/// The same race with the inbox's UNIQUE constraint dropped: the effect is
/// applied by every delivery. The constraint is the guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_inbox_constraint_racing_deliveries_apply_it_again() {
    let Some(db) = db().await else { return };
    ok(
        "drop the guard",
        db.apply_sql("ALTER TABLE inbox DROP CONSTRAINT inbox_once")
            .await,
    );
    assert_eq!(racing_deliveries(&db).await, DELIVERIES as i64);
}
// ANCHOR_END: inbox_tests
