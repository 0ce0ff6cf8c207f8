//! The assignment and availability SQL agree with brute force, on real PostgreSQL.
//!
//! proptest draws two lots (levels from the second basement to the second
//! floor, random kinds), a set of reservations in every state (live ones
//! never overlapping on a spot, as the constraint demands), and a query on
//! the first lot; the SQL's answer must equal `assign_reference`'s. The
//! second lot's spots are decoys: a query that forgot `s.lot_id = $1` would
//! return one of them.

mod common;

use common::*;
use parking_reservation::assign::{
    Spot, assign_reference, availability, availability_reference, find_free_spot,
};
use parking_reservation::domain::{
    Money, Plate, Reservation, SLOT, SpotKind, SpotRef, State, TimeRange,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sqlx::PgPool;

#[derive(Clone, Debug)]
struct Case {
    spots: Vec<Spot>,
    reservations: Vec<Reservation>,
    kind: SpotKind,
    query: TimeRange,
}

fn kind() -> impl Strategy<Value = SpotKind> {
    prop::sample::select(SpotKind::ALL.to_vec())
}

fn state() -> impl Strategy<Value = State> {
    prop::sample::select(State::ALL.to_vec())
}

fn range_in_day() -> impl Strategy<Value = TimeRange> {
    (0i32..40, 1i32..10).prop_map(|(first, len)| {
        let start = now0() + SLOT * first;
        TimeRange::new(start, start + SLOT * len).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// The levels of the generated lots: two basements, the ground floor, two floors.
const LEVELS: std::ops::RangeInclusive<i16> = -2..=2;

fn case() -> impl Strategy<Value = Case> {
    // Up to 16 spots in lots 1 and 2 on levels -2..=2 (numbered per lot and
    // level), with random kinds.
    let spots = prop::collection::vec((1i64..=2, LEVELS, kind()), 1..16).prop_map(|specs| {
        let mut numbers = std::collections::HashMap::new();
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (lot_id, level, kind))| {
                let number = numbers.entry((lot_id, level)).or_insert(0);
                *number += 1;
                Spot {
                    lot_id,
                    kind,
                    at: SpotRef {
                        id: i as i64 + 1,
                        level,
                        number: *number,
                    },
                }
            })
            .collect::<Vec<_>>()
    });
    (
        spots,
        prop::collection::vec((0usize..16, range_in_day(), state()), 0..30),
        kind(),
        range_in_day(),
    )
        .prop_map(|(spots, wanted, kind, query)| {
            let mut reservations: Vec<Reservation> = Vec::new();
            for (n, (spot_index, range, state)) in wanted.into_iter().enumerate() {
                let spot = spots[spot_index % spots.len()];
                // A live reservation that would break the invariant becomes a cancelled one.
                let clash = reservations.iter().any(|r| {
                    r.spot.id == spot.at.id && r.state.is_live() && r.range.overlaps(&range)
                });
                let state = if state.is_live() && clash {
                    State::Cancelled
                } else {
                    state
                };
                reservations.push(reservation(n, spot, range, state));
            }
            Case {
                spots,
                reservations,
                kind,
                query,
            }
        })
}

fn reservation(n: usize, spot: Spot, range: TimeRange, state: State) -> Reservation {
    let charged = matches!(state, State::CheckedOut | State::Cancelled | State::NoShow)
        .then_some(Money::ZERO);
    Reservation {
        id: uuid::Uuid::from_u128(n as u128 + 1),
        lot_id: spot.lot_id,
        spot: spot.at,
        kind: spot.kind,
        plate: Plate::parse(&format!("P{n}")).unwrap_or_else(|e| panic!("{e}")),
        range,
        state,
        hold_expires_at: now0(),
        quote_cents: Money::ZERO,
        charged_cents: charged,
        created_at: now0(),
        updated_at: now0(),
    }
}

/// Replaces the database's contents with `case`.
async fn load(pool: &PgPool, case: &Case) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("TRUNCATE reservations, spots, levels, lots RESTART IDENTITY CASCADE")
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO lots (name) VALUES ('prop'), ('decoy')")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO levels (lot_id, level)
         SELECT lot, level FROM generate_series(1, 2) AS lot, generate_series($1::int, $2::int) AS level",
    )
    .bind(i32::from(*LEVELS.start()))
    .bind(i32::from(*LEVELS.end()))
    .execute(&mut *tx)
    .await?;
    for s in &case.spots {
        sqlx::query("INSERT INTO spots (lot_id, level, number, kind) VALUES ($1, $2, $3, $4)")
            .bind(s.lot_id)
            .bind(s.at.level)
            .bind(s.at.number)
            .bind(s.kind.as_str())
            .execute(&mut *tx)
            .await?;
    }
    for r in &case.reservations {
        sqlx::query(
            "INSERT INTO reservations (id, lot_id, spot_id, plate, during, state, hold_expires_at,
                                       quote_cents, charged_cents, created_at, updated_at)
             VALUES ($1, $9, $2, $3, tstzrange($4, $5), $6, $7, 0, $8, $7, $7)",
        )
        .bind(r.id)
        .bind(r.spot.id)
        .bind(r.plate.as_str())
        .bind(r.range.start())
        .bind(r.range.end())
        .bind(r.state.as_str())
        .bind(now0())
        .bind(r.charged_cents.map(Money::cents))
        .bind(r.lot_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `check` on 64 random cases against one throwaway database.
///
/// One runtime for everything: the pool's connections belong to the
/// runtime that opened them.
fn for_cases(check: fn(&tokio::runtime::Runtime, &PgPool, &Case) -> Result<(), TestCaseError>) {
    let rt = runtime();
    let Some(db) = rt.block_on(testkit::postgres(Some(&schema_path()))) else {
        return;
    };
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| {
        rt.block_on(load(&db.pool, &case))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        check(&rt, &db.pool, &case)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    drop(db);
}

// ANCHOR: assignment_property
#[test]
fn assignment_matches_brute_force() {
    for_cases(|rt, pool, case| {
        let sql = rt
            .block_on(async {
                let mut conn = pool.acquire().await?;
                find_free_spot(&mut conn, 1, case.kind, &case.query).await
            })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let brute = assign_reference(&case.spots, &case.reservations, 1, case.kind, &case.query);
        prop_assert_eq!(sql, brute);
        Ok(())
    });
}
// ANCHOR_END: assignment_property

#[test]
fn availability_matches_brute_force() {
    for_cases(|rt, pool, case| {
        let sql = rt
            .block_on(async {
                let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
                availability(&mut conn, 1, &case.query)
                    .await
                    .map_err(|e| e.to_string())
            })
            .map_err(TestCaseError::fail)?;
        let brute = availability_reference(&case.spots, &case.reservations, 1, &case.query);
        prop_assert_eq!(sql, brute);
        Ok(())
    });
}

#[test]
fn the_reference_prefers_the_ground_floor_then_number() {
    let spot = |id, level, number| Spot {
        lot_id: 1,
        kind: SpotKind::Regular,
        at: SpotRef { id, level, number },
    };
    let spots = [spot(1, 2, 1), spot(2, 0, 2), spot(3, 1, 1), spot(4, 0, 1)];
    let q = slots(0, 4);
    assert_eq!(
        assign_reference(&spots, &[], 1, SpotKind::Regular, &q).map(|s| s.id),
        Some(4)
    );
    let busy = reservation(0, spots[3], slots(2, 1), State::Confirmed);
    assert_eq!(
        assign_reference(
            &spots,
            std::slice::from_ref(&busy),
            1,
            SpotKind::Regular,
            &q
        )
        .map(|s| s.id),
        Some(2)
    );
    // A cancelled reservation does not occupy its spot.
    let gone = Reservation {
        state: State::Cancelled,
        ..busy
    };
    assert_eq!(
        assign_reference(&spots, &[gone], 1, SpotKind::Regular, &q).map(|s| s.id),
        Some(4)
    );
}
