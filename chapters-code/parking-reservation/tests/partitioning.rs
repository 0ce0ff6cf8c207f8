//! The scaling sketch `sql/partitioned.sql`: partitioned by lot, the
//! invariant still holds, one partition at a time.

mod common;

use std::path::PathBuf;

use parking_reservation::strategies::sqlstate;

fn partitioned_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/partitioned.sql")
}

/// Spot `id` in lot `lot`.
async fn add_spot(pool: &sqlx::PgPool, id: i64, lot: i64) {
    let added = sqlx::query("INSERT INTO spots (id, lot_id) VALUES ($1, $2)")
        .bind(id)
        .bind(lot)
        .execute(pool)
        .await;
    if let Err(e) = added {
        panic!("adding spot {id}: {e}");
    }
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
        add_spot(&db.pool, spot, lot).await;
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

// ANCHOR: same_spot_two_lots
/// A spot belongs to one lot. Without a key from the reservation's
/// (spot, lot) to the spot, one spot id filed under two lots lands in two
/// partitions, and no per-partition constraint sees both rows.
#[tokio::test]
async fn the_same_spot_cannot_be_booked_under_two_lots() {
    let Some(db) = testkit::postgres(Some(&partitioned_path())).await else {
        return;
    };
    let insert = |lot: i64| {
        sqlx::query(INSERT)
            .bind(lot)
            .bind(100_i64)
            .bind("2030-01-01 09:00Z")
            .bind("2030-01-01 11:00Z")
            .bind("confirmed")
            .execute(&db.pool)
    };
    add_spot(&db.pool, 100, 1).await;
    add_spot(&db.pool, 200, 2).await;
    assert!(insert(1).await.is_ok());
    let other_lot = insert(2).await;
    let partitions: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT tableoid::regclass::text FROM reservations")
            .fetch_all(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        other_lot.as_ref().err().and_then(sqlstate).as_deref(),
        Some("23503"),
        "spot 100 booked twice for the same hours, under lots 1 and 2, in {partitions:?}"
    );
}
// ANCHOR_END: same_spot_two_lots
