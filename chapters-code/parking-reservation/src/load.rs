//! The measured runs behind the chapter's performance table (`benches/reserve.rs`).
//!
//! Closed loop: each of `clients` tasks sends one request, waits for the
//! answer, and sends the next, for `warmup + measure`; only answers to
//! requests sent in the measured window count, and a request still in flight
//! when the window closes is cut off (abandoned, counted in
//! [`LoadRun::cut_off`], and its transaction ended by
//! [`cutoff::quiesce`]), so a run lasts its window whatever the path does,
//! and the next run starts on a database at rest. The numbers compare paths within one
//! run on one machine, which is how the book uses them (see the load
//! generator's notes on coordinated omission in `xtask/src/loadgen.rs`).
//!
//! - [`reserve_load`] is the real reserve path: `PgStore::reserve` with an
//!   idempotency key, so each request is BEGIN, claim the key, assignment
//!   SELECT, INSERT, record the response, COMMIT. The requests are spread
//!   over 60 days and five kinds of a 400-spot lot, so most succeed; the
//!   refusals and lost races are counted, not hidden.
//! - [`insert_ceiling`] is the ceiling: one autocommit INSERT of a
//!   reservation row that cannot conflict, into the same table (same
//!   indexes, same constraint check), through the same kind of pool. No
//!   design can write a reservation with less work, so the ratio
//!   reserve/ceiling is the share of the database's write capacity the
//!   design keeps.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use sqlx::PgPool;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::cutoff;
use crate::domain::{
    HOLD_TTL, LotId, Plate, ReserveRequest, SLOT, SpotKind, TimeRange, ceil_to_slot,
};
use crate::idempotency::IdempotencyKey;
use crate::store::{LevelLayout, LotLayout, PgStore, ReservationStore, StoreError};
use crate::strategies::empty_histogram;

/// The shape of one measured run.
#[derive(Clone, Copy, Debug)]
pub struct LoadSpec {
    /// Concurrent clients, each with one request in flight.
    pub clients: u32,
    /// Unmeasured time first (fills the pool, warms caches).
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// Seed of the request mix.
    pub seed: u64,
}

/// What one run measured.
#[derive(Debug)]
pub struct LoadRun {
    /// The clients.
    pub clients: u32,
    /// Requests that succeeded in the window.
    pub ok: u64,
    /// Reserve only: refused, no spot of the kind was free.
    pub no_spot: u64,
    /// Reserve only: lost the race [`MAX_ASSIGN_ATTEMPTS`](crate::store::MAX_ASSIGN_ATTEMPTS) times.
    pub conflicts: u64,
    /// Anything else (database errors).
    pub errors: u64,
    /// Requests still in flight when the window closed, abandoned unanswered
    /// (at most one per client); in no other count.
    pub cut_off: u64,
    /// Reserve only: INSERTs refused by the constraint and retried (SQLSTATE 23P01).
    pub races_lost: u64,
    /// The measured window, as it really lasted.
    pub elapsed: Duration,
    /// Microseconds per request, all outcomes.
    pub latency_us: Histogram<u64>,
}

impl LoadRun {
    /// Successful requests per second.
    pub fn ok_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Every request answered in the window.
    pub fn total(&self) -> u64 {
        self.ok + self.no_spot + self.conflicts + self.errors
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Ok,
    NoSpot,
    Conflict,
    Error,
}

/// The lot of the measured runs: 4 levels of 20 compact, 60 regular, 10 large, 5 EV, 5 accessible.
pub fn perf_lot() -> LotLayout {
    use SpotKind::*;
    LotLayout {
        name: "Load lot".to_string(),
        location: None,
        levels: (0..4)
            .map(|level| LevelLayout {
                level,
                spots: vec![
                    (Compact, 20),
                    (Regular, 60),
                    (Large, 10),
                    (Ev, 5),
                    (Accessible, 5),
                ],
            })
            .collect(),
    }
}

/// SplitMix64: a stateless mix, so request `i` of client `c` is the same in every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Request `i` of client `c`: kind weighted like the lot, 1 to 16 slots within 60 days of `base`.
fn request(
    lot_id: LotId,
    base: DateTime<Utc>,
    seed: u64,
    c: u32,
    i: u64,
) -> Option<ReserveRequest> {
    let r = mix(seed ^ (u64::from(c) << 40) ^ i);
    let kind = match r % 100 {
        0..20 => SpotKind::Compact,
        20..80 => SpotKind::Regular,
        80..90 => SpotKind::Large,
        90..95 => SpotKind::Ev,
        _ => SpotKind::Accessible,
    };
    let first = i32::try_from((r >> 8) % (60 * 96)).ok()?;
    let len = i32::try_from(1 + (r >> 24) % 16).ok()?;
    let start = base + SLOT * first;
    Some(ReserveRequest {
        lot_id,
        kind,
        range: TimeRange::new(start, start + SLOT * len).ok()?,
        plate: Plate::parse(&format!("L{c}X{}", i % 1_000_000)).ok()?,
    })
}

// ANCHOR: reserve_load
/// The real reserve path under `spec.clients` concurrent clients.
pub async fn reserve_load(
    store: &PgStore,
    lot_id: LotId,
    spec: LoadSpec,
) -> Result<LoadRun, sqlx::Error> {
    // The first slot boundary after now: every request is bookable.
    let base = ceil_to_slot(SystemClock.now()) + SLOT;
    let races_before = store.races_lost();
    let measuring = store.clone();
    let store = store.clone();
    let mut run = closed_loop(measuring.pool(), spec, move |c, i| {
        let store = store.clone();
        async move {
            let Some(req) = request(lot_id, base, spec.seed, c, i) else {
                return Answer::Error;
            };
            let key = IdempotencyKey::parse(format!("load-{}-{c}-{i}", spec.seed).as_bytes());
            match store
                .reserve(&req, key.ok().as_ref(), SystemClock.now())
                .await
            {
                Ok(_) => Answer::Ok,
                Err(StoreError::NoSpotAvailable { .. }) => Answer::NoSpot,
                Err(StoreError::Conflict { .. }) => Answer::Conflict,
                Err(_) => Answer::Error,
            }
        }
    })
    .await?;
    // Warm-up included: the counter is per store, not per window.
    run.races_lost = measuring.races_lost() - races_before;
    Ok(run)
}
// ANCHOR_END: reserve_load

// ANCHOR: other_loads
/// The availability query of the real store, for random ranges of the reserve mix.
pub async fn availability_load(
    store: &PgStore,
    lot_id: LotId,
    spec: LoadSpec,
) -> Result<LoadRun, sqlx::Error> {
    let base = ceil_to_slot(SystemClock.now()) + SLOT;
    let pool = store.pool().clone();
    let store = store.clone();
    closed_loop(&pool, spec, move |c, i| {
        let store = store.clone();
        async move {
            let Some(req) = request(lot_id, base, spec.seed ^ 0xA5A5, c, i) else {
                return Answer::Error;
            };
            match store.availability(lot_id, req.range).await {
                Ok(_) => Answer::Ok,
                Err(_) => Answer::Error,
            }
        }
    })
    .await
}

/// `GET /reservations/{id}`'s store call, for reservations of the lot picked at random.
pub async fn read_load(
    store: &PgStore,
    lot_id: LotId,
    spec: LoadSpec,
) -> Result<LoadRun, sqlx::Error> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM reservations WHERE lot_id = $1 LIMIT 20000")
            .bind(lot_id)
            .fetch_all(store.pool())
            .await?;
    let ids = Arc::new(ids);
    let pool = store.pool().clone();
    let store = store.clone();
    closed_loop(&pool, spec, move |c, i| {
        let (store, ids) = (store.clone(), Arc::clone(&ids));
        async move {
            let pick = mix(spec.seed ^ (u64::from(c) << 40) ^ i) as usize;
            let Some(id) = ids.get(pick % ids.len().max(1)) else {
                return Answer::Error;
            };
            match store.get(*id).await {
                Ok(_) => Answer::Ok,
                Err(_) => Answer::Error,
            }
        }
    })
    .await
}
// ANCHOR_END: other_loads

// ANCHOR: ceiling
/// The ceiling: one plain INSERT of a non-conflicting reservation row per request.
pub async fn insert_ceiling(
    pool: &PgPool,
    lot_id: LotId,
    spec: LoadSpec,
) -> Result<LoadRun, sqlx::Error> {
    let spots: Vec<i64> = sqlx::query_scalar("SELECT id FROM spots WHERE lot_id = $1 ORDER BY id")
        .bind(lot_id)
        .fetch_all(pool)
        .await?;
    let spots = Arc::new(spots);
    // Far in the future, one slot each, round-robin over the spots: no two rows overlap.
    let far = DateTime::from_timestamp(2_051_222_400, 0).unwrap_or_default(); // 2035-01-01
    let counter = Arc::new(AtomicU64::new(mix(spec.seed) % 1_000 * 1_000_000));
    let ceiling_pool = pool.clone();
    closed_loop(pool, spec, move |_, _| {
        let (pool, spots, counter) = (
            ceiling_pool.clone(),
            Arc::clone(&spots),
            Arc::clone(&counter),
        );
        async move {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let Some(spot) = spots.get((n % spots.len().max(1) as u64) as usize) else {
                return Answer::Error;
            };
            let slot = i32::try_from(n / spots.len().max(1) as u64).unwrap_or(i32::MAX);
            let start = far + SLOT * slot;
            let now = SystemClock.now();
            let inserted = sqlx::query(
                "INSERT INTO reservations (id, lot_id, spot_id, plate, during, state,
                                           hold_expires_at, quote_cents, created_at, updated_at)
                 VALUES ($1, $2, $3, 'CEILING', tstzrange($4, $5), 'held', $6, 0, $7, $7)",
            )
            .bind(Uuid::new_v4())
            .bind(lot_id)
            .bind(*spot)
            .bind(start)
            .bind(start + SLOT)
            .bind(now + HOLD_TTL)
            .bind(now)
            .execute(&pool)
            .await;
            if inserted.is_ok() {
                Answer::Ok
            } else {
                Answer::Error
            }
        }
    })
    .await
}
// ANCHOR_END: ceiling

/// Runs `op(client, i)` in a closed loop per client for `warmup + measure`,
/// on connections of `pool`.
async fn closed_loop<F, Fut>(pool: &PgPool, spec: LoadSpec, op: F) -> Result<LoadRun, sqlx::Error>
where
    F: Fn(u32, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let op = Arc::new(op);
    let began = Instant::now();
    let window_start = began + spec.warmup;
    let window_end = window_start + spec.measure;
    let mut tasks = Vec::new();
    for c in 0..spec.clients {
        let op = Arc::clone(&op);
        tasks.push(tokio::spawn(async move {
            let mut run = LoadRun {
                clients: 1,
                ok: 0,
                no_spot: 0,
                conflicts: 0,
                errors: 0,
                cut_off: 0,
                races_lost: 0,
                elapsed: Duration::ZERO,
                latency_us: empty_histogram(),
            };
            let mut i = 0u64;
            loop {
                let sent = Instant::now();
                if sent >= window_end {
                    break;
                }
                let Some(answer) = cutoff::by(window_end, op(c, i)).await else {
                    run.cut_off += 1;
                    break;
                };
                i += 1;
                if sent < window_start {
                    continue;
                }
                let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = run.latency_us.record(us.clamp(1, 60_000_000));
                match answer {
                    Answer::Ok => run.ok += 1,
                    Answer::NoSpot => run.no_spot += 1,
                    Answer::Conflict => run.conflicts += 1,
                    Answer::Error => run.errors += 1,
                }
            }
            run
        }));
    }
    let mut total = LoadRun {
        clients: spec.clients,
        ok: 0,
        no_spot: 0,
        conflicts: 0,
        errors: 0,
        cut_off: 0,
        races_lost: 0,
        elapsed: Duration::ZERO,
        latency_us: empty_histogram(),
    };
    for t in tasks {
        if let Ok(part) = t.await {
            total.ok += part.ok;
            total.no_spot += part.no_spot;
            total.conflicts += part.conflicts;
            total.errors += part.errors;
            total.cut_off += part.cut_off;
            let _ = total.latency_us.add(&part.latency_us);
        } else {
            total.errors += 1;
        }
    }
    // Every request was answered or cut off by `window_end`: this is the
    // window, plus the moment it took to join the tasks.
    total.elapsed = Instant::now().saturating_duration_since(window_start);
    if total.cut_off > 0 {
        // Dropping a request frees the client, not the server: its statement
        // may still run or wait on a lock, and its connection returns to the
        // pool only once the server answers. End those transactions, so no
        // round inherits another's work.
        cutoff::quiesce(pool).await?;
    }
    Ok(total)
}
