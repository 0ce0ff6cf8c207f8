//! Assignment: which spot a request for a kind gets.
//!
//! The rule is stated once and implemented twice. Stated: *the free spot of
//! the requested kind on the level nearest the entrance, which is on the
//! ground floor (level 0); on equal distance the level above before the one
//! below; then the lowest number. A spot is free for a range when no live
//! reservation of it overlaps the range.*
//! Implemented as SQL ([`ASSIGN_SQL`], used by the PostgreSQL store) and as
//! a brute-force scan ([`assign_reference`], used by the in-memory store and
//! as the oracle of the property test `assignment_matches_brute_force`).
//!
//! Nearest the ground floor first is a stated preference, not a law: it
//! fills the ground floor before the roof and the basement, which drivers
//! like and which makes the answer deterministic. Its cost is that
//! concurrent requests for the same kind and hours all prefer the same spot
//! (see `store::postgres` for how the reserve path spreads them).

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};

use crate::domain::{LotId, Reservation, SpotKind, SpotRef, TimeRange};

/// A spot, as the in-memory store keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spot {
    /// The lot it is in.
    pub lot_id: LotId,
    /// What it is for.
    pub kind: SpotKind,
    /// Its identifier, level and number.
    pub at: SpotRef,
}

// ANCHOR: kind_availability
/// How many spots of a kind a lot has, and how many are free for a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindAvailability {
    /// The kind.
    pub kind: SpotKind,
    /// Spots of this kind in the lot.
    pub total: i64,
    /// Of those, spots with no live reservation overlapping the range.
    pub free: i64,
}
// ANCHOR_END: kind_availability

// ANCHOR: assign_sql
/// The free spot of kind `$2` in lot `$1` for `[$3, $4)` nearest the ground floor.
///
/// The outer scan walks `spots_assignment_order` in the order of the rule
/// (distance from level 0, the level above first, then the number);
/// for each spot the `NOT EXISTS` probes the exclusion constraint's own GiST
/// index (same spot, overlapping range, live state), and `LIMIT 1` stops at
/// the first spot the probe finds empty. The `state IN (...)` line repeats
/// the index's `WHERE` so the planner may use that partial index.
pub const ASSIGN_SQL: &str = "
SELECT s.id, s.level, s.number
FROM spots AS s
WHERE s.lot_id = $1
  AND s.kind = $2
  AND NOT EXISTS (
        SELECT 1
        FROM reservations AS r
        WHERE r.spot_id = s.id
          AND r.during && tstzrange($3, $4)
          AND r.state IN ('held', 'confirmed', 'checked_in'))
ORDER BY abs(s.level), s.level DESC, s.number
LIMIT 1";
// ANCHOR_END: assign_sql

// ANCHOR: assign_skip_locked
/// [`ASSIGN_SQL`], skipping spots whose row a concurrent transaction has
/// locked, and locking the spot it returns until this transaction ends.
///
/// `FOR NO KEY UPDATE` and not `FOR UPDATE`: the reservation's foreign key
/// check takes `FOR KEY SHARE` on the spot row, which `FOR UPDATE` would
/// block and `FOR NO KEY UPDATE` does not, so other reserves of the same
/// spot for other hours never wait for this lock.
pub const ASSIGN_SKIP_LOCKED_SQL: &str = "
SELECT s.id, s.level, s.number
FROM spots AS s
WHERE s.lot_id = $1
  AND s.kind = $2
  AND NOT EXISTS (
        SELECT 1
        FROM reservations AS r
        WHERE r.spot_id = s.id
          AND r.during && tstzrange($3, $4)
          AND r.state IN ('held', 'confirmed', 'checked_in'))
ORDER BY abs(s.level), s.level DESC, s.number
LIMIT 1
FOR NO KEY UPDATE OF s SKIP LOCKED";
// ANCHOR_END: assign_skip_locked

/// Runs [`ASSIGN_SKIP_LOCKED_SQL`].
pub async fn find_unlocked_free_spot(
    conn: &mut PgConnection,
    lot_id: LotId,
    kind: SpotKind,
    range: &TimeRange,
) -> Result<Option<SpotRef>, sqlx::Error> {
    run_assign(ASSIGN_SKIP_LOCKED_SQL, conn, lot_id, kind, range).await
}

/// Runs [`ASSIGN_SQL`].
pub async fn find_free_spot(
    conn: &mut PgConnection,
    lot_id: LotId,
    kind: SpotKind,
    range: &TimeRange,
) -> Result<Option<SpotRef>, sqlx::Error> {
    run_assign(ASSIGN_SQL, conn, lot_id, kind, range).await
}

async fn run_assign(
    sql: &'static str,
    conn: &mut PgConnection,
    lot_id: LotId,
    kind: SpotKind,
    range: &TimeRange,
) -> Result<Option<SpotRef>, sqlx::Error> {
    let row = sqlx::query(sql)
        .bind(lot_id)
        .bind(kind.as_str())
        .bind(range.start())
        .bind(range.end())
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(SpotRef {
            id: r.try_get("id")?,
            level: r.try_get("level")?,
            number: r.try_get("number")?,
        })
    })
    .transpose()
}

// ANCHOR: assign_reference
/// The same rule as [`ASSIGN_SQL`], by brute force over every spot and reservation.
pub fn assign_reference(
    spots: &[Spot],
    reservations: &[Reservation],
    lot_id: LotId,
    kind: SpotKind,
    range: &TimeRange,
) -> Option<SpotRef> {
    spots
        .iter()
        .filter(|s| s.lot_id == lot_id && s.kind == kind)
        .filter(|s| is_free(s.at.id, reservations, range))
        .map(|s| s.at)
        .min_by_key(preference)
}

/// The assignment order as a sort key: distance from the ground floor, the
/// level above before the level below, then the number.
pub fn preference(at: &SpotRef) -> (u16, std::cmp::Reverse<i16>, i32) {
    (
        at.level.unsigned_abs(),
        std::cmp::Reverse(at.level),
        at.number,
    )
}

/// True when no live reservation of `spot_id` overlaps `range`.
pub fn is_free(spot_id: i64, reservations: &[Reservation], range: &TimeRange) -> bool {
    !reservations
        .iter()
        .any(|r| r.spot.id == spot_id && r.state.is_live() && r.range.overlaps(range))
}
// ANCHOR_END: assign_reference

// ANCHOR: availability_sql
/// Per kind in lot `$1`: all spots, and the spots free for `[$2, $3)`.
pub const AVAILABILITY_SQL: &str = "
SELECT s.kind,
       count(*) AS total,
       count(*) FILTER (WHERE NOT EXISTS (
            SELECT 1
            FROM reservations AS r
            WHERE r.spot_id = s.id
              AND r.during && tstzrange($2, $3)
              AND r.state IN ('held', 'confirmed', 'checked_in'))) AS free
FROM spots AS s
WHERE s.lot_id = $1
GROUP BY s.kind";
// ANCHOR_END: availability_sql

/// Runs [`AVAILABILITY_SQL`]; kinds the lot does not have are absent; sorted by kind.
pub async fn availability(
    conn: &mut PgConnection,
    lot_id: LotId,
    range: &TimeRange,
) -> Result<Vec<KindAvailability>, AvailabilityError> {
    let rows = sqlx::query(AVAILABILITY_SQL)
        .bind(lot_id)
        .bind(range.start())
        .bind(range.end())
        .fetch_all(conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let kind: String = r.try_get("kind")?;
        out.push(KindAvailability {
            kind: kind.parse()?,
            total: r.try_get("total")?,
            free: r.try_get("free")?,
        });
    }
    out.sort_by_key(|a| a.kind);
    Ok(out)
}

/// Why the availability query failed.
#[derive(Debug, thiserror::Error)]
pub enum AvailabilityError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A row held a kind this code does not know (the schema's CHECK forbids it).
    #[error(transparent)]
    Kind(#[from] crate::domain::KindError),
}

/// The same as [`AVAILABILITY_SQL`], by brute force.
pub fn availability_reference(
    spots: &[Spot],
    reservations: &[Reservation],
    lot_id: LotId,
    range: &TimeRange,
) -> Vec<KindAvailability> {
    SpotKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let of_kind: Vec<&Spot> = spots
                .iter()
                .filter(|s| s.lot_id == lot_id && s.kind == kind)
                .collect();
            (!of_kind.is_empty()).then(|| KindAvailability {
                kind,
                total: of_kind.len() as i64,
                free: of_kind
                    .iter()
                    .filter(|s| is_free(s.at.id, reservations, range))
                    .count() as i64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skip_locked_query_is_the_assignment_query_plus_its_lock() {
        assert_eq!(
            ASSIGN_SKIP_LOCKED_SQL,
            format!("{ASSIGN_SQL}\nFOR NO KEY UPDATE OF s SKIP LOCKED")
        );
    }
}
