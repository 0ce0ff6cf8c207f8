//! The PostgreSQL store: the exclusion constraint is the source of truth.
//!
//! The reserve path *asks* the database for a free spot ([`ASSIGN_SQL`]),
//! then inserts a reservation of it. Between the two statements another
//! transaction may take the same spot for overlapping hours; nothing in
//! this code prevents that. The constraint `no_overlapping_live_reservations`
//! does. The SELECT is advice; the constraint is the law.
//!
//! How a lost race is handled is the [`ReservePath`], and the chapter
//! measures three (`benches/reserve.rs`, the stadium case):
//! [`ReservePath::Retry`] inserts plainly and retries the whole transaction
//! on 23P01 or 40P01; [`ReservePath::OnConflict`] inserts with `ON
//! CONFLICT ON CONSTRAINT ... DO NOTHING` and asks again in the same
//! transaction; [`ReservePath::SkipLocked`] does the same but first skips
//! spots that concurrent reserves are taking right now, so that they spread
//! over the lot instead of queueing on one spot. The last is the default.
//!
//! [`ASSIGN_SQL`]: crate::assign::ASSIGN_SQL

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{LotLayout, LotNear, ReservationStore, Reserved, StoreError, Swept};
use crate::assign::{self, AvailabilityError, KindAvailability};
use crate::domain::{
    EARTH_RADIUS_M, Event, Location, LotId, MAX_ACTIVE_PER_PLATE, MAX_HOLDS_PER_PLATE, Money,
    NEAR_LIMIT, NO_SHOW_GRACE, Plate, Reservation, ReserveRequest, SpotRef, State, TariffBook,
    TimeRange, Transition,
};
use crate::idempotency::{
    self, Claim, ClaimError, Fingerprint, IdempotencyKey, fingerprint, walk_in_fingerprint,
};

// ANCHOR: statement_timeout
/// The server stops any statement of the service after this long (SQLSTATE
/// 57014, answered 503 `database-timeout`), below the service's own
/// `REQUEST_TIMEOUT`: a request the service gave up on must not leave its
/// statement running, holding locks, in the database.
pub const STATEMENT_TIMEOUT: &str = "5s";
// ANCHOR_END: statement_timeout

/// The schema this store is written against (`sql/schema.sql`).
pub const SCHEMA_SQL: &str = include_str!("../../sql/schema.sql");

/// How many transactions a reserve may lose (23P01 or 40P01 at INSERT,
/// which abort the transaction) before it gives up with 409 `conflict`.
///
/// A 23P01 loss means another request committed a reservation that this
/// one's next SELECT will see. A 40P01 loss happens while the winner is
/// still in flight, so the next SELECT may pick the same spot and lose
/// again; but the deadlock detector always lets one side through, so the
/// system as a whole makes progress, and the bound only stops one unlucky
/// request from looping under a stampede.
/// A lost `ON CONFLICT DO NOTHING` aborts nothing and needs no bound (see
/// `try_reserve`).
pub const MAX_ASSIGN_ATTEMPTS: u32 = 8;

/// How many transactions a state change (`apply`) may lose to a deadlock
/// (40P01) before it gives up with 409 `conflict`.
///
/// Only a late confirm or a check-in makes the constraint check an UPDATE,
/// and only an in-flight INSERT of the same spot can then close a cycle with
/// it; the winner of the cycle commits or rolls back, and the next attempt
/// sees which (`SpotTaken`, or the change made). A few attempts are plenty.
pub const MAX_TRANSITION_ATTEMPTS: u32 = 3;

/// The pause before a transaction that lost a race or a deadlock is tried
/// again: full jitter from 2 ms, doubling up to 64 ms, so that the losers
/// of one race do not all come back at the same instant and collide again.
const LOST_RACE_BACKOFF: block_retry::Backoff = match block_retry::Backoff::new(
    std::time::Duration::from_millis(2),
    std::time::Duration::from_millis(64),
    block_retry::Jitter::Full,
) {
    Ok(b) => b,
    Err(_) => panic!("the lost-race backoff is valid"),
};

/// A state change that lost a deadlock: [`MAX_TRANSITION_ATTEMPTS`] in all.
const TRANSITION_RETRY: block_retry::RetryPolicy = block_retry::RetryPolicy {
    max_retries: MAX_TRANSITION_ATTEMPTS - 1,
    backoff: LOST_RACE_BACKOFF,
};

/// A reserve that lost its race at INSERT: [`MAX_ASSIGN_ATTEMPTS`] in all.
const ASSIGN_RETRY: block_retry::RetryPolicy = block_retry::RetryPolicy {
    max_retries: MAX_ASSIGN_ATTEMPTS - 1,
    backoff: LOST_RACE_BACKOFF,
};

// ANCHOR: reserve_path
/// How the reserve path takes a spot, and what it does when it loses one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservePath {
    /// The nearest free spot, a plain INSERT. A lost race is an error (23P01,
    /// or 40P01 when two inserts check each other at the same instant) that
    /// aborts the transaction; the whole transaction is retried after a
    /// jittered pause.
    Retry,
    /// The nearest free spot, `INSERT ... ON CONFLICT ON CONSTRAINT
    /// no_overlapping_live_reservations DO NOTHING`. A lost race inserts
    /// nothing, aborts nothing and cannot deadlock (speculative insertion);
    /// the same transaction asks for the next spot at once.
    OnConflict,
    /// As `OnConflict`, but the spot query skips spots whose row another
    /// reserve has locked (`FOR NO KEY UPDATE OF s SKIP LOCKED`), so
    /// concurrent requests take different spots instead of queueing on one.
    /// When every free spot is locked it falls back to the plain query.
    SkipLocked,
}

impl ReservePath {
    /// Every path, in the order of the comparison table.
    pub const ALL: [ReservePath; 3] = [
        ReservePath::Retry,
        ReservePath::OnConflict,
        ReservePath::SkipLocked,
    ];

    /// A stable id (result names, JSON).
    pub fn id(self) -> &'static str {
        match self {
            ReservePath::Retry => "retry",
            ReservePath::OnConflict => "on_conflict",
            ReservePath::SkipLocked => "skip_locked",
        }
    }
}

impl Default for ReservePath {
    /// The path the service runs: the best of the stadium comparison.
    fn default() -> Self {
        ReservePath::SkipLocked
    }
}
// ANCHOR_END: reserve_path

/// What the reserve path of one store has lost since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RaceStats {
    /// INSERTs that lost the race for their spot (23P01, 40P01 or DO NOTHING).
    pub races_lost: u64,
    /// Of those, the ones that were deadlocks (SQLSTATE 40P01).
    pub deadlocks: u64,
    /// Reserves that gave up after [`MAX_ASSIGN_ATTEMPTS`] lost races (409 `conflict`).
    pub gave_up: u64,
}

#[derive(Debug, Default)]
struct RaceCounters {
    races_lost: AtomicU64,
    deadlocks: AtomicU64,
    gave_up: AtomicU64,
}

/// How one attempt (one transaction) ended, short of an error.
enum Attempt {
    /// Reserved, or replayed.
    Done(Reserved),
    /// The plain INSERT lost and the transaction was rolled back (Retry path, or a deadlock).
    Lost,
}

/// A [`ReservationStore`] on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// How a lost race is handled.
    path: ReservePath,
    /// Lost races, deadlocks and give-ups since the store was made: the
    /// price of every request preferring the same spot.
    races: Arc<RaceCounters>,
    /// The prices this process charges (a std lock: held for a copy, never across an await).
    tariffs: Arc<RwLock<TariffBook>>,
}

/// Every column of a reservation, with its spot, in the order `decode` reads them.
macro_rules! reservation_select {
    () => {
        "SELECT r.id, r.lot_id, r.spot_id, s.level, s.number, s.kind, r.plate,
                lower(r.during) AS start_at, upper(r.during) AS end_at, r.state,
                r.hold_expires_at, r.quote_cents, r.charged_cents, r.created_at, r.updated_at
         FROM reservations AS r JOIN spots AS s ON s.id = r.spot_id "
    };
}

// ANCHOR: insert_sql
const INSERT_RESERVATION_SQL: &str = "
INSERT INTO reservations (id, lot_id, spot_id, plate, during, state,
                          hold_expires_at, quote_cents, created_at, updated_at)
VALUES ($1, $2, $3, $4, tstzrange($5, $6), $7, $8, $9, $10, $10)";

/// The same INSERT, which inserts nothing instead of failing when the
/// constraint finds an overlapping live reservation of the spot.
const INSERT_OR_NOTHING_SQL: &str = "
INSERT INTO reservations (id, lot_id, spot_id, plate, during, state,
                          hold_expires_at, quote_cents, created_at, updated_at)
VALUES ($1, $2, $3, $4, tstzrange($5, $6), $7, $8, $9, $10, $10)
ON CONFLICT ON CONSTRAINT no_overlapping_live_reservations DO NOTHING";
// ANCHOR_END: insert_sql

impl PgStore {
    /// A store over an existing pool whose database has the schema.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            path: ReservePath::default(),
            races: Arc::new(RaceCounters::default()),
            tariffs: Arc::new(RwLock::new(TariffBook::CURRENT)),
        }
    }

    /// The same store, taking spots by `path`.
    pub fn with_path(mut self, path: ReservePath) -> Self {
        self.path = path;
        self
    }

    /// The path this store takes spots by.
    pub fn path(&self) -> ReservePath {
        self.path
    }

    /// Lost races, deadlocks and give-ups since the store was made.
    pub fn race_stats(&self) -> RaceStats {
        RaceStats {
            races_lost: self.races.races_lost.load(Ordering::Relaxed),
            deadlocks: self.races.deadlocks.load(Ordering::Relaxed),
            gave_up: self.races.gave_up.load(Ordering::Relaxed),
        }
    }

    /// How many INSERTs lost a race (and were retried or gave up).
    pub fn races_lost(&self) -> u64 {
        self.race_stats().races_lost
    }

    /// Connects to `url` with a pool of up to `max_connections`; every
    /// connection runs with [`STATEMENT_TIMEOUT`].
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?
            .options([("statement_timeout", STATEMENT_TIMEOUT)])
            .application_name("parking-reservation");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // Waiting longer for a connection than for a statement is pointless.
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self::new(pool))
    }

    /// Applies [`SCHEMA_SQL`] unless the database already has the tables.
    pub async fn ensure_schema(&self) -> Result<bool, StoreError> {
        let present: bool = sqlx::query_scalar("SELECT to_regclass('reservations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        if present {
            return Ok(false);
        }
        sqlx::raw_sql(SCHEMA_SQL).execute(&self.pool).await?;
        Ok(true)
    }

    fn tariffs(&self) -> TariffBook {
        *self.tariffs.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pool, for callers that run their own SQL (tests, the benchmark).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    // ANCHOR: reserve
    /// One attempt at a reservation, in one transaction; `then` are events
    /// applied to the new hold before COMMIT (a walk-in's confirm and check-in).
    async fn try_reserve(
        &self,
        request: &ReserveRequest,
        key: Option<(&IdempotencyKey, &Fingerprint)>,
        now: DateTime<Utc>,
        then: &[Event],
    ) -> Result<Attempt, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut lock = None;
        if let Some((key, fingerprint)) = key {
            match idempotency::claim(&mut tx, key, fingerprint).await? {
                Claim::New(l) => lock = Some(l),
                // Dropping `tx` rolls back: a replay writes nothing.
                Claim::Replay(first) => {
                    return Ok(Attempt::Done(Reserved {
                        reservation: *first,
                        replayed: true,
                    }));
                }
                Claim::Mismatch => return Err(StoreError::IdempotencyKeyReused(key.to_string())),
            }
        }
        // The plate's limits, under its lock (`lock_plate`). A plate parks
        // once, so a walk-in (`then` not empty) of a plate checked in
        // already is refused; a walk-in leaves no hold, so only a reserve is
        // held to the hold limit; both are held to the reservation limit.
        lock_plate(&mut tx, &request.plate).await?;
        let walk_in = !then.is_empty();
        let refused = if walk_in && is_parked(&mut tx, &request.plate, now, None).await? {
            Some(StoreError::AlreadyParked)
        } else {
            let (holds, active) = plate_counts(&mut tx, &request.plate, now, None).await?;
            if !walk_in && holds >= i64::from(MAX_HOLDS_PER_PLATE) {
                Some(StoreError::TooManyHolds {
                    limit: MAX_HOLDS_PER_PLATE,
                })
            } else if active >= i64::from(MAX_ACTIVE_PER_PLATE) {
                Some(StoreError::TooManyReservations {
                    limit: MAX_ACTIVE_PER_PLATE,
                })
            } else {
                None
            }
        };
        // An unknown lot is named first, as the memory store does; the
        // lookup runs only on this refusing path.
        if let Some(refused) = refused {
            return Err(if lot_exists(&mut tx, request.lot_id).await? {
                refused
            } else {
                StoreError::LotNotFound(request.lot_id)
            });
        }
        let tariff = self.tariffs().of(request.kind);
        let mut reservation = loop {
            let Some(spot) = self.choose_spot(&mut tx, request).await? else {
                return Err(self.nothing_free(&mut tx, request).await?);
            };
            let reservation = Reservation::hold(Uuid::new_v4(), spot, request, now, &tariff);
            match self.insert_hold(&mut tx, &reservation).await {
                Ok(true) => break reservation,
                // DO NOTHING: an overlapping live reservation of this spot has
                // committed (the INSERT waited for it if it was in flight). The
                // next query, a new snapshot, sees it and picks another spot.
                // So every turn of this loop removes a spot from the choice,
                // and the loop ends within the lot's size: no bound needed.
                Ok(false) => {
                    self.races.races_lost.fetch_add(1, Ordering::Relaxed);
                }
                // A plain INSERT that lost aborted the transaction.
                Err(StoreError::Conflict { .. }) => return Ok(Attempt::Lost),
                Err(e) => return Err(e),
            }
        };
        record_event(&mut tx, reservation.id, &Transition::reserved(&reservation)).await?;
        for &event in then {
            let next = reservation.apply(event, now, &tariff)?;
            match store_step(&mut tx, &reservation, event, &next).await {
                // The constraint checks the UPDATE again, and a plain INSERT
                // of the spot waiting for this transaction closes a cycle: a
                // deadlock, lost like any race at INSERT.
                Err(StoreError::Database(e)) => match self.conflict_or_database(e) {
                    StoreError::Conflict { .. } => return Ok(Attempt::Lost),
                    e => return Err(e),
                },
                done => done?,
            }
            reservation = next;
        }
        if let Some(lock) = lock {
            idempotency::record(&mut tx, lock, &reservation).await?;
        }
        tx.commit().await?;
        Ok(Attempt::Done(Reserved {
            reservation,
            replayed: false,
        }))
    }

    // ANCHOR: retry
    /// A reserve (then `then`, see [`Self::try_reserve`]), its transaction
    /// retried when it lost the race at INSERT.
    async fn reserve_then(
        &self,
        request: &ReserveRequest,
        key: Option<(&IdempotencyKey, &Fingerprint)>,
        now: DateTime<Utc>,
        then: &[Event],
    ) -> Result<Reserved, StoreError> {
        // The retry block's loop (Part II), with jitter; a lost race is the
        // error worth retrying (`None`), any other error is returned as is.
        let retried = block_retry::retry(
            &ASSIGN_RETRY,
            block_retry::Deadline::after(std::time::Duration::MAX),
            &mut block_retry::Rng::from_entropy(),
            Option::is_none,
            move |_| async move {
                match self.try_reserve(request, key, now, then).await {
                    Ok(Attempt::Done(reserved)) => Ok(reserved),
                    // The transaction was rolled back after losing at INSERT.
                    // After a 23P01 the winner's row is committed and the next
                    // SELECT sees it; after a 40P01 it may still be in flight.
                    Ok(Attempt::Lost) => {
                        self.races.races_lost.fetch_add(1, Ordering::Relaxed);
                        Err(None)
                    }
                    Err(e) => Err(Some(e)),
                }
            },
        )
        .await;
        retried.map_err(|e| match e {
            block_retry::RetryError::NotRetryable { error: Some(e), .. } => e,
            block_retry::RetryError::NotRetryable { attempts, .. }
            | block_retry::RetryError::Exhausted { attempts, .. }
            | block_retry::RetryError::Deadline { attempts, .. } => {
                self.races.gave_up.fetch_add(1, Ordering::Relaxed);
                StoreError::Conflict { attempts }
            }
        })
    }
    // ANCHOR_END: retry

    /// The spot to try, by this store's [`ReservePath`].
    async fn choose_spot(
        &self,
        tx: &mut PgConnection,
        request: &ReserveRequest,
    ) -> Result<Option<SpotRef>, StoreError> {
        let (lot, kind, range) = (request.lot_id, request.kind, &request.range);
        if self.path == ReservePath::SkipLocked
            && let Some(spot) = assign::find_unlocked_free_spot(&mut *tx, lot, kind, range).await?
        {
            return Ok(Some(spot));
        }
        // Every free spot may be locked by a reserve that is about to fail:
        // only the plain query may answer "none".
        Ok(assign::find_free_spot(tx, lot, kind, range).await?)
    }

    /// Inserts the hold; `Ok(false)` when `ON CONFLICT DO NOTHING` lost the race.
    async fn insert_hold(
        &self,
        tx: &mut PgConnection,
        r: &Reservation,
    ) -> Result<bool, StoreError> {
        let sql = match self.path {
            ReservePath::Retry => INSERT_RESERVATION_SQL,
            ReservePath::OnConflict | ReservePath::SkipLocked => INSERT_OR_NOTHING_SQL,
        };
        let done = sqlx::query(sql)
            .bind(r.id)
            .bind(r.lot_id)
            .bind(r.spot.id)
            .bind(r.plate.as_str())
            .bind(r.range.start())
            .bind(r.range.end())
            .bind(r.state.as_str())
            .bind(r.hold_expires_at)
            .bind(r.quote_cents.cents())
            .bind(r.created_at)
            .execute(tx)
            .await
            .map_err(|e| self.conflict_or_database(e))?;
        Ok(done.rows_affected() == 1)
    }

    /// `NoSpotAvailable`, or `LotNotFound` when the lot does not exist.
    async fn nothing_free(
        &self,
        tx: &mut PgConnection,
        request: &ReserveRequest,
    ) -> Result<StoreError, StoreError> {
        let lot_id = request.lot_id;
        Ok(if lot_exists(tx, lot_id).await? {
            StoreError::NoSpotAvailable {
                lot_id,
                kind: request.kind,
            }
        } else {
            StoreError::LotNotFound(lot_id)
        })
    }
    // ANCHOR_END: reserve

    /// One attempt at `apply`, in one transaction.
    async fn try_apply(
        &self,
        id: Uuid,
        event: Event,
        now: DateTime<Utc>,
    ) -> Result<Reservation, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The row lock orders this transition against any other on the same
        // reservation, including the sweepers' UPDATEs.
        let current = self.fetch(&mut tx, id, true).await?;
        let next = current.apply(event, now, &self.tariffs().of(current.kind))?;
        // A plate parks once: a check-in of a plate parked elsewhere is
        // refused, under the plate's lock as a walk-in's check is.
        if event == Event::CheckIn {
            lock_plate(&mut tx, &current.plate).await?;
            if is_parked(&mut tx, &current.plate, now, Some(id)).await? {
                return Err(StoreError::AlreadyParked);
            }
        }
        // A confirm may bring a lapsed hold back: the plate's limit again.
        if event == Event::Confirm {
            lock_plate(&mut tx, &current.plate).await?;
            let (_, active) = plate_counts(&mut tx, &current.plate, now, Some(id)).await?;
            if active >= i64::from(MAX_ACTIVE_PER_PLATE) {
                return Err(StoreError::TooManyReservations {
                    limit: MAX_ACTIVE_PER_PLATE,
                });
            }
        }
        store_step(&mut tx, &current, event, &next).await?;
        tx.commit().await?;
        Ok(next)
    }

    async fn fetch(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
        lock: bool,
    ) -> Result<Reservation, StoreError> {
        let row = if lock {
            sqlx::query(concat!(
                reservation_select!(),
                "WHERE r.id = $1 FOR UPDATE OF r"
            ))
            .bind(id)
            .fetch_optional(conn)
            .await?
        } else {
            sqlx::query(concat!(reservation_select!(), "WHERE r.id = $1"))
                .bind(id)
                .fetch_optional(conn)
                .await?
        };
        row.map_or(Err(StoreError::ReservationNotFound(id)), |r| decode(&r))
    }
}

// ANCHOR: conflict
/// SQLSTATE 23P01: an INSERT or UPDATE would make two rows conflict under an
/// exclusion constraint. Here that can only be `no_overlapping_live_reservations`.
const EXCLUSION_VIOLATION: &str = "23P01";

/// SQLSTATE 40P01. PostgreSQL inserts the new index entry before it checks
/// the exclusion constraint, so two overlapping INSERTs at the same instant
/// can each wait for the other's transaction; the deadlock detector then
/// aborts one of them. That is the same lost race as 23P01, reported late.
const DEADLOCK_DETECTED: &str = "40P01";

/// Whether `e` is PostgreSQL's answer to a deadlock (its transaction is rolled back).
fn is_deadlock(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some(DEADLOCK_DETECTED)
}

impl PgStore {
    /// A lost race (23P01, or the deadlock it can turn into) becomes
    /// [`StoreError::Conflict`] and is retried; anything else stays a database error.
    fn conflict_or_database(&self, e: sqlx::Error) -> StoreError {
        match e.as_database_error().and_then(|d| d.code()).as_deref() {
            Some(EXCLUSION_VIOLATION) => StoreError::Conflict { attempts: 1 },
            Some(DEADLOCK_DETECTED) => {
                self.races.deadlocks.fetch_add(1, Ordering::Relaxed);
                StoreError::Conflict { attempts: 1 }
            }
            _ => StoreError::Database(e),
        }
    }
}
// ANCHOR_END: conflict

// ANCHOR: hold_limit
/// Takes a transaction-level advisory lock on `plate`, held to COMMIT:
/// every reserve, walk-in and confirm of one plate takes turns from here,
/// so none can miss another's row when it counts (a check-then-insert
/// without the lock lets concurrent requests all see "one fewer").
async fn lock_plate(tx: &mut PgConnection, plate: &Plate) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(plate.as_str())
        .execute(tx)
        .await?;
    Ok(())
}

/// Of `plate`'s reservations other than `except`: the unconfirmed holds
/// that have not lapsed at `now`, and those that take a spot (the same
/// holds, confirmed, and checked in for a stay not yet ended: a stay
/// nobody checks out stops counting at its end). The caller holds
/// [`lock_plate`].
async fn plate_counts(
    tx: &mut PgConnection,
    plate: &Plate,
    now: DateTime<Utc>,
    except: Option<Uuid>,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'held' AND hold_expires_at > $2),
                count(*) FILTER (WHERE state = 'confirmed'
                                    OR (state = 'checked_in' AND upper(during) > $2)
                                    OR (state = 'held' AND hold_expires_at > $2))
         FROM reservations
         WHERE plate = $1 AND state IN ('held', 'confirmed', 'checked_in')
           AND id IS DISTINCT FROM $3",
    )
    .bind(plate.as_str())
    .bind(now)
    .bind(except)
    .fetch_one(tx)
    .await
}
// ANCHOR_END: hold_limit

/// Whether `plate` is checked in anywhere, by a reservation other than
/// `except` whose stay has not ended at `now` (so a stay nobody checks out
/// blocks the plate until its end, not for ever). The caller holds
/// [`lock_plate`], so a concurrent walk-in or check-in cannot park it
/// meanwhile.
async fn is_parked(
    tx: &mut PgConnection,
    plate: &Plate,
    now: DateTime<Utc>,
    except: Option<Uuid>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM reservations
                        WHERE plate = $1 AND state = 'checked_in' AND upper(during) > $2
                          AND id IS DISTINCT FROM $3)",
    )
    .bind(plate.as_str())
    .bind(now)
    .bind(except)
    .fetch_one(tx)
    .await
}

/// Writes `next`, what `event` made of `current`, and its history entry, in
/// the caller's transaction.
async fn store_step(
    tx: &mut PgConnection,
    current: &Reservation,
    event: Event,
    next: &Reservation,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE reservations SET state = $2, charged_cents = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(next.id)
    .bind(next.state.as_str())
    .bind(next.charged_cents.map(Money::cents))
    .bind(next.updated_at)
    .execute(&mut *tx)
    .await
    // Only a late confirm moves a row back into a live state, and the
    // exclusion constraint checks that UPDATE like an INSERT.
    .map_err(
        |e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
            Some(EXCLUSION_VIOLATION) => StoreError::SpotTaken,
            _ => StoreError::Database(e),
        },
    )?;
    record_event(tx, next.id, &Transition::step(current, event, next)).await?;
    Ok(())
}

/// Appends `t` to the history of reservation `id`, in the caller's transaction.
async fn record_event(tx: &mut PgConnection, id: Uuid, t: &Transition) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reservation_events
                (reservation_id, event, from_state, to_state, charged_cents, at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(t.event.as_str())
    .bind(t.from.map(State::as_str))
    .bind(t.to.as_str())
    .bind(t.charged_cents.map(Money::cents))
    .bind(t.at)
    .execute(tx)
    .await?;
    Ok(())
}

/// The advisory lock key of the sweep: one sweeper at a time across processes.
pub const SWEEP_LOCK: i64 = 0x5041_524B; // "PARK"

async fn expire_holds_on(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    // Same rule as `Reservation::apply(Event::Expire)`: due when now >= hold_expires_at.
    let done = sqlx::query(
        "WITH moved AS (
             UPDATE reservations SET state = 'expired', updated_at = greatest($1, created_at)
             WHERE state = 'held' AND hold_expires_at <= $1
             RETURNING id, updated_at)
         INSERT INTO reservation_events (reservation_id, event, from_state, to_state, at)
         SELECT id, 'expire', 'held', 'expired', updated_at FROM moved",
    )
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

async fn mark_no_shows_on(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    // Same rule as `Reservation::apply(Event::MarkNoShow)`: due when
    // now >= start + grace, and the charge is the quote.
    let done = sqlx::query(
        "WITH moved AS (
             UPDATE reservations
             SET state = 'no_show', charged_cents = quote_cents, updated_at = greatest($1, created_at)
             WHERE state = 'confirmed' AND lower(during) <= $2
             RETURNING id, charged_cents, updated_at)
         INSERT INTO reservation_events
                (reservation_id, event, from_state, to_state, charged_cents, at)
         SELECT id, 'mark_no_show', 'confirmed', 'no_show', charged_cents, updated_at FROM moved",
    )
    .bind(now)
    .bind(now - NO_SHOW_GRACE)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

async fn lot_exists(conn: &mut PgConnection, lot_id: LotId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM lots WHERE id = $1)")
        .bind(lot_id)
        .fetch_one(conn)
        .await
}

/// A row of `reservation_select!` as a [`Reservation`].
fn decode(row: &PgRow) -> Result<Reservation, StoreError> {
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{what}: {e}"));
    let kind: String = row.try_get("kind")?;
    let plate: String = row.try_get("plate")?;
    let state: String = row.try_get("state")?;
    let quote: i64 = row.try_get("quote_cents")?;
    let charged: Option<i64> = row.try_get("charged_cents")?;
    Ok(Reservation {
        id: row.try_get("id")?,
        lot_id: row.try_get("lot_id")?,
        spot: SpotRef {
            id: row.try_get("spot_id")?,
            level: row.try_get("level")?,
            number: row.try_get("number")?,
        },
        kind: kind.parse().map_err(|e| corrupt("kind", &e))?,
        plate: Plate::parse(&plate).map_err(|e| corrupt("plate", &e))?,
        range: TimeRange::new(row.try_get("start_at")?, row.try_get("end_at")?)
            .map_err(|e| corrupt("during", &e))?,
        state: state.parse().map_err(|e| corrupt("state", &e))?,
        hold_expires_at: row.try_get("hold_expires_at")?,
        quote_cents: Money::from_cents(quote).map_err(|e| corrupt("quote_cents", &e))?,
        charged_cents: charged
            .map(Money::from_cents)
            .transpose()
            .map_err(|e| corrupt("charged_cents", &e))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl From<ClaimError> for StoreError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::Database(e) => StoreError::Database(e),
            ClaimError::Stored(e) => StoreError::Corrupt(e.to_string()),
        }
    }
}

impl From<AvailabilityError> for StoreError {
    fn from(e: AvailabilityError) -> Self {
        match e {
            AvailabilityError::Database(e) => StoreError::Database(e),
            AvailabilityError::Kind(e) => StoreError::Corrupt(e.to_string()),
        }
    }
}

impl ReservationStore for PgStore {
    async fn create_lot(&self, layout: &LotLayout) -> Result<LotId, StoreError> {
        layout.validate()?;
        let mut tx = self.pool.begin().await?;
        let lot_id: LotId = sqlx::query_scalar(
            "INSERT INTO lots (name, latitude, longitude) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(&layout.name)
        .bind(layout.location.map(|l| l.latitude()))
        .bind(layout.location.map(|l| l.longitude()))
        .fetch_one(&mut *tx)
        .await
        .map_err(
            |e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
                Some("23505") => StoreError::LotNameTaken(layout.name.clone()),
                _ => StoreError::Database(e),
            },
        )?;
        let levels: Vec<i16> = layout.levels.iter().map(|l| l.level).collect();
        sqlx::query("INSERT INTO levels (lot_id, level) SELECT $1, unnest($2::smallint[])")
            .bind(lot_id)
            .bind(&levels)
            .execute(&mut *tx)
            .await?;
        let (mut lv, mut num, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
        for (level, number, kind) in layout.spots() {
            lv.push(level);
            num.push(number);
            kinds.push(kind.as_str());
        }
        // WITH ORDINALITY keeps the layout's order, so spot ids follow it.
        sqlx::query(
            "INSERT INTO spots (lot_id, level, number, kind)
             SELECT $1, l, n, k
             FROM unnest($2::smallint[], $3::int[], $4::text[]) WITH ORDINALITY AS t(l, n, k, i)
             ORDER BY i",
        )
        .bind(lot_id)
        .bind(&lv)
        .bind(&num)
        .bind(&kinds)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(lot_id)
    }

    async fn availability(
        &self,
        lot_id: LotId,
        range: TimeRange,
    ) -> Result<Vec<KindAvailability>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        if !lot_exists(&mut conn, lot_id).await? {
            return Err(StoreError::LotNotFound(lot_id));
        }
        Ok(assign::availability(&mut conn, lot_id, &range).await?)
    }

    async fn reserve(
        &self,
        request: &ReserveRequest,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<Reserved, StoreError> {
        let fingerprint = key.map(|_| fingerprint(request));
        self.reserve_then(request, key.zip(fingerprint.as_ref()), now, &[])
            .await
    }

    // ANCHOR: pg_walk_in
    async fn walk_in(
        &self,
        request: &ReserveRequest,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<Reserved, StoreError> {
        // Hold, confirm and check in, in the reserve's own transaction: the
        // spot is chosen and guarded exactly as for any reserve, and a
        // failure at any step leaves nothing behind.
        let then = [Event::Confirm, Event::CheckIn];
        let fingerprint = key.map(|_| walk_in_fingerprint(request));
        self.reserve_then(request, key.zip(fingerprint.as_ref()), now, &then)
            .await
    }
    // ANCHOR_END: pg_walk_in

    async fn get(&self, id: Uuid) -> Result<Reservation, StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.fetch(&mut conn, id, false).await
    }

    // ANCHOR: transition
    async fn apply(
        &self,
        id: Uuid,
        event: Event,
        now: DateTime<Utc>,
    ) -> Result<Reservation, StoreError> {
        // The retry block's loop (Part II): full jitter, at most
        // MAX_TRANSITION_ATTEMPTS. No deadline of its own: each attempt is
        // one short transaction, and the request's timeout bounds the rest.
        let retried = block_retry::retry(
            &TRANSITION_RETRY,
            block_retry::Deadline::after(std::time::Duration::MAX),
            &mut block_retry::Rng::from_entropy(),
            // Rolled back to break a cycle with an INSERT of the spot:
            // nothing changed, and the next attempt, after the other
            // transaction ended, answers from what it left.
            |e| matches!(e, StoreError::Database(e) if is_deadlock(e)),
            |_| self.try_apply(id, event, now),
        )
        .await;
        retried.map_err(|e| match e {
            block_retry::RetryError::NotRetryable { error, .. } => error,
            block_retry::RetryError::Exhausted { attempts, .. }
            | block_retry::RetryError::Deadline { attempts, .. } => {
                StoreError::Conflict { attempts }
            }
        })
    }
    // ANCHOR_END: transition

    // ANCHOR: sweepers
    async fn expire_holds(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(expire_holds_on(&mut conn, now).await?)
    }

    async fn mark_no_shows(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(mark_no_shows_on(&mut conn, now).await?)
    }

    async fn sweep(&self, now: DateTime<Utc>) -> Result<Option<Swept>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A transaction-level lock: released by COMMIT or ROLLBACK, on
        // whichever pooled connection ran it. A session-level
        // `pg_try_advisory_lock` would stay with the connection after it went
        // back to the pool, and no other process could ever sweep again.
        let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(SWEEP_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !ours {
            return Ok(None);
        }
        let swept = Swept {
            expired: expire_holds_on(&mut tx, now).await?,
            no_shows: mark_no_shows_on(&mut tx, now).await?,
        };
        tx.commit().await?;
        Ok(Some(swept))
    }
    // ANCHOR_END: sweepers

    fn set_tariffs(&self, tariffs: TariffBook) {
        *self.tariffs.write().unwrap_or_else(PoisonError::into_inner) = tariffs;
    }

    async fn history(&self, id: Uuid) -> Result<Vec<Transition>, StoreError> {
        let rows = sqlx::query(
            "SELECT event, from_state, to_state, charged_cents, at
             FROM reservation_events WHERE reservation_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(StoreError::ReservationNotFound(id));
        }
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("event: {e}"));
        rows.iter()
            .map(|r| {
                let event: String = r.try_get("event")?;
                let from: Option<String> = r.try_get("from_state")?;
                let to: String = r.try_get("to_state")?;
                let charged: Option<i64> = r.try_get("charged_cents")?;
                Ok(Transition {
                    at: r.try_get("at")?,
                    event: event.parse().map_err(|e| corrupt(&e))?,
                    from: from
                        .map(|f| f.parse())
                        .transpose()
                        .map_err(|e| corrupt(&e))?,
                    to: to.parse().map_err(|e| corrupt(&e))?,
                    charged_cents: charged
                        .map(Money::from_cents)
                        .transpose()
                        .map_err(|e| corrupt(&e))?,
                })
            })
            .collect()
    }

    // ANCHOR: lots_near
    async fn lots_near(&self, at: Location, radius_m: f64) -> Result<Vec<LotNear>, StoreError> {
        // The haversine of `domain::distance_m`, over every lot on the map:
        // a scan of a table of a few thousand rows. (At a hundred thousand
        // lots, a GiST index on a geography column (PostGIS) would answer
        // the same question without the scan.)
        let rows = sqlx::query(
            "SELECT id, name, distance_m FROM (
                 SELECT id, name,
                        2 * $5 * asin(least(1, sqrt(
                            power(sin(radians(latitude - $1) / 2), 2)
                          + cos(radians($1)) * cos(radians(latitude))
                          * power(sin(radians(longitude - $2) / 2), 2)))) AS distance_m
                 FROM lots WHERE latitude IS NOT NULL) AS l
             WHERE distance_m <= $3
             ORDER BY distance_m, id
             LIMIT $4",
        )
        .bind(at.latitude())
        .bind(at.longitude())
        .bind(radius_m)
        .bind(NEAR_LIMIT)
        .bind(EARTH_RADIUS_M)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LotNear {
                    lot_id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    distance_m: r.try_get("distance_m")?,
                })
            })
            .collect()
    }
    // ANCHOR_END: lots_near

    async fn reservations(&self, lot_id: LotId) -> Result<Vec<Reservation>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        if !lot_exists(&mut conn, lot_id).await? {
            return Err(StoreError::LotNotFound(lot_id));
        }
        let rows = sqlx::query(concat!(
            reservation_select!(),
            "WHERE r.lot_id = $1 ORDER BY r.id"
        ))
        .bind(lot_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(decode).collect()
    }
}
