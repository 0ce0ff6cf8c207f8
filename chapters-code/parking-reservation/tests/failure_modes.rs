//! What happens when the database fails in the middle of a reservation.

mod common;

use common::*;
use parking_reservation::domain::SpotKind;
use parking_reservation::idempotency::{self, Claim, IdempotencyKey, fingerprint};
use parking_reservation::store::ReservationStore;

// ANCHOR: failover_test
/// The connection dies (a failover, a crash, a killed backend) after the
/// reservation row was written but before COMMIT: nothing of it survives,
/// not the reservation and not the idempotency key, so the client's retry
/// with the same key simply runs again and reserves once.
#[tokio::test]
async fn database_failure_mid_transaction_leaves_nothing_behind() {
    let Some((_db, store)) = pg_store_with(3).await else {
        return;
    };
    let pool = store.pool().clone();
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = request(lot, SpotKind::Regular, slots(8, 4), "FAIL1");
    let Ok(key) = IdempotencyKey::parse(b"failover-1") else {
        panic!("key")
    };

    // The first attempt, by hand, up to just before COMMIT.
    let mut tx = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    let claim = idempotency::claim(&mut tx, &key, &fingerprint(&req), now0()).await;
    assert!(matches!(claim, Ok(Claim::New)), "{claim:?}");
    let spot: i64 = sqlx::query_scalar("SELECT id FROM spots WHERE lot_id = $1")
        .bind(lot)
        .fetch_one(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query(
        "INSERT INTO reservations (id, lot_id, spot_id, plate, during, state, hold_expires_at,
                                   quote_cents, created_at, updated_at)
         VALUES (gen_random_uuid(), $1, $2, 'FAIL1', tstzrange($3, $4), 'held', $5, 0, $5, $5)",
    )
    .bind(lot)
    .bind(spot)
    .bind(req.range.start())
    .bind(req.range.end())
    .bind(now0())
    .execute(&mut *tx)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The server side of the connection goes away.
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(killed);
    assert!(
        tx.commit().await.is_err(),
        "COMMIT on a dead connection must fail"
    );

    // Nothing was left behind...
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(0));
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keys, 0);
    // ...so the retry with the same key runs for real, once.
    let retry = store
        .reserve(&req, Some(&key), now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!retry.replayed);
    let again = store
        .reserve(&req, Some(&key), now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.replayed);
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(1));
}
// ANCHOR_END: failover_test
