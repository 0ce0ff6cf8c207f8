//! Checkout with `Idempotency-Key`: Stripe's semantics, one behaviour suite
//! for both stores.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ecommerce::checkout::provider::{Behaviour, FakeProvider};
use ecommerce::checkout::{BoxFuture, Checkout, CheckoutError, Hooks, Point};
use ecommerce::domain::{Currency, Money};
use ecommerce::idempotency::{KEY_TTL, LOCK_TIMEOUT, retention};
use ecommerce::store::{MemoryStore, Store};
use tokio::sync::Notify;

/// Runs an async suite function against a fresh memory store and a fresh PostgreSQL store.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let store = MemoryStore::new();
                    seed(&store).await;
                    super::$name(Arc::new(store)).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((_db, store)) = pg_store().await else { return };
                    super::$name(Arc::new(store)).await;
                }
            )*
        }
    };
}

both_stores!(
    a_retry_replays_the_first_answer_and_charges_once,
    the_same_key_with_another_body_is_refused_and_changes_nothing,
    keys_are_scoped_by_account,
    a_retry_while_the_first_is_in_flight_gets_409,
    a_stored_5xx_is_replayed_and_the_provider_is_not_called_again,
    a_declined_card_is_final_and_releases_the_stock,
    a_timeout_leaves_the_order_to_the_retry_which_charges_once,
    a_price_change_between_cart_and_pay_is_refused_with_the_new_quote,
    bad_input_stores_nothing_so_the_fixed_request_may_reuse_the_key,
    keys_are_purged_after_24_hours,
    an_unfinished_key_survives_the_purge_and_its_retry_charges_once,
    a_second_finish_of_an_order_writes_nothing,
);

fn checkout<S: Store>(store: Arc<S>) -> (Checkout<S, FakeProvider>, Arc<FakeProvider>) {
    let provider = Arc::new(FakeProvider::new());
    (Checkout::new(store, Arc::clone(&provider)), provider)
}

// ANCHOR: replay
async fn a_retry_replays_the_first_answer_and_charges_once<S: Store>(store: Arc<S>) {
    let (c, provider) = checkout(Arc::clone(&store));
    let req = request(&*store, &[("MUG-RED", 2), ("BOOK-RUST", 1)]).await;
    let k = key("alice", "k-1");
    let first = c.run("alice", Some(&k), &req, now0()).await.expect("first");
    let again = c.run("alice", Some(&k), &req, now0()).await.expect("retry");
    assert_eq!(first.response.status, 201);
    assert!(!first.replayed && again.replayed);
    assert_eq!(
        first.response, again.response,
        "byte for byte the same answer"
    );
    assert_eq!(provider.charges(), 1);
    assert_eq!(store.orders().await.expect("orders").len(), 1);
    assert_eq!(store.stock(&sku("MUG-RED")).await.expect("stock"), Some(98));
}
// ANCHOR_END: replay

async fn the_same_key_with_another_body_is_refused_and_changes_nothing<S: Store>(store: Arc<S>) {
    let (c, provider) = checkout(Arc::clone(&store));
    let k = key("alice", "k-1");
    let one = request(&*store, &[("MUG-RED", 1)]).await;
    let two = request(&*store, &[("MUG-RED", 2)]).await;
    c.run("alice", Some(&k), &one, now0()).await.expect("first");
    let err = c.run("alice", Some(&k), &two, now0()).await;
    assert!(matches!(err, Err(CheckoutError::KeyReused)), "{err:?}");
    assert_eq!(provider.charges(), 1);
    assert_eq!(store.orders().await.expect("orders").len(), 1);
    assert_eq!(store.stock(&sku("MUG-RED")).await.expect("stock"), Some(99));
}

async fn keys_are_scoped_by_account<S: Store>(store: Arc<S>) {
    let (c, provider) = checkout(Arc::clone(&store));
    let req = request(&*store, &[("MUG-RED", 1)]).await;
    let a = c
        .run("alice", Some(&key("alice", "same")), &req, now0())
        .await
        .expect("alice");
    let b = c
        .run("bob", Some(&key("bob", "same")), &req, now0())
        .await
        .expect("bob");
    assert!(!a.replayed && !b.replayed, "two shoppers, two orders");
    assert_eq!(provider.charges(), 2);
}

// ANCHOR: in_flight
async fn a_retry_while_the_first_is_in_flight_gets_409<S: Store>(store: Arc<S>) {
    let (c, provider) = checkout(Arc::clone(&store));
    provider.script([Behaviour::HangAfterCharge]);
    let req = request(&*store, &[("MUG-RED", 1)]).await;
    let k = key("alice", "k-1");
    let first = {
        let (c, req, k) = (c.clone(), req.clone(), k.clone());
        tokio::spawn(async move { c.run("alice", Some(&k), &req, now0()).await })
    };
    provider.hung.notified().await;
    let second = c.run("alice", Some(&k), &req, now0()).await;
    assert!(matches!(second, Err(CheckoutError::KeyInUse)), "{second:?}");
    first.abort();
    assert_eq!(
        provider.calls(),
        1,
        "the second request never reached the provider"
    );
}
// ANCHOR_END: in_flight

// ANCHOR: replay_5xx
async fn a_stored_5xx_is_replayed_and_the_provider_is_not_called_again<S: Store>(store: Arc<S>) {
    let (c, provider) = checkout(Arc::clone(&store));
    provider.script([Behaviour::Fail]);
    let req = request(&*store, &[("MUG-RED", 1)]).await;
    let k = key("alice", "k-1");
    let first = c
        .run("alice", Some(&k), &req, now0())
        .await
        .expect("an answer");
    assert_eq!(first.response.status, 502);
    // The provider would succeed now, but the key's answer is final.
    let again = c
        .run("alice", Some(&k), &req, now0())
        .await
        .expect("an answer");
    assert!(again.replayed);
    assert_eq!(again.response, first.response);
    assert_eq!((provider.calls(), provider.charges()), (1, 0));
    assert_eq!(
        store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100),
        "stock released"
    );
}
// ANCHOR_END: replay_5xx

async fn a_declined_card_is_final_and_releases_the_stock<S: Store>(store: Arc<S>) {
    let (c, provider) = checkout(Arc::clone(&store));
    provider.script([Behaviour::Decline]);
    let req = request(&*store, &[("MUG-RED", 3)]).await;
    let k = key("alice", "k-1");
    let first = c
        .run("alice", Some(&k), &req, now0())
        .await
        .expect("an answer");
    assert_eq!(first.response.status, 402);
    let orders = store.orders().await.expect("orders");
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].status, "payment_failed");
    assert_eq!(
        store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100)
    );
    assert_eq!(provider.charges(), 0);
}

// ANCHOR: timeout_retry
async fn a_timeout_leaves_the_order_to_the_retry_which_charges_once<S: Store>(store: Arc<S>) {
    let (mut c, provider) = checkout(Arc::clone(&store));
    c.provider_timeout = Duration::from_millis(100);
    // The provider charges, then answers after the checkout stopped waiting.
    provider.script([Behaviour::Slow(Duration::from_millis(400))]);
    let req = request(&*store, &[("MUG-RED", 1)]).await;
    let k = key("alice", "k-1");
    let first = c.run("alice", Some(&k), &req, now0()).await;
    assert!(matches!(first, Err(CheckoutError::Payment(_))), "{first:?}");
    assert_eq!(
        provider.charges(),
        1,
        "the charge happened; the answer was lost"
    );
    let retry = c
        .run("alice", Some(&k), &req, now0())
        .await
        .expect("the retry");
    assert_eq!(retry.response.status, 201);
    assert!(
        !retry.replayed,
        "resumed from the recovery point, not replayed"
    );
    assert_eq!(
        provider.charges(),
        1,
        "the provider's own key deduplicated the charge"
    );
    let orders = store.orders().await.expect("orders");
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].status, "paid");
}
// ANCHOR_END: timeout_retry

// ANCHOR: price_change
async fn a_price_change_between_cart_and_pay_is_refused_with_the_new_quote<S: Store>(
    store: Arc<S>,
) {
    let (c, provider) = checkout(Arc::clone(&store));
    let seen = request(&*store, &[("MUG-RED", 2)]).await;
    store
        .set_price(&sku("MUG-RED"), money(1400, Currency::Eur))
        .await
        .expect("price change");
    let k = key("alice", "k-1");
    let answer = c
        .run("alice", Some(&k), &seen, now0())
        .await
        .expect("an answer");
    assert_eq!(answer.response.status, 409);
    let body = &answer.response.body;
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("#price-changed"))
    );
    // 2 x 14.00 + 20% tax = 33.60: the new quote is in the answer.
    assert_eq!(body["quote"]["total_minor"], 3360);
    assert_eq!(
        (
            provider.charges(),
            store.orders().await.expect("orders").len()
        ),
        (0, 0)
    );
    assert_eq!(
        store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100)
    );
    // The answer is final for this key; the shopper confirms the new total with a new key.
    let again = c
        .run("alice", Some(&k), &seen, now0())
        .await
        .expect("an answer");
    assert!(again.replayed && again.response.status == 409);
    let confirmed = request(&*store, &[("MUG-RED", 2)]).await;
    let ok = c
        .run("alice", Some(&key("alice", "k-2")), &confirmed, now0())
        .await
        .expect("an answer");
    assert_eq!(ok.response.status, 201);
    assert_eq!(
        provider.charged_minor(),
        3360,
        "the quote given is the price charged"
    );
}
// ANCHOR_END: price_change

async fn bad_input_stores_nothing_so_the_fixed_request_may_reuse_the_key<S: Store>(store: Arc<S>) {
    let (c, provider) = checkout(Arc::clone(&store));
    let k = key("alice", "k-1");
    let mut unknown = request(&*store, &[("MUG-RED", 1)]).await;
    unknown.lines[0].0 = sku("NO-SUCH-THING");
    let e = c.run("alice", Some(&k), &unknown, now0()).await;
    assert!(matches!(e, Err(CheckoutError::UnknownProduct(_))), "{e:?}");
    let mut mixed = request(&*store, &[("MUG-RED", 1)]).await;
    mixed.currency = Currency::Usd;
    let e = c.run("alice", Some(&k), &mixed, now0()).await;
    assert!(matches!(e, Err(CheckoutError::Pricing(_))), "{e:?}");
    let mut promo = request(&*store, &[("MUG-RED", 1)]).await;
    promo.promotion = Some("FREE-STUFF".into());
    let e = c.run("alice", Some(&k), &promo, now0()).await;
    assert!(
        matches!(e, Err(CheckoutError::UnknownPromotion(_))),
        "{e:?}"
    );
    assert_eq!(provider.calls(), 0);
    assert!(store.orders().await.expect("orders").is_empty());
    assert_eq!(
        store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100)
    );
    // Nothing was stored under the key, so the corrected request is a first request.
    let fixed = request(&*store, &[("MUG-RED", 1)]).await;
    let ok = c
        .run("alice", Some(&k), &fixed, now0())
        .await
        .expect("an answer");
    assert_eq!((ok.response.status, ok.replayed), (201, false));
}

// ANCHOR: purge
async fn keys_are_purged_after_24_hours<S: Store>(store: Arc<S>) {
    let (c, provider) = checkout(Arc::clone(&store));
    let req = request(&*store, &[("MUG-RED", 1)]).await;
    let k = key("alice", "k-1");
    c.run("alice", Some(&k), &req, now0()).await.expect("first");
    // Not yet: the key is younger than the retention.
    let kept = store.purge_keys(retention(), now0()).await.expect("purge");
    assert_eq!(kept.deleted, 0);
    // Later (the in-memory store's clock is `now`; PostgreSQL's is its own,
    // so its test waits a moment and purges with a retention shorter than that).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = now0() + KEY_TTL + chrono::TimeDelta::seconds(1);
    let purged = store
        .purge_keys(Duration::from_millis(10), later)
        .await
        .expect("purge");
    assert_eq!(purged.deleted, 1);
    // After the purge the same key is a new request: a second order.
    let again = c
        .run("alice", Some(&k), &req, later)
        .await
        .expect("an answer");
    assert!(!again.replayed);
    assert_eq!(provider.charges(), 2);
}

/// Issue #26, defect 1: a key left unfinished by a provider timeout is
/// older than the retention when the purge runs. It must stay, so that the
/// retry resumes its order instead of making a second one and a second charge.
async fn an_unfinished_key_survives_the_purge_and_its_retry_charges_once<S: Store>(store: Arc<S>) {
    let (mut c, provider) = checkout(Arc::clone(&store));
    c.provider_timeout = Duration::from_millis(100);
    provider.script([Behaviour::Slow(Duration::from_millis(300))]);
    let req = request(&*store, &[("MUG-RED", 1)]).await;
    let k = key("alice", "timed-out");
    let first = c.run("alice", Some(&k), &req, now0()).await;
    assert!(matches!(first, Err(CheckoutError::Payment(_))), "{first:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = now0() + KEY_TTL + chrono::TimeDelta::hours(1);
    let purged = store
        .purge_keys(Duration::from_millis(10), later)
        .await
        .expect("purge");
    assert_eq!(
        (purged.deleted, purged.unfinished_kept),
        (0, 1),
        "the unfinished key is counted and kept"
    );
    let retry = c
        .run("alice", Some(&k), &req, later)
        .await
        .expect("the retry");
    assert_eq!((retry.response.status, retry.replayed), (201, false));
    assert_eq!(provider.charges(), 1, "one charge");
    assert_eq!(store.orders().await.expect("orders").len(), 1, "one order");
}
// ANCHOR_END: purge

#[tokio::test]
async fn money_in_the_order_is_the_quote() {
    let store = Arc::new(MemoryStore::new());
    seed(&*store).await;
    let (c, provider) = checkout(Arc::clone(&store));
    let mut req = request(&*store, &[("MUG-RED", 2), ("BOOK-RUST", 1)]).await;
    req.promotion = Some("SPRING10".into());
    let e = c
        .run("alice", Some(&key("alice", "p")), &req, now0())
        .await
        .expect("an answer");
    assert_eq!(
        e.response.status, 409,
        "the promotion changes the total the client must confirm"
    );
    let quote: ecommerce::domain::Quote =
        serde_json::from_value(e.response.body["quote"].clone()).expect("a quote");
    req.expected_total_minor = quote.total_minor;
    let ok = c
        .run("alice", Some(&key("alice", "p2")), &req, now0())
        .await
        .expect("an answer");
    assert_eq!(ok.response.status, 201);
    assert_eq!(
        Money::new(provider.charged_minor(), Currency::Eur).expect("non-negative"),
        quote.total()
    );
}

/// The chapter declares the key table itself (its rows reference orders):
/// it must hold every column and the constraint the block's statements use.
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

/// The in-memory store fences a taken-over checkout as PostgreSQL does
/// (`crash.rs` has the PostgreSQL test): the first request's lease runs out
/// (by the store's clock, the `now` it is given) while it waits for the
/// provider, a retry takes over and finishes, and the first request's
/// late phase 2 writes nothing.
#[tokio::test]
async fn in_memory_a_checkout_whose_key_was_taken_over_writes_nothing() {
    let store = Arc::new(MemoryStore::new());
    seed(&*store).await;
    let (mut c, provider) = checkout(Arc::clone(&store));
    c.provider_timeout = Duration::from_secs(10);
    provider.script([Behaviour::Slow(Duration::from_millis(400))]);
    let req = request(&*store, &[("MUG-RED", 3)]).await;
    let k = key("alice", "slow-provider");
    let first = {
        let (c, req, k) = (c.clone(), req.clone(), k.clone());
        tokio::spawn(async move { c.run("alice", Some(&k), &req, now0()).await })
    };
    while provider.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after_the_lease = now0() + LOCK_TIMEOUT + chrono::TimeDelta::seconds(1);
    let second = c
        .run("alice", Some(&k), &req, after_the_lease)
        .await
        .expect("the retry takes over");
    assert_eq!((second.response.status, second.replayed), (201, false));
    let first = first.await.expect("no panic");
    assert!(
        matches!(first, Err(CheckoutError::KeyInUse)),
        "the first holder is fenced off, got {first:?}"
    );
    let replay = c
        .run("alice", Some(&k), &req, after_the_lease)
        .await
        .expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.response, second.response);
    assert_eq!(provider.charges(), 1);
    assert_eq!(store.stock(&sku("MUG-RED")).await.expect("stock"), Some(97));
}

/// Hooks that hold the flow at one point until the test lets it go on.
struct HoldAt {
    point: Point,
    reached: Notify,
    go: Notify,
}

impl Hooks for HoldAt {
    fn reached(&self, point: Point) -> BoxFuture<'_> {
        Box::pin(async move {
            if point == self.point {
                self.reached.notify_one();
                self.go.notified().await;
            }
        })
    }
}

// ANCHOR: late_decline
/// The ordering only the generation fences. The first request's lease runs
/// out while the provider weighs its card; a retry takes the key over and
/// is charged; then the first request's decline arrives, before the
/// taker's phase 2. The key is still unfinished, so only the stale
/// generation stops the first request from failing the order (402 stored,
/// stock released) that the taker was paid for.
async fn a_late_decline_from_a_taken_over_checkout_writes_nothing<S: Store>(
    store: Arc<S>,
    lease_runs_out: BoxFuture<'static>,
) {
    let provider = Arc::new(FakeProvider::new());
    let decline = Arc::new(Notify::new());
    provider.script([Behaviour::DeclineWhenNotified(Arc::clone(&decline))]);
    let mut c = Checkout::new(Arc::clone(&store), Arc::clone(&provider));
    c.provider_timeout = Duration::from_secs(10);
    let hold = Arc::new(HoldAt {
        point: Point::AfterCharge,
        reached: Notify::new(),
        go: Notify::new(),
    });
    let taker = Checkout {
        hooks: hold.clone(),
        ..c.clone()
    };
    let req = request(&*store, &[("MUG-RED", 3)]).await;
    let k = key("alice", "late-decline");
    let first = {
        let (c, req, k) = (c.clone(), req.clone(), k.clone());
        tokio::spawn(async move { c.run("alice", Some(&k), &req, now0()).await })
    };
    while provider.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lease_runs_out.await;
    let after_the_lease = now0() + LOCK_TIMEOUT + chrono::TimeDelta::seconds(1);
    let second = {
        let (req, k) = (req.clone(), k.clone());
        tokio::spawn(async move { taker.run("alice", Some(&k), &req, after_the_lease).await })
    };
    hold.reached.notified().await; // the taker is charged; its phase 2 waits
    assert_eq!(provider.charges(), 1);
    decline.notify_one(); // the first request's decline arrives now
    let first = first.await.expect("no panic");
    assert!(
        matches!(first, Err(CheckoutError::KeyInUse)),
        "the first holder is fenced off, got {first:?}"
    );
    let orders = store.orders().await.expect("orders");
    assert_eq!(orders.len(), 1);
    assert_eq!(
        orders[0].status, "pending_payment",
        "the late decline wrote no outcome"
    );
    assert_eq!(
        store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(97),
        "the late decline released no stock"
    );
    let keys = store.keys().await.expect("keys");
    assert_eq!(
        keys[0].recovery_point, "order_created",
        "the late decline stored no answer"
    );
    hold.go.notify_one();
    let second = second.await.expect("no panic").expect("the taker's answer");
    assert_eq!((second.response.status, second.replayed), (201, false));
    let orders = store.orders().await.expect("orders");
    assert_eq!(orders[0].status, "paid");
    assert_eq!(provider.charges(), 1, "one charge");
    assert_eq!(store.stock(&sku("MUG-RED")).await.expect("stock"), Some(97));
    let replay = c
        .run("alice", Some(&k), &req, after_the_lease)
        .await
        .expect("replay");
    assert!(replay.replayed);
    assert_eq!(
        replay.response, second.response,
        "the taker's answer is final"
    );
}
// ANCHOR_END: late_decline

#[tokio::test]
async fn a_late_decline_from_a_taken_over_checkout_writes_nothing_in_memory() {
    let store = MemoryStore::new();
    seed(&store).await;
    // The in-memory lease is read against the `now` each request passes.
    a_late_decline_from_a_taken_over_checkout_writes_nothing(
        Arc::new(store),
        Box::pin(std::future::ready(())),
    )
    .await;
}

#[tokio::test]
async fn a_late_decline_from_a_taken_over_checkout_writes_nothing_on_postgres() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let pool = store.pool().clone();
    // The lease is read against the database's clock: end it there.
    let lease_runs_out = Box::pin(async move {
        sqlx::query("UPDATE idempotency_keys SET locked_until = clock_timestamp()")
            .execute(&pool)
            .await
            .expect("expire the lease");
    });
    a_late_decline_from_a_taken_over_checkout_writes_nothing(Arc::new(store), lease_runs_out).await;
}

// ANCHOR: second_finish
/// Phase 2 applies an outcome only to an order still `pending_payment`: a
/// second finisher (a keyless run has no key to fence it) writes nothing,
/// so stock is released once and a failed order never turns paid.
async fn a_second_finish_of_an_order_writes_nothing<S: Store>(store: Arc<S>) {
    use ecommerce::checkout::{Begun, Charged, NoHooks};
    let req = request(&*store, &[("MUG-RED", 3)]).await;
    let print = ecommerce::idempotency::fingerprint("alice", &req);
    let begun = store
        .begin_checkout("alice", None, &req, &print, now0(), &NoHooks)
        .await
        .expect("phase 1");
    let Begun::Charge { order_id, .. } = begun else {
        panic!("no order: {begun:?}")
    };
    assert_eq!(store.stock(&sku("MUG-RED")).await.expect("stock"), Some(97));
    let declined = Charged::Declined("card_declined".into());
    store
        .finish_checkout(None, order_id, &declined, now0(), &NoHooks)
        .await
        .expect("the first finish");
    for again in [declined, Charged::Paid("ch_late".into())] {
        let second = store
            .finish_checkout(None, order_id, &again, now0(), &NoHooks)
            .await;
        assert!(second.is_err(), "a second finish was applied: {second:?}");
    }
    assert_eq!(
        store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100),
        "released once"
    );
    let order = store.order(order_id).await.expect("order").expect("exists");
    assert_eq!(order.status, "payment_failed");
}
// ANCHOR_END: second_finish
