//! Idempotency keys: a retried reserve returns the first answer instead of
//! holding a second spot.
//!
//! The mechanism is the Part II block `block-idempotency` (its page tells
//! it); this module is the chapter's use of it. A client that timed out
//! does not know whether its reservation happened. If it retries with the
//! same `Idempotency-Key` and the same body, it gets the response of the
//! first attempt; with the same key and a different body it gets an error
//! (HTTP 422), because the key names one request and the server will not
//! guess which one the client meant.
//!
//! The key is claimed *first*, in the same transaction as the reservation,
//! and its answer stored in that transaction too. The UNIQUE scope of
//! `idempotency_keys` is then the lock: a concurrent request with the same
//! key blocks on its own insert until the first transaction ends. If the
//! first commits, the second reads the stored response; if it rolls back
//! (no spot was free, the database failed), the key vanishes with it and
//! the second proceeds as if first. So only a success is remembered, no
//! key is ever left unfinished (the block's lease and fence are never
//! needed here), and two concurrent requests with one key make at most
//! one reservation (test
//! `concurrent_requests_with_one_key_make_one_reservation`).

use block_idempotency::{
    ClaimError as Refused, Claimed, FinalAnswer, FinishError, KeyScope, Lock, pg,
};
use sqlx::PgConnection;

use crate::domain::{Reservation, ReserveRequest};

// ANCHOR: key
pub use block_idempotency::{Fingerprint, IdempotencyKey, KEY_MAX_LEN, KeyError};

/// The chapter has no accounts: one key space for every client.
pub const ACCOUNT: &str = "";
/// Reserve and walk-in share the key space; the fingerprint names the route,
/// so a key used for one is refused for the other.
pub const ENDPOINT: &str = "reservations";

/// A key in the chapter's one scope.
pub fn scope(key: &IdempotencyKey) -> KeyScope {
    KeyScope {
        account: ACCOUNT.into(),
        endpoint: ENDPOINT,
        key: key.clone(),
    }
}
// ANCHOR_END: key

// ANCHOR: fingerprint
/// The fingerprint of a reserve: the block's SHA-256 over method, route
/// and the *parsed* request, so key order, white space, `ab 123` versus
/// `AB123` and `+01:00` versus `Z` do not make two equal requests differ.
pub fn fingerprint(request: &ReserveRequest) -> Fingerprint {
    // Serializing a struct writes its fields in declaration order: canonical.
    let body = serde_json::to_vec(request).unwrap_or_default();
    Fingerprint::of("POST", "/lots/{lot}/reservations", ACCOUNT, &body)
}

/// The fingerprint of a walk-in: of its lot, kind, end and plate, on the
/// walk-in route. Not of its start, which the service takes from the clock:
/// a gate that retries in the next 15-minute slot sends the same walk-in.
pub fn walk_in_fingerprint(request: &ReserveRequest) -> Fingerprint {
    let body = serde_json::to_vec(&(
        request.lot_id,
        request.kind,
        request.range.end(),
        &request.plate,
    ))
    .unwrap_or_default();
    Fingerprint::of("POST", "/lots/{lot}/walk-ins", ACCOUNT, &body)
}
// ANCHOR_END: fingerprint

/// What claiming a key found.
#[derive(Debug)]
pub enum Claim {
    /// The key is new and now belongs to this transaction.
    New(Lock),
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
    /// A stored response did not parse, or a key was left unfinished,
    /// which this chapter never commits (so: corruption).
    #[error("idempotency key row: {0}")]
    Stored(String),
}

// ANCHOR: claim
/// Claims `key` inside the caller's transaction (the block's statement), or
/// reads what its first use left. A concurrent transaction holding the same
/// key makes this wait; the row it then finds (if any) is committed.
pub async fn claim(
    tx: &mut PgConnection,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
) -> Result<Claim, ClaimError> {
    match pg::claim(
        tx,
        &scope(key),
        fingerprint,
        block_idempotency::DEFAULT_LEASE,
    )
    .await
    {
        Ok(Claimed::New(lock)) => Ok(Claim::New(lock)),
        Ok(Claimed::Replay(answer)) => Ok(Claim::Replay(Box::new(
            serde_json::from_value(answer.body).map_err(|e| ClaimError::Stored(e.to_string()))?,
        ))),
        Err(Refused::KeyReused) => Ok(Claim::Mismatch),
        Err(Refused::Database(e)) => Err(e.into()),
        Ok(Claimed::TakenOver { .. }) | Err(Refused::KeyInUse) => {
            Err(ClaimError::Stored("an unfinished key".into()))
        }
        Err(Refused::Corrupt(e)) => Err(ClaimError::Stored(e)),
    }
}

/// Stores the response of the request that claimed the key, in the same transaction.
pub async fn record(
    tx: &mut PgConnection,
    lock: Lock,
    response: &Reservation,
) -> Result<(), ClaimError> {
    let answer = FinalAnswer {
        status: 201,
        body: serde_json::to_value(response).map_err(|e| ClaimError::Stored(e.to_string()))?,
    };
    pg::finish(&mut *tx, lock, &answer)
        .await
        .map_err(|e| match e {
            FinishError::Database(e) => ClaimError::Database(e),
            FinishError::Fenced => {
                ClaimError::Stored("the key's own transaction was fenced".into())
            }
        })?;
    // The chapter's own column: which reservation the key made.
    sqlx::query("UPDATE idempotency_keys SET reservation_id = $2 WHERE id = $1")
        .bind(lock.id)
        .bind(response.id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
// ANCHOR_END: claim
