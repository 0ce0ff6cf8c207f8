//! The e-commerce chapter's measurements, on the local PostgreSQL and Redis.
//!
//! `cargo xtask bench-report ecommerce` runs this; the results go to
//! `target/sdb-results/ecommerce/` and the chapter's tables are rendered from
//! them (`ecommerce::report`). Every comparison is interleaved in rounds
//! (`bookkit::rounds`): the ceiling and the paths back to back, per round.
//!
//! 1. Checkout at 1, 8 and 32 clients: a plain INSERT of an order row (the
//!    ceiling), the checkout with an idempotency key, and without one.
//! 2. Add-to-cart at 8 clients: Redis against PostgreSQL.
//! 3. The catalog read path over HTTP (`GET /products/{sku}`, L1 hits)
//!    against a constant-response server, 16 connections.
//! 4. Flash-sale overload: checkouts arriving at 5x the measured capacity for
//!    a few seconds, without and with the admission bucket.
//!
//! Without PostgreSQL or Redis it prints a `SKIPPED:` line and exits 0 (it
//! fails under `SDB_REQUIRE_SERVICES=1`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bookkit::loadgen::{LoadSpec as HttpSpec, constant_server, run_get};
use bookkit::results::write_result;
use bookkit::rounds::{Plan, RoundStats, Workload, interleave};
use bookkit::{BenchResult, ResultKind};
use ecommerce::cart::{MemoryCarts, PgCarts, RedisCarts};
use ecommerce::catalog::{Catalog, CatalogConfig, FillPolicy, RedisL2};
use ecommerce::checkout::Checkout;
use ecommerce::checkout::provider::FakeProvider;
use ecommerce::load::{
    LoadRun, LoadSpec, cart_load, checkout_load, insert_ceiling, overload, seed_perf_catalog,
};
use ecommerce::report::{
    CHAPTER, CLIENTS, OVERLOAD_DEADLINE, OVERLOAD_FACTOR, ceiling_result, checkout_result,
    nokey_result,
};
use ecommerce::service::{AppState, InFlight, admission, router};
use ecommerce::store::PgStore;

const WARMUP: Duration = Duration::from_millis(300);
const PLAN: Plan = Plan {
    rounds: 3,
    round: Duration::from_secs(2),
};
/// How long flash-sale arrivals last.
const OVERLOAD_FOR: Duration = Duration::from_secs(4);

fn main() -> ExitCode {
    bookkit::bench_main(run)
}

fn schema() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/schema.sql")
}

fn stats(run: &LoadRun) -> RoundStats {
    RoundStats {
        ops: run.ok + run.errors,
        errors: run.errors,
        elapsed: run.elapsed,
        latency_us: run.latency_us.clone(),
    }
}

fn spec(clients: u32, measure: Duration, seed: u64) -> LoadSpec {
    LoadSpec {
        clients,
        warmup: WARMUP,
        measure,
        seed,
    }
}

fn print(r: &BenchResult) {
    println!(
        "{:<24} {:>9.0}/s p50 {:>8.0} µs p99 {:>9.0} µs ratio {:?}",
        r.name,
        r.ops_per_sec.unwrap_or(0.0),
        r.p50_us.unwrap_or(0.0),
        r.p99_us.unwrap_or(0.0),
        r.ratio.map(|s| s.median)
    );
}

async fn run() -> Result<()> {
    let Some(db) = testkit::postgres(Some(&schema())).await else {
        return Ok(());
    };
    let Some(redis) = testkit::redis().await else {
        return Ok(());
    };
    let max = CLIENTS.iter().copied().max().unwrap_or(1);
    let pool = db.pool_with(max).await;
    seed_perf_catalog(&pool).await.context("seeding")?;
    let store = Arc::new(PgStore::new(pool.clone()));
    let checkout = Checkout::new(Arc::clone(&store), Arc::new(FakeProvider::new()));
    let handle = tokio::runtime::Handle::current();

    // ANCHOR: bench_checkout
    let mut capacity_c8 = 0.0;
    for clients in CLIENTS {
        let workloads = [
            Workload {
                name: ceiling_result(clients),
                concurrency: clients,
            },
            Workload {
                name: checkout_result(clients),
                concurrency: clients,
            },
            Workload {
                name: nokey_result(clients),
                concurrency: clients,
            },
        ];
        let mut seed = 0u64;
        let results = tokio::task::block_in_place(|| {
            interleave(
                CHAPTER,
                ResultKind::Load,
                &PLAN,
                &workloads[0],
                &workloads[1..],
                |i, round| {
                    seed += 1;
                    let s = spec(clients, round, u64::from(clients) * 1_000 + seed);
                    let run = handle.block_on(async {
                        match i {
                            0 => insert_ceiling(pool.clone(), s).await,
                            1 => checkout_load(checkout.clone(), true, s).await,
                            _ => checkout_load(checkout.clone(), false, s).await,
                        }
                    });
                    Ok(stats(&run))
                },
            )
        })?;
        for r in results {
            if r.name == checkout_result(8) {
                capacity_c8 = r.ops_per_sec.unwrap_or(0.0);
            }
            print(&r);
            write_result(&r)?;
        }
    }
    // ANCHOR_END: bench_checkout

    // Carts: Redis against PostgreSQL, 8 clients.
    let redis_carts = Arc::new(RedisCarts::connect(&redis.url, &redis.prefix).await?);
    let pg_carts = Arc::new(PgCarts::new(pool.clone()));
    let carts = [
        Workload {
            name: "cart-add-redis-c8".into(),
            concurrency: 8,
        },
        Workload {
            name: "cart-add-postgres-c8".into(),
            concurrency: 8,
        },
    ];
    let results = tokio::task::block_in_place(|| {
        interleave(
            CHAPTER,
            ResultKind::Load,
            &PLAN,
            &carts[0],
            &carts[1..],
            |i, round| {
                let s = spec(8, round, 7);
                let run = handle.block_on(async {
                    if i == 0 {
                        cart_load(Arc::clone(&redis_carts), s).await
                    } else {
                        cart_load(Arc::clone(&pg_carts), s).await
                    }
                });
                Ok(stats(&run))
            },
        )
    })?;
    for r in results {
        print(&r);
        write_result(&r)?;
    }

    // ANCHOR: bench_catalog
    let l2 = RedisL2::connect(&redis.url, &redis.prefix, FillPolicy::KeepHigherVersion).await?;
    let state = AppState {
        catalog: Arc::new(Catalog::new(
            Arc::clone(&store),
            Some(l2),
            CatalogConfig::default(),
        )),
        checkout: checkout.clone(),
        store: Arc::clone(&store),
        carts: Arc::new(MemoryCarts::new()),
        admission: None,
        in_flight: InFlight::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let shop = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let (constant, stop, _constant_task) = constant_server(200, vec![]).await?;
    let paths = Arc::new(
        (0..100)
            .map(|i| format!("/products/P-{i:05}"))
            .collect::<Vec<_>>(),
    );
    let reads = [
        Workload {
            name: "constant-c16".into(),
            concurrency: 16,
        },
        Workload {
            name: "catalog-read-c16".into(),
            concurrency: 16,
        },
    ];
    let results = tokio::task::block_in_place(|| {
        interleave(
            CHAPTER,
            ResultKind::Load,
            &PLAN,
            &reads[0],
            &reads[1..],
            |i, round| {
                let http = HttpSpec {
                    connections: 16,
                    warmup_per_connection: 50,
                    duration: round,
                    max_requests: u64::MAX,
                    expect_status: 200,
                };
                let addr = if i == 0 { constant } else { shop };
                let out = handle.block_on(run_get(addr, Arc::clone(&paths), &http))?;
                Ok(RoundStats {
                    ops: out.ok + out.errors,
                    errors: out.errors,
                    elapsed: out.elapsed,
                    latency_us: out.latency_us,
                })
            },
        )
    })?;
    for r in results {
        print(&r);
        write_result(&r)?;
    }
    let _ = stop.send(());
    server.abort();
    // ANCHOR_END: bench_catalog

    // ANCHOR: bench_overload
    anyhow::ensure!(capacity_c8 > 0.0, "no checkout capacity measured");
    let rate = capacity_c8 * OVERLOAD_FACTOR;
    // Admit 90% of the measured capacity, with a burst of a tenth of a second's worth.
    let admit_per_s = (capacity_c8 * 0.9).max(1.0) as u32;
    for (name, bucket) in [
        ("overload-none", None),
        (
            "overload-governor",
            admission(admit_per_s, (admit_per_s / 10).max(1)),
        ),
    ] {
        let run = overload(
            checkout.clone(),
            bucket,
            rate,
            OVERLOAD_FOR,
            OVERLOAD_DEADLINE,
            11,
        )
        .await;
        let r = BenchResult::new(CHAPTER, name, ResultKind::Load)
            .with_throughput(run.offered, run.offered - run.good, run.elapsed)
            .with_latency_us(&run.admitted_us)
            .with_extra("offered", run.offered)
            .with_extra("rejected", run.rejected)
            .with_extra("completed", run.completed)
            .with_extra("good", run.good)
            .with_extra("rate_per_s", rate)
            .with_extra("capacity_per_s", capacity_c8)
            .with_extra("admit_per_s", admit_per_s);
        print(&r);
        println!(
            "  offered {} rejected {} completed {} good {}",
            run.offered, run.rejected, run.completed, run.good
        );
        write_result(&r)?;
    }
    // ANCHOR_END: bench_overload
    Ok(())
}
