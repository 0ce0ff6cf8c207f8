//! Redis stops answering: carts fail fast with a named problem, the catalog
//! reads PostgreSQL, checkout never notices.
//!
//! A proxy sits between the service and the real Redis. While it is healthy
//! it forwards bytes both ways; once it goes silent it keeps every connection
//! open and swallows what it reads: the worst kind of outage, where nothing
//! is refused and nothing answers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use ecommerce::cart::{CartId, REDIS_TIMEOUT, RedisCarts};
use ecommerce::catalog::{Catalog, CatalogConfig, CatalogMetrics};
use ecommerce::catalog::{FillPolicy, RedisL2};
use ecommerce::checkout::Checkout;
use ecommerce::checkout::provider::FakeProvider;
use ecommerce::service::{AppState, InFlight, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Copies `from` to `to` until `silent` is set; then reads and drops.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if silent.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A proxy to the Redis at `url`; returns its URL and the switch that silences it.
async fn silenceable_proxy(url: &str) -> (String, Arc<AtomicBool>) {
    let rest = url.strip_prefix("redis://").expect("a redis:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let upstream = authority.rsplit('@').next().expect("host").to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let silent = Arc::new(AtomicBool::new(false));
    let switch = Arc::clone(&silent);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.expect("upstream Redis");
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, Arc::clone(&silent)));
            tokio::spawn(pump(sr, cw, Arc::clone(&silent)));
        }
    });
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    (format!("redis://{user}{addr}{path}"), switch)
}

async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-account", "alice")
        .header("idempotency-key", "redis-down-1")
        .header("content-type", "application/json");
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("a request");
    let res = router.clone().oneshot(req).await.expect("a response");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("a body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn problem_type(v: &Value) -> &str {
    v["type"]
        .as_str()
        .and_then(|t| t.rsplit('#').next())
        .unwrap_or("")
}

// ANCHOR: redis_down
#[tokio::test]
async fn with_redis_silent_carts_fail_fast_the_catalog_reads_postgres_and_checkout_works() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let Some(r) = testkit::redis().await else {
        return;
    };
    let (url, silent) = silenceable_proxy(&r.url).await;
    let store = Arc::new(store);
    let l2 = RedisL2::connect(&url, &r.prefix, FillPolicy::KeepHigherVersion)
        .await
        .expect("Redis through the proxy");
    let catalog = Arc::new(Catalog::new(
        Arc::clone(&store),
        Some(l2),
        CatalogConfig::default(),
    ));
    let carts = RedisCarts::connect(&url, &r.prefix)
        .await
        .expect("Redis through the proxy");
    let provider = Arc::new(FakeProvider::new());
    let app = router(AppState {
        catalog: Arc::clone(&catalog),
        checkout: Checkout::new(Arc::clone(&store), Arc::clone(&provider)),
        store: Arc::clone(&store),
        carts: Arc::new(carts),
        admission: None,
        in_flight: InFlight::default(),
    });
    let cart = format!("/carts/{}/items", CartId::new_guest());
    let line = json!({"sku": "MUG-RED", "quantity": 1});

    // Healthy: the cart works through the proxy.
    let (got, _) = call(&app, "POST", &cart, Some(line.clone())).await;
    assert_eq!(got, StatusCode::OK);

    silent.store(true, Ordering::SeqCst);

    // Carts: a named 503 after the cart timeout, not a hang until the request timeout.
    let started = Instant::now();
    let (got, p) = call(&app, "POST", &cart, Some(line)).await;
    let took = started.elapsed();
    assert_eq!(
        (got, problem_type(&p)),
        (StatusCode::SERVICE_UNAVAILABLE, "cart-unavailable")
    );
    assert!(
        took < REDIS_TIMEOUT + Duration::from_millis(500),
        "the cart call took {took:?}; its timeout is {REDIS_TIMEOUT:?}"
    );

    // Catalog: a product no instance has cached is read from PostgreSQL.
    let errors_before = CatalogMetrics::get(&catalog.metrics.l2_errors);
    let loads_before = CatalogMetrics::get(&catalog.metrics.store_loads);
    let (got, product) = call(&app, "GET", "/products/BOOK-RUST", None).await;
    assert_eq!(
        (got, product["price"]["minor"].clone()),
        (StatusCode::OK, json!(3999))
    );
    assert_eq!(
        CatalogMetrics::get(&catalog.metrics.store_loads),
        loads_before + 1
    );
    assert!(
        CatalogMetrics::get(&catalog.metrics.l2_errors) > errors_before,
        "the Redis failure is counted"
    );

    // Checkout does not touch Redis: the shopper can still pay, once.
    let order = json!({
        "lines": [{"sku": "MUG-RED", "quantity": 2}],
        "currency": "EUR",
        "expected_total_minor": 3000,
        "payment_method": "tok_visa"
    });
    let (got, body) = call(&app, "POST", "/checkout", Some(order)).await;
    assert_eq!(got, StatusCode::CREATED, "{body}");
    assert_eq!(provider.charges(), 1);
}
// ANCHOR_END: redis_down
