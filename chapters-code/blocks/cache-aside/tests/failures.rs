//! What the cache does with a bad Redis: garbage read back is a miss and a
//! metric, and a Redis that is down sends reads to the database.

mod common;

use std::time::Duration;

use block_cache_aside::{Event, RedisConfig};
use common::world;

// ANCHOR: garbage
/// Values the codec refuses (a foreign writer, a bug, a half-done
/// migration, bytes that are not UTF-8) are misses: the read goes to
/// PostgreSQL, the garbage is counted, and the fill replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_redis_is_a_miss_and_a_metric() {
    let Some(w) = world().await else { return };
    w.seed("k", "v1").await;
    let i = w.instance(w.shared_only()).await;
    let entry = format!("{}item:k", w.redis.prefix);
    let mut conn = common::conn(&w);
    let garbage: [&[u8]; 5] = [b"", b"X", b"V", b"Vwith space", b"V\xff\xfe"];
    for (n, value) in garbage.iter().enumerate() {
        let _: () = redis::cmd("SET")
            .arg(&entry)
            .arg(*value)
            .query_async(&mut conn)
            .await
            .expect("SET");
        assert_eq!(i.get("k").await.as_deref(), Some("v1"), "{value:?}");
        assert_eq!(i.metrics.get(Event::Garbage), n as u64 + 1);
    }
    let now: String = redis::cmd("GET")
        .arg(&entry)
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(now, "Vv1", "the last fill replaced the garbage");
}
// ANCHOR_END: garbage

// ANCHOR: breaker_writes
/// The breaker is per instance and any failed call opens it, Redis itself
/// being healthy. Reads then skip Redis; a change must not: instance A's
/// delete, with A's breaker open, still writes its tombstone, so instance
/// B is not served the deleted row from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_through_an_instance_with_an_open_breaker_still_reaches_redis() {
    let Some(w) = world().await else { return };
    w.seed("k", "v1").await;
    let a = w
        .instance(common::Setup {
            redis: Some(RedisConfig {
                cooldown: Duration::from_secs(60),
                ..w.redis_config()
            }),
            ..w.shared_only()
        })
        .await;
    let b = w.instance(w.shared_only()).await;
    assert_eq!(b.get("k").await.as_deref(), Some("v1"), "B fills Redis");
    // A Redis error on A (a key of the wrong type) opens A's breaker.
    let mut conn = common::conn(&w);
    let _: () = redis::cmd("LPUSH")
        .arg(format!("{}item:wrong-type", w.redis.prefix))
        .arg("x")
        .query_async(&mut conn)
        .await
        .expect("LPUSH");
    assert_eq!(a.get("wrong-type").await, None);
    assert_eq!(a.metrics.get(Event::RedisError), 1, "A's breaker is open");
    let loads = a.metrics.get(Event::Load);
    assert_eq!(a.get("k").await.as_deref(), Some("v1"));
    assert_eq!(
        a.metrics.get(Event::Load),
        loads + 1,
        "A's reads skip Redis"
    );
    a.delete("k").await;
    assert_eq!(
        b.get("k").await,
        None,
        "B must not be served the deleted row"
    );
}
// ANCHOR_END: breaker_writes

/// Redis on a port where nothing listens: every read is answered by
/// PostgreSQL, one failure opens the breaker for reads, and writes still
/// succeed in the database while their invalidation reports the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_reads_go_to_the_database() {
    let Some(w) = world().await else { return };
    w.seed("k", "v1").await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let setup = common::Setup {
        redis: Some(RedisConfig {
            timeout: Duration::from_millis(200),
            cooldown: Duration::from_secs(30),
            ..RedisConfig::new(&format!("redis://127.0.0.1:{port}"), "down:")
        }),
        ..w.shared_only()
    };
    let i = w.instance(setup).await;
    for _ in 0..5 {
        assert_eq!(i.get("k").await.as_deref(), Some("v1"));
    }
    let failed = i.try_update("k", "v2").await.expect_err("Redis is down");
    assert_eq!(failed.key.as_str(), "k");
    assert_eq!(i.get("k").await.as_deref(), Some("v2"));
    assert_eq!(
        i.metrics.get(Event::Load),
        6,
        "every read reached PostgreSQL"
    );
    assert_eq!(
        i.metrics.get(Event::RedisError),
        2,
        "one read failed and opened the breaker; the change tried anyway"
    );
}
