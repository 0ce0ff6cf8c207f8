//! Five ways to stop two bookings of one spot from overlapping, compared.
//!
//! Each strategy books `spot` for `range` or refuses, as one function over a
//! [`PgPool`], against the tables of `sql/strategies.sql`:
//!
//! | strategy | who enforces "no overlap" | cost under contention |
//! |---|---|---|
//! | [`naive`] | nobody: SELECT, then INSERT, READ COMMITTED | double-books |
//! | [`for_update`] | a row lock on the spot, taken first | bookings of one spot queue |
//! | [`serializable`] | PostgreSQL's SSI; the loser gets SQLSTATE 40001 and retries | aborted work, retries |
//! | [`exclusion`] | the table: `EXCLUDE USING gist`; the loser gets 23P01 | same-instant inserts can deadlock (40P01), retried |
//! | [`exclusion_on_conflict`] | the same constraint, `ON CONFLICT ... DO NOTHING` | the loser inserts nothing; no deadlock, no retry |
//!
//! [`contend`] runs one strategy with many concurrent clients and then
//! counts overlapping pairs with a self-join: the tests
//! `naive_check_then_insert_double_books` and
//! `exclusion_constraint_prevents_double_booking` and the benchmark
//! (`benches/reserve.rs`) are built on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::cutoff;
use crate::domain::{SLOT, TimeRange};

/// The schema of the comparison (`sql/strategies.sql`).
pub const STRATEGIES_SQL: &str = include_str!("../sql/strategies.sql");

/// A SERIALIZABLE booking is retried at most this many times after SQLSTATE 40001.
pub const SERIALIZABLE_MAX_RETRIES: u32 = 10;
/// An exclusion-constraint INSERT is retried at most this many times after a deadlock (40P01).
///
/// When many clients insert overlapping rows at the same instant, the
/// deadlocks come one after another (each found after `deadlock_timeout`), and
/// a client may lose several before one insert commits and the rest get 23P01.
pub const DEADLOCK_MAX_RETRIES: u32 = 30;

/// One way of enforcing the invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Check, then insert, under READ COMMITTED: the classic bug.
    Naive,
    /// Lock the spot row with `SELECT ... FOR UPDATE`, then check and insert.
    ForUpdate,
    /// Check and insert in a SERIALIZABLE transaction, retrying on 40001.
    Serializable,
    /// Insert into a table with an exclusion constraint; 23P01 means "taken".
    Exclusion,
    /// The same INSERT with `ON CONFLICT ON CONSTRAINT ... DO NOTHING`; no row means "taken".
    ExclusionOnConflict,
}

impl Strategy {
    /// Every strategy, in the order of the comparison table.
    pub const ALL: [Strategy; 5] = [
        Strategy::Naive,
        Strategy::ForUpdate,
        Strategy::Serializable,
        Strategy::Exclusion,
        Strategy::ExclusionOnConflict,
    ];

    /// A stable id (file names, JSON).
    pub fn id(self) -> &'static str {
        match self {
            Strategy::Naive => "naive",
            Strategy::ForUpdate => "for_update",
            Strategy::Serializable => "serializable",
            Strategy::Exclusion => "exclusion",
            Strategy::ExclusionOnConflict => "exclusion_on_conflict",
        }
    }

    /// Books `spot` for `range` with this strategy.
    pub async fn book(
        self,
        pool: &PgPool,
        spot: i64,
        range: &TimeRange,
        client: &str,
    ) -> Result<Attempt, sqlx::Error> {
        match self {
            Strategy::Naive => naive(pool, spot, range, client).await,
            Strategy::ForUpdate => for_update(pool, spot, range, client).await,
            Strategy::Serializable => serializable(pool, spot, range, client).await,
            Strategy::Exclusion => exclusion(pool, spot, range, client).await,
            Strategy::ExclusionOnConflict => exclusion_on_conflict(pool, spot, range, client).await,
        }
    }
}

/// How one booking attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The booking was stored.
    Booked,
    /// The spot was taken for part of the range.
    Refused,
    /// SERIALIZABLE only: every retry hit a serialization failure.
    GaveUp,
}

/// One attempt's outcome and the retries it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// How it ended.
    pub outcome: Outcome,
    /// Failures retried on the way: 40001 under SERIALIZABLE, 40P01 deadlocks under the exclusion constraint.
    pub retries: u32,
}

impl From<Outcome> for Attempt {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            retries: 0,
        }
    }
}

const OVERLAP_EXISTS_SQL: &str = "
SELECT EXISTS (SELECT 1 FROM bookings WHERE spot_id = $1 AND during && tstzrange($2, $3))";
const INSERT_SQL: &str =
    "INSERT INTO bookings (spot_id, during, client) VALUES ($1, tstzrange($2, $3), $4)";

// ANCHOR: naive
/// Check, then insert, in one READ COMMITTED transaction (PostgreSQL's default).
///
/// Wrong under concurrency: two transactions can both run the SELECT before
/// either INSERTs; neither sees the other's uncommitted row, nothing makes
/// the second wait, and both commit.
pub async fn naive(
    pool: &PgPool,
    spot: i64,
    range: &TimeRange,
    client: &str,
) -> Result<Attempt, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let taken: bool = sqlx::query_scalar(OVERLAP_EXISTS_SQL)
        .bind(spot)
        .bind(range.start())
        .bind(range.end())
        .fetch_one(&mut *tx)
        .await?;
    if taken {
        return Ok(Outcome::Refused.into());
    }
    // <- Another client's INSERT of an overlapping booking can happen here.
    sqlx::query(INSERT_SQL)
        .bind(spot)
        .bind(range.start())
        .bind(range.end())
        .bind(client)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Outcome::Booked.into())
}
// ANCHOR_END: naive

// ANCHOR: for_update
/// Lock the spot's row first, then check and insert.
///
/// Every booking of the same spot queues on the row lock, so the check and
/// the insert of one transaction cannot interleave with another's. Under
/// READ COMMITTED each statement takes a fresh snapshot, so the check after
/// the lock sees every booking committed by the previous lock holder.
pub async fn for_update(
    pool: &PgPool,
    spot: i64,
    range: &TimeRange,
    client: &str,
) -> Result<Attempt, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT id FROM strategy_spots WHERE id = $1 FOR UPDATE")
        .bind(spot)
        .fetch_one(&mut *tx)
        .await?;
    let taken: bool = sqlx::query_scalar(OVERLAP_EXISTS_SQL)
        .bind(spot)
        .bind(range.start())
        .bind(range.end())
        .fetch_one(&mut *tx)
        .await?;
    if taken {
        return Ok(Outcome::Refused.into());
    }
    sqlx::query(INSERT_SQL)
        .bind(spot)
        .bind(range.start())
        .bind(range.end())
        .bind(client)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Outcome::Booked.into())
}
// ANCHOR_END: for_update

// ANCHOR: serializable
/// The naive check-then-insert, but SERIALIZABLE, retried on SQLSTATE 40001.
///
/// PostgreSQL's serializable snapshot isolation notices that two
/// transactions each read what the other wrote (the SELECT's predicate lock
/// on the GiST index against the other's INSERT) and aborts one with
/// `serialization_failure`. The application must retry it; after
/// [`SERIALIZABLE_MAX_RETRIES`] failures it gives up.
pub async fn serializable(
    pool: &PgPool,
    spot: i64,
    range: &TimeRange,
    client: &str,
) -> Result<Attempt, sqlx::Error> {
    let mut retries = 0;
    loop {
        match serializable_once(pool, spot, range, client).await {
            Ok(outcome) => return Ok(Attempt { outcome, retries }),
            Err(e) if sqlstate(&e).as_deref() == Some("40001") => {
                retries += 1;
                if retries >= SERIALIZABLE_MAX_RETRIES {
                    return Ok(Attempt {
                        outcome: Outcome::GaveUp,
                        retries,
                    });
                }
                // Jitter keeps the losers from colliding again in lockstep.
                let ms = rand::rng().random_range(0..=2u64 << retries.min(5));
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn serializable_once(
    pool: &PgPool,
    spot: i64,
    range: &TimeRange,
    client: &str,
) -> Result<Outcome, sqlx::Error> {
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL SERIALIZABLE")
        .await?;
    let taken: bool = sqlx::query_scalar(OVERLAP_EXISTS_SQL)
        .bind(spot)
        .bind(range.start())
        .bind(range.end())
        .fetch_one(&mut *tx)
        .await?;
    if taken {
        tx.commit().await?; // a read-only transaction can fail to commit too
        return Ok(Outcome::Refused);
    }
    sqlx::query(INSERT_SQL)
        .bind(spot)
        .bind(range.start())
        .bind(range.end())
        .bind(client)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Outcome::Booked)
}
// ANCHOR_END: serializable

// ANCHOR: exclusion
/// One INSERT into a table whose exclusion constraint refuses overlaps.
///
/// If a concurrent transaction inserted an overlapping row and has not
/// committed yet, this INSERT waits for it, then fails with 23P01 if it
/// committed or succeeds if it rolled back. No check and no lock, but one
/// case to retry: a deadlock (40P01). PostgreSQL inserts the index entry
/// before checking the constraint, so two overlapping INSERTs at the same
/// instant can each wait for the other, and after `deadlock_timeout` one is
/// aborted. Run again, it finds the winner's row and gets 23P01 (or
/// succeeds if the winner failed); after [`DEADLOCK_MAX_RETRIES`] deadlocks
/// it gives up.
pub async fn exclusion(
    pool: &PgPool,
    spot: i64,
    range: &TimeRange,
    client: &str,
) -> Result<Attempt, sqlx::Error> {
    let mut retries = 0;
    loop {
        let inserted = sqlx::query(
            "INSERT INTO guarded_bookings (spot_id, during, client) VALUES ($1, tstzrange($2, $3), $4)",
        )
        .bind(spot)
        .bind(range.start())
        .bind(range.end())
        .bind(client)
        .execute(pool)
        .await;
        let outcome = match inserted {
            Ok(_) => Outcome::Booked,
            Err(e) if sqlstate(&e).as_deref() == Some("23P01") => Outcome::Refused,
            Err(e) if sqlstate(&e).as_deref() == Some("40P01") => {
                retries += 1;
                if retries >= DEADLOCK_MAX_RETRIES {
                    Outcome::GaveUp
                } else {
                    // Without jitter the losers re-enter together and form the next cycle.
                    let ms = rand::rng().random_range(0..=2u64 << retries.min(5));
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    continue;
                }
            }
            Err(e) => return Err(e),
        };
        return Ok(Attempt { outcome, retries });
    }
}
// ANCHOR_END: exclusion

// ANCHOR: exclusion_on_conflict
/// The same INSERT, as a speculative insertion: `ON CONFLICT ON CONSTRAINT
/// guarded_no_overlap DO NOTHING`.
///
/// A conflict makes the statement insert nothing instead of failing. To get
/// there without the deadlock of [`exclusion`], PostgreSQL backs out one of
/// two same-instant inserts (the one with the higher transaction id) before
/// it waits, so they never wait for each other. No retry, no 40P01.
pub async fn exclusion_on_conflict(
    pool: &PgPool,
    spot: i64,
    range: &TimeRange,
    client: &str,
) -> Result<Attempt, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO guarded_bookings (spot_id, during, client) VALUES ($1, tstzrange($2, $3), $4)
         ON CONFLICT ON CONSTRAINT guarded_no_overlap DO NOTHING",
    )
    .bind(spot)
    .bind(range.start())
    .bind(range.end())
    .bind(client)
    .execute(pool)
    .await?;
    Ok(if inserted.rows_affected() == 1 {
        Outcome::Booked
    } else {
        Outcome::Refused
    }
    .into())
}
// ANCHOR_END: exclusion_on_conflict

/// The SQLSTATE of a database error, if `e` is one.
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

// ANCHOR: overlap_check
/// Pairs of bookings of one spot whose ranges overlap: must be zero.
pub async fn overlapping_pairs(pool: &PgPool, strategy: Strategy) -> Result<i64, sqlx::Error> {
    let sql = match strategy {
        Strategy::Exclusion | Strategy::ExclusionOnConflict => {
            "SELECT count(*) FROM guarded_bookings AS a JOIN guarded_bookings AS b
               ON a.spot_id = b.spot_id AND a.id < b.id AND a.during && b.during"
        }
        _ => {
            "SELECT count(*) FROM bookings AS a JOIN bookings AS b
               ON a.spot_id = b.spot_id AND a.id < b.id AND a.during && b.during"
        }
    };
    sqlx::query_scalar(sql).fetch_one(pool).await
}
// ANCHOR_END: overlap_check

/// Creates spots `1..=spots` in `strategy_spots`.
pub async fn create_spots(pool: &PgPool, spots: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO strategy_spots (id) SELECT generate_series(1, $1::bigint)")
        .bind(spots)
        .execute(pool)
        .await?;
    Ok(())
}

/// The shape of a contention run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contention {
    /// Concurrent clients, each with its own connection.
    pub clients: u32,
    /// Booking attempts per client.
    pub attempts_per_client: u32,
    /// Spots to fight over (ids `1..=spots`).
    pub spots: i64,
    /// Ranges start in the first `horizon_slots` slots of the day...
    pub horizon_slots: i64,
    /// ...and last 1 to `max_len_slots` slots.
    pub max_len_slots: i64,
    /// Seed of the clients' random choices.
    pub seed: u64,
    /// No attempt is sent after this long, and one still in flight then is
    /// cut off: a strategy that stalls is reported with what it did by then.
    pub deadline: Duration,
}

/// What a contention run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentionOutcome {
    /// The strategy.
    pub strategy: Strategy,
    /// Attempts answered before the deadline.
    pub attempts: u64,
    /// Attempts that booked.
    pub booked: u64,
    /// Attempts refused because the spot was taken.
    pub refused: u64,
    /// SERIALIZABLE attempts abandoned after too many retries.
    pub gave_up: u64,
    /// Serialization failures retried.
    pub retries: u64,
    /// Attempts that failed with another database error.
    pub errors: u64,
    /// Attempts still in flight at the deadline, abandoned (at most one per client).
    pub cut_off: u64,
    /// Overlapping pairs found afterwards by the self-join.
    pub overlapping_pairs: i64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Microseconds per attempt, retries included.
    #[serde(skip, default = "empty_histogram")]
    pub latency_us: Histogram<u64>,
}

/// A histogram for 1 µs to 60 s at three significant figures.
pub fn empty_histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// The day every contention run books in (any fixed day works).
pub fn contention_day() -> DateTime<Utc> {
    DateTime::from_timestamp(1_893_456_000, 0).unwrap_or_default() // 2030-01-01T00:00:00Z
}

// ANCHOR: contend
/// Runs `strategy` with `shape.clients` concurrent clients over a fresh
/// strategies schema in `pool`'s database until each client has made its
/// attempts or `shape.deadline` has passed, then counts overlapping pairs.
pub async fn contend(
    pool: &PgPool,
    strategy: Strategy,
    shape: Contention,
) -> Result<ContentionOutcome, sqlx::Error> {
    // All clients start together, so the first attempts collide too.
    let start_line = Arc::new(tokio::sync::Barrier::new(shape.clients as usize));
    let began = Instant::now();
    let deadline = began + shape.deadline;
    let mut tasks = Vec::new();
    for c in 0..shape.clients {
        let pool = pool.clone();
        let start_line = Arc::clone(&start_line);
        tasks.push(tokio::spawn(async move {
            let mut rng =
                StdRng::seed_from_u64(shape.seed ^ u64::from(c).wrapping_mul(0x9E37_79B9));
            let client = format!("client-{c}");
            let mut tally = Tally::default();
            start_line.wait().await;
            for _ in 0..shape.attempts_per_client {
                if Instant::now() >= deadline {
                    break;
                }
                let spot = rng.random_range(1..=shape.spots);
                let first = rng.random_range(0..shape.horizon_slots);
                let len = rng.random_range(1..=shape.max_len_slots);
                let start = contention_day() + SLOT * first as i32;
                let Ok(range) = TimeRange::new(start, start + SLOT * len as i32) else {
                    continue;
                };
                let t = Instant::now();
                match cutoff::by(deadline, strategy.book(&pool, spot, &range, &client)).await {
                    Some(result) => tally.record(result, t.elapsed()),
                    None => {
                        tally.cut_off += 1;
                        break;
                    }
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for t in tasks {
        match t.await {
            Ok(part) => total.merge(part),
            Err(e) => return Err(sqlx::Error::Protocol(format!("client task failed: {e}"))),
        }
    }
    let elapsed = began.elapsed();
    if total.cut_off > 0 {
        // The abandoned transactions may still run (or commit) in the
        // database: end them, so the self-join counts a table at rest.
        cutoff::quiesce(pool).await?;
    }
    Ok(ContentionOutcome {
        strategy,
        attempts: total.attempts,
        booked: total.booked,
        refused: total.refused,
        gave_up: total.gave_up,
        retries: total.retries,
        errors: total.errors,
        cut_off: total.cut_off,
        overlapping_pairs: overlapping_pairs(pool, strategy).await?,
        elapsed,
        latency_us: total.latency_us,
    })
}
// ANCHOR_END: contend

#[derive(Debug)]
struct Tally {
    attempts: u64,
    booked: u64,
    refused: u64,
    gave_up: u64,
    retries: u64,
    errors: u64,
    cut_off: u64,
    latency_us: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            attempts: 0,
            booked: 0,
            refused: 0,
            gave_up: 0,
            retries: 0,
            errors: 0,
            cut_off: 0,
            latency_us: empty_histogram(),
        }
    }
}

impl Tally {
    fn record(&mut self, result: Result<Attempt, sqlx::Error>, took: Duration) {
        self.attempts += 1;
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self.latency_us.record(us.clamp(1, 60_000_000));
        match result {
            Ok(a) => {
                self.retries += u64::from(a.retries);
                match a.outcome {
                    Outcome::Booked => self.booked += 1,
                    Outcome::Refused => self.refused += 1,
                    Outcome::GaveUp => self.gave_up += 1,
                }
            }
            Err(e) => {
                tracing::warn!("booking attempt failed: {e}");
                self.errors += 1;
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.attempts += other.attempts;
        self.booked += other.booked;
        self.refused += other.refused;
        self.gave_up += other.gave_up;
        self.retries += other.retries;
        self.errors += other.errors;
        self.cut_off += other.cut_off;
        let _ = self.latency_us.add(&other.latency_us);
    }
}
