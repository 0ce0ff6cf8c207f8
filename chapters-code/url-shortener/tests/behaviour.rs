//! The behaviour suite: every test runs twice, against the in-memory store
//! (`memory::*`) and against PostgreSQL with Redis (`postgres::*`), through
//! the real HTTP service on an ephemeral port.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::{Backend, Counting};
use hyper::StatusCode;
use serde_json::json;
use tokio::task::JoinSet;
use url_shortener::codegen::{
    BoxFuture, CodeGenerator, CodegenError, CounterGenerator, HashGenerator,
};
use url_shortener::config::{ClickConfig, RateLimitConfig};
use url_shortener::domain::{Code, TargetUrl};
use url_shortener::shortener::Invalid;
use url_shortener::store::LinkStore;

/// Runs each named behaviour against both backends.
macro_rules! behaviours {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(backend) = crate::common::memory().await else { return };
                    super::$name(backend).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(backend) = crate::common::postgres_redis().await else { return };
                    super::$name(backend).await;
                }
            )*
        }
    };
}

behaviours!(
    create_then_redirect,
    alias_race_has_one_winner,
    expired_link_is_gone,
    deleted_link_is_gone_and_its_code_never_returns,
    unknown_code_is_negatively_cached,
    hot_miss_reaches_database_once,
    without_the_local_cache_a_hot_miss_stampedes,
    bad_input_is_rejected_and_changes_nothing,
    clicks_survive_graceful_shutdown,
    stats_count_clicks_per_day,
    creates_are_rate_limited_per_client,
    a_generated_code_taken_by_an_alias_is_redrawn,
    hash_strategy_returns_the_existing_link_for_the_same_url,
    retries_of_a_taken_code_are_bounded,
    identical_alias_create_is_idempotent,
    only_the_management_token_deletes_or_reads_stats,
    error_answers_say_how_long_caches_may_keep_them,
    a_scanner_is_refused_after_its_miss_budget,
    concurrent_misses_cannot_overspend_the_budget,
    managing_an_unknown_link_looks_like_a_wrong_token_and_spends_the_miss_budget,
    targets_on_loopback_private_networks_or_our_own_address_are_refused,
    visitors_of_links_only_the_store_knows_get_every_miss_back,
    an_owner_behind_a_scanners_address_can_still_delete,
    store_timeouts_are_not_refunded_to_a_scanner,
    a_client_past_its_budget_writes_nothing_to_redis,
    a_forged_forwarded_for_does_not_escape_the_create_limit,
);

async fn create_then_redirect<S: LinkStore>(b: Backend<S>) {
    let server = b.serve(b.store.clone(), b.config()).await;
    let reply = server
        .client
        .create(json!({"url": "HTTPS://Example.COM:443/a b?q=1"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let body = reply.json();
    let code = body["code"].as_str().expect("code");
    assert_eq!(code.len(), 7);
    assert_eq!(body["target"], "https://example.com/a%20b?q=1");
    assert_eq!(body["short_url"], format!("{}/{code}", common::BASE_URL));
    assert_eq!(reply.header("location"), body["short_url"].as_str());
    assert_eq!(body["expires_at"], serde_json::Value::Null);

    let redirect = server.client.get(&format!("/{code}")).await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    assert_eq!(
        redirect.header("location"),
        Some("https://example.com/a%20b?q=1")
    );
    assert_eq!(redirect.header("cache-control"), Some("private, max-age=0"));

    let alias = server
        .client
        .create_code(json!({"url": "https://example.com/b", "alias": "spring-sale"}))
        .await;
    assert_eq!(alias, "spring-sale");
    let redirect = server.client.get("/spring-sale").await;
    assert_eq!(redirect.header("location"), Some("https://example.com/b"));
    server.shutdown().await;
}

// ANCHOR: alias_race
/// 64 clients create the same alias at once: exactly one wins. On
/// PostgreSQL this holds only because of `links_code_key` (remove the
/// UNIQUE constraint and 64 creates succeed).
async fn alias_race_has_one_winner<S: LinkStore>(b: Backend<S>) {
    let server = b.serve(b.store.clone(), b.config()).await;
    let mut creates = JoinSet::new();
    for i in 0..64 {
        let client = server.client.clone();
        creates.spawn(async move {
            let url = format!("https://example.com/contender/{i}");
            (
                url.clone(),
                client.create(json!({"url": url, "alias": "launch"})).await,
            )
        });
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    while let Some(done) = creates.join_next().await {
        let (url, reply) = done.expect("task");
        match reply.status {
            StatusCode::CREATED => winners.push(url),
            StatusCode::CONFLICT => {
                assert_eq!(reply.json()["title"], "Alias taken");
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {:?}", reply.body),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(conflicts, 63);
    // And the alias leads to the winner's URL, not to a loser's.
    let redirect = server.client.get("/launch").await;
    assert_eq!(redirect.header("location"), Some(winners[0].as_str()));
    server.shutdown().await;
}
// ANCHOR_END: alias_race

/// A client that retries a create (say, after a 503 whose insert had in
/// fact committed) gets the link it asked for, not a 409; a different
/// request for the same alias still conflicts, and nothing is inserted twice.
async fn identical_alias_create_is_idempotent<S: LinkStore>(b: Backend<S>) {
    let server = b.serve(b.store.clone(), b.config()).await;
    let request = json!({"url": "https://example.com/retry", "alias": "retry-me"});
    let first = server.client.create(request.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = server.client.create(request).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.json()["code"], first.json()["code"]);
    assert_eq!(again.json()["target"], "https://example.com/retry");
    let other = server
        .client
        .create(json!({"url": "https://example.com/elsewhere", "alias": "retry-me"}))
        .await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    let redirect = server.client.get("/retry-me").await;
    assert_eq!(
        redirect.header("location"),
        Some("https://example.com/retry")
    );
    server.shutdown().await;
}

async fn expired_link_is_gone<S: LinkStore>(b: Backend<S>) {
    let server = b.serve(b.store.clone(), b.config()).await;
    let (code, token) = server
        .client
        .create_managed(json!({"url": "https://example.com/flash", "ttl_seconds": 1}))
        .await;
    // Cached on both layers while live...
    assert_eq!(
        server.client.get(&format!("/{code}")).await.status,
        StatusCode::FOUND
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // ...and still gone the moment it expires: expiry is checked on every read.
    let reply = server.client.get(&format!("/{code}")).await;
    assert_eq!(reply.status, StatusCode::GONE);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.json()["title"], "Link expired");
    // Its statistics stay readable.
    assert_eq!(
        server
            .client
            .get_with(&format!("/api/links/{code}/stats"), &token)
            .await
            .status,
        StatusCode::OK
    );
    server.shutdown().await;
}

async fn deleted_link_is_gone_and_its_code_never_returns<S: LinkStore>(b: Backend<S>) {
    let server = b.serve(b.store.clone(), b.config()).await;
    let (_, token) = server
        .client
        .create_managed(json!({"url": "https://example.com/old", "alias": "promo"}))
        .await;
    assert_eq!(server.client.get("/promo").await.status, StatusCode::FOUND); // now cached
    assert_eq!(
        server
            .client
            .delete_with("/api/links/promo", &token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // Gone at once: the delete cleared the cached entry.
    let reply = server.client.get("/promo").await;
    assert_eq!(reply.status, StatusCode::GONE);
    assert_eq!(reply.json()["title"], "Link deleted");
    assert_eq!(
        server
            .client
            .delete_with("/api/links/promo", &token)
            .await
            .status,
        StatusCode::GONE
    );
    assert_eq!(
        server
            .client
            .get_with("/api/links/promo/stats", &token)
            .await
            .status,
        StatusCode::GONE
    );
    // The code is not handed out again: old QR codes must not lead to a stranger.
    let again = server
        .client
        .create(json!({"url": "https://example.com/new", "alias": "promo"}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        server
            .client
            .delete_with("/api/links/nothing-here", &token)
            .await
            .status,
        StatusCode::FORBIDDEN,
        "an unknown code looks like someone else's link"
    );
    server.shutdown().await;
}

async fn unknown_code_is_negatively_cached<S: LinkStore>(b: Backend<S>) {
    let store = Counting::new(b.store.clone());
    let server = b.serve(store.clone(), b.config()).await;
    for _ in 0..5 {
        let reply = server.client.get("/no-such-code").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.json()["status"], 404);
    }
    assert_eq!(
        store.get_count(),
        1,
        "only the first miss reaches the store"
    );
    // A code that cannot exist is refused without any lookup.
    assert_eq!(
        server.client.get("/not~a~code").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(store.get_count(), 1);
    // Creating the code clears the negative entry everywhere it is cached.
    server
        .client
        .create_code(json!({"url": "https://example.com/", "alias": "no-such-code"}))
        .await;
    assert_eq!(
        server.client.get("/no-such-code").await.status,
        StatusCode::FOUND
    );
    server.shutdown().await;
}

// ANCHOR: stampede_test
/// 100 concurrent redirects of a code nobody has looked up yet: the store
/// sees one `get`, because moka runs one load per key and the rest wait for it.
async fn hot_miss_reaches_database_once<S: LinkStore>(b: Backend<S>) {
    // Each store read takes 200 ms, so all 100 requests overlap the first load.
    let store = Counting::new(b.store.clone()).with_get_delay(Duration::from_millis(200));
    let server = b.serve(store.clone(), b.config()).await;
    let code = common::seed(&b.store, "cold-and-hot", "https://example.com/hot").await;
    let mut redirects = JoinSet::new();
    for _ in 0..100 {
        let client = server.client.clone();
        let path = format!("/{code}");
        redirects.spawn(async move { client.get(&path).await.status });
    }
    while let Some(status) = redirects.join_next().await {
        assert_eq!(status.expect("task"), StatusCode::FOUND);
    }
    assert_eq!(store.get_count(), 1);
    server.shutdown().await;
}
// ANCHOR_END: stampede_test

/// The control experiment for the test above: with the in-process layer
/// off, concurrent misses each go down (Redis, being empty, does not help).
async fn without_the_local_cache_a_hot_miss_stampedes<S: LinkStore>(b: Backend<S>) {
    let store = Counting::new(b.store.clone()).with_get_delay(Duration::from_millis(200));
    let server = b
        .serve(
            store.clone(),
            url_shortener::Config {
                local_cache: None,
                ..b.config()
            },
        )
        .await;
    let code = common::seed(&b.store, "cold-and-hot", "https://example.com/hot").await;
    let mut redirects = JoinSet::new();
    for _ in 0..20 {
        let client = server.client.clone();
        let path = format!("/{code}");
        redirects.spawn(async move { client.get(&path).await.status });
    }
    while let Some(status) = redirects.join_next().await {
        assert_eq!(status.expect("task"), StatusCode::FOUND);
    }
    assert!(
        store.get_count() > 1,
        "expected a stampede, got {} loads",
        store.get_count()
    );
    server.shutdown().await;
}

/// Every bad request gets its own status and reason, and writes nothing.
async fn bad_input_is_rejected_and_changes_nothing<S: LinkStore>(b: Backend<S>) {
    let store = Counting::new(b.store.clone());
    let server = b.serve(store.clone(), b.config()).await;
    let long_url = format!("https://example.com/{}", "a".repeat(2100));
    let past = (Utc::now() - chrono::TimeDelta::hours(1)).to_rfc3339();
    let cases: Vec<(serde_json::Value, StatusCode, Option<&str>)> = vec![
        (
            json!({"url": "javascript:alert(1)", "alias": "victim"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("url_scheme_not_allowed"),
        ),
        (
            json!({"url": "data:text/html,hi", "alias": "victim"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("url_scheme_not_allowed"),
        ),
        (
            json!({"url": "example.com/x", "alias": "victim"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("url_missing_scheme"),
        ),
        (
            json!({"url": "", "alias": "victim"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("url_empty"),
        ),
        (
            json!({"url": "https://a:b@example.com/", "alias": "victim"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("url_credentials_not_allowed"),
        ),
        (
            json!({"url": "http://SHO.RT/loop", "alias": "victim"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("url_points_at_us"),
        ),
        (
            json!({"url": "http://localhost:8080/loop", "alias": "victim"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("url_private_address"),
        ),
        (
            json!({"url": long_url, "alias": "victim"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("url_too_long"),
        ),
        (
            json!({"url": "https://exa mple.com/", "alias": "victim"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("url_malformed"),
        ),
        (
            json!({"url": "http://", "alias": "victim"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("url_missing_host"),
        ),
        (
            json!({"url": "https://example.com/", "alias": "a".repeat(33)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("alias_too_long"),
        ),
        (
            json!({"url": "https://example.com/", "alias": "ab"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("alias_too_short"),
        ),
        (
            json!({"url": "https://example.com/", "alias": "a/b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("alias_invalid_char"),
        ),
        (
            json!({"url": "https://example.com/", "alias": "Admin"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("alias_reserved"),
        ),
        (
            json!({"url": "https://example.com/", "alias": "sh1t"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("alias_offensive"),
        ),
        (
            json!({"url": "https://example.com/", "alias": "victim", "ttl_seconds": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("expiry_not_in_future"),
        ),
        (
            json!({"url": "https://example.com/", "alias": "victim", "expires_at": past}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("expiry_not_in_future"),
        ),
        (
            json!({"url": "https://example.com/", "alias": "victim", "ttl_seconds": 60, "expires_at": "2099-01-01T00:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("expiry_both_given"),
        ),
        (
            json!({"url": "https://example.com/", "alias": "victim", "ttl_seconds": 400_000_000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("expiry_too_far"),
        ),
        (json!({"alias": "victim"}), StatusCode::BAD_REQUEST, None),
        (
            json!({"url": "https://example.com/", "alias": "victim", "ttl": 60}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            json!({"url": "https://example.com/", "alias": "victim", "ttl_seconds": "soon"}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            json!(["https://example.com/"]),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    // One request per reason: every name the API can put in `reason`.
    let covered: std::collections::BTreeSet<&str> =
        cases.iter().filter_map(|(_, _, reason)| *reason).collect();
    let all: std::collections::BTreeSet<&str> = Invalid::REASONS.iter().copied().collect();
    assert_eq!(covered, all, "a reason without a request");
    for (body, status, reason) in &cases {
        let reply = server.client.create(body.clone()).await;
        assert_eq!(reply.status, *status, "{body}: {:?}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{body}"
        );
        let problem = reply.json();
        assert_eq!(problem["status"], status.as_u16(), "{body}");
        assert!(
            problem["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("https://")),
            "{problem}"
        );
        assert!(
            problem["title"].is_string() && problem["detail"].is_string(),
            "{problem}"
        );
        assert_eq!(problem["reason"].as_str(), *reason, "{body}");
    }
    // Not JSON at all, no content type, and far too big.
    let c = &server.client;
    let syntax = c
        .send(
            hyper::Method::POST,
            "/api/links",
            &[("content-type", "application/json")],
            Some("{url:".into()),
        )
        .await;
    assert_eq!(syntax.status, StatusCode::BAD_REQUEST);
    let untyped = c
        .send(
            hyper::Method::POST,
            "/api/links",
            &[],
            Some(json!({"url": "https://e.com/"}).to_string()),
        )
        .await;
    assert_eq!(untyped.status, StatusCode::BAD_REQUEST);
    let huge = json!({"url": format!("https://example.com/{}", "a".repeat(20_000))}).to_string();
    let too_big = c
        .send(
            hyper::Method::POST,
            "/api/links",
            &[("content-type", "application/json")],
            Some(huge),
        )
        .await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Nothing reached the store, and the alias every request asked for is still free.
    assert_eq!(store.insert_count(), 0);
    assert_eq!(
        b.store.get(&Code::parse("victim").expect("code")).await,
        Ok(None)
    );
    assert_eq!(
        server.client.get("/victim").await.status,
        StatusCode::NOT_FOUND
    );
    server.shutdown().await;
}

// ANCHOR: clicks_test
/// Every redirect served before a graceful shutdown is counted, even though
/// the batcher's timer never fired: shutdown drains and flushes.
async fn clicks_survive_graceful_shutdown<S: LinkStore>(b: Backend<S>) {
    let config = url_shortener::Config {
        clicks: ClickConfig {
            flush_every: Duration::from_secs(3600),
            max_batch: 1_000_000,
            ..ClickConfig::default()
        },
        ..b.config()
    };
    let server = b.serve(b.store.clone(), config).await;
    let code = server
        .client
        .create_code(json!({"url": "https://example.com/counted"}))
        .await;
    const REDIRECTS: usize = 1_000;
    let mut redirects = JoinSet::new();
    for worker in 0..50 {
        let client = server.client.clone();
        let path = format!("/{code}");
        redirects.spawn(async move {
            let mut served = 0;
            for _ in (worker..REDIRECTS).step_by(50) {
                if client.get(&path).await.status == StatusCode::FOUND {
                    served += 1;
                }
            }
            served
        });
    }
    let mut served = 0;
    while let Some(n) = redirects.join_next().await {
        served += n.expect("task");
    }
    assert_eq!(served, REDIRECTS);
    let metrics = server.metrics.clone();
    server.shutdown().await;

    let code = Code::parse(&code).expect("code");
    let stored: u64 = b
        .store
        .daily_clicks(&code)
        .await
        .expect("stats")
        .iter()
        .map(|d| d.count)
        .sum();
    assert_eq!(stored, REDIRECTS as u64);
    let m = metrics.snapshot();
    assert_eq!(
        (m.clicks_flushed, m.clicks_dropped, m.clicks_lost),
        (REDIRECTS as u64, 0, 0)
    );
}
// ANCHOR_END: clicks_test

async fn stats_count_clicks_per_day<S: LinkStore>(b: Backend<S>) {
    let server = b.serve(b.store.clone(), b.config()).await;
    let (code, token) = server
        .client
        .create_managed(json!({"url": "https://example.com/stats"}))
        .await;
    let fresh = server
        .client
        .get_with(&format!("/api/links/{code}/stats"), &token)
        .await;
    assert_eq!(
        fresh.json(),
        json!({"code": code, "total": 0, "by_day": []})
    );
    for _ in 0..7 {
        assert_eq!(
            server.client.get(&format!("/{code}")).await.status,
            StatusCode::FOUND
        );
    }
    // Clicks are written every 50 ms in this configuration.
    let path = format!("/api/links/{code}/stats");
    let client = server.client.clone();
    let counted = common::eventually(Duration::from_secs(5), || {
        let (client, path, token) = (client.clone(), path.clone(), token.clone());
        async move { client.get_with(&path, &token).await.json()["total"] == 7 }
    })
    .await;
    assert!(counted, "clicks never showed up in stats");
    let today = Utc::now().date_naive().to_string();
    assert_eq!(
        server.client.get_with(&path, &token).await.json(),
        json!({"code": code, "total": 7, "by_day": [{"day": today, "count": 7}]})
    );
    // An unknown code looks like someone else's link.
    assert_eq!(
        server
            .client
            .get_with("/api/links/unknown/stats", &token)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    server.shutdown().await;
}

async fn creates_are_rate_limited_per_client<S: LinkStore>(b: Backend<S>) {
    let store = Counting::new(b.store.clone());
    let config = url_shortener::Config {
        rate_limit: Some(RateLimitConfig {
            per_second: 1,
            burst: 3,
        }),
        // The test's requests come from 127.0.0.1, our "proxy".
        trusted_proxies: "127.0.0.1".parse().expect("a proxy"),
        ..b.config()
    };
    let server = b.serve(store.clone(), config).await;
    let post = |client_ip: &'static str| {
        let client = server.client.clone();
        async move {
            let body = json!({"url": "https://example.com/"}).to_string();
            let headers = [
                ("content-type", "application/json"),
                ("x-forwarded-for", client_ip),
            ];
            client
                .send(hyper::Method::POST, "/api/links", &headers, Some(body))
                .await
        }
    };
    let first = post("198.51.100.1").await;
    assert_eq!(first.status, StatusCode::CREATED);
    let code = first.json()["code"].as_str().expect("code").to_string();
    for _ in 0..2 {
        assert_eq!(post("198.51.100.1").await.status, StatusCode::CREATED);
    }
    let limited = post("198.51.100.1").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.json()["title"], "Too many requests");
    // Another client is not affected, and the refused create wrote nothing.
    assert_eq!(post("198.51.100.2").await.status, StatusCode::CREATED);
    assert_eq!(store.insert_count(), 4);
    // Redirects are never limited.
    for _ in 0..10 {
        assert_eq!(
            server.client.get(&format!("/{code}")).await.status,
            StatusCode::FOUND
        );
    }
    server.shutdown().await;
}

/// An alias can occupy a code the generator will produce later; the unique
/// constraint reports it and the create path simply draws the next code.
async fn a_generated_code_taken_by_an_alias_is_redrawn<S: LinkStore>(b: Backend<S>) {
    let ids = Arc::new(CounterGenerator::new(b.allocator.clone()));
    let server = b.serve_with(b.store.clone(), ids, b.config()).await;
    // The counter starts at 0: its first code is 0000000, which we take as an alias.
    server
        .client
        .create_code(json!({"url": "https://example.com/squatter", "alias": "0000000"}))
        .await;
    let code = server
        .client
        .create_code(json!({"url": "https://example.com/generated"}))
        .await;
    assert_eq!(code, "0000001");
    let redirect = server.client.get("/0000000").await;
    assert_eq!(
        redirect.header("location"),
        Some("https://example.com/squatter")
    );
    server.shutdown().await;
}

async fn hash_strategy_returns_the_existing_link_for_the_same_url<S: LinkStore>(b: Backend<S>) {
    let server = b
        .serve_with(b.store.clone(), Arc::new(HashGenerator), b.config())
        .await;
    let first = server
        .client
        .create(json!({"url": "https://example.com/same"}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = server
        .client
        .create(json!({"url": "HTTPS://EXAMPLE.COM/same"}))
        .await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "same normalised URL: the existing link"
    );
    assert_eq!(again.json()["code"], first.json()["code"]);
    // A different request (here, with an expiry) is a different link: the salted hash.
    let expiring = server
        .client
        .create(json!({"url": "https://example.com/same", "ttl_seconds": 60}))
        .await;
    assert_eq!(expiring.status, StatusCode::CREATED);
    assert_ne!(expiring.json()["code"], first.json()["code"]);
    server.shutdown().await;
}

/// A strategy that always proposes the same code: after the first link,
/// every create retries `max_code_attempts` times and then gives up with a
/// named 503 instead of looping for ever.
async fn retries_of_a_taken_code_are_bounded<S: LinkStore>(b: Backend<S>) {
    struct Stuck;
    impl CodeGenerator for Stuck {
        fn next_code<'a>(
            &'a self,
            _: &'a TargetUrl,
            _: u32,
        ) -> BoxFuture<'a, Result<Code, CodegenError>> {
            Box::pin(async { Ok(Code::parse("aaaaaaa").expect("code")) })
        }
    }
    let store = Counting::new(b.store.clone());
    let config = url_shortener::Config {
        max_code_attempts: 5,
        ..b.config()
    };
    let server = b.serve_with(store.clone(), Arc::new(Stuck), config).await;
    server
        .client
        .create_code(json!({"url": "https://example.com/first"}))
        .await;
    let reply = server
        .client
        .create(json!({"url": "https://example.com/second"}))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["title"], "No free code");
    assert_eq!(store.insert_count(), 1 + 5);
    server.shutdown().await;
}

// ANCHOR: token_test
/// Delete and stats need the link's management token, returned once by the
/// create. A missing, malformed or wrong token gets 403 and changes nothing.
async fn only_the_management_token_deletes_or_reads_stats<S: LinkStore>(b: Backend<S>) {
    let server = b.serve(b.store.clone(), b.config()).await;
    let c = &server.client;
    let created = c
        .create(json!({"url": "https://example.com/mine", "alias": "printed"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let token = created.json()["management_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let someone_else = "0".repeat(token.len().max(43));
    let refusals = [
        ("missing", c.delete("/api/links/printed").await),
        (
            "malformed",
            c.delete_with("/api/links/printed", "not-a-token").await,
        ),
        (
            "wrong",
            c.delete_with("/api/links/printed", &someone_else).await,
        ),
        ("missing", c.get("/api/links/printed/stats").await),
        (
            "wrong",
            c.get_with("/api/links/printed/stats", &someone_else).await,
        ),
    ];
    for (which, reply) in refusals {
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{which}: {:?}",
            reply.body
        );
        let kind = reply.json()["type"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let expected = if which == "wrong" {
            "#management-token-wrong"
        } else {
            "#management-token-required"
        };
        assert!(kind.ends_with(expected), "{which}: {kind}");
    }
    // Nothing changed: the link still redirects.
    assert_eq!(c.get("/printed").await.status, StatusCode::FOUND);
    // The token is the only proof, and only its hash is stored.
    let code = Code::parse("printed").expect("code");
    let stored = b.store.get(&code).await.expect("get").expect("link");
    assert_eq!(
        stored.token_hash,
        url_shortener::domain::ManagementToken::parse(&token)
            .expect("a well-formed token")
            .hash()
    );
    assert_eq!(
        c.get_with("/api/links/printed/stats", &token).await.status,
        StatusCode::OK
    );
    // An identical retry gets the link, not its token.
    let again = c
        .create(json!({"url": "https://example.com/mine", "alias": "printed"}))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(
        again.json().get("management_token").is_none(),
        "{:?}",
        again.body
    );
    assert_eq!(
        c.delete_with("/api/links/printed", &token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.get("/printed").await.status, StatusCode::GONE);
    assert_eq!(
        c.delete_with("/api/links/nothing-here", &token)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    server.shutdown().await;
}
// ANCHOR_END: token_test

// ANCHOR: cache_headers_test
/// Every answer of the redirect route says what a cache may do with it: a
/// 302 and a 404 may change at any moment and are never stored; a 410 is
/// final and may be kept.
async fn error_answers_say_how_long_caches_may_keep_them<S: LinkStore>(b: Backend<S>) {
    let server = b.serve(b.store.clone(), b.config()).await;
    let c = &server.client;
    let (code, token) = c
        .create_managed(json!({"url": "https://example.com/x"}))
        .await;
    let expiring = c
        .create_code(json!({"url": "https://example.com/y", "ttl_seconds": 1}))
        .await;
    let found = c.get(&format!("/{code}")).await;
    assert_eq!(found.header("cache-control"), Some("private, max-age=0"));
    let missing = c.get("/never-created").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("cache-control"), Some("no-store"));
    c.delete_with(&format!("/api/links/{code}"), &token).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for path in [format!("/{code}"), format!("/{expiring}")] {
        let gone = c.get(&path).await;
        assert_eq!(gone.status, StatusCode::GONE);
        assert_eq!(
            gone.header("cache-control"),
            Some("public, max-age=86400"),
            "{path}"
        );
    }
    let invalid = c.create(json!({"url": "ftp://example.com/"})).await;
    assert_eq!(invalid.header("cache-control"), Some("no-store"));
    server.shutdown().await;
}
// ANCHOR_END: cache_headers_test

// ANCHOR: scanner_http_test
/// Through HTTP: a client that asks for many codes that do not exist gets
/// 404s until its miss budget is spent, then 429s that cost the store
/// nothing. It can still follow a link the caches hold, and another client
/// is not affected.
async fn a_scanner_is_refused_after_its_miss_budget<S: LinkStore>(b: Backend<S>) {
    let store = Counting::new(b.store.clone());
    let budget = RateLimitConfig {
        per_second: 1,
        burst: 5,
    };
    let config = url_shortener::Config {
        miss_limit: Some(budget.clone()),
        // The test's requests come from 127.0.0.1, our "proxy".
        trusted_proxies: "127.0.0.1".parse().expect("a proxy"),
        ..b.config()
    };
    let server = b.serve(store.clone(), config).await;
    let get = |path: String, client_ip: &'static str| {
        let client = server.client.clone();
        async move {
            client
                .send(
                    hyper::Method::GET,
                    &path,
                    &[("x-forwarded-for", client_ip)],
                    None,
                )
                .await
        }
    };
    let real = server
        .client
        .create_code(json!({"url": "https://example.com/real"}))
        .await;
    assert_eq!(
        get(format!("/{real}"), "198.51.100.9").await.status,
        StatusCode::FOUND
    );
    let reads_before = store.get_count();
    let mut statuses = Vec::new();
    for i in 0..30 {
        statuses.push(get(format!("/guess{i:03}"), "198.51.100.9").await.status);
    }
    let not_found = statuses
        .iter()
        .filter(|s| **s == StatusCode::NOT_FOUND)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // The burst, plus at most what refilled while the test ran.
    assert!(
        (budget.burst as usize..=budget.burst as usize + 2).contains(&not_found),
        "{statuses:?}"
    );
    assert_eq!(not_found + refused, 30);
    assert_eq!(store.get_count() - reads_before, not_found as u64);
    let limited = get("/guess999".into(), "198.51.100.9").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    assert!(
        limited.json()["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("#too-many-misses"))
    );
    // A cached link still redirects for the scanner; another client is not limited.
    assert_eq!(
        get(format!("/{real}"), "198.51.100.9").await.status,
        StatusCode::FOUND
    );
    assert_eq!(
        get("/guess000".into(), "198.51.100.10").await.status,
        StatusCode::NOT_FOUND
    );
    server.shutdown().await;
}
// ANCHOR_END: scanner_http_test

// ANCHOR: concurrent_misses_test
/// The budget is spent before the store is read, atomically: a scanner that
/// sends many unknown codes at once (each store read slowed down so they
/// all overlap) gets at most its burst of store reads, not one per request.
async fn concurrent_misses_cannot_overspend_the_budget<S: LinkStore>(b: Backend<S>) {
    let store = Counting::new(b.store.clone()).with_get_delay(Duration::from_millis(300));
    let budget = RateLimitConfig {
        per_second: 1,
        burst: 5,
    };
    let config = url_shortener::Config {
        miss_limit: Some(budget.clone()),
        ..b.config()
    };
    let server = b.serve(store.clone(), config).await;
    let mut scan = JoinSet::new();
    for i in 0..40 {
        let client = server.client.clone();
        scan.spawn(async move { client.get(&format!("/burst{i:03}")).await.status });
    }
    let statuses = scan.join_all().await;
    let not_found = statuses
        .iter()
        .filter(|s| **s == StatusCode::NOT_FOUND)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(not_found + refused, statuses.len(), "{statuses:?}");
    // The burst, plus at most what refilled while the requests arrived.
    assert!(
        not_found <= budget.burst as usize + 1,
        "{not_found} store reads for a budget of {}: {statuses:?}",
        budget.burst
    );
    assert_eq!(store.get_count(), not_found as u64);
    server.shutdown().await;
}
// ANCHOR_END: concurrent_misses_test

// ANCHOR: management_oracle_test
/// Delete and stats give a wrong token the same answer whether the code
/// exists or not, so they tell a guesser nothing the redirect route would
/// not; and each such answer spends the client's management miss budget,
/// as large as the redirects', so the management routes are no way around
/// it. The redirects' budget is apart (see
/// `an_owner_behind_a_scanners_address_can_still_delete`). Another client
/// (here behind our proxy) is not affected.
async fn managing_an_unknown_link_looks_like_a_wrong_token_and_spends_the_miss_budget<
    S: LinkStore,
>(
    b: Backend<S>,
) {
    let config = url_shortener::Config {
        miss_limit: Some(RateLimitConfig {
            per_second: 1,
            burst: 5,
        }),
        trusted_proxies: "127.0.0.1".parse().expect("a proxy"),
        ..b.config()
    };
    let server = b.serve(b.store.clone(), config).await;
    let c = &server.client;
    let (code, token) = c
        .create_managed(json!({"url": "https://example.com/owned"}))
        .await;
    let wrong = "0".repeat(token.len());
    let as_client = |method: hyper::Method, path: String, token: String, ip: &'static str| {
        let c = c.clone();
        async move {
            let auth = format!("Bearer {token}");
            c.send(
                method,
                &path,
                &[("authorization", &auth), ("x-forwarded-for", ip)],
                None,
            )
            .await
        }
    };
    let guesser = "198.51.100.7";
    let mut answers = Vec::new();
    for path in [format!("/api/links/{code}"), "/api/links/nothere".into()] {
        for (method, suffix) in [(hyper::Method::DELETE, ""), (hyper::Method::GET, "/stats")] {
            let reply = as_client(method, format!("{path}{suffix}"), wrong.clone(), guesser).await;
            answers.push((
                reply.status,
                reply.json()["type"].clone(),
                reply.json()["title"].clone(),
            ));
        }
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "existing and unknown codes must look alike: {answers:?}"
    );
    assert_eq!(answers[0].0, StatusCode::FORBIDDEN);
    // Four guesses spent; the fifth is the last of the burst, then 429.
    let mut statuses = Vec::new();
    for i in 0..5 {
        let path = format!("/api/links/guess{i}");
        statuses.push(
            as_client(hyper::Method::DELETE, path, wrong.clone(), guesser)
                .await
                .status,
        );
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // A budget apart from the redirects': an unknown code is a 404 there.
    let redirect = c
        .send(
            hyper::Method::GET,
            "/unknown1",
            &[("x-forwarded-for", guesser)],
            None,
        )
        .await;
    assert_eq!(redirect.status, StatusCode::NOT_FOUND);
    // The owner, from another address, is not affected.
    let path = format!("/api/links/{code}");
    let owner = as_client(
        hyper::Method::GET,
        format!("{path}/stats"),
        token.clone(),
        "198.51.100.8",
    )
    .await;
    assert_eq!(owner.status, StatusCode::OK);
    let deleted = as_client(hyper::Method::DELETE, path, token, "198.51.100.8").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    server.shutdown().await;
}
// ANCHOR_END: management_oracle_test

// ANCHOR: private_targets_test
/// A link may not lead back to this service under another name, nor into
/// the network of whoever follows it: loopback, private and link-local
/// addresses (in any spelling the URL parser accepts) and `localhost` names
/// are refused by default, as is the address the service listens on. No
/// name is resolved: only `localhost` is known to be loopback without DNS.
async fn targets_on_loopback_private_networks_or_our_own_address_are_refused<S: LinkStore>(
    b: Backend<S>,
) {
    let store = Counting::new(b.store.clone());
    let config = url_shortener::Config {
        own_hosts: vec!["203.0.113.80".into()],
        ..b.config()
    };
    let server = b.serve(store.clone(), config).await;
    let refused = [
        ("http://localhost:8080/loop", "url_private_address"),
        ("http://LOCALHOST./loop", "url_private_address"),
        ("http://api.localhost/", "url_private_address"),
        ("http://127.0.0.1:8080/loop", "url_private_address"),
        ("http://127.1/", "url_private_address"),
        ("http://2130706433/", "url_private_address"),
        ("http://0x7f.0.0.1/", "url_private_address"),
        ("http://[::1]:8080/", "url_private_address"),
        ("http://[::ffff:127.0.0.1]/", "url_private_address"),
        ("http://0.0.0.0:8080/", "url_private_address"),
        ("http://10.1.2.3/", "url_private_address"),
        ("http://172.16.0.1/", "url_private_address"),
        ("http://192.168.1.1/admin", "url_private_address"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "url_private_address",
        ),
        ("http://100.64.0.1/", "url_private_address"),
        ("http://[fd00::1]/", "url_private_address"),
        ("http://[fe80::1]/", "url_private_address"),
        ("http://203.0.113.80/loop", "url_points_at_us"),
        ("http://sho.rt/loop", "url_points_at_us"),
        ("http://printer.local/", "url_private_address"),
        ("http://router.home.arpa/", "url_private_address"),
        ("http://db.internal/", "url_private_address"),
        ("http://ip6-localhost/", "url_private_address"),
        ("http://ip6-loopback/", "url_private_address"),
    ];
    for (url, reason) in refused {
        let reply = server.client.create(json!({ "url": url })).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {:?}",
            reply.body
        );
        assert_eq!(reply.json()["reason"], reason, "{url}");
    }
    assert_eq!(store.insert_count(), 0);
    // Public addresses and ordinary names are fine.
    for url in [
        "http://93.184.215.14/",
        "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
        "https://localhost.example/",
    ] {
        let reply = server.client.create(json!({ "url": url })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{url}: {:?}", reply.body);
    }
    server.shutdown().await;
}
// ANCHOR_END: private_targets_test

/// A client whose address sends one redirect per link,
/// `x-forwarded-for: ip` through the trusted proxy 127.0.0.1.
async fn get_as(client: &common::Client, path: &str, ip: &str) -> common::Reply {
    client
        .send(hyper::Method::GET, path, &[("x-forwarded-for", ip)], None)
        .await
}

/// A config with a small miss budget, trusting 127.0.0.1 as our proxy.
fn budgeted<S: LinkStore>(b: &Backend<S>, burst: u32) -> url_shortener::Config {
    url_shortener::Config {
        miss_limit: Some(RateLimitConfig {
            per_second: 1,
            burst,
        }),
        trusted_proxies: "127.0.0.1".parse().expect("a proxy"),
        ..b.config()
    }
}

// ANCHOR: visitors_give_back_test
/// The miss a lookup takes before its store read comes back when the read
/// finds a link: one client following many more real links than its burst,
/// none of them cached yet, is never refused and keeps its whole budget.
async fn visitors_of_links_only_the_store_knows_get_every_miss_back<S: LinkStore>(b: Backend<S>) {
    let burst = 5;
    let mut codes = Vec::new();
    for i in 0..40 {
        codes.push(common::seed(&b.store, &format!("seed{i:03}"), "https://example.com/s").await);
    }
    let server = b.serve(b.store.clone(), budgeted(&b, burst)).await;
    let visitor = "198.51.100.20";
    for code in &codes {
        let reply = get_as(&server.client, &format!("/{code}"), visitor).await;
        assert_eq!(reply.status, StatusCode::FOUND, "{code}");
    }
    // The whole burst is still there: `burst` unknown codes are 404s.
    for i in 0..burst {
        let reply = get_as(&server.client, &format!("/nothere{i}"), visitor).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "guess {i}");
    }
    server.shutdown().await;
}
// ANCHOR_END: visitors_give_back_test

// ANCHOR: owner_behind_scanner_test
/// Management has its own budget: a scanner sharing the owner's address
/// (a carrier's NAT, a balancer not configured as a proxy) spends the
/// redirects' budget, and the owner can still read stats and delete.
async fn an_owner_behind_a_scanners_address_can_still_delete<S: LinkStore>(b: Backend<S>) {
    let server = b.serve(b.store.clone(), budgeted(&b, 5)).await;
    let c = &server.client;
    let (code, token) = c
        .create_managed(json!({"url": "https://example.com/phish"}))
        .await;
    let shared = "198.51.100.30";
    let mut last = StatusCode::OK;
    for i in 0..10 {
        last = get_as(c, &format!("/scan{i:03}"), shared).await.status;
    }
    assert_eq!(
        last,
        StatusCode::TOO_MANY_REQUESTS,
        "the scanner is refused"
    );
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("x-forwarded-for", shared),
    ];
    let path = format!("/api/links/{code}");
    let stats = c
        .send(hyper::Method::GET, &format!("{path}/stats"), &headers, None)
        .await;
    assert_eq!(stats.status, StatusCode::OK);
    let deleted = c.send(hyper::Method::DELETE, &path, &headers, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    server.shutdown().await;
}
// ANCHOR_END: owner_behind_scanner_test

// ANCHOR: timeouts_not_refunded_test
/// A store read that timed out did cost the store: it is not given back, so
/// a scanner cannot keep a slow database's connections busy for free.
async fn store_timeouts_are_not_refunded_to_a_scanner<S: LinkStore>(b: Backend<S>) {
    let store = Counting::new(b.store.clone()).with_get_delay(Duration::from_millis(300));
    let config = url_shortener::Config {
        store_timeout: Duration::from_millis(50),
        ..budgeted(&b, 5)
    };
    let server = b.serve(store.clone(), config).await;
    let started = std::time::Instant::now();
    for i in 0..40 {
        let _ = get_as(&server.client, &format!("/slow{i:03}"), "198.51.100.40").await;
    }
    // The burst, plus what refilled while the requests ran, plus one.
    let allowed = 5 + started.elapsed().as_secs() + 1;
    assert!(
        store.get_count() <= allowed,
        "{} store reads, allowed {allowed}",
        store.get_count()
    );
    server.shutdown().await;
}
// ANCHOR_END: timeouts_not_refunded_test

// ANCHOR: refused_writes_nothing_test
/// A client past its budget is answered from the caches without writing:
/// its guesses leave no key in the Redis every process shares.
async fn a_client_past_its_budget_writes_nothing_to_redis<S: LinkStore>(b: Backend<S>) {
    let Some(mut redis) = b.redis_conn() else {
        return; // No Redis in this backend.
    };
    let prefix = b.redis.as_ref().expect("redis").key_prefix.clone();
    let server = b.serve(b.store.clone(), budgeted(&b, 5)).await;
    let scanner = "198.51.100.50";
    for i in 0..10 {
        let _ = get_as(&server.client, &format!("/spend{i:03}"), scanner).await;
    }
    let keys = |redis: &mut redis::aio::MultiplexedConnection| {
        let mut redis = redis.clone();
        let pattern = format!("{prefix}*");
        async move {
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut redis)
                .await
                .expect("KEYS");
            keys.len()
        }
    };
    let before = keys(&mut redis).await;
    for i in 0..50 {
        let reply = get_as(&server.client, &format!("/guess{i:03}"), scanner).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(keys(&mut redis).await, before, "refused guesses wrote keys");
    server.shutdown().await;
}
// ANCHOR_END: refused_writes_nothing_test

// ANCHOR: forged_create_test
/// From a peer that is not a trusted proxy, `X-Forwarded-For` is ignored by
/// the create limit too: rotating forged addresses gets no fresh limit.
async fn a_forged_forwarded_for_does_not_escape_the_create_limit<S: LinkStore>(b: Backend<S>) {
    let config = url_shortener::Config {
        rate_limit: Some(RateLimitConfig {
            per_second: 1,
            burst: 3,
        }),
        ..b.config()
    };
    let server = b.serve(b.store.clone(), config).await;
    let mut statuses = Vec::new();
    for i in 0..25 {
        let forged = format!("198.51.100.{i}");
        let headers = [
            ("content-type", "application/json"),
            ("x-forwarded-for", forged.as_str()),
        ];
        let body = json!({"url": "https://example.com/"}).to_string();
        let reply = server
            .client
            .send(hyper::Method::POST, "/api/links", &headers, Some(body))
            .await;
        statuses.push(reply.status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    server.shutdown().await;
}
// ANCHOR_END: forged_create_test
