//! One behaviour suite, run against the in-memory store and PostgreSQL:
//! idempotent commit and release, the clock deciding expiry, lazy reclaim
//! against the sweeper, and bad input that changes nothing.

mod common;

use chrono::TimeDelta;
use common::*;
use inventory::domain::{State, TransitionError, fold};
use inventory::store::{InventoryStore, StoreError};

/// Runs the body against both adapters: `memory` and `postgres` variants.
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$body(&inventory::store::MemoryStore::new()).await;
            }
            #[tokio::test]
            async fn postgres() {
                let Some((_db, store)) = super::pg_store(4).await else {
                    return;
                };
                super::$body(&store).await;
            }
        }
    };
}

both!(confirm_and_release_are_idempotent, idempotent);
both!(the_request_clock_decides_expiry, clock_decides);
both!(
    lazy_reclaim_takes_lapsed_units_without_a_sweeper,
    lazy_reclaim
);
both!(the_sweeper_expires_only_lapsed_holds, sweeper);
both!(bad_input_changes_nothing, bad_input);
both!(a_count_adjusts_on_hand_but_never_below_reserved, adjust);

const TTL: TimeDelta = TimeDelta::minutes(10);

async fn ledger_agrees<S: InventoryStore>(store: &S, k: &inventory::domain::StockKey) {
    let s = store.stock(k, t0()).await.expect("stock");
    let folded = fold(&store.movements(k).await.expect("ledger"));
    assert_eq!(folded.get(k).copied().unwrap_or_default(), s.balance);
}

// ANCHOR: idempotent
async fn idempotent<S: InventoryStore>(store: &S) {
    let k = key("SHOE-42", "AMS-1");
    stocked(store, &k, 10).await;
    let a = store.reserve(&k, qty(3), TTL, t0()).await.expect("reserve");
    let first = store.commit(a.id, t0()).await.expect("commit");
    assert!(!first.replayed);
    let again = store.commit(a.id, t0()).await.expect("commit again");
    assert!(again.replayed, "a retried commit answers as before");
    assert_eq!(again.reservation.state, State::Committed);
    let s = store.stock(&k, t0()).await.expect("stock");
    assert_eq!(
        (s.balance.on_hand, s.balance.reserved),
        (7, 0),
        "units left once"
    );
    // Release after commit is refused, and changes nothing.
    assert!(matches!(
        store.release(a.id, t0()).await,
        Err(StoreError::Transition(TransitionError::Illegal { .. }))
    ));

    let b = store.reserve(&k, qty(2), TTL, t0()).await.expect("reserve");
    assert!(!store.release(b.id, t0()).await.expect("release").replayed);
    assert!(
        store
            .release(b.id, t0())
            .await
            .expect("release again")
            .replayed
    );
    assert!(matches!(
        store.commit(b.id, t0()).await,
        Err(StoreError::Transition(TransitionError::Illegal { .. }))
    ));
    let s = store.stock(&k, t0()).await.expect("stock");
    assert_eq!((s.balance.on_hand, s.balance.reserved), (7, 0));
    ledger_agrees(store, &k).await;
}
// ANCHOR_END: idempotent

async fn clock_decides<S: InventoryStore>(store: &S) {
    let k = key("SHOE-42", "AMS-1");
    stocked(store, &k, 5).await;
    let r = store.reserve(&k, qty(1), TTL, t0()).await.expect("reserve");
    // No sweeper has run, but the hold's time is up: commit is refused.
    assert!(matches!(
        store.commit(r.id, r.expires_at).await,
        Err(StoreError::Transition(TransitionError::HoldExpired { .. }))
    ));
    // Expiring early is refused too.
    assert!(matches!(
        store
            .expire(r.id, r.expires_at - TimeDelta::seconds(1))
            .await,
        Err(StoreError::Transition(TransitionError::NotDue { .. }))
    ));
    assert!(
        !store
            .expire(r.id, r.expires_at)
            .await
            .expect("expire")
            .replayed
    );
    // A release after expiry wanted the units back: they are.
    assert!(
        store
            .release(r.id, r.expires_at)
            .await
            .expect("release")
            .replayed
    );
    let s = store.stock(&k, r.expires_at).await.expect("stock");
    assert_eq!((s.balance.on_hand, s.balance.reserved), (5, 0));
    ledger_agrees(store, &k).await;
}

// ANCHOR: lazy
async fn lazy_reclaim<S: InventoryStore>(store: &S) {
    let k = key("SHOE-42", "AMS-1");
    stocked(store, &k, 4).await;
    let held = store.reserve(&k, qty(4), TTL, t0()).await.expect("reserve");
    let later = held.expires_at + TimeDelta::seconds(1);
    // Before anyone expires it, a reader sees the lapsed units as reclaimable...
    let s = store.stock(&k, later).await.expect("stock");
    assert_eq!(
        (s.balance.available(), s.reclaimable, s.available_now()),
        (0, 4, 4)
    );
    // ...and a reserve takes them, expiring the lapsed hold on its way.
    let r = store
        .reserve(&k, qty(3), TTL, later)
        .await
        .expect("lazy reclaim");
    assert_eq!(r.state, State::Held);
    assert_eq!(
        store.reservation(held.id).await.expect("get").state,
        State::Expired
    );
    let s = store.stock(&k, later).await.expect("stock");
    assert_eq!((s.balance.reserved, s.reclaimable), (3, 0));
    ledger_agrees(store, &k).await;
}
// ANCHOR_END: lazy

async fn sweeper<S: InventoryStore>(store: &S) {
    let k = key("SHOE-42", "AMS-1");
    stocked(store, &k, 10).await;
    let short = store
        .reserve(&k, qty(2), TimeDelta::seconds(30), t0())
        .await
        .expect("reserve");
    let long = store.reserve(&k, qty(3), TTL, t0()).await.expect("reserve");
    let at = t0() + TimeDelta::minutes(1);
    assert_eq!(store.expire_due(at, 100).await.expect("sweep"), 1);
    assert_eq!(
        store.expire_due(at, 100).await.expect("sweep"),
        0,
        "nothing twice"
    );
    assert_eq!(
        store.reservation(short.id).await.expect("get").state,
        State::Expired
    );
    assert_eq!(
        store.reservation(long.id).await.expect("get").state,
        State::Held
    );
    let s = store.stock(&k, at).await.expect("stock");
    assert_eq!((s.balance.on_hand, s.balance.reserved), (10, 3));
    ledger_agrees(store, &k).await;
}

// ANCHOR: bad_input
async fn bad_input<S: InventoryStore>(store: &S) {
    let k = key("SHOE-42", "AMS-1");
    stocked(store, &k, 5).await;
    let before = store.stock(&k, t0()).await.expect("stock");
    let ledger_before = store.movements(&k).await.expect("ledger").len();
    let unknown_sku = key("NOPE", "AMS-1");
    let unknown_wh = key("SHOE-42", "NOWHERE");
    assert!(matches!(
        store.receive(&unknown_sku, qty(1), t0()).await,
        Err(StoreError::UnknownSku(_))
    ));
    assert!(matches!(
        store.reserve(&unknown_wh, qty(1), TTL, t0()).await,
        Err(StoreError::UnknownWarehouse(_))
    ));
    assert!(matches!(
        store.reserve(&k, qty(6), TTL, t0()).await,
        Err(StoreError::OutOfStock {
            requested: 6,
            available: 5,
            ..
        })
    ));
    assert!(matches!(
        store.commit(uuid::Uuid::new_v4(), t0()).await,
        Err(StoreError::ReservationNotFound(_))
    ));
    assert_eq!(store.stock(&k, t0()).await.expect("stock"), before);
    assert_eq!(
        store.movements(&k).await.expect("ledger").len(),
        ledger_before
    );
}
// ANCHOR_END: bad_input

async fn adjust<S: InventoryStore>(store: &S) {
    let k = key("SHOE-42", "AMS-1");
    stocked(store, &k, 10).await;
    store.reserve(&k, qty(4), TTL, t0()).await.expect("reserve");
    assert!(matches!(
        store.adjust(&k, count(3), t0()).await,
        Err(StoreError::CountBelowReserved {
            counted: 3,
            reserved: 4,
            ..
        })
    ));
    let s = store.adjust(&k, count(8), t0()).await.expect("adjust");
    assert_eq!((s.balance.on_hand, s.balance.reserved), (8, 4));
    // Counting the same again records nothing.
    let n = store.movements(&k).await.expect("ledger").len();
    store.adjust(&k, count(8), t0()).await.expect("adjust");
    assert_eq!(store.movements(&k).await.expect("ledger").len(), n);
    // A known SKU never stocked in this warehouse can be counted from zero.
    let fresh = key("SHOE-42", "BER-1");
    stocked(store, &fresh, 0).await;
    let s = store.adjust(&fresh, count(2), t0()).await.expect("adjust");
    assert_eq!(s.balance.on_hand, 2);
    ledger_agrees(store, &k).await;
    ledger_agrees(store, &fresh).await;
}
