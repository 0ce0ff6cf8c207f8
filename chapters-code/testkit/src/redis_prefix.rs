//! A private Redis key prefix per test.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::{services_required, unavailable, unique_name};

/// Default server URL; `REDIS_URL` overrides it.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The Redis URL from `REDIS_URL`, or the default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_string())
}

/// A Redis connection and a key prefix owned by one test; its keys are deleted on drop.
pub struct TestRedis {
    /// A multiplexed connection, cheap to clone.
    pub conn: MultiplexedConnection,
    /// A client for code that opens its own connections.
    pub client: redis::Client,
    /// Every key this test writes starts with this prefix (it ends with `:`).
    pub prefix: String,
    /// The server URL.
    pub url: String,
}

/// Connects to `REDIS_URL` and reserves a fresh key prefix.
///
/// Returns `None` after a `SKIPPED` line when Redis is unreachable (or panics
/// when `SDB_REQUIRE_SERVICES=1`).
pub async fn redis() -> Option<TestRedis> {
    redis_at(&redis_url(), services_required()).await
}

/// Like [`redis`], with the URL and skip rule given explicitly.
pub async fn redis_at(url: &str, required: bool) -> Option<TestRedis> {
    let client = match redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => panic!("REDIS_URL {url:?} is not a Redis URL: {e}"),
    };
    let connect = client.get_multiplexed_async_connection();
    let mut conn = match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            unavailable("Redis", url, &e, required);
            return None;
        }
        Err(_) => {
            unavailable("Redis", url, &"connection timed out", required);
            return None;
        }
    };
    let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
    if let Err(e) = pong {
        unavailable("Redis", url, &e, required);
        return None;
    }
    Some(TestRedis {
        conn,
        client,
        prefix: format!("{}:", unique_name("sdbtest")),
        url: url.to_string(),
    })
}

impl TestRedis {
    /// The full key for `name` under this test's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // The synchronous client needs no runtime, so cleanup works from any drop site.
        let Ok(mut conn) = self
            .client
            .get_connection_with_timeout(Duration::from_secs(2))
        else {
            return;
        };
        let pattern = format!("{}*", self.prefix);
        let keys: Vec<String> = match redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn)
        {
            Ok(iter) => iter.filter_map(Result::ok).collect(),
            Err(_) => return,
        };
        for chunk in keys.chunks(500) {
            let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}
