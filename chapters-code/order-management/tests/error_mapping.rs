//! Real sqlx errors, one per class of the errors block, through the
//! chapter's `ApiError`: each reaches the status and `Retry-After` the block
//! gives its class. The errors come from a real PostgreSQL and a real pool;
//! the failures and the expected answers are the block's
//! (`block_errors::testing`).

use order_management::saga::SagaError;
use order_management::service::ApiError;
use order_management::store::StoreError;

// ANCHOR: mapping_table
#[tokio::test]
async fn each_database_failure_gets_its_class_status_and_retry_after() {
    let Some(db) = testkit::postgres(None).await else {
        return;
    };
    let paths: &[block_errors::testing::Path<ApiError>] = &[
        ("store", |e| StoreError::Database(e).into()),
        ("saga", |e| SagaError::Database(e).into()),
    ];
    block_errors::testing::assert_database_failures(&db.url, paths).await;
}
// ANCHOR_END: mapping_table
