//! The order chapter's measurements on the local PostgreSQL and NATS.
//!
//! Bounded load runs, not criterion: the numbers are per-operation latency
//! percentiles and throughput at a fixed concurrency. `cargo xtask
//! bench-report order-management` runs this and renders
//! `src/order-management/generated/performance.md` from the results.
//!
//! 1. Transitions against the ceiling: for 1, 8 and 32 workers, interleaved
//!    rounds of a plain single-row UPDATE (`ceiling-update-c<n>`) and of
//!    `PgStore::apply` (`transition-c<n>`), through the same pool.
//! 2. Relay lag: the same offered load for both relays, `RELAY_RATE`
//!    transitions/s for `RELAY_SECS` seconds on a fixed schedule, while one
//!    relay publishes to JetStream, polling (`relay-lag-poll`) and woken by
//!    LISTEN/NOTIFY (`relay-lag-notify`); and a backlog drain (`relay-drain`).
//! 3. Replay: every event of a few thousand orders read and folded (`replay`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bookkit::results::write_result;
use bookkit::rounds::{Plan, RoundStats, Workload, interleave};
use bookkit::{BenchResult, ResultKind};
use order_management::domain::Command;
use order_management::load::{self, Run};
use order_management::relay::{Broker, Relay};
use order_management::report::{
    CHAPTER, RELAY_RATE, RELAY_SECS, RELAY_WAKES, WAKE_INTERVAL_US, WORKERS, ceiling_result,
    transition_result, wake_interval_us,
};
use order_management::store::{OrderStore, PgStore, SCHEMA_SQL};
use uuid::Uuid;

const PLAN: Plan = Plan {
    rounds: 5,
    round: Duration::from_secs(2),
};
const BACKLOG: u32 = 3_000;
const REPLAY_ORDERS: u32 = 2_000;

fn main() -> ExitCode {
    bookkit::bench_main(run)
}

fn stats(run: Run) -> RoundStats {
    RoundStats {
        ops: run.ok + run.errors,
        errors: run.errors,
        elapsed: run.elapsed,
        latency_us: run.latency_us,
    }
}

/// `ORDER_MANAGEMENT_BENCH=relay-quick`: only the two relay runs, for one
/// second each, printed and not written: a check that they work.
const QUICK: &str = "ORDER_MANAGEMENT_BENCH";

async fn run() -> Result<()> {
    let quick = std::env::var(QUICK).is_ok_and(|v| v == "relay-quick");
    let relay_run = Duration::from_secs(if quick { 1 } else { RELAY_SECS });
    // ANCHOR: bench_transitions
    let Some(db) = testkit::postgres(None).await else {
        return Ok(());
    };
    db.apply_sql(block_outbox::SCHEMA_SQL).await?;
    db.apply_sql(SCHEMA_SQL).await?;
    let max = WORKERS.iter().copied().max().unwrap_or(1);
    let store = PgStore::new(db.pool_with(max).await);
    for workers in WORKERS.into_iter().filter(|_| !quick) {
        let orders = load::orders_for(&store, workers).await?;
        let handle = tokio::runtime::Handle::current();
        let results = tokio::task::block_in_place(|| {
            interleave(
                CHAPTER,
                ResultKind::Load,
                &PLAN,
                &Workload {
                    name: ceiling_result(workers),
                    concurrency: workers,
                },
                &[Workload {
                    name: transition_result(workers),
                    concurrency: workers,
                }],
                |i, round| {
                    let run = handle.block_on(async {
                        if i == 0 {
                            load::ceiling(store.pool(), &orders, round).await
                        } else {
                            load::transitions(&store, &orders, round).await
                        }
                    })?;
                    Ok(stats(run))
                },
            )
        })?;
        for r in results {
            println!(
                "{:<22} {:>8.0}/s ratio {:?} p50 {:?} µs p99 {:?} µs",
                r.name,
                r.ops_per_sec.unwrap_or(0.0),
                r.ratio,
                r.p50_us,
                r.p99_us
            );
            write_result(&r)?;
        }
    }
    // ANCHOR_END: bench_transitions

    // ANCHOR: bench_relay
    let Some(nats) = testkit::nats().await else {
        return Ok(());
    };
    let tag = Uuid::new_v4().simple().to_string();
    let broker = Broker::connect(
        &nats,
        &format!("OM_BENCH_{tag}"),
        &format!("om_bench_{tag}"),
    )
    .await?;
    for (name, wake) in RELAY_WAKES {
        let relay = Arc::new(Relay::new(store.pool().clone(), broker.clone()));
        let lag = load::relay_lag(&store, relay, wake, RELAY_RATE, relay_run).await?;
        println!(
            "{name:<18} offered {} at {RELAY_RATE}/s for {relay_run:?}: {} messages, \
             committed {:.0}/s, lag p50 {:.0} µs p99 {:.0} µs",
            lag.offered, lag.messages, lag.committed_rate, lag.p50_us, lag.p99_us
        );
        let r = BenchResult::new(CHAPTER, name, ResultKind::Load)
            .with_throughput(lag.messages, lag.errors, relay_run)
            .with_concurrency(1)
            .with_extra(WAKE_INTERVAL_US, wake_interval_us(wake))
            .with_extra("offered_rate", f64::from(RELAY_RATE))
            .with_extra("offered", lag.offered)
            .with_extra("committed_rate", lag.committed_rate)
            .with_extra("lag_p50_us", lag.p50_us)
            .with_extra("lag_p99_us", lag.p99_us);
        if quick {
            continue; // a check that the run works, not a measurement
        }
        write_result(&r)?;
    }
    if quick {
        let _ = broker.delete().await;
        return Ok(());
    }
    // A backlog: one created event per order, drained by one relay.
    let backlog = load::orders_for(&store, BACKLOG).await?;
    let relay = Relay::new(store.pool().clone(), broker.clone());
    let start = Instant::now();
    let mut published = 0u64;
    loop {
        let d = relay.drain_once().await?;
        if d.published + d.duplicates == 0 {
            break;
        }
        published += d.published as u64;
    }
    let elapsed = start.elapsed();
    println!("relay-drain {published} messages in {elapsed:?}");
    write_result(
        &BenchResult::new(CHAPTER, "relay-drain", ResultKind::Load)
            .with_throughput(published, 0, elapsed)
            .with_concurrency(1)
            .with_extra("backlog", backlog.len() as u64),
    )?;
    let _ = broker.delete().await;
    // ANCHOR_END: bench_relay

    // ANCHOR: bench_replay
    for id in load::orders_for(&store, REPLAY_ORDERS).await? {
        let total = store.get(id).await?.total_cents;
        let mut v = 1;
        for c in [
            Command::Place,
            Command::Approve {
                amount_cents: total,
            },
            Command::Cancel {
                reason: "replay".into(),
            },
            Command::Refund,
        ] {
            v = store.apply(id, v, &c).await?.version;
        }
    }
    let replay = load::replay(&store).await?;
    println!(
        "replay {} events of {} orders in {:?}",
        replay.events, replay.orders, replay.elapsed
    );
    write_result(
        &BenchResult::new(CHAPTER, "replay", ResultKind::Load)
            .with_throughput(replay.events, 0, replay.elapsed)
            .with_concurrency(1)
            .with_extra("orders", replay.orders),
    )?;
    // ANCHOR_END: bench_replay
    Ok(())
}
