//! The behaviour suite on PostgreSQL, and what only PostgreSQL can show:
//! the answer commits in the same transaction as the work, or neither does.

mod suite;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use block_idempotency::{ClaimError, Claimed, FinishError, PgKeys, RETENTION, pg};
use suite::{CONCURRENT_CLIENTS, SHORT_LEASE, answer, print, scope};
use testkit::TestDb;
use tokio::sync::Barrier;

/// The block's own table, `sql/keys.sql`.
fn table() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/keys.sql")
}

/// A throwaway database with the key table and an `effects` table standing
/// for the work a request does, and a pool smaller than the clients.
async fn postgres() -> Option<(TestDb, PgKeys)> {
    let db = testkit::postgres(Some(&table())).await?;
    db.apply_sql("CREATE TABLE effects (id bigint GENERATED ALWAYS AS IDENTITY, by text NOT NULL)")
        .await
        .expect("effects table");
    let keys = PgKeys::new(db.pool_with(8).await);
    Some((db, keys))
}

suite!(postgres();
    one_key_many_concurrent_requests_run_once,
    a_takeover_fences_the_first_holder,
    a_purge_keeps_unfinished_keys,
    a_young_finished_key_is_not_purged,
    a_finished_key_replays_its_answer_and_refuses_another_request,
    a_held_key_is_in_use,
    keys_are_scoped_by_account_and_endpoint,
    a_released_key_is_taken_over_at_once,
);

async fn effects(keys: &PgKeys) -> Vec<String> {
    sqlx::query_scalar("SELECT by FROM effects ORDER BY id")
        .fetch_all(keys.pool())
        .await
        .expect("effects")
}

// ANCHOR: one_transaction
/// Claim, work and answer in one transaction, by many clients at once: the
/// others wait on the key's row, then replay; the work happened once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_work_and_answer_in_one_transaction_happen_once() {
    let Some((_db, keys)) = postgres().await else {
        return;
    };
    let keys = Arc::new(keys);
    let barrier = Arc::new(Barrier::new(CONCURRENT_CLIENTS));
    let mut tasks = Vec::new();
    for i in 0..CONCURRENT_CLIENTS {
        let (keys, barrier) = (Arc::clone(&keys), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut tx = keys.pool().begin().await.expect("begin");
            let k = scope("alice", "one-tx");
            let claimed = pg::claim(&mut tx, &k, &print("body"), Duration::from_secs(30)).await;
            let reply = match claimed {
                Ok(Claimed::New(lock)) => {
                    let me = format!("client {i}");
                    sqlx::query("INSERT INTO effects (by) VALUES ($1)")
                        .bind(&me)
                        .execute(&mut *tx)
                        .await
                        .expect("work");
                    let a = answer(201, &me);
                    pg::finish(&mut tx, lock, &a).await.expect("finish");
                    a
                }
                Ok(Claimed::Replay(a)) => a,
                other => panic!("a waiter sees the committed answer, got {other:?}"),
            };
            tx.commit().await.expect("commit");
            reply
        }));
    }
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("no panic"));
    }
    let done = effects(&keys).await;
    assert_eq!(done.len(), 1, "the work ran once: {done:?}");
    assert!(
        replies.iter().all(|r| r.body["by"] == done[0].as_str()),
        "every client got the answer of the one that worked"
    );
}
// ANCHOR_END: one_transaction

// ANCHOR: fenced_work
/// A fenced holder's work rolls back with its refused answer.
#[tokio::test]
async fn a_fenced_holder_commits_no_work() {
    let Some((_db, keys)) = postgres().await else {
        return;
    };
    let k = scope("alice", "fence");
    let mut conn = keys.pool().acquire().await.expect("conn");
    let Ok(Claimed::New(first)) = pg::claim(&mut conn, &k, &print("a"), SHORT_LEASE).await else {
        panic!("new");
    };
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(150)).await;
    let Ok(Claimed::TakenOver { lock: second, .. }) =
        pg::claim(&mut conn, &k, &print("a"), SHORT_LEASE).await
    else {
        panic!("taken over");
    };
    for (lock, who) in [(first, "first"), (second, "second")] {
        let mut tx = keys.pool().begin().await.expect("begin");
        sqlx::query("INSERT INTO effects (by) VALUES ($1)")
            .bind(who)
            .execute(&mut *tx)
            .await
            .expect("work");
        match pg::finish(&mut tx, lock, &answer(201, who)).await {
            Ok(()) => tx.commit().await.expect("commit"),
            // Dropping the transaction rolls the work back with the answer.
            Err(FinishError::Fenced) => assert_eq!(who, "first", "only the stale holder is fenced"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        effects(&keys).await,
        ["second"],
        "only the taker's work committed"
    );
}
// ANCHOR_END: fenced_work

/// A key with another request is refused before the row is touched.
#[tokio::test]
async fn the_answer_is_read_without_claiming() {
    let Some((_db, keys)) = postgres().await else {
        return;
    };
    let k = scope("alice", "read");
    let mut conn = keys.pool().acquire().await.expect("conn");
    assert!(
        pg::final_answer(&mut conn, &k, &print("a"))
            .await
            .expect("read")
            .is_none()
    );
    let Ok(Claimed::New(lock)) = pg::claim(&mut conn, &k, &print("a"), SHORT_LEASE).await else {
        panic!("new");
    };
    assert!(
        pg::final_answer(&mut conn, &k, &print("a"))
            .await
            .expect("read")
            .is_none()
    );
    pg::finish(&mut conn, lock, &answer(201, "a"))
        .await
        .expect("finish");
    let read = pg::final_answer(&mut conn, &k, &print("a"))
        .await
        .expect("read");
    assert_eq!(read, Some(answer(201, "a")));
    let other = pg::final_answer(&mut conn, &k, &print("b")).await;
    assert!(matches!(other, Err(ClaimError::KeyReused)), "{other:?}");
}

// ANCHOR: clock_timestamp
/// A claim made late in a transaction (here after a second's wait, as
/// behind a lock) gets a lease measured from the claim, not from BEGIN:
/// right after its commit the key is still held. With `now()`, frozen at
/// BEGIN, the lease would have run out before the claim was even made, and
/// the next request would take the key over from a live holder.
#[tokio::test]
async fn a_lease_runs_from_the_claim_not_from_the_transactions_start() {
    let Some((_db, keys)) = postgres().await else {
        return;
    };
    // The wait outlasts the lease, so a lease counted from BEGIN has already
    // run out at the claim; the lease is long enough that the second claim
    // comes well inside it even on a loaded CI machine.
    let (lease, wait) = (Duration::from_secs(3), Duration::from_millis(3_500));
    let k = scope("alice", "late");
    let mut tx = keys.pool().begin().await.expect("begin");
    sqlx::query("SELECT pg_sleep($1)")
        .bind(wait.as_secs_f64())
        .execute(&mut *tx)
        .await
        .expect("wait");
    let first = pg::claim(&mut tx, &k, &print("a"), lease).await;
    assert!(matches!(first, Ok(Claimed::New(_))), "{first:?}");
    tx.commit().await.expect("commit");
    let mut conn = keys.pool().acquire().await.expect("conn");
    let second = pg::claim(&mut conn, &k, &print("a"), lease).await;
    assert!(
        matches!(second, Err(ClaimError::KeyInUse)),
        "the first claim's lease still runs, got {second:?}"
    );
}
// ANCHOR_END: clock_timestamp

/// Inserts `n` keys of `account` two days old: finished with an answer, or
/// unfinished and unlocked (what a provider timeout leaves).
async fn old_keys(keys: &PgKeys, account: &str, n: i32, finished: bool) {
    sqlx::query(
        "INSERT INTO idempotency_keys
             (account_id, endpoint, key, fingerprint, created_at,
              recovery_point, response_status, response_body, finished_at)
         SELECT $1, 'e', 'k-' || i, repeat('0', 64), clock_timestamp() - interval '2 days',
                CASE WHEN $3 THEN 'finished' ELSE 'started' END,
                CASE WHEN $3 THEN 201 END,
                CASE WHEN $3 THEN '{}'::jsonb END,
                CASE WHEN $3 THEN clock_timestamp() - interval '2 days' END
         FROM generate_series(1, $2) AS i",
    )
    .bind(account)
    .bind(n)
    .bind(finished)
    .execute(keys.pool())
    .await
    .expect("old keys");
}

// ANCHOR: purge_batches
/// Two and a half batches of expired finished keys: one purge deletes them
/// all, batch after batch, and counts the unfinished ones it keeps. With
/// its budget spent after the first batch, it stops there and says so.
#[tokio::test]
async fn one_purge_deletes_every_batch_of_expired_keys() {
    let Some((_db, keys)) = postgres().await else {
        return;
    };
    let batch = 10;
    old_keys(&keys, "done", 25, true).await;
    old_keys(&keys, "open", 3, false).await;
    let mut conn = keys.pool().acquire().await.expect("conn");

    let purged = pg::purge_with(&mut conn, RETENTION, batch, Duration::from_secs(60))
        .await
        .expect("purge");
    assert_eq!(
        (purged.deleted, purged.unfinished_kept, purged.more_left),
        (25, 3, false),
        "every batch deleted in one call, the unfinished keys kept"
    );
    let left: Vec<String> = sqlx::query_scalar("SELECT account_id FROM idempotency_keys")
        .fetch_all(&mut *conn)
        .await
        .expect("left");
    assert_eq!(left, ["open"; 3]);

    old_keys(&keys, "again", 25, true).await;
    let cut = pg::purge_with(&mut conn, RETENTION, batch, Duration::ZERO)
        .await
        .expect("purge");
    assert_eq!(
        (cut.deleted, cut.more_left),
        (10, true),
        "no budget: one batch, and more left"
    );
}
// ANCHOR_END: purge_batches

/// The unfinished count can use its partial index (forced here: the
/// planner prefers a scan of a table this small).
#[tokio::test]
async fn the_unfinished_count_has_an_index() {
    let Some((_db, keys)) = postgres().await else {
        return;
    };
    let mut conn = keys.pool().acquire().await.expect("conn");
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("set");
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN {}",
        pg::UNFINISHED_SQL.replace("$1", "86400000")
    )))
    .fetch_all(&mut *conn)
    .await
    .expect("explain");
    assert!(
        plan.iter()
            .any(|l| l.contains("idempotency_keys_unfinished")),
        "{plan:#?}"
    );
}

/// The block's own table has the block's columns (the check chapters run on theirs).
#[tokio::test]
async fn the_block_table_has_the_block_columns() {
    let Some((_db, keys)) = postgres().await else {
        return;
    };
    let mut conn = keys.pool().acquire().await.expect("conn");
    assert_eq!(
        pg::missing_columns(&mut conn).await.expect("catalog"),
        Vec::<String>::new()
    );
}

/// The table refuses what the parser refuses (the CHECK is the same rule).
#[tokio::test]
async fn the_table_refuses_keys_the_parser_refuses() {
    let Some((_db, keys)) = postgres().await else {
        return;
    };
    for bad in ["", "a b", "é", &"k".repeat(256)] {
        let r = sqlx::query(
            "INSERT INTO idempotency_keys (account_id, endpoint, key, fingerprint)
             VALUES ('a', 'e', $1, repeat('0', 64))",
        )
        .bind(bad)
        .execute(keys.pool())
        .await;
        assert!(r.is_err(), "{bad:?} accepted");
    }
}
