//! What the guard costs: a conditional fill (the script) beside a plain
//! `SET`, and a Redis hit beside the database read it saves, on the real
//! engines, interleaved over rounds (`bookkit::rounds`). One client, one
//! operation in flight: the cost of one call, not the server's capacity.
//!
//! `cargo xtask bench-report blocks/cache-aside` runs it;
//! `CACHE_ASIDE_ROUND_MS` shortens the rounds for a smoke run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use block_cache_aside::book::{CHAPTER, DB_READ, FILL, HIT, SET};
use block_cache_aside::{
    Codec, FillMode, FillOutcome, Ignore, Key, Lookup, RedisCache, RedisConfig, Token,
};
use bookkit::ResultKind;
use bookkit::rounds::{Plan, RoundStats, Workload, interleave_all};
use hdrhistogram::Histogram;

/// Keys cycled through, so each call touches a different key.
const KEYS: usize = 1_000;

struct Text;

impl Codec for Text {
    type Value = String;
    fn encode(&self, v: &String) -> String {
        v.clone()
    }
    fn decode(&self, raw: &str) -> Option<String> {
        Some(raw.to_string())
    }
    fn is_negative(&self, _: &String) -> bool {
        false
    }
}

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let round_ms = std::env::var("CACHE_ASIDE_ROUND_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let plan = Plan {
        rounds: 5,
        round: Duration::from_millis(round_ms),
    };
    let (db, redis) = rt.block_on(async {
        let db = testkit::postgres(None).await.context("PostgreSQL")?;
        let redis = testkit::redis().await.context("Redis")?;
        anyhow::Ok((db, redis))
    })?;
    let pool = rt.block_on(async {
        db.apply_sql(
            "CREATE TABLE items (key text PRIMARY KEY, value text NOT NULL);
             INSERT INTO items SELECT 'k' || g, repeat('x', 64) FROM generate_series(0, 999) g;
             ANALYZE items;",
        )
        .await?;
        anyhow::Ok(db.pool_with(2).await)
    })?;
    let layer = |fill: FillMode| {
        let config = RedisConfig {
            fill,
            timeout: Duration::from_secs(1),
            ..RedisConfig::new(&redis.url, &format!("{}item:", redis.prefix))
        };
        RedisCache::new(config, Arc::new(Text), Arc::new(Ignore))
    };
    let (conditional, unconditional) = rt.block_on(async {
        anyhow::Ok((
            layer(FillMode::Conditional)?,
            layer(FillMode::Unconditional)?,
        ))
    })?;
    let keys: Vec<Key> = (0..KEYS)
        .map(|i| Key::parse(&format!("k{i}")))
        .collect::<Result<_, _>>()?;
    // A ticket per key: fills never move the version, so each stays valid.
    let tickets: Vec<Token> = rt.block_on(async {
        let mut out = Vec::new();
        for k in &keys {
            match conditional.lookup(k).await {
                Some(Lookup::Miss(t)) => out.push(t),
                _ => anyhow::bail!("expected a miss with a ticket for {k}"),
            }
        }
        anyhow::Ok(out)
    })?;
    let value = "x".repeat(64);
    let mut results = Vec::new();

    // Group 1: the plain SET is the ceiling of a fill.
    let workloads = [
        Workload {
            name: SET.into(),
            concurrency: 1,
        },
        Workload {
            name: FILL.into(),
            concurrency: 1,
        },
    ];
    results.extend(interleave_all(
        CHAPTER,
        ResultKind::Load,
        &plan,
        &workloads,
        |i, d| {
            let layer = if i == 0 { &unconditional } else { &conditional };
            rt.block_on(measure(d, |n| {
                let (k, t, value) = (&keys[n % KEYS], &tickets[n % KEYS], &value);
                async move { layer.fill(k, t, value).await == FillOutcome::Stored }
            }))
        },
    )?);

    // Group 2: the database read a hit saves is the reference of a hit.
    let workloads = [
        Workload {
            name: DB_READ.into(),
            concurrency: 1,
        },
        Workload {
            name: HIT.into(),
            concurrency: 1,
        },
    ];
    results.extend(interleave_all(
        CHAPTER,
        ResultKind::Load,
        &plan,
        &workloads,
        |i, d| {
            rt.block_on(measure(d, |n| {
                let k = &keys[n % KEYS];
                let pool = &pool;
                let conditional = &conditional;
                async move {
                    if i == 0 {
                        sqlx::query_scalar::<_, String>("SELECT value FROM items WHERE key = $1")
                            .bind(k.as_str())
                            .fetch_optional(pool)
                            .await
                            .is_ok_and(|v| v.is_some())
                    } else {
                        matches!(conditional.lookup(k).await, Some(Lookup::Hit(_)))
                    }
                }
            }))
        },
    )?);
    for r in &results {
        let path = bookkit::results::write_result(r)?;
        println!(
            "{:<10} {:>10.0} ops/s  p50 {:?} us  ratio {:?}  -> {}",
            r.name,
            r.ops_per_sec.unwrap_or(0.0),
            r.p50_us,
            r.ratio.map(|s| s.median),
            path.display()
        );
    }
    Ok(())
}

/// Runs `op` back to back for `duration`, after a short warm-up.
async fn measure<F, Fut>(duration: Duration, mut op: F) -> Result<RoundStats>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for n in 0..200 {
        op(n).await;
    }
    let mut latency_us = Histogram::<u64>::new(3)?;
    let (mut ops, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        let ok = op(ops as usize).await;
        latency_us.record(t.elapsed().as_micros().max(1) as u64)?;
        ops += 1;
        errors += u64::from(!ok);
    }
    Ok(RoundStats {
        ops,
        errors,
        elapsed: start.elapsed(),
        latency_us,
    })
}
