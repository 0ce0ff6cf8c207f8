//! The key a client sends, and the scope it means something in.

use std::fmt;

/// Longest accepted key, in characters (Stripe's limit).
pub const KEY_MAX_LEN: usize = 255;

// ANCHOR: key
/// A client-chosen key: 1 to [`KEY_MAX_LEN`] visible ASCII characters.
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
    /// Parses a header value; the only way to make a key.
    pub fn parse(raw: &[u8]) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > KEY_MAX_LEN {
            return Err(KeyError::TooLong);
        }
        // Visible ASCII (0x21..=0x7e): no white space to trim or not, no
        // look-alike Unicode, and the same rule as the table's CHECK.
        if !raw.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(KeyError::Character);
        }
        Ok(Self(raw.iter().map(|&b| char::from(b)).collect()))
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
    /// The endpoint, e.g. `POST /checkout`.
    pub endpoint: &'static str,
    /// The client's key.
    pub key: IdempotencyKey,
}
// ANCHOR_END: scope
