//! The Redis layer of the catalog: entries with versions, filled by a script
//! that never replaces a higher version with a lower one.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::Entry;
use crate::domain::Sku;

// ANCHOR: fill_script
/// Keep the higher version: a fill older than what Redis holds is dropped.
const FILL_IF_NEWER: &str = r"
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1";
// ANCHOR_END: fill_script

/// How Redis is filled after a database read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillPolicy {
    /// The script above (the design).
    KeepHigherVersion,
    /// A plain write: what most caches do, and the race the tests show.
    Unconditional,
}

/// The catalog's Redis layer.
#[derive(Clone)]
pub struct RedisL2 {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    policy: FillPolicy,
    script: redis::Script,
}

impl RedisL2 {
    /// A layer on `conn`, keys under `prefix`.
    pub fn new(conn: ConnectionManager, prefix: &str, policy: FillPolicy) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
            timeout: Duration::from_millis(100),
            policy,
            script: redis::Script::new(FILL_IF_NEWER),
        }
    }

    /// Connects to `url`.
    pub async fn connect(url: &str, prefix: &str, policy: FillPolicy) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        Ok(Self::new(conn, prefix, policy))
    }

    /// The Redis key of `sku`.
    pub fn key(&self, sku: &Sku) -> String {
        format!("{}product:{}", self.prefix, sku)
    }

    /// The cached entry; `Ok(None)` on a miss; `Err` on failure, timeout or an unreadable value.
    pub async fn get(&self, sku: &Sku) -> Result<Option<Entry>, ()> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("HGET");
        cmd.arg(self.key(sku)).arg("e");
        let raw: Option<String> =
            match tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await {
                Ok(Ok(v)) => v,
                _ => return Err(()),
            };
        let Some(raw) = raw else { return Ok(None) };
        // Parsed with the same rules as input: an unreadable value is a miss and a metric.
        match serde_json::from_str::<Entry>(&raw) {
            Ok(entry) => Ok(Some(entry)),
            Err(e) => {
                tracing::warn!(%sku, error = %e, "unreadable catalog entry in Redis");
                Err(())
            }
        }
    }

    /// Stores `entry` per the policy.
    pub async fn fill(&self, sku: &Sku, entry: &Entry, ttl: Duration) -> Result<(), ()> {
        let value = serde_json::to_string(entry).map_err(|_| ())?;
        let mut conn = self.conn.clone();
        let ttl_ms = ttl.as_millis() as u64;
        let done = match self.policy {
            FillPolicy::KeepHigherVersion => {
                let mut inv = self.script.key(self.key(sku));
                inv.arg(entry.version()).arg(value).arg(ttl_ms);
                tokio::time::timeout(self.timeout, inv.invoke_async::<i64>(&mut conn))
                    .await
                    .map(|r| r.map(|_| ()))
            }
            FillPolicy::Unconditional => {
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("HSET")
                    .arg(self.key(sku))
                    .arg("v")
                    .arg(entry.version())
                    .arg("e")
                    .arg(value)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(self.key(sku))
                    .arg(ttl_ms)
                    .ignore();
                tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut conn)).await
            }
        };
        match done {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }
}
