//! The inventory chapter's measurements (`cargo xtask bench-report inventory`).
//!
//! Not criterion: bounded closed-loop runs on the local PostgreSQL, Redis
//! and NATS, whose numbers are throughput and latency percentiles at a
//! fixed concurrency.
//!
//! 1. **The ladder.** On one database with `sql/schema.sql` and
//!    `sql/ladder.sql` and one pool of 64 connections, at 1, 8, 32 and 64
//!    clients: every rung, the chapter's reserve spread over many SKUs, and
//!    the ceiling (an unguarded single-row UPDATE through the same pool),
//!    interleaved over rounds (`bookkit::rounds`). Results
//!    `ladder-<rung>-c<n>`, each with its ratio to the ceiling's rounds.
//! 2. **Sell-outs.** For each rung and client count: 500 units, every
//!    client buying until told "sold out"; oversell and undersell.
//!    Results `sellout-<rung>-c<n>`.
//! 3. **Event lag.** Reserves through the store, the outbox relay to
//!    JetStream and a consumer feeding the read model. Result `event-lag`.
//!
//! Without a service it prints a `SKIPPED:` line and exits 0 (it fails
//! under `SDB_REQUIRE_SERVICES=1`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bookkit::results::write_result;
use bookkit::rounds::{Plan, RoundStats, Workload, interleave};
use bookkit::{BenchResult, ResultKind};
use inventory::events::{Relay, consumer, ensure_stream, lag_run};
use inventory::ladder::load::{LoadSpec, Throughput, sell_out, throughput};
use inventory::ladder::{Rung, SPREAD_POSITIONS, StoreRung, all_rungs};
use inventory::redis_front::RedisFront;
use inventory::report::{
    CHAPTER, CLIENTS, LAG_RESULT, SELLOUT_UNITS, ladder_result, sellout_result,
};
use inventory::store::{InventoryStore, PgStore};

const WARMUP: Duration = Duration::from_millis(200);
/// Rounds per client count; each measures the ceiling and every rung back to back.
const PLAN: Plan = Plan {
    rounds: 3,
    round: Duration::from_secs(1),
};
/// Units at the start of every throughput run: more than any rung sells in a round.
const THROUGHPUT_UNITS: i64 = 100_000;
/// The event-lag run: reserves, one every `LAG_EVERY`; the relay polls every `LAG_POLL`.
const LAG_OPS: u32 = 2_000;
const LAG_EVERY: Duration = Duration::from_millis(2);
const LAG_POLL: Duration = Duration::from_millis(10);

fn main() -> ExitCode {
    bookkit::bench_main(run)
}

fn crate_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

async fn run() -> Result<()> {
    let Some(db) = testkit::postgres(Some(&crate_file("sql/schema.sql"))).await else {
        return Ok(());
    };
    db.apply_sql_file(&crate_file("sql/ladder.sql")).await?;
    let Some(redis) = testkit::redis().await else {
        return Ok(());
    };
    let max = CLIENTS.iter().copied().max().unwrap_or(1);
    let pool = db.pool_with(max).await;
    let front = RedisFront::new(redis.conn.clone(), pool.clone(), &redis.prefix);
    let mut rungs: Vec<Arc<dyn Rung>> = all_rungs(&pool, front)?
        .into_iter()
        .map(Arc::from)
        .collect();
    rungs.push(Arc::new(StoreRung::new(pool.clone(), SPREAD_POSITIONS)?));
    // The ceiling first: `interleave` compares every other workload to workload 0.
    let ceiling_at = rungs.iter().position(|r| r.id() == "ceiling").unwrap_or(0);
    let ceiling = rungs.remove(ceiling_at);
    rungs.insert(0, ceiling);

    // `INVENTORY_BENCH=lag` measures only the event lag (a developer's shortcut).
    let only_lag = std::env::var("INVENTORY_BENCH").is_ok_and(|v| v == "lag");
    // ANCHOR: bench_ladder
    for clients in CLIENTS.into_iter().filter(|_| !only_lag) {
        let workloads: Vec<Workload> = rungs
            .iter()
            .map(|r| Workload {
                name: ladder_result(r.id(), clients),
                concurrency: clients,
            })
            .collect();
        let mut runs: Vec<Vec<Throughput>> = vec![Vec::new(); rungs.len()];
        let handle = tokio::runtime::Handle::current();
        let results = tokio::task::block_in_place(|| {
            interleave(
                CHAPTER,
                ResultKind::Load,
                &PLAN,
                &workloads[0],
                &workloads[1..],
                |i, round| {
                    let spec = LoadSpec {
                        clients,
                        warmup: WARMUP,
                        measure: round,
                        units: THROUGHPUT_UNITS,
                    };
                    let t = handle.block_on(throughput(Arc::clone(&rungs[i]), spec))?;
                    let answered = t.reserved + t.sold_out + t.errors;
                    let stats = RoundStats {
                        ops: answered,
                        errors: answered - t.reserved,
                        elapsed: t.elapsed,
                        latency_us: t.latency_us.clone(),
                    };
                    runs[i].push(t);
                    Ok(stats)
                },
            )
        })?;
        for (result, rounds) in results.into_iter().zip(&runs) {
            let sum = |f: fn(&Throughput) -> u64| rounds.iter().map(f).sum::<u64>();
            let result = result
                .with_extra("sold_out", sum(|t| t.sold_out))
                .with_extra("busy", sum(|t| t.busy))
                .with_extra("failed", sum(|t| t.errors));
            println!(
                "{:<32} {:>9.0}/s p99 {:>8.0} µs ratio {:?}",
                result.name,
                result.ops_per_sec.unwrap_or(0.0),
                result.p99_us.unwrap_or(0.0),
                result.ratio.map(|s| s.median)
            );
            write_result(&result)?;
        }
        for rung in &rungs {
            if matches!(rung.id(), "ceiling" | "store-spread") {
                continue;
            }
            let s = sell_out(Arc::clone(rung), clients, SELLOUT_UNITS).await?;
            println!(
                "{:<32} oversell {} undersell {}",
                sellout_result(rung.id(), clients),
                s.oversell(),
                s.undersell()
            );
            let result = BenchResult::new(
                CHAPTER,
                &sellout_result(rung.id(), clients),
                ResultKind::Simulation,
            )
            .with_concurrency(clients)
            .with_extra("units", s.units)
            .with_extra("reserved", s.reserved)
            .with_extra("remaining", s.remaining)
            .with_extra("oversell", s.oversell())
            .with_extra("undersell", s.undersell())
            .with_extra("failed", s.errors);
            write_result(&result)?;
        }
    }
    // ANCHOR_END: bench_ladder

    // ANCHOR: bench_lag
    let Some(url) = testkit::nats().await else {
        return Ok(());
    };
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let (name, prefix) = (
        format!("INV_BENCH_{}", &tag[..8]),
        format!("invbench{}", &tag[..8]),
    );
    let stream = ensure_stream(&js, &name, &prefix).await?;
    let store = PgStore::new(db.pool_with(4).await);
    let key = inventory::domain::StockKey::new(
        inventory::domain::Sku::parse("LAG-1")?,
        inventory::domain::Warehouse::parse("AMS-1")?,
    );
    store.add_sku(&key.sku).await?;
    store.add_warehouse(&key.warehouse).await?;
    store
        .receive(
            uuid::Uuid::new_v4(),
            &key,
            inventory::domain::Qty::new(1_000_000)?,
            chrono::Utc::now(),
        )
        .await?;
    // Drop what the ladder left in the outbox: the lag run measures its own events.
    sqlx::query("DELETE FROM outbox")
        .execute(store.pool())
        .await?;
    let relay = Relay::new(store.pool().clone(), js.clone(), &prefix);
    let c = consumer(&stream, "lag", Duration::from_secs(5)).await?;
    let began = std::time::Instant::now();
    let run = lag_run(&store, &key, relay, c, LAG_OPS, LAG_EVERY, LAG_POLL).await?;
    let result = BenchResult::new(CHAPTER, LAG_RESULT, ResultKind::Load)
        .with_throughput(run.events, 0, began.elapsed())
        .with_latency_us(&run.lag_us)
        .with_extra("max_us", run.lag_us.max())
        .with_extra("poll_ms", LAG_POLL.as_millis() as u64)
        .with_extra("every_ms", LAG_EVERY.as_millis() as u64);
    println!(
        "event lag p50 {:?} µs p99 {:?} µs",
        result.p50_us, result.p99_us
    );
    write_result(&result)?;
    let _ = js.delete_stream(&name).await;
    // ANCHOR_END: bench_lag
    Ok(())
}
