//! `cargo run -p inventory`: the inventory service on `127.0.0.1:8085`.
//!
//! Start-up, the `ADDR`/`PORT`/`RUST_LOG` convention and the shutdown on
//! SIGINT or SIGTERM come from the service block (`block_service`). Also
//! read: `DATABASE_URL` (PostgreSQL instead of the in-memory store;
//! `sql/schema.sql` is applied to an empty database), `NATS_URL` (with
//! `DATABASE_URL`: relay stock events to JetStream stream `INVENTORY`). A
//! demo SKU `DEMO-1` in warehouse `AMS-1` is created with 100 units on first
//! start; a sweeper expires lapsed holds every few seconds.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use block_service::{Service, Shutdown};
use inventory::domain::{Qty, Sku, StockKey, Warehouse};
use inventory::events::{Relay, ensure_stream};
use inventory::service::{AppState, Clock, SystemClock, router};
use inventory::store::{InventoryStore, MemoryStore, PgStore};
use tokio::task::JoinHandle;

/// This chapter's port (3000 is the book server's).
const DEFAULT_PORT: u16 = 8085;

/// How often lapsed holds are swept. Readers of the event stream see a
/// lapsed hold's units come back at most this much after its expiry; a
/// reserve does not wait for it (it reclaims lazily).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    block_service::main(DEFAULT_PORT, start)
}

async fn start(service: Service) -> Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let Some(url) = service.engines().database_url.clone() else {
        return run(service, AppState::new(MemoryStore::new(), clock), None).await;
    };
    let store =
        block_service::open_database(PgStore::connect(&url, 16), PgStore::ensure_schema).await?;
    let relay = match service.engines().nats_url.clone() {
        Some(nats) => {
            let client = async_nats::connect(&nats)
                .await
                .context("connecting to NATS_URL")?;
            let js = async_nats::jetstream::new(client);
            ensure_stream(&js, "INVENTORY", "inventory").await?;
            let relay = Relay::new(store.pool().clone(), js, "inventory");
            Some(tokio::spawn(relay_until(relay, service.shutdown())))
        }
        None => None,
    };
    run(service, AppState::new(store, clock), relay).await
}

/// Relays stock events until shutdown; a batch under way is finished first.
async fn relay_until(relay: Relay, shutdown: Shutdown) {
    while !shutdown.is_requested() {
        let pause = match relay.relay_once(500).await {
            Ok(0) => Duration::from_millis(20),
            Ok(_) => Duration::ZERO,
            Err(e) => {
                tracing::warn!(error = %e, "relay");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = shutdown.requested() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

async fn run<S: InventoryStore>(
    service: Service,
    state: AppState<S>,
    relay: Option<JoinHandle<()>>,
) -> Result<()> {
    let key = StockKey::new(Sku::parse("DEMO-1")?, Warehouse::parse("AMS-1")?);
    state.store.add_sku(&key.sku).await?;
    state.store.add_warehouse(&key.warehouse).await?;
    if state.store.stock(&key, state.clock.now()).await?.version == 0 {
        state
            .store
            .receive(
                uuid::Uuid::new_v4(),
                &key,
                Qty::new(100)?,
                state.clock.now(),
            )
            .await?;
    }
    let sweeper = state.clone();
    let sweeper = tokio::spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            match sweeper.store.expire_due(sweeper.clock.now(), 1_000).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "swept lapsed holds"),
                Err(e) => tracing::warn!(error = %e, "sweeper"),
            }
        }
    });
    service.serve(router(state)).await?;
    // The drain: the relay finishes the batch it is publishing (events not
    // yet relayed wait in the outbox table for the next start); each expire
    // of a sweep is one statement, so stopping it anywhere loses nothing.
    sweeper.abort();
    if let Some(relay) = relay {
        relay.await.context("the relay task")?;
    }
    Ok(())
}
