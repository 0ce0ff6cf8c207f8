//! The chapter's key table against the idempotency block, and the key
//! space shared by reserve and walk-in.

mod common;

use common::*;
use parking_reservation::domain::SpotKind;
use parking_reservation::idempotency::{IdempotencyKey, fingerprint, walk_in_fingerprint};
use parking_reservation::store::{ReservationStore, StoreError};

/// The chapter declares the key table itself (its rows reference
/// reservations): it must hold every column and the constraint the block's
/// statements use.
#[tokio::test]
async fn the_chapter_table_has_the_block_columns() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let mut conn = store.pool().acquire().await.expect("conn");
    let missing = block_idempotency::pg::missing_columns(&mut conn)
        .await
        .expect("catalog");
    assert_eq!(missing, Vec::<String>::new());
}

/// A reserve and a walk-in with the same body are different requests.
#[test]
fn reserve_and_walk_in_fingerprints_differ() {
    let req = request(1, SpotKind::Regular, slots(4, 4), "AB-123");
    assert_ne!(fingerprint(&req), walk_in_fingerprint(&req));
}

/// A key used for a reserve is refused for a walk-in (one key space), and a
/// replay stores nothing new.
#[tokio::test]
async fn a_reserve_key_is_refused_for_a_walk_in() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let lot = store.create_lot(&small_lot()).await.expect("lot");
    let req = request(lot, SpotKind::Regular, slots(4, 4), "AB-123");
    let key = IdempotencyKey::parse(b"one-key").expect("key");
    let first = store
        .reserve(&req, Some(&key), now0())
        .await
        .expect("reserve");
    let again = store
        .reserve(&req, Some(&key), now0())
        .await
        .expect("replay");
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.reservation, again.reservation);
    let walk_in = store.walk_in(&req, Some(&key), now0()).await;
    assert!(
        matches!(walk_in, Err(StoreError::IdempotencyKeyReused(_))),
        "{walk_in:?}"
    );
}
