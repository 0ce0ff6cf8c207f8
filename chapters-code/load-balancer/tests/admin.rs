//! The admin route: every bad backend set gets a named error and leaves the set in force.

mod common;

use common::*;
use hyper::{Method, StatusCode};
use load_balancer::algo::Algorithm;
use load_balancer::proxy::admin::{MAX_BACKENDS, MAX_WEIGHT};
use load_balancer::proxy::backends::BackendSpec;
use load_balancer::proxy::config::HealthPolicy;

fn set_json(entries: &[(&str, i64)]) -> String {
    let items: Vec<String> = entries
        .iter()
        .map(|(a, w)| format!(r#"{{"addr":"{a}","weight":{w}}}"#))
        .collect();
    format!(r#"{{"backends":[{}]}}"#, items.join(","))
}

/// An address nothing listens on: a port bound, then released.
async fn closed_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    drop(l);
    addr
}

// ANCHOR: bad_sets
/// Each bad set is refused with its own problem type, and the set in force stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_backend_sets_get_named_errors_and_change_nothing() {
    let pool = backends(&[BackendSpec::instant(1), BackendSpec::instant(2)]).await;
    let proxy = proxy_over(&pool[..1], Algorithm::RoundRobin, HealthPolicy::default()).await;
    let before = proxy.pool_addrs().await;
    let (live, other) = (pool[0].addr.to_string(), pool[1].addr.to_string());
    let unreachable = closed_port().await;
    // The same endpoint spelled as an IPv4-mapped IPv6 address.
    let mapped = format!("[::ffff:127.0.0.1]:{}", pool[1].addr.port());
    let too_many: Vec<(String, i64)> = (0..=MAX_BACKENDS)
        .map(|i| (format!("127.0.0.1:{}", 10_000 + i), 1))
        .collect();
    let too_many: Vec<(&str, i64)> = too_many.iter().map(|(a, w)| (a.as_str(), *w)).collect();
    let cases: Vec<(String, &str)> = vec![
        (set_json(&[]), "empty-pool"),
        (set_json(&[(&other, 0)]), "invalid-weight"),
        (set_json(&[(&other, -1)]), "invalid-weight"),
        (set_json(&[(&other, MAX_WEIGHT + 1)]), "invalid-weight"),
        (set_json(&[("localhost:80", 1)]), "invalid-address"),
        (set_json(&[("127.0.0.1", 1)]), "invalid-address"),
        (set_json(&[(&other, 1), (&other, 2)]), "duplicate-address"),
        (set_json(&[(&other, 1), (&mapped, 1)]), "duplicate-address"),
        (
            set_json(&[(&other, 1), (&unreachable, 1)]),
            "unreachable-backend",
        ),
        (set_json(&too_many), "too-many-backends"),
        (r#"{"backends":"#.to_string(), "malformed-request"),
        (
            r#"{"backends":[],"extra":1}"#.to_string(),
            "malformed-request",
        ),
    ];
    for (body, expected) in cases {
        let answer = proxy.put_set(&body).await;
        assert_eq!(
            answer.problem_type().as_deref(),
            Some(expected),
            "{body}: {answer:?}"
        );
        assert!(answer.status.is_client_error(), "{body}: {answer:?}");
        assert_eq!(proxy.pool_addrs().await, before, "{body} changed the set");
    }
    // Traffic still flows to the set in force.
    assert_eq!(proxy.get("/").await.backend.as_deref(), Some(live.as_str()));
}
// ANCHOR_END: bad_sets

/// A good set replaces the old one, and traffic follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_set_replaces_the_pool() {
    let pool = backends(&[BackendSpec::instant(1), BackendSpec::instant(2)]).await;
    let proxy = proxy_over(&pool[..1], Algorithm::RoundRobin, HealthPolicy::default()).await;
    let other = pool[1].addr.to_string();
    let answer = proxy.put_set(&set_json(&[(&other, 3)])).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(proxy.pool_addrs().await, vec![other.clone()]);
    assert_eq!(
        proxy.get("/").await.backend.as_deref(),
        Some(other.as_str())
    );
}

/// Without the token, or with a wrong one, the admin routes answer 401 and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_routes_need_the_token() {
    let pool = backends(&[BackendSpec::instant(1), BackendSpec::instant(2)]).await;
    let proxy = proxy_over(&pool[..1], Algorithm::RoundRobin, HealthPolicy::default()).await;
    let before = proxy.pool_addrs().await;
    let body = set_json(&[(&pool[1].addr.to_string(), 1)]);
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("authorization", TOKEN)],
    ] {
        let mut h = headers.clone();
        h.push(("content-type", "application/json"));
        let answer = proxy.send(Method::PUT, "/_lb/backends", &h, &body).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.problem_type().as_deref(), Some("admin-unauthorized"));
        let read = proxy.send(Method::GET, "/_lb/backends", &headers, "").await;
        assert_eq!(read.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(proxy.pool_addrs().await, before);
}

/// A request body over the limit is refused with the named 413 before any backend sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_before_any_backend() {
    let pool = backends(&[BackendSpec::instant(1)]).await;
    let proxy = proxy_over(&pool, Algorithm::RoundRobin, HealthPolicy::default()).await;
    let body = "x".repeat(load_balancer::proxy::config::MAX_BODY_BYTES + 1);
    let answer = proxy.send(Method::POST, "/upload", &[], &body).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.problem_type().as_deref(), Some("body-too-large"));
    assert_eq!(pool[0].requests(), 0);
}
