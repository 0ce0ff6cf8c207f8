//! The shared layer on Redis: version-checked fills, writes that move the
//! version, a bounded negative set, and a breaker that makes it fail open.
//!
//! Keys, for key `k` under prefix `p:`: `p:k` holds the entry (the codec's
//! string, nothing around it), `p:k:v` its version token, and `p::negative`
//! a sorted set of the negative entries, scored by when they expire. (In a
//! Redis Cluster the three must share a slot: put a hash tag in the prefix,
//! one negative set per tag.)
//!
//! Redis is an optimisation, never a dependency: every call has a timeout,
//! a failure reads as "no cache", and it opens a breaker that skips Redis
//! reads and fills for a cooldown, so a dead Redis costs a read one timeout
//! per cooldown. Changes are never skipped: a skipped invalidation would
//! leave the old entry for its TTL while Redis is healthy (the breaker is
//! per instance and opens on any one failure). They keep the timeout and
//! return a [`ChangeError`], so the caller can retry.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

use crate::Codec;
use crate::metrics::{Event, Observer};
use crate::rule::{Key, Token};

/// How a fill writes to Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillMode {
    /// Only if the version still equals the reader's ticket (the design).
    Conditional,
    /// A plain `SET`: what most caches do, kept to show the race it loses
    /// (the tests and the bench use it; never configure it in a service).
    Unconditional,
}

/// The Redis layer's knobs.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://host:port`.
    pub url: String,
    /// Prepended to every key (ends with `:`), so services and tests share a server.
    pub prefix: String,
    /// How long a found value lives; bounds staleness when an invalidation fails.
    pub ttl: Duration,
    /// How long a "not found" lives: short, so a new item is not hidden long.
    pub negative_ttl: Duration,
    /// Most unexpired "not found" entries at once, so a scanner cannot fill memory.
    pub negative_limit: u64,
    /// How long a delete's tombstone lives.
    pub tombstone_ttl: Duration,
    /// How long a version key lives after a change or a fill of a found
    /// value. A version a reader starts lives the negative TTL until such a
    /// fill; a cached "not found" keeps its version as long as its entry,
    /// and one the negative set refuses drops it. When a version goes,
    /// fills are refused until a reader starts a new one: safe, one extra miss.
    pub version_ttl: Duration,
    /// Longest wait for one Redis call.
    pub timeout: Duration,
    /// After a failure, Redis is skipped for this long.
    pub cooldown: Duration,
    /// How fills write (always [`FillMode::Conditional`] outside demonstrations).
    pub fill: FillMode,
}

impl RedisConfig {
    /// Defaults for the server at `url`, keys under `prefix`.
    pub fn new(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_string(),
            prefix: prefix.to_string(),
            ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(30),
            negative_limit: 100_000,
            tombstone_ttl: Duration::from_secs(60),
            version_ttl: Duration::from_secs(3600),
            timeout: Duration::from_millis(25),
            cooldown: Duration::from_secs(1),
            fill: FillMode::Conditional,
        }
    }
}

// ANCHOR: scripts
/// KEYS: entry, version, negative set. ARGV: ticket, value, ttl ms,
/// version ttl ms, negative ('1' or '0'), negative limit.
/// Returns 1 stored, 0 stale ticket (or no version at all), 2 negative set full.
const FILL: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if ARGV[5] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if not redis.call('ZSCORE', KEYS[3], KEYS[1])
     and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then
    -- No entry, so no version either: a guess leaves no key behind.
    redis.call('DEL', KEYS[2])
    return 2
  end
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), KEYS[1])
  -- The set outlives its newest member, never less (instances may differ in TTL).
  if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[3], ARGV[3])
  end
  -- The version lives as long as the entry, so the keys stay bounded by the limit.
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 1
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
";

/// KEYS: entry, version, negative set. ARGV: new token, version ttl ms,
/// 'del' or 'set', value, ttl ms. Runs after the database committed: a
/// new version (so every ticket taken before is refused), then the entry
/// deleted or replaced.
const CHANGE: &str = r"
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('ZREM', KEYS[3], KEYS[1])
if ARGV[3] == 'del' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
end
return 1
";
// ANCHOR_END: scripts

/// What a lookup in Redis found.
#[derive(Debug)]
pub enum Lookup<V> {
    /// A readable entry.
    Hit(V),
    /// Nothing usable: read the database, then fill with this ticket.
    Miss(Token),
}

/// A change the database committed that Redis did not apply (timeout or
/// error): its key may serve the old entry until that entry's TTL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Redis did not apply the change to {key}: {reason}")]
pub struct ChangeError {
    /// The key changed.
    pub key: Key,
    /// What Redis answered, or the timeout.
    pub reason: String,
}

/// What became of a fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillOutcome {
    /// Stored.
    Stored,
    /// Refused: the version moved since the ticket.
    Stale,
    /// Refused: the negative set is at its limit.
    NegativeFull,
    /// Redis failed or the breaker is open.
    Failed,
}

/// The Redis layer, for values written by codec `C`.
pub struct RedisCache<C: Codec> {
    conn: ConnectionManager,
    config: Arc<RedisConfig>,
    codec: Arc<C>,
    fill: Arc<Script>,
    change: Arc<Script>,
    breaker: Arc<Breaker>,
    observer: Arc<dyn Observer>,
    _values: PhantomData<fn() -> C>,
}

impl<C: Codec> Clone for RedisCache<C> {
    fn clone(&self) -> Self {
        Self {
            conn: self.conn.clone(),
            config: self.config.clone(),
            codec: self.codec.clone(),
            fill: self.fill.clone(),
            change: self.change.clone(),
            breaker: self.breaker.clone(),
            observer: self.observer.clone(),
            _values: PhantomData,
        }
    }
}

impl<C: Codec> RedisCache<C> {
    /// A layer on `config.url`, with its own connection. Connects lazily,
    /// so a service starts (and reads from its database) while Redis is
    /// down. Must be called inside a tokio runtime.
    pub fn new(
        config: RedisConfig,
        codec: Arc<C>,
        observer: Arc<dyn Observer>,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, manager)?;
        Ok(Self {
            conn,
            breaker: Arc::new(Breaker::new(config.cooldown)),
            config: Arc::new(config),
            codec,
            fill: Arc::new(Script::new(FILL)),
            change: Arc::new(Script::new(CHANGE)),
            observer,
            _values: PhantomData,
        })
    }

    /// The knobs.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The Redis key holding `key`'s entry.
    pub fn entry_key(&self, key: &Key) -> String {
        format!("{}{key}", self.config.prefix)
    }

    /// The Redis key holding `key`'s version token.
    pub fn version_key(&self, key: &Key) -> String {
        format!("{}{key}:v", self.config.prefix)
    }

    /// The sorted set of negative entries.
    pub fn negative_key(&self) -> String {
        format!("{}:negative", self.config.prefix)
    }

    // ANCHOR: lookup
    /// The entry, or a ticket to fill with after reading the database;
    /// `None` when Redis failed (read the database, fill nothing).
    ///
    /// One round trip reads the entry and the version together. A value
    /// the codec refuses is garbage, whoever wrote it: counted, and a miss
    /// (the fill that follows replaces it). Only when the version is
    /// missing too does a second round trip start one, living the
    /// negative TTL (see [`RedisConfig::version_ttl`]).
    pub async fn lookup(&self, key: &Key) -> Option<Lookup<C::Value>> {
        let mut pipe = redis::pipe();
        pipe.get(self.entry_key(key)).get(self.version_key(key));
        let mut conn = self.conn.clone();
        let (raw, version): (Option<Vec<u8>>, Option<String>) =
            self.guard(pipe.query_async(&mut conn)).await?;
        if let Some(raw) = raw {
            match std::str::from_utf8(&raw)
                .ok()
                .and_then(|s| self.codec.decode(s))
            {
                Some(value) => {
                    self.observer.record(Event::RedisHit);
                    return Some(Lookup::Hit(value));
                }
                None => {
                    self.observer.record(Event::Garbage);
                    tracing::warn!(%key, "unreadable cache entry in Redis; reading the database");
                }
            }
        }
        let version = match version {
            Some(v) => v,
            None => self.start_version(key).await?,
        };
        Some(Lookup::Miss(Token(version)))
    }

    /// Sets a fresh version unless one appeared meanwhile, and returns the
    /// current one. It lives the negative TTL: a fill of a found value
    /// extends it, and a load that fails or finds nothing leaves no
    /// long-lived key behind.
    async fn start_version(&self, key: &Key) -> Option<String> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.version_key(key))
            .arg(Token::fresh().0)
            .arg("NX")
            .arg("PX")
            .arg(ms(self.config.negative_ttl))
            .ignore()
            .get(self.version_key(key));
        let mut conn = self.conn.clone();
        let (version,): (Option<String>,) = self.guard(pipe.query_async(&mut conn)).await?;
        version
    }
    // ANCHOR_END: lookup

    /// The entry, if Redis holds a readable one; never writes (no version
    /// is started), for callers who will not read the database.
    pub async fn peek(&self, key: &Key) -> Option<C::Value> {
        let mut conn = self.conn.clone();
        let mut get = redis::cmd("GET");
        get.arg(self.entry_key(key));
        let raw: Option<Vec<u8>> = self.guard(get.query_async(&mut conn)).await?;
        let value = std::str::from_utf8(&raw?)
            .ok()
            .and_then(|s| self.codec.decode(s));
        match &value {
            Some(_) => self.observer.record(Event::RedisHit),
            None => self.observer.record(Event::Garbage),
        }
        value
    }

    // ANCHOR: fill
    /// Stores `value`, read from the database after `ticket` was taken,
    /// unless a change came in between; a "not found" only within the
    /// negative limit, for the negative TTL.
    pub async fn fill(&self, key: &Key, ticket: &Token, value: &C::Value) -> FillOutcome {
        let negative = self.codec.is_negative(value);
        let ttl = if negative {
            self.config.negative_ttl
        } else {
            self.config.ttl
        };
        let encoded = self.codec.encode(value);
        let mut conn = self.conn.clone();
        let reply: Option<i64> = match self.config.fill {
            FillMode::Conditional => {
                let mut call = self.fill.prepare_invoke();
                call.key(self.entry_key(key))
                    .key(self.version_key(key))
                    .key(self.negative_key())
                    .arg(&ticket.0)
                    .arg(encoded)
                    .arg(ms(ttl))
                    .arg(ms(self.config.version_ttl))
                    .arg(if negative { "1" } else { "0" })
                    .arg(self.config.negative_limit);
                self.guard(call.invoke_async(&mut conn)).await
            }
            FillMode::Unconditional => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(self.entry_key(key))
                    .arg(encoded)
                    .arg("PX")
                    .arg(ms(ttl));
                self.guard(cmd.query_async::<()>(&mut conn))
                    .await
                    .map(|()| 1)
            }
        };
        let outcome = match reply {
            Some(1) => FillOutcome::Stored,
            Some(0) => FillOutcome::Stale,
            Some(_) => FillOutcome::NegativeFull,
            None => FillOutcome::Failed,
        };
        match outcome {
            FillOutcome::Stored => self.observer.record(Event::FillStored),
            FillOutcome::Stale => self.observer.record(Event::FillStale),
            FillOutcome::NegativeFull => self.observer.record(Event::NegativeFull),
            FillOutcome::Failed => {}
        }
        outcome
    }
    // ANCHOR_END: fill

    // ANCHOR: changes
    /// After the database committed a change to `key`: a new version and no
    /// entry, so the next reader loads the new row. Never skipped by the
    /// breaker; an error means the old entry may live out its TTL.
    pub async fn invalidate(&self, key: &Key) -> Result<(), ChangeError> {
        self.change(key, None, Duration::ZERO).await
    }

    /// After the database committed `value` for `key`: a new version and
    /// the new entry. Two writers of one key must be ordered by the caller
    /// (one writer, or a final state); otherwise use [`Self::invalidate`].
    pub async fn publish(&self, key: &Key, value: &C::Value) -> Result<(), ChangeError> {
        let ttl = self.config.ttl;
        self.change(key, Some(value), ttl).await
    }

    /// After the database committed a delete: a new version and the
    /// tombstone `gone` (what readers should now be told), for the
    /// tombstone TTL, so the next readers need no database read either.
    pub async fn tombstone(&self, key: &Key, gone: &C::Value) -> Result<(), ChangeError> {
        let ttl = self.config.tombstone_ttl;
        self.change(key, Some(gone), ttl).await
    }

    async fn change(
        &self,
        key: &Key,
        value: Option<&C::Value>,
        ttl: Duration,
    ) -> Result<(), ChangeError> {
        let mut call = self.change.prepare_invoke();
        call.key(self.entry_key(key))
            .key(self.version_key(key))
            .key(self.negative_key())
            .arg(Token::fresh().0)
            .arg(ms(self.config.version_ttl));
        match value {
            None => call.arg("del").arg("").arg(0),
            Some(v) => call.arg("set").arg(self.codec.encode(v)).arg(ms(ttl)),
        };
        let mut conn = self.conn.clone();
        // Past the breaker: a skipped change is a stale entry for its TTL.
        match self.bounded(call.invoke_async::<i64>(&mut conn)).await {
            Ok(_) => Ok(()),
            Err(reason) => {
                tracing::warn!(%key, reason, "change not applied to Redis; its entry may be stale for its TTL");
                Err(ChangeError {
                    key: key.clone(),
                    reason,
                })
            }
        }
    }
    // ANCHOR_END: changes

    // ANCHOR: guard
    /// Runs a read or a fill unless the breaker is open; `None` on failure,
    /// timeout or an open breaker (the caller reads the database instead).
    async fn guard<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Option<T> {
        if !self.breaker.allows() {
            return None;
        }
        self.bounded(call).await.ok()
    }

    /// Runs a call with the timeout, whatever the breaker says; a failure
    /// is counted and opens the breaker (for reads and fills).
    async fn bounded<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T, String> {
        let failure = match tokio::time::timeout(self.config.timeout, call).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", self.config.timeout),
        };
        self.observer.record(Event::RedisError);
        if self.breaker.trip() {
            tracing::warn!(
                error = failure,
                "Redis failed; reading the database for a while"
            );
        }
        Err(failure)
    }
    // ANCHOR_END: guard
}

fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

// ANCHOR: breaker
/// A minimal circuit breaker: after a failure, refuse calls until
/// `cooldown` has passed; the first call after it is the probe.
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

#[cfg(test)]
mod tests {
    use super::*;

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
