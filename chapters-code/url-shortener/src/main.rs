//! `cargo run -p url-shortener`: the shortener on `127.0.0.1:8080`.
//!
//! Environment: `ADDR` and `PORT` (where to listen), `BASE_URL` (public
//! address, default `http://ADDR:PORT`), `DATABASE_URL` (PostgreSQL instead
//! of the in-memory store; the schema is applied at start), `REDIS_URL`
//! (adds the Redis cache layer), `SCRAMBLE_KEY` (64-bit hex key of the
//! code scrambler; required with `DATABASE_URL`, since the demo key is
//! public), `RUST_LOG` (log filter, default `info`).

use anyhow::Context;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use url_shortener::store::PgStore;
use url_shortener::{App, Config};

/// Connections per process: redirects mostly hit the caches, and the
/// database's connection budget is shared by the whole fleet.
const PG_POOL_SIZE: u32 = 16;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1".to_string());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_string());
    let listener = TcpListener::bind(format!("{addr}:{port}"))
        .await
        .with_context(|| format!("binding {addr}:{port}"))?;
    let config = Config::from_env(&format!("http://{}", listener.local_addr()?))?;

    // ANCHOR: main
    match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let store = PgStore::connect(&url, PG_POOL_SIZE)
                .await
                .context("connecting to PostgreSQL")?;
            store.migrate().await.context("applying the schema")?;
            tracing::info!(addr = %listener.local_addr()?, redis = config.redis.is_some(), "serving from PostgreSQL");
            App::postgres(store, config)?
                .serve(listener, shutdown_signal())
                .await?;
        }
        Err(_) => {
            tracing::info!(addr = %listener.local_addr()?, redis = config.redis.is_some(), "serving from memory");
            App::in_memory(config)?
                .serve(listener, shutdown_signal())
                .await?;
        }
    }
    tracing::info!("stopped; clicks flushed");
    Ok(())
    // ANCHOR_END: main
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM (what container orchestrators
/// send), which starts the graceful shutdown.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            // Without a handler we cannot shut down gracefully on this signal; keep serving.
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight, then flushing clicks");
}
