//! The checkout killed between every pair of phases, then retried: exactly
//! one charge and one order, on real PostgreSQL.
//!
//! "Killed" is literal: the request's task is aborted at the chosen point
//! (an open transaction is dropped with it), the "process"'s pool is closed
//! so PostgreSQL sees its connections go, and the retry comes from a new
//! store over a new pool. Only the payment provider survives, as a real one
//! would.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ecommerce::checkout::provider::{Behaviour, FakeProvider};
use ecommerce::checkout::{BoxFuture, Checkout, CheckoutError, Hooks, Point};
use ecommerce::idempotency::LOCK_TIMEOUT;
use ecommerce::store::{PgStore, Store, StoreError};
use tokio::sync::{Barrier, Notify};

/// Ends every running lease now, as [`LOCK_TIMEOUT`] passing would, by the
/// database's clock (the only clock the leases are read against).
async fn expire_leases(store: &PgStore) {
    sqlx::query(
        "UPDATE idempotency_keys SET locked_until = clock_timestamp() WHERE locked_until IS NOT NULL",
    )
    .execute(store.pool())
    .await
    .expect("expire the leases");
}

/// Hooks that freeze the flow at one point, so the test can kill it there.
struct FreezeAt {
    point: Point,
    reached: Notify,
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

/// Where the first attempt dies.
#[derive(Clone, Copy, Debug)]
enum Kill {
    At(Point),
    /// Inside the provider call: charged, the answer never arrives.
    DuringCharge,
}

/// What a retry right after the crash must get (before the key's lock expires).
#[derive(Debug, PartialEq)]
enum Early {
    /// Nothing was committed: the retry is a first request.
    Fresh,
    /// The key is locked by the dead request: 409.
    InUse,
    /// Everything was committed: the stored answer.
    Replay,
}

// ANCHOR: crash_test
async fn killed_then_retried_charges_once(kill: Kill, early: Early) {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let provider = Arc::new(FakeProvider::new());
    let req = request(&store, &[("MUG-RED", 2)]).await;
    let k = key("alice", "crash-key");
    let freeze = Arc::new(FreezeAt {
        point: match kill {
            Kill::At(p) => p,
            Kill::DuringCharge => Point::AfterFinishCommit, // never reached
        },
        reached: Notify::new(),
    });
    if matches!(kill, Kill::DuringCharge) {
        provider.script([Behaviour::HangAfterCharge]);
    }
    let dying = Checkout {
        store: Arc::new(store.clone()),
        provider: Arc::clone(&provider),
        hooks: freeze.clone(),
        provider_timeout: Duration::from_secs(60),
        breaker: Default::default(),
        promotions: Arc::new(ecommerce::checkout::promotion_attempts()),
    };
    let task = {
        let (req, k) = (req.clone(), k.clone());
        tokio::spawn(async move { dying.run("alice", Some(&k), &req, now0()).await })
    };
    match kill {
        Kill::At(_) => freeze.reached.notified().await,
        Kill::DuringCharge => provider.hung.notified().await,
    }
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    store.pool().close().await; // the process is gone, and its connections with it

    // A new process retries with the same key.
    let restarted = Checkout::new(
        Arc::new(PgStore::new(db.pool_with(4).await)),
        Arc::clone(&provider),
    );
    let soon = now0() + chrono::TimeDelta::seconds(1);
    let first_retry = restarted.run("alice", Some(&k), &req, soon).await;
    let answer = match early {
        Early::InUse => {
            assert!(
                matches!(first_retry, Err(CheckoutError::KeyInUse)),
                "{first_retry:?}"
            );
            // After the lease (on the database's clock) the retry takes the
            // key over and resumes. The test ends the lease rather than wait.
            expire_leases(&restarted.store).await;
            let later = now0() + LOCK_TIMEOUT + chrono::TimeDelta::seconds(1);
            restarted
                .run("alice", Some(&k), &req, later)
                .await
                .expect("the late retry")
        }
        Early::Fresh | Early::Replay => first_retry.expect("the retry"),
    };
    assert_eq!(answer.response.status, 201, "{:?}", answer.response.body);
    assert_eq!(answer.replayed, early == Early::Replay);

    assert_eq!(provider.charges(), 1, "exactly one charge");
    let orders = restarted.store.orders().await.expect("orders");
    assert_eq!(orders.len(), 1, "exactly one order");
    assert_eq!(orders[0].status, "paid");
    assert_eq!(answer.response.body["id"], serde_json::json!(orders[0].id));
    assert_eq!(
        restarted.store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(98),
        "stock reserved once"
    );
}
// ANCHOR_END: crash_test

#[tokio::test]
async fn killed_before_the_order_commits() {
    killed_then_retried_charges_once(Kill::At(Point::BeforeOrderCommit), Early::Fresh).await;
}

#[tokio::test]
async fn killed_after_the_order_commits_before_the_charge() {
    killed_then_retried_charges_once(Kill::At(Point::AfterOrderCommit), Early::InUse).await;
}

#[tokio::test]
async fn killed_during_the_charge_after_the_provider_charged() {
    killed_then_retried_charges_once(Kill::DuringCharge, Early::InUse).await;
}

#[tokio::test]
async fn killed_after_the_charge_before_recording_it() {
    killed_then_retried_charges_once(Kill::At(Point::AfterCharge), Early::InUse).await;
}

#[tokio::test]
async fn killed_before_the_payment_commits() {
    killed_then_retried_charges_once(Kill::At(Point::BeforeFinishCommit), Early::InUse).await;
}

#[tokio::test]
async fn killed_after_everything_committed_before_answering() {
    killed_then_retried_charges_once(Kill::At(Point::AfterFinishCommit), Early::Replay).await;
}

/// Clients at once in the concurrent-key test.
pub const CONCURRENT_CLIENTS: usize = 32;

// ANCHOR: concurrent_key
#[tokio::test]
async fn concurrent_requests_with_one_key_charge_once() {
    let Some((_db, store)) = pg_store_with(16).await else {
        return;
    };
    let provider = Arc::new(FakeProvider::new());
    // The first request to reach the provider is slow, so the others arrive while it is in flight.
    provider.script([Behaviour::Slow(Duration::from_millis(300))]);
    let c = Checkout::new(Arc::new(store), Arc::clone(&provider));
    let req = request(&*c.store, &[("MUG-RED", 1)]).await;
    let k = key("alice", "double-click");
    let barrier = Arc::new(Barrier::new(CONCURRENT_CLIENTS));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENT_CLIENTS {
        let (c, req, k, barrier) = (c.clone(), req.clone(), k.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.run("alice", Some(&k), &req, now0()).await
        }));
    }
    let (mut created, mut replayed, mut in_use) = (0, 0, 0);
    let mut bodies = Vec::new();
    for t in tasks {
        match t.await.expect("no panic") {
            Ok(a) if a.response.status == 201 && !a.replayed => {
                created += 1;
                bodies.push(a.response.body);
            }
            Ok(a) if a.response.status == 201 => {
                replayed += 1;
                bodies.push(a.response.body);
            }
            Err(CheckoutError::KeyInUse) => in_use += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(created, 1, "one request did the work");
    assert_eq!(created + replayed + in_use, CONCURRENT_CLIENTS);
    assert!(
        in_use > 0,
        "some requests arrived while the first was in flight"
    );
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every success names the same order"
    );
    assert_eq!(provider.charges(), 1);
    assert_eq!(c.store.orders().await.expect("orders").len(), 1);
}
// ANCHOR_END: concurrent_key

// ANCHOR: guard
/// The UNIQUE constraint is the guard: without it, a retry with the same key charges twice.
#[tokio::test]
async fn without_the_unique_constraint_a_retry_charges_twice() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    db.apply_sql("ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_scope")
        .await
        .expect("dropping the constraint");
    let provider = Arc::new(FakeProvider::new());
    let c = Checkout::new(Arc::new(store), Arc::clone(&provider));
    let req = request(&*c.store, &[("MUG-RED", 1)]).await;
    let k = key("alice", "k-1");
    let first = c.run("alice", Some(&k), &req, now0()).await.expect("first");
    let retry = c.run("alice", Some(&k), &req, now0()).await.expect("retry");
    assert!(
        !first.replayed && !retry.replayed,
        "the retry was not recognised"
    );
    assert_eq!(provider.charges(), 2, "the shopper paid twice");
}
// ANCHOR_END: guard

// ANCHOR: fenced_phase_two
/// Issue #26, defect 3: the first request's lease runs out while it waits
/// for the provider; a retry takes the key over and finishes the order.
/// When the first request's answer finally arrives, its phase 2 is fenced
/// off: it writes nothing (no second receipt, no second outcome).
#[tokio::test]
async fn a_checkout_whose_key_was_taken_over_writes_nothing() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let provider = Arc::new(FakeProvider::new());
    // The first call charges, then answers late.
    provider.script([Behaviour::Slow(Duration::from_millis(600))]);
    let mut c = Checkout::new(Arc::new(store), Arc::clone(&provider));
    c.provider_timeout = Duration::from_secs(10);
    let req = request(&*c.store, &[("MUG-RED", 3)]).await;
    let k = key("alice", "slow-provider");
    let first = {
        let (c, req, k) = (c.clone(), req.clone(), k.clone());
        tokio::spawn(async move { c.run("alice", Some(&k), &req, now0()).await })
    };
    // Wait until the first request holds the key and is inside the provider call.
    while provider.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    expire_leases(&c.store).await;
    let second = c
        .run("alice", Some(&k), &req, now0())
        .await
        .expect("the retry takes over");
    assert_eq!((second.response.status, second.replayed), (201, false));
    let first = first.await.expect("no panic");
    assert!(
        matches!(first, Err(CheckoutError::KeyInUse)),
        "the first holder is fenced off, got {first:?}"
    );
    let receipts: i64 = sqlx::query_scalar("SELECT count(*) FROM staged_jobs")
        .fetch_one(c.store.pool())
        .await
        .expect("count");
    assert_eq!(receipts, 1, "one receipt staged, by the taker");
    assert_eq!(provider.charges(), 1);
    let replay = c
        .run("alice", Some(&k), &req, now0())
        .await
        .expect("replay");
    assert!(replay.replayed);
    assert_eq!(
        replay.response, second.response,
        "the taker's answer is final"
    );
}
// ANCHOR_END: fenced_phase_two

// ANCHOR: phase_two_fails
/// Phase 2 fails in the database (a trigger raises a deadlock, 40P01, when
/// the order is marked paid) and rolls back: the order waits at
/// `order_created`, the charge made. The checkout ends its lease on the way
/// out, so the client's retry (after `Retry-After: 1`) resumes the order
/// with the same charge instead of getting 409 until the lease runs out.
#[tokio::test]
async fn a_phase_two_database_failure_releases_the_key_so_the_retry_resumes() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    db.apply_sql(
        "CREATE TABLE fail_phase_two (armed boolean);
         INSERT INTO fail_phase_two VALUES (true);
         CREATE FUNCTION fail_phase_two() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF EXISTS (SELECT 1 FROM fail_phase_two) THEN
                 RAISE EXCEPTION 'injected deadlock' USING ERRCODE = '40P01';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER fail_phase_two BEFORE UPDATE ON orders
             FOR EACH ROW EXECUTE FUNCTION fail_phase_two();",
    )
    .await
    .expect("the failing trigger");
    let provider = Arc::new(FakeProvider::new());
    let c = Checkout::new(Arc::new(store), Arc::clone(&provider));
    let req = request(&*c.store, &[("MUG-RED", 2)]).await;
    let k = key("alice", "phase-two-fails");
    let first = c.run("alice", Some(&k), &req, now0()).await;
    assert!(
        matches!(&first, Err(CheckoutError::Store(StoreError::Database(e)))
            if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("40P01")),
        "{first:?}"
    );
    assert_eq!(provider.charges(), 1, "charged; the outcome rolled back");
    db.apply_sql("DELETE FROM fail_phase_two")
        .await
        .expect("the deadlock does not repeat");
    let retry = c
        .run("alice", Some(&k), &req, now0())
        .await
        .expect("the retry resumes at once, not 409");
    assert_eq!((retry.response.status, retry.replayed), (201, false));
    assert_eq!(provider.charges(), 1, "the same charge");
    let orders = c.store.orders().await.expect("orders");
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].status, "paid");
    assert_eq!(
        c.store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(98)
    );
}
// ANCHOR_END: phase_two_fails
