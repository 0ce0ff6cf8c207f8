//! The relay's measurement (`cargo xtask bench-report blocks/outbox`).
//!
//! 1. Throughput: a backlog drained by one relay (claim, publish to
//!    JetStream, mark, commit), against the ceiling of the same messages
//!    published straight to JetStream in the same batches with no database,
//!    interleaved over rounds (`bookkit::rounds`).
//! 2. Lag: messages offered at a fixed rate (open loop, one transaction
//!    each) while one relay runs, polling or woken by LISTEN/NOTIFY; lag is
//!    `published_at - created_at` of each row, both the database's clock.
//!
//! `OUTBOX_BENCH=quick`: one round and one second of lag per relay, a check
//! that the pipeline works, not a measurement.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use block_outbox::book::{
    DRAIN_AGGREGATES, DRAIN_BATCH, DRAIN_VERSIONS, LAG_RATE, LAG_SECS, LAG_WAKES, SLUG,
};
use block_outbox::{JetStream, Message, NewMessage, Publisher, Relay, Wake, enqueue};
use bookkit::results::write_result;
use bookkit::rounds::{Plan, RoundStats, Workload, interleave_all};
use bookkit::{BenchResult, ResultKind};
use hdrhistogram::Histogram;
use sqlx::PgPool;
use uuid::Uuid;

struct Env {
    _db: testkit::TestDb,
    pool: PgPool,
    broker: JetStream,
}

async fn setup() -> Result<Option<Env>> {
    let schema = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/outbox.sql");
    let Some(db) = testkit::postgres(Some(&schema)).await else {
        return Ok(None);
    };
    let Some(nats) = testkit::nats().await else {
        return Ok(None);
    };
    let tag = Uuid::new_v4().simple().to_string();
    let broker = JetStream::connect(&nats, &format!("OUTBOX_BENCH_{tag}"), &format!("ob{tag}"))
        .await
        .context("JetStream")?;
    let pool = db.pool_with(8).await;
    Ok(Some(Env {
        _db: db,
        pool,
        broker,
    }))
}

/// The backlog's rows, in one statement: aggregate after aggregate.
const BACKLOG_SQL: &str = "
INSERT INTO outbox (message_id, aggregate_type, aggregate_id, aggregate_version, event_type, payload)
SELECT gen_random_uuid(), 'bench', 'a' || a, v, 'changed',
       jsonb_build_object('aggregate', a, 'version', v, 'note', repeat('x', 100))
  FROM generate_series(1, $1::int) AS a, generate_series(1, $2::bigint) AS v
 ORDER BY a, v";

/// The messages of one backlog, as the relay would read them, with fresh ids.
fn same_messages() -> Vec<Message> {
    let mut out = Vec::new();
    for a in 1..=DRAIN_AGGREGATES {
        for v in 1..=DRAIN_VERSIONS {
            let payload =
                serde_json::json!({"aggregate": a, "version": v, "note": "x".repeat(100)});
            out.push(Message {
                id: 0,
                message_id: Uuid::new_v4(),
                aggregate_type: "bench".into(),
                aggregate_id: format!("a{a}"),
                aggregate_version: Some(v),
                event_type: "changed".into(),
                payload: payload.to_string(),
            });
        }
    }
    out
}

fn stats(ops: u64, elapsed: Duration, per_batch: Histogram<u64>) -> RoundStats {
    RoundStats {
        ops,
        errors: 0,
        elapsed,
        latency_us: per_batch,
    }
}

/// The ceiling: the same messages, the same batch size, straight to JetStream.
async fn ceiling(env: &Env) -> Result<RoundStats> {
    let messages = same_messages();
    let mut hist = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    for batch in messages.chunks(usize::try_from(DRAIN_BATCH)?) {
        let t = Instant::now();
        env.broker.publish(batch).await?;
        hist.record(u64::try_from(t.elapsed().as_micros())?.max(1))?;
    }
    Ok(stats(messages.len() as u64, start.elapsed(), hist))
}

/// The path: a backlog in the outbox, drained by one relay.
async fn drain(env: &Env) -> Result<RoundStats> {
    sqlx::query("DELETE FROM outbox").execute(&env.pool).await?;
    sqlx::query(BACKLOG_SQL)
        .bind(i32::try_from(DRAIN_AGGREGATES)?)
        .bind(DRAIN_VERSIONS)
        .execute(&env.pool)
        .await?;
    sqlx::query("VACUUM ANALYZE outbox")
        .execute(&env.pool)
        .await?;
    let mut relay = Relay::new(env.pool.clone(), env.broker.clone());
    relay.batch = DRAIN_BATCH;
    let mut hist = Histogram::<u64>::new(3)?;
    let mut ops = 0u64;
    let start = Instant::now();
    loop {
        let t = Instant::now();
        let d = relay.drain_once().await?;
        if d.rows() == 0 {
            break;
        }
        hist.record(u64::try_from(t.elapsed().as_micros())?.max(1))?;
        ops += d.rows() as u64;
    }
    Ok(stats(ops, start.elapsed(), hist))
}

/// Offers `LAG_RATE` messages/s for `secs` while a relay runs with `wake`.
async fn lag(env: &Env, name: &str, wake: Wake, secs: u64) -> Result<BenchResult> {
    sqlx::query("DELETE FROM outbox").execute(&env.pool).await?;
    let relay = Arc::new(Relay::new(env.pool.clone(), env.broker.clone()));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let running = {
        let relay = Arc::clone(&relay);
        tokio::spawn(async move { relay.run(wake, stop_rx).await })
    };
    // Let a LISTEN session start before the first message.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let offered = u32::try_from(secs)? * LAG_RATE;
    let period = Duration::from_secs(1) / LAG_RATE;
    let start = tokio::time::Instant::now();
    let mut producers = Vec::new();
    for i in 0..offered {
        tokio::time::sleep_until(start + period * i).await;
        let pool = env.pool.clone();
        producers.push(tokio::spawn(async move {
            let payload = serde_json::json!({ "n": i });
            let id = format!("a{}", i % 50);
            let mut tx = pool.begin().await?;
            enqueue(&mut tx, &NewMessage::new("bench", &id, "changed", &payload)).await?;
            tx.commit().await?;
            anyhow::Ok(())
        }));
    }
    let mut errors = 0u64;
    for p in producers {
        if p.await?.is_err() {
            errors += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&env.pool)
                .await?;
        if left == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    let _ = running.await?;
    let (messages, p50, p99): (i64, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(*),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - created_at)),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - created_at))
           FROM outbox WHERE published_at IS NOT NULL",
    )
    .fetch_one(&env.pool)
    .await?;
    let mut r = BenchResult::new(SLUG, name, ResultKind::Load)
        .with_throughput(u64::try_from(messages)?, errors, Duration::from_secs(secs))
        .with_concurrency(1)
        .with_extra("offered", offered);
    r.p50_us = p50.map(|s| s * 1e6);
    r.p99_us = p99.map(|s| s * 1e6);
    Ok(r)
}

fn main() -> Result<()> {
    let quick = std::env::var("OUTBOX_BENCH").is_ok_and(|v| v == "quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let Some(env) = rt.block_on(setup())? else {
        return Ok(());
    };
    let plan = Plan {
        rounds: if quick { 1 } else { 5 },
        round: Duration::from_secs(1),
    };
    let workloads = [
        Workload {
            name: "jetstream-publish".into(),
            concurrency: 1,
        },
        Workload {
            name: "relay-drain".into(),
            concurrency: 1,
        },
    ];
    let results = interleave_all(SLUG, ResultKind::Load, &plan, &workloads, |i, _| {
        rt.block_on(async {
            if i == 0 {
                ceiling(&env).await
            } else {
                drain(&env).await
            }
        })
    })?;
    for r in &results {
        println!(
            "{:<18} {:>10.0} messages/s ratio {:?}",
            r.name,
            r.ops_per_sec.unwrap_or(0.0),
            r.ratio.map(|s| s.median)
        );
        write_result(r)?;
    }
    let secs = if quick { 1 } else { LAG_SECS };
    for (name, wake) in LAG_WAKES {
        let r = rt.block_on(lag(&env, name, wake, secs))?;
        println!(
            "{name:<18} {} messages, lag p50 {:?} µs p99 {:?} µs",
            r.ops, r.p50_us, r.p99_us
        );
        write_result(&r)?;
    }
    let _ = rt.block_on(env.broker.delete());
    Ok(())
}
