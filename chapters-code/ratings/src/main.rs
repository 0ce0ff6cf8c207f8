//! `cargo run -p ratings`: the ratings service on `127.0.0.1:8086`.
//!
//! Start-up, the `ADDR`/`PORT`/`RUST_LOG` convention and the shutdown on
//! SIGINT or SIGTERM come from the service block (`block_service`). Also
//! read: `DATABASE_URL` (PostgreSQL instead of the in-memory store;
//! `sql/schema.sql` is applied to an empty database). A demo product 1 in
//! category `kitchen`, a buyer 1 with an order of it, are created at start.

use std::process::ExitCode;

use anyhow::Result;
use block_service::Service;
use chrono::{TimeDelta, Utc};
use ratings::domain::{ProductId, UserId};
use ratings::service::{AppState, router};
use ratings::store::{MemoryStore, PgStore, ReviewStore};

/// This chapter's port (3000 is the book server's).
const DEFAULT_PORT: u16 = 8086;

fn main() -> ExitCode {
    block_service::main(DEFAULT_PORT, start)
}

async fn start(service: Service) -> Result<()> {
    match service.engines().database_url.clone() {
        None => run(service, MemoryStore::new()).await,
        Some(url) => {
            let store =
                block_service::open_database(PgStore::connect(&url, 16), PgStore::ensure_schema)
                    .await?;
            run(service, store).await
        }
    }
}

async fn run<S: ReviewStore>(service: Service, store: S) -> Result<()> {
    let now = Utc::now();
    store
        .add_user(UserId(1), now - TimeDelta::days(365))
        .await?;
    store.add_product(ProductId(1), "kitchen").await?;
    if store.review_of(UserId(1), ProductId(1)).await.is_err() {
        store.record_order(UserId(1), ProductId(1), now).await?;
    }
    service.serve(router(AppState::new(store))).await?;
    Ok(())
}
