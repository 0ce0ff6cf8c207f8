//! `Idempotency-Key`: the key, its scope, and the request's fingerprint.
//!
//! The semantics follow Stripe's documentation
//! (<https://docs.stripe.com/api/idempotent_requests>):
//!
//! - a key is 1 to 255 characters, chosen by the client (a UUID is typical);
//! - it is scoped by the account and the endpoint, so two shoppers (or two
//!   endpoints) may use the same string without meeting;
//! - the first request's parameters are kept as a fingerprint, and the same
//!   key with different parameters is refused (422), never guessed at;
//! - a request arriving while another with the same key is still running is
//!   refused (409) instead of waiting or running twice;
//! - once the first request reaches a final answer, retries get that answer
//!   again, status and body, even a 5xx;
//! - keys are purged after 24 hours.
//!
//! Where the key lives, and in which transaction, is in `checkout`.

use std::fmt;

use chrono::TimeDelta;
use sha2::{Digest, Sha256};

/// Longest accepted key, in characters (Stripe's limit).
pub const KEY_MAX_LEN: usize = 255;

// ANCHOR: ttl
/// Keys older than this are purged; a retry after that is a new request.
pub const KEY_TTL: TimeDelta = TimeDelta::hours(24);
/// A key locked longer than this belongs to a request that died: the next
/// retry takes it over and resumes from its recovery point.
pub const LOCK_TIMEOUT: TimeDelta = TimeDelta::seconds(30);
// ANCHOR_END: ttl

// ANCHOR: key
/// A client-chosen key: 1 to 255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why an `Idempotency-Key` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The header was empty.
    #[error("the Idempotency-Key header is empty")]
    Empty,
    /// Longer than [`KEY_MAX_LEN`].
    #[error("the Idempotency-Key header may be at most {KEY_MAX_LEN} characters")]
    TooLong,
    /// Not visible ASCII (a space, a control character, non-ASCII).
    #[error("the Idempotency-Key header may contain only visible ASCII characters")]
    Character,
}

impl IdempotencyKey {
    /// Checks a header value.
    pub fn parse(raw: &[u8]) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > KEY_MAX_LEN {
            return Err(KeyError::TooLong);
        }
        if !raw.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(KeyError::Character);
        }
        Ok(Self(String::from_utf8_lossy(raw).into_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
// ANCHOR_END: key

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ANCHOR: scope
/// Who used a key, and where: the key is unique within this scope only.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyScope {
    /// The account (from authentication, never from the body).
    pub account: String,
    /// The route, e.g. `POST /checkout`.
    pub endpoint: &'static str,
    /// The client's key.
    pub key: IdempotencyKey,
}
// ANCHOR_END: scope

// ANCHOR: fingerprint
/// SHA-256 of the *parsed* request, in hex.
///
/// Hashing the parsed request rather than the raw bytes means key order and
/// white space do not make two equal requests differ; the caller passes a
/// canonical form (lines sorted by SKU).
pub fn fingerprint<T: serde::Serialize>(request: &T) -> String {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
// ANCHOR_END: fingerprint

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_255_visible_ascii() {
        assert!(IdempotencyKey::parse(b"0b6f3c4e-checkout").is_ok());
        assert_eq!(IdempotencyKey::parse(b""), Err(KeyError::Empty));
        assert_eq!(IdempotencyKey::parse(b"a b"), Err(KeyError::Character));
        assert_eq!(IdempotencyKey::parse(&[b'k'; 256]), Err(KeyError::TooLong));
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
    }
}
