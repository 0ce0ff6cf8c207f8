//! Where products, orders and idempotency keys live: a trait, an in-memory
//! adapter and the PostgreSQL adapter. One behaviour suite runs against both.

mod memory;
mod postgres;

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use memory::MemoryStore;
pub use postgres::{PgStore, SEARCH_SQL, stock_backstop};

/// The search statement, for the EXPLAIN generator.
pub fn postgres_search_sql() -> &'static str {
    SEARCH_SQL
}

use crate::checkout::{
    Begun, Charged, CheckoutError, CheckoutRequest, Hooks, Order, StoredResponse,
};
use crate::domain::{Money, Product, Sku, TaxClass};
use crate::idempotency::{Fingerprint, KeyScope, Lock, Purged};

/// The schema, applied by the demo binary to an empty database.
pub const SCHEMA_SQL: &str = include_str!("../../sql/schema.sql");

/// A product to create or replace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProduct {
    /// Its SKU.
    pub sku: Sku,
    /// Display name.
    pub name: String,
    /// Longer text.
    pub description: String,
    /// Unit price before tax.
    pub price: Money,
    /// How it is taxed.
    pub tax_class: TaxClass,
    /// Units on hand.
    pub stock: i32,
}

// ANCHOR: seed_missing
/// Creates the products of `products` that `store` does not have, and
/// leaves the others as they are (their stock is what was sold); returns
/// how many it created. The demo binary's start-up.
pub async fn seed_missing<S: Store>(
    store: &S,
    products: &[NewProduct],
) -> Result<usize, StoreError> {
    let mut created = 0;
    for p in products {
        if store.product(&p.sku).await?.is_none() {
            store.put_product(p).await?;
            created += 1;
        }
    }
    Ok(created)
}
// ANCHOR_END: seed_missing

/// An idempotency key's row, as tests and reconciliation read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// Whose key.
    pub account: String,
    /// The key the client sent.
    pub key: String,
    /// `order_created` or `finished`.
    pub recovery_point: String,
    /// Whether a request's lease on it is running (by the store's clock).
    pub held: bool,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such product.
    #[error("no product {0}")]
    ProductNotFound(Sku),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A stored value did not parse (written by this code, so: corruption).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// The storage the catalog and the checkout need.
pub trait Store: Send + Sync + 'static {
    /// Creates or replaces a product; its version goes up.
    fn put_product(
        &self,
        p: &NewProduct,
    ) -> impl Future<Output = Result<Product, StoreError>> + Send;

    /// Changes a price; the version goes up.
    fn set_price(
        &self,
        sku: &Sku,
        price: Money,
    ) -> impl Future<Output = Result<Product, StoreError>> + Send;

    /// One product.
    fn product(
        &self,
        sku: &Sku,
    ) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;

    /// Products matching the words of `query`, best first.
    fn search(
        &self,
        query: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send;

    /// Units of `sku` not reserved.
    fn stock(&self, sku: &Sku) -> impl Future<Output = Result<Option<i32>, StoreError>> + Send;

    /// The final answer stored with `key`, if it has one; [`CheckoutError::KeyReused`]
    /// when the key was used with another request. Reads only: it claims nothing.
    fn final_answer(
        &self,
        key: &KeyScope,
        fingerprint: &Fingerprint,
    ) -> impl Future<Output = Result<Option<StoredResponse>, CheckoutError>> + Send;

    /// Checkout phase 1 (see [`crate::checkout`]).
    fn begin_checkout(
        &self,
        account: &str,
        key: Option<&KeyScope>,
        request: &CheckoutRequest,
        fingerprint: &Fingerprint,
        now: DateTime<Utc>,
        hooks: &dyn Hooks,
    ) -> impl Future<Output = Result<Begun, CheckoutError>> + Send;

    /// Checkout phase 2; [`CheckoutError::KeyInUse`] (and nothing written)
    /// when another request took the key over: its answer is the final one.
    fn finish_checkout(
        &self,
        lock: Option<Lock>,
        order_id: Uuid,
        charged: &Charged,
        now: DateTime<Utc>,
        hooks: &dyn Hooks,
    ) -> impl Future<Output = Result<StoredResponse, CheckoutError>> + Send;

    /// Ends a key's lease after a provider timeout or a failed phase 2, so a retry need not wait
    /// (nothing, when another request has taken the key over meanwhile).
    fn release_key(&self, lock: Lock) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes finished keys older than `retention` (by the store's clock;
    /// the in-memory store's is `now`); unfinished keys are counted, never deleted.
    fn purge_keys(
        &self,
        retention: std::time::Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Purged, StoreError>> + Send;

    /// One order.
    fn order(&self, id: Uuid) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// Every order (tests and reconciliation).
    fn orders(&self) -> impl Future<Output = Result<Vec<Order>, StoreError>> + Send;

    /// Every idempotency key, by account and key (tests and reconciliation).
    fn keys(&self) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;
}
