//! The relay: from the `outbox` table to a broker.
//!
//! A drain claims the head rows of the outbox (the oldest unpublished row
//! of each aggregate) with `FOR UPDATE SKIP LOCKED`, hands them to the
//! [`Publisher`], waits for the broker's acknowledgements, marks the rows
//! published and commits. A relay that dies anywhere in between leaves the
//! rows unpublished, and unlocked once its transaction ends: at its
//! connection's close after a crash, or after [`Relay::hold`] when the relay
//! is paused or cut off from the database (the drain's transaction carries
//! its own timeouts). The next drain publishes them again: at least once,
//! and deduplicated by the message id.
//!
//! [`Relay::run`] drains when woken: by `NOTIFY outbox` (the insert
//! trigger's, sent at commit) with a fallback poll, or by a poll alone
//! ([`Wake`]). A failed drain or a lost `LISTEN` connection is logged and
//! retried after a [`Backoff`]; `run` has no error to return.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool, PgRow};
use tokio::sync::watch;

use crate::message::Message;

/// The channel the insert trigger notifies (`sql/outbox.sql`).
pub const CHANNEL: &str = "outbox";

// ANCHOR: claim_sql
/// The oldest unpublished rows, at most one per aggregate (the head of each
/// aggregate's queue), locked, skipping rows another relay holds. Taking
/// only heads keeps each aggregate's messages in id order with any number
/// of relays: a later row of an aggregate is not eligible while an earlier
/// one is unpublished, even when another relay holds the earlier one.
pub const CLAIM_SQL: &str = "
SELECT o.id, o.message_id, o.aggregate_type, o.aggregate_id, o.aggregate_version,
       o.event_type, o.payload::text AS payload
  FROM outbox AS o
 WHERE o.published_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM outbox AS e
                    WHERE e.aggregate_type = o.aggregate_type
                      AND e.aggregate_id = o.aggregate_id
                      AND e.published_at IS NULL AND e.id < o.id)
 ORDER BY o.id
 LIMIT $1
   FOR UPDATE OF o SKIP LOCKED";
// ANCHOR_END: claim_sql

/// How long a drain may hold its claim without progress, by default: longer
/// than a healthy publish of a batch takes (the JetStream publisher gives
/// up after [`crate::jetstream::PUBLISH_TIMEOUT`]), shorter than the
/// broker's duplicate window ([`crate::jetstream::DUPLICATE_WINDOW`]), so
/// that the batch of a relay that stalled after publishing is re-published
/// by another relay while JetStream still drops it as a duplicate.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(30);

// ANCHOR: begin_sql
/// The drain's `BEGIN`, with the timeouts that end the transaction (and free
/// its row locks) when the relay stops making progress while holding them:
/// paused (SIGSTOP, a debugger, a long GC-like stall), or on a host cut off
/// from the database, where no FIN or RST ever reaches PostgreSQL and the
/// kernel's keepalive would take hours. `SET LOCAL` lasts until the
/// transaction ends, so the settings hold whatever pool the relay is given
/// and do not leak to the pool's other users. Each bounds one way to stall:
/// - `idle_in_transaction_session_timeout`: between statements (the relay
///   waiting for the broker, or stopped); PostgreSQL ends the session.
/// - `statement_timeout`: inside the claim, the mark or the commit.
/// - `tcp_user_timeout`: data the server sent that the relay's host never
///   acknowledges (a partition while a result is in flight).
pub fn begin_sql(hold: Duration) -> String {
    // 0 would turn every timeout off, so the shortest hold is 1 ms.
    let ms = hold.as_millis().clamp(1, i32::MAX as u128);
    format!(
        "BEGIN; \
         SET LOCAL idle_in_transaction_session_timeout = {ms}; \
         SET LOCAL statement_timeout = {ms}; \
         SET LOCAL tcp_user_timeout = {ms}"
    )
}
// ANCHOR_END: begin_sql

/// Marks claimed rows published, with the database's clock.
pub const MARK_SQL: &str = "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1)";

// ANCHOR: publisher
/// A broker the relay publishes to.
pub trait Publisher: Send + Sync {
    /// Publishes `batch` (at most one message per aggregate, each with its
    /// message id) and resolves once the broker has acknowledged every one.
    /// An error means some may have been stored: the relay publishes the
    /// whole batch again later, and the message ids make that harmless.
    fn publish(
        &self,
        batch: &[Message],
    ) -> impl Future<Output = Result<Published, PublishError>> + Send;
}
// ANCHOR_END: publisher

/// What the broker said about a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Messages the broker stored.
    pub stored: usize,
    /// Messages the broker recognised by their id and dropped.
    pub duplicates: usize,
}

/// The broker failed or refused; the batch stays unpublished.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("broker: {0}")]
pub struct PublishError(pub String);

/// Why one drain did not finish. [`Relay::run`] retries all of them.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// PostgreSQL failed (the claim, the mark or the commit).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A crash injected by a test, simulated in-process: the drain stopped here.
    #[error("crashed {0}")]
    Crashed(&'static str),
}

/// Where a test makes the relay die during a drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Never.
    Never,
    /// After claiming the rows, before publishing anything.
    BeforePublish,
    /// After the broker acknowledged every message, before the rows are marked.
    AfterPublish,
}

/// When a relay drains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Drain, then sleep this long when the outbox was empty.
    Poll(Duration),
    /// Drain, then wait for `NOTIFY outbox`, or at most this long (the
    /// fallback poll that covers a lost notification or connection).
    Notify(Duration),
}

// ANCHOR: backoff
/// How long a relay waits after consecutive failed drains: `first`,
/// doubling, never more than `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The pause after the first failure.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Backoff {
    /// The pause after `failures` consecutive failures (1 is the first).
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }
}
// ANCHOR_END: backoff

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(50),
            max: Duration::from_secs(5),
        }
    }
}

/// What one drain (or a whole run) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Messages the broker stored.
    pub published: usize,
    /// Messages the broker recognised as duplicates and dropped.
    pub duplicates: usize,
}

impl Drained {
    fn add(&mut self, other: Drained) {
        self.published += other.published;
        self.duplicates += other.duplicates;
    }

    /// Rows this drain marked.
    pub fn rows(&self) -> usize {
        self.published + self.duplicates
    }
}

/// One relay: a pool, a publisher and how it drains.
pub struct Relay<P> {
    pool: PgPool,
    /// The broker side.
    pub publisher: P,
    /// Rows per drain.
    pub batch: i64,
    /// The pause after failed drains.
    pub backoff: Backoff,
    /// How long a drain may hold its claimed rows without a statement
    /// finishing or arriving ([`begin_sql`]); [`DEFAULT_HOLD`] by default. A
    /// publish that takes longer loses its transaction and is retried.
    pub hold: Duration,
    /// Where to die, for the crash tests.
    pub crash: Crash,
    /// How to die there: `false` returns [`RelayError::Crashed`] (the
    /// transaction is dropped in-process); `true` calls
    /// `std::process::abort()`, a real death with no cleanup at all (the
    /// crash tests run such a relay in a child process).
    pub abort_on_crash: bool,
    failures: AtomicU64,
}

impl<P: Publisher> Relay<P> {
    /// A relay with batches of 100, the default backoff and hold, and no injected crash.
    pub fn new(pool: PgPool, publisher: P) -> Relay<P> {
        Relay {
            pool,
            publisher,
            batch: 100,
            backoff: Backoff::default(),
            hold: DEFAULT_HOLD,
            crash: Crash::Never,
            abort_on_crash: false,
            failures: AtomicU64::new(0),
        }
    }

    /// Drains that failed (and were retried) since the relay was made.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The failpoint: dies here if this is where the test asked for a crash.
    fn crash_point(&self, here: Crash, what: &'static str) -> Result<(), RelayError> {
        if self.crash != here {
            return Ok(());
        }
        if self.abort_on_crash {
            // No destructor runs and no ROLLBACK is sent: PostgreSQL learns of
            // the death only when the socket closes, as after a SIGKILL.
            std::process::abort();
        }
        Err(RelayError::Crashed(what))
    }

    // ANCHOR: drain
    /// Claims the head rows, publishes them, marks them after the broker's
    /// acknowledgement and commits.
    pub async fn drain_once(&self) -> Result<Drained, RelayError> {
        let begin = sqlx::AssertSqlSafe(begin_sql(self.hold));
        let mut tx = self.pool.begin_with(begin).await?;
        let rows = sqlx::query(CLAIM_SQL)
            .bind(self.batch)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(Drained::default());
        }
        let batch = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        self.crash_point(Crash::BeforePublish, "before publishing")?;
        let acked = self.publisher.publish(&batch).await?;
        // Only now, with every message stored by the broker, may the rows
        // be marked; a death from here to the commit re-publishes them.
        self.crash_point(Crash::AfterPublish, "after publishing, before marking")?;
        let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
        sqlx::query(MARK_SQL).bind(&ids).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Drained {
            published: acked.stored,
            duplicates: acked.duplicates,
        })
    }
    // ANCHOR_END: drain

    // ANCHOR: run
    /// Drains until `stop` turns true (or its sender is gone); returns the
    /// totals. It has no error to return: a failed drain is retried after
    /// the backoff, and a lost `LISTEN` connection is made again, with the
    /// fallback poll covering whatever was notified in between.
    pub async fn run(
        &self,
        wake: Wake,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Drained, Infallible> {
        let mut listener: Option<PgListener> = None;
        let mut total = Drained::default();
        let mut failures = 0u32;
        while !*stop.borrow() {
            if let Wake::Notify(_) = wake
                && listener.is_none()
            {
                // LISTEN before draining: whatever commits after this point
                // notifies us, and the drain below takes whatever came before.
                listener = self.listen().await;
            }
            match self.drain_once().await {
                Ok(d) => {
                    failures = 0;
                    total.add(d);
                    if d.rows() > 0 {
                        continue; // there may be more
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    let pause = self.backoff.after(failures);
                    tracing::warn!(error = %e, failures, ?pause, "outbox relay: drain failed, retrying");
                    if pause_or_stop(pause, &mut stop).await {
                        break;
                    }
                    continue;
                }
            }
            let stopped = match (&mut listener, wake) {
                (Some(l), Wake::Notify(fallback)) => tokio::select! {
                    woke = tokio::time::timeout(fallback, l.try_recv()) => {
                        match woke {
                            // A notification; the ones queued behind it say
                            // nothing the drain will not see.
                            Ok(Ok(Some(_))) => while l.next_buffered().is_some() {},
                            // The connection was lost (sqlx reconnects on the
                            // next call); what was notified meanwhile is lost,
                            // so drain now.
                            Ok(Ok(None)) => {}
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "outbox relay: LISTEN connection failed");
                                listener = None;
                            }
                            Err(_) => {} // the fallback poll
                        }
                        false
                    },
                    changed = stop.changed() => changed.is_err(),
                },
                (_, Wake::Poll(every) | Wake::Notify(every)) => {
                    pause_or_stop(every, &mut stop).await
                }
            };
            if stopped {
                break;
            }
        }
        Ok(total)
    }
    // ANCHOR_END: run

    /// A `LISTEN outbox` connection, or `None` (logged) when it cannot be
    /// made now: the relay then polls at the fallback interval and tries again.
    async fn listen(&self) -> Option<PgListener> {
        let attempt = async {
            let mut l = PgListener::connect_with(&self.pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        match attempt.await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay: cannot LISTEN, polling meanwhile");
                None
            }
        }
    }
}

/// Sleeps `pause` unless `stop` changes first; true if the relay must stop.
async fn pause_or_stop(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
    }
}

fn decode(row: &PgRow) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: row.try_get("id")?,
        message_id: row.try_get("message_id")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        aggregate_version: row.try_get("aggregate_version")?,
        event_type: row.try_get("event_type")?,
        payload: row.try_get("payload")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The pause never shrinks as failures add up and never passes the cap.
        #[test]
        fn backoff_grows_and_is_capped(first_ms in 1u64..10_000, max_ms in 1u64..100_000, n in 1u32..200) {
            let b = Backoff { first: Duration::from_millis(first_ms), max: Duration::from_millis(max_ms) };
            prop_assert!(b.after(n) <= b.max);
            prop_assert!(b.after(n) <= b.after(n + 1));
            prop_assert_eq!(b.after(1), b.first.min(b.max));
        }
    }
}
