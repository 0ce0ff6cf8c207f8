//! The sliding window in Redis, under real concurrent clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use block_rate_limiter::{AsyncLimiter, OnError, QuotaError, RedisWindow, Refused};

/// Tasks, each with its own connection (its own service instance).
const CLIENTS: u32 = 16;
/// Requests each task sends, all at once.
const ATTEMPTS: u32 = 40;
/// The shared limit: fewer than CLIENTS × ATTEMPTS.
const LIMIT: u32 = 100;

// ANCHOR: exactly_the_limit
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_on_separate_connections_admit_exactly_the_limit() {
    let Some(redis) = testkit::redis().await else {
        return;
    };
    let admitted = Arc::new(AtomicU32::new(0));
    let start = Arc::new(tokio::sync::Barrier::new(CLIENTS as usize));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let conn = redis
            .client
            .get_multiplexed_async_connection()
            .await
            .expect("a connection of its own");
        // A window of a minute: every attempt falls inside it.
        let window = RedisWindow::new(conn, redis.prefix.clone(), LIMIT, Duration::from_secs(60))
            .expect("valid window")
            .on_error(OnError::Refuse(Duration::from_secs(1)));
        let (admitted, start) = (Arc::clone(&admitted), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            for _ in 0..ATTEMPTS {
                if window.check(&"one-client").await.is_ok() {
                    admitted.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(
        admitted.load(Ordering::SeqCst),
        LIMIT,
        "{CLIENTS} clients × {ATTEMPTS} attempts against a limit of {LIMIT}"
    );
}
// ANCHOR_END: exactly_the_limit

#[tokio::test]
async fn a_refused_request_learns_when_to_retry_and_the_window_slides() {
    let Some(redis) = testkit::redis().await else {
        return;
    };
    let window = Duration::from_millis(300);
    let limiter = RedisWindow::new(redis.conn.clone(), redis.prefix.clone(), 3, window)
        .expect("valid window");
    for _ in 0..3 {
        assert_eq!(limiter.check(&"c").await, Ok(()));
    }
    let Err(Refused { retry_after }) = limiter.check(&"c").await else {
        panic!("the fourth request in the window must be refused");
    };
    assert!(
        retry_after > Duration::ZERO && retry_after <= window,
        "{retry_after:?}"
    );
    assert_eq!(
        limiter.check(&"other").await,
        Ok(()),
        "another client is not affected"
    );
    tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
    assert_eq!(
        limiter.check(&"c").await,
        Ok(()),
        "the oldest admission left the window"
    );
}

#[tokio::test]
async fn a_failing_redis_admits_or_refuses_as_configured() {
    let Some(redis) = testkit::redis().await else {
        return;
    };
    // A string where the script expects a sorted set: every call fails (WRONGTYPE).
    let mut conn = redis.conn.clone();
    let _: () = redis::cmd("SET")
        .arg(redis.key("broken"))
        .arg("x")
        .query_async(&mut conn)
        .await
        .expect("set");
    let open = RedisWindow::new(
        redis.conn.clone(),
        redis.prefix.clone(),
        1,
        Duration::from_secs(1),
    )
    .expect("valid");
    assert!(open.try_check(&"broken").await.is_err());
    assert_eq!(open.check(&"broken").await, Ok(()));
    let closed = open.on_error(OnError::Refuse(Duration::from_secs(2)));
    assert_eq!(
        closed.check(&"broken").await,
        Err(Refused {
            retry_after: Duration::from_secs(2)
        })
    );
}

#[tokio::test]
async fn bad_windows_are_named_errors() {
    let Some(redis) = testkit::redis().await else {
        return;
    };
    let conn = redis.conn.clone();
    let w = |limit, window| RedisWindow::new(conn.clone(), "p:", limit, window).err();
    assert_eq!(w(0, Duration::from_secs(1)), Some(QuotaError::ZeroRate));
    assert_eq!(
        w(1, Duration::from_nanos(10)),
        Some(QuotaError::PeriodTooShort)
    );
}

/// Over a run several windows long, concurrent clients together never get
/// more than the limit per window: at most `limit × (windows + 1)` in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_stay_within_the_limit_window_after_window() {
    let Some(redis) = testkit::redis().await else {
        return;
    };
    let (limit, window, run) = (10u32, Duration::from_millis(200), Duration::from_secs(1));
    let admitted = Arc::new(AtomicU32::new(0));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let conn = redis
            .client
            .get_multiplexed_async_connection()
            .await
            .expect("a connection of its own");
        let limiter =
            RedisWindow::new(conn, redis.prefix.clone(), limit, window).expect("valid window");
        let admitted = Arc::clone(&admitted);
        tasks.push(tokio::spawn(async move {
            while started.elapsed() < run {
                if limiter.check(&"shared").await.is_ok() {
                    admitted.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = started.elapsed();
    let windows = (elapsed.as_secs_f64() / window.as_secs_f64()).ceil() as u32;
    let total = admitted.load(Ordering::SeqCst);
    assert!(
        total <= limit * (windows + 1),
        "{total} admitted in {elapsed:?}"
    );
    assert!(
        total >= limit,
        "the limit is reached, not just respected: {total}"
    );
}
