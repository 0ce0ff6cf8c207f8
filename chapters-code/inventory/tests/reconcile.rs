//! The two-system gap: Redis and the PostgreSQL ledger disagree after a
//! crash between the two writes, and the reconciliation job repairs it.

mod common;

use std::time::Duration;

use common::*;
use inventory::redis_front::{FailPoint, Reconciled, RedisFront, Views};
use testkit::{TestDb, TestRedis};
use uuid::Uuid;

async fn front() -> Option<(TestDb, TestRedis, RedisFront)> {
    let db = testkit::postgres(Some(&ladder_path())).await?;
    let redis = testkit::redis().await?;
    let f = RedisFront::new(redis.conn.clone(), db.pool.clone(), &redis.prefix);
    f.setup(10).await.expect("setup");
    Some((db, redis, f))
}

// ANCHOR: crash_test
#[tokio::test]
async fn reconciliation_repairs_a_crash_between_redis_and_postgres() {
    let Some((_db, _redis, f)) = front().await else {
        return;
    };
    for _ in 0..3 {
        assert!(f.reserve(1).await.expect("reserve").is_some());
    }
    // Two reserves die after Redis decremented, before PostgreSQL recorded.
    for _ in 0..2 {
        f.fail_next(FailPoint::AfterRedis);
        assert!(f.reserve(1).await.is_err(), "the crash is reported");
    }
    let before = f.views().await.expect("views");
    assert_eq!(
        before,
        Views {
            redis_available: 5,
            durable_available: 7,
            pending: 2
        },
        "Redis lost two units the ledger never sold"
    );
    let done = f.reconcile(Duration::ZERO).await.expect("reconcile");
    assert_eq!(
        done,
        Reconciled {
            completed: 0,
            voided: 2,
            units_restored: 2
        }
    );
    let after = f.views().await.expect("views");
    assert_eq!(after.redis_available, after.durable_available, "{after:?}");
    assert_eq!((after.redis_available, after.pending), (7, 0));
    // A second pass finds nothing to do: repairs are not repeated.
    assert_eq!(
        f.reconcile(Duration::ZERO).await.expect("again"),
        Reconciled::default()
    );
}
// ANCHOR_END: crash_test

#[tokio::test]
async fn a_crash_after_postgres_keeps_the_claim() {
    let Some((_db, _redis, f)) = front().await else {
        return;
    };
    f.fail_next(FailPoint::AfterPostgres);
    assert!(f.reserve(4).await.is_err());
    let done = f.reconcile(Duration::ZERO).await.expect("reconcile");
    assert_eq!(
        done,
        Reconciled {
            completed: 1,
            voided: 0,
            units_restored: 0
        },
        "the claim was durable: nothing is given back"
    );
    let v = f.views().await.expect("views");
    assert_eq!(
        (v.redis_available, v.durable_available, v.pending),
        (6, 6, 0)
    );
}

#[tokio::test]
async fn a_late_writer_is_refused_once_its_claim_was_voided() {
    let Some((_db, _redis, f)) = front().await else {
        return;
    };
    // The writer decremented Redis and then stalled past the grace period.
    let id = Uuid::new_v4();
    assert_eq!(f.claim_in_redis(id, 1).await.expect("claim"), 9);
    let done = f.reconcile(Duration::ZERO).await.expect("reconcile");
    assert_eq!(done.voided, 1);
    // It wakes up: the voided row's primary key refuses it, so the unit
    // Redis got back is not also sold through this claim.
    assert!(!f.record_in_postgres(id, 1).await.expect("insert"));
    let v = f.views().await.expect("views");
    assert_eq!((v.redis_available, v.durable_available), (10, 10));
}

#[tokio::test]
async fn claims_in_flight_are_left_alone_during_the_grace_period() {
    let Some((_db, _redis, f)) = front().await else {
        return;
    };
    let id = Uuid::new_v4();
    f.claim_in_redis(id, 2).await.expect("claim");
    let done = f
        .reconcile(Duration::from_secs(60))
        .await
        .expect("reconcile");
    assert_eq!(done, Reconciled::default());
    assert!(
        f.record_in_postgres(id, 2).await.expect("insert"),
        "the writer completes"
    );
    f.clear_pending(id).await.expect("clear");
    let v = f.views().await.expect("views");
    assert_eq!(
        (v.redis_available, v.durable_available, v.pending),
        (8, 8, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reconcilers_restore_each_unit_once() {
    let Some((_db, _redis, f)) = front().await else {
        return;
    };
    for _ in 0..3 {
        f.fail_next(FailPoint::AfterRedis);
        assert!(f.reserve(2).await.is_err(), "the crash is reported");
    }
    // Several reconcilers at once (two instances of the job, a retry):
    // each dead claim is voided once and its units come back once.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(REPAIRERS));
    let mut jobs = Vec::new();
    for _ in 0..REPAIRERS {
        let (f, start) = (f.clone(), std::sync::Arc::clone(&start));
        jobs.push(tokio::spawn(async move {
            start.wait().await;
            f.reconcile(Duration::ZERO).await.expect("reconcile")
        }));
    }
    let mut total = Reconciled::default();
    for j in jobs {
        let r = j.await.expect("job");
        total.voided += r.voided;
        total.completed += r.completed;
        total.units_restored += r.units_restored;
    }
    assert_eq!(
        total,
        Reconciled {
            completed: 0,
            voided: 3,
            units_restored: 6
        }
    );
    let v = f.views().await.expect("views");
    assert_eq!(
        (v.redis_available, v.durable_available, v.pending),
        (10, 10, 0)
    );
}

#[tokio::test]
async fn a_reconciler_that_died_midway_is_finished_by_the_next_pass() {
    let Some((db, _redis, f)) = front().await else {
        return;
    };
    let id = Uuid::new_v4();
    assert_eq!(f.claim_in_redis(id, 3).await.expect("claim"), 7);
    // A reconciler voided the claim in PostgreSQL and died before giving
    // the units back to Redis: its own two-system gap.
    sqlx::query(
        "INSERT INTO redis_claims (id, sku, qty, voided) SELECT $1, sku, 3, true FROM hot_stock",
    )
    .bind(id)
    .execute(&db.pool)
    .await
    .expect("void");
    let done = f.reconcile(Duration::ZERO).await.expect("reconcile");
    assert_eq!(
        (done.voided, done.units_restored, done.completed),
        (1, 3, 0)
    );
    let v = f.views().await.expect("views");
    assert_eq!(
        (v.redis_available, v.durable_available, v.pending),
        (10, 10, 0)
    );
}

/// Reconcilers run at once in `concurrent_reconcilers_restore_each_unit_once`.
const REPAIRERS: usize = 6;
