//! The redirect cache: in-process (moka), then Redis, then the store.
//!
//! Reads outnumber writes 100 to 1 and a hot link is read thousands of times
//! a second, so most redirects should never leave the process. The layers:
//!
//! 1. **moka**, per process: bounded, with a TTL per entry (short for "no
//!    such code"). Its `try_get_with` runs one load per key at a time: 100
//!    concurrent misses on a hot code make one trip down, and the other 99
//!    wait for its result. That is the stampede protection.
//! 2. **Redis**, shared by the fleet (cache-aside): a miss in one process is
//!    often a hit for a code another process loaded. Every Redis call has a
//!    short timeout, and a failure opens a breaker for a second, so a slow or
//!    dead Redis costs redirects at most one timeout, then nothing.
//! 3. **The store**, the source of truth.
//!
//! Unknown codes are cached too ("negative caching"), so repeated requests
//! for the same unknown code do not each reach the database. It does not
//! stop a scanner: each new random guess is a miss in every layer and costs
//! one store read (and one moka slot). The defence against scanning is the
//! per-client miss budget in `shortener`.
//!
//! **Staleness.** A delete writes a tombstone to Redis and a create writes
//! the new entry; a fill after a store read never overwrites either (see
//! [`RedisLayer`]). So Redis never contradicts a change once the change's
//! own write reached it, and the only stale copies are in-process ones:
//! another process's moka entry, which lives at most its TTL after the load
//! that filled it. `tests/cache_races.rs` proves both directions with two
//! service instances and a load that races the change.

mod redis;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moka::future::Cache;

pub use self::redis::RedisLayer;
use crate::config::LocalCacheConfig;
use crate::domain::{Code, Link};
use crate::metrics::Metrics;
use crate::store::StoreError;

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

/// The two cache layers in front of the store.
#[derive(Clone)]
pub struct LinkCache {
    local: Option<Cache<Code, Entry>>,
    redis: Option<RedisLayer>,
    metrics: Arc<Metrics>,
}

// ANCHOR: local_ttl
/// Per-entry TTL in moka: negative entries expire sooner.
struct EntryTtl {
    ttl: Duration,
    negative_ttl: Duration,
}

impl moka::Expiry<Code, Entry> for EntryTtl {
    fn expire_after_create(&self, _: &Code, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(match entry {
            Entry::Missing => self.negative_ttl,
            Entry::Live { .. } | Entry::Deleted => self.ttl,
        })
    }
}
// ANCHOR_END: local_ttl

impl LinkCache {
    /// A cache with the given layers; with neither, every lookup loads from the store.
    pub fn new(
        local: Option<&LocalCacheConfig>,
        redis: Option<RedisLayer>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let local = local.map(|c| {
            Cache::builder()
                .max_capacity(c.capacity)
                .expire_after(EntryTtl {
                    ttl: c.ttl,
                    negative_ttl: c.negative_ttl,
                })
                .build()
        });
        Self {
            local,
            redis,
            metrics,
        }
    }

    // ANCHOR: get_or_load
    /// The entry for `code`: from moka, else Redis, else `load` (the store).
    ///
    /// Concurrent calls for one code share a single execution of the Redis
    /// and store steps when the moka layer is on. An error is not cached:
    /// every waiter receives it and the next lookup tries again.
    pub async fn get_or_load<F, Fut>(&self, code: &Code, load: F) -> Result<Entry, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Link>, StoreError>>,
    {
        Metrics::inc(&self.metrics.lookups);
        match &self.local {
            Some(local) => local
                .try_get_with_by_ref(code, self.load_shared(code, load))
                .await
                .map_err(|e: Arc<StoreError>| (*e).clone()),
            None => self.load_shared(code, load).await,
        }
    }

    /// Redis, then the store (filling Redis on the way back).
    async fn load_shared<F, Fut>(&self, code: &Code, load: F) -> Result<Entry, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Link>, StoreError>>,
    {
        if let Some(redis) = &self.redis
            && let Some(entry) = redis.get(code).await
        {
            Metrics::inc(&self.metrics.redis_hits);
            return Ok(entry);
        }
        Metrics::inc(&self.metrics.store_loads);
        let entry = Entry::from_link(load().await?.as_ref());
        if let Some(redis) = &self.redis {
            // NX: a tombstone or a create's entry written since our read wins.
            redis.fill(code, &entry).await;
        }
        Ok(entry)
    }
    // ANCHOR_END: get_or_load

    // ANCHOR: invalidate
    /// Records a create, after the store committed it: this process forgets
    /// the code (it may be cached as missing) and Redis gets the new entry,
    /// replacing a "missing" and outliving any fill that read the store
    /// before the insert.
    pub async fn created(&self, link: &Link) {
        if let Some(local) = &self.local {
            local.invalidate(&link.code).await;
        }
        if let Some(redis) = &self.redis {
            redis
                .created(&link.code, &Entry::from_link(Some(link)))
                .await;
        }
    }

    /// Records a delete, after the store committed it. A delete is final,
    /// so both layers say "deleted" from now on; a fill that read the live
    /// row earlier cannot overwrite the tombstone in Redis.
    pub async fn deleted(&self, code: &Code) {
        if let Some(local) = &self.local {
            local.insert(code.clone(), Entry::Deleted).await;
        }
        if let Some(redis) = &self.redis {
            redis.tombstone(code).await;
        }
    }
    // ANCHOR_END: invalidate

    /// What the caches know about `code`, without reaching the store: this
    /// process's entry, else Redis's. For clients who may not cost a store read.
    pub async fn cached(&self, code: &Code) -> Option<Entry> {
        if let Some(local) = &self.local
            && let Some(entry) = local.get(code).await
        {
            return Some(entry);
        }
        let entry = self.redis.as_ref()?.get(code).await?;
        Metrics::inc(&self.metrics.redis_hits);
        Some(entry)
    }
}
