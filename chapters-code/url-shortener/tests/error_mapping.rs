//! Real sqlx errors, one per class of the errors block, through the
//! store's conversion and the chapter's `ApiError`: each reaches the status
//! and `Retry-After` the block gives its class (a standby's read-only
//! 25006 among them: retryable, a 503 with `Retry-After`). The failures and
//! the expected answers are the block's (`block_errors::testing`).

use url_shortener::service::error::ApiError;
use url_shortener::shortener::LinkError;
use url_shortener::store::db_error;

// ANCHOR: mapping_table
#[tokio::test]
async fn each_database_failure_gets_its_class_status_and_retry_after() {
    let Some(db) = testkit::postgres(None).await else {
        return;
    };
    let paths: &[block_errors::testing::Path<ApiError>] =
        &[("store", |e| LinkError::Store(db_error(e)).into())];
    block_errors::testing::assert_database_failures(&db.url, paths).await;
}
// ANCHOR_END: mapping_table

/// A database error reaches the client as a problem with a generic detail:
/// no SQL, no table name, no driver message. The cause goes to the log.
#[tokio::test]
async fn a_database_error_reaches_the_client_without_its_internals() {
    use block_errors::testing::{Provoke, provoke};
    let Some(db) = testkit::postgres(None).await else {
        return;
    };
    let e: ApiError =
        LinkError::Store(db_error(provoke(&db.url, Provoke::MissingTable).await)).into();
    let cause = e.to_string();
    assert!(cause.contains("no_such_table"), "{cause}");
    let body = serde_json::to_string(&block_errors::respond(&e).problem).expect("json");
    for internal in ["no_such_table", "42P01", "SELECT", "relation"] {
        assert!(!body.contains(internal), "{internal} in {body}");
    }
}
