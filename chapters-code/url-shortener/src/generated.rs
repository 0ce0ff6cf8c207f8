//! Generators of the book's PostgreSQL outputs (listed in [`crate::book`]).
//!
//! Each creates a throwaway database, applies the schema, seeds enough rows
//! that the planner prefers an index (on a near-empty table a sequential
//! scan is cheaper, and the plan would mislead), runs `ANALYZE`, and returns
//! `EXPLAIN (COSTS OFF)`: no costs, row estimates or timings, so the output
//! is the same on every machine.

use anyhow::{Context, bail};
use sqlx::{AssertSqlSafe, Row};

use crate::store::{DAILY_CLICKS, GET_LINK, SCHEMA};

/// Links seeded before planning.
const SEED_LINKS: u32 = 100_000;

/// Links given 100 days of clicks each (100,000 counter rows).
const SEED_LINKS_WITH_CLICKS: u32 = 1_000;

/// Seeds: links `x1`..`x100000`, and daily counters for the first thousand.
const SEED: &str = "
    INSERT INTO links (code, target, created_at, token_hash)
    SELECT 'x' || i, 'https://example.com/page/' || i, now(), sha256(int4send(i))
    FROM generate_series(1, $1::int) AS i";
const SEED_CLICKS: &str = "
    INSERT INTO link_clicks_daily (link_id, day, count)
    SELECT l.id, DATE '2026-01-01' + d, 1 + (l.id + d) % 50
    FROM links l, generate_series(0, 99) AS d
    WHERE l.id <= $1::int";

/// `EXPLAIN` of the redirect lookup ([`GET_LINK`]) as a markdown code block.
pub fn explain_redirect(database_url: &str) -> anyhow::Result<String> {
    explain(database_url, GET_LINK, "x4242")
}

/// `EXPLAIN` of the stats query ([`DAILY_CLICKS`]) as a markdown code block.
pub fn explain_stats(database_url: &str) -> anyhow::Result<String> {
    explain(database_url, DAILY_CLICKS, "x42")
}

fn explain(database_url: &str, query: &str, code: &str) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let Some(db) = testkit::postgres_at(database_url, None, testkit::services_required()).await
        else {
            bail!("PostgreSQL is unreachable at {database_url}");
        };
        db.apply_sql(SCHEMA).await.context("applying the schema")?;
        sqlx::query(SEED)
            .bind(SEED_LINKS as i32)
            .execute(&db.pool)
            .await
            .context("seeding links")?;
        sqlx::query(SEED_CLICKS)
            .bind(SEED_LINKS_WITH_CLICKS as i32)
            .execute(&db.pool)
            .await
            .context("seeding clicks")?;
        sqlx::query("ANALYZE").execute(&db.pool).await?;
        let rows = sqlx::query(AssertSqlSafe(format!("EXPLAIN (COSTS OFF) {query}")))
            .bind(code)
            .fetch_all(&db.pool)
            .await
            .context("EXPLAIN")?;
        let mut out = String::from("```text\n");
        for row in rows {
            out.push_str(&row.try_get::<String, _>(0)?);
            out.push('\n');
        }
        out.push_str("```\n");
        Ok(out)
    })
}

/// The alias race (`crate::race`) on the real schema and on a scratch
/// schema without `links_code_key`, as a markdown table.
pub fn alias_race_markdown(database_url: &str) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut rows = Vec::new();
        for (label, schema) in [
            ("`sql/schema.sql`", SCHEMA.to_string()),
            (
                "the same without `links_code_key`",
                crate::race::schema_without_unique_code()?,
            ),
        ] {
            let Some(db) =
                testkit::postgres_at(database_url, None, testkit::services_required()).await
            else {
                bail!("PostgreSQL is unreachable at {database_url}");
            };
            db.apply_sql(&schema).await.context("applying the schema")?;
            let store = crate::store::PgStore::new(db.pool_with(16).await);
            let outcome = crate::race::alias_race(store).await?;
            rows.push(format!(
                "| {label} | {} | {} | {} | {} |",
                crate::race::CONTENDERS,
                outcome.winners,
                outcome.conflicts,
                outcome.rows
            ));
        }
        Ok(format!(
            "| Schema | Concurrent creates of one alias | Answered 201 | Answered 409 | Rows holding the alias |\n\
             | --- | ---: | ---: | ---: | ---: |\n{}\n",
            rows.join("\n")
        ))
    })
}
