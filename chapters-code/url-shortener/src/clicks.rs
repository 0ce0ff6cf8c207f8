//! Click counting off the redirect path.
//!
//! A redirect must not wait for a database write, so it only drops a click
//! into a bounded channel ([`ClickRecorder::record`], which never blocks).
//! One batcher task per process drains the channel, adds the clicks up per
//! (link, day), and writes the sums with one statement every `flush_every`,
//! or sooner when `max_batch` distinct counters are pending (which bounds
//! the statement's size). However many clicks a hot link gets, it costs one
//! counter update per process per flush.
//!
//! A failed flush keeps the counters and waits before the next attempt,
//! doubling the wait up to [`MAX_BACKOFF`]: a database that refuses writes
//! gets a handful of attempts, not one per incoming click. Meanwhile at
//! most `max_pending` counters are kept; a click that needs one more is
//! counted in `clicks_lost`. The backlog is written in statements of at
//! most `max_batch` counters, like any flush.
//!
//! When the channel is full (the store is slow and the batcher is behind)
//! the click is **dropped and counted** in `Metrics::clicks_dropped`, rather
//! than making the redirect wait: a lost click costs a statistic, a slow
//! redirect costs the user. The capacity (65,536 by default) absorbs more
//! than half a second of the target peak, per process.
//!
//! Shutdown is ordered: the server stops accepting requests and finishes
//! the ones in flight, then [`ClickBatcher::shutdown`] closes the channel,
//! drains what is queued and flushes it, so every click of every redirect
//! served is written (`tests/behaviour.rs`, `clicks_survive_graceful_shutdown`).
//! If the database refuses the final flush [`FINAL_FLUSH_ATTEMPTS`] times,
//! or it outlasts `final_flush_deadline`, the clicks not written are
//! counted in `clicks_lost` and the process exits (`tests/clicks.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::ClickConfig;
use crate::domain::Code;
use crate::metrics::Metrics;
use crate::store::{DailyClicks, LinkStore};

/// Attempts at the final flush during shutdown.
pub const FINAL_FLUSH_ATTEMPTS: u32 = 3;

/// The longest pause between flush attempts while the store keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

struct Click {
    code: Code,
    day: NaiveDate,
}

// ANCHOR: recorder
/// The redirect side of the pipeline: cheap to clone, never blocks.
#[derive(Clone)]
pub struct ClickRecorder {
    tx: mpsc::Sender<Click>,
    metrics: Arc<Metrics>,
}

impl ClickRecorder {
    /// Records one redirect of `code` at `at`. Drops (and counts) the click
    /// when the channel is full or the batcher has stopped.
    pub fn record(&self, code: Code, at: DateTime<Utc>) {
        let click = Click {
            code,
            day: at.date_naive(),
        };
        if self.tx.try_send(click).is_err() {
            Metrics::inc(&self.metrics.clicks_dropped);
        }
    }
}
// ANCHOR_END: recorder

/// The batcher task's handle; [`shutdown`](Self::shutdown) flushes and stops it.
pub struct ClickBatcher {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ClickBatcher {
    /// Stops accepting clicks, writes every queued click, and waits for the task to end.
    pub async fn shutdown(self) {
        // The task may have ended already (a panic); then there is nothing to stop.
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "click batcher task failed");
        }
    }
}

/// Starts the batcher for `store`; returns the recorder for redirects and the batcher's handle.
pub fn spawn<S: LinkStore>(
    store: S,
    config: &ClickConfig,
    store_timeout: Duration,
    metrics: Arc<Metrics>,
) -> (ClickRecorder, ClickBatcher) {
    let (tx, rx) = mpsc::channel(config.capacity.max(1));
    let (stop_tx, stop_rx) = oneshot::channel();
    let batcher = Batcher {
        store,
        pending: HashMap::new(),
        pending_clicks: 0,
        max_batch: config.max_batch.max(1),
        max_pending: config.max_pending.max(config.max_batch).max(1),
        final_flush_deadline: config.final_flush_deadline,
        store_timeout,
        first_backoff: config.flush_every.max(Duration::from_millis(1)),
        backoff: None,
        metrics: metrics.clone(),
    };
    let task = tokio::spawn(batcher.run(rx, stop_rx, config.flush_every));
    (
        ClickRecorder { tx, metrics },
        ClickBatcher {
            stop: stop_tx,
            task,
        },
    )
}

struct Batcher<S> {
    store: S,
    /// Clicks per (link, day) not yet written.
    pending: HashMap<(Code, NaiveDate), u64>,
    /// Sum of `pending`'s values.
    pending_clicks: u64,
    max_batch: usize,
    max_pending: usize,
    final_flush_deadline: Duration,
    store_timeout: Duration,
    /// The pause after a first failure.
    first_backoff: Duration,
    /// After a failure: when the next attempt may run, and the pause that got us there.
    backoff: Option<(Instant, Duration)>,
    metrics: Arc<Metrics>,
}

impl<S: LinkStore> Batcher<S> {
    // ANCHOR: batcher_loop
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Click>,
        mut stop: oneshot::Receiver<()>,
        every: Duration,
    ) {
        let mut tick = tokio::time::interval(every);
        // After a slow flush, wait a full period rather than flushing in a burst.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                click = rx.recv() => match click {
                    Some(click) => {
                        self.add(click);
                        if self.pending.len() >= self.max_batch {
                            self.flush().await;
                        }
                    }
                    // Every recorder is gone: nothing more can arrive.
                    None => break,
                },
                _ = tick.tick() => {
                    self.flush().await;
                }
                // A stop request, or the handle was dropped.
                _ = &mut stop => {
                    // Refuse new clicks, then take everything already queued.
                    rx.close();
                    while let Some(click) = rx.recv().await {
                        self.add(click);
                    }
                    break;
                }
            }
        }
        // Every try, and every statement of a backlog, within one deadline:
        // the orchestrator kills a process that outlives its grace period.
        let deadline = self.final_flush_deadline;
        let flushed = tokio::time::timeout(deadline, async {
            for attempt in 0..FINAL_FLUSH_ATTEMPTS {
                if attempt > 0 {
                    // A short pause: a process on its way out cannot back off for long.
                    tokio::time::sleep(self.first_backoff.min(Duration::from_millis(100))).await;
                }
                self.backoff = None;
                if self.flush().await {
                    return true;
                }
            }
            false
        })
        .await;
        if flushed == Ok(true) {
            return;
        }
        let lost = self.pending_clicks;
        self.metrics
            .clicks_lost
            .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(lost, "clicks could not be written before shutdown");
    }
    // ANCHOR_END: batcher_loop

    /// Adds one click to its counter. A click that would need a new counter
    /// past `max_pending` (the store has refused writes for a while) is
    /// given up and counted as lost: bounded memory beats complete
    /// statistics during a long outage, and the counters already pending
    /// keep counting.
    fn add(&mut self, click: Click) {
        let key = (click.code, click.day);
        if let Some(count) = self.pending.get_mut(&key) {
            *count += 1;
        } else if self.pending.len() < self.max_pending {
            self.pending.insert(key, 1);
        } else {
            Metrics::inc(&self.metrics.clicks_lost);
            return;
        }
        self.pending_clicks += 1;
    }

    // ANCHOR: flush
    /// Writes the pending counters, at most `max_batch` per statement; true
    /// when all are written (or there was nothing to do). On a failure the
    /// unwritten ones stay pending, and no attempt runs until the backoff
    /// has passed: the first pause is `flush_every`, then it doubles, up to
    /// [`MAX_BACKOFF`]. So a backlog after an outage is written in
    /// statements no larger than usual.
    ///
    /// Delivery is at least once: if the store committed but the answer
    /// came after our timeout, the retry adds the same clicks again. Exact
    /// once would need a batch id stored with the counters; for click
    /// statistics a rare double count is the cheaper error.
    async fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        if let Some((not_before, _)) = self.backoff
            && Instant::now() < not_before
        {
            return false;
        }
        while !self.pending.is_empty() {
            let batch: Vec<DailyClicks> = self
                .pending
                .iter()
                .take(self.max_batch)
                .map(|((code, day), &count)| DailyClicks {
                    code: code.clone(),
                    day: *day,
                    count,
                })
                .collect();
            let result =
                match tokio::time::timeout(self.store_timeout, self.store.add_clicks(&batch)).await
                {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {:?}", self.store_timeout)),
                };
            if let Err(error) = result {
                let pause = self
                    .backoff
                    .map_or(self.first_backoff, |(_, last)| (last * 2).min(MAX_BACKOFF));
                self.backoff = Some((Instant::now() + pause, pause));
                tracing::warn!(
                    error,
                    pending = self.pending.len(),
                    retry_in = ?pause,
                    "click flush failed; will retry"
                );
                return false;
            }
            let mut written = 0;
            for c in &batch {
                self.pending.remove(&(c.code.clone(), c.day));
                written += c.count;
            }
            self.pending_clicks -= written;
            self.metrics
                .clicks_flushed
                .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
        }
        self.backoff = None;
        true
    }
    // ANCHOR_END: flush
}
