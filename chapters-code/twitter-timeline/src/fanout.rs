//! The fan-out worker: claims jobs from the store's queue and delivers them.
//!
//! A job is delivered in batches of its audience. Each batch is one
//! transaction on the store: claim the job row (`FOR UPDATE SKIP LOCKED`,
//! so workers never share a job), read the next batch of followers,
//! deliver to Redis in one pipelined round trip, advance the job and
//! commit. A worker that dies anywhere in between holds no lock any more
//! and has advanced nothing; the next worker delivers the same batch
//! again, and the idempotent insert makes the second delivery a no-op.
//!
//! A delivery that fails because Redis is down or busy leaves the job as
//! it was: it waits, with every job behind it, until Redis is back. Any
//! other failure (Redis refusing a follower's key, say) would repeat on
//! every attempt, so it is counted on the job, which then waits out a
//! backoff while the jobs behind it go first; at the [`RetryPolicy`]'s
//! limit the job moves to the dead letters (`fanout_dead`) with its error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::domain::{EPOCH_MS, unix_ms_now};
use crate::store::{Failure, RetryPolicy, SocialStore};
use crate::timeline::{HomeTimeline, TimelineError};

/// Recipients per batch: one Redis pipeline, one store transaction.
pub const DEFAULT_BATCH: usize = 500;

/// The largest delivery latency recorded (an hour); slower ones count as an hour.
const MAX_LATENCY_MS: u64 = 3_600_000;

/// What one worker step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Recipients in the batch.
    pub audience: usize,
    /// Timelines that gained the post (absent timelines are skipped).
    pub delivered: usize,
    /// The job is complete.
    pub last: bool,
    /// The delivery failed and was counted on the job.
    pub failed: Option<Failure>,
}

/// A fan-out worker for one strategy.
#[derive(Clone)]
pub struct FanOutWorker<T> {
    timeline: T,
    batch: usize,
    retry: RetryPolicy,
    /// A pause after each delivery, before the commit: only tests set it,
    /// to widen the window in which a worker can be killed mid-job.
    pause: Duration,
    /// Milliseconds from a post's creation (its id's time) to the commit of
    /// the batch that delivered it, one sample per recipient.
    latency: Arc<Mutex<Histogram<u64>>>,
}

impl<T: HomeTimeline> FanOutWorker<T> {
    /// A worker delivering `batch` recipients at a time.
    pub fn new(timeline: T, batch: usize) -> Self {
        Self {
            timeline,
            batch: batch.max(1),
            retry: RetryPolicy::default(),
            pause: Duration::ZERO,
            latency: Arc::new(Mutex::new(
                Histogram::new_with_bounds(1, MAX_LATENCY_MS, 3).expect("constant, valid bounds"),
            )),
        }
    }

    /// Retries failing jobs under `retry` instead of the default policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Pauses `pause` between delivering a batch and committing it (tests only).
    pub fn with_pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// The delivery-latency histogram (milliseconds per recipient).
    pub fn latency(&self) -> Histogram<u64> {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    // ANCHOR: step
    /// Delivers one batch of the oldest unclaimed job; `None` when the queue is empty.
    pub async fn step(&self) -> Result<Option<Step>, TimelineError> {
        let store = self.timeline.store();
        let Some((claim, batch)) = store.claim_fan_out(self.batch).await? else {
            return Ok(None);
        };
        let delivered = match self.timeline.deliver(batch.post, &batch.audience).await {
            Ok(n) => n,
            // Redis down: `claim` is dropped, the transaction rolls back and
            // the batch will be delivered again, by this worker or another.
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                let failed = store
                    .fail_batch(claim, &batch, &e.to_string(), self.retry)
                    .await?;
                tracing::warn!(error = %e, post = %batch.post, attempts = failed.attempts,
                    dead = failed.dead, "fan-out batch failed");
                return Ok(Some(Step {
                    audience: batch.audience.len(),
                    delivered: 0,
                    last: false,
                    failed: Some(failed),
                }));
            }
        };
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        store.finish_batch(claim, &batch).await?;
        let age = unix_ms_now().saturating_sub(EPOCH_MS + batch.post.ms_since_epoch());
        if let Ok(mut h) = self.latency.lock() {
            let _ = h.record_n(age.clamp(1, MAX_LATENCY_MS), batch.audience.len() as u64);
        }
        Ok(Some(Step {
            audience: batch.audience.len(),
            delivered,
            last: batch.last,
            failed: None,
        }))
    }
    // ANCHOR_END: step

    /// Runs steps until no job is ready (failed jobs may be waiting out a
    /// backoff); returns how many batches it delivered.
    pub async fn drain(&self) -> Result<u64, TimelineError> {
        let mut batches = 0;
        while let Some(step) = self.step().await? {
            batches += u64::from(step.failed.is_none());
        }
        Ok(batches)
    }

    /// Runs until `stop` resolves: steps while there is work, polls every
    /// `idle` when there is none, and backs off after an error.
    pub async fn run(self, idle: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let wait = match self.step().await {
                Ok(Some(_)) => Duration::ZERO,
                Ok(None) => idle,
                Err(e) => {
                    tracing::warn!(error = %e, "fan-out step failed; retrying");
                    idle.max(Duration::from_millis(100))
                }
            };
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
