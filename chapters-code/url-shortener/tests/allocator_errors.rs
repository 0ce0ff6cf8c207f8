//! The ticket-server allocator's failures, provoked on a real PostgreSQL,
//! reach the status and `Retry-After` the errors block gives their class:
//! a bug is a 500, a refusal an operator must lift a 503 without
//! `Retry-After`, and only a passing failure asks the client to come back.

use std::time::Duration;

use axum::http::StatusCode;
use sqlx::postgres::PgPoolOptions;
use url_shortener::codegen::{BlockAllocator, CodegenError};
use url_shortener::service::error::ApiError;
use url_shortener::shortener::LinkError;
use url_shortener::store::PgStore;

/// What the client gets for an allocator failure: status and `Retry-After` in seconds.
fn answer(e: CodegenError) -> (StatusCode, Option<u64>) {
    let r = block_errors::respond(&ApiError::from(LinkError::Codegen(e)));
    (r.status, r.retry_after.map(block_errors::retry_after_secs))
}

async fn lease_error(pool: sqlx::PgPool) -> CodegenError {
    PgStore::new(pool)
        .allocator("codes")
        .lease(100)
        .await
        .err()
        .unwrap_or_else(|| panic!("the lease succeeded"))
}

#[tokio::test]
async fn an_allocator_bug_is_a_500_and_only_a_passing_failure_says_when_to_retry() {
    let Some(db) = testkit::postgres(None).await else {
        return;
    };
    let pool = || async {
        PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(100))
            .connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("pool: {e}"))
    };

    // No id_blocks table: the code names what the schema lacks (42P01).
    let e = lease_error(pool().await).await;
    assert_eq!(
        answer(e.clone()),
        (StatusCode::INTERNAL_SERVER_ERROR, None),
        "{e}"
    );

    // Every connection held: the pool gives up (retryable overload).
    let busy = pool().await;
    let held = busy.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    let e = lease_error(busy.clone()).await;
    assert_eq!(
        answer(e.clone()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(1)),
        "{e}"
    );
    drop(held);

    // The server refuses the write as it would for a missing grant (42501):
    // final, an operator must act.
    db.apply_sql(
        "CREATE TABLE id_blocks (name text PRIMARY KEY, next_id bigint NOT NULL);
         CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RAISE SQLSTATE '42501'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON id_blocks
             FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .await
    .unwrap_or_else(|e| panic!("schema: {e}"));
    let e = lease_error(pool().await).await;
    assert_eq!(
        answer(e.clone()),
        (StatusCode::SERVICE_UNAVAILABLE, None),
        "{e}"
    );

    // Every code handed out: permanent, so no Retry-After.
    assert_eq!(
        answer(CodegenError::SpaceExhausted),
        (StatusCode::SERVICE_UNAVAILABLE, None)
    );
}
