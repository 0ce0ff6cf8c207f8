//! `cargo run -p logging`: the log store and its query API on `127.0.0.1:8087`.
//!
//! Start-up, `ADDR`/`PORT`/`RUST_LOG` and the shutdown on SIGINT or SIGTERM
//! come from the service block (`block_service`). Also read: `LOG_DIR`, the
//! store's directory (default: `./logging-data`). Retention runs every minute.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use block_service::Service;
use logging::service::{AppState, router, system_clock};
use logging::store::{LogStore, StoreConfig};

// ANCHOR: config
/// This chapter's port (3000 is the book server's).
const DEFAULT_PORT: u16 = 8087;

/// How often retention and the size cap are enforced.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
// ANCHOR_END: config

fn main() -> ExitCode {
    block_service::main(DEFAULT_PORT, start)
}

async fn start(service: Service) -> Result<()> {
    let dir: PathBuf = block_service::var_or("LOG_DIR", PathBuf::from("logging-data"))?;
    let (store, report) = tokio::task::spawn_blocking(move || {
        LogStore::open(&dir, StoreConfig::default()).context("opening LOG_DIR")
    })
    .await??;
    tracing::info!(?report, "store opened");
    let state = AppState::new(store, system_clock());
    let keeper = state.clone();
    let retention = tokio::spawn(async move {
        loop {
            tokio::time::sleep(RETENTION_EVERY).await;
            let store = keeper.store.clone();
            let now = (keeper.clock)();
            let r = tokio::task::spawn_blocking(move || {
                let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
                s.enforce_retention(now)
            })
            .await;
            match r {
                Ok(Ok(dropped)) if !dropped.is_empty() => {
                    tracing::info!(partitions = dropped.len(), "retention dropped partitions");
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "retention"),
                Err(e) => tracing::warn!(error = %e, "retention task"),
            }
        }
    });
    service.serve(router(state)).await?;
    // Every push is durable when answered; stopping the retention loop
    // anywhere leaves at worst a partition to drop on the next start.
    retention.abort();
    Ok(())
}
