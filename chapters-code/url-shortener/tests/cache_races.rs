//! The cache's staleness bound, with two service instances sharing
//! PostgreSQL and Redis and a load that races a write.
//!
//! Node A's store stalls one lookup after it has read the row ([`Gated`]),
//! so the test decides exactly when A's fill reaches Redis: after node B
//! has changed the link. A fill must never undo that change in Redis; the
//! only staleness left is node A's own in-process entry, for at most its
//! TTL.

mod common;

use std::time::Duration;

use common::{Gated, Server};
use hyper::StatusCode;
use serde_json::json;
use url_shortener::Config;
use url_shortener::config::LocalCacheConfig;
use url_shortener::store::PgStore;

/// Node A's in-process TTLs, short so the test can wait them out.
fn short_local_ttls() -> LocalCacheConfig {
    LocalCacheConfig {
        ttl: Duration::from_millis(300),
        negative_ttl: Duration::from_millis(300),
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

// ANCHOR: resurrection_test
/// Node A reads the live row, then stalls; node B deletes the link; then A's
/// load finishes and fills the caches. Before the tombstone, A's fill put
/// the live entry back into Redis for the Redis TTL, and every node
/// redirected the deleted link again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_load_cannot_bring_a_deleted_link_back() {
    let Some(b) = common::postgres_redis().await else {
        return;
    };
    let (gated, gate) = Gated::new(b.store.clone());
    let node_a = b
        .serve(
            gated,
            Config {
                local_cache: Some(short_local_ttls()),
                ..b.config()
            },
        )
        .await;
    let node_b = b.serve(b.store.clone(), b.config()).await;
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

    gate.arm(&code);
    let slow = {
        let client = node_a.client.clone();
        let path = format!("/{code}");
        tokio::spawn(async move { client.get(&path).await.status })
    };
    gate.loaded().await; // A holds the live row
    let deleted = node_b
        .client
        .delete_with(&format!("/api/links/{code}"), &token)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    gate.release();
    // A's request began before the delete, so its 302 is not stale.
    assert_eq!(slow.await.expect("task"), StatusCode::FOUND);

    // Redis still says "deleted": node B, and any node without the code in
    // memory, answers 410.
    let node_c = observer(&b).await;
    for node in [&node_b, &node_c] {
        let reply = node.client.get(&format!("/{code}")).await;
        assert_eq!(
            reply.status,
            StatusCode::GONE,
            "{:?}",
            reply.header("location")
        );
    }
    // Node A's own entry lives at most its in-process TTL.
    let client = node_a.client.clone();
    let path = format!("/{code}");
    let gone = common::eventually(Duration::from_secs(2), || {
        let (client, path) = (client.clone(), path.clone());
        async move { client.get(&path).await.status == StatusCode::GONE }
    })
    .await;
    assert!(gone, "node A kept redirecting past its in-process TTL");
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
    let node_a = b
        .serve(
            gated,
            Config {
                local_cache: Some(short_local_ttls()),
                ..b.config()
            },
        )
        .await;
    let node_b = b.serve(b.store.clone(), b.config()).await;
    gate.arm("brand-new");
    let slow = {
        let client = node_a.client.clone();
        tokio::spawn(async move { client.get("/brand-new").await.status })
    };
    gate.loaded().await; // A has read "no such link"
    node_b
        .client
        .create_code(json!({"url": "https://example.com/new", "alias": "brand-new"}))
        .await;
    gate.release();
    assert_eq!(slow.await.expect("task"), StatusCode::NOT_FOUND);

    let node_c = observer(&b).await;
    for node in [&node_b, &node_c] {
        let reply = node.client.get("/brand-new").await;
        assert_eq!(reply.status, StatusCode::FOUND, "{:?}", reply.body);
    }
    let client = node_a.client.clone();
    let found = common::eventually(Duration::from_secs(2), || {
        let client = client.clone();
        async move { client.get("/brand-new").await.status == StatusCode::FOUND }
    })
    .await;
    assert!(found, "node A kept answering 404 past its negative TTL");
    node_a.shutdown().await;
    node_b.shutdown().await;
    node_c.shutdown().await;
}
