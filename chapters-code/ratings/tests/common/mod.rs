//! Shared fixtures of the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use ratings::domain::{Body, ProductId, Rating, UserId};
use ratings::store::{NewReview, PgStore, ReviewStore, Verdict};
use testkit::TestDb;

/// `sql/schema.sql` of this crate.
pub fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/schema.sql")
}

/// A throwaway database with the schema and a store over a pool of `max`; `None` after a SKIPPED line.
pub async fn pg_store(max: u32) -> Option<(TestDb, PgStore)> {
    let db = testkit::postgres(Some(&schema_path())).await?;
    let pool = if max <= 5 {
        db.pool.clone()
    } else {
        db.pool_with(max).await
    };
    Some((db, PgStore::new(pool)))
}

/// A fixed instant, so tests do not depend on the wall clock.
pub fn t0() -> DateTime<Utc> {
    match DateTime::from_timestamp(1_900_000_000, 0) {
        Some(t) => t,
        None => panic!("a valid instant"),
    }
}

/// A rating (test input: a panic is the right failure).
pub fn stars(n: i64) -> Rating {
    Rating::new(n).unwrap_or_else(|e| panic!("{e}"))
}

/// A body.
pub fn body(s: &str) -> Body {
    Body::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// A new review.
pub fn review(user: i64, product: i64, n: i64) -> NewReview {
    NewReview {
        user: UserId(user),
        product: ProductId(product),
        rating: stars(n),
        body: body(&format!("user {user} on product {product}: {n} stars")),
    }
}

/// Publishes at once.
pub fn approve() -> Verdict {
    Verdict::approve("test")
}

/// Creates `product` and `users` (a year old), each with an order of it.
pub async fn buyers<S: ReviewStore>(store: &S, product: i64, users: impl IntoIterator<Item = i64>) {
    store
        .add_product(ProductId(product), "kitchen")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for u in users {
        store
            .add_user(UserId(u), t0() - TimeDelta::days(365))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .record_order(UserId(u), ProductId(product), t0())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Panics unless the kept aggregate equals a recompute.
pub async fn agrees<S: ReviewStore>(store: &S, product: i64) {
    let kept = store
        .aggregate(ProductId(product))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let full = store
        .recompute(ProductId(product))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kept, full, "the aggregate drifted from a recompute");
}
