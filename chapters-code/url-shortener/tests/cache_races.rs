//! The cache's staleness bound, with service instances sharing PostgreSQL
//! and Redis and a load that races a write, driven by the cache-aside
//! block's harness ([`Race`]).
//!
//! Node A's store stalls one lookup after it has read the row ([`Gated`]),
//! so the test decides exactly when A's fill reaches Redis: after node B
//! has changed the link. A fill must never undo that change in Redis; the
//! only staleness left is node A's own in-process entry, for at most its
//! bound (its TTL plus the load timeout).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use block_cache_aside::harness::{Race, Reader};
use common::{Gated, Server};
use hyper::StatusCode;
use serde_json::json;
use url_shortener::Config;
use url_shortener::cache::{
    LOAD_TIMEOUT, LinkCache, RedisLayer, TOMBSTONE_ATTEMPTS, TOMBSTONE_BACKOFF,
};
use url_shortener::config::{LocalCacheConfig, RedisConfig};
use url_shortener::domain::{Code, UrlPolicy};
use url_shortener::metrics::Metrics;
use url_shortener::store::{LinkStore, PgStore};

/// Node A's in-process TTL, short so the test can wait it out.
const A_TTL: Duration = Duration::from_millis(300);

/// How long past the longest bound the readers are watched.
const WATCH: Race = Race {
    watch: Duration::from_millis(300),
    every: Duration::from_millis(20),
};

fn short_local_ttls() -> LocalCacheConfig {
    LocalCacheConfig {
        ttl: A_TTL,
        negative_ttl: A_TTL,
        ..LocalCacheConfig::default()
    }
}

/// A node with no in-process cache: it answers from Redis or PostgreSQL,
/// so it sees what every other node would see once its own entry expires.
async fn observer(b: &common::Backend<PgStore>) -> Server<PgStore> {
    let config = Config {
        local_cache: None,
        ..b.config()
    };
    b.serve(b.store.clone(), config).await
}

/// A reader that asks `node` for `/code` and reports the status.
fn reader<S: LinkStore>(
    name: &str,
    bound: Duration,
    node: &Server<S>,
    code: &str,
) -> Reader<StatusCode> {
    let (client, path) = (node.client.clone(), format!("/{code}"));
    Reader::new(name, bound, move || {
        let (client, path) = (client.clone(), path.clone());
        async move { client.get(&path).await.status }
    })
}

// ANCHOR: resurrection_test
/// Node A reads the live row, then stalls; node B deletes the link; then A's
/// load finishes and fills. Before the conditional fill, A's `SET` put the
/// live entry back into Redis for the Redis TTL, and every node redirected
/// the deleted link again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_load_cannot_bring_a_deleted_link_back() {
    let Some(b) = common::postgres_redis().await else {
        return;
    };
    let (gated, gate) = Gated::new(b.store.clone());
    let a_config = Config {
        local_cache: Some(short_local_ttls()),
        ..b.config()
    };
    let node_a = b.serve(gated, a_config).await;
    let node_b = b.serve(b.store.clone(), b.config()).await;
    let node_c = observer(&b).await;
    let (code, token) = node_b
        .client
        .create_managed(json!({"url": "https://example.com/phish", "alias": "gone-for-good"}))
        .await;
    // Start cold: no cache holds the code, so A must read PostgreSQL.
    let key = b.redis_key(&code).expect("redis");
    let mut redis = b.redis_conn().expect("redis");
    let _: () = ::redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .expect("DEL");

    let slow = {
        let (client, path) = (node_a.client.clone(), format!("/{code}"));
        async move { client.get(&path).await.status }
    };
    let delete = async {
        let path = format!("/api/links/{code}");
        let deleted = node_b.client.delete_with(&path, &token).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    };
    let readers = [
        // B wrote the tombstone into its own memory and Redis; C reads Redis.
        reader("node B, the deleter", Duration::ZERO, &node_b, &code),
        reader(
            "node C, no in-process cache",
            Duration::ZERO,
            &node_c,
            &code,
        ),
        reader(
            "node A, loaded the live row",
            A_TTL + LOAD_TIMEOUT,
            &node_a,
            &code,
        ),
    ];
    let verdict = WATCH
        .run(&gate, &code, slow, delete, &readers, |s| {
            *s == StatusCode::FOUND
        })
        .await
        .unwrap_or_else(|stale| panic!("{stale}"));
    // A's request began before the delete, so its 302 is not stale.
    assert_eq!(verdict.slow_read, StatusCode::FOUND);
    node_a.shutdown().await;
    node_b.shutdown().await;
    node_c.shutdown().await;
}
// ANCHOR_END: resurrection_test

/// The mirror image: node A finds no link and stalls; node B creates it;
/// A's fill must not cache "missing" over the new link.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_load_cannot_hide_a_new_link() {
    let Some(b) = common::postgres_redis().await else {
        return;
    };
    let (gated, gate) = Gated::new(b.store.clone());
    let a_config = Config {
        local_cache: Some(short_local_ttls()),
        ..b.config()
    };
    let node_a = b.serve(gated, a_config).await;
    let node_b = b.serve(b.store.clone(), b.config()).await;
    let node_c = observer(&b).await;
    let slow = {
        let client = node_a.client.clone();
        async move { client.get("/brand-new").await.status }
    };
    let create = async {
        node_b
            .client
            .create_code(json!({"url": "https://example.com/new", "alias": "brand-new"}))
            .await;
    };
    let readers = [
        reader("node B, the creator", Duration::ZERO, &node_b, "brand-new"),
        reader(
            "node C, no in-process cache",
            Duration::ZERO,
            &node_c,
            "brand-new",
        ),
        reader(
            "node A, found nothing",
            A_TTL + LOAD_TIMEOUT,
            &node_a,
            "brand-new",
        ),
    ];
    let verdict = WATCH
        .run(&gate, "brand-new", slow, create, &readers, |s| {
            *s == StatusCode::NOT_FOUND
        })
        .await
        .unwrap_or_else(|stale| panic!("{stale}"));
    assert_eq!(verdict.slow_read, StatusCode::NOT_FOUND);
    node_a.shutdown().await;
    node_b.shutdown().await;
    node_c.shutdown().await;
}

// ANCHOR: breaker_delete_test
/// Node A's breaker is open (one Redis error on A, Redis itself healthy)
/// when A serves a delete. Reads on A skip Redis for the cooldown; the
/// tombstone must not, or node C keeps redirecting to the deleted link
/// from Redis for up to the Redis TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_through_a_node_with_an_open_breaker_still_writes_its_tombstone() {
    let Some(b) = common::postgres_redis().await else {
        return;
    };
    let redis_config = b.redis.clone().expect("redis");
    let a_config = Config {
        redis: Some(url_shortener::config::RedisConfig {
            cooldown: Duration::from_secs(60),
            ..redis_config
        }),
        ..b.config()
    };
    let node_a = b.serve(b.store.clone(), a_config).await;
    let node_c = observer(&b).await;
    let (code, token) = node_a
        .client
        .create_managed(json!({"url": "https://example.com/phish", "alias": "open-breaker"}))
        .await;
    assert_eq!(
        node_c.client.get(&format!("/{code}")).await.status,
        StatusCode::FOUND
    );
    // A key of the wrong type makes A's lookup fail: A's breaker opens.
    let mut redis = b.redis_conn().expect("redis");
    let _: () = ::redis::cmd("LPUSH")
        .arg(b.redis_key("wrong-type").expect("redis"))
        .arg("x")
        .query_async(&mut redis)
        .await
        .expect("LPUSH");
    assert_eq!(
        node_a.client.get("/wrong-type").await.status,
        StatusCode::NOT_FOUND
    );
    let errors = node_a.metrics.redis_errors.load(Ordering::Relaxed);
    assert_eq!(errors, 1, "A's breaker is open");
    let deleted = node_a
        .client
        .delete_with(&format!("/api/links/{code}"), &token)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    assert_eq!(
        node_c.client.get(&format!("/{code}")).await.status,
        StatusCode::GONE,
        "node C read the deleted link from Redis"
    );
    node_a.shutdown().await;
    node_c.shutdown().await;
}
// ANCHOR_END: breaker_delete_test

/// A cache with Redis only, over `config`, and its counters.
fn redis_only(config: &RedisConfig) -> (LinkCache, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let policy = UrlPolicy::default();
    let layer = RedisLayer::new(config, &policy, metrics.clone()).expect("a Redis URL");
    (
        LinkCache::new(None, Some(layer), &policy, metrics.clone()),
        metrics,
    )
}

/// With Redis unreachable, a delete's tombstone is tried
/// [`TOMBSTONE_ATTEMPTS`] times, no more, and the failure is returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_tombstone_is_retried_a_bounded_number_of_times() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let config = RedisConfig {
        timeout: Duration::from_millis(200),
        cooldown: Duration::from_secs(60),
        ..RedisConfig::new(&format!("redis://127.0.0.1:{port}"))
    };
    let (cache, metrics) = redis_only(&config);
    let code = Code::parse("never-there").expect("a code");
    let started = std::time::Instant::now();
    let failed = cache.deleted(&code).await.expect_err("Redis is down");
    assert_eq!(failed.key.as_str(), "never-there");
    assert_eq!(
        metrics.redis_errors.load(Ordering::Relaxed),
        u64::from(TOMBSTONE_ATTEMPTS),
        "one error per try, the open breaker skipped none"
    );
    // The pauses between tries (50, 100 ms, ...) were taken.
    let pauses: Duration = (0..TOMBSTONE_ATTEMPTS - 1)
        .map(|n| TOMBSTONE_BACKOFF * 2u32.pow(n))
        .sum();
    assert!(started.elapsed() >= pauses, "{:?}", started.elapsed());
}

/// The request serving a delete may be dropped as soon as the store
/// committed (the client hung up, a timeout), here while its tombstone
/// waits to be retried: the retry still happens, in the task
/// [`LinkCache::deleted`] started, and writes the tombstone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_dropped_while_its_tombstone_waits_for_a_retry_still_writes_it() {
    let Some(redis) = testkit::redis().await else {
        return;
    };
    let config = common::redis_config(&redis);
    let (cache, metrics) = redis_only(&config);
    let mut conn = redis.conn.clone();
    // The first try fails: the negative set's key holds a string (WRONGTYPE).
    let negative = format!("{}link::negative", config.key_prefix);
    let _: () = ::redis::cmd("SET")
        .arg(&negative)
        .arg("not a sorted set")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let code = Code::parse("dropped").expect("a code");
    let dropped = tokio::time::timeout(TOMBSTONE_BACKOFF / 2, cache.deleted(&code)).await;
    assert!(
        dropped.is_err(),
        "the delete finished before it was dropped"
    );
    assert_eq!(
        metrics.redis_errors.load(Ordering::Relaxed),
        1,
        "the first try failed"
    );
    let _: () = ::redis::cmd("DEL")
        .arg(&negative)
        .query_async(&mut conn)
        .await
        .expect("DEL");
    let key = format!("{}link:dropped", config.key_prefix);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let v: Option<String> = ::redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("GET");
        if v.as_deref() == Some("D") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no tombstone in Redis 2 s after the request was dropped: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A delete repeated after its tombstone failed writes the tombstone again.
/// The first delete's every try fails (the negative set's key holds a
/// string: WRONGTYPE), so it commits in PostgreSQL and answers `204` while
/// the live entry stays in Redis and node C, which reads Redis, still
/// redirects. Once Redis is healthy the owner deletes again: `410`, and the
/// repeated tombstone reaches Redis, so C answers `410` too. A delete that
/// wrote the tombstone only on `Deleted` would leave C redirecting until the
/// Redis TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_delete_writes_the_tombstone_again() {
    let Some(b) = common::postgres_redis().await else {
        return;
    };
    let prefix = b.redis.as_ref().expect("redis").key_prefix.clone();
    let node_a = b.serve(b.store.clone(), b.config()).await;
    let node_c = observer(&b).await;
    let (code, token) = node_a
        .client
        .create_managed(json!({"url": "https://example.com/again", "alias": "delete-again"}))
        .await;
    let path = format!("/{code}");
    assert_eq!(node_c.client.get(&path).await.status, StatusCode::FOUND);
    let mut redis = b.redis_conn().expect("redis");
    let negative = format!("{prefix}link::negative");
    let _: () = ::redis::cmd("SET")
        .arg(&negative)
        .arg("not a sorted set")
        .query_async(&mut redis)
        .await
        .expect("SET");
    let first = node_a
        .client
        .delete_with(&format!("/api/links/{code}"), &token)
        .await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{:?}", first.body);
    assert_eq!(
        node_c.client.get(&path).await.status,
        StatusCode::FOUND,
        "the failed tombstone left the live entry in Redis"
    );
    let _: () = ::redis::cmd("DEL")
        .arg(&negative)
        .query_async(&mut redis)
        .await
        .expect("DEL");
    let again = node_a
        .client
        .delete_with(&format!("/api/links/{code}"), &token)
        .await;
    assert_eq!(again.status, StatusCode::GONE, "{:?}", again.body);
    assert_eq!(
        node_c.client.get(&path).await.status,
        StatusCode::GONE,
        "the repeated delete wrote the tombstone"
    );
    node_a.shutdown().await;
    node_c.shutdown().await;
}
