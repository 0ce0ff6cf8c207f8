//! The invariant under real concurrency, on real PostgreSQL.
//!
//! - Four strategies race many clients for one spot and one hour: the naive
//!   check-then-insert double-books; the other three never do.
//! - The production reserve path (`PgStore::reserve`) survives 32 clients x
//!   200 random attempts over 5 spots: afterwards a self-join finds no
//!   overlap, every success a client saw is in the table, and no rejection is.
//! - Walk-ins and reserves race for the last spots: each spot is handed out
//!   once, and no walk-in takes a reserved one.
//! - The load phases of the bench end at their deadline even when no request
//!   can finish, with every request in flight counted as cut off and its
//!   transaction ended.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use parking_reservation::domain::{Event, LotId, SLOT, SpotKind, State, TimeRange};
use parking_reservation::idempotency::IdempotencyKey;
use parking_reservation::store::{PgStore, ReservationStore, StoreError};
use parking_reservation::strategies::{self, Contention, Outcome, Strategy};
use sqlx::PgPool;

// ANCHOR: race
/// `clients` clients book spot 1 for the same hour at the same moment;
/// returns how many booked and how many gave up after their retries.
async fn race(pool: &PgPool, strategy: Strategy, clients: usize, round: i64) -> (u64, u64) {
    let start = strategies::contention_day() + SLOT * (4 * i32::try_from(round).unwrap_or(0));
    let Ok(range) = TimeRange::new(start, start + SLOT * 4) else {
        panic!("test range")
    };
    let barrier = Arc::new(tokio::sync::Barrier::new(clients));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (pool, barrier) = (pool.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                strategy.book(&pool, 1, &range, &format!("racer-{c}")).await
            })
        })
        .collect();
    let (mut booked, mut gave_up) = (0, 0);
    for t in tasks {
        match t.await {
            Ok(Ok(a)) if a.outcome == Outcome::Booked => booked += 1,
            Ok(Ok(a)) if a.outcome == Outcome::GaveUp => gave_up += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{strategy:?}: database error {e}"),
            Err(e) => panic!("task failed: {e}"),
        }
    }
    (booked, gave_up)
}
// ANCHOR_END: race

/// The tests here open up to 32 connections each; run one at a time, so
/// this binary never holds more than a third of the server's 100.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const RACERS: usize = 16;
const ROUNDS: i64 = 20;

async fn strategies_db() -> Option<(testkit::TestDb, PgPool)> {
    let db = testkit::postgres(Some(&strategies_path())).await?;
    lower_deadlock_timeout(&db).await;
    let pool = db.pool_with(RACERS as u32).await;
    if let Err(e) = strategies::create_spots(&pool, 4).await {
        panic!("creating spots: {e}");
    }
    Some((db, pool))
}

/// The contended random workload of the benchmark, smaller.
fn shape() -> Contention {
    Contention {
        clients: 16,
        attempts_per_client: 40,
        spots: 4,
        horizon_slots: 96,
        max_len_slots: 8,
        seed: 7,
        // Far beyond what these few attempts need: nothing is cut off.
        deadline: std::time::Duration::from_secs(60),
    }
}

// ANCHOR: naive_test
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn naive_check_then_insert_double_books() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some((_db, pool)) = strategies_db().await else {
        return;
    };
    let mut rounds_with_more_than_one = 0;
    for round in 0..ROUNDS {
        if race(&pool, Strategy::Naive, RACERS, round).await.0 > 1 {
            rounds_with_more_than_one += 1;
        }
    }
    let pairs = strategies::overlapping_pairs(&pool, Strategy::Naive).await;
    let pairs = pairs.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        rounds_with_more_than_one > 0 && pairs > 0,
        "the naive strategy never double-booked in {ROUNDS} rounds of {RACERS} racers \
         (if this machine serialises the clients, raise RACERS)"
    );
    eprintln!(
        "naive: {rounds_with_more_than_one}/{ROUNDS} rounds double-booked, {pairs} overlapping pairs"
    );
}
// ANCHOR_END: naive_test

/// How a strategy may end a round of racers for one hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Liveness {
    /// Exactly one racer books in every round, and nobody gives up.
    NeverStarves,
    /// At most one books; same-instant INSERTs may deadlock (40P01) again and
    /// again until every racer has used its retries, so a round can end empty.
    MayStarve,
}

async fn strategy_never_double_books(strategy: Strategy, liveness: Liveness) {
    let Some((_db, pool)) = strategies_db().await else {
        return;
    };
    // Safety: never two bookings of the hour. Liveness as stated above.
    let mut empty_rounds = 0;
    let mut gave_up = 0;
    for round in 0..ROUNDS {
        let (booked, quit) = race(&pool, strategy, RACERS, round).await;
        assert!(
            booked <= 1,
            "{strategy:?}, round {round}: {booked} bookings"
        );
        if liveness == Liveness::NeverStarves {
            assert_eq!(
                (booked, quit),
                (1, 0),
                "{strategy:?}, round {round}: booked, gave up"
            );
        }
        empty_rounds += u64::from(booked == 0);
        gave_up += quit;
    }
    eprintln!("{strategy:?}: {gave_up} racers gave up, {empty_rounds} rounds booked nothing");
    let random = strategies::contend(&pool, strategy, shape()).await;
    let random = random.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((random.errors, random.cut_off), (0, 0), "{random:?}");
    assert!(random.booked > 0 && random.refused > 0, "{random:?}");
    assert_eq!(random.overlapping_pairs, 0, "{strategy:?}: {random:?}");
    if liveness == Liveness::NeverStarves {
        assert_eq!(random.gave_up, 0, "{random:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exclusion_constraint_prevents_double_booking() {
    let _serial = ONE_AT_A_TIME.lock().await;
    strategy_never_double_books(Strategy::Exclusion, Liveness::MayStarve).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exclusion_constraint_on_conflict_never_starves() {
    let _serial = ONE_AT_A_TIME.lock().await;
    strategy_never_double_books(Strategy::ExclusionOnConflict, Liveness::NeverStarves).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn select_for_update_prevents_double_booking() {
    let _serial = ONE_AT_A_TIME.lock().await;
    strategy_never_double_books(Strategy::ForUpdate, Liveness::NeverStarves).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serializable_with_retry_prevents_double_booking() {
    let _serial = ONE_AT_A_TIME.lock().await;
    strategy_never_double_books(Strategy::Serializable, Liveness::NeverStarves).await;
}

// ANCHOR: proof
const TASKS: u32 = 32;
const ATTEMPTS: u32 = 200;
const SPOTS: u32 = 5;

/// What one client saw for one attempt.
#[derive(Debug)]
enum Seen {
    Reserved {
        id: uuid::Uuid,
        spot: i64,
        range: TimeRange,
        cancelled: bool,
    },
    Rejected,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_never_overlap() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some((_db, store)) = pg_store_with(TASKS).await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(SPOTS))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, barrier) = (store.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                client(&store, lot, t).await
            })
        })
        .collect();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for t in tasks {
        seen.extend(
            t.await
                .unwrap_or_else(|e| panic!("client task failed: {e}")),
        );
    }
    assert_eq!(seen.len(), (TASKS * ATTEMPTS) as usize);

    // 1. The database holds no two live, overlapping reservations of one spot.
    let overlaps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM reservations AS a JOIN reservations AS b
           ON a.spot_id = b.spot_id AND a.id < b.id AND a.during && b.during
         WHERE a.state IN ('held', 'confirmed', 'checked_in')
           AND b.state IN ('held', 'confirmed', 'checked_in')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(overlaps, 0, "double booking");

    // 2. Every success a client saw is in the table, as it was told;
    // 3. every rejection left no row behind.
    let rows = store
        .reservations(lot)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let by_plate: HashMap<&str, _> = rows.iter().map(|r| (r.plate.as_str(), r)).collect();
    assert_eq!(by_plate.len(), rows.len(), "one row per plate");
    let (mut reserved, mut rejected) = (0, 0);
    for (plate, s) in &seen {
        match (s, by_plate.get(plate.as_str())) {
            (
                Seen::Reserved {
                    id,
                    spot,
                    range,
                    cancelled,
                },
                Some(row),
            ) => {
                reserved += 1;
                assert_eq!(
                    (row.id, row.spot.id, row.range),
                    (*id, *spot, *range),
                    "{plate}"
                );
                let expected = if *cancelled {
                    State::Cancelled
                } else {
                    State::Held
                };
                assert_eq!(row.state, expected, "{plate}");
            }
            (Seen::Reserved { .. }, None) => {
                panic!("{plate}: the client was told yes, the table has no row")
            }
            (Seen::Rejected, None) => rejected += 1,
            (Seen::Rejected, Some(row)) => {
                panic!("{plate}: the client was told no, the table has {row:?}")
            }
        }
    }
    assert_eq!(reserved, rows.len());
    // The run was contended: both outcomes happened many times.
    assert!(
        reserved > 100 && rejected > 100,
        "{reserved} reserved, {rejected} rejected"
    );
    eprintln!("{reserved} reserved, {rejected} rejected, 0 overlaps");
}

/// One client's 200 attempts: random ranges over two days, some cancelled right away.
async fn client(store: &PgStore, lot: LotId, t: u32) -> Vec<(String, Seen)> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(t));
    let mut seen = Vec::new();
    for i in 0..ATTEMPTS {
        let who = format!("C{t}X{i}");
        let first = rng.random_range(0..192);
        let len = rng.random_range(1..=8);
        let req = request(lot, SpotKind::Regular, slots(first, len), &who);
        let outcome = match store.reserve(&req, None, now0()).await {
            Ok(r) => {
                // A tenth of the successes cancel at once: their spots free up again.
                let cancel = rng.random_range(0..10) == 0;
                if cancel && let Err(e) = store.apply(r.reservation.id, Event::Cancel, now0()).await
                {
                    panic!("{who}: cancel failed: {e}");
                }
                Seen::Reserved {
                    id: r.reservation.id,
                    spot: r.reservation.spot.id,
                    range: r.reservation.range,
                    cancelled: cancel,
                }
            }
            Err(StoreError::NoSpotAvailable { .. } | StoreError::Conflict { .. }) => Seen::Rejected,
            Err(e) => panic!("{who}: unexpected error {e}"),
        };
        seen.push((req.plate.to_string(), outcome));
    }
    seen
}
// ANCHOR_END: proof

// ANCHOR: one_key_test
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_make_one_reservation() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some((_db, store)) = pg_store_with(16).await else {
        return;
    };
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Ok(key) = IdempotencyKey::parse(b"one-key-many-requests") else {
        panic!("key")
    };
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, barrier, key) = (store.clone(), Arc::clone(&barrier), key.clone());
            tokio::spawn(async move {
                // Half send the original body, half a different plate.
                let who = if i % 2 == 0 { "SAME1" } else { "OTHER1" };
                let req = request(lot, SpotKind::Regular, slots(8, 4), who);
                barrier.wait().await;
                (who, store.reserve(&req, Some(&key), now0()).await)
            })
        })
        .collect();
    let mut ids = Vec::new();
    let (mut fresh, mut replays, mut mismatches) = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("{e}")) {
            (_, Ok(r)) => {
                ids.push(r.reservation.id);
                if r.replayed { replays += 1 } else { fresh += 1 }
            }
            (_, Err(StoreError::IdempotencyKeyReused(_))) => mismatches += 1,
            (who, Err(e)) => panic!("{who}: {e}"),
        }
    }
    ids.dedup();
    assert_eq!(fresh, 1, "exactly one request executed");
    assert_eq!(ids.len(), 1, "every success names the same reservation");
    assert_eq!(replays + mismatches, 15);
    assert_eq!(mismatches, 8, "the other body is refused every time");
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(1));
}
// ANCHOR_END: one_key_test

// ANCHOR: stadium_test
/// The stadium case, small, at PostgreSQL's default `deadlock_timeout`:
/// every path ends with the lot exactly full and no overlap; the two that
/// insert with `ON CONFLICT DO NOTHING` never deadlock and never give up,
/// and skipping locked spots loses fewer races than queueing on one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_reserve_path_fills_a_hot_lot_exactly() {
    use parking_reservation::stadium::{self, Stadium};
    use parking_reservation::store::ReservePath;
    let _serial = ONE_AT_A_TIME.lock().await;
    let shape = Stadium {
        spots: 48,
        clients: 16,
        deadline: std::time::Duration::from_secs(10),
    };
    let mut outcomes = Vec::new();
    for path in ReservePath::ALL {
        // Not `pg_store_with`: the default deadlock_timeout, as in production.
        let Some(db) = testkit::postgres(Some(&schema_path())).await else {
            return;
        };
        let pool = db.pool_with(shape.clients).await;
        let out = stadium::run(pool, path, shape)
            .await
            .unwrap_or_else(|e| panic!("{path:?}: {e}"));
        eprintln!(
            "{path:?}: {} reserved in {:?}, {:?}",
            out.reserved, out.elapsed, out.races
        );
        outcomes.push(out);
    }
    let lost = |p: ReservePath| {
        outcomes
            .iter()
            .find(|o| o.path == p)
            .map(|o| o.races.races_lost)
    };
    assert!(
        lost(ReservePath::SkipLocked) < lost(ReservePath::OnConflict),
        "{outcomes:?}"
    );
    for out in &outcomes {
        assert_eq!(out.errors, 0, "{out:?}");
        assert_eq!(out.overlapping_pairs, 0, "{out:?}");
        // A reserve cut off at the deadline may have committed before the
        // cut; nothing else is in the lot.
        let (reserved, cut_off) = (out.reserved as i64, out.cut_off as i64);
        assert!(
            (reserved..=reserved + cut_off).contains(&out.rows),
            "{out:?}"
        );
        assert!(out.reserved <= u64::from(shape.spots), "{out:?}");
        assert_eq!(
            out.reserved_after_full, 0,
            "'full' while spots were free: {out:?}"
        );
        if out.path != ReservePath::Retry {
            assert_eq!(out.cut_off, 0, "{out:?}");
            assert!(out.filled(), "every client saw the lot full: {out:?}");
            assert_eq!(out.reserved, u64::from(shape.spots), "{out:?}");
            assert_eq!((out.races.deadlocks, out.races.gave_up), (0, 0), "{out:?}");
        }
    }
}
// ANCHOR_END: stadium_test

// ANCHOR: walk_in_race_test
/// Walk-ins never take reserved capacity, under concurrency: spot 1 is
/// reserved from 09:00; then, at 08:07 and all at once, drivers reserve
/// 09:00 to 12:00 and drivers at the gate walk in until 11:00. Every stay
/// overlaps every other, so exactly the other spots are handed out, each
/// once: no walk-in is on spot 1 or on any spot a racing reserve was given,
/// every refusal is "no spot", each walk-in is parked for its whole stay
/// with its three steps recorded, and no refused walk-in left a hold
/// behind. A watcher reads the lot throughout the race and must never see a
/// walk-in short of checked in: its three steps commit together or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_walk_ins_never_take_reserved_capacity() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const SPOTS: u32 = 6;
    const EACH: usize = 12;
    let _serial = ONE_AT_A_TIME.lock().await;
    // One connection per racer, and one for the watcher.
    let Some((_db, store)) = pg_store_with(2 * EACH as u32 + 1).await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(SPOTS))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = now0() + minutes(7);
    let evening = range("2026-03-02T09:00:00Z", "2026-03-02T12:00:00Z");
    let stay = range("2026-03-02T08:00:00Z", "2026-03-02T11:00:00Z");
    let first = store
        .reserve(
            &request(lot, SpotKind::Regular, evening, "EARLY"),
            None,
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    let mut conn = store
        .pool()
        .acquire()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let racing = Arc::new(AtomicBool::new(true));
    let watcher = {
        let racing = Arc::clone(&racing);
        tokio::spawn(async move {
            let (mut reads, mut seen) = (0u32, std::collections::BTreeSet::new());
            while racing.load(Ordering::Relaxed) {
                let halfway: Vec<(String, String)> = sqlx::query_as(
                    "SELECT plate, state FROM reservations
                     WHERE plate LIKE 'GATE%' AND state <> 'checked_in'",
                )
                .fetch_all(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
                seen.extend(halfway);
                reads += 1;
            }
            (reads, seen)
        })
    };
    let barrier = Arc::new(tokio::sync::Barrier::new(2 * EACH));
    let tasks: Vec<_> = (0..2 * EACH)
        .map(|i| {
            let (store, barrier) = (store.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                let walks_in = i % 2 == 0;
                barrier.wait().await;
                if walks_in {
                    let req = request(lot, SpotKind::Regular, stay, &format!("GATE{i}"));
                    (
                        walks_in,
                        store.walk_in(&req, None, now).await.map(|r| r.reservation),
                    )
                } else {
                    let req = request(lot, SpotKind::Regular, evening, &format!("BOOK{i}"));
                    (
                        walks_in,
                        store.reserve(&req, None, now).await.map(|r| r.reservation),
                    )
                }
            })
        })
        .collect();
    let (mut parked, mut booked) = (Vec::new(), Vec::new());
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("{e}")) {
            (true, Ok(r)) => parked.push(r),
            (false, Ok(r)) => booked.push(r),
            (_, Err(StoreError::NoSpotAvailable { .. })) => {}
            (walks_in, Err(e)) => panic!("walk-in {walks_in}: {e}"),
        }
    }
    racing.store(false, Ordering::Relaxed);
    let (reads, halfway) = watcher.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(reads > 1, "the watcher never read during the race");
    assert!(
        halfway.is_empty(),
        "walk-ins seen short of checked in: {halfway:?}"
    );
    assert_eq!(
        parked.len() + booked.len(),
        SPOTS as usize - 1,
        "{parked:?} {booked:?}"
    );
    let mut spots: Vec<i64> = parked.iter().chain(&booked).map(|r| r.spot.id).collect();
    spots.push(first.spot.id);
    spots.sort_unstable();
    spots.dedup();
    assert_eq!(spots.len(), SPOTS as usize, "a spot was handed out twice");
    for r in &parked {
        assert_eq!((r.state, r.range), (State::CheckedIn, stay), "{r:?}");
        let steps: Vec<&str> = store
            .history(r.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|t| t.event.as_str())
            .collect();
        assert_eq!(steps, ["reserve", "confirm", "check_in"]);
    }
    // Every reservation still holds the spot it was given; nothing else is
    // in the lot (a refused walk-in left no hold).
    let all = store
        .reservations(lot)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), SPOTS as usize, "{all:?}");
    for r in booked.iter().chain([&first]) {
        assert!(all.contains(r), "{r:?} changed");
    }
}
// ANCHOR_END: walk_in_race_test

/// A walk-in that loses a deadlock after its INSERT is retried like any
/// lost race. Its confirm is an UPDATE, which the exclusion constraint
/// checks again; on the Retry path a plain INSERT of the same spot may be
/// waiting for the walk-in by then, and the UPDATE then waits for that
/// INSERT: a cycle. Here, deterministically:
///
/// - the walk-in is held between its INSERT and its confirm (a test session
///   locks the history table) until a reserve of the same spot waits for it;
/// - only the walk-in's backend looks for deadlocks in time (the reserve's
///   connections wait 10 s before they look), so the walk-in is the one
///   aborted, whatever the scheduling;
/// - a test session queued on the walk-in's plate lock keeps the walk-in's
///   retry out until the reserve has committed, so the retry cannot insert
///   the same spot again while the reserve rescans (a second deadlock).
///
/// The walk-in must come back parked on the other spot, not as a database
/// error, after exactly one deadlock, all of them the walk-in's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_walk_in_that_loses_a_deadlock_is_retried() {
    use parking_reservation::store::ReservePath;
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some((db, store)) = pg_store_with(6).await else {
        return;
    };
    let store = store.with_path(ReservePath::Retry);
    // The reserve's own store, on connections that never find the cycle
    // first (deadlock_timeout is 50 ms on the walk-in's).
    let patient = db
        .pool
        .connect_options()
        .as_ref()
        .clone()
        .options([("deadlock_timeout", "10s")]);
    let patient = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(patient)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let reserver = PgStore::new(patient).with_path(ReservePath::Retry);
    let lot = store
        .create_lot(&lot_of(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = now0() + minutes(7);
    let stay = range("2026-03-02T08:00:00Z", "2026-03-02T11:00:00Z");
    let gate = close_history(store.pool()).await;
    let walk_in = tokio::spawn({
        let store = store.clone();
        async move {
            let req = request(lot, SpotKind::Regular, stay, "GATE1");
            store.walk_in(&req, None, now).await.map(|r| r.reservation)
        }
    });
    // The walk-in has inserted its hold and waits for the history table.
    wait_for_lock_waiters(store.pool(), 1).await;
    let reserve = tokio::spawn({
        let reserver = reserver.clone();
        async move {
            let req = request(lot, SpotKind::Regular, stay, "BOOK1");
            reserver.reserve(&req, None, now).await
        }
    });
    // The reserve's INSERT of the same spot waits for the walk-in.
    wait_for_lock_waiters(store.pool(), 2).await;
    // A session queues for the walk-in's plate lock: it gets it when the
    // walk-in's first transaction is aborted, before the retry asks.
    let mut plate_gate = store.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    let queued = tokio::spawn(async move {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('GATE1', 0))")
            .execute(&mut *plate_gate)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        plate_gate
    });
    wait_for_lock_waiters(store.pool(), 3).await;
    // The walk-in goes on to its confirm, which waits for the reserve: a
    // cycle that only the walk-in's backend looks for in time.
    gate.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    let plate_gate = queued.await.unwrap_or_else(|e| panic!("{e}"));
    let held = reserve.await.unwrap_or_else(|e| panic!("{e}"));
    let held = held.unwrap_or_else(|e| panic!("the reserve failed: {e}"));
    // The reserve has committed; now the walk-in may try again.
    plate_gate
        .rollback()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let parked = walk_in.await.unwrap_or_else(|e| panic!("{e}"));
    let parked = parked.unwrap_or_else(|e| panic!("the walk-in failed: {e}"));
    assert_eq!(parked.state, State::CheckedIn, "{parked:?}");
    assert_ne!(parked.spot, held.reservation.spot);
    assert_eq!(store.race_stats().deadlocks, 1, "{:?}", store.race_stats());
    assert_eq!(
        reserver.race_stats().deadlocks,
        0,
        "{:?}",
        reserver.race_stats()
    );
}

/// A transaction holding the history table in SHARE mode: every reserve,
/// walk-in and state change waits at its event row until it ends.
async fn close_history(pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut gate = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("LOCK TABLE reservation_events IN SHARE MODE")
        .execute(&mut *gate)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    gate
}

/// Waits until at least `n` sessions of this database wait for a lock.
async fn wait_for_lock_waiters(pool: &PgPool, n: i64) {
    use std::time::{Duration, Instant};
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        if waiting >= n {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "{waiting} of {n} sessions waiting"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A late confirm that loses a deadlock is retried, not answered with a
/// database error. The confirm's UPDATE brings the row back into the
/// constraint's index, so the constraint checks it like an INSERT, and an
/// in-flight INSERT of the same spot can close a cycle with it. Here,
/// deterministically: the confirm waits for a first in-flight row of the
/// spot (session Y); a second (session X, a later hour, which looks for
/// deadlocks only after 10 s) waits for the confirm; Y rolls back, the confirm's
/// check moves on to X's row and finds the cycle, so the confirm is the
/// one aborted (X's INSERT then goes through). X rolls back too: the spot
/// is free, and the retried confirm must come back confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_confirm_that_loses_a_deadlock_is_retried() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some((_db, store)) = pg_store_with(5).await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = request(lot, SpotKind::Regular, slots(8, 12), "LATE1");
    let lapsed = store
        .reserve(&req, None, now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    let late = now0() + minutes(12);
    assert_eq!(store.expire_holds(late).await.ok(), Some(1));
    // An in-flight hold of the spot for `range`, by a session of its own.
    let hold_of_spot = |range: TimeRange| {
        let pool = store.pool().clone();
        async move {
            let mut tx = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
            // Only the confirm's backend looks for a deadlock in time.
            sqlx::query("SET LOCAL deadlock_timeout = '10s'")
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let inserted = sqlx::query(
                "INSERT INTO reservations (id, lot_id, spot_id, plate, during, state,
                                           hold_expires_at, quote_cents, created_at, updated_at)
                 VALUES ($1, $2, $3, 'OTHER1', tstzrange($4, $5), 'held', $6, 0, $7, $7)",
            )
            .bind(uuid::Uuid::new_v4())
            .bind(lot)
            .bind(lapsed.spot.id)
            .bind(range.start())
            .bind(range.end())
            .bind(late + minutes(10))
            .bind(late)
            .execute(&mut *tx)
            .await;
            (tx, inserted)
        }
    };
    let (y, inserted) = hold_of_spot(slots(8, 4)).await;
    inserted.unwrap_or_else(|e| panic!("{e}"));
    let confirm = tokio::spawn({
        let store = store.clone();
        async move { store.apply(lapsed.id, Event::Confirm, late).await }
    });
    // The confirm's UPDATE waits for Y's row...
    wait_for_lock_waiters(store.pool(), 1).await;
    let x = tokio::spawn(hold_of_spot(slots(16, 4)));
    // ...and X's INSERT for the confirm's,
    wait_for_lock_waiters(store.pool(), 2).await;
    // X looks for a deadlock only after 10 s. Y goes away and the confirm
    // waits for X: a cycle, which the confirm's backend finds (50 ms).
    y.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    let (x, inserted) = x.await.unwrap_or_else(|e| panic!("{e}"));
    // X was not the one aborted: the confirm was.
    inserted.unwrap_or_else(|e| panic!("X lost the deadlock instead: {e}"));
    x.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    let confirmed = confirm.await.unwrap_or_else(|e| panic!("{e}"));
    let confirmed = confirmed.unwrap_or_else(|e| panic!("the late confirm failed: {e}"));
    assert_eq!(confirmed.state, State::Confirmed, "{confirmed:?}");
    let steps: Vec<&str> = store
        .history(lapsed.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|t| t.event.as_str())
        .collect();
    assert_eq!(steps, ["reserve", "expire", "confirm"]);
}

// ANCHOR: deadline_test
/// A load phase ends at its deadline even when no request can finish: a
/// transaction locks the table every request needs and never lets go. Both
/// the strategy run and the stadium run return within a moment of their
/// deadline, with every client's request counted as cut off, nothing
/// counted as done, and the blocker's session ended so the audit could read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_phases_end_at_their_deadline_when_nothing_can_finish() {
    use parking_reservation::stadium::{self, Stadium};
    use parking_reservation::store::ReservePath;
    use std::time::{Duration, Instant};
    let _serial = ONE_AT_A_TIME.lock().await;
    let deadline = Duration::from_secs(1);
    // Before the fix the runs waited for the blocker, that is forever.
    let bound = deadline + Duration::from_secs(8);

    let Some((_db, pool)) = strategies_db().await else {
        return;
    };
    let mut blocker = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("LOCK TABLE bookings IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let shape = Contention {
        clients: 4,
        deadline,
        ..shape()
    };
    let began = Instant::now();
    let out = tokio::time::timeout(bound, strategies::contend(&pool, Strategy::Naive, shape))
        .await
        .unwrap_or_else(|_| panic!("the strategy run did not return within {bound:?}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(began.elapsed() < bound, "{:?}", began.elapsed());
    assert_eq!((out.attempts, out.cut_off), (0, 4), "{out:?}");
    assert!(out.elapsed < deadline + Duration::from_secs(2), "{out:?}");
    // The blocker was ended with the abandoned attempts.
    assert!(blocker.commit().await.is_err(), "the blocker survived");

    let Some(db) = testkit::postgres(Some(&schema_path())).await else {
        return;
    };
    let pool = db.pool_with(5).await;
    let mut blocker = pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("LOCK TABLE reservations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let shape = Stadium {
        spots: 8,
        clients: 4,
        deadline,
    };
    let began = Instant::now();
    let out = tokio::time::timeout(bound, stadium::run(pool.clone(), ReservePath::Retry, shape))
        .await
        .unwrap_or_else(|_| panic!("the stadium run did not return within {bound:?}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(began.elapsed() < bound, "{:?}", began.elapsed());
    assert_eq!((out.reserved, out.cut_off, out.rows), (0, 4, 0), "{out:?}");
    assert!(out.elapsed < deadline + Duration::from_secs(2), "{out:?}");
    assert!(blocker.commit().await.is_err(), "the blocker survived");
}
// ANCHOR_END: deadline_test

/// A load round of the bench ends at its deadline, and so do its
/// transactions: with the table every reserve needs locked, a round of the
/// real reserve path returns within a moment of its window, every client's
/// request counted as cut off and nothing else counted; and when it has
/// returned, no session of the round is still running a statement or
/// holding a transaction open (dropping a request's future frees only the
/// client; without `quiesce` its session waited on the lock for as long as
/// the blocker lived).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_load_round_ends_at_its_deadline_with_its_transactions() {
    use parking_reservation::load::{self, LoadSpec};
    use sqlx::Connection;
    use std::time::{Duration, Instant};
    let _serial = ONE_AT_A_TIME.lock().await;
    let measure = Duration::from_secs(1);
    let bound = measure + Duration::from_secs(8);
    let clients = 4;
    let Some((_db, store)) = pg_store_with(clients + 1).await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(8))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut blocker = store.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    let blocker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *blocker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("LOCK TABLE reservations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = LoadSpec {
        clients,
        warmup: Duration::ZERO,
        measure,
        seed: 7,
    };
    let began = Instant::now();
    let run = tokio::time::timeout(bound, load::reserve_load(&store, lot, spec))
        .await
        .unwrap_or_else(|_| panic!("the load round did not return within {bound:?}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(began.elapsed() < bound, "{:?}", began.elapsed());
    assert_eq!(
        (run.total(), run.cut_off),
        (0, u64::from(clients)),
        "{run:?}"
    );
    assert!(run.elapsed < measure + Duration::from_secs(2), "{run:?}");

    // Every session of this database but the blocker's and this one's.
    let mut watcher = sqlx::PgConnection::connect_with(&store.pool().connect_options())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let busy: Vec<(i32, String, String)> = sqlx::query_as(
        "SELECT pid, coalesce(state, ''), left(coalesce(query, ''), 80)
         FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1
           AND backend_type = 'client backend'
           AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')",
    )
    .bind(blocker_pid)
    .fetch_all(&mut watcher)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        busy.is_empty(),
        "sessions of the round still busy: {busy:?}"
    );
    // The blocker was ended with the abandoned requests, as in the other phases.
    assert!(blocker.commit().await.is_err(), "the blocker survived");
}

/// Skipping locked spots must not turn into a false "full": a spot locked
/// by a reserve that will fail (here, a transaction that holds the lock and
/// rolls back) is still offered by the plain query, and the hold is made.
#[tokio::test]
async fn a_locked_spot_is_not_a_full_lot() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some((_db, store)) = pg_store_with(3).await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut blocker = store.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("SELECT id FROM spots WHERE lot_id = $1 FOR NO KEY UPDATE")
        .bind(lot)
        .fetch_all(&mut *blocker)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = request(lot, SpotKind::Regular, slots(8, 4), "LOCKED1");
    let got = store.reserve(&req, None, now0()).await;
    assert!(got.is_ok(), "{got:?}");
    blocker.rollback().await.unwrap_or_else(|e| panic!("{e}"));
}

// ANCHOR: sweep_lock_test
/// One sweeper at a time: while another process's sweep holds the
/// transaction-level advisory lock, a sweep skips; once that transaction
/// ends, on whatever connection, the lock is gone and the next sweep runs.
#[tokio::test]
async fn one_sweeper_at_a_time_and_the_lock_goes_with_the_transaction() {
    use parking_reservation::store::SWEEP_LOCK;
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some((_db, store)) = pg_store_with(3).await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .reserve(
            &request(lot, SpotKind::Regular, slots(8, 4), "SWEPT1"),
            None,
            now0(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let later = now0() + minutes(11);
    let mut other = store.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SWEEP_LOCK)
        .fetch_one(&mut *other)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(taken);
    assert_eq!(store.sweep(later).await.ok(), Some(None), "skipped");
    other.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let swept = store.sweep(later).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(swept.map(|s| s.expired), Some(1));
    // And the sweep released its own lock: the next one runs too.
    assert!(matches!(store.sweep(later).await, Ok(Some(_))));
}
// ANCHOR_END: sweep_lock_test

// ANCHOR: hold_limit_race
/// The hold limit under concurrency: eight requests of one plate at once,
/// on eight connections, leave exactly MAX_HOLDS_PER_PLATE holds. A test
/// session locks the history table, which every reserve writes after its
/// count, and lets go only when all eight wait for a lock: without the
/// plate's lock all eight have counted by then, and all eight get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_of_one_plate_stop_at_the_limit() {
    use parking_reservation::domain::MAX_HOLDS_PER_PLATE;
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some((_db, store)) = pg_store_with(11).await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(8))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let gate = close_history(store.pool()).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let req = request(lot, SpotKind::Regular, slots(8 + 4 * i, 4), "SQUAT9");
                store.reserve(&req, None, now0()).await
            })
        })
        .collect();
    wait_for_lock_waiters(store.pool(), 8).await;
    gate.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    let (mut held, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("{e}")) {
            Ok(_) => held += 1,
            Err(StoreError::TooManyHolds { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        (held, refused),
        (MAX_HOLDS_PER_PLATE, 8 - MAX_HOLDS_PER_PLATE)
    );
}
// ANCHOR_END: hold_limit_race

// ANCHOR: active_limit_race
/// The reservation limit under concurrency: a plate one short of
/// MAX_ACTIVE_PER_PLATE sends reserves, walk-ins and a late confirm all at
/// once, on separate connections. Exactly one gets through. The history
/// table is locked (every one of them writes it after its count) until all
/// nine wait for a lock: without the plate's lock, or without it in the
/// confirm alone, more than one has passed the count by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reserves_walk_ins_and_confirms_of_one_plate_stop_at_the_limit() {
    use parking_reservation::domain::MAX_ACTIVE_PER_PLATE;
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some((_db, store)) = pg_store_with(12).await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let t = |m: i64| now0() + minutes(m);
    let req = |i: i64| request(lot, SpotKind::Regular, slots(8 + 4 * i, 4), "HOG9");
    for i in 0..i64::from(MAX_ACTIVE_PER_PLATE) - 1 {
        let held = store
            .reserve(&req(i), None, t(0))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .reservation;
        store
            .apply(held.id, Event::Confirm, t(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // A lapsed hold whose late confirm races the rest.
    let lapsed = store
        .reserve(&req(20), None, t(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    assert_eq!(store.expire_holds(t(12)).await.ok(), Some(1));
    let clients: i64 = 9;
    let history = close_history(store.pool()).await;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let store = store.clone();
            let hold = req(30 + i);
            let gate = request(lot, SpotKind::Regular, slots(0, 4 + i), "HOG9");
            tokio::spawn(async move {
                match i % 3 {
                    0 => store.reserve(&hold, None, t(13)).await.map(|_| ()),
                    1 => store.walk_in(&gate, None, t(13)).await.map(|_| ()),
                    _ => store
                        .apply(lapsed.id, Event::Confirm, t(13))
                        .await
                        .map(|_| ()),
                }
            })
        })
        .collect();
    wait_for_lock_waiters(store.pool(), clients).await;
    history.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    let mut through = 0;
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("{e}")) {
            Ok(()) => through += 1,
            // Refused by the limit, or the losers of the confirm (already
            // confirmed) and of the walk-ins (the plate is parked).
            Err(
                StoreError::TooManyReservations { .. }
                | StoreError::TooManyHolds { .. }
                | StoreError::AlreadyParked
                | StoreError::Transition(_),
            ) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM reservations
         WHERE plate = 'HOG9' AND state IN ('held', 'confirmed', 'checked_in')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (through, live),
        (1, i64::from(MAX_ACTIVE_PER_PLATE)),
        "one plate went past its limit"
    );
}
// ANCHOR_END: active_limit_race

/// The audit trail is append-only for every writer, `psql` included.
#[tokio::test]
async fn the_audit_trail_refuses_updates_and_deletes() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .reserve(
            &request(lot, SpotKind::Regular, slots(8, 4), "AUDIT9"),
            None,
            now0(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for sql in [
        "UPDATE reservation_events SET charged_cents = 0",
        "DELETE FROM reservation_events",
    ] {
        let refused = sqlx::query(sql).execute(store.pool()).await;
        assert_eq!(
            refused
                .as_ref()
                .err()
                .and_then(strategies::sqlstate)
                .as_deref(),
            Some("42501"),
            "{sql}: {refused:?}"
        );
    }
}

/// Two events on one reservation are applied one at a time, under its row
/// lock (`FOR UPDATE` in the transition's read). Eight cancels of one hold
/// are sent at once, and a test session holds the history table so that all
/// eight have read the reservation before any writes: exactly one cancels,
/// the other seven are refused, and the history has one cancel. Without the
/// row lock all eight read `held`, and all eight "cancel" it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_events_on_one_reservation_apply_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some((_db, store)) = pg_store_with(11).await else {
        return;
    };
    let lot = store
        .create_lot(&lot_of(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = request(lot, SpotKind::Regular, slots(8, 4), "TWICE1");
    let held = store
        .reserve(&req, None, now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    let gate = close_history(store.pool()).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.apply(held.id, Event::Cancel, now0()).await })
        })
        .collect();
    wait_for_lock_waiters(store.pool(), 8).await;
    gate.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    let (mut applied, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("{e}")) {
            Ok(_) => applied += 1,
            Err(StoreError::Transition(_)) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((applied, refused), (1, 7));
    let cancels = store
        .history(held.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .filter(|t| t.event == Event::Cancel)
        .count();
    assert_eq!(cancels, 1, "one cancel in the history");
}
