//! What the idempotency layer adds to a write, on the local PostgreSQL.
//!
//! `cargo xtask bench-report blocks/idempotency` runs this. Eight clients
//! write at once, each write a row of an `effects` table, in four ways
//! measured interleaved in rounds (`bookkit::rounds`): the bare write (the
//! ceiling), the write with a fresh key claimed and finished in its own
//! transaction, the same in two transactions (claim committed first, as a
//! request with a foreign call between its phases does), and a retry that
//! finds its key finished and replays the answer. Without PostgreSQL it
//! prints a `SKIPPED:` line and exits 0 (it fails under `SDB_REQUIRE_SERVICES=1`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use block_idempotency::book::{CLIENTS, SLUG, WORKLOADS};
use block_idempotency::{
    Claimed, DEFAULT_LEASE, FinalAnswer, Fingerprint, IdempotencyKey, KeyScope, pg,
};
use bookkit::ResultKind;
use bookkit::results::write_result;
use bookkit::rounds::{Plan, RoundStats, Workload, interleave};
use hdrhistogram::Histogram;
use sqlx::PgPool;

const WARMUP: Duration = Duration::from_millis(300);
const PLAN: Plan = Plan {
    rounds: 5,
    round: Duration::from_secs(2),
};
/// Finished keys a replay round picks from.
const REPLAY_KEYS: u64 = 1_000;

fn main() -> ExitCode {
    bookkit::bench_main(run)
}

fn scope(key: &str) -> Result<KeyScope> {
    Ok(KeyScope {
        account: "acct-1".into(),
        endpoint: "POST /writes",
        key: IdempotencyKey::parse(key.as_bytes())?,
    })
}

fn print_of(n: u64) -> Fingerprint {
    Fingerprint::of("POST", "/writes", "acct-1", &n.to_be_bytes())
}

async fn write(tx: &mut sqlx::PgConnection, n: u64) -> Result<()> {
    sqlx::query("INSERT INTO effects (n, body) VALUES ($1, $2)")
        .bind(i64::try_from(n)?)
        .bind(serde_json::json!({ "n": n, "what": "a write the layer guards" }))
        .execute(tx)
        .await?;
    Ok(())
}

fn answer(n: u64) -> FinalAnswer {
    FinalAnswer {
        status: 201,
        body: serde_json::json!({ "n": n }),
    }
}

// ANCHOR: ops
/// One operation of workload `which`, with the operation's number `n`.
async fn op(pool: &PgPool, which: usize, n: u64, run: u64) -> Result<()> {
    let key = format!("k-{run}-{n}");
    match which {
        // The ceiling: the same write, no key.
        0 => {
            let mut tx = pool.begin().await?;
            write(&mut tx, n).await?;
            tx.commit().await?;
        }
        // Claim, write and finish in one transaction.
        1 => {
            let mut tx = pool.begin().await?;
            let Claimed::New(lock) =
                pg::claim(&mut tx, &scope(&key)?, &print_of(n), DEFAULT_LEASE).await?
            else {
                bail!("a fresh key was not new");
            };
            write(&mut tx, n).await?;
            pg::finish(&mut tx, lock, &answer(n)).await?;
            tx.commit().await?;
        }
        // Claim committed first, then write and finish in a second transaction.
        2 => {
            let mut tx = pool.begin().await?;
            let Claimed::New(lock) =
                pg::claim(&mut tx, &scope(&key)?, &print_of(n), DEFAULT_LEASE).await?
            else {
                bail!("a fresh key was not new");
            };
            tx.commit().await?;
            let mut tx = pool.begin().await?;
            write(&mut tx, n).await?;
            pg::finish(&mut tx, lock, &answer(n)).await?;
            tx.commit().await?;
        }
        // A retry of a finished key: the claim replays its answer.
        _ => {
            let i = n % REPLAY_KEYS;
            let mut tx = pool.begin().await?;
            let claimed = pg::claim(
                &mut tx,
                &scope(&format!("replay-{i}"))?,
                &print_of(i),
                DEFAULT_LEASE,
            )
            .await?;
            tx.commit().await?;
            if !matches!(claimed, Claimed::Replay(_)) {
                bail!("a finished key did not replay");
            }
        }
    }
    Ok(())
}
// ANCHOR_END: ops

/// Runs `which` with [`CLIENTS`] clients for `warmup` then `measure`.
async fn load(pool: &PgPool, which: usize, run: u64, measure: Duration) -> Result<RoundStats> {
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measured_from = start + WARMUP;
    let until = measured_from + measure;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (pool, counter) = (pool.clone(), Arc::clone(&counter));
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3)?;
            let (mut ops, mut errors) = (0u64, 0u64);
            loop {
                let t = Instant::now();
                if t >= until {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let ok = op(&pool, which, n, run).await.is_ok();
                if t >= measured_from {
                    ops += 1;
                    errors += u64::from(!ok);
                    hist.record(
                        u64::try_from(t.elapsed().as_micros())
                            .unwrap_or(u64::MAX)
                            .max(1),
                    )?;
                }
            }
            anyhow::Ok((ops, errors, hist))
        }));
    }
    let mut stats = RoundStats {
        ops: 0,
        errors: 0,
        elapsed: measure,
        latency_us: Histogram::new(3)?,
    };
    for t in tasks {
        let (ops, errors, hist) = t.await??;
        stats.ops += ops;
        stats.errors += errors;
        stats.latency_us.add(&hist)?;
    }
    Ok(stats)
}

async fn run() -> Result<()> {
    let table = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/keys.sql");
    let Some(db) = testkit::postgres(Some(&table)).await else {
        return Ok(());
    };
    db.apply_sql("CREATE TABLE effects (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n bigint NOT NULL, body jsonb NOT NULL)")
        .await
        .context("effects table")?;
    let pool = db.pool_with(CLIENTS).await;
    // The keys a replay finds finished.
    for i in 0..REPLAY_KEYS {
        let mut tx = pool.begin().await?;
        let Claimed::New(lock) = pg::claim(
            &mut tx,
            &scope(&format!("replay-{i}"))?,
            &print_of(i),
            DEFAULT_LEASE,
        )
        .await?
        else {
            bail!("seeding replay keys");
        };
        pg::finish(&mut tx, lock, &answer(i)).await?;
        tx.commit().await?;
    }
    let workloads: Vec<Workload> = WORKLOADS
        .iter()
        .map(|(name, _)| Workload {
            name: (*name).into(),
            concurrency: CLIENTS,
        })
        .collect();
    let handle = tokio::runtime::Handle::current();
    let mut run_no = 0u64;
    let results = tokio::task::block_in_place(|| {
        interleave(
            SLUG,
            ResultKind::Load,
            &PLAN,
            &workloads[0],
            &workloads[1..],
            |i, round| {
                run_no += 1;
                handle.block_on(load(&pool, i, run_no, round))
            },
        )
    })?;
    for r in &results {
        println!(
            "{:<18} {:>8.0}/s p50 {:>7.0} µs p99 {:>7.0} µs ratio {:?}",
            r.name,
            r.ops_per_sec.unwrap_or(0.0),
            r.p50_us.unwrap_or(0.0),
            r.p99_us.unwrap_or(0.0),
            r.ratio.map(|s| s.median)
        );
        write_result(r)?;
    }
    Ok(())
}
