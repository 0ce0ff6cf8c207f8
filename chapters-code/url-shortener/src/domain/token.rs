//! The management token: the proof that a caller created a link.
//!
//! A short URL is printed, mailed and posted: anyone can learn its code, so
//! the code cannot be what lets someone delete the link. The create returns
//! a random token once; the store keeps only its SHA-256 hash, so a leaked
//! database does not leak the power to delete every link.

use std::fmt;

use sha2::{Digest, Sha256};

// ANCHOR: token
/// Random bytes in a token: 256 bits, beyond any guessing.
const TOKEN_BYTES: usize = 32;

/// A token as the client holds it: 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct ManagementToken([u8; TOKEN_BYTES]);

/// The SHA-256 of a token, which is all the store keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

/// Why a request may not manage a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer <token>` header.
    #[error("this route needs the link's management token (Authorization: Bearer ...)")]
    Missing,
    /// A header that is not a bearer token of 64 hex digits.
    #[error("the Authorization header does not hold a management token")]
    Malformed,
    /// A well-formed token that is not this link's.
    #[error("the management token is not this link's")]
    Wrong,
}

impl ManagementToken {
    /// A fresh token from the operating system's random source.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// Parses the text a client sends back.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let bytes = s.as_bytes();
        if bytes.len() != 2 * TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut out = [0u8; TOKEN_BYTES];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Ok(Self(out))
    }

    /// What the store keeps.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }
}
// ANCHOR_END: token

fn hex_digit(b: u8) -> Result<u8, TokenError> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        _ => Err(TokenError::Malformed),
    }
}

impl TokenHash {
    /// The hash as stored (32 bytes).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash read back from the store; `None` unless it is 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// True when `token` is the one this hash was made from. Compares every
    /// byte whatever the first difference, so the time taken says nothing.
    pub fn admits(&self, token: &ManagementToken) -> bool {
        let other = token.hash();
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Display for ManagementToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ManagementToken {
    /// Never printed in full: a token in a log is a token leaked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ManagementToken(..)")
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash(")?;
        self.0[..4].iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_token_round_trips_and_only_its_own_hash_admits_it() {
        let token = ManagementToken::generate();
        let text = token.to_string();
        assert_eq!(text.len(), 64);
        let parsed = ManagementToken::parse(&text).expect("own output parses");
        assert_eq!(parsed, token);
        assert!(token.hash().admits(&parsed));
        assert!(!token.hash().admits(&ManagementToken::generate()));
        assert_eq!(format!("{token:?}"), "ManagementToken(..)");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in ["", "abc", &"g".repeat(64), &"A".repeat(64), &"0".repeat(65)] {
            assert_eq!(
                ManagementToken::parse(bad),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_string_parses_only_if_it_is_64_lowercase_hex_digits(s in any::<String>()) {
            let ok = s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            prop_assert_eq!(ManagementToken::parse(&s).is_ok(), ok);
        }
    }
}
