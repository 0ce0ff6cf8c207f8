//! The staged-jobs worker (issue #26, item 4): each job runs once, on real
//! PostgreSQL with concurrent workers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ecommerce::checkout::provider::FakeProvider;
use ecommerce::checkout::{BoxFuture, Checkout};
use ecommerce::jobs::{FakeMailer, JobError, JobHooks, JobPoint, Worker};
use ecommerce::store::PgStore;
use tokio::sync::{Barrier, Notify};

/// `n` paid orders, each with its receipt job staged by phase 2.
async fn paid_orders(store: &PgStore, n: usize) {
    let c = Checkout::new(Arc::new(store.clone()), Arc::new(FakeProvider::new()));
    let req = request(store, &[("MUG-RED", 1)]).await;
    for _ in 0..n {
        c.run("alice", None, &req, now0()).await.expect("checkout");
    }
}

fn worker(
    store: &PgStore,
    mailer: &Arc<FakeMailer>,
    hooks: Arc<dyn JobHooks>,
) -> Worker<FakeMailer> {
    let mut w = Worker::new(store.pool().clone(), Arc::clone(mailer));
    w.hooks = hooks;
    w
}

/// Sleeps at one point, so concurrent claims overlap there.
struct SleepAt(JobPoint, Duration);

impl JobHooks for SleepAt {
    fn reached(&self, point: JobPoint, _: Option<i64>) -> BoxFuture<'_> {
        if point == self.0 {
            Box::pin(tokio::time::sleep(self.1))
        } else {
            Box::pin(std::future::ready(()))
        }
    }
}

/// Pauses at one point until the test says go.
struct PauseAt {
    point: JobPoint,
    reached: Notify,
    go: Notify,
}

impl JobHooks for PauseAt {
    fn reached(&self, point: JobPoint, _: Option<i64>) -> BoxFuture<'_> {
        if point == self.point {
            self.reached.notify_one();
            Box::pin(self.go.notified())
        } else {
            Box::pin(std::future::ready(()))
        }
    }
}

fn pause_at(point: JobPoint) -> Arc<PauseAt> {
    Arc::new(PauseAt {
        point,
        reached: Notify::new(),
        go: Notify::new(),
    })
}

async fn count(store: &PgStore, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await
        .expect("count")
}

/// Jobs and workers in the concurrent test.
const JOBS: usize = 40;
const WORKERS: usize = 6;

// ANCHOR: once
/// Workers draining at once, each claim held open a while so claims
/// overlap: every job is claimed once, run once and leaves one receipt.
#[tokio::test]
async fn each_staged_job_runs_once_across_concurrent_workers() {
    let Some((_db, store)) = pg_store_with(WORKERS as u32 + 2).await else {
        return;
    };
    paid_orders(&store, JOBS).await;
    let mailer = Arc::new(FakeMailer::default());
    let barrier = Arc::new(Barrier::new(WORKERS));
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let w = worker(
            &store,
            &mailer,
            Arc::new(SleepAt(
                JobPoint::BeforeClaimCommit,
                Duration::from_millis(50),
            )),
        );
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let (mut claimed, mut done, mut empty) = (0, 0, 0);
            // A few empty claims in a row: the others may still hold the rest.
            while empty < 3 {
                let d = w.drain_once().await.expect("a drain");
                claimed += d.claimed;
                done += d.done;
                empty = if d.claimed == 0 { empty + 1 } else { 0 };
            }
            (claimed, done)
        }));
    }
    let (mut claimed, mut done) = (0, 0);
    for t in tasks {
        let (c, d) = t.await.expect("no panic");
        claimed += c;
        done += d;
    }
    assert_eq!(claimed as usize, JOBS, "each job claimed once");
    assert_eq!(done as usize, JOBS);
    assert_eq!(mailer.calls() as usize, JOBS, "each receipt sent once");
    assert_eq!(
        count(&store, "SELECT count(*) FROM receipts").await,
        JOBS as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM staged_jobs WHERE done_at IS NULL"
        )
        .await,
        0
    );
}
// ANCHOR_END: once

// ANCHOR: skip_locked
/// A claim still open (its transaction holds its rows) does not block
/// another worker: the second claim skips the locked rows and takes others.
#[tokio::test]
async fn a_claim_in_progress_does_not_block_another_worker() {
    let Some((_db, store)) = pg_store_with(4).await else {
        return;
    };
    paid_orders(&store, 4).await;
    let mailer = Arc::new(FakeMailer::default());
    let pause = pause_at(JobPoint::BeforeClaimCommit);
    let first = worker(&store, &mailer, pause.clone());
    let held = tokio::spawn(async move { first.claim(2).await });
    pause.reached.notified().await;
    let second = worker(&store, &mailer, Arc::new(ecommerce::checkout::NoHooks));
    let got = tokio::time::timeout(Duration::from_secs(3), second.claim(2))
        .await
        .expect("the second claim did not wait for the first")
        .expect("a claim");
    pause.go.notify_one();
    let held = held.await.expect("no panic").expect("a claim");
    assert_eq!((held.len(), got.len()), (2, 2));
    assert!(
        got.iter().all(|j| held.iter().all(|h| h.id != j.id)),
        "two workers, four different jobs"
    );
}
// ANCHOR_END: skip_locked

// ANCHOR: fenced
/// A worker stalls past its lease; another claims the job (a new fence).
/// When the first finally completes, its fence is stale: nothing is
/// written, and the job's receipt is the second worker's.
#[tokio::test]
async fn a_worker_whose_job_was_taken_over_commits_nothing() {
    let Some((_db, store)) = pg_store_with(4).await else {
        return;
    };
    paid_orders(&store, 1).await;
    let mailer = Arc::new(FakeMailer::default());
    let pause = pause_at(JobPoint::BeforeComplete);
    let first = worker(&store, &mailer, pause.clone());
    let stalled = tokio::spawn(async move {
        let jobs = first.claim(1).await.expect("a claim");
        first.run(&jobs[0]).await
    });
    pause.reached.notified().await;
    // The first worker's lease runs out (by the database's clock).
    sqlx::query("UPDATE staged_jobs SET locked_until = clock_timestamp()")
        .execute(store.pool())
        .await
        .expect("expire");
    let second = worker(&store, &mailer, Arc::new(ecommerce::checkout::NoHooks));
    let jobs = second.claim(1).await.expect("a claim");
    assert_eq!(jobs.len(), 1, "the expired job is claimed again");
    // The stale holder commits first, and must write nothing.
    pause.go.notify_one();
    let late = stalled.await.expect("no panic");
    assert!(matches!(late, Err(JobError::Fenced(_))), "{late:?}");
    second.run(&jobs[0]).await.expect("the taker completes");
    let fence: i64 = count(&store, "SELECT fence FROM receipts").await;
    assert_eq!(fence, jobs[0].fence, "the receipt is the taker's");
    assert_eq!(count(&store, "SELECT count(*) FROM receipts").await, 1);
    assert_eq!(mailer.sent(), 1, "one e-mail: both sends had one key");
}
// ANCHOR_END: fenced

/// A mailer that fails.
struct Down;

impl ecommerce::jobs::Mailer for Down {
    async fn send_receipt(&self, _: &str, _: uuid::Uuid) -> Result<(), String> {
        Err("smtp: connection refused".into())
    }
}

// ANCHOR: retried
/// A failed run records its error and leaves the job to be claimed again
/// later (not at once); nothing is marked done.
#[tokio::test]
async fn a_failed_job_is_kept_and_claimed_again_later() {
    let Some((_db, store)) = pg_store_with(4).await else {
        return;
    };
    paid_orders(&store, 1).await;
    let down = Worker::new(store.pool().clone(), Arc::new(Down));
    let d = down.drain_once().await.expect("a drain");
    assert_eq!((d.claimed, d.failed, d.done), (1, 1, 0));
    assert_eq!(
        down.drain_once().await.expect("a drain").claimed,
        0,
        "not at once"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM staged_jobs WHERE last_error IS NOT NULL AND done_at IS NULL"
        )
        .await,
        1
    );
    sqlx::query("UPDATE staged_jobs SET locked_until = clock_timestamp()")
        .execute(store.pool())
        .await
        .expect("the retry delay passes");
    let mailer = Arc::new(FakeMailer::default());
    let d = Worker::new(store.pool().clone(), Arc::clone(&mailer))
        .drain_once()
        .await
        .expect("a drain");
    assert_eq!((d.claimed, d.done), (1, 1));
    assert_eq!(count(&store, "SELECT count(*) FROM receipts").await, 1);
}
// ANCHOR_END: retried
