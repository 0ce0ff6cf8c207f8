//! The pure part: keys, version tokens, the fill rule and the staleness bound.
//!
//! The Lua scripts in [`crate::redis`] apply these rules inside Redis; the
//! functions here state them once in Rust, so that a property test can run
//! them against a model of the database and the cache (`tests/rule.rs`).

use std::fmt;
use std::time::Duration;

/// Longest key accepted, in bytes (Redis allows far more; a cache key this
/// long is a bug or an attack).
pub const MAX_KEY_LEN: usize = 256;

/// Why a string cannot be a cache key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is empty.
    #[error("a cache key cannot be empty")]
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    #[error("a cache key has at most {MAX_KEY_LEN} bytes, this one has {0}")]
    TooLong(usize),
    /// The key holds `:` (which separates the entry from its version key),
    /// whitespace or a control character.
    #[error("a cache key cannot contain {0:?}")]
    BadChar(char),
}

/// A key of the cache: what the caller names an item by, checked so that
/// no key can collide with another key's version key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// Checks `raw`: not empty, at most [`MAX_KEY_LEN`] bytes, no `:`, no
    /// whitespace, no control character.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(raw.len()));
        }
        if let Some(c) = raw
            .chars()
            .find(|c| *c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(KeyError::BadChar(c));
        }
        Ok(Self(raw.to_string()))
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ANCHOR: token
/// A version token: a random 128-bit value, written to the key's version
/// key by every change and by the first reader after the version was lost.
/// Tokens are only ever compared for equality, so they need no clock and
/// no order; a fresh one equals a token still held by a reader with
/// probability 2^-128.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub String);

impl Token {
    /// A fresh random token.
    pub fn fresh() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }
}
// ANCHOR_END: token

// ANCHOR: fill_rule
/// What a fill does, given the version the key holds now (`None`: lost or
/// never set) and the ticket the reader took before reading the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillDecision {
    /// No change since the ticket: the value read is current; store it.
    Store,
    /// A change (or the loss of the version) came between ticket and fill:
    /// the value read may be older than what a writer made visible; drop it.
    Stale,
}

/// The fill rule: store only if the version is still the reader's ticket.
/// A missing version refuses too: it cannot tell "never changed" from
/// "changed, then evicted".
pub fn fill_decision(current: Option<&Token>, ticket: &Token) -> FillDecision {
    if current == Some(ticket) {
        FillDecision::Store
    } else {
        FillDecision::Stale
    }
}
// ANCHOR_END: fill_rule

// ANCHOR: negative_rule
/// Whether a "not found" may be cached: a key already in the negative set
/// is refreshed, a new one only while the set holds fewer than `limit`
/// unexpired entries.
pub fn negative_admitted(already_cached: bool, unexpired: u64, limit: u64) -> bool {
    already_cached || unexpired < limit
}
// ANCHOR_END: negative_rule

// ANCHOR: bound
/// The TTLs and timeouts that the staleness bound is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// How long an entry lives in a process's memory (`None`: no L1).
    pub local_ttl: Option<Duration>,
    /// Longest load (Redis, database, fill); a slower load caches nothing.
    pub load_timeout: Duration,
    /// How long an entry lives in Redis.
    pub redis_ttl: Duration,
}

impl Bound {
    /// How long after a change's invalidation *returned* a reader may
    /// still get the old value. Redis never holds it after that moment
    /// (every fill that read before it is refused), so only an in-process
    /// copy can: one inserted by a load that began before the
    /// invalidation, at most `load_timeout` earlier, living `local_ttl`.
    pub fn after_invalidation(&self) -> Duration {
        match self.local_ttl {
            Some(ttl) => ttl + self.load_timeout,
            None => Duration::ZERO,
        }
    }

    /// The same when the writer could not reach Redis (its invalidation
    /// failed): the old entry lives out its Redis TTL.
    pub fn without_invalidation(&self) -> Duration {
        self.redis_ttl + self.after_invalidation()
    }
}
// ANCHOR_END: bound

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_collide_with_a_version_key_are_refused() {
        assert_eq!(Key::parse("abc-1_Z").map(|k| k.0), Ok("abc-1_Z".into()));
        assert_eq!(Key::parse(""), Err(KeyError::Empty));
        assert_eq!(Key::parse("a:v"), Err(KeyError::BadChar(':')));
        assert_eq!(Key::parse("a b"), Err(KeyError::BadChar(' ')));
        assert_eq!(Key::parse("a\u{7}"), Err(KeyError::BadChar('\u{7}')));
        assert_eq!(
            Key::parse(&"x".repeat(MAX_KEY_LEN + 1)),
            Err(KeyError::TooLong(MAX_KEY_LEN + 1))
        );
    }

    #[test]
    fn a_fill_stores_only_under_its_own_ticket() {
        let (t, u) = (Token::fresh(), Token::fresh());
        assert_ne!(t, u);
        assert_eq!(fill_decision(Some(&t), &t), FillDecision::Store);
        assert_eq!(fill_decision(Some(&u), &t), FillDecision::Stale);
        assert_eq!(fill_decision(None, &t), FillDecision::Stale);
    }

    #[test]
    fn the_bound_is_the_local_ttl_plus_the_load_timeout() {
        let b = Bound {
            local_ttl: Some(Duration::from_secs(1)),
            load_timeout: Duration::from_millis(500),
            redis_ttl: Duration::from_secs(60),
        };
        assert_eq!(b.after_invalidation(), Duration::from_millis(1500));
        assert_eq!(b.without_invalidation(), Duration::from_millis(61_500));
        let shared_only = Bound {
            local_ttl: None,
            ..b
        };
        assert_eq!(shared_only.after_invalidation(), Duration::ZERO);
    }
}
