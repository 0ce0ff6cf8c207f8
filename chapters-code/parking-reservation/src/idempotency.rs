//! Idempotency keys: a retried reserve returns the first answer instead of
//! holding a second spot.
//!
//! A client that timed out does not know whether its reservation happened.
//! If it retries with the same `Idempotency-Key` and the same body, it gets
//! the response of the first attempt, byte for byte; with the same key and a
//! different body it gets an error (HTTP 422), because the key names one
//! request and the server will not guess which one the client meant.
//!
//! The key is claimed *first*, in the same transaction as the reservation
//! (insert-first). The primary key on `idempotency_keys.key` is then the
//! lock: a concurrent request with the same key blocks on its own insert
//! until the first transaction ends. If the first commits, the second reads
//! the stored response; if it rolls back (no spot was free, the database
//! failed), the key vanishes with it and the second proceeds as if first.
//! So only a success is remembered, and two concurrent requests with one
//! key make at most one reservation (test
//! `concurrent_requests_with_one_key_make_one_reservation`).

use std::fmt;

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row};

use crate::domain::{Reservation, ReserveRequest};

/// Longest accepted key, in bytes.
pub const KEY_MAX_LEN: usize = 255;

// ANCHOR: key
/// A client-chosen key naming one reserve request: 1 to 255 visible ASCII characters.
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
        // Visible ASCII is valid UTF-8.
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

// ANCHOR: fingerprint
/// SHA-256 of the *parsed* request, in hex.
///
/// Hashing the parsed request rather than the raw body means that key order,
/// white space, `ab 123` versus `AB123` and `+01:00` versus `Z` do not make
/// two equal requests differ.
pub fn fingerprint(request: &ReserveRequest) -> String {
    // Serializing a struct writes its fields in declaration order: canonical.
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of a walk-in: of its lot, kind, end and plate, marked as
/// a walk-in. Not of its start, which the service takes from the clock: a
/// gate that retries in the next 15-minute slot sends the same walk-in. The
/// mark keeps a key used for a reserve from replaying it as a walk-in.
pub fn walk_in_fingerprint(request: &ReserveRequest) -> String {
    let canonical = serde_json::to_vec(&(
        "walk-in",
        request.lot_id,
        request.kind,
        request.range.end(),
        &request.plate,
    ))
    .unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
// ANCHOR_END: fingerprint

/// What claiming a key found.
#[derive(Debug)]
pub enum Claim {
    /// The key is new and now belongs to this transaction.
    New,
    /// The key was used before with the same request: here is the first response.
    Replay(Box<Reservation>),
    /// The key was used before with a different request.
    Mismatch,
}

/// Why claiming or recording a key failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A stored response did not parse (it was written by this code, so: corruption).
    #[error("stored response for an idempotency key does not parse: {0}")]
    Stored(#[from] serde_json::Error),
}

// ANCHOR: claim
/// Claims `key` inside the caller's transaction, or reads what its first use left.
///
/// `ON CONFLICT DO NOTHING` waits for a concurrent transaction holding the
/// same key to finish; the row it then finds (if any) is committed.
pub async fn claim(
    tx: &mut PgConnection,
    key: &IdempotencyKey,
    fingerprint: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Claim, ClaimError> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (key, fingerprint, created_at)
         VALUES ($1, $2, $3)
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key.as_str())
    .bind(fingerprint)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let row = sqlx::query("SELECT fingerprint, response FROM idempotency_keys WHERE key = $1")
        .bind(key.as_str())
        .fetch_one(&mut *tx)
        .await?;
    let stored: String = row.try_get("fingerprint")?;
    if stored != fingerprint {
        return Ok(Claim::Mismatch);
    }
    let response: serde_json::Value = row.try_get("response")?;
    Ok(Claim::Replay(Box::new(serde_json::from_value(response)?)))
}

/// Stores the response of the request that claimed `key`, in the same transaction.
pub async fn record(
    tx: &mut PgConnection,
    key: &IdempotencyKey,
    response: &Reservation,
) -> Result<(), ClaimError> {
    sqlx::query("UPDATE idempotency_keys SET reservation_id = $2, response = $3 WHERE key = $1")
        .bind(key.as_str())
        .bind(response.id)
        .bind(serde_json::to_value(response)?)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
// ANCHOR_END: claim

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii() {
        assert!(IdempotencyKey::parse(b"order-42/retry").is_ok());
        assert_eq!(IdempotencyKey::parse(b""), Err(KeyError::Empty));
        assert_eq!(IdempotencyKey::parse(b"a b"), Err(KeyError::Character));
        assert_eq!(
            IdempotencyKey::parse("é".as_bytes()),
            Err(KeyError::Character)
        );
        assert_eq!(IdempotencyKey::parse(&[b'k'; 256]), Err(KeyError::TooLong));
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
    }
}
