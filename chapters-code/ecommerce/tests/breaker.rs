//! The payment provider goes down and comes back, behind the circuit
//! breaker: refusals while it is open change nothing, and every order left
//! waiting is charged exactly once when it returns. One suite, both stores.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use ecommerce::checkout::breaker::{Breaker, BreakerConfig, State};
use ecommerce::checkout::provider::{Behaviour, FakeProvider};
use ecommerce::checkout::{Checkout, CheckoutError, CheckoutRequest, PROVIDER_TIMEOUT};
use ecommerce::domain::Quantity;
use ecommerce::store::{KeyRecord, MemoryStore, Store};

/// Failures in a row that open the breaker in this test.
const THRESHOLD: u32 = 3;
/// Its cool-down.
const COOL_DOWN: TimeDelta = TimeDelta::seconds(30);
/// The provider timeout of the tests whose provider is slow.
const SHORT_TIMEOUT: Duration = Duration::from_millis(100);

async fn memory() -> Arc<MemoryStore> {
    let store = MemoryStore::new();
    seed(&store).await;
    Arc::new(store)
}

#[tokio::test]
async fn memory_provider_down_then_back() {
    provider_down_then_back(memory().await).await;
}

#[tokio::test]
async fn postgres_provider_down_then_back() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    provider_down_then_back(Arc::new(store)).await;
}

#[tokio::test]
async fn memory_shoppers_who_hang_up_during_the_charge_open_the_breaker() {
    shoppers_who_hang_up_during_the_charge_open_the_breaker(memory().await).await;
}

#[tokio::test]
async fn postgres_shoppers_who_hang_up_during_the_charge_open_the_breaker() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    shoppers_who_hang_up_during_the_charge_open_the_breaker(Arc::new(store)).await;
}

#[tokio::test]
async fn memory_a_probe_that_never_calls_the_provider_is_handed_back() {
    a_probe_that_never_calls_the_provider_is_handed_back(memory().await).await;
}

#[tokio::test]
async fn postgres_a_probe_that_never_calls_the_provider_is_handed_back() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    a_probe_that_never_calls_the_provider_is_handed_back(Arc::new(store)).await;
}

/// A checkout over `store` and `provider` with the test's breaker.
fn checkout<S: Store>(
    store: &Arc<S>,
    provider: &Arc<FakeProvider>,
    provider_timeout: Duration,
) -> Checkout<S, FakeProvider> {
    let mut c = Checkout::new(Arc::clone(store), Arc::clone(provider));
    c.provider_timeout = provider_timeout;
    c.breaker = Arc::new(
        Breaker::new(BreakerConfig {
            failure_threshold: THRESHOLD,
            cool_down: COOL_DOWN,
        })
        .expect("a valid config"),
    );
    c
}

/// The end of the cool-down, read at `at`; panics unless the breaker is open.
fn open_until<S: Store>(c: &Checkout<S, FakeProvider>, at: DateTime<Utc>) -> DateTime<Utc> {
    match c.breaker.state(at) {
        State::Open { until } => until,
        other => panic!("expected an open breaker, got {other:?}"),
    }
}

/// What the store and the provider hold.
#[derive(Debug, PartialEq)]
struct Snapshot {
    /// Orders by status, sorted.
    statuses: Vec<String>,
    /// MUG-RED left.
    stock: Option<i32>,
    /// Distinct charges.
    charges: usize,
    /// Charge calls.
    calls: u64,
    /// Every key: its recovery point and lock.
    keys: Vec<KeyRecord>,
}

async fn snapshot<S: Store>(store: &S, p: &FakeProvider) -> Snapshot {
    let mut statuses: Vec<String> = store
        .orders()
        .await
        .expect("orders")
        .into_iter()
        .map(|o| o.status)
        .collect();
    statuses.sort();
    Snapshot {
        statuses,
        stock: store.stock(&sku("MUG-RED")).await.expect("stock"),
        charges: p.charges(),
        calls: p.calls(),
        keys: store.keys().await.expect("keys"),
    }
}

// ANCHOR: down_then_back
async fn provider_down_then_back<S: Store>(store: Arc<S>) {
    let provider = Arc::new(FakeProvider::new());
    let c = checkout(&store, &provider, SHORT_TIMEOUT);
    let req = request(&*store, &[("MUG-RED", 1)]).await;
    let shoppers = ["ann", "bob", "cat"];
    let t = |s: i64| now0() + TimeDelta::seconds(s);

    // One shopper is served while the provider is well.
    let paid = c
        .run("eve", Some(&key("eve", "k")), &req, t(0))
        .await
        .expect("the provider is well");
    assert_eq!(paid.response.status, 201, "{:?}", paid.response.body);

    // The provider goes slow: each charge happens, its answer comes too late.
    provider.script((0..THRESHOLD).map(|_| Behaviour::Slow(Duration::from_millis(400))));
    for who in shoppers {
        let got = c.run(who, Some(&key(who, "k")), &req, t(0)).await;
        assert!(matches!(got, Err(CheckoutError::Payment(_))), "{got:?}");
    }
    // Open for the cool-down, counted from when the last call gave up (at
    // least the provider timeout after the request started), not from when
    // it started.
    let until = open_until(&c, t(0));
    let gave_up = t(0) + TimeDelta::from_std(SHORT_TIMEOUT).expect("small");
    assert!(
        until >= gave_up + COOL_DOWN,
        "open until {until}, counted from before the call gave up at {gave_up}"
    );
    assert!(until < t(5) + COOL_DOWN, "open until {until}");
    let before = snapshot(&*store, &provider).await;
    let mut waiting = vec!["paid"];
    waiting.extend(["pending_payment"; 3]);
    assert_eq!(before.statuses, waiting);
    assert_eq!(
        (before.charges, before.calls),
        (4, 4),
        "charged, answers lost"
    );

    // While open, a retry of a finished checkout needs no provider: it gets
    // its stored answer, as every retry does; the same key sent with
    // another request is still told so.
    let replay = c
        .run("eve", Some(&key("eve", "k")), &req, t(10))
        .await
        .expect("a replay, not a refusal");
    assert!(replay.replayed);
    assert_eq!(replay.response, paid.response);
    let other = request(&*store, &[("MUG-RED", 2)]).await;
    let reused = c.run("eve", Some(&key("eve", "k")), &other, t(10)).await;
    assert!(
        matches!(reused, Err(CheckoutError::KeyReused)),
        "{reused:?}"
    );

    // While open: a retry of a waiting order and a new shopper are both
    // refused at once, with the time left, and nothing changes: no key is
    // claimed or locked, no order, stock or charge moves.
    for (who, k) in [("ann", "k"), ("dan", "k")] {
        match c.run(who, Some(&key(who, k)), &req, t(10)).await {
            Err(CheckoutError::ProviderUnavailable(r)) => {
                let left = until - t(10);
                assert!(
                    r.retry_after >= left && r.retry_after < left + TimeDelta::seconds(1),
                    "Retry-After {} s, {left} left",
                    r.retry_after.num_seconds()
                );
            }
            other => panic!("expected a fast refusal, got {other:?}"),
        }
    }
    let during = snapshot(&*store, &provider).await;
    assert_eq!(during, before, "nothing changed");
    assert!(
        during.keys.iter().all(|k| k.account != "dan"),
        "the refused new shopper has no key: {:?}",
        during.keys
    );

    // After the cool-down one probe goes; the provider is still slow, so
    // the breaker opens for another cool-down.
    provider.script([Behaviour::Slow(Duration::from_millis(400))]);
    let probe_at = until + TimeDelta::seconds(1);
    let probe = c.run("dan", Some(&key("dan", "k")), &req, probe_at).await;
    assert!(matches!(probe, Err(CheckoutError::Payment(_))), "{probe:?}");
    let until = open_until(&c, probe_at);
    assert!(until >= probe_at + COOL_DOWN, "open until {until}");
    let refused = c
        .run(
            "ann",
            Some(&key("ann", "k")),
            &req,
            probe_at + TimeDelta::seconds(9),
        )
        .await;
    assert!(
        matches!(refused, Err(CheckoutError::ProviderUnavailable(_))),
        "{refused:?}"
    );

    // The provider is back. The first retry is the probe and closes the
    // breaker; then every waiting order finishes, charged once.
    let back = until + TimeDelta::seconds(1);
    for who in ["ann", "bob", "cat", "dan"] {
        let got = c
            .run(who, Some(&key(who, "k")), &req, back)
            .await
            .expect("the provider is back");
        assert_eq!(got.response.status, 201, "{:?}", got.response.body);
        assert_eq!(c.breaker.state(back), State::Closed { failures: 0 });
    }
    let after = snapshot(&*store, &provider).await;
    assert_eq!(after.statuses, vec!["paid"; 5], "one order per shopper");
    assert_eq!(after.stock, Some(95), "stock reserved once per order");
    assert_eq!(
        after.charges, 5,
        "one charge per order, retries deduplicated"
    );
}
// ANCHOR_END: down_then_back

/// Runs `who`'s checkout until its charge is in flight, then drops it, as
/// axum drops a handler's future when its client hangs up.
async fn hang_up<S: Store>(
    c: &Checkout<S, FakeProvider>,
    provider: &FakeProvider,
    who: &str,
    req: &CheckoutRequest,
    at: DateTime<Utc>,
) {
    provider.script([Behaviour::HangAfterCharge]);
    let k = key(who, "k");
    tokio::select! {
        got = c.run(who, Some(&k), req, at) => {
            panic!("the charge hangs, yet {who}'s checkout answered {got:?}");
        }
        () = provider.hung.notified() => {}
    }
}

// ANCHOR: hang_up
/// Shoppers give up before the provider timeout: each abandoned charge
/// counts as a failure, and an abandoned probe opens the breaker again
/// rather than handing the probe to the next request while its charge may
/// still be running.
async fn shoppers_who_hang_up_during_the_charge_open_the_breaker<S: Store>(store: Arc<S>) {
    let provider = Arc::new(FakeProvider::new());
    let c = checkout(&store, &provider, PROVIDER_TIMEOUT);
    let req = request(&*store, &[("MUG-RED", 1)]).await;
    let t0 = now0();
    for who in ["ann", "bob", "cat"] {
        hang_up(&c, &provider, who, &req, t0).await;
    }
    assert_eq!(provider.charges(), 3, "each charge was made");
    let until = open_until(&c, t0);
    assert!(
        matches!(
            c.run("dan", Some(&key("dan", "k")), &req, t0).await,
            Err(CheckoutError::ProviderUnavailable(_))
        ),
        "refused while open"
    );

    let probe_at = until + TimeDelta::seconds(1);
    hang_up(&c, &provider, "dan", &req, probe_at).await;
    let again = open_until(&c, probe_at);
    assert!(again >= probe_at + COOL_DOWN, "open until {again}");
}
// ANCHOR_END: hang_up

/// Opens the breaker with `THRESHOLD` "failed" answers at `at`; the cool-down's end.
async fn open_with_failures<S: Store>(
    c: &Checkout<S, FakeProvider>,
    provider: &FakeProvider,
    req: &CheckoutRequest,
    at: DateTime<Utc>,
) -> DateTime<Utc> {
    provider.script((0..THRESHOLD).map(|_| Behaviour::Fail));
    for who in ["ann", "bob", "cat"] {
        let got = c.run(who, Some(&key(who, "k")), req, at).await;
        let got = got.expect("a stored answer");
        assert_eq!(got.response.status, 502, "{:?}", got.response.body);
    }
    open_until(c, at)
}

// ANCHOR: probe_handed_back
/// The first request after the cool-down takes the probe whatever it turns
/// out to be. A retry of a finished key is replayed from the key, and a
/// request with bad input fails in phase 1: neither calls the provider, so
/// the probe is free again for the next request.
async fn a_probe_that_never_calls_the_provider_is_handed_back<S: Store>(store: Arc<S>) {
    let provider = Arc::new(FakeProvider::new());
    let c = checkout(&store, &provider, SHORT_TIMEOUT);
    let req = request(&*store, &[("MUG-RED", 1)]).await;
    let t0 = now0();
    let paid = c
        .run("eve", Some(&key("eve", "k")), &req, t0)
        .await
        .expect("the provider is well");
    let at = open_with_failures(&c, &provider, &req, t0).await + TimeDelta::seconds(1);
    let calls = provider.calls();

    let replay = c
        .run("eve", Some(&key("eve", "k")), &req, at)
        .await
        .expect("a replay");
    assert!(replay.replayed);
    assert_eq!(replay.response, paid.response);
    assert_eq!(c.breaker.state(at), State::HalfOpen { probing: false });

    let bad = CheckoutRequest {
        lines: vec![(sku("NO-SUCH-MUG"), Quantity::new(1).expect("one"))],
        ..req.clone()
    };
    let got = c.run("fay", Some(&key("fay", "k")), &bad, at).await;
    assert!(
        matches!(got, Err(CheckoutError::UnknownProduct(_))),
        "{got:?}"
    );
    assert_eq!(c.breaker.state(at), State::HalfOpen { probing: false });
    assert_eq!(provider.calls(), calls, "no probe called the provider");

    // The next request probes, the provider answers, and the breaker closes.
    let got = c
        .run("gil", Some(&key("gil", "k")), &req, at)
        .await
        .expect("the probe");
    assert_eq!(got.response.status, 201, "{:?}", got.response.body);
    assert_eq!(c.breaker.state(at), State::Closed { failures: 0 });
}
// ANCHOR_END: probe_handed_back

/// A probe whose phase 1 fails in the database (here a constraint that
/// refuses every new key) hands the probe back too.
#[tokio::test]
async fn postgres_a_probe_that_hits_a_database_error_is_handed_back() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let store = Arc::new(store);
    let provider = Arc::new(FakeProvider::new());
    let c = checkout(&store, &provider, SHORT_TIMEOUT);
    let req = request(&*store, &[("MUG-RED", 1)]).await;
    let at = open_with_failures(&c, &provider, &req, now0()).await + TimeDelta::seconds(1);
    let constraint = |sql: &'static str| sqlx::query(sql).execute(store.pool());
    constraint(
        "ALTER TABLE idempotency_keys ADD CONSTRAINT refuse_new_keys CHECK (false) NOT VALID",
    )
    .await
    .expect("the constraint");

    let got = c.run("dan", Some(&key("dan", "k")), &req, at).await;
    assert!(matches!(got, Err(CheckoutError::Store(_))), "{got:?}");
    assert_eq!(c.breaker.state(at), State::HalfOpen { probing: false });

    constraint("ALTER TABLE idempotency_keys DROP CONSTRAINT refuse_new_keys")
        .await
        .expect("dropped");
    let got = c
        .run("dan", Some(&key("dan", "k")), &req, at)
        .await
        .expect("the probe");
    assert_eq!(got.response.status, 201, "{:?}", got.response.body);
    assert_eq!(c.breaker.state(at), State::Closed { failures: 0 });
}
