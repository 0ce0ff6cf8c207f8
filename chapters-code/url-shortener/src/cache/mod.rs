//! The redirect cache: in-process (moka), then Redis, then the store, on
//! the cache-aside block (`block-cache-aside`).
//!
//! Reads outnumber writes 100 to 1 and a hot link is read thousands of times
//! a second, so most redirects should never leave the process. The layers:
//!
//! 1. **moka**, per process: bounded, with a TTL per entry (short for "no
//!    such code"), one load per key at a time (the stampede protection).
//! 2. **Redis**, shared by the fleet: a miss in one process is often a hit
//!    for a code another process loaded. Timeouts and a breaker make a slow
//!    or dead Redis cost redirects at most one timeout, then nothing.
//! 3. **The store**, the source of truth.
//!
//! Unknown codes are cached too ("negative caching"), briefly and at most
//! [`NEGATIVE_LIMIT`] of them in Redis. That does not stop a scanner: each
//! new random guess is a miss in every layer and costs one store read. The
//! defence against scanning is the per-client miss budget in `shortener`.
//!
//! **Staleness.** A create publishes the new entry and a delete writes a
//! tombstone, each moving the code's version in Redis; a fill after a store
//! read is stored only under the version it saw before the read. So Redis
//! never contradicts a change once the change's own write reached it, and
//! the only stale copies are in-process ones, for at most
//! [`LinkCache::staleness_bound`]. Those writes pass the block's breaker
//! (only their timeout applies); a delete's tombstone is retried
//! [`TOMBSTONE_ATTEMPTS`] times in a task of its own, and if every attempt
//! fails the live entry may stay in Redis until its TTL. The block's page proves the rule;
//! `tests/cache_races.rs` proves it for this service with two instances and
//! a load that races the change.

mod redis;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use block_cache_aside::ChangeError;
use block_cache_aside::{CacheAside, Event, Key, LoadError, LocalConfig, Observer};
use chrono::{DateTime, Utc};

pub use self::redis::{LinkCodec, NEGATIVE_LIMIT, RedisLayer};
use crate::config::LocalCacheConfig;
use crate::domain::{Code, Link, UrlPolicy};
use crate::metrics::Metrics;
use crate::store::StoreError;

/// The longest a lookup may spend in Redis, the store and the fill
/// together; longer, it fails and caches nothing. Above the store timeout,
/// so a slow store is reported as the store's timeout.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Tries at writing a delete's tombstone into Redis, each bounded by the
/// Redis timeout: a failed one would leave the live link there for its TTL.
pub const TOMBSTONE_ATTEMPTS: u32 = 3;

/// The pause after the first failed try, doubled after each next one.
pub const TOMBSTONE_BACKOFF: Duration = Duration::from_millis(50);

/// What the cache knows about a code: enough to answer a redirect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A link that was not deleted when cached; it may have expired since,
    /// which is checked at read time against `expires_at`.
    Live {
        /// Where to redirect.
        target: Arc<str>,
        /// When it stops redirecting.
        expires_at: Option<DateTime<Utc>>,
    },
    /// The link was deleted.
    Deleted,
    /// No link has this code.
    Missing,
}

impl Entry {
    /// The entry for what the store returned.
    pub fn from_link(link: Option<&Link>) -> Self {
        match link {
            None => Self::Missing,
            Some(l) if l.deleted_at.is_some() => Self::Deleted,
            Some(l) => Self::Live {
                target: Arc::from(l.target.as_str()),
                expires_at: l.expires_at,
            },
        }
    }
}

/// The block's events, counted in the service's metrics.
impl Observer for Metrics {
    fn record(&self, event: Event) {
        match event {
            Event::Lookup => Metrics::inc(&self.lookups),
            Event::RedisHit => Metrics::inc(&self.redis_hits),
            Event::RedisError => Metrics::inc(&self.redis_errors),
            Event::Garbage => Metrics::inc(&self.redis_garbage),
            // Counted by the shortener where it reads the store: a load the
            // miss budget refuses reads nothing.
            Event::Load | Event::FillStored | Event::FillStale | Event::NegativeFull => {}
        }
    }
}

/// The two cache layers in front of the store.
#[derive(Clone)]
pub struct LinkCache {
    inner: CacheAside<LinkCodec>,
}

/// The cache key of `code`. Every code is one (codes hold neither `:` nor
/// whitespace); `None` would only mean a bug, and the caller then skips the cache.
fn key(code: &Code) -> Option<Key> {
    Key::parse(code.as_str()).ok()
}

impl LinkCache {
    /// A cache with the given layers; with neither, every lookup loads from the store.
    pub fn new(
        local: Option<&LocalCacheConfig>,
        redis: Option<RedisLayer>,
        policy: &UrlPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        let local = local.map(|c| LocalConfig {
            capacity: c.capacity,
            ttl: c.ttl,
            negative_ttl: c.negative_ttl,
        });
        Self {
            inner: CacheAside::new(
                Arc::new(LinkCodec::new(policy)),
                local,
                redis.map(|r| r.inner),
                LOAD_TIMEOUT,
                metrics,
            ),
        }
    }

    /// How long after a create or delete returned another process may
    /// still answer from its old entry (the block's bound).
    pub fn staleness_bound(&self) -> Duration {
        self.inner.bound().after_invalidation()
    }

    // ANCHOR: get_or_load
    /// The entry for `code`: from moka, else Redis, else `load` (the store),
    /// filling Redis under the version seen before the store read.
    ///
    /// Concurrent calls for one code share a single execution of the Redis
    /// and store steps when the moka layer is on. An error (the store's, or
    /// the caller's own from `load`) is not cached: every waiter receives it
    /// and the next lookup tries again.
    pub async fn get_or_load<F, Fut, E>(&self, code: &Code, load: F) -> Result<Entry, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Link>, E>>,
        E: From<StoreError> + Clone + Send + Sync + 'static,
    {
        let load = || async { Ok(Entry::from_link(load().await?.as_ref())) };
        let Some(key) = key(code) else {
            return load().await;
        };
        self.inner
            .get_or_load(&key, load)
            .await
            .map_err(|e| match e {
                LoadError::Source(e) => e,
                LoadError::Timeout(d) => StoreError::Timeout(d).into(),
            })
    }
    // ANCHOR_END: get_or_load

    // ANCHOR: invalidate
    /// Records a create, after the store committed it: both layers hold the
    /// new link (replacing a cached "missing"), and Redis refuses any fill
    /// that read the store before the insert. A code is created once and
    /// deleted only by the holder of the token that the create returns, so
    /// the two writes of one code never race each other. One try: if it
    /// fails, a cached "missing" hides the link for at most the negative TTL.
    pub async fn created(&self, link: &Link) -> Result<(), ChangeError> {
        match key(&link.code) {
            Some(key) => self.inner.publish(&key, Entry::from_link(Some(link))).await,
            None => Ok(()),
        }
    }

    /// Records a delete, after the store committed it. A delete is final,
    /// so both layers say "deleted" from now on (the tombstone); a fill that
    /// read the live row earlier is refused.
    ///
    /// A failed tombstone would leave the live link in Redis for its TTL,
    /// so it is retried, [`TOMBSTONE_ATTEMPTS`] tries in all, in a task of
    /// its own: dropping the request (the client hung up, a timeout) does
    /// not stop it. The error says every try failed; deleting again tries again.
    pub async fn deleted(&self, code: &Code) -> Result<(), ChangeError> {
        let Some(key) = key(code) else {
            return Ok(());
        };
        let inner = self.inner.clone();
        let task = tokio::spawn({
            let key = key.clone();
            async move {
                let mut pause = TOMBSTONE_BACKOFF;
                for _ in 1..TOMBSTONE_ATTEMPTS {
                    if inner.tombstone(&key, Entry::Deleted).await.is_ok() {
                        return Ok(());
                    }
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                inner.tombstone(&key, Entry::Deleted).await
            }
        });
        task.await.unwrap_or_else(|e| {
            Err(ChangeError {
                key,
                reason: e.to_string(),
            })
        })
    }
    // ANCHOR_END: invalidate

    /// What the caches know about `code`, without reaching the store: this
    /// process's entry, else Redis's. For clients who may not cost a store read.
    pub async fn cached(&self, code: &Code) -> Option<Entry> {
        self.inner.peek(&key(code)?).await
    }
}
