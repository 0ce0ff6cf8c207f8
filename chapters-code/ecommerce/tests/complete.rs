//! The completer (issue #26, item 4): checkouts nobody finished are
//! settled with the provider and end paid or voided, on real PostgreSQL.
//!
//! Crashes are literal, as in `crash.rs`: the task is aborted at a hook,
//! its pool closed, and the next step comes from a new pool. Only the
//! provider survives.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ecommerce::checkout::complete::{Completer, Completion};
use ecommerce::checkout::provider::{Behaviour, FakeProvider, PaymentError, PaymentProvider};
use ecommerce::checkout::{BoxFuture, Checkout, CheckoutError, Hooks, Point};
use ecommerce::store::{PgStore, Store};
use sqlx::Row;
use testkit::TestDb;
use tokio::sync::{Barrier, Notify};
use uuid::Uuid;

/// Ends every running lease on keys now, by the database's clock.
async fn expire_leases(store: &PgStore) {
    sqlx::query(
        "UPDATE idempotency_keys SET locked_until = clock_timestamp() WHERE locked_until IS NOT NULL",
    )
    .execute(store.pool())
    .await
    .expect("expire the leases");
}

/// Freezes the flow at one point, for ever: the test kills it there.
struct FreezeAt {
    point: Point,
    reached: Notify,
}

impl FreezeAt {
    fn new(point: Point) -> Arc<Self> {
        Arc::new(Self {
            point,
            reached: Notify::new(),
        })
    }
}

impl Hooks for FreezeAt {
    fn reached(&self, point: Point) -> BoxFuture<'_> {
        if point == self.point {
            self.reached.notify_one();
            Box::pin(std::future::pending())
        } else {
            Box::pin(std::future::ready(()))
        }
    }
}

/// Pauses the flow at one point until the test says go.
struct PauseAt {
    point: Point,
    reached: Notify,
    go: Notify,
}

impl PauseAt {
    fn new(point: Point) -> Arc<Self> {
        Arc::new(Self {
            point,
            reached: Notify::new(),
            go: Notify::new(),
        })
    }
}

impl Hooks for PauseAt {
    fn reached(&self, point: Point) -> BoxFuture<'_> {
        if point == self.point {
            self.reached.notify_one();
            Box::pin(self.go.notified())
        } else {
            Box::pin(std::future::ready(()))
        }
    }
}

/// Sleeps at one point, so concurrent runs overlap there.
struct SleepAt(Point, Duration);

impl Hooks for SleepAt {
    fn reached(&self, point: Point) -> BoxFuture<'_> {
        if point == self.0 {
            Box::pin(tokio::time::sleep(self.1))
        } else {
            Box::pin(std::future::ready(()))
        }
    }
}

fn checkout(
    store: &PgStore,
    provider: &Arc<FakeProvider>,
    hooks: Arc<dyn Hooks>,
) -> Checkout<PgStore, FakeProvider> {
    let mut c = Checkout::new(Arc::new(store.clone()), Arc::clone(provider));
    c.hooks = hooks;
    c.provider_timeout = Duration::from_secs(60);
    c
}

fn completer(
    store: &PgStore,
    provider: &Arc<FakeProvider>,
    hooks: Arc<dyn Hooks>,
) -> Completer<FakeProvider> {
    let mut c = Completer::new(store.clone(), Arc::clone(provider));
    c.hooks = hooks;
    // The tests' orders are seconds old: no grace.
    c.grace = Duration::ZERO;
    c
}

/// Where a checkout dies in the conservation test.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Killed at a hook.
    At(Point),
    /// Inside the provider call, after the provider charged.
    DuringCharge,
    /// Inside the provider call, before it charged: the charge stays "in progress".
    InFlight,
    /// Not killed.
    Completes,
    /// Not killed; the card is declined.
    Declined,
}

/// Runs one checkout for `lines`, killed at `step`, on a pool of its own
/// that dies with it.
async fn checkout_dying_at(
    db: &TestDb,
    provider: &Arc<FakeProvider>,
    step: Step,
    n: usize,
    lines: &[(&str, i64)],
    keyed: bool,
) {
    let store = PgStore::new(db.pool_with(2).await);
    let freeze = FreezeAt::new(match step {
        Step::At(p) => p,
        _ => Point::AfterTakeOver, // never reached by a checkout
    });
    match step {
        Step::DuringCharge => provider.script([Behaviour::HangAfterCharge]),
        Step::InFlight => provider.script([Behaviour::HangBeforeCharge]),
        Step::Declined => provider.script([Behaviour::Decline]),
        _ => {}
    }
    let c = checkout(&store, provider, freeze.clone());
    let req = request(&store, lines).await;
    let account = format!("shopper-{n}");
    let k = key(&account, &format!("key-{n}"));
    let task = tokio::spawn(async move {
        let k = keyed.then_some(&k);
        c.run(&account, k, &req, now0()).await
    });
    match step {
        Step::At(_) => freeze.reached.notified().await,
        Step::DuringCharge | Step::InFlight => provider.hung.notified().await,
        Step::Completes | Step::Declined => {
            task.await.expect("no panic").expect("the checkout");
            store.pool().close().await;
            return;
        }
    }
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    store.pool().close().await;
}

/// A completer pass killed at `point` on the first order it reaches.
async fn completer_dying_at(db: &TestDb, provider: &Arc<FakeProvider>, point: Point) {
    let store = PgStore::new(db.pool_with(2).await);
    let freeze = FreezeAt::new(point);
    let c = completer(&store, provider, freeze.clone());
    let task = tokio::spawn(async move { c.pass().await });
    freeze.reached.notified().await;
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    store.pool().close().await;
}

/// Units of each SKU in orders with `status`.
async fn units(store: &PgStore, status: &str) -> HashMap<String, i64> {
    sqlx::query(
        "SELECT l.sku, sum(l.quantity)::bigint AS n FROM order_lines AS l
         JOIN orders AS o ON o.id = l.order_id WHERE o.status = $1 GROUP BY l.sku",
    )
    .bind(status)
    .fetch_all(store.pool())
    .await
    .expect("units")
    .iter()
    .map(|r| (r.get("sku"), r.get("n")))
    .collect()
}

// ANCHOR: conservation
/// Stock is conserved whatever dies where: checkouts killed at every step
/// (keyed and keyless), then completers killed at each of theirs, then a
/// clean pass. Afterwards, for every SKU, the stock taken equals the units
/// in paid orders plus those still pending (only the charge still in
/// flight at the provider); voided and declined orders gave theirs back.
/// The provider's charges are exactly the paid orders' charges.
#[tokio::test]
async fn stock_is_conserved_over_crashes_at_every_step() {
    let Some((db, store)) = pg_store_with(4).await else {
        return;
    };
    let provider = Arc::new(FakeProvider::new());
    let steps = [
        Step::At(Point::BeforeOrderCommit),
        Step::At(Point::AfterOrderCommit),
        Step::DuringCharge,
        Step::At(Point::AfterCharge),
        Step::At(Point::BeforeFinishCommit),
        Step::At(Point::AfterFinishCommit),
        Step::InFlight,
        Step::Completes,
        Step::Declined,
    ];
    let mut n = 0;
    for keyed in [true, false] {
        for step in steps {
            for lines in [
                &[("MUG-RED", 2)][..],
                &[("BOOK-RUST", 1), ("MUG-RED", 3)][..],
            ] {
                n += 1;
                checkout_dying_at(&db, &provider, step, n, lines, keyed).await;
            }
        }
    }
    // The completer dies at each of its own steps, each time on the first
    // order it reaches, leaving that order's key held by a dead completer.
    for point in [
        Point::AfterTakeOver,
        Point::AfterSettle,
        Point::BeforeFinishCommit,
    ] {
        expire_leases(&store).await;
        completer_dying_at(&db, &provider, point).await;
    }
    expire_leases(&store).await;
    let pass = completer(&store, &provider, Arc::new(ecommerce::checkout::NoHooks))
        .pass()
        .await
        .expect("a clean pass");
    assert_eq!(pass.failed, 0, "{pass:?}");
    assert!(pass.paid > 0 && pass.voided > 0, "{pass:?}");

    // Conservation, SKU by SKU.
    let (paid, pending) = (
        units(&store, "paid").await,
        units(&store, "pending_payment").await,
    );
    for p in products() {
        let s = p.sku.as_str().to_string();
        let left = i64::from(store.stock(&p.sku).await.expect("stock").expect("product"));
        let held = paid.get(&s).copied().unwrap_or(0) + pending.get(&s).copied().unwrap_or(0);
        assert_eq!(
            i64::from(p.stock) - left,
            held,
            "{s}: taken = paid + pending"
        );
    }
    // Only the charges still in flight at the provider stay pending.
    let orders = store.orders().await.expect("orders");
    let pending: Vec<_> = orders
        .iter()
        .filter(|o| o.status == "pending_payment")
        .collect();
    assert_eq!(pending.len(), 4, "the in-flight charges, keyed and keyless");
    // Money: one charge per paid order, and the order names it.
    let paid: Vec<_> = orders.iter().filter(|o| o.status == "paid").collect();
    assert_eq!(provider.charges(), paid.len());
    for o in &paid {
        let charge = provider
            .charge_of(&format!("order-{}", o.id))
            .expect("charged");
        assert_eq!(o.charge_id.as_deref(), Some(charge.id.as_str()));
        assert_eq!(charge.amount, o.quote.total());
    }
    for o in orders.iter().filter(|o| o.status == "payment_failed") {
        assert!(provider.charge_of(&format!("order-{}", o.id)).is_none());
        // A charge that arrives after the void is refused.
        let late = provider
            .charge(&format!("order-{}", o.id), o.quote.total(), "tok_visa")
            .await;
        assert!(matches!(late, Err(PaymentError::Declined(_))), "{late:?}");
    }
    // One receipt job per paid order, and every key with a settled order is finished.
    let receipts: i64 = sqlx::query_scalar("SELECT count(*) FROM staged_jobs")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(receipts, paid.len() as i64);
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_keys AS k JOIN orders AS o ON o.id = k.order_id
         WHERE k.finished_at IS NULL AND o.status <> 'pending_payment'",
    )
    .fetch_one(store.pool())
    .await
    .expect("count");
    assert_eq!(open, 0, "a settled order's key has its final answer");
}
// ANCHOR_END: conservation

/// An order left by a checkout killed after phase 1, with its key's row id.
async fn abandoned(
    db: &TestDb,
    provider: &Arc<FakeProvider>,
    keyed: bool,
    n: usize,
) -> (Uuid, Option<i64>) {
    checkout_dying_at(
        db,
        provider,
        Step::At(Point::AfterOrderCommit),
        n,
        &[("MUG-RED", 3)],
        keyed,
    )
    .await;
    let store = PgStore::new(db.pool_with(1).await);
    let row = sqlx::query(
        "SELECT o.id, k.id AS key_id FROM orders AS o
         LEFT JOIN idempotency_keys AS k ON k.order_id = o.id
         WHERE o.account_id = $1",
    )
    .bind(format!("shopper-{n}"))
    .fetch_one(store.pool())
    .await
    .expect("the abandoned order");
    let out = (row.get("id"), row.get("key_id"));
    expire_leases(&store).await;
    store.pool().close().await;
    out
}

// ANCHOR: completers_race
/// Completers racing on one key: each takes it over only if no lease runs,
/// so exactly one asks the provider and finishes the order; the others
/// find the key held. The retry of the key then replays the winner's answer.
#[tokio::test]
async fn completers_racing_on_one_key_one_wins() {
    const COMPLETERS: usize = 8;
    let Some((db, store)) = pg_store_with(12).await else {
        return;
    };
    let provider = Arc::new(FakeProvider::new());
    let (order_id, key_id) = abandoned(&db, &provider, true, 1).await;
    let barrier = Arc::new(Barrier::new(COMPLETERS));
    let mut tasks = Vec::new();
    for _ in 0..COMPLETERS {
        // Each pauses after its takeover, so all of them overlap there.
        let c = completer(
            &store,
            &provider,
            Arc::new(SleepAt(Point::AfterTakeOver, Duration::from_millis(200))),
        );
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.complete(order_id, key_id).await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("no panic").expect("no error"));
    }
    let winners = outcomes.iter().filter(|o| **o != Completion::Held).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(outcomes.contains(&Completion::Voided), "{outcomes:?}");
    assert_eq!(provider.settles(), 1, "one completer asked the provider");
    assert_eq!(
        store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100),
        "the stock came back once"
    );
    let retry = Checkout::new(Arc::new(store.clone()), Arc::clone(&provider))
        .run(
            "shopper-1",
            Some(&key("shopper-1", "key-1")),
            &request(&store, &[("MUG-RED", 3)]).await,
            now0(),
        )
        .await
        .expect("the retry");
    assert!(retry.replayed);
    assert_eq!(retry.response.status, 410, "{:?}", retry.response.body);
    assert_eq!(provider.charges(), 0);
}
// ANCHOR_END: completers_race

// ANCHOR: completer_fenced
/// A completer stalled after asking the provider, whose key another
/// completer took over meanwhile, is fenced: its phase 2 writes nothing.
#[tokio::test]
async fn a_completer_whose_key_was_taken_over_writes_nothing() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let provider = Arc::new(FakeProvider::new());
    let (order_id, key_id) = abandoned(&db, &provider, true, 1).await;
    let pause = PauseAt::new(Point::AfterSettle);
    let stalled = completer(&store, &provider, pause.clone());
    let first = tokio::spawn(async move { stalled.complete(order_id, key_id).await });
    pause.reached.notified().await;
    expire_leases(&store).await;
    let second = completer(&store, &provider, Arc::new(ecommerce::checkout::NoHooks))
        .complete(order_id, key_id)
        .await
        .expect("the second completer");
    assert_eq!(second, Completion::Voided);
    pause.go.notify_one();
    let first = first.await.expect("no panic").expect("no error");
    assert_eq!(first, Completion::Lost, "the stalled completer is fenced");
    assert_eq!(
        store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100),
        "the stock came back once"
    );
}
// ANCHOR_END: completer_fenced

// ANCHOR: keyless_guard
/// A keyless checkout has no key to fence: two completers both settle it,
/// and phase 2's `pending_payment` guard makes the second write nothing.
#[tokio::test]
async fn two_completers_on_a_keyless_order_release_its_stock_once() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let provider = Arc::new(FakeProvider::new());
    let (order_id, key_id) = abandoned(&db, &provider, false, 1).await;
    assert_eq!(key_id, None);
    let pause = PauseAt::new(Point::AfterSettle);
    let stalled = completer(&store, &provider, pause.clone());
    let first = tokio::spawn(async move { stalled.complete(order_id, None).await });
    pause.reached.notified().await;
    let second = completer(&store, &provider, Arc::new(ecommerce::checkout::NoHooks))
        .complete(order_id, None)
        .await
        .expect("the second completer");
    assert_eq!(second, Completion::Voided);
    pause.go.notify_one();
    assert_eq!(
        first.await.expect("no panic").expect("no error"),
        Completion::Lost
    );
    assert_eq!(
        store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100),
        "the stock came back once"
    );
}
// ANCHOR_END: keyless_guard

// ANCHOR: late_charge
/// A checkout stalled before its charge while the completer voids its
/// order: the charge it finally sends is refused, so no card is charged
/// for an order that failed; the stalled phase 2 writes nothing.
#[tokio::test]
async fn a_charge_after_the_completer_voided_the_order_is_refused() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let provider = Arc::new(FakeProvider::new());
    let pause = PauseAt::new(Point::AfterOrderCommit);
    let c = checkout(&store, &provider, pause.clone());
    let req = request(&store, &[("MUG-RED", 3)]).await;
    let stalled = tokio::spawn(async move { c.run("alice", None, &req, now0()).await });
    pause.reached.notified().await;
    let pass = completer(&store, &provider, Arc::new(ecommerce::checkout::NoHooks))
        .pass()
        .await
        .expect("a pass");
    assert_eq!(pass.voided, 1, "{pass:?}");
    pause.go.notify_one();
    let late = stalled.await.expect("no panic");
    assert!(matches!(late, Err(CheckoutError::KeyInUse)), "{late:?}");
    assert_eq!(provider.charges(), 0, "nothing charged");
    assert_eq!(
        store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100)
    );
}
// ANCHOR_END: late_charge

// ANCHOR: in_progress
/// A charge still running at the provider ("in progress", as Stripe
/// answers a second call with a key in use) is left for the next pass, with
/// its key released and its stock still reserved.
#[tokio::test]
async fn a_charge_in_progress_is_left_for_the_next_pass() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let provider = Arc::new(FakeProvider::new());
    checkout_dying_at(&db, &provider, Step::InFlight, 1, &[("MUG-RED", 3)], true).await;
    expire_leases(&store).await;
    let pass = completer(&store, &provider, Arc::new(ecommerce::checkout::NoHooks))
        .pass()
        .await
        .expect("a pass");
    assert_eq!(pass.in_progress, 1, "{pass:?}");
    let keys = store.keys().await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].recovery_point.as_str(), keys[0].held),
        ("order_created", false)
    );
    assert_eq!(store.stock(&sku("MUG-RED")).await.expect("stock"), Some(97));
    // The client's own retry meets the same "in progress" and is told to wait.
    let retry = Checkout::new(Arc::new(store.clone()), Arc::clone(&provider))
        .run(
            "shopper-1",
            Some(&key("shopper-1", "key-1")),
            &request(&store, &[("MUG-RED", 3)]).await,
            now0(),
        )
        .await;
    assert!(
        matches!(retry, Err(CheckoutError::Payment(PaymentError::InProgress))),
        "{retry:?}"
    );
}
// ANCHOR_END: in_progress

// ANCHOR: young_orders
/// Orders younger than the grace are the client's to retry: a pass with
/// the production grace leaves them alone.
#[tokio::test]
async fn orders_younger_than_the_grace_are_left_to_their_retry() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let provider = Arc::new(FakeProvider::new());
    abandoned(&db, &provider, true, 1).await;
    let pass = Completer::new(store.clone(), Arc::clone(&provider))
        .pass()
        .await
        .expect("a pass");
    assert_eq!(pass, Default::default());
    assert_eq!(provider.settles(), 0);
}
// ANCHOR_END: young_orders

// ANCHOR: one_receipt
/// The receipt job is unique per order: a second one for the same order is
/// refused by the schema, whoever stages it.
#[tokio::test]
async fn a_second_receipt_job_for_one_order_is_refused() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let provider = Arc::new(FakeProvider::new());
    let c = Checkout::new(Arc::new(store.clone()), Arc::clone(&provider));
    let req = request(&store, &[("MUG-RED", 1)]).await;
    let a = c.run("alice", None, &req, now0()).await.expect("checkout");
    let order_id = a.response.body["id"].as_str().expect("an id").to_string();
    let again = sqlx::query(
        "INSERT INTO staged_jobs (kind, payload, created_at)
         VALUES ('send_receipt', jsonb_build_object('order_id', $1::uuid), now())",
    )
    .bind(Uuid::parse_str(&order_id).expect("uuid"))
    .execute(store.pool())
    .await;
    let err = again.expect_err("refused");
    assert_eq!(
        err.as_database_error().and_then(|d| d.constraint()),
        Some("staged_jobs_one_receipt")
    );
}
// ANCHOR_END: one_receipt
