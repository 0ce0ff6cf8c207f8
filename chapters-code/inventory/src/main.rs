//! `cargo run -p inventory`: the inventory service on `127.0.0.1:8085`.
//!
//! Environment (the book's convention): `ADDR` and `PORT` (default
//! `127.0.0.1:8085`), `DATABASE_URL` (PostgreSQL instead of the in-memory
//! store; `sql/schema.sql` is applied to an empty database), `NATS_URL`
//! (with `DATABASE_URL`: relay stock events to JetStream stream
//! `INVENTORY`), `RUST_LOG` (default `info`). A demo SKU `DEMO-1` in
//! warehouse `AMS-1` is created with 100 units on first start; a sweeper
//! expires lapsed holds every few seconds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use inventory::domain::{Qty, Sku, StockKey, Warehouse};
use inventory::events::{Relay, ensure_stream};
use inventory::service::{AppState, Clock, SystemClock, router};
use inventory::store::{InventoryStore, MemoryStore, PgStore};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// This chapter's port (3000 is the book server's).
const DEFAULT_PORT: u16 = 8085;

/// How often lapsed holds are swept. Readers of the event stream see a
/// lapsed hold's units come back at most this much after its expiry; a
/// reserve does not wait for it (it reclaims lazily).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let host = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1".to_string());
    let port = std::env::var("PORT").unwrap_or_else(|_| DEFAULT_PORT.to_string());
    let addr = format!("{host}:{port}");
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let store = PgStore::connect(&url, 16)
                .await
                .context("connecting to DATABASE_URL")?;
            if store.ensure_schema().await? {
                tracing::info!("applied sql/schema.sql");
            }
            if let Ok(nats) = std::env::var("NATS_URL") {
                let client = async_nats::connect(&nats)
                    .await
                    .context("connecting to NATS_URL")?;
                let js = async_nats::jetstream::new(client);
                ensure_stream(&js, "INVENTORY", "inventory").await?;
                let relay = Relay::new(store.pool().clone(), js, "inventory");
                tokio::spawn(async move {
                    loop {
                        match relay.relay_once(500).await {
                            Ok(0) => tokio::time::sleep(Duration::from_millis(20)).await,
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "relay");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    }
                });
            }
            run(listener, AppState::new(store, clock)).await
        }
        Err(_) => run(listener, AppState::new(MemoryStore::new(), clock)).await,
    }
}

async fn run<S: InventoryStore>(listener: TcpListener, state: AppState<S>) -> Result<()> {
    let key = StockKey::new(Sku::parse("DEMO-1")?, Warehouse::parse("AMS-1")?);
    state.store.add_sku(&key.sku).await?;
    state.store.add_warehouse(&key.warehouse).await?;
    if state.store.stock(&key, state.clock.now()).await?.version == 0 {
        state
            .store
            .receive(&key, Qty::new(100)?, state.clock.now())
            .await?;
    }
    let sweeper = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            match sweeper.store.expire_due(sweeper.clock.now(), 1_000).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "swept lapsed holds"),
                Err(e) => tracing::warn!(error = %e, "sweeper"),
            }
        }
    });
    tracing::info!(addr = %listener.local_addr()?, "inventory listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
