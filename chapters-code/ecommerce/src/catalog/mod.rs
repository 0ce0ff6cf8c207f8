//! The catalog read path: moka in the process (L1), Redis shared by the
//! fleet (L2), PostgreSQL behind both.
//!
//! - **Stampede protection.** moka's `try_get_with` runs one load per key
//!   per process; concurrent misses wait for it. A cold hot product costs one
//!   Redis read (and at most one database read) per instance, not one per
//!   request.
//! - **Versions, not blind fills.** Every product row has a `version` that
//!   each change increments. The writer publishes the new entry to Redis
//!   itself, and every fill of Redis goes through a script that keeps the
//!   higher version. A reader that loaded the old row before a price change
//!   and fills Redis after it cannot put the old price back: the fill race
//!   that a plain `SET` after a database read has (the URL shortener's review
//!   found it) is closed.
//! - **The staleness bound.** After `set_price` returns, every instance
//!   serves the new price within [`CatalogConfig::staleness_bound`]: its L1
//!   TTL plus the load timeout (a stale L1 entry can only come from a load
//!   that started before the write, and a load that takes longer than the
//!   timeout is not cached). If the writer could not reach Redis, add the
//!   L2 TTL. Checkout never reads the cache: it prices from the database in
//!   its own transaction, so a stale catalog page ends in an explicit
//!   `price-changed`, never in a wrong charge.

mod l2;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use block_errors::{Class, Transient};
use moka::future::Cache;
use serde::{Deserialize, Serialize};

pub use l2::{FillPolicy, RedisL2};

use crate::domain::{Money, Product, Sku};
use crate::store::{Store, StoreError};

// ANCHOR: config
/// The cache's knobs.
#[derive(Clone, Debug)]
pub struct CatalogConfig {
    /// How long an entry lives in a process.
    pub l1_ttl: Duration,
    /// Entries per process.
    pub l1_capacity: u64,
    /// How long an entry lives in Redis.
    pub l2_ttl: Duration,
    /// How long "no such product" lives in Redis: short, because a product
    /// created behind the cache's back stays hidden that long.
    pub missing_ttl: Duration,
    /// A load (Redis, then the database) slower than this fails and is not cached.
    pub load_timeout: Duration,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            l1_ttl: Duration::from_secs(1),
            l1_capacity: 100_000,
            l2_ttl: Duration::from_secs(600),
            missing_ttl: Duration::from_secs(10),
            load_timeout: Duration::from_millis(500),
        }
    }
}

impl CatalogConfig {
    /// How long after `set_price` returns an instance may still serve the old price (Redis up).
    pub fn staleness_bound(&self) -> Duration {
        self.l1_ttl + self.load_timeout
    }

    /// The same when the writer could not reach Redis.
    pub fn staleness_bound_without_redis(&self) -> Duration {
        self.staleness_bound() + self.l2_ttl
    }
}
// ANCHOR_END: config

/// What the cache holds for a SKU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// The product, at its version.
    Found {
        /// The product.
        product: Product,
    },
    /// No such product (cached too, so scanning SKUs does not reach the database).
    Missing,
}

impl Entry {
    /// The version, for the keep-the-higher rule; a missing product is version 0.
    pub fn version(&self) -> i64 {
        match self {
            Entry::Found { product } => product.version,
            Entry::Missing => 0,
        }
    }
}

/// Counters of the read path.
#[derive(Debug, Default)]
pub struct CatalogMetrics {
    /// Lookups.
    pub lookups: AtomicU64,
    /// Loads answered by Redis.
    pub l2_hits: AtomicU64,
    /// Loads that reached the database.
    pub store_loads: AtomicU64,
    /// Redis failures, timeouts and unreadable values.
    pub l2_errors: AtomicU64,
}

impl CatalogMetrics {
    fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A counter's value.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A pause between the database read and the Redis fill, for the race tests.
pub type FillHook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Why a catalog read failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    /// The database failed, with the errors block's class of the failure.
    #[error("catalog store failed ({0}): {1}")]
    Store(Class, String),
    /// Redis and the database together took longer than the load timeout.
    #[error("catalog load timed out")]
    Timeout,
}

impl CatalogError {
    /// The errors block's class, which decides the status and `Retry-After`.
    pub fn class(&self) -> Class {
        match self {
            CatalogError::Store(class, _) => *class,
            CatalogError::Timeout => Class::Retryable(Transient::Timeout),
        }
    }
}

impl From<StoreError> for CatalogError {
    fn from(e: StoreError) -> Self {
        // A corrupt row (or a missing product reported as an error) is the
        // code's or the data's fault: a bug, not a reason to retry.
        let class = match &e {
            StoreError::Database(db) => block_errors::classify_sqlx(db),
            StoreError::Corrupt(_) | StoreError::ProductNotFound(_) => Class::Bug,
        };
        CatalogError::Store(class, e.to_string())
    }
}

/// One instance's view of the catalog.
pub struct Catalog<S> {
    store: Arc<S>,
    l1: Cache<Sku, Entry>,
    l2: Option<RedisL2>,
    config: CatalogConfig,
    /// The counters.
    pub metrics: Arc<CatalogMetrics>,
    /// Test hook: runs after the database read, before the Redis fill.
    pub fill_hook: Option<FillHook>,
}

impl<S: Store> Catalog<S> {
    /// An instance over `store`, with Redis when `l2` is given.
    pub fn new(store: Arc<S>, l2: Option<RedisL2>, config: CatalogConfig) -> Self {
        let l1 = Cache::builder()
            .max_capacity(config.l1_capacity)
            .time_to_live(config.l1_ttl)
            .build();
        Self {
            store,
            l1,
            l2,
            config,
            metrics: Arc::new(CatalogMetrics::default()),
            fill_hook: None,
        }
    }

    /// The knobs.
    pub fn config(&self) -> &CatalogConfig {
        &self.config
    }

    // ANCHOR: get
    /// The product for `sku`, through L1, L2 and the store.
    pub async fn get(&self, sku: &Sku) -> Result<Option<Product>, CatalogError> {
        CatalogMetrics::inc(&self.metrics.lookups);
        let entry = self
            .l1
            .try_get_with_by_ref(sku, async {
                tokio::time::timeout(self.config.load_timeout, self.load(sku))
                    .await
                    .unwrap_or(Err(CatalogError::Timeout))
            })
            .await
            .map_err(|e: Arc<CatalogError>| (*e).clone())?;
        Ok(match entry {
            Entry::Found { product } => Some(product),
            Entry::Missing => None,
        })
    }

    /// L2, else the store, filling L2 with the keep-the-higher-version script.
    async fn load(&self, sku: &Sku) -> Result<Entry, CatalogError> {
        if let Some(l2) = &self.l2 {
            match l2.get(sku).await {
                Ok(Some(entry)) => {
                    CatalogMetrics::inc(&self.metrics.l2_hits);
                    return Ok(entry);
                }
                Ok(None) => {}
                Err(()) => CatalogMetrics::inc(&self.metrics.l2_errors),
            }
        }
        CatalogMetrics::inc(&self.metrics.store_loads);
        let entry = match self.store.product(sku).await {
            Ok(Some(product)) => Entry::Found { product },
            Ok(None) => Entry::Missing,
            Err(e) => return Err(e.into()),
        };
        if let Some(hook) = &self.fill_hook {
            hook().await;
        }
        let ttl = match entry {
            Entry::Found { .. } => self.config.l2_ttl,
            Entry::Missing => self.config.missing_ttl,
        };
        if let Some(l2) = &self.l2
            && l2.fill(sku, &entry, ttl).await.is_err()
        {
            CatalogMetrics::inc(&self.metrics.l2_errors);
        }
        Ok(entry)
    }
    // ANCHOR_END: get

    // ANCHOR: set_price
    /// Changes a price: the database first, then Redis gets the new version,
    /// then this instance's L1 forgets the old one. Other instances' L1
    /// entries expire within their TTL.
    pub async fn set_price(&self, sku: &Sku, price: Money) -> Result<Product, StoreError> {
        let product = self.store.set_price(sku, price).await?;
        let entry = Entry::Found {
            product: product.clone(),
        };
        if let Some(l2) = &self.l2
            && l2.fill(sku, &entry, self.config.l2_ttl).await.is_err()
        {
            // Redis keeps the old version until its TTL: the longer bound applies.
            CatalogMetrics::inc(&self.metrics.l2_errors);
            tracing::warn!(%sku, "price change not published to Redis");
        }
        self.l1.invalidate(sku).await;
        Ok(product)
    }
    // ANCHOR_END: set_price
}
