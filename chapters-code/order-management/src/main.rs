//! `cargo run -p order-management`: the order service on `127.0.0.1:8083`.
//!
//! Environment (the book's convention, CONTRIBUTING.md): `ADDR` and `PORT`
//! (default `127.0.0.1:8083`); `DATABASE_URL` (PostgreSQL instead of the
//! in-memory store: `sql/schema.sql` is applied to an empty database, demo
//! stock is added, and `place` runs the checkout saga); `NATS_URL` (with
//! `DATABASE_URL`: run the outbox relay to JetStream, woken by
//! LISTEN/NOTIFY); `RUST_LOG` (default `info`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use order_management::relay::{Broker, Relay, Wake};
use order_management::saga::Orchestrator;
use order_management::service::{AppState, Checkout, serve};
use order_management::store::{MemoryStore, OrderStore, PgStore};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// This chapter's port (CONTRIBUTING.md lists one per chapter; 3000 is the book server's).
const DEFAULT_PORT: u16 = 8083;

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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
    };
    match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let store = PgStore::connect(&url, 16)
                .await
                .context("connecting to DATABASE_URL")?;
            if store.ensure_schema().await? {
                tracing::info!("applied sql/schema.sql");
            }
            sqlx::query(
                "INSERT INTO stock (sku, on_hand) VALUES ('BOOK-1', 1000), ('MUG-2', 1000)
                 ON CONFLICT (sku) DO NOTHING",
            )
            .execute(store.pool())
            .await?;
            let orchestrator = Arc::new(Orchestrator::new(store.pool().clone()));
            // Sagas a previous process left half-way are finished first.
            for (saga, status) in orchestrator.recover().await? {
                tracing::info!(%saga, ?status, "recovered a saga");
            }
            if let Ok(nats) = std::env::var("NATS_URL") {
                let broker = Broker::connect(&nats, "ORDERS", "orders")
                    .await
                    .context("connecting to NATS_URL")?;
                let relay = Relay::new(store.pool().clone(), broker);
                tokio::spawn(async move {
                    if let Err(e) = relay
                        .run(Wake::Notify(Duration::from_secs(1)), stop_rx)
                        .await
                    {
                        tracing::error!(error = %e, "the outbox relay stopped");
                    }
                });
            }
            run(listener, store, Checkout::Saga(orchestrator), shutdown).await
        }
        Err(_) => run(listener, MemoryStore::new(), Checkout::Instant, shutdown).await,
    }
}

async fn run<S: OrderStore>(
    listener: TcpListener,
    store: S,
    checkout: Checkout,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let state = AppState {
        store: Arc::new(store),
        checkout,
    };
    serve(listener, state, shutdown).await?;
    Ok(())
}
