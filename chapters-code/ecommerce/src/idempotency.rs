//! `Idempotency-Key`: this chapter's use of the idempotency block.
//!
//! The key, its scope, the fingerprint, the fenced claim, the stored answer
//! and the purge are the Part II block `block-idempotency` (its page tells
//! the mechanism). What is the chapter's own: the endpoint keys are scoped
//! by, the canonical form of a checkout request, the lease and retention it
//! chooses, and the `order_id` column its key rows carry (`sql/schema.sql`),
//! which is why the chapter declares the key table itself.
//!
//! Where the key lives, and in which transaction, is in `checkout`.

use block_idempotency::{ClaimError, FinalAnswer, FinishError};
use chrono::TimeDelta;

use crate::checkout::{CheckoutError, StoredResponse};
use crate::store::StoreError;

// ANCHOR: key
pub use block_idempotency::{IdempotencyKey, KEY_MAX_LEN, KeyError};
// ANCHOR_END: key
// ANCHOR: scope
pub use block_idempotency::{Fingerprint, KeyScope, Lock, Purged};
// ANCHOR_END: scope

// ANCHOR: ttl
/// Finished keys older than this are purged; a retry after that is a new request.
pub const KEY_TTL: TimeDelta = TimeDelta::hours(24);
/// A key's lease, by the database's clock: a request that holds it longer
/// is presumed dead, and the next retry takes the key over (fencing it off).
pub const LOCK_TIMEOUT: TimeDelta = TimeDelta::seconds(30);
// ANCHOR_END: ttl

/// [`LOCK_TIMEOUT`] as the block takes it.
pub fn lease() -> std::time::Duration {
    LOCK_TIMEOUT
        .to_std()
        .unwrap_or(block_idempotency::DEFAULT_LEASE)
}

/// [`KEY_TTL`] as the block takes it.
pub fn retention() -> std::time::Duration {
    KEY_TTL.to_std().unwrap_or(block_idempotency::RETENTION)
}

// ANCHOR: fingerprint
/// The fingerprint of a checkout by `account`: the block's SHA-256 over
/// method, route, account and the *parsed* request (lines sorted by SKU,
/// fields in declaration order), so key order and white space in the
/// client's JSON do not make two equal requests differ.
pub fn fingerprint<T: serde::Serialize>(account: &str, request: &T) -> Fingerprint {
    let body = serde_json::to_vec(request).unwrap_or_default();
    Fingerprint::of("POST", "/checkout", account, &body)
}
// ANCHOR_END: fingerprint

// The block's types and refusals as the checkout's.

/// The block's answer as the checkout's.
pub(crate) fn stored(a: FinalAnswer) -> StoredResponse {
    StoredResponse {
        status: a.status,
        body: a.body,
    }
}

/// The checkout's answer as the block stores it.
pub(crate) fn final_answer(r: &StoredResponse) -> FinalAnswer {
    FinalAnswer {
        status: r.status,
        body: r.body.clone(),
    }
}

/// A refused claim as the checkout's error.
pub(crate) fn claim_error(e: ClaimError) -> CheckoutError {
    match e {
        ClaimError::KeyReused => CheckoutError::KeyReused,
        ClaimError::KeyInUse => CheckoutError::KeyInUse,
        ClaimError::Database(e) => CheckoutError::Store(e.into()),
        ClaimError::Corrupt(e) => CheckoutError::Store(StoreError::Corrupt(e)),
    }
}

/// A fenced write as the checkout's error: another request holds the key.
pub(crate) fn finish_error(e: FinishError) -> CheckoutError {
    match e {
        FinishError::Fenced => CheckoutError::KeyInUse,
        FinishError::Database(e) => CheckoutError::Store(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_covers_the_account() {
        let body = serde_json::json!({"lines": [["MUG-RED", 1]]});
        assert_ne!(fingerprint("alice", &body), fingerprint("bob", &body));
        assert_eq!(fingerprint("alice", &body), fingerprint("alice", &body));
    }
}
