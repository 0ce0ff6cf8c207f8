//! `cargo run -p parking-reservation`: the reservation service on `127.0.0.1:8084`.
//!
//! Start-up, the `ADDR`/`PORT`/`RUST_LOG` convention and the shutdown on
//! SIGINT or SIGTERM come from the service block (`block_service`). Also
//! read: `DATABASE_URL` (PostgreSQL instead of the in-memory store;
//! `sql/schema.sql` is applied to an empty database first). A demo lot is
//! created on first start; a sweeper expires lapsed holds and marks
//! no-shows every few seconds.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use block_service::Service;
use parking_reservation::clock::{Clock, SystemClock};
use parking_reservation::domain::{Location, SpotKind};
use parking_reservation::service::{AppState, router};
use parking_reservation::store::{
    LevelLayout, LotLayout, MemoryStore, PgStore, ReservationStore, StoreError, Swept,
};

/// This chapter's port (CONTRIBUTING.md lists one per chapter; 3000 is the book server's).
const DEFAULT_PORT: u16 = 8084;

// ANCHOR: sweep_every
/// How often lapsed holds and no-shows are swept. A lapsed hold keeps its
/// spot at most this much longer than its TTL.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
// ANCHOR_END: sweep_every

fn main() -> ExitCode {
    block_service::main(DEFAULT_PORT, start)
}

async fn start(service: Service) -> Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match service.engines().database_url.clone() {
        Some(url) => {
            let store =
                block_service::open_database(PgStore::connect(&url, 16), PgStore::ensure_schema)
                    .await?;
            run(service, AppState::new(store, clock)).await
        }
        None => run(service, AppState::new(MemoryStore::new(), clock)).await,
    }
}

// ANCHOR: run
async fn run<S: ReservationStore>(service: Service, state: AppState<S>) -> Result<()> {
    match state.store.create_lot(&demo_lot()).await {
        Ok(id) => tracing::info!(lot_id = id, "created the demo lot"),
        Err(StoreError::LotNameTaken(_)) => tracing::info!("the demo lot exists"),
        Err(e) => return Err(e.into()),
    }
    let sweeper = tokio::spawn(sweep(state.clone()));
    // Requests in flight finish (their transactions commit or roll back).
    service.serve(router(state)).await?;
    // A sweep is one transaction: stopping between ticks loses nothing.
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
