//! A sliding window in Redis, for a limit shared by several instances.
//!
//! An in-process bucket per instance gives a client `instances ×` its
//! limit behind a load balancer. One Redis key per client, updated by one
//! Lua script, gives it the limit once, whichever instance it reaches.
//!
//! The window is a log (a sorted set of the admission times of the last
//! `window`), so it is exact: no window of that length ever holds more than
//! `limit` admissions. It costs one sorted-set entry per admission, at most
//! `limit` per client; Cloudflare's sliding-window *counter* keeps two
//! numbers per client instead and estimates (see the page).

use std::fmt::Display;
use std::time::Duration;

use redis::aio::ConnectionLike;

use crate::AsyncLimiter;
use crate::quota::{Decision, QuotaError, Refused};

/// What to do when Redis does not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Admit: a limiter that is down must not take the service down with it.
    Admit,
    /// Refuse, telling the client to come back after this long.
    Refuse(Duration),
}

// ANCHOR: redis_window
/// `limit` requests per `window` per key, counted in Redis by one Lua script.
#[derive(Clone)]
pub struct RedisWindow<C> {
    conn: C,
    prefix: String,
    limit: u32,
    window_us: u64,
    script: redis::Script,
    on_error: OnError,
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisWindow<C> {
    /// A window over `conn`, its keys under `prefix`; admits when Redis fails.
    pub fn new(
        conn: C,
        prefix: impl Into<String>,
        limit: u32,
        window: Duration,
    ) -> Result<Self, QuotaError> {
        if limit == 0 {
            return Err(QuotaError::ZeroRate);
        }
        let window_us = u64::try_from(window.as_micros()).map_err(|_| QuotaError::TooLarge)?;
        if window_us == 0 {
            return Err(QuotaError::PeriodTooShort);
        }
        Ok(Self {
            conn,
            prefix: prefix.into(),
            limit,
            window_us,
            script: redis::Script::new(include_str!("sliding_window.lua")),
            on_error: OnError::Admit,
        })
    }

    /// The same window, doing `on_error` when Redis fails.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// One decision for `key`, or Redis's error.
    pub async fn try_check(&self, key: &impl Display) -> redis::RedisResult<Decision> {
        let mut conn = self.conn.clone();
        // EVALSHA, and EVAL once if the server does not know the script yet.
        let (admitted, wait_us): (u8, i64) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(self.limit)
            .arg(self.window_us)
            .invoke_async(&mut conn)
            .await?;
        if admitted == 1 {
            Ok(Ok(()))
        } else {
            Ok(Err(Refused {
                retry_after: Duration::from_micros(wait_us.max(0).unsigned_abs()),
            }))
        }
    }
}
// ANCHOR_END: redis_window

impl<K, C> AsyncLimiter<K> for RedisWindow<C>
where
    K: Display + Send + Sync,
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn check(&self, key: &K) -> Decision {
        match self.try_check(key).await {
            Ok(decision) => decision,
            Err(error) => {
                tracing::warn!(%error, policy = ?self.on_error, "rate limiter: Redis failed");
                match self.on_error {
                    OnError::Admit => Ok(()),
                    OnError::Refuse(retry_after) => Err(Refused { retry_after }),
                }
            }
        }
    }
}

// ANCHOR: naive
/// The version most people write first, and WRONG: read the count, then
/// add one. Two clients that read `limit − 1` at once are both admitted.
/// Kept to measure the race against the script; never use it.
pub async fn naive_get_then_incr<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    limit: u32,
    window: Duration,
) -> redis::RedisResult<bool> {
    let count: Option<u32> = redis::cmd("GET").arg(key).query_async(conn).await?;
    if count.unwrap_or(0) >= limit {
        return Ok(false);
    }
    let _: u32 = redis::cmd("INCR").arg(key).query_async(conn).await?;
    let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
    let _: i32 = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(ms)
        .arg("NX")
        .query_async(conn)
        .await?;
    Ok(true)
}
// ANCHOR_END: naive
