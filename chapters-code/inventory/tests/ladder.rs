//! Each rung of the contention ladder on real PostgreSQL (and Redis) with
//! concurrent clients, on a small configuration: the same code the report
//! measures at 1 to 64 clients.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use inventory::ladder::load::{LoadSpec, sell_out, throughput};
use inventory::ladder::{Attempt, Buckets, Rung, all_rungs, buckets::BUCKETS};
use inventory::redis_front::RedisFront;
use testkit::{TestDb, TestRedis};

/// Clients in the sell-outs (each holds a connection while it runs).
const CLIENTS: u32 = 16;
/// Units per sell-out.
const UNITS: i64 = 60;

async fn ladder_db(pool_size: u32) -> Option<(TestDb, TestRedis, Vec<Box<dyn Rung>>)> {
    let db = testkit::postgres(Some(&schema_path())).await?;
    db.apply_sql_file(&ladder_path()).await.expect("ladder.sql");
    let redis = testkit::redis().await?;
    let pool = db.pool_with(pool_size).await;
    let front = RedisFront::new(redis.conn.clone(), pool.clone(), &redis.prefix);
    let rungs = all_rungs(&pool, front).expect("rungs");
    Some((db, redis, rungs))
}

// ANCHOR: oversell_test
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_naive_rung_oversells() {
    let Some((_db, _redis, rungs)) = ladder_db(CLIENTS).await else {
        return;
    };
    for rung in rungs {
        let id = rung.id();
        if id == "ceiling" {
            continue; // it has no notion of "sold out"
        }
        let rung: Arc<dyn Rung> = Arc::from(rung);
        let s = sell_out(rung, CLIENTS, UNITS).await.expect("sell-out");
        assert_eq!(s.errors, 0, "{id}: {s:?}");
        if id == "naive" {
            // Lost updates: clients were told they got units that were never there.
            assert!(s.oversell() > 0, "{id} should oversell: {s:?}");
        } else {
            assert_eq!(s.oversell(), 0, "{id}: {s:?}");
            assert_eq!(
                s.reserved + s.remaining,
                UNITS,
                "{id}: every unit accounted for"
            );
        }
        if id != "buckets" {
            // Without the fallback, a client may give up while another bucket has units.
            assert_eq!(s.undersell(), 0, "{id}: {s:?}");
        }
    }
}
// ANCHOR_END: oversell_test

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rung_runs_closed_loop() {
    let Some((_db, _redis, rungs)) = ladder_db(8).await else {
        return;
    };
    for rung in rungs {
        let rung: Arc<dyn Rung> = Arc::from(rung);
        let spec = LoadSpec {
            clients: 8,
            warmup: Duration::from_millis(100),
            measure: Duration::from_millis(300),
            units: 1_000_000,
        };
        let t = throughput(Arc::clone(&rung), spec).await.expect("run");
        assert!(t.reserved > 0, "{}: {t:?}", t.rung);
        assert_eq!((t.errors, t.sold_out), (0, 0), "{}", t.rung);
    }
}

// ANCHOR: last_unit
#[tokio::test]
async fn the_last_unit_in_another_bucket_needs_the_fallback() {
    let Some(db) = testkit::postgres(Some(&ladder_path())).await else {
        return;
    };
    let plain = Buckets::new(db.pool.clone(), 4, false);
    let fallback = Buckets::new(db.pool.clone(), 4, true);
    for b in [&plain, &fallback] {
        b.set_layout(&[0, 0, 0, 1]).await.expect("layout");
    }
    // Client 0 starts at bucket 0, which is empty; the unit is in bucket 3.
    assert_eq!(plain.take(0, 1).await.expect("take"), Attempt::SoldOut);
    assert_eq!(
        plain.total().await.expect("total"),
        1,
        "sold out, yet one unit left"
    );
    assert_eq!(fallback.take(0, 1).await.expect("take"), Attempt::Reserved);
    assert_eq!(fallback.total().await.expect("total"), 0);
}
// ANCHOR_END: last_unit

#[tokio::test]
async fn a_multi_unit_request_gathers_units_across_fragmented_buckets() {
    let Some(db) = testkit::postgres(Some(&ladder_path())).await else {
        return;
    };
    let b = Buckets::new(db.pool.clone(), 4, true);
    b.set_layout(&[1, 1, 1, 0]).await.expect("layout");
    // Three units in total, but no bucket has two: the request gathers them
    // across buckets (before, it was "busy" until a rebalance ran).
    assert_eq!(b.take(0, 2).await.expect("take"), Attempt::Reserved);
    assert_eq!(b.layout().await.expect("layout"), vec![0, 0, 1, 0]);
    assert_eq!(b.take(0, 2).await.expect("take"), Attempt::SoldOut);
    // Spread evenly with plenty, a request larger than any bucket is served too.
    b.set_layout(&[5, 5, 5, 5]).await.expect("layout");
    assert_eq!(b.take(1, 6).await.expect("take"), Attempt::Reserved);
    assert_eq!(b.total().await.expect("total"), 14);
    b.set_layout(&[1, 1, 1, 0]).await.expect("layout");
    assert_eq!(b.rebalance().await.expect("rebalance"), vec![3, 0, 0, 0]);
    assert_eq!(b.take(0, 2).await.expect("take"), Attempt::Reserved);
    assert_eq!(b.layout().await.expect("layout"), vec![1, 0, 0, 0]);
    // With plenty, rebalancing spreads evenly again.
    b.set_layout(&[40, 0, 0, 3]).await.expect("layout");
    assert_eq!(
        b.rebalance().await.expect("rebalance"),
        vec![11, 11, 11, 10]
    );
    assert_eq!(BUCKETS, 8, "the ladder's bucket count, named in the text");
}
