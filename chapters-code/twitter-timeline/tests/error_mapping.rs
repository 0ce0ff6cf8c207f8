//! Real sqlx errors, one per class of the errors block, through the
//! chapter's `ApiError`: each reaches the status and `Retry-After` the block
//! gives its class. The failures and the expected answers are the block's
//! (`block_errors::testing`). Seen failing before `StoreError::Refused`: a
//! missing grant answered 503 with `Retry-After`, as if waiting would help.

use twitter_timeline::app::AppError;
use twitter_timeline::service::ApiError;
use twitter_timeline::store::db_error;

// ANCHOR: mapping_table
#[tokio::test]
async fn each_database_failure_gets_its_class_status_and_retry_after() {
    let Some(db) = testkit::postgres(None).await else {
        return;
    };
    let paths: &[block_errors::testing::Path<ApiError>] =
        &[("store", |e| ApiError::App(AppError::from(db_error(e))))];
    block_errors::testing::assert_database_failures(&db.url, paths).await;
}
// ANCHOR_END: mapping_table
