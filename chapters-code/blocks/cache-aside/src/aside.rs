//! The read path: in-process (moka, optional), then Redis (optional), then
//! the database; and the write path that keeps both from contradicting it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::Codec;
use crate::metrics::{Event, Observer};
use crate::redis::{ChangeError, Lookup, RedisCache};
use crate::rule::{Bound, Key};

/// The in-process layer's knobs.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// Most entries kept; the least useful are evicted beyond it (negative ones included).
    pub capacity: u64,
    /// How long a found value lives in the process.
    pub ttl: Duration,
    /// How long a "not found" lives in the process.
    pub negative_ttl: Duration,
}

/// A pause a test puts between the database read and the Redis fill.
pub type FillHook = Arc<dyn Fn(&Key) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Why a load failed. Nothing is cached for it; the next lookup tries again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError<E> {
    /// The database (the loader) failed.
    #[error("loading failed: {0}")]
    Source(E),
    /// Redis, the database and the fill together took longer than the load timeout.
    #[error("loading took longer than {0:?}")]
    Timeout(Duration),
}

/// Per-entry TTL in moka: a "not found" expires sooner.
struct EntryTtl<C> {
    codec: Arc<C>,
    ttl: Duration,
    negative_ttl: Duration,
}

impl<C: Codec> moka::Expiry<Key, C::Value> for EntryTtl<C> {
    fn expire_after_create(&self, _: &Key, value: &C::Value, _: Instant) -> Option<Duration> {
        Some(if self.codec.is_negative(value) {
            self.negative_ttl
        } else {
            self.ttl
        })
    }

    fn expire_after_update(
        &self,
        key: &Key,
        value: &C::Value,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        // A replaced entry lives from its replacement, like a new one.
        self.expire_after_create(key, value, now)
    }
}

/// Cache-aside over a database: see the crate documentation.
pub struct CacheAside<C: Codec> {
    local: Option<Cache<Key, C::Value>>,
    local_config: Option<LocalConfig>,
    redis: Option<RedisCache<C>>,
    load_timeout: Duration,
    observer: Arc<dyn Observer>,
    fill_hook: Option<FillHook>,
}

impl<C: Codec> Clone for CacheAside<C> {
    fn clone(&self) -> Self {
        Self {
            local: self.local.clone(),
            local_config: self.local_config.clone(),
            redis: self.redis.clone(),
            load_timeout: self.load_timeout,
            observer: self.observer.clone(),
            fill_hook: self.fill_hook.clone(),
        }
    }
}

impl<C: Codec> CacheAside<C> {
    /// A cache with the given layers; with neither, every lookup loads.
    /// A load slower than `load_timeout` fails and caches nothing.
    pub fn new(
        codec: Arc<C>,
        local: Option<LocalConfig>,
        redis: Option<RedisCache<C>>,
        load_timeout: Duration,
        observer: Arc<dyn Observer>,
    ) -> Self {
        let cache = local.as_ref().map(|c| {
            Cache::builder()
                .max_capacity(c.capacity)
                .expire_after(EntryTtl {
                    codec: codec.clone(),
                    ttl: c.ttl,
                    negative_ttl: c.negative_ttl,
                })
                .build()
        });
        Self {
            local: cache,
            local_config: local,
            redis,
            load_timeout,
            observer,
            fill_hook: None,
        }
    }

    /// The same cache with `hook` run between each database read and its fill (tests).
    pub fn with_fill_hook(mut self, hook: FillHook) -> Self {
        self.fill_hook = Some(hook);
        self
    }

    /// The Redis layer, if any.
    pub fn redis(&self) -> Option<&RedisCache<C>> {
        self.redis.as_ref()
    }

    /// This instance's staleness bound (see [`Bound`]).
    pub fn bound(&self) -> Bound {
        Bound {
            local_ttl: self
                .local_config
                .as_ref()
                .map(|c| c.ttl.max(c.negative_ttl)),
            load_timeout: self.load_timeout,
            redis_ttl: self
                .redis
                .as_ref()
                .map_or(Duration::ZERO, |r| r.config().ttl),
        }
    }

    // ANCHOR: get_or_load
    /// The value of `key`: from memory, else Redis, else `load` (the database).
    ///
    /// Concurrent calls for one key in one process share one execution of
    /// the Redis and database steps (moka's `try_get_with`): a hot key's
    /// miss costs one database read per process, not one per request.
    pub async fn get_or_load<F, Fut, E>(&self, key: &Key, load: F) -> Result<C::Value, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C::Value, E>>,
        E: Clone + Send + Sync + 'static,
    {
        self.observer.record(Event::Lookup);
        let bounded = async {
            tokio::time::timeout(self.load_timeout, self.load_shared(key, load))
                .await
                .unwrap_or(Err(LoadError::Timeout(self.load_timeout)))
        };
        match &self.local {
            Some(local) => local
                .try_get_with_by_ref(key, bounded)
                .await
                .map_err(|e: Arc<LoadError<E>>| (*e).clone()),
            None => bounded.await,
        }
    }

    /// Redis, else the database, then a fill under the ticket taken before the read.
    async fn load_shared<F, Fut, E>(&self, key: &Key, load: F) -> Result<C::Value, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C::Value, E>>,
    {
        let ticket = match &self.redis {
            Some(redis) => match redis.lookup(key).await {
                Some(Lookup::Hit(value)) => return Ok(value),
                Some(Lookup::Miss(ticket)) => Some(ticket),
                // Redis failed: read the database, and fill nothing.
                None => None,
            },
            None => None,
        };
        self.observer.record(Event::Load);
        let value = load().await.map_err(LoadError::Source)?;
        if let Some(hook) = &self.fill_hook {
            hook(key).await;
        }
        if let (Some(redis), Some(ticket)) = (&self.redis, ticket) {
            redis.fill(key, &ticket, &value).await;
        }
        Ok(value)
    }
    // ANCHOR_END: get_or_load

    /// What the caches hold for `key`, without reading the database: this
    /// process's entry, else Redis's. For callers who may not cost a
    /// database read; it writes nothing anywhere (no version is started).
    pub async fn peek(&self, key: &Key) -> Option<C::Value> {
        if let Some(local) = &self.local
            && let Some(value) = local.get(key).await
        {
            return Some(value);
        }
        self.redis.as_ref()?.peek(key).await
    }

    // ANCHOR: writes
    /// After the database committed a change to `key`: this process forgets
    /// it, Redis drops it and refuses every fill that read before now. An
    /// error: Redis did not apply it (this process did); call again to retry.
    pub async fn invalidate(&self, key: &Key) -> Result<(), ChangeError> {
        if let Some(local) = &self.local {
            local.invalidate(key).await;
        }
        match &self.redis {
            Some(redis) => redis.invalidate(key).await,
            None => Ok(()),
        }
    }

    /// After the database committed `value` for `key`: both layers hold it,
    /// and Redis refuses every fill that read before now. An error as for
    /// [`Self::invalidate`].
    pub async fn publish(&self, key: &Key, value: C::Value) -> Result<(), ChangeError> {
        let shared = match &self.redis {
            Some(redis) => redis.publish(key, &value).await,
            None => Ok(()),
        };
        if let Some(local) = &self.local {
            local.insert(key.clone(), value).await;
        }
        shared
    }

    /// After the database committed a delete of `key`: both layers answer
    /// `gone`, and Redis refuses every fill that read the row before now.
    /// An error as for [`Self::invalidate`].
    pub async fn tombstone(&self, key: &Key, gone: C::Value) -> Result<(), ChangeError> {
        let shared = match &self.redis {
            Some(redis) => redis.tombstone(key, &gone).await,
            None => Ok(()),
        };
        if let Some(local) = &self.local {
            local.insert(key.clone(), gone).await;
        }
        shared
    }
    // ANCHOR_END: writes
}
