//! The limiters that need Redis, and the fairness experiment (feature `book`).
//!
//! Writes results of `blocks/rate-limiter` for `cargo xtask bench-report`:
//!
//! - `redis_ping` (ceiling) and `redis_window`: a bounded loop of
//!   `CONCURRENCY` tasks over one connection, interleaved over rounds: a
//!   PING round trip, and one decision of the sliding-window script over
//!   `KEYS` client keys;
//! - `race_naive`, `race_script`: `CLIENTS` connections send `ATTEMPTS`
//!   requests each at one key with limit `LIMIT`, `TRIALS` times; the
//!   requests admitted beyond the limit are counted;
//! - `fairness_<limiter>_<mode>`: the trace of `fairness::trace()` replayed
//!   through each limiter, globally and per client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use block_rate_limiter::fairness::{self, Pace, Shares};
use block_rate_limiter::redis_window::naive_get_then_incr;
use block_rate_limiter::{
    GlobalBucket, GovernorGcra, GovernorKeyed, KeyedBuckets, ManualClock, Quota, RedisWindow,
};
use bookkit::results::write_result;
use bookkit::rounds::{Plan, RoundStats, Workload, interleave_all};
use bookkit::{BenchResult, ResultKind};
use hdrhistogram::Histogram;
use redis::aio::MultiplexedConnection;

const BLOCK: &str = "blocks/rate-limiter";
const PLAN: Plan = Plan {
    rounds: 5,
    round: Duration::from_secs(1),
};
/// Requests in flight at once in the throughput loop.
const CONCURRENCY: u32 = 16;
/// Client keys of the throughput loop.
const KEYS: u64 = 1_000;
/// The race: connections, attempts each, the limit, and repetitions.
const CLIENTS: u32 = 16;
const ATTEMPTS: u32 = 40;
const LIMIT: u32 = 100;
const TRIALS: u32 = 20;

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let redis = rt
        .block_on(testkit::redis())
        .context("the shared limiters need Redis")?;
    let mut results = throughput(&rt, &redis)?;
    results.extend(rt.block_on(race(&redis))?);
    results.extend(rt.block_on(fairness_results(&redis))?);
    for r in &results {
        let path = write_result(r)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// PING against the script, interleaved.
fn throughput(
    rt: &tokio::runtime::Runtime,
    redis: &testkit::TestRedis,
) -> Result<Vec<BenchResult>> {
    let conn = redis.conn.clone();
    let window = RedisWindow::new(
        conn.clone(),
        format!("{}tp:", redis.prefix),
        100,
        Duration::from_secs(1),
    )?;
    let workloads = [
        Workload {
            name: "redis_ping".into(),
            concurrency: CONCURRENCY,
        },
        Workload {
            name: "redis_window".into(),
            concurrency: CONCURRENCY,
        },
    ];
    interleave_all(BLOCK, ResultKind::Load, &PLAN, &workloads, |i, duration| {
        rt.block_on(run_loop(i, duration, conn.clone(), window.clone()))
    })
}

async fn run_loop(
    which: usize,
    duration: Duration,
    conn: MultiplexedConnection,
    window: RedisWindow<MultiplexedConnection>,
) -> Result<RoundStats> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for task in 0..u64::from(CONCURRENCY) {
        let (mut conn, window) = (conn.clone(), window.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let (mut ops, mut errors, mut key) = (0u64, 0u64, task);
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let ok = if which == 0 {
                    redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok()
                } else {
                    key = (key + CONCURRENCY as u64) % KEYS;
                    window.try_check(&key).await.is_ok()
                };
                let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
                ops += 1;
                errors += u64::from(!ok);
            }
            (ops, errors, hist)
        }));
    }
    let mut stats = RoundStats {
        ops: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: Histogram::new(3)?,
    };
    for t in tasks {
        let (ops, errors, hist) = t.await?;
        stats.ops += ops;
        stats.errors += errors;
        stats.latency_us.add(&hist)?;
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Counts what GET-then-INCR and the script admit beyond the limit.
async fn race(redis: &testkit::TestRedis) -> Result<Vec<BenchResult>> {
    let mut conns = Vec::new();
    for _ in 0..CLIENTS {
        conns.push(redis.client.get_multiplexed_async_connection().await?);
    }
    let mut out = Vec::new();
    for naive in [true, false] {
        let (mut over_total, mut over_max, mut trials_over) = (0u64, 0u64, 0u64);
        let started = Instant::now();
        for trial in 0..TRIALS {
            let key = format!("{}race:{naive}:{trial}", redis.prefix);
            let admitted = Arc::new(AtomicU32::new(0));
            let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS as usize));
            let mut tasks = Vec::new();
            for conn in &conns {
                let (mut conn, key) = (conn.clone(), key.clone());
                let (admitted, barrier) = (Arc::clone(&admitted), Arc::clone(&barrier));
                let window = RedisWindow::new(conn.clone(), "", LIMIT, Duration::from_secs(60))?;
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    for _ in 0..ATTEMPTS {
                        let ok = if naive {
                            naive_get_then_incr(&mut conn, &key, LIMIT, Duration::from_secs(60))
                                .await
                                .unwrap_or(false)
                        } else {
                            window.try_check(&key).await.is_ok_and(|d| d.is_ok())
                        };
                        if ok {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }));
            }
            for t in tasks {
                t.await?;
            }
            let over = u64::from(admitted.load(Ordering::SeqCst).saturating_sub(LIMIT));
            over_total += over;
            over_max = over_max.max(over);
            trials_over += u64::from(over > 0);
        }
        let name = if naive { "race_naive" } else { "race_script" };
        let attempts = u64::from(TRIALS * CLIENTS * ATTEMPTS);
        out.push(
            BenchResult::new(BLOCK, name, ResultKind::Load)
                .with_throughput(attempts, 0, started.elapsed())
                .with_concurrency(CLIENTS)
                .with_extra("trials", TRIALS)
                .with_extra("limit", LIMIT)
                .with_extra("attempts_per_trial", CLIENTS * ATTEMPTS)
                .with_extra("over_admitted_total", over_total)
                .with_extra("over_admitted_max", over_max)
                .with_extra("trials_over", trials_over),
        );
    }
    Ok(out)
}

/// Replays the fairness trace through every limiter, globally and per client.
async fn fairness_results(redis: &testkit::TestRedis) -> Result<Vec<BenchResult>> {
    let trace = fairness::trace();
    let global = Quota::per_second(fairness::GLOBAL.0, fairness::GLOBAL.1)?;
    let per_client = Quota::per_second(fairness::PER_CLIENT.0, fairness::PER_CLIENT.1)?;
    let mut out = Vec::new();
    let mut push = |name: &str, kind: ResultKind, shares: Shares| {
        let mut r = BenchResult::new(BLOCK, name, kind)
            .with_throughput(shares.offered.iter().sum(), 0, fairness::TRACE)
            .with_extra("burster_share", shares.burster_share())
            .with_extra("steady_admitted", shares.steady_admitted())
            .with_extra("total_admitted", shares.total_admitted())
            .with_extra("admitted", shares.admitted.clone())
            .with_extra("offered", shares.offered.clone());
        r.ops_per_sec = Some(shares.total_admitted() as f64 / fairness::TRACE.as_secs_f64());
        out.push(r);
    };

    let clock = ManualClock::new();
    let bucket = GlobalBucket::with_clock(global, clock.clone());
    let shares = fairness::replay(&trace, &bucket, |_| (), Pace::Manual(&clock)).await;
    push(
        "fairness_token_bucket_global",
        ResultKind::Simulation,
        shares,
    );
    let clock = ManualClock::new();
    let keyed = KeyedBuckets::with_clock(per_client, 1_000, clock.clone());
    let shares = fairness::replay(&trace, &keyed, |c| c, Pace::Manual(&clock)).await;
    push(
        "fairness_token_bucket_per_client",
        ResultKind::Simulation,
        shares,
    );

    let clock = governor::clock::FakeRelativeClock::default();
    let gcra = GovernorGcra::with_clock(global, clock.clone());
    let shares = fairness::replay(&trace, &gcra, |_| (), Pace::Governor(&clock)).await;
    push("fairness_gcra_global", ResultKind::Simulation, shares);
    let clock = governor::clock::FakeRelativeClock::default();
    let gcra = GovernorKeyed::with_clock(per_client, clock.clone());
    let shares = fairness::replay(&trace, &gcra, |c| c, Pace::Governor(&clock)).await;
    push("fairness_gcra_per_client", ResultKind::Simulation, shares);

    let (limit, window) = fairness::window_for(fairness::GLOBAL);
    let redis_global = RedisWindow::new(
        redis.conn.clone(),
        format!("{}fair-g:", redis.prefix),
        limit,
        window,
    )?;
    let shares = fairness::replay(&trace, &redis_global, |_| "all", Pace::RealTime).await;
    push("fairness_redis_global", ResultKind::Load, shares);
    let (limit, window) = fairness::window_for(fairness::PER_CLIENT);
    let redis_keyed = RedisWindow::new(
        redis.conn.clone(),
        format!("{}fair-c:", redis.prefix),
        limit,
        window,
    )?;
    let shares = fairness::replay(&trace, &redis_keyed, |c| c, Pace::RealTime).await;
    push("fairness_redis_per_client", ResultKind::Load, shares);
    Ok(out)
}
