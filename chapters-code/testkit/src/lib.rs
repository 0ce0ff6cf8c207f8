//! Shared test support for every chapter crate.
//!
//! Tests in this book run against the engines a production team would use,
//! so each test needs a private, disposable piece of one:
//!
//! - [`postgres`] creates a fresh PostgreSQL database for one test (optionally
//!   with a schema file applied) and drops it when the [`TestDb`] is dropped;
//!   [`blocking_fresh_db`] does the same for blocking code (the generators),
//!   even when called from inside a tokio runtime;
//! - [`redis`] hands out a Redis connection plus a key prefix no other test
//!   uses, and deletes every key under that prefix afterwards;
//! - [`nats`] and [`rabbitmq`] check that the broker speaks its protocol on
//!   the configured address and return the URL to connect to.
//!
//! When a service is unreachable the helper prints one line to stderr,
//! `SKIPPED: needs <service> at <url>`, and returns `None`, so the test can
//! return early and `cargo test` still passes on a laptop without services.
//! With `SDB_REQUIRE_SERVICES=1` (set by `.ci/run`) the same situation is a
//! panic: CI must never pass by skipping.
//!
//! The skip line is written with `std::io::stderr()` directly rather than
//! `eprintln!`, because the test harness captures the macros' output and a
//! skipped test must be visible in a passing run.
#![warn(missing_docs)]

pub mod child;
mod postgres;
mod probe;
mod redis_prefix;

use std::io::Write;

pub use child::die_in_child;
pub use postgres::{
    FreshDbError, TestDb, blocking_fresh_db, database_url, postgres, postgres_at,
    postgres_available_blocking,
};
pub use probe::{amqp_url, nats, nats_url, rabbitmq};
pub use redis_prefix::{TestRedis, redis, redis_at, redis_url};

/// Environment variable that turns "skip when absent" into "fail when absent".
pub const REQUIRE_SERVICES_VAR: &str = "SDB_REQUIRE_SERVICES";

/// True when `SDB_REQUIRE_SERVICES=1`: an unreachable service fails the test.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES_VAR).is_ok_and(|v| v == "1")
}

/// Reports an unreachable service: a loud `SKIPPED` line, or a panic when required.
///
/// Returns normally only when the test may skip.
pub fn unavailable(service: &str, url: &str, why: &dyn std::fmt::Display, required: bool) {
    let url = redact(url);
    if required {
        panic!("{service} is required ({REQUIRE_SERVICES_VAR}=1) but unreachable at {url}: {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: needs {service} at {url} ({why}); set {REQUIRE_SERVICES_VAR}=1 to make this a failure"
    );
}

/// Hides a password in a URL before it is printed.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A name no other test in any process uses: prefix, process id, counter, random suffix.
fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}_{n}_{}", std::process::id(), &random[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        assert!(a.starts_with("t_"));
    }

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672"),
            "amqp://guest:***@127.0.0.1:5672"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn skipping_is_allowed_when_not_required() {
        unavailable("PostgreSQL", "postgres://127.0.0.1:1/x", &"refused", false);
    }

    #[test]
    #[should_panic(expected = "required")]
    fn skipping_panics_when_required() {
        unavailable("PostgreSQL", "postgres://127.0.0.1:1/x", &"refused", true);
    }
}
