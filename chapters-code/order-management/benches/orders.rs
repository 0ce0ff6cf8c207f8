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
//! 4. The saga path end to end (`checkout-saga`): create an order and run
//!    its checkout saga to completion, 16 at a time on a 16-connection pool.

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
use order_management::saga::Orchestrator;
use order_management::store::{OrderStore, PgStore, SCHEMA_SQL};
use uuid::Uuid;

const PLAN: Plan = Plan {
    rounds: 5,
    round: Duration::from_secs(2),
};
const BACKLOG: u32 = 3_000;
const REPLAY_ORDERS: u32 = 2_000;
/// Concurrent checkouts in the saga-path run.
const CHECKOUT_WORKERS: u32 = 16;
/// The service's pool (`main.rs` connects with 16).
const SERVICE_POOL: u32 = 16;
/// How long the saga-path run lasts.
const CHECKOUT_SECS: u64 = 10;
/// The saga path's result: order creation plus a completed checkout.
const CHECKOUT_RESULT: &str = "checkout-saga";

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
    // `ORDER_MANAGEMENT_BENCH=checkout-quick`: only the saga path, for one
    // second, printed and not written.
    let quick_checkout = std::env::var(QUICK).is_ok_and(|v| v == "checkout-quick");
    let relay_run = Duration::from_secs(if quick { 1 } else { RELAY_SECS });
    // ANCHOR: bench_transitions
    let Some(db) = testkit::postgres(None).await else {
        return Ok(());
    };
    db.apply_sql(block_outbox::SCHEMA_SQL).await?;
    db.apply_sql(SCHEMA_SQL).await?;
    let max = WORKERS.iter().copied().max().unwrap_or(1);
    let store = PgStore::new(db.pool_with(max).await);
    for workers in WORKERS.into_iter().filter(|_| !quick && !quick_checkout) {
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

    // ANCHOR: bench_checkout
    // The saga path end to end, at CHECKOUT_WORKERS concurrent checkouts
    // on a pool the size of the service's: the rate the capacity table
    // prices an order at.
    if !quick {
        sqlx::query(
            "INSERT INTO stock (sku, on_hand) VALUES ('BOOK-1', 1000000000), ('MUG-2', 1000000000)
             ON CONFLICT (sku) DO UPDATE SET on_hand = EXCLUDED.on_hand, reserved = 0",
        )
        .execute(store.pool())
        .await?;
        let service_pool = PgStore::new(db.pool_with(SERVICE_POOL).await);
        let orchestrator = Arc::new(Orchestrator::new(service_pool.pool().clone()));
        let secs = if quick_checkout { 1 } else { CHECKOUT_SECS };
        let run = load::checkouts(
            &service_pool,
            orchestrator,
            CHECKOUT_WORKERS,
            Duration::from_secs(secs),
        )
        .await?;
        let r = BenchResult::new(CHAPTER, CHECKOUT_RESULT, ResultKind::Load)
            .with_throughput(run.ok, run.errors, run.elapsed)
            .with_concurrency(CHECKOUT_WORKERS)
            .with_latency_us(&run.latency_us);
        println!(
            "{CHECKOUT_RESULT} {} checkouts ({} errors) in {:?}",
            run.ok, run.errors, run.elapsed
        );
        if quick_checkout {
            return Ok(()); // a check that the run works, not a measurement
        }
        write_result(&r)?;
    }
    // ANCHOR_END: bench_checkout

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
