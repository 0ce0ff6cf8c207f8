//! `cargo run -p order-management`: the order service on `127.0.0.1:8083`.
//!
//! Start-up, the `ADDR`/`PORT`/`RUST_LOG` convention and the shutdown on
//! SIGINT or SIGTERM come from the service block (`block_service`). Also
//! read: `DATABASE_URL` (PostgreSQL instead of the in-memory store:
//! `sql/schema.sql` is applied to an empty database, demo stock is added,
//! and `place` runs the checkout saga, with the saga timer ticking every
//! second); `NATS_URL` (with `DATABASE_URL`: run the outbox relay to
//! JetStream, woken by LISTEN/NOTIFY, and an hourly purge of the rows it
//! published more than a day ago; the service starts without the broker and
//! the relay keeps trying to reach it).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use block_service::Service;
use order_management::relay::{Wake, connect_and_run};
use order_management::saga::Orchestrator;
use order_management::service::{AppState, Checkout, router};
use order_management::store::{MemoryStore, OrderStore, PgStore};
use tokio::task::JoinHandle;

/// This chapter's port (CONTRIBUTING.md lists one per chapter; 3000 is the book server's).
const DEFAULT_PORT: u16 = 8083;

fn main() -> ExitCode {
    block_service::main(DEFAULT_PORT, start)
}

async fn start(service: Service) -> Result<()> {
    let Some(url) = service.engines().database_url.clone() else {
        return run(service, MemoryStore::new(), Checkout::Instant, None).await;
    };
    let store =
        block_service::open_database(PgStore::connect(&url, 16), PgStore::ensure_schema).await?;
    sqlx::query(
        "INSERT INTO stock (sku, on_hand) VALUES ('BOOK-1', 1000), ('MUG-2', 1000)
         ON CONFLICT (sku) DO NOTHING",
    )
    .execute(store.pool())
    .await?;
    let orchestrator = Arc::new(Orchestrator::new(store.pool().clone()));
    // Sagas a previous process left half-way are resumed in the
    // background: the service answers meanwhile, and a saga that fails is
    // logged and left to the timer.
    tokio::spawn({
        let orchestrator = Arc::clone(&orchestrator);
        async move {
            match orchestrator.recover().await {
                Ok(ran) => {
                    for (saga, status) in ran {
                        tracing::info!(%saga, ?status, "recovered a saga");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recovery could not list the sagas; the timer resumes them")
                }
            }
        }
    });
    tokio::spawn(purge_keys(store.pool().clone()));
    // The durable timer: every second, resume the sagas whose `wake_at`
    // has passed (stuck runs after their backoff, vanished coordinators).
    tokio::spawn({
        let orchestrator = Arc::clone(&orchestrator);
        let stop = service.shutdown().watch();
        async move { orchestrator.run_timer(SAGA_TICK, stop).await }
    });
    let relay = service.engines().nats_url.clone().map(|nats| {
        // The relay stops when shutdown is requested, after the batch it
        // holds. It does not need the broker to start: it keeps trying, and
        // the events wait in the outbox meanwhile.
        let stop = service.shutdown().watch();
        let pool = store.pool().clone();
        let purge = tokio::spawn(purge_outbox(store.pool().clone()));
        tokio::spawn(async move {
            let wake = Wake::Notify(Duration::from_secs(1));
            let total = connect_and_run(pool, &nats, "ORDERS", "orders", wake, stop).await;
            // Each batch of the purge commits on its own: cutting it off loses nothing.
            purge.abort();
            tracing::info!(published = total.published, "the outbox relay stopped");
        })
    });
    run(service, store, Checkout::Saga(orchestrator), relay).await
}

/// How often the saga timer looks for due sagas.
const SAGA_TICK: Duration = Duration::from_secs(1);

/// How long a published outbox row is kept: a day of messages to inspect
/// or re-publish by hand; the relay itself never reads a published row,
/// and `order_events` keeps the history.
const OUTBOX_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// How often the published rows past the retention are deleted.
const OUTBOX_PURGE_EVERY: Duration = Duration::from_secs(60 * 60);
/// Rows per `DELETE`, so that no statement holds its locks for long.
const OUTBOX_PURGE_BATCH: i64 = 10_000;

/// How long a finished Idempotency-Key is kept: a retry within a day
/// replays its order; a later one with the same key creates a new order.
const KEY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Deletes finished idempotency keys older than [`KEY_RETENTION`] every
/// [`OUTBOX_PURGE_EVERY`] (the block's purge: batched, unfinished keys kept).
async fn purge_keys(pool: sqlx::PgPool) {
    let mut tick = tokio::time::interval(OUTBOX_PURGE_EVERY);
    loop {
        tick.tick().await;
        let purged = match pool.acquire().await {
            Ok(mut conn) => block_idempotency::pg::purge(&mut conn, KEY_RETENTION)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match purged {
            Ok(p) if p.deleted > 0 || p.more_left => {
                tracing::info!(
                    deleted = p.deleted,
                    more_left = p.more_left,
                    "purged idempotency keys"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "idempotency key purge failed"),
        }
    }
}

/// Deletes published outbox rows older than [`OUTBOX_RETENTION`], every
/// [`OUTBOX_PURGE_EVERY`], batch after batch until a batch is short.
/// Unpublished rows are never deleted (the block's rule).
async fn purge_outbox(pool: sqlx::PgPool) {
    let mut tick = tokio::time::interval(OUTBOX_PURGE_EVERY);
    loop {
        tick.tick().await;
        let mut deleted = 0;
        loop {
            match block_outbox::purge_published(&pool, OUTBOX_RETENTION, OUTBOX_PURGE_BATCH).await {
                Ok(n) => {
                    deleted += n;
                    if n < OUTBOX_PURGE_BATCH.unsigned_abs() {
                        break;
                    }
                }
                // Retried at the next tick; an old row only costs space meanwhile.
                Err(e) => {
                    tracing::warn!(error = %e, "outbox purge failed");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "purged published outbox rows");
        }
    }
}

async fn run<S: OrderStore>(
    service: Service,
    store: S,
    checkout: Checkout,
    relay: Option<JoinHandle<()>>,
) -> Result<()> {
    let state = AppState {
        store: Arc::new(store),
        checkout,
    };
    service.serve(router(state)).await?;
    // The drain: wait for the relay to finish its batch; what it has not
    // published waits in the outbox for the next start.
    if let Some(relay) = relay {
        relay.await.context("the relay task")?;
    }
    Ok(())
}
