//! The parking chapter's measurements: three load phases on the local PostgreSQL.
//!
//! Not criterion: these are bounded load runs whose numbers are per-request
//! latency percentiles and throughput at a fixed concurrency, which
//! criterion's batch means cannot give. `cargo xtask bench-report parking-reservation`
//! runs this and renders `src/parking-reservation/generated/{strategies,performance,stadium}.md`
//! from the results it writes to `target/sdb-results/parking-reservation/*.json`.
//!
//! 1. **Strategies under contention.** For each of the five strategies of
//!    `parking_reservation::strategies`, on a fresh database: 16 clients x 250 attempts,
//!    each booking a random one of 4 spots for 1 to 8 random slots of four
//!    days, or until 8 s have passed, then a self-join counting overlapping
//!    pairs. Results `strategy-<id>`.
//! 2. **Reserve path against its ceiling.** On a fresh database with the
//!    chapter's schema and a 400-spot lot, at 1, 8 and 32 concurrent
//!    clients: first the ceiling (`parking_reservation::load::insert_ceiling`: one plain
//!    INSERT of a non-conflicting reservation row), then the real reserve
//!    path (`parking_reservation::load::reserve_load`: `PgStore::reserve` with an
//!    idempotency key, requests spread over 60 days so most succeed), both
//!    through the same 32-connection pool, in 5 interleaved rounds
//!    (`bookkit::rounds`) of 0.2 s warm-up and 2 s measured each. Results
//!    `ceiling-insert-c<n>` and `reserve-c<n>`.
//!
//! 3. **The stadium case.** For each reserve path of `PgStore`
//!    (`parking_reservation::store::ReservePath`), on a fresh database at
//!    PostgreSQL's default `deadlock_timeout`: 32 clients released together
//!    ask for the same five evening hours of one 200-spot lot until it is
//!    full or 10 s have passed (`parking_reservation::stadium::run`); three rounds, the paths in
//!    a rotating order. Results `stadium-<path>`.
//!
//! Also measured at 32 clients, in the same rounds as the reserve path: the
//! availability query and a read of one reservation (results
//! `availability-c32`, `read-c32`), so the chapter can say what the other
//! operations cost beside a reserve.
//!
//! Every phase ends at its deadline: a request still in flight then is cut
//! off (abandoned, counted in the result's `cut_off`, and its transaction
//! ended in the database before the phase returns, so the next phase or
//! audit starts at rest), so a slow path cannot stretch the run. The load
//! therefore lasts at most [`Config::longest`], which the run prints first:
//! by default 5 strategies x 8 s + (2 + 2 + 4 workloads) x 5 rounds x
//! (0.2 + 2) s + 3 paths x 3 rounds x 10 s = 40 + 88 + 90 = 218 s, plus a
//! the setup (16 throwaway databases, the lots) and the audits, which are
//! not bounded by a deadline: well under five minutes in all. The strategies and the stadium usually end sooner (most of
//! their runs finish their work before the deadline); the interleaved
//! rounds always take their 88 s.
//!
//! `PARKING_BENCH=quick` runs the same phases with every duration cut
//! (about 19 s of load), to check that the bench works; its figures are not
//! for the book. Without PostgreSQL it prints a `SKIPPED:` line and exits 0
//! (it fails under `SDB_REQUIRE_SERVICES=1`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use bookkit::results::write_result;
use bookkit::rounds::{Plan, RoundStats, Workload, interleave};
use bookkit::{BenchResult, ResultKind};
use parking_reservation::load::{
    LoadRun, LoadSpec, availability_load, insert_ceiling, perf_lot, read_load, reserve_load,
};
use parking_reservation::report::{
    CHAPTER, CLIENTS, SIZING_CLIENTS, availability_result, ceiling_result, read_result,
    reserve_result, stadium_result, strategy_result,
};
use parking_reservation::stadium::{self, Stadium};
use parking_reservation::store::{PgStore, ReservationStore, ReservePath};
use parking_reservation::strategies::{self, Contention, Strategy};

/// What the bench runs, and for how long.
struct Config {
    /// The contended workload of the strategy comparison.
    contention: Contention,
    /// The hot lot of the stadium comparison.
    stadium: Stadium,
    /// Stadium rounds per path.
    stadium_rounds: usize,
    /// Unmeasured time at the start of each interleaved round.
    warmup: Duration,
    /// Rounds per client count, each measuring the ceiling and the paths back to back.
    plan: Plan,
}

impl Config {
    /// The configuration the book's figures come from.
    const DEFAULT: Config = Config {
        contention: Contention {
            clients: 16,
            attempts_per_client: 250,
            spots: 4,
            horizon_slots: 384,
            max_len_slots: 8,
            seed: 2026,
            deadline: Duration::from_secs(8),
        },
        stadium: Stadium {
            spots: 200,
            clients: 32,
            deadline: Duration::from_secs(10),
        },
        stadium_rounds: 3,
        warmup: Duration::from_millis(200),
        plan: Plan {
            rounds: 5,
            round: Duration::from_secs(2),
        },
    };

    /// The same phases, short: to check that the bench works, not to measure.
    const QUICK: Config = Config {
        contention: Contention {
            deadline: Duration::from_secs(1),
            ..Config::DEFAULT.contention
        },
        stadium: Stadium {
            deadline: Duration::from_secs(1),
            ..Config::DEFAULT.stadium
        },
        stadium_rounds: 3,
        warmup: Duration::from_millis(50),
        plan: Plan {
            rounds: 2,
            round: Duration::from_millis(250),
        },
    };

    /// The most the load phases can last: each ends at its deadline.
    fn longest(&self) -> Duration {
        let strategies = self.contention.deadline * Strategy::ALL.len() as u32;
        let workloads: u32 = CLIENTS
            .iter()
            .map(|c| if *c == SIZING_CLIENTS { 4 } else { 2 })
            .sum();
        let interleaved = (self.warmup + self.plan.round) * workloads * self.plan.rounds;
        let stadium = self.stadium.deadline * (self.stadium_rounds * ReservePath::ALL.len()) as u32;
        strategies + interleaved + stadium
    }
}

fn main() -> ExitCode {
    bookkit::bench_main(run)
}

fn crate_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

async fn run() -> Result<()> {
    let quick = std::env::var("PARKING_BENCH").is_ok_and(|v| v == "quick");
    let config = if quick {
        Config::QUICK
    } else {
        Config::DEFAULT
    };
    println!(
        "{} configuration: the load phases last at most {:.0} s, plus setup and audits",
        if quick {
            "quick (not for the book)"
        } else {
            "default"
        },
        config.longest().as_secs_f64()
    );
    let began = std::time::Instant::now();
    let contention = config.contention;
    // ANCHOR: bench_strategies
    for strategy in Strategy::ALL {
        let Some(db) = testkit::postgres(Some(&crate_file("sql/strategies.sql"))).await else {
            return Ok(());
        };
        let pool = db.pool_with(contention.clients).await;
        strategies::create_spots(&pool, contention.spots).await?;
        let out = strategies::contend(&pool, strategy, contention).await?;
        println!(
            "{:<13} {:>5} attempts {:>5} booked {:>5} refused {:>4} retries {:>3} gave up {:>3} cut off {:>4} overlapping pairs {:>7.0} attempts/s",
            strategy.id(),
            out.attempts,
            out.booked,
            out.refused,
            out.retries,
            out.gave_up,
            out.cut_off,
            out.overlapping_pairs,
            out.attempts as f64 / out.elapsed.as_secs_f64(),
        );
        let result = BenchResult::new(CHAPTER, &strategy_result(strategy), ResultKind::Load)
            .with_throughput(out.attempts, out.errors, out.elapsed)
            .with_latency_us(&out.latency_us)
            .with_concurrency(contention.clients)
            .with_extra("booked", out.booked)
            .with_extra("refused", out.refused)
            .with_extra("retries", out.retries)
            .with_extra("gave_up", out.gave_up)
            .with_extra("cut_off", out.cut_off)
            .with_extra("deadline_s", contention.deadline.as_secs_f64())
            .with_extra("overlapping_pairs", out.overlapping_pairs)
            .with_extra("clients", contention.clients)
            .with_extra("attempts_per_client", contention.attempts_per_client)
            .with_extra("spots", contention.spots)
            .with_extra("max_len_slots", contention.max_len_slots)
            .with_extra("horizon_slots", contention.horizon_slots);
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
        let mut workloads = vec![
            Workload {
                name: ceiling_result(clients),
                concurrency: clients,
            },
            Workload {
                name: reserve_result(clients),
                concurrency: clients,
            },
        ];
        if clients == SIZING_CLIENTS {
            for name in [availability_result(clients), read_result(clients)] {
                workloads.push(Workload {
                    name,
                    concurrency: clients,
                });
            }
        }
        // Every round starts on fresh ranges (its own seed), so later rounds
        // find free spots as the first did.
        let mut runs: Vec<Vec<LoadRun>> = workloads.iter().map(|_| Vec::new()).collect();
        let handle = tokio::runtime::Handle::current();
        let results = tokio::task::block_in_place(|| {
            interleave(
                CHAPTER,
                ResultKind::Load,
                &config.plan,
                &workloads[0],
                &workloads[1..],
                |i, round| {
                    let spec = LoadSpec {
                        clients,
                        warmup: config.warmup,
                        measure: round,
                        seed: u64::from(clients) * 1_000 + runs[i].len() as u64,
                    };
                    let run = handle.block_on(async {
                        match i {
                            0 => insert_ceiling(store.pool(), lot, spec).await,
                            1 => reserve_load(&store, lot, spec).await,
                            2 => availability_load(&store, lot, spec).await,
                            _ => read_load(&store, lot, spec).await,
                        }
                    })?;
                    let stats = RoundStats {
                        ops: run.total(),
                        errors: run.total() - run.ok,
                        elapsed: run.elapsed,
                        latency_us: run.latency_us.clone(),
                    };
                    runs[i].push(run);
                    Ok(stats)
                },
            )
        })?;
        for (result, rounds) in results.into_iter().zip(&runs) {
            report_run(result, rounds)?;
        }
    }
    // ANCHOR_END: bench_performance

    // ANCHOR: bench_stadium
    let hot = config.stadium;
    let mut rounds: Vec<Vec<stadium::StadiumOutcome>> = vec![Vec::new(); ReservePath::ALL.len()];
    for round in 0..config.stadium_rounds {
        for k in 0..ReservePath::ALL.len() {
            // Rotate the order, so no path always runs first or last.
            let i = (k + round) % ReservePath::ALL.len();
            let path = ReservePath::ALL[i];
            // A fresh database, left at the server's deadlock_timeout.
            let Some(db) = testkit::postgres(Some(&crate_file("sql/schema.sql"))).await else {
                return Ok(());
            };
            let out = stadium::run(db.pool_with(hot.clients).await, path, hot).await?;
            println!(
                "stadium {:<12} {:>4} reserved in {:>8.3} s: {:>6.0}/s, {:>5} races lost, {:>3} deadlocks, {:>3} gave up, {:>3} cut off, {} overlapping pairs",
                path.id(),
                out.reserved,
                out.elapsed.as_secs_f64(),
                out.reserves_per_sec(),
                out.races.races_lost,
                out.races.deadlocks,
                out.races.gave_up,
                out.cut_off,
                out.overlapping_pairs,
            );
            rounds[i].push(out);
        }
    }
    let deadlock_timeout: String = {
        let Some(db) = testkit::postgres(None).await else {
            return Ok(());
        };
        sqlx::query_scalar("SHOW deadlock_timeout")
            .fetch_one(&db.pool)
            .await?
    };
    for (path, outs) in ReservePath::ALL.into_iter().zip(&rounds) {
        let sum = |f: fn(&stadium::StadiumOutcome) -> u64| outs.iter().map(f).sum::<u64>();
        let elapsed = outs.iter().map(|o| o.elapsed).sum();
        let mut result = BenchResult::new(CHAPTER, &stadium_result(path), ResultKind::Load)
            .with_throughput(sum(|o| o.reserved), sum(|o| o.errors), elapsed)
            .with_concurrency(hot.clients)
            .with_extra("races_lost", sum(|o| o.races.races_lost))
            .with_extra("deadlocks", sum(|o| o.races.deadlocks))
            .with_extra("gave_up", sum(|o| o.races.gave_up))
            .with_extra("cut_off", sum(|o| o.cut_off))
            .with_extra(
                "overlapping_pairs",
                outs.iter().map(|o| o.overlapping_pairs).sum::<i64>(),
            )
            .with_extra("rows", outs.iter().map(|o| o.rows).sum::<i64>())
            .with_extra("filled_rounds", outs.iter().filter(|o| o.filled()).count())
            .with_extra("deadline_s", hot.deadline.as_secs_f64())
            .with_extra("spots", hot.spots)
            .with_extra("clients", hot.clients)
            .with_extra("rounds", outs.len())
            .with_extra("deadlock_timeout", deadlock_timeout.clone());
        result.rounds_ops_per_sec = outs.iter().map(|o| o.reserves_per_sec()).collect();
        write_result(&result)?;
    }
    // ANCHOR_END: bench_stadium
    println!(
        "the run took {:.0} s (load at most {:.0} s)",
        began.elapsed().as_secs_f64(),
        config.longest().as_secs_f64()
    );
    Ok(())
}

/// Adds the outcome counts of every round to `result`, prints it and writes it.
fn report_run(mut result: BenchResult, rounds: &[LoadRun]) -> Result<()> {
    let sum = |f: fn(&LoadRun) -> u64| rounds.iter().map(f).sum::<u64>();
    let ok = sum(|r| r.ok);
    anyhow::ensure!(ok > 0, "{}: no request succeeded", result.name);
    for (key, value) in [
        ("no_spot", sum(|r| r.no_spot)),
        ("conflicts", sum(|r| r.conflicts)),
        ("errors", sum(|r| r.errors)),
        ("cut_off", sum(|r| r.cut_off)),
        ("races_lost", sum(|r| r.races_lost)),
    ] {
        result = result.with_extra(key, value);
    }
    println!(
        "{:<20} {:>7.0}/s ratio {:?} p50 {:?} µs p99 {:?} µs",
        result.name,
        result.ops_per_sec.unwrap_or(0.0),
        result.ratio,
        result.p50_us,
        result.p99_us,
    );
    write_result(&result)?;
    Ok(())
}
