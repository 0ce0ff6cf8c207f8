//! Shared fixtures of the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use parking_reservation::domain::{LotId, Plate, ReserveRequest, SLOT, SpotKind, TimeRange};
use parking_reservation::store::{LevelLayout, LotLayout, PgStore};
use testkit::TestDb;

/// `sql/schema.sql` of this crate.
pub fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/schema.sql")
}

/// `sql/strategies.sql` of this crate.
pub fn strategies_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/strategies.sql")
}

/// A throwaway database with the schema, and a store over it; `None` after a SKIPPED line.
pub async fn pg_store() -> Option<(TestDb, PgStore)> {
    let db = testkit::postgres(Some(&schema_path())).await?;
    let store = PgStore::new(db.pool.clone());
    Some((db, store))
}

/// Like [`pg_store`], with a pool of `max` connections for concurrency tests.
pub async fn pg_store_with(max: u32) -> Option<(TestDb, PgStore)> {
    let db = testkit::postgres(Some(&schema_path())).await?;
    lower_deadlock_timeout(&db).await;
    let store = PgStore::new(db.pool_with(max).await);
    Some((db, store))
}

/// Sets `deadlock_timeout` to 50 ms for connections opened from now on.
///
/// Overlapping INSERTs at one instant under the exclusion constraint can wait
/// for each other in a cycle that only the deadlock detector breaks, after
/// `deadlock_timeout` (1 s by default); the loser gets 40P01 and is retried
/// like a 23P01. The outcome is the same at any timeout, and a short one keeps
/// the concurrency tests short.
pub async fn lower_deadlock_timeout(db: &TestDb) {
    let sql = format!(
        r#"ALTER DATABASE "{}" SET deadlock_timeout = '50ms'"#,
        db.name()
    );
    if let Err(e) = db.apply_sql(&sql).await {
        panic!("lowering deadlock_timeout: {e}");
    }
}

/// An instant from RFC 3339 text (test input, so a panic is the right failure).
pub fn at(s: &str) -> DateTime<Utc> {
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.to_utc(),
        Err(e) => panic!("bad test time {s:?}: {e}"),
    }
}

/// The tests' "now": Monday 2026-03-02 08:00 UTC.
pub fn now0() -> DateTime<Utc> {
    at("2026-03-02T08:00:00Z")
}

/// `len` slots starting `first` slots after [`now0`].
pub fn slots(first: i64, len: i64) -> TimeRange {
    let start = now0() + SLOT * i32::try_from(first).unwrap_or(0);
    match TimeRange::new(start, start + SLOT * i32::try_from(len).unwrap_or(1)) {
        Ok(r) => r,
        Err(e) => panic!("bad test range {first}+{len}: {e}"),
    }
}

/// A range from RFC 3339 text.
pub fn range(start: &str, end: &str) -> TimeRange {
    match TimeRange::parse(start, end) {
        Ok(r) => r,
        Err(e) => panic!("bad test range: {e}"),
    }
}

/// A plate from test text.
pub fn plate(s: &str) -> Plate {
    match Plate::parse(s) {
        Ok(p) => p,
        Err(e) => panic!("bad test plate {s:?}: {e}"),
    }
}

/// A request for `kind` over `range` by `who`.
pub fn request(lot_id: LotId, kind: SpotKind, range: TimeRange, who: &str) -> ReserveRequest {
    ReserveRequest {
        lot_id,
        kind,
        range,
        plate: plate(who),
    }
}

/// Level 0: two regular spots and one EV spot; level 1: two regular spots.
pub fn small_lot() -> LotLayout {
    LotLayout {
        name: "Small lot".to_string(),
        location: None,
        levels: vec![
            LevelLayout {
                level: 0,
                spots: vec![(SpotKind::Regular, 2), (SpotKind::Ev, 1)],
            },
            LevelLayout {
                level: 1,
                spots: vec![(SpotKind::Regular, 2)],
            },
        ],
    }
}

/// A lot with `n` regular spots on level 0.
pub fn lot_of(n: u32) -> LotLayout {
    LotLayout {
        name: format!("Lot of {n}"),
        location: None,
        levels: vec![LevelLayout {
            level: 0,
            spots: vec![(SpotKind::Regular, n)],
        }],
    }
}

/// Minutes as a `TimeDelta`.
pub fn minutes(m: i64) -> TimeDelta {
    TimeDelta::minutes(m)
}
