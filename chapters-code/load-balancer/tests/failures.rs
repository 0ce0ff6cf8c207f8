//! Backends killed, failing and drained in the middle of a run, through the real proxy on loopback.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use hyper::{Method, StatusCode};
use load_balancer::algo::Algorithm;
use load_balancer::proxy::backends::BackendSpec;
use load_balancer::proxy::config::{EJECT_AFTER, HealthPolicy, RETRY_RATIO, RETRY_RESERVE};
use load_balancer::proxy::pool::ejection_bound;

// ANCHOR: kill_mid_run
/// Eight clients send GETs through the proxy to three backends; one is
/// killed while requests to it are in flight. Every request still gets a
/// 200: the interrupted ones and the refused ones are retried elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_backend_mid_run_loses_no_idempotent_request() {
    let mut pool = backends(&[slow(20, 1), slow(20, 2), slow(20, 3)]).await;
    let proxy = Arc::new(proxy_over(&pool, Algorithm::RoundRobin, fast_policy()).await);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..25 {
                    statuses.push(proxy.get("/item").await.status);
                }
                statuses
            })
        })
        .collect();
    // Kill the first backend once requests to it are in flight.
    assert!(eventually(Duration::from_secs(5), || pool[0].requests() >= 10).await);
    pool[0].kill().await;
    let mut total = 0;
    for c in clients {
        for status in c.await.expect("client") {
            assert_eq!(status, StatusCode::OK, "an idempotent request was lost");
            total += 1;
        }
    }
    assert_eq!(total, 200);
}
// ANCHOR_END: kill_mid_run

// ANCHOR: post_not_resent
/// A POST in flight when its backend dies gets the named error, and the
/// other backend never sees it: no silent double send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_interrupted_mid_request_gets_a_named_error_and_is_not_resent() {
    let mut pool = backends(&[slow(2_000, 1), BackendSpec::instant(2)]).await;
    let proxy = Arc::new(proxy_over(&pool, Algorithm::RoundRobin, fast_policy()).await);
    // Round robin starts with the first backend: the slow one.
    let post = {
        let proxy = proxy.clone();
        tokio::spawn(async move { proxy.send(Method::POST, "/orders", &[], "{}").await })
    };
    assert!(eventually(Duration::from_secs(5), || pool[0].requests() == 1).await);
    pool[0].kill().await;
    let answer = post.await.expect("client");
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{answer:?}");
    assert_eq!(
        answer.problem_type().as_deref(),
        Some("upstream-interrupted")
    );
    assert_eq!(
        pool[1].counters.non_idempotent.load(Ordering::SeqCst),
        0,
        "the POST was sent twice"
    );
}
// ANCHOR_END: post_not_resent

/// A POST whose connection is refused never left the proxy, so it is safe
/// to send elsewhere, and it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_to_a_dead_backend_is_sent_to_another() {
    let mut pool = backends(&[BackendSpec::instant(1), BackendSpec::instant(2)]).await;
    let proxy = proxy_over(&pool, Algorithm::RoundRobin, HealthPolicy::default()).await;
    let dead = pool[0].addr.to_string();
    pool[0].kill().await;
    let answer = proxy.send(Method::POST, "/orders", &[], "{}").await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_ne!(answer.backend.as_deref(), Some(dead.as_str()));
    assert_eq!(pool[1].counters.non_idempotent.load(Ordering::SeqCst), 1);
}

// ANCHOR: ejection_bound
/// One backend of four answers every request with a 503. With `C`
/// clients, it receives at most `EJECT_AFTER + C - 1` requests: after its
/// `EJECT_AFTER`-th failure in a row it is ejected, and only the requests
/// already in flight to it can still reach it. Every client sees a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_backend_stops_receiving_traffic_within_the_bound() {
    const CLIENTS: u32 = 4;
    let pool = backends(&[slow(5, 1), slow(5, 2), slow(5, 3), slow(5, 4)]).await;
    pool[3].counters.failing.store(true, Ordering::SeqCst);
    let proxy = Arc::new(proxy_over(&pool, Algorithm::RoundRobin, fast_policy()).await);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    assert_eq!(proxy.get("/").await.status, StatusCode::OK);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("client");
    }
    let received = pool[3].requests();
    assert!(
        received <= ejection_bound(EJECT_AFTER, CLIENTS),
        "the failing backend received {received} requests, bound {}",
        ejection_bound(EJECT_AFTER, CLIENTS)
    );
}
// ANCHOR_END: ejection_bound

/// All backends fail every request: the retry budget keeps the attempts
/// within `requests * (1 + ratio) + reserve`, instead of `max_attempts`
/// times the requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_retries_when_everything_fails() {
    let pool = backends(&[
        BackendSpec::instant(1),
        BackendSpec::instant(2),
        BackendSpec::instant(3),
    ])
    .await;
    for b in &pool {
        b.counters.failing.store(true, Ordering::SeqCst);
    }
    // Ejection off, so every attempt reaches a backend.
    let health = HealthPolicy {
        eject_after: u32::MAX,
        ..fast_policy()
    };
    let proxy = proxy_over(&pool, Algorithm::RoundRobin, health).await;
    const REQUESTS: u64 = 100;
    for _ in 0..REQUESTS {
        assert_eq!(proxy.get("/").await.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let attempts: u64 = pool.iter().map(|b| b.requests()).sum();
    let cap = REQUESTS as f64 * (1.0 + RETRY_RATIO) + RETRY_RESERVE;
    assert!(
        attempts as f64 <= cap,
        "{attempts} attempts for {REQUESTS} requests, cap {cap}"
    );
    assert!(attempts > REQUESTS, "no retry at all");
}

// ANCHOR: slow_start
/// A backend failing its health checks is taken out within
/// `unhealthy_after` probe intervals; when it passes again it comes back
/// below its full weight (slow start), and reaches it after the ramp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_backend_out_and_slow_start_brings_it_back() {
    let pool = backends(&[BackendSpec::instant(1), BackendSpec::instant(2)]).await;
    let health = HealthPolicy {
        slow_start: Duration::from_millis(600),
        ..fast_policy()
    };
    let proxy = proxy_over(&pool, Algorithm::P2c, health).await;
    let backend = proxy.proxy.pool().backends()[0].clone();
    pool[0].counters.probe_failing.store(true, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(2), || proxy
            .proxy
            .pool()
            .effective_weight(&backend)
            == 0.0)
        .await,
        "not taken out"
    );
    let before = pool[0].requests();
    for _ in 0..20 {
        assert_eq!(proxy.get("/").await.status, StatusCode::OK);
    }
    assert_eq!(
        pool[0].requests(),
        before,
        "a backend out of service got traffic"
    );
    pool[0]
        .counters
        .probe_failing
        .store(false, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(2), || proxy
            .proxy
            .pool()
            .effective_weight(&backend)
            > 0.0)
        .await,
        "not brought back"
    );
    let warming = proxy.proxy.pool().effective_weight(&backend);
    assert!(warming < 1.0, "back at full weight at once: {warming}");
    assert!(
        eventually(Duration::from_secs(3), || proxy
            .proxy
            .pool()
            .effective_weight(&backend)
            == 1.0)
        .await,
        "never reached its full weight"
    );
}
// ANCHOR_END: slow_start

/// Every backend fails its health checks: the proxy answers with the named
/// 503 at once rather than trying a backend it knows is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backend_up_is_a_named_503() {
    let pool = backends(&[BackendSpec::instant(1)]).await;
    pool[0].counters.probe_failing.store(true, Ordering::SeqCst);
    let proxy = proxy_over(&pool, Algorithm::P2c, fast_policy()).await;
    let backend = proxy.proxy.pool().backends()[0].clone();
    assert!(
        eventually(Duration::from_secs(2), || proxy
            .proxy
            .pool()
            .effective_weight(&backend)
            == 0.0)
        .await
    );
    let answer = proxy.get("/").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.problem_type().as_deref(), Some("no-backend"));
}

// ANCHOR: drain
/// Requests in flight to a backend removed from the set finish with a 200;
/// requests after the change never reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_backend_drains_it_without_dropping_requests() {
    let pool = backends(&[slow(400, 1), BackendSpec::instant(2)]).await;
    let only_first = vec![(pool[0].addr, 1)];
    let proxy = Arc::new(
        serve(load_balancer::proxy::ProxyConfig {
            health: fast_policy(),
            ..load_balancer::proxy::ProxyConfig::new(only_first, Algorithm::RoundRobin)
        })
        .await,
    );
    let in_flight: Vec<_> = (0..5)
        .map(|_| {
            let proxy = proxy.clone();
            tokio::spawn(async move { proxy.get("/slow").await })
        })
        .collect();
    assert!(eventually(Duration::from_secs(2), || pool[0].requests() == 5).await);
    let changed = proxy
        .put_set(&format!(
            r#"{{"backends":[{{"addr":"{}","weight":1}}]}}"#,
            pool[1].addr
        ))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    for _ in 0..10 {
        let a = proxy.get("/after").await;
        assert_eq!(
            a.backend.as_deref(),
            Some(pool[1].addr.to_string().as_str())
        );
    }
    for r in in_flight {
        let a = r.await.expect("client");
        assert_eq!(
            a.status,
            StatusCode::OK,
            "a request in flight was dropped: {a:?}"
        );
        assert_eq!(
            a.backend.as_deref(),
            Some(pool[0].addr.to_string().as_str())
        );
    }
    assert_eq!(
        pool[0].requests(),
        5,
        "the removed backend got new requests"
    );
}
// ANCHOR_END: drain

/// Sequential requests through the proxy reuse pooled connections rather
/// than opening one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_a_backend_are_pooled() {
    let pool = backends(&[BackendSpec::instant(1)]).await;
    let proxy = proxy_over(&pool, Algorithm::RoundRobin, HealthPolicy::default()).await;
    for _ in 0..50 {
        assert_eq!(proxy.get("/").await.status, StatusCode::OK);
    }
    // The proxy's connections plus the health checker's.
    let opened = pool[0].counters.connections.load(Ordering::SeqCst);
    assert!(opened <= 3, "{opened} connections for 50 requests");
}

/// A backend that hangs: a GET's attempt times out and is retried on
/// another backend; a POST's times out and gets the named error, and is
/// not sent to the other backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_backend_times_out_get_retried_post_not() {
    let pool = backends(&[slow(5_000, 1), BackendSpec::instant(2)]).await;
    let set = pool.iter().map(|b| (b.addr, 1)).collect();
    let proxy = serve(load_balancer::proxy::ProxyConfig {
        health: fast_policy(),
        retry: load_balancer::proxy::config::RetryPolicy {
            attempt_timeout: Duration::from_millis(200),
            ..Default::default()
        },
        ..load_balancer::proxy::ProxyConfig::new(set, Algorithm::RoundRobin)
    })
    .await;
    // Round robin: the first request goes to the hanging backend.
    let get = proxy.get("/").await;
    assert_eq!(get.status, StatusCode::OK, "{get:?}");
    assert_eq!(
        get.backend.as_deref(),
        Some(pool[1].addr.to_string().as_str())
    );
    // The next round starts at the hanging backend again.
    let post = proxy.send(Method::POST, "/orders", &[], "{}").await;
    assert_eq!(post.status, StatusCode::BAD_GATEWAY, "{post:?}");
    assert_eq!(post.problem_type().as_deref(), Some("upstream-interrupted"));
    assert_eq!(pool[1].counters.non_idempotent.load(Ordering::SeqCst), 0);
}

/// An application 500 is the application's answer, not the backend's
/// health: a path that fails on every backend ejects none of them and is
/// not retried, so it cannot empty the pool or the retry budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_500s_eject_no_backend_and_are_not_retried() {
    let erring = BackendSpec {
        failure_rate: 1.0,
        ..BackendSpec::instant(1)
    };
    let pool = backends(&[erring, erring, erring, erring]).await;
    let proxy = proxy_over(&pool, Algorithm::P2c, fast_policy()).await;
    const REQUESTS: u64 = 60;
    for _ in 0..REQUESTS {
        assert_eq!(
            proxy.get("/report").await.status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    let attempts: u64 = pool.iter().map(|b| b.requests()).sum();
    assert_eq!(attempts, REQUESTS, "a 500 was retried");
    assert!(
        proxy.proxy.pool().status().iter().all(|b| !b.ejected),
        "an application error ejected a backend"
    );
}

/// Two proxies built from the same default configuration draw differently:
/// a fleet of balancers must not make the same "random" choices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_do_not_share_their_random_draws() {
    let pool = backends(&(0..8).map(BackendSpec::instant).collect::<Vec<_>>()).await;
    let a = proxy_over(&pool, Algorithm::Random, HealthPolicy::default()).await;
    let b = proxy_over(&pool, Algorithm::Random, HealthPolicy::default()).await;
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    for _ in 0..64 {
        sa.push(a.get("/").await.backend);
        sb.push(b.get("/").await.backend);
    }
    assert_ne!(sa, sb, "two proxies made the same 64 draws");
}
