//! `cargo run -p parking-reservation`: the reservation service on `127.0.0.1:8084`.
//!
//! Environment (the book's convention, CONTRIBUTING.md): `ADDR` and `PORT`
//! (where to listen, default `127.0.0.1:8084`), `DATABASE_URL` (PostgreSQL
//! instead of the in-memory store; `sql/schema.sql` is applied to an empty
//! database first), `RUST_LOG` (log filter, default `info`). A demo lot is
//! created on first start; a sweeper expires lapsed holds and marks
//! no-shows every few seconds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use parking_reservation::clock::{Clock, SystemClock};
use parking_reservation::domain::{Location, SpotKind};
use parking_reservation::service::{AppState, serve};
use parking_reservation::store::{
    LevelLayout, LotLayout, MemoryStore, PgStore, ReservationStore, StoreError, Swept,
};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// This chapter's port (CONTRIBUTING.md lists one per chapter; 3000 is the book server's).
const DEFAULT_PORT: u16 = 8084;

// ANCHOR: sweep_every
/// How often lapsed holds and no-shows are swept. A lapsed hold keeps its
/// spot at most this much longer than its TTL.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
// ANCHOR_END: sweep_every

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
            run(listener, AppState::new(store, clock)).await
        }
        Err(_) => run(listener, AppState::new(MemoryStore::new(), clock)).await,
    }
}

// ANCHOR: run
async fn run<S: ReservationStore>(listener: TcpListener, state: AppState<S>) -> Result<()> {
    match state.store.create_lot(&demo_lot()).await {
        Ok(id) => tracing::info!(lot_id = id, "created the demo lot"),
        Err(StoreError::LotNameTaken(_)) => tracing::info!("the demo lot exists"),
        Err(e) => return Err(e.into()),
    }
    let sweeper = tokio::spawn(sweep(state.clone()));
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests in flight");
    };
    serve(listener, state, shutdown).await?;
    sweeper.abort();
    Ok(())
}
// ANCHOR_END: run

// ANCHOR: sweep
/// Applies the time-based transitions forever.
async fn sweep<S: ReservationStore>(state: AppState<S>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let now = state.clock.now();
        // A failed sweep is retried at the next tick; nothing is lost.
        match state.store.sweep(now).await {
            Ok(Some(s)) if s != Swept::default() => {
                tracing::info!(expired = s.expired, no_shows = s.no_shows, "swept");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweep failed"),
        }
    }
}
// ANCHOR_END: sweep

fn demo_lot() -> LotLayout {
    use SpotKind::*;
    LotLayout {
        name: "Demo lot".to_string(),
        // Beside a city's central station, for `GET /lots/near`.
        location: Location::new(52.5251, 13.3694).ok(),
        levels: vec![
            LevelLayout {
                level: 0,
                spots: vec![(Accessible, 4), (Ev, 6), (Compact, 10), (Regular, 20)],
            },
            LevelLayout {
                level: 1,
                spots: vec![(Compact, 10), (Regular, 30)],
            },
            LevelLayout {
                level: 2,
                spots: vec![(Regular, 20), (Large, 4)],
            },
        ],
    }
}
