//! Negative entries: cached briefly, and bounded in number in Redis.

mod common;

use std::time::Duration;

use block_cache_aside::{Event, RedisConfig};
use common::world;

/// The negative set's limit in the scan test.
const LIMIT: u64 = 50;
/// Unknown keys the scanner asks for.
const SCANNED: u64 = 4 * LIMIT;

// ANCHOR: negative_bound
/// A scanner asks for many keys that do not exist: each costs one database
/// read, but no more than `LIMIT` "not found" entries exist in Redis at
/// once; the rest are counted and not cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_do_not_grow_the_negative_set_beyond_its_limit() {
    let Some(w) = world().await else { return };
    let setup = common::Setup {
        redis: Some(RedisConfig {
            negative_limit: LIMIT,
            negative_ttl: Duration::from_secs(60),
            ..w.redis_config()
        }),
        ..w.shared_only()
    };
    let i = w.instance(setup).await;
    for n in 0..SCANNED {
        assert_eq!(i.get(&format!("guess-{n}")).await, None);
    }
    let mut conn = common::conn(&w);
    let negative = i.cache.redis().expect("redis").negative_key();
    let in_set: u64 = redis::cmd("ZCARD")
        .arg(&negative)
        .query_async(&mut conn)
        .await
        .expect("ZCARD");
    let mut cached = 0;
    for n in 0..SCANNED {
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("{}item:guess-{n}", w.redis.prefix))
            .query_async(&mut conn)
            .await
            .expect("GET");
        cached += u64::from(v.is_some());
    }
    assert_eq!(in_set, LIMIT);
    assert_eq!(cached, LIMIT, "entries in Redis");
    // Every key, not only the entries: a version key per guess would be
    // the same unbounded growth by another name. Each cached "not found"
    // keeps its version key (for as long as the entry), plus the set.
    let keys = common::keys_under_prefix(&w).await;
    assert!(
        keys <= 2 * LIMIT + 1,
        "{keys} keys under the prefix after {SCANNED} unknown keys (limit {LIMIT})"
    );
    assert_eq!(i.metrics.get(Event::NegativeFull), SCANNED - LIMIT);
    // The first guesses are still cached: asked again, they cost no read.
    let loads = i.metrics.get(Event::Load);
    assert_eq!(i.get("guess-0").await, None);
    assert_eq!(i.metrics.get(Event::Load), loads);
}
// ANCHOR_END: negative_bound

/// A client over its miss budget is answered from the caches only
/// ([`block_cache_aside::CacheAside::peek`]): its guesses must not write
/// to Redis either, not even a version key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peeking_at_unknown_keys_writes_nothing_to_redis() {
    let Some(w) = world().await else { return };
    let i = w.instance(w.shared_only()).await;
    for n in 0..SCANNED {
        assert_eq!(
            i.cache.peek(&common::key(&format!("guess-{n}"))).await,
            None
        );
    }
    assert_eq!(
        common::keys_under_prefix(&w).await,
        0,
        "keys under the prefix"
    );
    assert_eq!(i.metrics.get(Event::Load), 0, "no database read");
}

/// A row created past the cache (a bulk import that invalidates nothing)
/// is hidden by a cached "not found" for at most the negative TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_found_hides_a_new_row_for_at_most_the_negative_ttl() {
    let Some(w) = world().await else { return };
    let ttl = Duration::from_millis(300);
    let setup = common::Setup {
        redis: Some(RedisConfig {
            negative_ttl: ttl,
            ..w.redis_config()
        }),
        ..w.shared_only()
    };
    let i = w.instance(setup).await;
    assert_eq!(i.get("late").await, None);
    w.seed("late", "v1").await;
    assert_eq!(
        i.get("late").await,
        None,
        "the negative entry still answers"
    );
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(i.get("late").await.as_deref(), Some("v1"));
}
