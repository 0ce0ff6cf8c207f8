//! The payment provider goes down and comes back, behind the circuit
//! breaker: refusals while it is open change nothing, and every order left
//! waiting is charged exactly once when it returns. One suite, both stores.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use common::*;
use ecommerce::checkout::breaker::{Breaker, BreakerConfig, State};
use ecommerce::checkout::provider::{Behaviour, FakeProvider};
use ecommerce::checkout::{Checkout, CheckoutError};
use ecommerce::store::{MemoryStore, Store};

/// Failures in a row that open the breaker in this test.
const THRESHOLD: u32 = 3;
/// Its cool-down.
const COOL_DOWN: TimeDelta = TimeDelta::seconds(30);

#[tokio::test]
async fn memory_provider_down_then_back() {
    let store = MemoryStore::new();
    seed(&store).await;
    provider_down_then_back(Arc::new(store)).await;
}

#[tokio::test]
async fn postgres_provider_down_then_back() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    provider_down_then_back(Arc::new(store)).await;
}

/// What the store and the provider hold: (orders by status, MUG-RED left, charges, calls).
async fn snapshot<S: Store>(store: &S, p: &FakeProvider) -> (Vec<String>, Option<i32>, usize, u64) {
    let mut statuses: Vec<String> = store
        .orders()
        .await
        .expect("orders")
        .into_iter()
        .map(|o| o.status)
        .collect();
    statuses.sort();
    let stock = store.stock(&sku("MUG-RED")).await.expect("stock");
    (statuses, stock, p.charges(), p.calls())
}

// ANCHOR: down_then_back
async fn provider_down_then_back<S: Store>(store: Arc<S>) {
    let provider = Arc::new(FakeProvider::new());
    let mut c = Checkout::new(Arc::clone(&store), Arc::clone(&provider));
    c.provider_timeout = Duration::from_millis(100);
    c.breaker = Arc::new(
        Breaker::new(BreakerConfig {
            failure_threshold: THRESHOLD,
            cool_down: COOL_DOWN,
        })
        .expect("a valid config"),
    );
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
    assert_eq!(c.breaker.state(t(0)), State::Open { until: t(30) });
    let before = snapshot(&*store, &provider).await;
    let mut waiting = vec!["paid"];
    waiting.extend(["pending_payment"; 3]);
    assert_eq!(before.0, waiting);
    assert_eq!((before.2, before.3), (4, 4), "charged, answers lost");

    // While open, a retry of a finished checkout needs no provider: it gets
    // its stored answer, as every retry does.
    let replay = c
        .run("eve", Some(&key("eve", "k")), &req, t(10))
        .await
        .expect("a replay, not a refusal");
    assert!(replay.replayed);
    assert_eq!(replay.response, paid.response);

    // While open: a retry of a waiting order and a new shopper are both
    // refused at once, with the time left, and nothing changes.
    for (who, k) in [("ann", "k"), ("dan", "k")] {
        match c.run(who, Some(&key(who, k)), &req, t(10)).await {
            Err(CheckoutError::ProviderUnavailable(r)) => {
                assert_eq!(r.retry_after, TimeDelta::seconds(20));
            }
            other => panic!("expected a fast refusal, got {other:?}"),
        }
    }
    assert_eq!(
        snapshot(&*store, &provider).await,
        before,
        "nothing changed"
    );

    // After the cool-down one probe goes; the provider is still slow, so
    // the breaker opens for another cool-down.
    provider.script([Behaviour::Slow(Duration::from_millis(400))]);
    let probe = c.run("dan", Some(&key("dan", "k")), &req, t(31)).await;
    assert!(matches!(probe, Err(CheckoutError::Payment(_))), "{probe:?}");
    assert_eq!(c.breaker.state(t(31)), State::Open { until: t(61) });
    let refused = c.run("ann", Some(&key("ann", "k")), &req, t(40)).await;
    assert!(
        matches!(refused, Err(CheckoutError::ProviderUnavailable(_))),
        "{refused:?}"
    );

    // The provider is back. The first retry is the probe and closes the
    // breaker; then every waiting order finishes, charged once.
    for who in ["ann", "bob", "cat", "dan"] {
        let got = c
            .run(who, Some(&key(who, "k")), &req, t(62))
            .await
            .expect("the provider is back");
        assert_eq!(got.response.status, 201, "{:?}", got.response.body);
        assert_eq!(c.breaker.state(t(62)), State::Closed { failures: 0 });
    }
    let after = snapshot(&*store, &provider).await;
    assert_eq!(after.0, vec!["paid"; 5], "one order per shopper");
    assert_eq!(after.1, Some(95), "stock reserved once per order");
    assert_eq!(after.2, 5, "one charge per order, retries deduplicated");
}
// ANCHOR_END: down_then_back
