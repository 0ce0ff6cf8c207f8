//! The layer refuses before the handler runs and before the body is read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use block_rate_limiter::{
    GlobalBucket, KeyedBuckets, ManualClock, Quota, RateLimitLayer, by_client_ip, everyone,
};
use tower::ServiceExt;

/// A body that records whether anyone ever polled it.
fn watched_body(polled: Arc<AtomicBool>) -> Body {
    Body::from_stream(futures_util::stream::poll_fn(move |_| {
        polled.store(true, Ordering::SeqCst);
        Poll::Ready(Some(Ok::<_, std::io::Error>(Bytes::from_static(b"{}"))))
    }))
}

fn counting_app(
    calls: Arc<AtomicUsize>,
    layer: RateLimitLayer<GlobalBucket<ManualClock>, ()>,
) -> Router {
    Router::new().route(
        "/orders",
        post(move |body: axum::Json<serde_json::Value>| {
            let calls = Arc::clone(&calls);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                body.0.to_string()
            }
        })
        .layer(layer),
    )
}

// ANCHOR: before_body
#[tokio::test]
async fn a_refused_request_reaches_neither_the_handler_nor_its_body() {
    let quota = Quota::per_second(1, 1).expect("quota");
    let limiter = Arc::new(GlobalBucket::with_clock(quota, ManualClock::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let app = counting_app(Arc::clone(&calls), RateLimitLayer::new(limiter, everyone));

    let admitted = Request::post("/orders")
        .header("content-type", "application/json")
        .body(Body::from("{\"sku\":\"a\"}"))
        .expect("request");
    let response = app.clone().oneshot(admitted).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The clock does not move, so the bucket stays empty.
    let polled = Arc::new(AtomicBool::new(false));
    let refused = Request::post("/orders")
        .header("content-type", "application/json")
        .body(watched_body(Arc::clone(&polled)))
        .expect("request");
    let response = app.oneshot(refused).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the handler was not called"
    );
    assert!(!polled.load(Ordering::SeqCst), "the body was never read");
}
// ANCHOR_END: before_body

#[tokio::test]
async fn clients_are_limited_apart_and_a_forged_forwarded_for_changes_nothing() {
    let quota = Quota::per_second(1, 1).expect("quota");
    let limiter = Arc::new(KeyedBuckets::with_clock(quota, 100, ManualClock::new()));
    let app = Router::new().route(
        "/x",
        post(|| async { "ok" }).layer(RateLimitLayer::new(limiter, by_client_ip(false))),
    );
    let send = |peer: [u8; 4], forwarded: &str| {
        let mut request = Request::post("/x")
            .header("x-forwarded-for", forwarded)
            .body(Body::empty())
            .expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((peer, 4000))));
        app.clone().oneshot(request)
    };
    let status = |r: axum::response::Response| r.status();
    assert_eq!(
        status(send([10, 0, 0, 1], "1.1.1.1").await.expect("ok")),
        StatusCode::OK
    );
    // Same peer, another forged address: still the same client.
    assert_eq!(
        status(send([10, 0, 0, 1], "2.2.2.2").await.expect("ok")),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(send([10, 0, 0, 2], "1.1.1.1").await.expect("ok")),
        StatusCode::OK
    );
}
