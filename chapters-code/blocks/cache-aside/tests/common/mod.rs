//! Test support: one PostgreSQL table of items, one Redis prefix, and
//! service instances over both, each with its own pool and Redis connection.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::sync::Arc;
use std::time::Duration;

use block_cache_aside::harness::FillGate;
use block_cache_aside::{
    CacheAside, CacheMetrics, ChangeError, Codec, FillMode, Key, LoadError, LocalConfig,
    RedisCache, RedisConfig,
};
use sqlx::PgPool;

/// The items table: the source of truth.
pub const SCHEMA: &str = "CREATE TABLE items (key text PRIMARY KEY, value text NOT NULL)";

/// Values are `Some(text)` or `None` ("no such item"): `V<text>` and `N` in Redis.
pub struct ItemCodec;

impl Codec for ItemCodec {
    type Value = Option<String>;

    fn encode(&self, value: &Option<String>) -> String {
        match value {
            Some(v) => format!("V{v}"),
            None => "N".to_string(),
        }
    }

    fn decode(&self, raw: &str) -> Option<Option<String>> {
        match raw {
            "N" => Some(None),
            _ => {
                let v = raw.strip_prefix('V')?;
                (!v.is_empty() && v.chars().all(|c| c.is_ascii_graphic()))
                    .then(|| Some(v.to_string()))
            }
        }
    }

    fn is_negative(&self, value: &Option<String>) -> bool {
        value.is_none()
    }
}

/// PostgreSQL and Redis for one test.
pub struct World {
    pub db: testkit::TestDb,
    pub redis: testkit::TestRedis,
}

/// A fresh database with the items table, and a fresh Redis prefix.
pub async fn world() -> Option<World> {
    let db = testkit::postgres(None).await?;
    db.apply_sql(SCHEMA).await.expect("schema");
    let redis = testkit::redis().await?;
    Some(World { db, redis })
}

/// How one instance is built.
#[derive(Clone)]
pub struct Setup {
    pub local: Option<LocalConfig>,
    pub load_timeout: Duration,
    pub redis: Option<RedisConfig>,
    pub gate: Option<FillGate>,
}

impl World {
    /// The Redis layer's settings for this test: its prefix, short TTLs.
    pub fn redis_config(&self) -> RedisConfig {
        RedisConfig {
            timeout: Duration::from_millis(500),
            negative_ttl: Duration::from_secs(5),
            ..RedisConfig::new(&self.redis.url, &format!("{}item:", self.redis.prefix))
        }
    }

    /// An instance with a 200 ms in-process cache, Redis, and a 1 s load timeout.
    pub fn setup(&self) -> Setup {
        Setup {
            local: Some(LocalConfig {
                capacity: 1_000,
                ttl: Duration::from_millis(200),
                negative_ttl: Duration::from_millis(100),
            }),
            load_timeout: Duration::from_secs(1),
            redis: Some(self.redis_config()),
            gate: None,
        }
    }

    /// An instance with no in-process cache: it sees what Redis holds.
    pub fn shared_only(&self) -> Setup {
        Setup {
            local: None,
            ..self.setup()
        }
    }

    /// A service instance: its own pool of 4 and its own Redis connection.
    pub async fn instance(&self, setup: Setup) -> Instance {
        let metrics = Arc::new(CacheMetrics::default());
        let codec = Arc::new(ItemCodec);
        let redis = setup
            .redis
            .map(|c| RedisCache::new(c, codec.clone(), metrics.clone()).expect("a Redis URL"));
        let mut cache = CacheAside::new(
            codec,
            setup.local,
            redis,
            setup.load_timeout,
            metrics.clone(),
        );
        if let Some(gate) = &setup.gate {
            cache = cache.with_fill_hook(gate.hook());
        }
        Instance {
            cache,
            pool: self.db.pool_with(4).await,
            metrics,
        }
    }

    /// Writes `key` straight to the database, past every cache.
    pub async fn seed(&self, key: &str, value: &str) {
        sqlx::query("INSERT INTO items (key, value) VALUES ($1, $2)")
            .bind(key)
            .bind(value)
            .execute(&self.db.pool)
            .await
            .expect("seed");
    }
}

/// One service instance.
#[derive(Clone)]
pub struct Instance {
    pub cache: CacheAside<ItemCodec>,
    pub pool: PgPool,
    pub metrics: Arc<CacheMetrics>,
}

pub fn key(k: &str) -> Key {
    Key::parse(k).expect("a valid key")
}

impl Instance {
    /// Reads `k` through the caches.
    pub async fn read(&self, k: &str) -> Result<Option<String>, LoadError<String>> {
        let pool = self.pool.clone();
        let owned = k.to_string();
        self.cache
            .get_or_load(&key(k), || async move {
                sqlx::query_scalar::<_, String>("SELECT value FROM items WHERE key = $1")
                    .bind(owned)
                    .fetch_optional(&pool)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
    }

    /// Reads `k`, failing the test on an error.
    pub async fn get(&self, k: &str) -> Option<String> {
        self.read(k).await.expect("a read")
    }

    /// Creates `k`, then publishes it.
    pub async fn create(&self, k: &str, value: &str) {
        sqlx::query("INSERT INTO items (key, value) VALUES ($1, $2)")
            .bind(k)
            .bind(value)
            .execute(&self.pool)
            .await
            .expect("insert");
        self.cache
            .publish(&key(k), Some(value.to_string()))
            .await
            .expect("Redis applied the create");
    }

    /// Changes `k`, then invalidates it; an error if Redis did not apply that.
    pub async fn try_update(&self, k: &str, value: &str) -> Result<(), ChangeError> {
        sqlx::query("UPDATE items SET value = $2 WHERE key = $1")
            .bind(k)
            .bind(value)
            .execute(&self.pool)
            .await
            .expect("update");
        self.cache.invalidate(&key(k)).await
    }

    /// Changes `k`, then invalidates it.
    pub async fn update(&self, k: &str, value: &str) {
        self.try_update(k, value)
            .await
            .expect("Redis applied the invalidation");
    }

    /// Deletes `k`, then leaves a tombstone.
    pub async fn delete(&self, k: &str) {
        sqlx::query("DELETE FROM items WHERE key = $1")
            .bind(k)
            .execute(&self.pool)
            .await
            .expect("delete");
        self.cache
            .tombstone(&key(k), None)
            .await
            .expect("Redis applied the tombstone");
    }
}

/// A Redis connection for tests that read or write keys directly.
pub fn conn(w: &World) -> redis::aio::MultiplexedConnection {
    w.redis.conn.clone()
}

/// Unconditional fills, for the demonstrations.
pub fn unconditional(mut setup: Setup) -> Setup {
    if let Some(r) = setup.redis.as_mut() {
        r.fill = FillMode::Unconditional;
    }
    setup
}

/// Every key under this test's prefix, counted with `SCAN` (the server is
/// shared, so `DBSIZE` would count other tests' keys).
pub async fn keys_under_prefix(w: &World) -> u64 {
    let mut conn = conn(w);
    let pattern = format!("{}*", w.redis.prefix);
    let mut cursor = 0u64;
    let mut count = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        count += keys.len() as u64;
        if next == 0 {
            return count;
        }
        cursor = next;
    }
}
