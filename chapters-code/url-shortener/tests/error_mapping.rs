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
