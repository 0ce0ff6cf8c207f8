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

use std::time::Duration;

use block_cache_aside::harness::{Race, Reader};
use common::{Gated, Server};
use hyper::StatusCode;
use serde_json::json;
use url_shortener::Config;
use url_shortener::cache::LOAD_TIMEOUT;
use url_shortener::config::LocalCacheConfig;
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
