//! The HTTP API: every bad input gets a named problem and changes nothing.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::*;
use ecommerce::cart::{CartId, CartStore, MemoryCarts};
use ecommerce::catalog::{Catalog, CatalogConfig};
use ecommerce::checkout::Checkout;
use ecommerce::checkout::breaker::{COOL_DOWN, FAILURE_THRESHOLD};
use ecommerce::checkout::provider::{Behaviour, FakeProvider};
use ecommerce::service::{AccountHeader, AppState, DRAIN_WITHIN, InFlight, admission, router_with};
use ecommerce::store::{MemoryStore, Store};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Shop {
    router: Router,
    store: Arc<MemoryStore>,
    carts: Arc<MemoryCarts>,
    provider: Arc<FakeProvider>,
    in_flight: InFlight,
}

async fn shop(per_second: u32) -> Shop {
    shop_with(per_second, AccountHeader::FromGateway).await
}

async fn shop_with(per_second: u32, accounts: AccountHeader) -> Shop {
    shop_full(per_second, accounts, InFlight::default()).await
}

async fn shop_full(per_second: u32, accounts: AccountHeader, in_flight: InFlight) -> Shop {
    let store = Arc::new(MemoryStore::new());
    seed(&*store).await;
    let carts = Arc::new(MemoryCarts::new());
    let provider = Arc::new(FakeProvider::new());
    let state = AppState {
        catalog: Arc::new(Catalog::new(
            Arc::clone(&store),
            None,
            CatalogConfig::default(),
        )),
        checkout: Checkout::new(Arc::clone(&store), Arc::clone(&provider)),
        store: Arc::clone(&store),
        carts: Arc::clone(&carts),
        admission: admission(per_second, per_second),
        in_flight: in_flight.clone(),
    };
    Shop {
        router: router_with(state, accounts),
        store,
        carts,
        provider,
        in_flight,
    }
}

async fn call(
    s: &Shop,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("a request");
    let res = s.router.clone().oneshot(req).await.expect("a response");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("a body").to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, json)
}

fn problem_type(v: &Value) -> &str {
    v["type"]
        .as_str()
        .and_then(|t| t.rsplit('#').next())
        .unwrap_or("")
}

/// 2 x MUG-RED at 12.50 + 20% tax.
fn checkout_body() -> Value {
    json!({
        "lines": [{"sku": "MUG-RED", "quantity": 2}],
        "currency": "EUR",
        "expected_total_minor": 3000,
        "payment_method": "tok_visa"
    })
}

async fn nothing_changed(s: &Shop) {
    assert!(
        s.store.orders().await.expect("orders").is_empty(),
        "an order was created"
    );
    assert_eq!(s.provider.calls(), 0, "the provider was called");
    assert_eq!(
        s.store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100)
    );
}

/// What, headers, body, expected status, expected problem type.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Value, StatusCode, &'a str);

// ANCHOR: bad_input
#[tokio::test]
async fn bad_checkout_input_is_a_named_problem_and_changes_nothing() {
    let s = shop(0).await;
    let alice = ("x-account", "alice");
    let long = "k".repeat(256);
    let mut unknown = checkout_body();
    unknown["lines"][0]["sku"] = json!("NO-SUCH-THING");
    let mut negative = checkout_body();
    negative["lines"][0]["quantity"] = json!(-1);
    let mut dollars = checkout_body();
    dollars["currency"] = json!("USD");
    let mut doubled = checkout_body();
    doubled["lines"] =
        json!([{"sku": "MUG-RED", "quantity": 1}, {"sku": "MUG-RED", "quantity": 1}]);
    // More lines than an order may have: refused while parsing, before phase 1
    // locks a product row (on PostgreSQL, FOR UPDATE on every SKU named).
    let mut wide = checkout_body();
    wide["lines"] = (0..=ecommerce::service::MAX_LINES)
        .map(|i| json!({"sku": format!("SKU-{i}"), "quantity": 1}))
        .collect();
    // A body past the limit is refused before it is parsed.
    let mut huge = checkout_body();
    huge["payment_method"] = json!("t".repeat(ecommerce::service::BODY_LIMIT));
    let cases: Vec<Case> = vec![
        (
            "too many lines",
            vec![alice, ("idempotency-key", "k6")],
            wide,
            StatusCode::BAD_REQUEST,
            "too-many-lines",
        ),
        (
            "body too large",
            vec![alice, ("idempotency-key", "k7")],
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
        ),
        (
            "unknown product",
            vec![alice, ("idempotency-key", "k1")],
            unknown,
            StatusCode::NOT_FOUND,
            "unknown-product",
        ),
        (
            "negative quantity",
            vec![alice, ("idempotency-key", "k2")],
            negative,
            StatusCode::BAD_REQUEST,
            "invalid-quantity",
        ),
        (
            "currency mismatch",
            vec![alice, ("idempotency-key", "k3")],
            dollars,
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency-mismatch",
        ),
        (
            "duplicate line",
            vec![alice, ("idempotency-key", "k4")],
            doubled,
            StatusCode::BAD_REQUEST,
            "duplicate-line",
        ),
        (
            "malformed key",
            vec![alice, ("idempotency-key", "two words")],
            checkout_body(),
            StatusCode::BAD_REQUEST,
            "invalid-idempotency-key",
        ),
        (
            "key too long",
            vec![alice, ("idempotency-key", long.as_str())],
            checkout_body(),
            StatusCode::BAD_REQUEST,
            "invalid-idempotency-key",
        ),
        (
            "no key",
            vec![alice],
            checkout_body(),
            StatusCode::BAD_REQUEST,
            "missing-idempotency-key",
        ),
        (
            "no account",
            vec![("idempotency-key", "k5")],
            checkout_body(),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
    ];
    for (what, headers, body, status, kind) in cases {
        let (got, h, problem) = call(&s, "POST", "/checkout", &headers, Some(body)).await;
        assert_eq!(got, status, "{what}: {problem}");
        assert_eq!(problem_type(&problem), kind, "{what}");
        assert_eq!(
            h.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{what}"
        );
        nothing_changed(&s).await;
    }
}
// ANCHOR_END: bad_input

#[tokio::test]
async fn bad_cart_input_is_a_named_problem_and_changes_nothing() {
    let s = shop(0).await;
    let guest = CartId::new_guest();
    let uri = format!("/carts/{guest}/items");
    let cases = [
        (
            json!({"sku": "NO-SUCH-THING", "quantity": 1}),
            StatusCode::NOT_FOUND,
            "unknown-product",
        ),
        (
            json!({"sku": "MUG-RED", "quantity": -2}),
            StatusCode::BAD_REQUEST,
            "invalid-quantity",
        ),
        (
            json!({"sku": "MUG-RED", "quantity": 0}),
            StatusCode::BAD_REQUEST,
            "invalid-quantity",
        ),
        (
            json!({"sku": "mug red", "quantity": 1}),
            StatusCode::BAD_REQUEST,
            "invalid-sku",
        ),
        (
            json!({"sku": "MUG-RED"}),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
    ];
    for (body, status, kind) in cases {
        let (got, _, problem) = call(&s, "POST", &uri, &[], Some(body.clone())).await;
        assert_eq!((got, problem_type(&problem)), (status, kind), "{body}");
        assert!(s.carts.get(&guest).await.expect("get").is_empty());
    }
    let (got, _, p) = call(&s, "GET", "/carts/not-a-cart", &[], None).await;
    assert_eq!(
        (got, problem_type(&p)),
        (StatusCode::BAD_REQUEST, "invalid-cart-id")
    );
}

#[tokio::test]
async fn another_accounts_cart_is_forbidden() {
    let s = shop(0).await;
    let body = json!({"sku": "MUG-RED", "quantity": 1});
    let (got, _, p) = call(
        &s,
        "POST",
        "/carts/a-alice/items",
        &[("x-account", "mallory")],
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (got, problem_type(&p)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (got, _, _) = call(&s, "POST", "/carts/a-alice/items", &[], Some(body.clone())).await;
    assert_eq!(got, StatusCode::UNAUTHORIZED);
    let alice = CartId::account("alice").expect("valid");
    assert!(s.carts.get(&alice).await.expect("get").is_empty());
    // Emptying it is refused too; its owner may.
    let mine = [("x-account", "alice")];
    let (got, _, _) = call(&s, "POST", "/carts/a-alice/items", &mine, Some(body)).await;
    assert_eq!(got, StatusCode::OK);
    let (got, _, _) = call(
        &s,
        "DELETE",
        "/carts/a-alice",
        &[("x-account", "mallory")],
        None,
    )
    .await;
    assert_eq!(got, StatusCode::FORBIDDEN);
    assert!(!s.carts.get(&alice).await.expect("get").is_empty());
    let (got, _, v) = call(&s, "DELETE", "/carts/a-alice", &mine, None).await;
    assert_eq!(got, StatusCode::OK);
    assert_eq!(v["lines"], json!([]));
    // Folding another account's cart into your own is refused too.
    let (got, _, _) = call(
        &s,
        "POST",
        "/carts/a-mallory/merge",
        &[("x-account", "mallory")],
        Some(json!({"from": "a-alice"})),
    )
    .await;
    assert_eq!(got, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_guest_cart_is_merged_at_login_then_checked_out_once() {
    let s = shop(0).await;
    let guest = CartId::new_guest();
    let (got, _, cart) = call(
        &s,
        "POST",
        &format!("/carts/{guest}/items"),
        &[],
        Some(json!({"sku": "MUG-RED", "quantity": 2})),
    )
    .await;
    assert_eq!(got, StatusCode::OK, "{cart}");
    let alice = [("x-account", "alice")];
    let (got, _, cart) = call(
        &s,
        "POST",
        "/carts/a-alice/merge",
        &alice,
        Some(json!({"from": guest.to_string()})),
    )
    .await;
    assert_eq!(got, StatusCode::OK);
    assert_eq!(cart["lines"], json!([{"sku": "MUG-RED", "quantity": 2}]));
    let headers = [("x-account", "alice"), ("idempotency-key", "order-1")];
    let (first, h1, order) = call(&s, "POST", "/checkout", &headers, Some(checkout_body())).await;
    assert_eq!(first, StatusCode::CREATED, "{order}");
    assert!(h1.get("idempotent-replayed").is_none());
    let (again, h2, replay) = call(&s, "POST", "/checkout", &headers, Some(checkout_body())).await;
    assert_eq!((again, &replay), (StatusCode::CREATED, &order));
    assert_eq!(
        h2.get("idempotent-replayed").and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let mut other = checkout_body();
    other["lines"][0]["quantity"] = json!(1);
    other["expected_total_minor"] = json!(1500);
    let (reused, _, p) = call(&s, "POST", "/checkout", &headers, Some(other)).await;
    assert_eq!(
        (reused, problem_type(&p)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused")
    );
    assert_eq!(s.provider.charges(), 1);
    let id = order["id"].as_str().expect("an id");
    let (got, _, _) = call(&s, "GET", &format!("/orders/{id}"), &alice, None).await;
    assert_eq!(got, StatusCode::OK);
    let (got, _, _) = call(
        &s,
        "GET",
        &format!("/orders/{id}"),
        &[("x-account", "bob")],
        None,
    )
    .await;
    assert_eq!(
        got,
        StatusCode::NOT_FOUND,
        "another account's order is not confirmed to exist"
    );
}

// ANCHOR: admission_test
#[tokio::test]
async fn admission_refuses_the_excess_at_once_and_changes_nothing() {
    let s = shop(1).await;
    let first = [("x-account", "alice"), ("idempotency-key", "a")];
    let second = [("x-account", "bob"), ("idempotency-key", "b")];
    let (got, _, _) = call(&s, "POST", "/checkout", &first, Some(checkout_body())).await;
    assert_eq!(got, StatusCode::CREATED);
    let (got, h, p) = call(&s, "POST", "/checkout", &second, Some(checkout_body())).await;
    assert_eq!(
        (got, problem_type(&p)),
        (StatusCode::TOO_MANY_REQUESTS, "checkout-busy")
    );
    assert_eq!(
        h.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(s.provider.charges(), 1);
    assert_eq!(s.store.orders().await.expect("orders").len(), 1);
}
// ANCHOR_END: admission_test

// ANCHOR: breaker_test
#[tokio::test]
async fn an_open_breaker_answers_503_with_retry_after_and_changes_nothing() {
    let s = shop(0).await;
    s.provider
        .script((0..FAILURE_THRESHOLD).map(|_| Behaviour::Fail));
    for i in 0..FAILURE_THRESHOLD {
        let k = format!("fail-{i}");
        let h = [("x-account", "alice"), ("idempotency-key", k.as_str())];
        let (got, _, p) = call(&s, "POST", "/checkout", &h, Some(checkout_body())).await;
        assert_eq!(
            (got, problem_type(&p)),
            (StatusCode::BAD_GATEWAY, "payment-provider-failed")
        );
    }
    let calls = s.provider.calls();
    let orders = s.store.orders().await.expect("orders").len();
    let h = [("x-account", "bob"), ("idempotency-key", "b")];
    let (got, headers, p) = call(&s, "POST", "/checkout", &h, Some(checkout_body())).await;
    assert_eq!(
        (got, problem_type(&p)),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "payment-provider-unavailable"
        )
    );
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let retry_after: i64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=COOL_DOWN.num_seconds()).contains(&retry_after));
    assert_eq!(s.provider.calls(), calls, "the provider was not called");
    assert_eq!(s.store.orders().await.expect("orders").len(), orders);
    assert_eq!(
        s.store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100),
        "nothing reserved"
    );
}
// ANCHOR_END: breaker_test

#[tokio::test]
async fn catalog_and_search_routes() {
    let s = shop(0).await;
    let (got, _, p) = call(&s, "GET", "/products/MUG-RED", &[], None).await;
    assert_eq!(
        (got, p["price"]["minor"].clone()),
        (StatusCode::OK, json!(1250))
    );
    let (got, _, p) = call(&s, "GET", "/products/NOPE", &[], None).await;
    assert_eq!(
        (got, problem_type(&p)),
        (StatusCode::NOT_FOUND, "unknown-product")
    );
    let (got, _, p) = call(&s, "GET", "/products/no%20pe", &[], None).await;
    assert_eq!(
        (got, problem_type(&p)),
        (StatusCode::BAD_REQUEST, "invalid-sku")
    );
    let (got, _, hits) = call(&s, "GET", "/search?q=mug", &[], None).await;
    assert_eq!(got, StatusCode::OK);
    assert_eq!(hits[0]["sku"], "MUG-RED");
    let (got, _, p) = call(&s, "GET", "/search?q=%20%21", &[], None).await;
    assert_eq!(
        (got, problem_type(&p)),
        (StatusCode::BAD_REQUEST, "invalid-query")
    );
    let long = format!("/search?q={}", "a".repeat(201));
    let (got, _, _) = call(&s, "GET", &long, &[], None).await;
    assert_eq!(got, StatusCode::BAD_REQUEST);
}

/// Adding never checks stock: more units than the shop holds still go into
/// the cart, and checkout is where stock is decided.
#[tokio::test]
async fn adding_more_than_the_stock_to_a_cart_succeeds() {
    let s = shop(0).await;
    let stock = s
        .store
        .stock(&sku("CAP-USD"))
        .await
        .expect("stock")
        .expect("a product");
    let wanted = i64::from(stock) + 1;
    let guest = CartId::new_guest();
    let (got, _, cart) = call(
        &s,
        "POST",
        &format!("/carts/{guest}/items"),
        &[],
        Some(json!({"sku": "CAP-USD", "quantity": wanted})),
    )
    .await;
    assert_eq!(got, StatusCode::OK, "{cart}");
    assert_eq!(
        cart["lines"],
        json!([{"sku": "CAP-USD", "quantity": wanted}])
    );
    assert_eq!(
        s.store.stock(&sku("CAP-USD")).await.expect("stock"),
        Some(stock),
        "adding reserves nothing"
    );
}

// ANCHOR: header_refused
/// Configured without a gateway that strips a client's `X-Account`, the
/// service refuses the header: nobody can name an account, so nobody can
/// act as another. Guest carts still work.
#[tokio::test]
async fn without_a_gateway_the_account_header_is_refused() {
    let s = shop_with(0, AccountHeader::Refused).await;
    let alice = ("x-account", "alice");
    for (method, uri, body) in [
        ("GET", "/carts/a-alice", None),
        (
            "POST",
            "/carts/a-alice/items",
            Some(json!({"sku": "MUG-RED", "quantity": 1})),
        ),
        ("POST", "/checkout", Some(checkout_body())),
        ("GET", "/orders/00000000-0000-0000-0000-000000000000", None),
    ] {
        let (got, _, problem) =
            call(&s, method, uri, &[alice, ("idempotency-key", "k1")], body).await;
        assert_eq!(got, StatusCode::BAD_REQUEST, "{method} {uri}: {problem}");
        assert_eq!(
            problem_type(&problem),
            "account-header-refused",
            "{method} {uri}"
        );
        nothing_changed(&s).await;
    }
    assert!(
        s.carts
            .get(&CartId::account("alice").expect("valid"))
            .await
            .expect("get")
            .is_empty()
    );
    let (got, _, _) = call(
        &s,
        "POST",
        "/carts/g-guest1/items",
        &[],
        Some(json!({"sku": "MUG-RED", "quantity": 1})),
    )
    .await;
    assert_eq!(got, StatusCode::OK, "a guest cart needs no account");
}
// ANCHOR_END: header_refused

// ANCHOR: hang_up_http
/// Shoppers who hang up while a declined card is being charged cannot open
/// the breaker: the service runs each checkout to its end whatever the
/// client does, so the breaker hears the provider's answer (a decline: the
/// provider is up), never a hung-up client.
#[tokio::test]
async fn shoppers_who_hang_up_cannot_open_the_breaker() {
    let s = shop(0).await;
    for i in 0..FAILURE_THRESHOLD + 1 {
        let decline = Arc::new(tokio::sync::Notify::new());
        s.provider
            .script([Behaviour::DeclineWhenNotified(Arc::clone(&decline))]);
        let k = format!("hang-{i}");
        let headers = [("x-account", "mallory"), ("idempotency-key", k.as_str())];
        tokio::select! {
            got = call(&s, "POST", "/checkout", &headers, Some(checkout_body())) => {
                panic!("the charge waits, yet the checkout answered {got:?}");
            }
            () = async {
                while s.provider.calls() <= u64::from(i) {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            } => {}
        }
        // The client is gone; the provider now declines.
        decline.notify_one();
        // The checkout goes on without its client: its order ends as failed.
        for _ in 0..200 {
            let orders = s.store.orders().await.expect("orders");
            if orders.iter().all(|o| o.status != "pending_payment") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let (got, _, body) = call(
        &s,
        "POST",
        "/checkout",
        &[("x-account", "alice"), ("idempotency-key", "after")],
        Some(checkout_body()),
    )
    .await;
    assert_eq!(
        got,
        StatusCode::CREATED,
        "the breaker stayed closed: {body}"
    );
    let orders = s.store.orders().await.expect("orders");
    assert_eq!(
        orders
            .iter()
            .filter(|o| o.status == "payment_failed")
            .count(),
        usize::try_from(FAILURE_THRESHOLD + 1).expect("small"),
        "every abandoned checkout reached its outcome, its stock released"
    );
}
// ANCHOR_END: hang_up_http

// ANCHOR: promotion_guessing
/// Promotion codes cannot be guessed without limit: each account gets
/// [`PROMOTION_BURST`] attempts with a code, then one per
/// [`PROMOTION_PERIOD`]; past that a checkout naming a code is refused with
/// 429 before the code is looked up, so the refusal tells nothing about it.
#[tokio::test]
async fn promotion_guesses_are_limited_per_account() {
    use ecommerce::checkout::{PROMOTION_BURST, PROMOTION_PERIOD};
    let s = shop(0).await;
    for i in 0..PROMOTION_BURST {
        let mut body = checkout_body();
        body["promotion"] = json!(format!("GUESS{i}"));
        let k = format!("g-{i}");
        let (got, _, p) = call(
            &s,
            "POST",
            "/checkout",
            &[("x-account", "mallory"), ("idempotency-key", k.as_str())],
            Some(body),
        )
        .await;
        assert_eq!(problem_type(&p), "unknown-promotion", "guess {i}: {got}");
    }
    // The next guess, even of a real code, is refused before the lookup.
    let mut body = checkout_body();
    body["promotion"] = json!("SPRING10");
    let (got, headers, p) = call(
        &s,
        "POST",
        "/checkout",
        &[("x-account", "mallory"), ("idempotency-key", "real")],
        Some(body),
    )
    .await;
    assert_eq!(got, StatusCode::TOO_MANY_REQUESTS, "{p}");
    assert_eq!(problem_type(&p), "promotion-attempts");
    let wait: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(wait >= 1 && wait <= PROMOTION_PERIOD.as_secs(), "{wait}");
    nothing_changed(&s).await;
    // Another account is not affected; a checkout without a code neither.
    let (got, _, _) = call(
        &s,
        "POST",
        "/checkout",
        &[("x-account", "mallory"), ("idempotency-key", "plain")],
        Some(checkout_body()),
    )
    .await;
    assert_eq!(got, StatusCode::CREATED);
}
// ANCHOR_END: promotion_guessing

// ANCHOR: admission_after_auth
/// Flash-sale admission is spent after authentication: requests without an
/// account (or without a key) are refused for that and take no token from
/// the shoppers who have one.
#[tokio::test]
async fn unauthenticated_checkouts_spend_no_admission() {
    let s = shop(1).await;
    for _ in 0..3 {
        let (got, _, p) = call(
            &s,
            "POST",
            "/checkout",
            &[("idempotency-key", "x")],
            Some(checkout_body()),
        )
        .await;
        assert_eq!(problem_type(&p), "unauthenticated", "{got}");
        let (got, _, p) = call(
            &s,
            "POST",
            "/checkout",
            &[("x-account", "mallory")],
            Some(checkout_body()),
        )
        .await;
        assert_eq!(problem_type(&p), "missing-idempotency-key", "{got}");
    }
    let (got, _, p) = call(
        &s,
        "POST",
        "/checkout",
        &[("x-account", "alice"), ("idempotency-key", "a")],
        Some(checkout_body()),
    )
    .await;
    assert_eq!(got, StatusCode::CREATED, "{p}");
}
// ANCHOR_END: admission_after_auth

/// Starts a checkout whose charge waits for `decline`, and hangs up once
/// the provider has been called (its `calls()` passes `before`).
async fn hang_up_during_the_charge(s: &Shop, key: &str, before: u64) {
    let headers = [("x-account", "mallory"), ("idempotency-key", key)];
    tokio::select! {
        got = call(s, "POST", "/checkout", &headers, Some(checkout_body())) => {
            panic!("the charge waits, yet the checkout answered {got:?}");
        }
        () = async {
            while s.provider.calls() <= before {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        } => {}
    }
}

// ANCHOR: drain_at_shutdown
/// A shutdown (after the server has closed its connections) waits for the
/// checkouts whose client hung up: when it returns, their outcome is
/// recorded and their stock released, not left `pending_payment`.
#[tokio::test]
async fn a_shutdown_waits_for_checkouts_whose_client_hung_up() {
    let s = shop(0).await;
    let decline = Arc::new(tokio::sync::Notify::new());
    s.provider
        .script([Behaviour::DeclineWhenNotified(Arc::clone(&decline))]);
    hang_up_during_the_charge(&s, "deploy", 0).await;
    let in_flight = s.in_flight.clone();
    let drain = tokio::spawn(async move { in_flight.drain(DRAIN_WITHIN).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !drain.is_finished(),
        "the shutdown did not wait for the checkout"
    );
    decline.notify_one();
    assert!(
        drain.await.expect("the drain"),
        "drained before the deadline"
    );
    let orders = s.store.orders().await.expect("orders");
    assert_eq!(orders.len(), 1);
    assert_eq!(
        orders[0].status, "payment_failed",
        "its outcome is recorded"
    );
    assert_eq!(
        s.store.stock(&sku("MUG-RED")).await.expect("stock"),
        Some(100),
        "its stock is released"
    );
}
// ANCHOR_END: drain_at_shutdown

// ANCHOR: bounded_tasks
/// Checkouts whose client hung up keep running, but no more than the
/// service's permits: past them a checkout is refused at once (429
/// `checkout-busy`) and never reaches the provider.
#[tokio::test]
async fn checkouts_left_running_by_hung_up_clients_are_bounded() {
    let s = shop_full(0, AccountHeader::FromGateway, InFlight::new(2)).await;
    let decline = Arc::new(tokio::sync::Notify::new());
    s.provider.script([
        Behaviour::DeclineWhenNotified(Arc::clone(&decline)),
        Behaviour::DeclineWhenNotified(Arc::clone(&decline)),
    ]);
    hang_up_during_the_charge(&s, "orphan-0", 0).await;
    hang_up_during_the_charge(&s, "orphan-1", 1).await;
    assert_eq!(s.in_flight.running(), 2);
    let (got, headers, p) = call(
        &s,
        "POST",
        "/checkout",
        &[("x-account", "mallory"), ("idempotency-key", "orphan-2")],
        Some(checkout_body()),
    )
    .await;
    assert_eq!(got, StatusCode::TOO_MANY_REQUESTS, "{p}");
    assert_eq!(problem_type(&p), "checkout-busy");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        s.provider.calls(),
        2,
        "the refused checkout charged nothing"
    );
    decline.notify_one();
    decline.notify_one();
    assert!(s.in_flight.drain(DRAIN_WITHIN).await);
    assert_eq!(s.store.orders().await.expect("orders").len(), 2);
}
// ANCHOR_END: bounded_tasks

// ANCHOR: promotion_replay
/// A retry of a finished checkout that named a code replays its answer
/// without spending a promotion attempt: lost answers can be retried as
/// often as the client needs.
#[tokio::test]
async fn retries_of_a_finished_checkout_with_a_code_spend_no_attempt() {
    use ecommerce::checkout::PROMOTION_BURST;
    let s = shop(0).await;
    let mut body = checkout_body();
    body["promotion"] = json!("SPRING10");
    body["expected_total_minor"] = json!(2700);
    let headers = [("x-account", "alice"), ("idempotency-key", "lost-answer")];
    let (got, _, first) = call(&s, "POST", "/checkout", &headers, Some(body.clone())).await;
    assert_eq!(got, StatusCode::CREATED, "{first}");
    for i in 0..=PROMOTION_BURST {
        let (got, h, p) = call(&s, "POST", "/checkout", &headers, Some(body.clone())).await;
        assert_eq!(got, StatusCode::CREATED, "retry {i}: {p}");
        assert_eq!(
            h.get("idempotent-replayed").and_then(|v| v.to_str().ok()),
            Some("true")
        );
        assert_eq!(p, first);
    }
    assert_eq!(s.provider.charges(), 1);
}
// ANCHOR_END: promotion_replay
