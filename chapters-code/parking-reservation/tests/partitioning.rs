//! The scaling sketch `sql/partitioned.sql`: partitioned by lot, the
//! invariant still holds, one partition at a time.

mod common;

use std::path::PathBuf;

use parking_reservation::strategies::sqlstate;

fn partitioned_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/partitioned.sql")
}

const INSERT: &str = "INSERT INTO reservations (id, lot_id, spot_id, during, state)
                      VALUES (gen_random_uuid(), $1, $2, tstzrange($3::timestamptz, $4::timestamptz), $5)";

#[tokio::test]
async fn partitioning_by_lot_keeps_the_invariant() {
    let Some(db) = testkit::postgres(Some(&partitioned_path())).await else {
        return;
    };
    let insert =
        |lot: i64, spot: i64, from: &'static str, to: &'static str, state: &'static str| {
            sqlx::query(INSERT)
                .bind(lot)
                .bind(spot)
                .bind(from)
                .bind(to)
                .bind(state)
                .execute(&db.pool)
        };
    for lot in 1..=8 {
        let spot = lot * 100;
        assert!(
            insert(
                lot,
                spot,
                "2030-01-01 09:00Z",
                "2030-01-01 11:00Z",
                "confirmed"
            )
            .await
            .is_ok()
        );
        // Same spot, overlapping: refused by the partition's own constraint.
        let clash = insert(lot, spot, "2030-01-01 10:00Z", "2030-01-01 12:00Z", "held").await;
        assert_eq!(
            clash.as_ref().err().and_then(sqlstate).as_deref(),
            Some("23P01"),
            "lot {lot}"
        );
        // Not live: allowed. Back to back: allowed.
        assert!(
            insert(
                lot,
                spot,
                "2030-01-01 10:00Z",
                "2030-01-01 12:00Z",
                "cancelled"
            )
            .await
            .is_ok()
        );
        assert!(
            insert(lot, spot, "2030-01-01 11:00Z", "2030-01-01 12:00Z", "held")
                .await
                .is_ok()
        );
    }
    // The rows spread over the partitions, and each lot lives in exactly one.
    let spread: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tableoid::regclass::text, count(DISTINCT lot_id) FROM reservations GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(spread.len() > 1, "{spread:?}");
    assert_eq!(spread.iter().map(|(_, n)| n).sum::<i64>(), 8, "{spread:?}");
}

// ANCHOR: cross_partition
#[tokio::test]
async fn a_cross_partition_constraint_must_name_the_lot() {
    let Some(db) = testkit::postgres(Some(&partitioned_path())).await else {
        return;
    };
    // Without the partition key the constraint would have to look across
    // partitions; PostgreSQL refuses it (SQLSTATE 0A000, feature_not_supported).
    let refused = sqlx::query(
        "ALTER TABLE reservations ADD CONSTRAINT everywhere
         EXCLUDE USING gist (spot_id WITH =, during WITH &&)",
    )
    .execute(&db.pool)
    .await;
    assert_eq!(
        refused.as_ref().err().and_then(sqlstate).as_deref(),
        Some("0A000"),
        "{refused:?}"
    );
}
// ANCHOR_END: cross_partition
