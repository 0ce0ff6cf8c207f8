//! The measured runs of `benches/checkout.rs`, on a small configuration.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ecommerce::checkout::Checkout;
use ecommerce::checkout::provider::FakeProvider;
use ecommerce::load::{LoadSpec, checkout_load, insert_ceiling, overload, seed_perf_catalog};
use ecommerce::service::admission;

#[tokio::test]
async fn the_measured_runs_work_on_a_small_configuration() {
    let Some((_db, store)) = pg_store_with(4).await else {
        return;
    };
    seed_perf_catalog(store.pool()).await.expect("seeding");
    let provider = Arc::new(FakeProvider::new());
    let checkout = Checkout::new(Arc::new(store.clone()), Arc::clone(&provider));
    let spec = LoadSpec {
        clients: 2,
        warmup: Duration::from_millis(50),
        measure: Duration::from_millis(300),
        seed: 1,
    };
    let keyed = checkout_load(checkout.clone(), true, spec).await;
    assert!(keyed.ok > 0 && keyed.errors == 0, "{keyed:?}");
    let plain = checkout_load(checkout.clone(), false, spec).await;
    assert!(plain.ok > 0 && plain.errors == 0);
    let ceiling = insert_ceiling(store.pool().clone(), spec).await;
    assert!(ceiling.ok > 0 && ceiling.errors == 0);
    // Every successful checkout is one charge and one paid order (the ceiling's rows are not orders of the checkout).
    let paid: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'paid'")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(paid as usize, provider.charges());
    // The admission bucket refuses what exceeds its rate, at once.
    let run = overload(
        checkout,
        admission(20, 2),
        200.0,
        Duration::from_millis(500),
        Duration::from_secs(1),
        3,
    )
    .await;
    assert!(
        run.rejected > run.offered / 2,
        "{} of {} refused",
        run.rejected,
        run.offered
    );
    assert_eq!(run.completed, run.offered - run.rejected);
}
