//! The plans of the store's hot queries, read with `EXPLAIN ANALYZE` on a
//! real PostgreSQL: what one call reads must not grow with the audience.

mod common;

use serde_json::Value;
use sqlx::AssertSqlSafe;
use twitter_timeline::fanout::DEFAULT_BATCH;
use twitter_timeline::store::AUDIENCE;

/// Rows read by every scan of `relation` in a JSON plan, summed over loops.
fn rows_read(plan: &Value, relation: &str) -> u64 {
    let mut total = 0;
    if plan.get("Relation Name").and_then(Value::as_str) == Some(relation) {
        let rows = plan["Actual Rows"].as_u64().unwrap_or(0);
        let loops = plan["Actual Loops"].as_u64().unwrap_or(1);
        total += rows * loops;
    }
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        total += children.iter().map(|c| rows_read(c, relation)).sum::<u64>();
    }
    total
}

// ANCHOR: audience_reads_a_batch
/// One fan-out batch reads at most a batch's rows of `follows`, wherever
/// the job is in its audience: a post costs O(followers) reads, not
/// O(followers² / batch). Seen failing with the LIMIT outside the UNION:
/// the first batch of 20,000 followers read all 20,000.
#[tokio::test]
async fn a_fan_out_batch_reads_at_most_a_batch_of_followers() {
    let Some(db) = common::pg_db().await else {
        return;
    };
    const FOLLOWERS: i64 = 20_000;
    for s in [
        format!(
            "INSERT INTO users (handle) SELECT 'u' || i FROM generate_series(1, {}) AS i",
            FOLLOWERS + 1
        ),
        format!(
            "INSERT INTO follows (follower, followee) SELECT f, 1 FROM generate_series(2, {}) AS f",
            FOLLOWERS + 1
        ),
        // Three other follows each: the primary key is no shortcut.
        format!(
            "INSERT INTO follows (follower, followee) SELECT f, 2 + (f * 7 + g) % {FOLLOWERS} \
             FROM generate_series(2, {}) AS f, generate_series(1, 3) AS g \
             WHERE 2 + (f * 7 + g) % {FOLLOWERS} <> f ON CONFLICT DO NOTHING",
            FOLLOWERS + 1
        ),
        "VACUUM (ANALYZE) follows".to_string(),
    ] {
        sqlx::query(AssertSqlSafe(s))
            .execute(&db.pool)
            .await
            .expect("seed");
    }
    let limit = DEFAULT_BATCH as i64 + 1;
    for after in [i64::MIN, 1, FOLLOWERS / 2, FOLLOWERS] {
        let plan: Value = sqlx::query_scalar(AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, FORMAT JSON, TIMING OFF) {AUDIENCE}"
        )))
        .bind(1i64)
        .bind(after)
        .bind(limit)
        .fetch_one(&db.pool)
        .await
        .expect("explain");
        let read = rows_read(&plan[0]["Plan"], "follows");
        assert!(
            read <= limit as u64,
            "after {after}: the batch read {read} follows rows for a limit of {limit}"
        );
    }
}
// ANCHOR_END: audience_reads_a_batch
