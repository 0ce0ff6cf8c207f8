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
both!(
    a_count_taken_before_a_sale_does_not_put_the_sold_unit_back,
    count_after_sale
);

both!(a_retried_receive_adds_once, retried_receive);

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
        (s.balance.on_hand, s.balance.reserved, s.balance.committed),
        (10, 0, 3),
        "units sold once"
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
    // Shipping is idempotent too, and a commit retried after it is a replay.
    assert!(!store.ship(a.id, t0()).await.expect("ship").replayed);
    assert!(store.ship(a.id, t0()).await.expect("ship again").replayed);
    assert!(store.commit(a.id, t0()).await.expect("late retry").replayed);
    let s = store.stock(&k, t0()).await.expect("stock");
    assert_eq!(
        (s.balance.on_hand, s.balance.reserved, s.balance.committed),
        (7, 0, 0)
    );
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
        store
            .receive(uuid::Uuid::new_v4(), &unknown_sku, qty(1), t0())
            .await,
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
        store.adjust(&k, count(3), count(10), t0()).await,
        Err(StoreError::CountBelowReserved {
            counted: 3,
            reserved: 4,
            ..
        })
    ));
    let s = store
        .adjust(&k, count(8), count(10), t0())
        .await
        .expect("adjust");
    assert_eq!((s.balance.on_hand, s.balance.reserved), (8, 4));
    // Counting the same again records nothing.
    let n = store.movements(&k).await.expect("ledger").len();
    store
        .adjust(&k, count(8), count(8), t0())
        .await
        .expect("adjust");
    assert_eq!(store.movements(&k).await.expect("ledger").len(), n);
    // A known SKU never stocked in this warehouse can be counted from zero.
    let fresh = key("SHOE-42", "BER-1");
    stocked(store, &fresh, 0).await;
    let s = store
        .adjust(&fresh, count(2), count(0), t0())
        .await
        .expect("adjust");
    assert_eq!(s.balance.on_hand, 2);
    ledger_agrees(store, &k).await;
    ledger_agrees(store, &fresh).await;
}

// ANCHOR: count_vs_commit
/// Finding 1 of issue 28: a count taken before a sale and posted after it.
/// The sold unit is still on the shelf, so the count is right and the sale
/// stays sold; a count taken before a shipment is stale and refused.
async fn count_after_sale<S: InventoryStore>(store: &S) {
    let k = key("SHOE-42", "AMS-1");
    stocked(store, &k, 10).await;
    // The counter reads the position, then walks to the shelf.
    let seen = store.stock(&k, t0()).await.expect("stock").balance.on_hand;
    // Meanwhile a checkout pays for one unit; it has not shipped.
    let r = store.reserve(&k, qty(1), TTL, t0()).await.expect("reserve");
    store.commit(r.id, t0()).await.expect("commit");
    // The count finds all ten on the shelf (the sold one included).
    let s = store
        .adjust(&k, count(10), count(seen), t0())
        .await
        .expect("a count across a sale is current");
    assert_eq!(
        (s.balance.on_hand, s.balance.committed, s.available_now()),
        (10, 1, 9),
        "the sold unit is not for sale again"
    );
    // A second count starts, then the sold unit ships before it is posted.
    let seen = s.balance.on_hand;
    store.ship(r.id, t0()).await.expect("ship");
    let ledger = store.movements(&k).await.expect("ledger").len();
    assert!(matches!(
        store.adjust(&k, count(10), count(seen), t0()).await,
        Err(StoreError::CountStale {
            seen: 10,
            on_hand: 9,
            ..
        })
    ));
    assert_eq!(store.movements(&k).await.expect("ledger").len(), ledger);
    let s = store.stock(&k, t0()).await.expect("stock");
    assert_eq!(
        (s.balance.on_hand, s.balance.committed, s.available_now()),
        (9, 0, 9)
    );
    ledger_agrees(store, &k).await;
}
// ANCHOR_END: count_vs_commit

both!(
    availability_promises_only_what_one_reserve_reclaims,
    reclaim_bound
);

/// `available_now` counts lapsed holds only up to what one reserve reclaims
/// (finding 6 of issue 28: it counted all of them, so a reader was promised
/// units a reserve refused).
async fn reclaim_bound<S: InventoryStore>(store: &S) {
    let k = key("SHOE-42", "AMS-1");
    let limit = i64::from(inventory::store::LAZY_RECLAIM_LIMIT);
    let holds = limit + limit / 2;
    stocked(store, &k, holds).await;
    for _ in 0..holds {
        store
            .reserve(&k, qty(1), TimeDelta::seconds(1), t0())
            .await
            .expect("reserve");
    }
    let later = t0() + TimeDelta::seconds(2);
    let s = store.stock(&k, later).await.expect("stock");
    assert_eq!(s.available_now(), limit, "{s:?}");
    assert!(matches!(
        store.reserve(&k, qty(limit + 1), TTL, later).await,
        Err(StoreError::OutOfStock { .. })
    ));
    store
        .reserve(&k, qty(limit), TTL, later)
        .await
        .expect("what availability promised");
    ledger_agrees(store, &k).await;
}

/// Two instances' clocks differ: a commit judged by a clock a second behind
/// the reserving instance's is a commit, not a CHECK violation and a 500
/// (finding 6 of issue 28: `updated_at >= created_at` compared the two).
#[tokio::test]
async fn a_commit_on_a_clock_behind_the_reserving_instance_succeeds() {
    let Some((_db, store)) = pg_store(4).await else {
        return;
    };
    let k = key("SHOE-42", "AMS-1");
    stocked(&store, &k, 10).await;
    let r = store.reserve(&k, qty(1), TTL, t0()).await.expect("reserve");
    let behind = t0() - TimeDelta::seconds(1);
    let o = store.commit(r.id, behind).await.expect("commit");
    assert_eq!(o.reservation.state, State::Committed);
}

/// Review H2: a receive whose answer was lost is retried with the same
/// receipt id; the goods arrived once, so `on_hand` grows once. (Before, the
/// retry added the units again: 50 phantom units for sale.)
async fn retried_receive<S: InventoryStore>(store: &S) {
    let k = key("SHOE-42", "AMS-1");
    stocked(store, &k, 0).await;
    let receipt = uuid::Uuid::new_v4();
    let first = store
        .receive(receipt, &k, qty(50), t0())
        .await
        .expect("receive");
    let again = store
        .receive(receipt, &k, qty(50), t0())
        .await
        .expect("retry");
    assert_eq!((first.balance.on_hand, again.balance.on_hand), (50, 50));
    assert_eq!(store.movements(&k).await.expect("ledger").len(), 1);
    // The same id for another receipt is refused and changes nothing.
    assert!(matches!(
        store.receive(receipt, &k, qty(7), t0()).await,
        Err(StoreError::ReceiptReused(id)) if id == receipt
    ));
    let other = key("SHOE-42", "RTM-1");
    stocked(store, &other, 0).await;
    assert!(matches!(
        store.receive(receipt, &other, qty(50), t0()).await,
        Err(StoreError::ReceiptReused(_))
    ));
    assert_eq!(
        store
            .stock(&other, t0())
            .await
            .expect("stock")
            .balance
            .on_hand,
        0
    );
    // Another receipt of the same size is another delivery.
    let s = store
        .receive(uuid::Uuid::new_v4(), &k, qty(50), t0())
        .await
        .expect("receive");
    assert_eq!(s.balance.on_hand, 100);
    ledger_agrees(store, &k).await;
}
