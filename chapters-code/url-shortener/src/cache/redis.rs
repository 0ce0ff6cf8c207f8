//! The shared cache layer on Redis, built to fail open.
//!
//! Redis is an optimisation, never a dependency of a redirect: every call
//! has a timeout, every failure reads as a miss, and a failure opens a
//! breaker that skips Redis for `cooldown`. Keys are
//! `{prefix}link:{code}`; values are short strings (see [`encode`]).
//!
//! Writes come in three kinds, and the difference is what keeps the cache
//! from contradicting the store:
//!
//! - a **fill** after a store read is `SET NX`: it never replaces a value,
//!   because a value already there was written by someone who knew more
//!   recent news (a delete's tombstone, a create's entry);
//! - a **delete** writes the tombstone `D` unconditionally: a delete is
//!   final (codes are never reused), so `D` can never be wrong;
//! - a **create** writes the new link unconditionally, with the short
//!   negative TTL: it replaces a "missing" cached before the create, and
//!   outlives any fill that read the store before the insert.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::DateTime;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Entry;
use crate::config::RedisConfig;
use crate::domain::{Code, TargetUrl};
use crate::metrics::Metrics;

/// The Redis layer of [`super::LinkCache`].
#[derive(Clone)]
pub struct RedisLayer {
    conn: ConnectionManager,
    prefix: String,
    ttl: Duration,
    negative_ttl: Duration,
    timeout: Duration,
    breaker: Arc<Breaker>,
    metrics: Arc<Metrics>,
}

impl RedisLayer {
    /// A layer on the server in `config`. Connects lazily, so the service
    /// starts (and redirects, from the store) while Redis is down. Must be
    /// called inside a tokio runtime.
    pub fn new(config: &RedisConfig, metrics: Arc<Metrics>) -> Result<Self, ::redis::RedisError> {
        let client = ::redis::Client::open(config.url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self {
            conn,
            prefix: config.key_prefix.clone(),
            ttl: config.ttl,
            negative_ttl: config.negative_ttl,
            timeout: config.timeout,
            breaker: Arc::new(Breaker::new(config.cooldown)),
            metrics,
        })
    }

    // ANCHOR: redis_ops
    /// The cached entry, or `None` on a miss, an unreadable value, or any failure.
    ///
    /// A value that does not parse is garbage, whoever wrote it: it is
    /// counted, deleted (so the fill that follows can replace it), and
    /// read as a miss.
    pub async fn get(&self, code: &Code) -> Option<Entry> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(self.key(code));
        let value: String = self.call::<Option<String>>(cmd).await??;
        let entry = decode(&value);
        if entry.is_none() {
            Metrics::inc(&self.metrics.redis_garbage);
            tracing::warn!(%code, value, "unreadable Redis cache entry; treating as a miss");
            let mut del = ::redis::cmd("DEL");
            del.arg(self.key(code));
            let _: Option<i64> = self.call(del).await;
        }
        entry
    }

    /// Caches what a store read found, unless the key holds a value already.
    pub async fn fill(&self, code: &Code, entry: &Entry) {
        let ttl = match entry {
            Entry::Missing => self.negative_ttl,
            Entry::Live { .. } | Entry::Deleted => self.ttl,
        };
        self.set(code, entry, ttl, true).await;
    }

    /// Marks `code` deleted for the Redis TTL, whatever the key held.
    pub async fn tombstone(&self, code: &Code) {
        self.set(code, &Entry::Deleted, self.ttl, false).await;
    }

    /// Caches a link just created, whatever the key held, for the negative TTL.
    pub async fn created(&self, code: &Code, entry: &Entry) {
        self.set(code, entry, self.negative_ttl, false).await;
    }

    async fn set(&self, code: &Code, entry: &Entry, ttl: Duration, only_if_absent: bool) {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(code))
            .arg(encode(entry))
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        if only_if_absent {
            cmd.arg("NX");
        }
        // NX answers nil when the key exists: not a failure.
        let _: Option<Option<String>> = self.call(cmd).await;
    }

    fn key(&self, code: &Code) -> String {
        format!("{}link:{}", self.prefix, code)
    }
    // ANCHOR_END: redis_ops

    // ANCHOR: redis_call
    /// Runs `cmd` unless the breaker is open; `None` on failure or timeout.
    async fn call<T: ::redis::FromRedisValue>(&self, cmd: ::redis::Cmd) -> Option<T> {
        if !self.breaker.allows() {
            return None;
        }
        // The manager is a cheap handle to one multiplexed connection.
        let mut conn = self.conn.clone();
        let failure =
            match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
                Ok(Ok(value)) => return Some(value),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", self.timeout),
            };
        Metrics::inc(&self.metrics.redis_errors);
        if self.breaker.trip() {
            tracing::warn!(
                error = failure,
                "Redis failed; serving from the store for a while"
            );
        }
        None
    }
    // ANCHOR_END: redis_call
}

// ANCHOR: breaker
/// A minimal circuit breaker: after a failure, refuse calls until `cooldown`
/// has passed, then let them through again (the first one is the probe).
struct Breaker {
    epoch: Instant,
    cooldown: Duration,
    /// Milliseconds since `epoch` before which calls are refused.
    open_until_ms: AtomicU64,
}

impl Breaker {
    fn new(cooldown: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            cooldown,
            open_until_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn allows(&self) -> bool {
        self.now_ms() >= self.open_until_ms.load(Ordering::Relaxed)
    }

    /// Opens the breaker; true when it was closed (so the caller logs once per outage).
    fn trip(&self) -> bool {
        let now = self.now_ms();
        let previous = self
            .open_until_ms
            .swap(now + self.cooldown.as_millis() as u64, Ordering::Relaxed);
        previous <= now
    }
}
// ANCHOR_END: breaker

// ANCHOR: redis_encoding
/// `L <expires-ms or -> <target>` for a live link, `D` deleted, `M` missing.
/// A normalised URL contains no space, so the target is everything after the second one.
fn encode(entry: &Entry) -> String {
    match entry {
        Entry::Live { target, expires_at } => {
            let exp =
                expires_at.map_or_else(|| "-".to_string(), |t| t.timestamp_millis().to_string());
            format!("L {exp} {target}")
        }
        Entry::Deleted => "D".to_string(),
        Entry::Missing => "M".to_string(),
    }
}

/// The inverse of [`encode`]; `None` for anything else. The target must be
/// what [`TargetUrl`] accepts and already in its normalised form: exactly
/// what the store could have held.
fn decode(value: &str) -> Option<Entry> {
    match value {
        "D" => Some(Entry::Deleted),
        "M" => Some(Entry::Missing),
        _ => {
            let mut parts = value.splitn(3, ' ');
            let (kind, exp, target) = (parts.next()?, parts.next()?, parts.next()?);
            if kind != "L" {
                return None;
            }
            let parsed = TargetUrl::from_stored(target).ok()?;
            if parsed.as_str() != target {
                return None;
            }
            let expires_at = match exp {
                "-" => None,
                ms => Some(DateTime::from_timestamp_millis(ms.parse().ok()?)?),
            };
            Some(Entry::Live {
                target: Arc::from(target),
                expires_at,
            })
        }
    }
}
// ANCHOR_END: redis_encoding

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_the_round_trip() {
        let at = DateTime::from_timestamp_millis(1_767_225_600_123);
        for entry in [
            Entry::Live {
                target: Arc::from("https://example.com/a?b=c#d"),
                expires_at: None,
            },
            Entry::Live {
                target: Arc::from("https://example.com/"),
                expires_at: at,
            },
            Entry::Deleted,
            Entry::Missing,
        ] {
            assert_eq!(decode(&encode(&entry)), Some(entry));
        }
        for garbage in [
            "",
            "X",
            "L",
            "L -",
            "L - ",
            "L x https://e.com/",
            "L 99999999999999999999 https://e.com/",
            "L - javascript:alert(1)",
            "L - https://e.com/with space",
            "L - HTTPS://E.COM/",
            "L - https://e.com",
            "L - //e.com/",
        ] {
            assert_eq!(decode(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn the_breaker_opens_for_the_cooldown() {
        let b = Breaker::new(Duration::from_millis(50));
        assert!(b.allows());
        assert!(b.trip());
        assert!(!b.allows());
        assert!(!b.trip(), "already open: no second log line");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allows());
    }
}
