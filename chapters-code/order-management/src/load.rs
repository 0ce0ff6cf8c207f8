//! The measured runs behind the chapter's performance page, as library
//! code so the bench (`benches/orders.rs`) and a small test share it.
//!
//! - [`transitions`]: `workers` tasks, each owning one order, apply
//!   `place` and `fail_payment` alternately through [`PgStore::apply`] (a
//!   loop of real transitions: load, guarded UPDATE, event, outbox row).
//! - [`ceiling`]: the same tasks run a plain single-row
//!   `UPDATE orders SET updated_at = now() WHERE id = $1` through the same pool.
//! - [`relay_lag`]: transitions offered on a fixed schedule (open loop)
//!   while a relay publishes to JetStream; lag is `published_at -
//!   created_at` of each outbox row, both from the database's clock.
//! - [`replay`]: read every event of many orders in one query and fold them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{Command, Event, LineRequest, NewOrder, Order};
use crate::relay::{Relay, Wake};
use crate::store::{OrderStore, PgStore};

/// What a closed-loop run measured.
pub struct Run {
    /// Operations that succeeded.
    pub ok: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Wall time of the measured part.
    pub elapsed: Duration,
    /// Latency of each operation, in microseconds.
    pub latency_us: Histogram<u64>,
}

/// The order every load run uses: two lines.
pub fn load_order() -> NewOrder {
    NewOrder {
        customer_id: Uuid::from_u128(7),
        lines: vec![
            LineRequest {
                sku: "BOOK-1".into(),
                quantity: 2,
                unit_price_cents: 1_250,
            },
            LineRequest {
                sku: "MUG-2".into(),
                quantity: 1,
                unit_price_cents: 900,
            },
        ],
    }
}

/// Creates one order per worker; returns their ids.
pub async fn orders_for(store: &PgStore, workers: u32) -> Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    for _ in 0..workers {
        let id = Uuid::new_v4();
        store.create(id, &load_order()).await?;
        ids.push(id);
    }
    Ok(ids)
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")
}

/// Runs `op(worker, i)` in a closed loop on `workers` tasks for `duration`.
async fn closed_loop<F, Fut>(workers: u32, duration: Duration, op: F) -> Result<Run>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..workers as usize)
        .map(|w| {
            let op = Arc::clone(&op);
            tokio::spawn(async move {
                let mut h = histogram()?;
                let (mut ok, mut errors, mut i) = (0u64, 0u64, 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if op(w, i).await {
                        ok += 1;
                        h.saturating_record(t.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                    i += 1;
                }
                Ok::<_, anyhow::Error>((ok, errors, h))
            })
        })
        .collect();
    let mut run = Run {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: histogram()?,
    };
    for t in tasks {
        let (ok, errors, h) = t.await??;
        run.ok += ok;
        run.errors += errors;
        run.latency_us.add(&h)?;
    }
    run.elapsed = start.elapsed();
    Ok(run)
}

// ANCHOR: transitions
/// Transitions through the store: `place` and `fail_payment` alternately on
/// each worker's own order, so no two workers contend for a row.
pub async fn transitions(store: &PgStore, orders: &[Uuid], duration: Duration) -> Result<Run> {
    let mut versions = Vec::new();
    for id in orders {
        versions.push(store.get(*id).await?.version);
    }
    let versions: Arc<Vec<std::sync::atomic::AtomicI64>> = Arc::new(
        versions
            .into_iter()
            .map(std::sync::atomic::AtomicI64::new)
            .collect(),
    );
    let (store, orders) = (store.clone(), orders.to_vec());
    let workers = u32::try_from(orders.len())?;
    closed_loop(workers, duration, move |w, _| {
        let (store, id, versions) = (store.clone(), orders[w], Arc::clone(&versions));
        async move {
            use std::sync::atomic::Ordering;
            let v = versions[w].load(Ordering::Relaxed);
            // Odd versions are `created` or `payment_failed`, even ones `pending`.
            let command = if v % 2 == 1 {
                Command::Place
            } else {
                Command::FailPayment {
                    reason: "load".into(),
                }
            };
            match store.apply(id, v, &command).await {
                Ok(o) => {
                    versions[w].store(o.version, Ordering::Relaxed);
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await
}
// ANCHOR_END: transitions

// ANCHOR: checkouts
/// The saga path end to end: each operation creates an order and checks
/// it out (`start`, then every step and the saga row's writes, on the
/// run's own connection) until the saga completes. `stock` must hold
/// enough of [`load_order`]'s SKUs for the whole run. An operation that
/// does not end `completed` counts as an error.
pub async fn checkouts(
    store: &PgStore,
    orchestrator: Arc<crate::saga::Orchestrator>,
    workers: u32,
    duration: Duration,
) -> Result<Run> {
    let store = store.clone();
    closed_loop(workers, duration, move |_, _| {
        let (store, o) = (store.clone(), Arc::clone(&orchestrator));
        async move {
            let id = Uuid::new_v4();
            if store.create(id, &load_order()).await.is_err() {
                return false;
            }
            matches!(
                o.checkout(id, 1).await,
                Ok((_, crate::saga::SagaStatus::Completed))
            )
        }
    })
    .await
}
// ANCHOR_END: checkouts

// ANCHOR: ceiling
/// The ceiling: one plain single-row UPDATE per operation, same pool, same workers.
pub async fn ceiling(pool: &PgPool, orders: &[Uuid], duration: Duration) -> Result<Run> {
    let (pool, orders) = (pool.clone(), orders.to_vec());
    let workers = u32::try_from(orders.len())?;
    closed_loop(workers, duration, move |w, _| {
        let (pool, id) = (pool.clone(), orders[w]);
        async move {
            sqlx::query("UPDATE orders SET updated_at = now() WHERE id = $1")
                .bind(id)
                .execute(&pool)
                .await
                .is_ok()
        }
    })
    .await
}
// ANCHOR_END: ceiling

/// Lag percentiles of a relay run, in microseconds, from the outbox's own timestamps.
pub struct Lag {
    /// Transitions offered: `rate` per second for the run's duration.
    pub offered: u64,
    /// Messages published during the run.
    pub messages: u64,
    /// Transitions that failed.
    pub errors: u64,
    /// Median lag.
    pub p50_us: f64,
    /// 99th-percentile lag.
    pub p99_us: f64,
    /// Transitions per second that committed, from the first scheduled start
    /// to the last commit (below the offered rate when the database fell behind).
    pub committed_rate: f64,
}

// ANCHOR: relay_lag
/// Offers `rate` transitions per second for `duration` while `relay` runs
/// with `wake`; returns the lag of every message. The load is open-loop:
/// transition `i` starts at `i / rate` seconds whether or not earlier ones
/// have finished, each on an order of its own (`place` on a fresh order),
/// so every relay under test is offered the same events on the same
/// schedule, however fast it or the database is.
pub async fn relay_lag(
    store: &PgStore,
    relay: Arc<Relay>,
    wake: Wake,
    rate: u32,
    duration: Duration,
) -> Result<Lag> {
    anyhow::ensure!(rate > 0, "a relay run needs a positive rate");
    let pool = store.pool().clone();
    let offered = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let orders = orders_for(store, u32::try_from(offered)?).await?;
    // The orders' `created` events are not part of the run.
    sqlx::query("UPDATE outbox SET published_at = clock_timestamp() WHERE published_at IS NULL")
        .execute(&pool)
        .await?;
    let since: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&pool)
        .await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(async move { relay.run(wake, stop_rx).await });
    let period = Duration::from_secs(1) / rate;
    let start = tokio::time::Instant::now();
    let mut producers = Vec::with_capacity(orders.len());
    for (i, id) in orders.into_iter().enumerate() {
        tokio::time::sleep_until(start + period * u32::try_from(i)?).await;
        let store = store.clone();
        producers.push(tokio::spawn(async move {
            store.apply(id, 1, &Command::Place).await.is_ok()
        }));
    }
    let mut errors = 0u64;
    for p in producers {
        if !p.await? {
            errors += 1;
        }
    }
    let produced_in = start.elapsed();
    // Let the relay catch up, then stop it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await?;
        if left == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    running.await??;
    let (messages, p50, p99): (i64, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(*),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - created_at)),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - created_at))
           FROM outbox WHERE created_at >= $1 AND published_at IS NOT NULL",
    )
    .bind(since)
    .fetch_one(&pool)
    .await?;
    Ok(Lag {
        offered,
        messages: u64::try_from(messages)?,
        errors,
        p50_us: p50.unwrap_or(0.0) * 1e6,
        p99_us: p99.unwrap_or(0.0) * 1e6,
        committed_rate: (offered - errors) as f64 / produced_in.as_secs_f64(),
    })
}
// ANCHOR_END: relay_lag

/// What a replay measured.
pub struct Replay {
    /// Orders folded.
    pub orders: u64,
    /// Events read and folded.
    pub events: u64,
    /// Time to read them (one query) and fold them.
    pub elapsed: Duration,
}

// ANCHOR: replay
/// Reads every event of every order in version order and folds each order;
/// checks every fold against the stored row.
pub async fn replay(store: &PgStore) -> Result<Replay> {
    let start = Instant::now();
    let rows: Vec<(Uuid, serde_json::Value)> =
        sqlx::query_as("SELECT order_id, payload FROM order_events ORDER BY order_id, version")
            .fetch_all(store.pool())
            .await?;
    let mut folded: Vec<Order> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut current: Option<Uuid> = None;
    let n = rows.len() as u64;
    for (id, payload) in rows {
        if current != Some(id) {
            if let Some(prev) = current {
                folded.push(Order::fold(prev, &events)?);
            }
            events.clear();
            current = Some(id);
        }
        events.push(serde_json::from_value(payload)?);
    }
    if let Some(prev) = current {
        folded.push(Order::fold(prev, &events)?);
    }
    let elapsed = start.elapsed();
    for o in folded.iter().take(100) {
        anyhow::ensure!(
            store.get(o.id).await? == *o,
            "order {} folds differently",
            o.id
        );
    }
    Ok(Replay {
        orders: folded.len() as u64,
        events: n,
        elapsed,
    })
}
// ANCHOR_END: replay
