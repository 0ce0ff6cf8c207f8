//! The staged-jobs worker: runs each job staged by phase 2, once.
//!
//! Phase 2 stages a `send_receipt` job in the transaction that marks the
//! order paid. Workers drain `staged_jobs`:
//!
//! - **claim** a batch with `FOR UPDATE SKIP LOCKED`, so workers never wait
//!   on each other's rows, setting a lease (by the database's clock) and
//!   adding one to the job's **fence**;
//! - **run** the job: the receipt is sent through a [`Mailer`] with the key
//!   `receipt-<order id>`, so a repeated send is the same e-mail (the
//!   provider's trick again: at-least-once delivery, an idempotent receiver);
//! - **complete** it in one transaction that names the fence it claimed
//!   with: mark the job done and record the receipt (`receipts`, one row per
//!   order). A worker that stalled past its lease, and whose job another
//!   worker claimed, finds its fence stale and commits nothing.
//!
//! A failed run records its error and leaves the job to be claimed again
//! after [`RETRY_AFTER`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgPool;
use uuid::Uuid;

use crate::checkout::{BoxFuture, Hooks, NoHooks};

/// How long a claimed job is its worker's before another may take it over.
pub const LEASE: Duration = Duration::from_secs(30);
/// How long a failed job waits before it is claimed again.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Jobs a worker claims at once.
pub const CLAIM_BATCH: i64 = 10;

// ANCHOR: claim_sql
/// Claims up to `$1` jobs that are not done and whose lease (if any) ran
/// out, oldest first, skipping rows another worker's claim has locked. The
/// fence goes up with each claim.
pub const CLAIM_SQL: &str = "\
UPDATE staged_jobs
SET fence = fence + 1,
    locked_until = clock_timestamp() + $2 * interval '1 millisecond',
    attempts = attempts + 1
WHERE id IN (
    SELECT id FROM staged_jobs
    WHERE done_at IS NULL
      AND (locked_until IS NULL OR locked_until <= clock_timestamp())
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED)
RETURNING id, kind, payload, fence";

/// Marks a job done, only for the holder of the current fence.
pub const COMPLETE_SQL: &str = "\
UPDATE staged_jobs SET done_at = clock_timestamp(), locked_until = NULL, last_error = NULL
WHERE id = $1 AND fence = $2 AND done_at IS NULL";

/// Records a failed run and when to try again, only for the holder of the current fence.
pub const FAIL_SQL: &str = "\
UPDATE staged_jobs
SET last_error = $3, locked_until = clock_timestamp() + $4 * interval '1 millisecond'
WHERE id = $1 AND fence = $2 AND done_at IS NULL";
// ANCHOR_END: claim_sql

/// A claimed job.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Its row.
    pub id: i64,
    /// What to do (`send_receipt`).
    pub kind: String,
    /// Its arguments.
    pub payload: serde_json::Value,
    /// The fence this claim holds.
    pub fence: i64,
}

/// Why a job's completion or failure was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Another worker claimed the job after this one's lease ran out (or
    /// finished it): this worker's fence is stale, so nothing was written.
    #[error("job {0} was taken over by another worker")]
    Fenced(i64),
    /// The job's payload is not what its kind needs.
    #[error("job {0} has a bad payload: {1}")]
    BadPayload(i64, String),
    /// The job's kind is unknown to this worker.
    #[error("job {0} has an unknown kind {1:?}")]
    UnknownKind(i64, String),
    /// The mailer failed; the job is claimed again later.
    #[error("sending failed: {0}")]
    Send(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Sends receipts; `key` makes a repeated send the same e-mail.
pub trait Mailer: Send + Sync + 'static {
    /// Sends the receipt of `order_id`.
    fn send_receipt(
        &self,
        key: &str,
        order_id: Uuid,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// A mailer that remembers the keys it sent, and counts every call.
#[derive(Clone, Default)]
pub struct FakeMailer {
    sent: Arc<Mutex<(std::collections::HashSet<String>, u64)>>,
}

impl FakeMailer {
    /// Distinct receipts sent.
    pub fn sent(&self) -> usize {
        self.sent.lock().map(|s| s.0.len()).unwrap_or(0)
    }

    /// Calls, repeats included.
    pub fn calls(&self) -> u64 {
        self.sent.lock().map(|s| s.1).unwrap_or(0)
    }
}

impl Mailer for FakeMailer {
    async fn send_receipt(&self, key: &str, _order_id: Uuid) -> Result<(), String> {
        let mut s = self.sent.lock().map_err(|e| e.to_string())?;
        s.0.insert(key.to_string());
        s.1 += 1;
        Ok(())
    }
}

/// Where a worker may be stopped by a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPoint {
    /// Inside the claim's transaction, before its COMMIT.
    BeforeClaimCommit,
    /// The job ran; its completion is next.
    BeforeComplete,
}

/// Called at each [`JobPoint`]; production passes no hooks.
pub trait JobHooks: Send + Sync {
    /// The worker reached `point` for `job` (`None` inside a claim).
    fn reached(&self, point: JobPoint, job: Option<i64>) -> BoxFuture<'_>;
}

impl JobHooks for NoHooks {
    fn reached(&self, _: JobPoint, _: Option<i64>) -> BoxFuture<'_> {
        <NoHooks as Hooks>::reached(self, crate::checkout::Point::AfterFinishCommit)
    }
}

/// A worker over the pool and a mailer.
pub struct Worker<M> {
    /// The database.
    pub pool: PgPool,
    /// Who sends receipts.
    pub mailer: Arc<M>,
    /// Test hooks.
    pub hooks: Arc<dyn JobHooks>,
    /// This worker's lease on a claimed job.
    pub lease: Duration,
}

/// What one [`Worker::drain_once`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Jobs claimed.
    pub claimed: u32,
    /// Jobs completed by this worker.
    pub done: u32,
    /// Jobs whose run failed (claimed again later).
    pub failed: u32,
    /// Jobs another worker took over first (nothing written).
    pub fenced: u32,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl<M: Mailer> Worker<M> {
    /// A worker with the production lease and no hooks.
    pub fn new(pool: PgPool, mailer: Arc<M>) -> Self {
        Self {
            pool,
            mailer,
            hooks: Arc::new(NoHooks),
            lease: LEASE,
        }
    }

    // ANCHOR: claim
    /// Claims up to `limit` jobs, each with a lease and a new fence.
    pub async fn claim(&self, limit: i64) -> Result<Vec<Job>, JobError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(CLAIM_SQL)
            .bind(limit)
            .bind(millis(self.lease))
            .fetch_all(&mut *tx)
            .await?;
        let jobs = rows
            .iter()
            .map(|r| {
                Ok(Job {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    payload: r.try_get("payload")?,
                    fence: r.try_get("fence")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        self.hooks.reached(JobPoint::BeforeClaimCommit, None).await;
        tx.commit().await?;
        Ok(jobs)
    }
    // ANCHOR_END: claim

    // ANCHOR: run
    /// Runs one claimed job and records its completion, fenced.
    pub async fn run(&self, job: &Job) -> Result<(), JobError> {
        let order_id = match job.kind.as_str() {
            "send_receipt" => job.payload["order_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| JobError::BadPayload(job.id, job.payload.to_string()))?,
            other => return Err(JobError::UnknownKind(job.id, other.to_string())),
        };
        // The same key on every run of this job: a repeated send is one e-mail.
        self.mailer
            .send_receipt(&format!("receipt-{order_id}"), order_id)
            .await
            .map_err(JobError::Send)?;
        self.hooks
            .reached(JobPoint::BeforeComplete, Some(job.id))
            .await;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(COMPLETE_SQL)
            .bind(job.id)
            .bind(job.fence)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            // Rolled back by the drop: a stale holder writes nothing.
            return Err(JobError::Fenced(job.id));
        }
        sqlx::query("INSERT INTO receipts (order_id, job_id, fence) VALUES ($1, $2, $3)")
            .bind(order_id)
            .bind(job.id)
            .bind(job.fence)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
    // ANCHOR_END: run

    /// Records a failed run (fenced), so the job is claimed again after [`RETRY_AFTER`].
    pub async fn fail(&self, job: &Job, why: &str) -> Result<(), JobError> {
        let done = sqlx::query(FAIL_SQL)
            .bind(job.id)
            .bind(job.fence)
            .bind(why)
            .bind(millis(RETRY_AFTER))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(JobError::Fenced(job.id))
        }
    }

    // ANCHOR: drain_once
    /// Claims one batch and runs each job.
    pub async fn drain_once(&self) -> Result<Drained, JobError> {
        let jobs = self.claim(CLAIM_BATCH).await?;
        let mut d = Drained {
            claimed: u32::try_from(jobs.len()).unwrap_or(u32::MAX),
            ..Drained::default()
        };
        for job in &jobs {
            match self.run(job).await {
                Ok(()) => d.done += 1,
                Err(JobError::Fenced(_)) => d.fenced += 1,
                Err(JobError::Database(e)) => return Err(JobError::Database(e)),
                Err(e) => {
                    tracing::warn!(job = job.id, error = %e, "job failed; retried later");
                    match self.fail(job, &e.to_string()).await {
                        Ok(()) => d.failed += 1,
                        Err(JobError::Fenced(_)) => d.fenced += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(d)
    }
    // ANCHOR_END: drain_once
}
