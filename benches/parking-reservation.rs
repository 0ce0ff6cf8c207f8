//! The parking chapter's measurements: two load runs on the local PostgreSQL.
//!
//! Not criterion: these are bounded load runs whose numbers are per-request
//! latency percentiles and throughput at a fixed concurrency, which
//! criterion's batch means cannot give. `cargo xtask bench-report parking-reservation`
//! runs this and renders `src/parking-reservation/generated/{strategies,performance}.md`
//! from the results it writes to `target/sdb-results/parking-reservation/*.json`.
//!
//! 1. **Strategies under contention.** For each of the four strategies of
//!    `parking_reservation::strategies`, on a fresh database: 16 clients x 250 attempts,
//!    each booking a random one of 4 spots for 1 to 8 random slots of four
//!    days, then a self-join counting overlapping pairs. Results
//!    `strategy-<id>`.
//! 2. **Reserve path against its ceiling.** On a fresh database with the
//!    chapter's schema and a 400-spot lot, at 1, 8 and 32 concurrent
//!    clients: first the ceiling (`parking_reservation::load::insert_ceiling`: one plain
//!    INSERT of a non-conflicting reservation row), then the real reserve
//!    path (`parking_reservation::load::reserve_load`: `PgStore::reserve` with an
//!    idempotency key, requests spread over 60 days so most succeed), both
//!    through the same 32-connection pool, 0.5 s warm-up and 3 s measured
//!    each. Results `ceiling-insert-c<n>` and `reserve-c<n>`.
//!
//! The whole run takes well under two minutes. Without PostgreSQL it prints
//! a `SKIPPED:` line and exits 0 (it fails under `SDB_REQUIRE_SERVICES=1`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use parking_reservation::load::{LoadRun, LoadSpec, insert_ceiling, perf_lot, reserve_load};
use parking_reservation::report::{CHAPTER, CLIENTS, ceiling_result, reserve_result, strategy_result};
use parking_reservation::store::{PgStore, ReservationStore};
use parking_reservation::strategies::{self, Contention, Strategy};
use xtask::bench_report::{BenchResult, ResultKind, write_result};

/// The contended workload of the comparison.
const CONTENTION: Contention = Contention {
    clients: 16,
    attempts_per_client: 250,
    spots: 4,
    horizon_slots: 384,
    max_len_slots: 8,
    seed: 2026,
};

const WARMUP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: building the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn crate_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("chapters-code/parking-reservation")
        .join(rel)
}

async fn run() -> Result<()> {
    // ANCHOR: bench_strategies
    for strategy in Strategy::ALL {
        let Some(db) = testkit::postgres(Some(&crate_file("sql/strategies.sql"))).await else {
            return Ok(());
        };
        let pool = db.pool_with(CONTENTION.clients).await;
        strategies::create_spots(&pool, CONTENTION.spots).await?;
        let out = strategies::contend(&pool, strategy, CONTENTION).await?;
        println!(
            "{:<13} {:>5} attempts {:>5} booked {:>5} refused {:>4} retries {:>3} gave up {:>4} overlapping pairs {:>7.0} attempts/s",
            strategy.id(),
            out.attempts,
            out.booked,
            out.refused,
            out.retries,
            out.gave_up,
            out.overlapping_pairs,
            out.attempts as f64 / out.elapsed.as_secs_f64(),
        );
        let result = BenchResult::new(CHAPTER, &strategy_result(strategy), ResultKind::Load)
            .with_throughput(out.attempts, out.errors, out.elapsed)
            .with_latency_us(&out.latency_us)
            .with_concurrency(CONTENTION.clients)
            .with_extra("booked", out.booked)
            .with_extra("refused", out.refused)
            .with_extra("retries", out.retries)
            .with_extra("gave_up", out.gave_up)
            .with_extra("overlapping_pairs", out.overlapping_pairs)
            .with_extra("clients", CONTENTION.clients)
            .with_extra("attempts_per_client", CONTENTION.attempts_per_client)
            .with_extra("spots", CONTENTION.spots)
            .with_extra("max_len_slots", CONTENTION.max_len_slots)
            .with_extra("horizon_slots", CONTENTION.horizon_slots);
        write_result(&result)?;
    }
    // ANCHOR_END: bench_strategies

    // ANCHOR: bench_performance
    let Some(db) = testkit::postgres(Some(&crate_file("sql/schema.sql"))).await else {
        return Ok(());
    };
    let max_clients = CLIENTS.iter().copied().max().unwrap_or(1);
    let store = PgStore::new(db.pool_with(max_clients).await);
    let lot = store
        .create_lot(&perf_lot())
        .await
        .context("creating the load lot")?;
    for clients in CLIENTS {
        let spec = LoadSpec {
            clients,
            warmup: WARMUP,
            measure: MEASURE,
            seed: u64::from(clients),
        };
        let ceiling = insert_ceiling(store.pool(), lot, spec).await?;
        report_run(&ceiling_result(clients), &ceiling, None)?;
        let reserve = reserve_load(&store, lot, spec).await;
        report_run(
            &reserve_result(clients),
            &reserve,
            Some(&ceiling_result(clients)),
        )?;
    }
    // ANCHOR_END: bench_performance
    Ok(())
}

fn report_run(name: &str, run: &LoadRun, ceiling: Option<&str>) -> Result<()> {
    println!(
        "{name:<20} {:>6} ok {:>4} no spot {:>3} gave up {:>5} races lost {:>3} errors {:>7.0}/s p50 {:>6} µs p99 {:>6} µs",
        run.ok,
        run.no_spot,
        run.conflicts,
        run.races_lost,
        run.errors,
        run.ok_per_sec(),
        run.latency_us.value_at_quantile(0.5),
        run.latency_us.value_at_quantile(0.99),
    );
    anyhow::ensure!(
        run.ok > 0,
        "{name}: no request succeeded ({} errors)",
        run.errors
    );
    let mut result = BenchResult::new(CHAPTER, name, ResultKind::Load)
        .with_throughput(run.total(), run.total() - run.ok, run.elapsed)
        .with_latency_us(&run.latency_us)
        .with_concurrency(run.clients)
        .with_extra("no_spot", run.no_spot)
        .with_extra("conflicts", run.conflicts)
        .with_extra("errors", run.errors)
        .with_extra("races_lost", run.races_lost);
    if let Some(ceiling) = ceiling {
        result = result.with_ceiling(ceiling);
    }
    write_result(&result)?;
    Ok(())
}
