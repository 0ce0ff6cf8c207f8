//! The stadium case: everyone wants the same lot, kind and hours at once.
//!
//! A concert car park opens its bookings: `clients` drivers' apps, released
//! together, each send reserve requests for the same evening until the lot
//! answers "full". Every request prefers the same spot (the one nearest the
//! ground floor), so this is the worst case of the reserve path's race, and
//! the case where the three [`ReservePath`]s differ. [`run`] plays it on one
//! lot of a fresh database and reports what the chapter compares: reserves
//! per second, lost races, deadlocks (SQLSTATE 40P01) and give-ups, and,
//! as the proof that none of that cost correctness, that the lot ended
//! exactly full with no two live reservations overlapping.
//!
//! `benches/reserve.rs` runs it at PostgreSQL's default `deadlock_timeout`;
//! the test `every_reserve_path_fills_a_hot_lot_exactly` runs a small
//! version.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::cutoff;
use crate::domain::{Plate, ReserveRequest, SLOT, SpotKind, TimeRange, ceil_to_slot};
use crate::idempotency::IdempotencyKey;
use crate::store::{
    LevelLayout, LotLayout, PgStore, RaceStats, ReservationStore, ReservePath, StoreError,
};

/// The shape of a stadium run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stadium {
    /// Regular spots in the lot, spread over four levels.
    pub spots: u32,
    /// Drivers' apps sending requests at once, each on its own connection.
    pub clients: u32,
    /// No request is sent after this long, and one still in flight then is
    /// cut off: a path that has not filled the lot by then is reported with
    /// what it filled.
    #[serde(with = "secs")]
    pub deadline: Duration,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?.max(0.0)))
    }
}

/// What a stadium run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StadiumOutcome {
    /// The path that ran.
    pub path: ReservePath,
    /// The shape.
    pub shape: Stadium,
    /// Requests that got a spot.
    pub reserved: u64,
    /// Requests answered "full" (`NoSpotAvailable`): how each client stopped.
    pub full: u64,
    /// Requests that failed otherwise (a bug, or the database).
    pub errors: u64,
    /// Requests still in flight at the deadline, abandoned (at most one per
    /// client). Their transactions are ended before the audit; one whose
    /// COMMIT had already reached the server is in `rows` but not in `reserved`.
    #[serde(default)]
    pub cut_off: u64,
    /// Reservations whose request was sent after some client had already
    /// been told "full": must be zero, or "full" was said while spots were free.
    pub reserved_after_full: u64,
    /// Lost races, deadlocks and give-ups of the store during the run.
    pub races: RaceStats,
    /// Live reservations in the lot afterwards.
    pub rows: i64,
    /// Pairs of live reservations of one spot that overlap: must be zero.
    pub overlapping_pairs: i64,
    /// From the release of the clients to the last answer or the deadline.
    pub elapsed: Duration,
}

impl StadiumOutcome {
    /// True when every client was told "full" before the deadline.
    pub fn filled(&self) -> bool {
        self.full == u64::from(self.shape.clients)
    }

    /// Reservations made per second of the run.
    pub fn reserves_per_sec(&self) -> f64 {
        self.reserved as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The evening everyone wants: from the next slot boundary an hour ahead, five hours.
fn the_evening() -> Option<TimeRange> {
    let start: DateTime<Utc> = ceil_to_slot(SystemClock.now()) + SLOT * 4;
    TimeRange::new(start, start + SLOT * 20).ok()
}

/// The stadium lot: `spots` regular spots over levels -1 to 2.
pub fn stadium_lot(spots: u32) -> LotLayout {
    let levels = [-1i16, 0, 1, 2];
    let per_level = spots / levels.len() as u32;
    LotLayout {
        name: "Stadium".to_string(),
        location: None,
        levels: levels
            .iter()
            .enumerate()
            .map(|(i, level)| LevelLayout {
                level: *level,
                // The last level takes the remainder.
                spots: vec![(
                    SpotKind::Regular,
                    if i + 1 == levels.len() {
                        spots - per_level * (levels.len() as u32 - 1)
                    } else {
                        per_level
                    },
                )],
            })
            .collect(),
    }
}

// ANCHOR: stadium
/// Plays the stadium case with `path` on a store over `pool`'s database,
/// which must hold the schema and nothing else.
pub async fn run(
    pool: sqlx::PgPool,
    path: ReservePath,
    shape: Stadium,
) -> Result<StadiumOutcome, StoreError> {
    let store = PgStore::new(pool).with_path(path);
    let lot = store.create_lot(&stadium_lot(shape.spots)).await?;
    let evening = the_evening().ok_or_else(|| StoreError::Corrupt("no evening".into()))?;
    let before = store.race_stats();
    let start_line = Arc::new(tokio::sync::Barrier::new(shape.clients as usize));
    let began = Instant::now();
    let deadline = began + shape.deadline;
    let tasks: Vec<_> = (0..shape.clients)
        .map(|c| {
            let (store, start_line) = (store.clone(), Arc::clone(&start_line));
            tokio::spawn(async move {
                start_line.wait().await;
                let (mut reserved, mut errors, mut cut_off) = (Vec::new(), 0u64, 0u64);
                for i in 0u64.. {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let plate = Plate::parse(&format!("S{c}X{i}"));
                    let key = IdempotencyKey::parse(format!("stadium-{c}-{i}").as_bytes());
                    let (Ok(plate), Ok(key)) = (plate, key) else {
                        errors += 1;
                        break;
                    };
                    let request = ReserveRequest {
                        lot_id: lot,
                        kind: SpotKind::Regular,
                        range: evening,
                        plate,
                    };
                    let sent = Instant::now();
                    let reserve = store.reserve(&request, Some(&key), SystemClock.now());
                    let Some(answer) = cutoff::by(deadline, reserve).await else {
                        cut_off += 1;
                        break;
                    };
                    match answer {
                        Ok(_) => reserved.push(sent),
                        // The lot is full: this app stops asking.
                        Err(StoreError::NoSpotAvailable { .. }) => {
                            return (reserved, Some(Instant::now()), errors, cut_off);
                        }
                        // Gave up after lost races: a driver would press again.
                        Err(StoreError::Conflict { .. }) => {}
                        Err(e) => {
                            tracing::warn!("stadium request failed: {e}");
                            errors += 1;
                            if errors > 10 {
                                break;
                            }
                        }
                    }
                }
                (reserved, None, errors, cut_off)
            })
        })
        .collect();
    let (mut sent, mut told_full, mut errors, mut cut_off) = (Vec::new(), Vec::new(), 0, 0);
    for t in tasks {
        let (r, f, e, c) = t
            .await
            .map_err(|e| StoreError::Corrupt(format!("client task: {e}")))?;
        sent.extend(r);
        told_full.extend(f);
        errors += e;
        cut_off += c;
    }
    let elapsed = began.elapsed();
    if cut_off > 0 {
        // The abandoned reserves may still be waiting on a lock or a
        // deadlock check: end them, so the audit reads a lot at rest.
        cutoff::quiesce(store.pool()).await?;
    }
    let first_full = told_full.iter().min().copied();
    let reserved_after_full = first_full.map_or(0, |f| sent.iter().filter(|s| **s > f).count());
    let after = store.race_stats();
    let (rows, overlapping_pairs) = audit(store.pool(), lot).await?;
    Ok(StadiumOutcome {
        path,
        shape,
        reserved: sent.len() as u64,
        full: told_full.len() as u64,
        errors,
        cut_off,
        reserved_after_full: reserved_after_full as u64,
        races: RaceStats {
            races_lost: after.races_lost - before.races_lost,
            deadlocks: after.deadlocks - before.deadlocks,
            gave_up: after.gave_up - before.gave_up,
        },
        rows,
        overlapping_pairs,
        elapsed,
    })
}
// ANCHOR_END: stadium

/// Live reservations of `lot`, and pairs of them on one spot that overlap.
async fn audit(pool: &sqlx::PgPool, lot: i64) -> Result<(i64, i64), sqlx::Error> {
    let rows = sqlx::query_scalar(
        "SELECT count(*) FROM reservations
         WHERE lot_id = $1 AND state IN ('held', 'confirmed', 'checked_in')",
    )
    .bind(lot)
    .fetch_one(pool)
    .await?;
    let pairs = sqlx::query_scalar(
        "SELECT count(*) FROM reservations AS a JOIN reservations AS b
           ON a.spot_id = b.spot_id AND a.id < b.id AND a.during && b.during
         WHERE a.lot_id = $1
           AND a.state IN ('held', 'confirmed', 'checked_in')
           AND b.state IN ('held', 'confirmed', 'checked_in')",
    )
    .bind(lot)
    .fetch_one(pool)
    .await?;
    Ok((rows, pairs))
}
