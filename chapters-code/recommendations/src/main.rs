//! `cargo run -p recommendations`: the recommendations service on `127.0.0.1:8088`.
//!
//! Start-up, the `ADDR`/`PORT`/`RUST_LOG` convention and the shutdown on
//! SIGINT or SIGTERM come from the service block (`block_service`). The
//! binary generates the seeded world of `Config::TINY`, trains a model on
//! it (the offline job, run in-process for the demo) and loads the
//! world's training events into the in-memory store: user ids 1..=users,
//! item ids 1..=items. A user id beyond them gets the cold-start path.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use block_service::Service;
use recommendations::ann::versioned::Versioned;
use recommendations::candidates::two_tower::TrainConfig;
use recommendations::data::{Config, generate};
use recommendations::model::build;
use recommendations::service::{AppState, router};
use recommendations::store::{Interactions, MemoryStore};

/// This chapter's port (3000 is the book server's).
const DEFAULT_PORT: u16 = 8088;

fn main() -> ExitCode {
    block_service::main(DEFAULT_PORT, start)
}

async fn start(service: Service) -> Result<()> {
    let data = generate(Config::TINY);
    let model = build(&data, TrainConfig::BOOK, 1, 1);
    let store = Arc::new(MemoryStore::new());
    for (u, events) in data.train.iter().enumerate() {
        for e in events {
            store
                .record(u as i64 + 1, i64::from(e.item) + 1, e.kind)
                .await?;
        }
    }
    let state = AppState::new(Arc::new(Versioned::new(model)), store);
    service.serve(router(state)).await?;
    Ok(())
}
