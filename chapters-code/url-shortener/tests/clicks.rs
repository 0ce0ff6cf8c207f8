//! The click pipeline when the database refuses its writes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hyper::StatusCode;
use serde_json::json;
use url_shortener::clicks;
use url_shortener::config::{ClickConfig, Config};
use url_shortener::domain::{Code, Link, NewLink, TokenHash};
use url_shortener::metrics::Metrics;
use url_shortener::store::{
    DailyClicks, DayCount, DeleteOutcome, LinkStore, MemoryStore, StoreError,
};

/// A store whose click writes always fail, counting the attempts.
#[derive(Clone, Default)]
struct RefusesClicks {
    inner: MemoryStore,
    attempts: Arc<AtomicU64>,
}

impl LinkStore for RefusesClicks {
    async fn insert(&self, link: NewLink) -> Result<Link, StoreError> {
        self.inner.insert(link).await
    }
    async fn get(&self, code: &Code) -> Result<Option<Link>, StoreError> {
        self.inner.get(code).await
    }
    async fn delete(
        &self,
        code: &Code,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.inner.delete(code, token, at).await
    }
    async fn add_clicks(&self, _: &[DailyClicks]) -> Result<(), StoreError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::Unavailable("the database is down".into()))
    }
    async fn daily_clicks(&self, code: &Code) -> Result<Vec<DayCount>, StoreError> {
        self.inner.daily_clicks(code).await
    }
}

// ANCHOR: backoff_test
/// While the database refuses click writes, the batcher waits longer and
/// longer between attempts. Before the backoff, every click that arrived
/// with a full batch pending triggered another attempt: thousands a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_flush_backs_off_instead_of_retrying_per_click() {
    let store = RefusesClicks::default();
    let config = ClickConfig {
        capacity: 100_000,
        flush_every: Duration::from_millis(50),
        max_batch: 10,
        ..ClickConfig::default()
    };
    let metrics = Arc::new(Metrics::default());
    let (recorder, batcher) = clicks::spawn(
        store.clone(),
        &config,
        Duration::from_millis(200),
        metrics.clone(),
    );
    // One second of clicks on 500 links, more than a batch's worth.
    let codes: Vec<Code> = (0..500)
        .map(|i| Code::parse(&format!("link{i}")).expect("code"))
        .collect();
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for code in &codes {
            recorder.record(code.clone(), Utc::now());
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let attempts = store.attempts.load(Ordering::SeqCst);
    // Pauses of 50, 100, 200, 400 ms fill the second: a handful of attempts.
    assert!(
        attempts <= 8,
        "{attempts} flush attempts in one second for {sent} clicks"
    );
    assert!(attempts >= 2, "it must keep retrying, got {attempts}");
    drop(recorder);
    batcher.shutdown().await;
}
// ANCHOR_END: backoff_test

// ANCHOR: shutdown_db_down_test
/// A graceful shutdown while the database refuses click writes: the final
/// flush is tried a few times, then the clicks are given up, counted as
/// lost, and the process exits instead of waiting for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_with_the_database_down_loses_the_clicks_and_counts_them() {
    let Some(b) = common::memory().await else {
        return;
    };
    let store = RefusesClicks::default();
    let config = Config {
        clicks: ClickConfig {
            flush_every: Duration::from_secs(3600),
            max_batch: 1_000_000,
            ..ClickConfig::default()
        },
        store_timeout: Duration::from_millis(200),
        ..b.config()
    };
    let server = b.serve(store.clone(), config).await;
    let code = server
        .client
        .create_code(json!({"url": "https://example.com/counted"}))
        .await;
    for _ in 0..20 {
        assert_eq!(
            server.client.get(&format!("/{code}")).await.status,
            StatusCode::FOUND
        );
    }
    let metrics = server.metrics.clone();
    let started = Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    let m = metrics.snapshot();
    assert_eq!((m.clicks_flushed, m.clicks_lost), (0, 20), "{m:?}");
    assert!(store.attempts.load(Ordering::SeqCst) >= 2);
}
// ANCHOR_END: shutdown_db_down_test

/// A store whose first `failures` click writes fail; it records the size
/// of every write and the clicks written.
#[derive(Clone, Default)]
struct RecoversAfter {
    inner: MemoryStore,
    failures: u64,
    attempts: Arc<AtomicU64>,
    largest: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl LinkStore for RecoversAfter {
    async fn insert(&self, link: NewLink) -> Result<Link, StoreError> {
        self.inner.insert(link).await
    }
    async fn get(&self, code: &Code) -> Result<Option<Link>, StoreError> {
        self.inner.get(code).await
    }
    async fn delete(
        &self,
        code: &Code,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.inner.delete(code, token, at).await
    }
    async fn add_clicks(&self, batch: &[DailyClicks]) -> Result<(), StoreError> {
        if self.attempts.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(StoreError::Unavailable("the database is down".into()));
        }
        self.largest.fetch_max(batch.len() as u64, Ordering::SeqCst);
        let clicks: u64 = batch.iter().map(|c| c.count).sum();
        self.written.fetch_add(clicks, Ordering::SeqCst);
        Ok(())
    }
    async fn daily_clicks(&self, code: &Code) -> Result<Vec<DayCount>, StoreError> {
        self.inner.daily_clicks(code).await
    }
}

// ANCHOR: backlog_test
/// After an outage the backlog is written in statements of at most
/// `max_batch` counters, as after any other pause, and every click arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_the_backlog_is_written_in_batches_of_at_most_max_batch() {
    let store = RecoversAfter {
        failures: 2,
        ..RecoversAfter::default()
    };
    let config = ClickConfig {
        flush_every: Duration::from_millis(50),
        max_batch: 10,
        ..ClickConfig::default()
    };
    let metrics = Arc::new(Metrics::default());
    let (recorder, batcher) = clicks::spawn(
        store.clone(),
        &config,
        Duration::from_millis(200),
        metrics.clone(),
    );
    let codes: Vec<Code> = (0..500)
        .map(|i| Code::parse(&format!("link{i}")).expect("code"))
        .collect();
    let mut sent = 0u64;
    for _ in 0..3 {
        for code in &codes {
            recorder.record(code.clone(), Utc::now());
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_written = common::eventually(Duration::from_secs(10), || {
        let written = store.written.clone();
        async move { written.load(Ordering::SeqCst) == sent }
    })
    .await;
    assert!(
        all_written,
        "{} of {sent} written",
        store.written.load(Ordering::SeqCst)
    );
    let largest = store.largest.load(Ordering::SeqCst);
    assert!(
        largest <= config.max_batch as u64,
        "a write of {largest} counters"
    );
    drop(recorder);
    batcher.shutdown().await;
}
// ANCHOR_END: backlog_test

/// While the store refuses writes, at most `max_pending` counters are kept,
/// checked on every click (not only after a failed attempt): clicks that
/// need another counter are counted as lost, the others keep counting, and
/// all of those are written once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_an_outage_pending_counters_are_capped_on_every_click() {
    let store = RecoversAfter {
        failures: 1,
        ..RecoversAfter::default()
    };
    let config = ClickConfig {
        // One failed attempt, then a backoff long enough for every click to arrive.
        flush_every: Duration::from_millis(300),
        max_batch: 10,
        max_pending: 50,
        ..ClickConfig::default()
    };
    let metrics = Arc::new(Metrics::default());
    let (recorder, batcher) = clicks::spawn(
        store.clone(),
        &config,
        Duration::from_millis(200),
        metrics.clone(),
    );
    let codes: Vec<Code> = (0..200)
        .map(|i| Code::parse(&format!("link{i}")).expect("code"))
        .collect();
    let now = Utc::now();
    for code in &codes {
        recorder.record(code.clone(), now);
    }
    let settled = common::eventually(Duration::from_secs(10), || {
        let (written, m) = (store.written.clone(), metrics.clone());
        async move {
            let s = m.snapshot();
            written.load(Ordering::SeqCst) + s.clicks_lost == 200
        }
    })
    .await;
    let m = metrics.snapshot();
    assert!(settled, "{m:?}");
    assert!(m.clicks_lost >= 150 - 10, "{m:?}");
    assert!(store.written.load(Ordering::SeqCst) <= 50 + 10);
    drop(recorder);
    batcher.shutdown().await;
}

/// A store whose click writes each take `delay` and succeed.
#[derive(Clone, Default)]
struct SlowClicks {
    inner: MemoryStore,
    delay: Duration,
    written: Arc<AtomicU64>,
}

impl LinkStore for SlowClicks {
    async fn insert(&self, link: NewLink) -> Result<Link, StoreError> {
        self.inner.insert(link).await
    }
    async fn get(&self, code: &Code) -> Result<Option<Link>, StoreError> {
        self.inner.get(code).await
    }
    async fn delete(
        &self,
        code: &Code,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.inner.delete(code, token, at).await
    }
    async fn add_clicks(&self, batch: &[DailyClicks]) -> Result<(), StoreError> {
        tokio::time::sleep(self.delay).await;
        let clicks: u64 = batch.iter().map(|c| c.count).sum();
        self.written.fetch_add(clicks, Ordering::SeqCst);
        Ok(())
    }
    async fn daily_clicks(&self, code: &Code) -> Result<Vec<DayCount>, StoreError> {
        self.inner.daily_clicks(code).await
    }
}

// ANCHOR: final_flush_deadline_test
/// The final flush of a large backlog on a slow database stops at its
/// overall deadline, so the process exits within the orchestrator's grace
/// period, and what it did not write is counted as lost, not forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_flush_stops_at_its_deadline_and_counts_the_rest_as_lost() {
    let store = SlowClicks {
        delay: Duration::from_millis(100),
        ..SlowClicks::default()
    };
    let config = ClickConfig {
        flush_every: Duration::from_secs(3600),
        max_batch: 10,
        final_flush_deadline: Duration::from_millis(500),
        ..ClickConfig::default()
    };
    let metrics = Arc::new(Metrics::default());
    let (recorder, batcher) = clicks::spawn(
        store.clone(),
        &config,
        Duration::from_secs(1),
        metrics.clone(),
    );
    // About 100 batches of 10 counters, each write 100 ms: 10 s without a deadline.
    let sent = 1_000u64;
    for i in 0..sent {
        recorder.record(Code::parse(&format!("link{i}")).expect("code"), Utc::now());
    }
    drop(recorder);
    let started = Instant::now();
    batcher.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    let written = store.written.load(Ordering::SeqCst);
    let lost = metrics.clicks_lost.load(Ordering::SeqCst);
    assert!(written < sent, "{written} written");
    assert_eq!(written + lost, sent, "{written} written, {lost} lost");
}
// ANCHOR_END: final_flush_deadline_test
