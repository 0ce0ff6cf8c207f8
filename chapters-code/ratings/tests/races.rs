//! Concurrent clients on real PostgreSQL: the UNIQUE constraints decide the
//! duplicate races, and the aggregate equals a recompute after any
//! interleaving of writers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use common::*;
use proptest::prelude::*;
use ratings::domain::{ModEvent, ProductId, UserId};
use ratings::store::{PgStore, ReviewStore, StoreError};

// ANCHOR: duplicate_submit
/// Concurrent submits of one buyer's review of one product.
const DUPLICATES: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicate_submits_leave_one_review_and_name_the_error() {
    let Some((_db, store)) = pg_store(DUPLICATES as u32).await else {
        return;
    };
    buyers(&store, 1, [1]).await;
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(DUPLICATES));
    let tasks: Vec<_> = (0..DUPLICATES)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .submit(review(1, 1, 1 + (i as i64) % 5), approve(), t0())
                    .await
            })
        })
        .collect();
    let (mut won, mut refused) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => won += 1,
            Err(StoreError::AlreadyReviewed { .. }) => refused += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!((won, refused), (1, DUPLICATES - 1));
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reviews WHERE user_id = 1 AND product_id = 1")
            .fetch_one(store.pool())
            .await
            .expect("count");
    assert_eq!(rows, 1);
    assert_eq!(store.aggregate(ProductId(1)).await.expect("agg").count, 1);
}
// ANCHOR_END: duplicate_submit

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicate_votes_count_once() {
    let Some((_db, store)) = pg_store(DUPLICATES as u32).await else {
        return;
    };
    buyers(&store, 1, [1, 2]).await;
    let r = store
        .submit(review(1, 1, 5), approve(), t0())
        .await
        .expect("submit");
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(DUPLICATES));
    let tasks: Vec<_> = (0..DUPLICATES)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.vote(UserId(2), r.id, t0()).await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => won += 1,
            Err(StoreError::AlreadyVoted { .. }) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.review(r.id).await.expect("r").helpful, 1);
}

// ANCHOR: edit_race
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_of_one_review_keep_the_aggregate_exact() {
    let Some((_db, store)) = pg_store(8).await else {
        return;
    };
    buyers(&store, 1, [1]).await;
    store
        .submit(review(1, 1, 3), approve(), t0())
        .await
        .expect("submit");
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let n = 1 + (w * 7 + i * 3) % 5;
                    store
                        .edit(
                            UserId(1),
                            ProductId(1),
                            stars(n),
                            body("edited again"),
                            t0(),
                        )
                        .await
                        .expect("edit");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    agrees(store.as_ref(), 1).await;
    assert_eq!(store.aggregate(ProductId(1)).await.expect("agg").count, 1);
}
// ANCHOR_END: edit_race

/// One writer's step on a shared product.
#[derive(Clone, Copy, Debug)]
enum Op {
    Create(i64, i64),
    Edit(i64, i64),
    Delete(i64),
    Remove(i64),
    Approve(i64),
}

/// Buyers the writers share, so they collide on the same reviews.
const BUYERS: i64 = 4;

fn op() -> impl Strategy<Value = Op> {
    let u = 1..=BUYERS;
    prop_oneof![
        3 => (u.clone(), 1i64..=5).prop_map(|(u, r)| Op::Create(u, r)),
        3 => (u.clone(), 1i64..=5).prop_map(|(u, r)| Op::Edit(u, r)),
        1 => u.clone().prop_map(Op::Delete),
        1 => u.clone().prop_map(Op::Remove),
        1 => u.prop_map(Op::Approve),
    ]
}

async fn run(store: &PgStore, product: i64, op: Op) {
    let p = ProductId(product);
    let result = match op {
        Op::Create(u, r) => store
            .submit(review(u, product, r), approve(), t0())
            .await
            .map(drop),
        Op::Edit(u, r) => store
            .edit(UserId(u), p, stars(r), body("edit"), t0())
            .await
            .map(drop),
        Op::Delete(u) | Op::Remove(u) | Op::Approve(u) => {
            let event = match op {
                Op::Delete(_) => ModEvent::Delete,
                Op::Remove(_) => ModEvent::Remove,
                _ => ModEvent::Approve,
            };
            match store.review_of(UserId(u), p).await {
                Ok(r) => store
                    .moderate(r.id, event, "test", "proptest", t0())
                    .await
                    .map(drop),
                Err(e) => Err(e),
            }
        }
    };
    // Refusals are expected outcomes of racing; a database error is not.
    match result {
        Ok(())
        | Err(StoreError::AlreadyReviewed { .. })
        | Err(StoreError::NoReviewOf { .. })
        | Err(StoreError::Illegal(_)) => {}
        Err(e) => panic!("{op:?}: {e}"),
    }
}

// ANCHOR: aggregate_property
proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Four writers run their steps at once against one product; whatever
    /// the interleaving, the kept aggregate equals a recompute.
    #[test]
    fn the_aggregate_equals_a_recompute_after_concurrent_writers(
        writers in proptest::collection::vec(proptest::collection::vec(op(), 1..12), 4)
    ) {
        let rt = runtime();
        let Some(store) = shared_store(rt) else { return Ok(()); };
        let product = NEXT_PRODUCT.fetch_add(1, Ordering::Relaxed);
        rt.block_on(async {
            buyers(&store, product, 1..=BUYERS).await;
            let tasks: Vec<_> = writers.into_iter().map(|ops| {
                let store = store.clone();
                tokio::spawn(async move {
                    for op in ops {
                        run(&store, product, op).await;
                    }
                })
            }).collect();
            for t in tasks {
                t.await.expect("writer");
            }
            agrees(&store, product).await;
        });
    }
}
// ANCHOR_END: aggregate_property

static NEXT_PRODUCT: AtomicI64 = AtomicI64::new(1);

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// One database for every case (each case uses its own product); `None` after a SKIPPED line.
fn shared_store(rt: &tokio::runtime::Runtime) -> Option<PgStore> {
    static DB: std::sync::OnceLock<Option<(testkit::TestDb, PgStore)>> = std::sync::OnceLock::new();
    DB.get_or_init(|| rt.block_on(pg_store(8)))
        .as_ref()
        .map(|(_, s)| s.clone())
}
