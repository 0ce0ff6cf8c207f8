//! Assignment: which spot a request for a kind gets.
//!
//! The rule is stated once and implemented twice. Stated: *the free spot of
//! the requested kind on the lowest level, lowest number first; a spot is
//! free for a range when no live reservation of it overlaps the range.*
//! Implemented as SQL ([`ASSIGN_SQL`], used by the PostgreSQL store) and as
//! a brute-force scan ([`assign_reference`], used by the in-memory store and
//! as the oracle of the property test `assignment_matches_brute_force`).
//!
//! Lowest level first is a stated preference, not a law: it fills the
//! ground floor before the roof, which drivers like and which makes the
//! answer deterministic. Its cost is that concurrent requests for the same
//! kind and hours all choose the same spot; all but one lose at INSERT and
//! retry (see `store::postgres`).

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
/// The lowest-level free spot of kind `$2` in lot `$1` for `[$3, $4)`.
///
/// The outer scan walks `spots_assignment_order` in (level, number) order;
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
ORDER BY s.level, s.number
LIMIT 1";
// ANCHOR_END: assign_sql

/// Runs [`ASSIGN_SQL`].
pub async fn find_free_spot(
    conn: &mut PgConnection,
    lot_id: LotId,
    kind: SpotKind,
    range: &TimeRange,
) -> Result<Option<SpotRef>, sqlx::Error> {
    let row = sqlx::query(ASSIGN_SQL)
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
        .min_by_key(|at| (at.level, at.number))
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
