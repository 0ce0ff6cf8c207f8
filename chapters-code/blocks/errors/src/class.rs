//! One classification of the failures of PostgreSQL, the sqlx pool and Redis.
//!
//! Every chapter asks the same question of a failed call: may the same
//! request succeed if the client sends it again later (503 with
//! `Retry-After`), did the stored data refuse it (a constraint the caller
//! turns into its own 4xx), will it fail the same way until an operator acts
//! (503 without `Retry-After`), or is our code wrong (500)? The answer
//! depends on the failure, never on the chapter, so it lives here once.

use std::fmt;
use std::time::Duration;

use axum::http::StatusCode;

// ANCHOR: class
/// What a failed call to a dependency means for the request that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// The same request may succeed later: 503 with `Retry-After`.
    Retryable(Transient),
    /// The stored data refuses the request: the caller maps it to its own
    /// 4xx (an alias taken, a spot booked); left unmapped, it is a bug.
    Conflict(Constraint),
    /// Refused for good by the dependency's configuration or state (a
    /// permission, a full disk): 503 without `Retry-After`, and an operator
    /// must act. Not the request's fault and not a bug in the code.
    Final,
    /// Our code, schema or data is wrong (a syntax error, a decode error, a
    /// constraint the code did not expect): 500.
    Bug,
}

/// Why a retryable failure happened; each chapter may give each its own problem type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transient {
    /// A statement or command ran out of time and was cancelled.
    Timeout,
    /// The database rolled the transaction back to resolve a conflict with a
    /// concurrent one (serialization failure, deadlock, lock not available).
    Contention,
    /// Out of connections, memory or patience: the dependency is busy.
    Overloaded,
    /// The connection is gone or the server cannot serve us right now
    /// (shutdown, failover, read-only, loading).
    Unavailable,
}

/// The kind of constraint a conflict broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Constraint {
    /// `UNIQUE` or a primary key (23505).
    Unique,
    /// `CHECK` (23514).
    Check,
    /// A foreign key (23503).
    ForeignKey,
    /// `EXCLUDE` (23P01).
    Exclusion,
}

/// The `Retry-After` every retryable class gets: a hint, rounded up to whole
/// seconds on the wire; clients add their own backoff and jitter on top.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
// ANCHOR_END: class

impl Transient {
    /// How long a client should wait before sending the request again.
    pub const fn retry_after(self) -> Duration {
        RETRY_AFTER
    }

    /// A short name for tables and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Contention => "contention",
            Self::Overloaded => "overloaded",
            Self::Unavailable => "unavailable",
        }
    }
}

impl Class {
    /// `Retry-After` for a retryable class, `None` for the others.
    pub const fn retry_after(self) -> Option<Duration> {
        match self {
            Self::Retryable(t) => Some(t.retry_after()),
            _ => None,
        }
    }

    /// Whether sending the same request again later may succeed.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// The status when the caller maps nothing itself: an unmapped conflict
    /// is a constraint the code did not expect, so a bug.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::Retryable(_) | Self::Final => StatusCode::SERVICE_UNAVAILABLE,
            Self::Conflict(_) | Self::Bug => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable(t) => write!(f, "retryable ({})", t.name()),
            Self::Conflict(c) => write!(f, "conflict ({c:?})"),
            Self::Final => f.write_str("final"),
            Self::Bug => f.write_str("bug"),
        }
    }
}

/// One row of a decision table: a code, its documented name, its class, and why.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// An exact code (`57014`, `BUSY`) or a class prefix (`08`).
    pub code: &'static str,
    /// The name the vendor's documentation gives it.
    pub name: &'static str,
    /// What it means for the request.
    pub class: Class,
    /// Why, in a phrase (shown in the book's table).
    pub why: &'static str,
}

const fn rule(code: &'static str, name: &'static str, class: Class, why: &'static str) -> Rule {
    Rule {
        code,
        name,
        class,
        why,
    }
}

use Class::{Bug, Conflict, Final, Retryable};
use Transient::{Contention, Overloaded, Timeout, Unavailable};

// ANCHOR: sqlstates
/// Exact SQLSTATEs, looked up before the classes of [`SQLSTATE_CLASSES`]
/// ([PostgreSQL's appendix](https://www.postgresql.org/docs/current/errcodes-appendix.html)).
#[rustfmt::skip]
pub const SQLSTATES: &[Rule] = &[
    rule("57014", "query_canceled", Retryable(Timeout),
        "statement_timeout (or a cancel) stopped it; the transaction rolled back"),
    rule("25006", "read_only_sql_transaction", Retryable(Unavailable),
        "a pooled connection reaches the old primary, now a standby, after a failover"),
    rule("57P01", "admin_shutdown", Retryable(Unavailable),
        "the server is shutting down or our backend was terminated"),
    rule("57P02", "crash_shutdown", Retryable(Unavailable),
        "another backend crashed; the server restarts"),
    rule("57P03", "cannot_connect_now", Retryable(Unavailable),
        "the server is starting up or in recovery"),
    rule("57P04", "database_dropped", Final, "the database is gone"),
    rule("40001", "serialization_failure", Retryable(Contention),
        "rolled back to keep SERIALIZABLE; running it again is the documented remedy"),
    rule("40P01", "deadlock_detected", Retryable(Contention),
        "rolled back to break a deadlock"),
    rule("55P03", "lock_not_available", Retryable(Contention),
        "NOWAIT or lock_timeout: another transaction holds the lock"),
    rule("53300", "too_many_connections", Retryable(Overloaded),
        "max_connections reached"),
    rule("53100", "disk_full", Final, "no write succeeds until space is freed"),
    rule("53400", "configuration_limit_exceeded", Final,
        "a configured limit the same request will hit again"),
    rule("23505", "unique_violation", Conflict(Constraint::Unique),
        "the row exists: the caller's 409, or a bug"),
    rule("23514", "check_violation", Conflict(Constraint::Check),
        "a CHECK refused the values: the caller's 409/422, or a bug"),
    rule("23503", "foreign_key_violation", Conflict(Constraint::ForeignKey),
        "the referenced row is missing, or still referenced"),
    rule("23P01", "exclusion_violation", Conflict(Constraint::Exclusion),
        "an EXCLUDE constraint refused an overlap"),
    rule("23502", "not_null_violation", Bug, "parsing should have made it impossible"),
    rule("42501", "insufficient_privilege", Final, "a grant is missing"),
    rule("3D000", "invalid_catalog_name", Final, "the database does not exist"),
];

/// SQLSTATE classes (the first two characters), for codes not listed exactly.
#[rustfmt::skip]
pub const SQLSTATE_CLASSES: &[Rule] = &[
    rule("08", "connection_exception", Retryable(Unavailable),
        "the connection failed or was lost"),
    rule("40", "transaction_rollback", Retryable(Contention),
        "the server rolled the transaction back"),
    rule("53", "insufficient_resources", Retryable(Overloaded),
        "out of memory or connections"),
    rule("57", "operator_intervention", Retryable(Unavailable),
        "an operator or the server stopped the session"),
    rule("58", "system_error", Retryable(Unavailable), "an I/O error on the server"),
    rule("28", "invalid_authorization_specification", Final, "wrong credentials"),
    rule("XX", "internal_error", Final, "corruption or a server bug: an operator must look"),
    rule("22", "data_exception", Bug, "a value the parsing should have refused"),
    rule("23", "integrity_constraint_violation", Bug, "a constraint not listed above"),
    rule("42", "syntax_error_or_access_rule_violation", Bug, "the SQL is wrong"),
];
// ANCHOR_END: sqlstates

// ANCHOR: classify_sqlstate
/// The class of a PostgreSQL SQLSTATE: an exact rule, else its class's, else a bug.
pub fn classify_sqlstate(code: &str) -> Class {
    let exact = SQLSTATES.iter().find(|r| r.code == code);
    let by_class = || {
        SQLSTATE_CLASSES
            .iter()
            .find(|r| code.len() == 5 && code.starts_with(r.code))
    };
    exact.or_else(by_class).map_or(Bug, |r| r.class)
}

/// The class of any sqlx error: the pool's and the driver's own failures,
/// and the server's through its SQLSTATE.
pub fn classify_sqlx(e: &sqlx::Error) -> Class {
    use sqlx::Error as E;
    match e {
        E::Database(db) => db.code().map_or(Bug, |c| classify_sqlstate(&c)),
        // Every connection is busy (or none can be opened): the pool waited
        // `acquire_timeout` for one.
        E::PoolTimedOut => Retryable(Overloaded),
        // Closed by a shutdown of this process, or the socket failed: another
        // instance, or this one after reconnecting, can answer.
        E::PoolClosed | E::Io(_) | E::WorkerCrashed => Retryable(Unavailable),
        // A certificate that does not verify or a refused handshake fails the
        // same way on every retry until an operator fixes the configuration.
        E::Tls(_) | E::Configuration(_) => Final,
        // RowNotFound, decode and encode errors, protocol errors: the code
        // asked for something the schema does not give.
        _ => Bug,
    }
}
// ANCHOR_END: classify_sqlstate

/// The name of the constraint a database error broke, if any, so a caller
/// can map the one it expects (`links_alias_key`) and treat others as bugs.
pub fn constraint_name(e: &sqlx::Error) -> Option<&str> {
    e.as_database_error().and_then(|d| d.constraint())
}

// ANCHOR: redis_codes
/// Redis error codes (the first word of an error reply).
#[rustfmt::skip]
pub const REDIS_CODES: &[Rule] = &[
    rule("BUSY", "BUSY", Retryable(Overloaded),
        "a script or function runs past busy-reply-threshold; the server answers nothing else"),
    rule("LOADING", "LOADING", Retryable(Unavailable),
        "the server is loading its dataset into memory"),
    rule("MISCONF", "MISCONF", Retryable(Unavailable),
        "the last snapshot failed; writes are refused until one succeeds"),
    rule("READONLY", "READONLY", Retryable(Unavailable),
        "a replica, or a primary demoted by a failover"),
    rule("MASTERDOWN", "MASTERDOWN", Retryable(Unavailable),
        "a replica lost its primary"),
    rule("CLUSTERDOWN", "CLUSTERDOWN", Retryable(Unavailable),
        "the cluster cannot serve the slot"),
    rule("TRYAGAIN", "TRYAGAIN", Retryable(Unavailable),
        "a multi-key command during resharding"),
    rule("NOREPLICAS", "NOREPLICAS", Retryable(Unavailable),
        "fewer replicas than min-replicas-to-write"),
    rule("OOM", "OOM", Final,
        "maxmemory reached under noeviction: writes fail until memory is freed"),
    rule("NOPERM", "NOPERM", Final, "an ACL refuses the command"),
    rule("NOAUTH", "NOAUTH", Final, "the connection is not authenticated"),
    rule("WRONGPASS", "WRONGPASS", Final, "wrong credentials"),
    rule("MOVED", "MOVED", Final, "a cluster reached through a plain client: configuration"),
    rule("ASK", "ASK", Final, "a cluster reached through a plain client: configuration"),
    rule("WRONGTYPE", "WRONGTYPE", Bug, "a key holds another type than the code expects"),
    rule("NOSCRIPT", "NOSCRIPT", Bug, "the client did not load the script"),
    rule("CROSSSLOT", "CROSSSLOT", Bug, "the key design puts one command's keys in two slots"),
    rule("EXECABORT", "EXECABORT", Bug, "a command in the transaction was refused"),
    rule("ERR", "ERR", Bug, "a generic refusal: a wrong command or argument"),
];

/// Replies whose code is too generic to classify (`ERR`) but whose message
/// names a passing state; looked up before [`REDIS_CODES`].
#[rustfmt::skip]
pub const REDIS_MESSAGES: &[Rule] = &[
    rule("ERR max number of clients reached", "maxclients", Retryable(Overloaded),
        "every client slot is taken; a slot frees when a client disconnects"),
];
// ANCHOR_END: redis_codes

// ANCHOR: classify_redis
/// The class of a Redis error code; an unknown code is a bug.
pub fn classify_redis_code(code: &str) -> Class {
    REDIS_CODES
        .iter()
        .find(|r| r.code == code)
        .map_or(Bug, |r| r.class)
}

/// The class of a Redis error reply: its code and message in
/// [`REDIS_MESSAGES`], else its code alone.
pub fn classify_redis_reply(code: &str, message: &str) -> Class {
    let names = |r: &&Rule| {
        r.code
            .strip_prefix(code)
            .and_then(|rest| rest.strip_prefix(' '))
            .is_some_and(|prefix| message.starts_with(prefix))
    };
    REDIS_MESSAGES
        .iter()
        .find(names)
        .map_or_else(|| classify_redis_code(code), |r| r.class)
}

/// The class of any Redis client error: the connection's failures, then the
/// server's error reply by its code.
pub fn classify_redis(e: &redis::RedisError) -> Class {
    use redis::ErrorKind as K;
    if e.is_timeout() {
        return Retryable(Timeout);
    }
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        return Retryable(Unavailable);
    }
    if let Some(code) = e.code() {
        return classify_redis_reply(code, e.detail().unwrap_or_default());
    }
    match e.kind() {
        K::AuthenticationFailed | K::InvalidClientConfig => Final,
        K::ClusterConnectionNotFound
        | K::MasterNameNotFoundBySentinel
        | K::NoValidReplicasFoundBySentinel => Retryable(Unavailable),
        // A reply that does not parse or has another type than asked for.
        _ => Bug,
    }
}
// ANCHOR_END: classify_redis

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ANCHOR: review_table
    /// Every SQLSTATE of the review's error-mapping item, with the class
    /// it must get in every chapter (typed here, not read from the table).
    const REVIEWED: &[(&str, Class)] = &[
        ("57014", Retryable(Timeout)),
        ("25006", Retryable(Unavailable)),
        ("57P01", Retryable(Unavailable)),
        ("57P03", Retryable(Unavailable)),
        ("40001", Retryable(Contention)),
        ("40P01", Retryable(Contention)),
        ("23505", Conflict(Constraint::Unique)),
        ("23514", Conflict(Constraint::Check)),
        ("08000", Retryable(Unavailable)),
        ("08003", Retryable(Unavailable)),
        ("08006", Retryable(Unavailable)),
        ("53300", Retryable(Overloaded)),
        ("55P03", Retryable(Contention)),
        ("23P01", Conflict(Constraint::Exclusion)),
        ("22P02", Bug),
        ("42P01", Bug),
        ("42501", Final),
        ("53100", Final),
    ];

    #[test]
    fn every_reviewed_sqlstate_gets_its_class() {
        for (code, class) in REVIEWED {
            assert_eq!(classify_sqlstate(code), *class, "SQLSTATE {code}");
        }
    }
    // ANCHOR_END: review_table

    #[test]
    fn pool_and_io_failures_are_retryable_and_decode_failures_are_bugs() {
        use sqlx::Error as E;
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let cases = [
            (E::PoolTimedOut, Retryable(Overloaded)),
            (E::PoolClosed, Retryable(Unavailable)),
            (E::Io(io()), Retryable(Unavailable)),
            (E::WorkerCrashed, Retryable(Unavailable)),
            (E::RowNotFound, Bug),
            (E::ColumnNotFound("x".into()), Bug),
            (E::Protocol("x".into()), Bug),
        ];
        for (e, class) in cases {
            assert_eq!(classify_sqlx(&e), class, "{e}");
        }
    }

    #[test]
    fn a_tls_failure_is_final() {
        // A certificate that does not verify, or a handshake the server
        // refuses, fails the same way on every retry: configuration.
        let e = sqlx::Error::Tls("invalid peer certificate: UnknownIssuer".into());
        assert_eq!(classify_sqlx(&e), Final);
    }

    #[test]
    fn no_code_is_listed_twice() {
        for table in [SQLSTATES, SQLSTATE_CLASSES, REDIS_CODES, REDIS_MESSAGES] {
            let mut codes: Vec<_> = table.iter().map(|r| r.code).collect();
            codes.sort_unstable();
            let n = codes.len();
            codes.dedup();
            assert_eq!(codes.len(), n, "a code listed twice");
        }
    }

    #[test]
    fn only_retryable_classes_carry_retry_after() {
        for r in SQLSTATES
            .iter()
            .chain(SQLSTATE_CLASSES)
            .chain(REDIS_CODES)
            .chain(REDIS_MESSAGES)
        {
            assert_eq!(r.class.retry_after().is_some(), r.class.is_retryable());
            let status = r.class.status();
            assert!(status.is_server_error(), "{}", r.code);
        }
    }

    proptest! {
        /// A code not listed exactly gets its class's rule, and an unknown
        /// class is a bug: no SQLSTATE falls through unclassified.
        #[test]
        fn every_sqlstate_follows_its_class(code in "[0-9A-Z]{5}") {
            let got = classify_sqlstate(&code);
            if let Some(exact) = SQLSTATES.iter().find(|r| r.code == code) {
                prop_assert_eq!(got, exact.class);
            } else if let Some(class) = SQLSTATE_CLASSES.iter().find(|r| code.starts_with(r.code)) {
                prop_assert_eq!(got, class.class);
            } else {
                prop_assert_eq!(got, Bug);
            }
        }
    }
}
