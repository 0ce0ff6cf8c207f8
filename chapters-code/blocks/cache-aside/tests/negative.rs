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
    assert_eq!(i.metrics.get(Event::NegativeFull), SCANNED - LIMIT);
    // The first guesses are still cached: asked again, they cost no read.
    let loads = i.metrics.get(Event::Load);
    assert_eq!(i.get("guess-0").await, None);
    assert_eq!(i.metrics.get(Event::Load), loads);
}
// ANCHOR_END: negative_bound

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
