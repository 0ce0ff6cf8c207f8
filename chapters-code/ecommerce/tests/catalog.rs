//! The catalog read path with two (or three) instances sharing Redis and
//! PostgreSQL: stampede protection, and the staleness bound of a price change.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ecommerce::catalog::{Catalog, CatalogConfig, CatalogMetrics, FillHook, FillPolicy, RedisL2};
use ecommerce::domain::Currency;
use ecommerce::store::PgStore;
use tokio::sync::{Barrier, Notify};

/// Short TTLs so the bound is tested in well under a second.
fn config() -> CatalogConfig {
    CatalogConfig {
        l1_ttl: Duration::from_millis(200),
        l1_capacity: 1_000,
        l2_ttl: Duration::from_secs(60),
        missing_ttl: Duration::from_millis(300),
        load_timeout: Duration::from_millis(150),
    }
}

async fn instance(store: &PgStore, r: &testkit::TestRedis, policy: FillPolicy) -> Catalog<PgStore> {
    instance_with(store, r, policy, config()).await
}

async fn instance_with(
    store: &PgStore,
    r: &testkit::TestRedis,
    policy: FillPolicy,
    config: CatalogConfig,
) -> Catalog<PgStore> {
    let l2 = RedisL2::connect(&r.url, &r.prefix, policy)
        .await
        .expect("Redis");
    Catalog::new(Arc::new(store.clone()), Some(l2), config)
}

fn loads(c: &Catalog<PgStore>) -> u64 {
    CatalogMetrics::get(&c.metrics.store_loads)
}

// ANCHOR: stampede
#[tokio::test]
async fn a_cold_product_is_loaded_once_per_instance() {
    let (Some((_db, store)), Some(r)) = (pg_store_with(8).await, testkit::redis().await) else {
        return;
    };
    let a = Arc::new(instance(&store, &r, FillPolicy::KeepHigherVersion).await);
    let b = Arc::new(instance(&store, &r, FillPolicy::KeepHigherVersion).await);
    for c in [&a, &b] {
        let barrier = Arc::new(Barrier::new(64));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (c, barrier) = (Arc::clone(c), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                c.get(&sku("MUG-RED")).await
            }));
        }
        for t in tasks {
            assert!(t.await.expect("no panic").expect("a product").is_some());
        }
    }
    assert_eq!(loads(&a), 1, "64 concurrent misses, one database read");
    assert_eq!(loads(&b), 0, "the second instance found it in Redis");
    assert_eq!(CatalogMetrics::get(&b.metrics.l2_hits), 1);
}
// ANCHOR_END: stampede

/// Instance `b` loads the old row, then waits at the fill until released.
fn paused_fill(b: &mut Catalog<PgStore>) -> (Arc<Notify>, Arc<Notify>) {
    let (loaded, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (l, g) = (Arc::clone(&loaded), Arc::clone(&go));
    let hook: FillHook = Arc::new(move || {
        let (l, g) = (Arc::clone(&l), Arc::clone(&g));
        Box::pin(async move {
            l.notify_one();
            g.notified().await;
        })
    });
    b.fill_hook = Some(hook);
    (loaded, go)
}

/// The race: `b` reads price v1 from the database, `a` changes the price
/// (v2) and publishes it, then `b` fills Redis with what it read. A third
/// instance with an empty L1 then reads through Redis.
async fn race(policy: FillPolicy) -> Option<(i64, i64, i64)> {
    let (Some((_db, store)), Some(r)) = (pg_store_with(8).await, testkit::redis().await) else {
        return None;
    };
    let a = instance(&store, &r, policy).await;
    // The paused load must not time out: this test is about Redis, not L1.
    let patient = CatalogConfig {
        load_timeout: Duration::from_secs(30),
        ..config()
    };
    let mut b = instance_with(&store, &r, policy, patient).await;
    let c = instance(&store, &r, policy).await;
    let (loaded, go) = paused_fill(&mut b);
    let b = Arc::new(b);
    let reader = {
        let b = Arc::clone(&b);
        tokio::spawn(async move { b.get(&sku("MUG-RED")).await })
    };
    loaded.notified().await;
    let v2 = a
        .set_price(&sku("MUG-RED"), money(1400, Currency::Eur))
        .await
        .expect("price change");
    go.notify_one();
    let _ = reader.await.expect("no panic");
    let seen_by_c = c
        .get(&sku("MUG-RED"))
        .await
        .expect("read")
        .expect("a product");
    Some((1, v2.version, seen_by_c.version))
}

// ANCHOR: fill_race
#[tokio::test]
async fn a_fill_that_lost_the_race_cannot_put_the_old_price_back() {
    let Some((_, v2, seen)) = race(FillPolicy::KeepHigherVersion).await else {
        return;
    };
    assert_eq!(seen, v2, "Redis kept the newer version");
}

/// The same race with a plain write: the old price is back in Redis, for
/// every instance, for the whole L2 TTL. This is the bug the design avoids.
#[tokio::test]
async fn an_unconditional_fill_puts_the_old_price_back() {
    let Some((v1, _, seen)) = race(FillPolicy::Unconditional).await else {
        return;
    };
    assert_eq!(seen, v1, "the stale fill overwrote the new price");
}
// ANCHOR_END: fill_race

// ANCHOR: staleness_bound
/// Two instances read continuously while one of them changes the price five
/// times: every read that starts `staleness_bound()` after a change returned
/// sees that change (or a later one).
#[tokio::test]
async fn two_instances_serve_a_new_price_within_the_bound() {
    let (Some((_db, store)), Some(r)) = (pg_store_with(8).await, testkit::redis().await) else {
        return;
    };
    let a = Arc::new(instance(&store, &r, FillPolicy::KeepHigherVersion).await);
    let b = Arc::new(instance(&store, &r, FillPolicy::KeepHigherVersion).await);
    let bound = a.config().staleness_bound();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for c in [&a, &b, &a, &b] {
        let (c, stop) = (Arc::clone(c), Arc::clone(&stop));
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                if let Ok(Some(p)) = c.get(&sku("MUG-RED")).await {
                    seen.push((started, p.version));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        }));
    }
    let mut writes = Vec::new();
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let p = a
            .set_price(&sku("MUG-RED"), money(1300 + i, Currency::Eur))
            .await
            .expect("price change");
        writes.push((Instant::now(), p.version));
    }
    tokio::time::sleep(bound * 2).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut checked = 0;
    for t in readers {
        for (started, version) in t.await.expect("no panic") {
            let due = writes
                .iter()
                .filter(|(done, _)| *done + bound <= started)
                .map(|(_, v)| *v)
                .max();
            if let Some(due) = due {
                assert!(
                    version >= due,
                    "a read {bound:?} after version {due} saw {version}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} reads were due");
}
// ANCHOR_END: staleness_bound

#[tokio::test]
async fn garbage_in_redis_is_a_miss_and_a_metric() {
    let (Some((_db, store)), Some(r)) = (pg_store().await, testkit::redis().await) else {
        return;
    };
    let a = instance(&store, &r, FillPolicy::KeepHigherVersion).await;
    let key = RedisL2::connect(&r.url, &r.prefix, FillPolicy::KeepHigherVersion)
        .await
        .expect("Redis")
        .key(&sku("MUG-RED"));
    let mut conn = r.conn.clone();
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("v")
        .arg(99)
        .arg("e")
        .arg(r#"{"kind":"found","product":{"sku":"mug red"}}"#)
        .query_async(&mut conn)
        .await
        .expect("HSET");
    let p = a
        .get(&sku("MUG-RED"))
        .await
        .expect("read")
        .expect("a product");
    assert_eq!(p.price.minor(), 1250, "served from the database");
    assert_eq!(CatalogMetrics::get(&a.metrics.l2_errors), 1);
}

#[tokio::test]
async fn unknown_products_are_cached_as_missing() {
    let (Some((_db, store)), Some(r)) = (pg_store().await, testkit::redis().await) else {
        return;
    };
    let a = instance(&store, &r, FillPolicy::KeepHigherVersion).await;
    let b = instance(&store, &r, FillPolicy::KeepHigherVersion).await;
    assert_eq!(a.get(&sku("NOPE")).await.expect("read"), None);
    assert_eq!(a.get(&sku("NOPE")).await.expect("read"), None);
    assert_eq!(b.get(&sku("NOPE")).await.expect("read"), None);
    assert_eq!(
        loads(&a) + loads(&b),
        1,
        "one database read for three lookups"
    );
}

// ANCHOR: missing_ttl
/// Issue #26, item 8: "no such product" lives in Redis for `missing_ttl`,
/// not for the product TTL, so a product created behind the cache's back
/// (an import, another service) appears within `missing_ttl` + `l1_ttl`.
#[tokio::test]
async fn a_product_created_after_a_miss_appears_within_the_missing_ttl() {
    use ecommerce::store::Store;
    let (Some((_db, store)), Some(r)) = (pg_store().await, testkit::redis().await) else {
        return;
    };
    let a = instance(&store, &r, FillPolicy::KeepHigherVersion).await;
    assert_eq!(a.get(&sku("NEW-1")).await.expect("read"), None);
    let mut p = products().remove(0);
    p.sku = sku("NEW-1");
    store
        .put_product(&p)
        .await
        .expect("created behind the cache");
    let bound = config().missing_ttl + config().l1_ttl;
    tokio::time::sleep(bound + Duration::from_millis(100)).await;
    let b = instance(&store, &r, FillPolicy::KeepHigherVersion).await;
    assert!(
        b.get(&sku("NEW-1")).await.expect("read").is_some(),
        "a new instance sees it once the missing entry expired in Redis"
    );
    assert!(a.get(&sku("NEW-1")).await.expect("read").is_some());
}
// ANCHOR_END: missing_ttl

#[tokio::test]
async fn search_uses_the_words_of_name_and_description() {
    use ecommerce::store::Store;
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let hits = store.search("coffee mug", 10).await.expect("search");
    assert_eq!(
        hits.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(),
        ["MUG-RED"]
    );
    let hits = store.search("programming book", 10).await.expect("search");
    assert_eq!(
        hits.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(),
        ["BOOK-RUST"]
    );
    assert!(store.search("teapot", 10).await.expect("search").is_empty());
    // Stemming: "mugs" finds "mug".
    assert_eq!(store.search("mugs", 10).await.expect("search").len(), 1);
}

// ANCHOR: restart_keeps_stock
/// Issue #26, item 8: the demo binary's start-up creates only the products
/// the store lacks, so a restart keeps the stock that was sold.
#[tokio::test]
async fn a_restart_creates_missing_products_and_keeps_the_stock_sold() {
    use ecommerce::store::{Store, seed_missing};
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let c = ecommerce::checkout::Checkout::new(
        Arc::new(store.clone()),
        Arc::new(ecommerce::checkout::provider::FakeProvider::new()),
    );
    let req = request(&store, &[("MUG-RED", 5)]).await;
    c.run("alice", None, &req, now0()).await.expect("a sale");
    let mut list = products();
    list[0].name = "Renamed on restart".into();
    list.push(ecommerce::store::NewProduct {
        sku: sku("NEW-1"),
        ..list[1].clone()
    });
    assert_eq!(
        seed_missing(&store, &list).await.expect("seed"),
        1,
        "only the new one"
    );
    assert_eq!(store.stock(&sku("MUG-RED")).await.expect("stock"), Some(95));
    let mug = store
        .product(&sku("MUG-RED"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(mug.name, "Red mug", "an existing product is left as it is");
}
// ANCHOR_END: restart_keeps_stock
