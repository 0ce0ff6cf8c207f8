//! The alias race, as an experiment: many clients create the same alias at
//! once, through the real use case, on PostgreSQL with and without the
//! unique constraint on `code`.
//!
//! With `links_code_key`, one create commits and every other one gets
//! "alias taken". Without it, nothing in the application stops the others:
//! each insert commits, and the alias ends up with several rows. A test
//! runs both and requires more than one winner without the constraint (so
//! the constraint, not luck, is what makes the behaviour suite pass), and
//! the book's table is generated from the same function.

use std::sync::Arc;

use anyhow::{Context, ensure};
use chrono::Utc;
use tokio::task::JoinSet;

use crate::shortener::LinkError;
use crate::store::{PgStore, SCHEMA};
use crate::{App, Config};

/// Concurrent clients in the race.
pub const CONTENDERS: usize = 64;

/// The line of `sql/schema.sql` that the scratch schema leaves out.
const UNIQUE_LINE: &str = "    CONSTRAINT links_code_key UNIQUE (code),\n";

/// How one race ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaceOutcome {
    /// Creates that answered "created".
    pub winners: usize,
    /// Creates that answered "alias taken".
    pub conflicts: usize,
    /// Rows holding the alias afterwards.
    pub rows: i64,
}

/// The schema with the unique constraint on `code` removed: the scratch
/// table of the experiment. Fails if the schema no longer has that line.
pub fn schema_without_unique_code() -> anyhow::Result<String> {
    ensure!(
        SCHEMA.contains(UNIQUE_LINE),
        "sql/schema.sql no longer declares links_code_key as the race expects"
    );
    Ok(SCHEMA.replace(UNIQUE_LINE, ""))
}

// ANCHOR: alias_race
/// [`CONTENDERS`] concurrent creates of the alias `launch`, each for its own
/// URL, through the use case on `store` (whose schema is already applied).
pub async fn alias_race(store: PgStore) -> anyhow::Result<RaceOutcome> {
    let app = App::postgres(
        store.clone(),
        Config {
            rate_limit: None,
            // The race is about the constraint, not latency: on a loaded
            // machine the default 500 ms would turn a slow create into an
            // "unexpected" store timeout and fail the race for nothing.
            store_timeout: std::time::Duration::from_secs(30),
            ..Config::default()
        },
    )?;
    let shortener = Arc::new(app.shortener().clone());
    let mut creates = JoinSet::new();
    for i in 0..CONTENDERS {
        let shortener = Arc::clone(&shortener);
        creates.spawn(async move {
            let now = Utc::now();
            let url = format!("https://example.com/contender/{i}");
            let req = shortener
                .validate(&url, Some("launch"), None, None, now)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok::<_, anyhow::Error>(shortener.create(req, now).await)
        });
    }
    let (mut winners, mut conflicts) = (0, 0);
    while let Some(done) = creates.join_next().await {
        match done.context("create task")?? {
            Ok(created) if created.is_new => winners += 1,
            Ok(_) => anyhow::bail!("a contender's create was taken for a retry"),
            Err(LinkError::AliasTaken) => conflicts += 1,
            Err(e) => anyhow::bail!("unexpected {e}"),
        }
    }
    let rows = sqlx::query_scalar("SELECT count(*) FROM links WHERE code = 'launch'")
        .fetch_one(store.pool())
        .await?;
    drop(app);
    Ok(RaceOutcome {
        winners,
        conflicts,
        rows,
    })
}
// ANCHOR_END: alias_race
