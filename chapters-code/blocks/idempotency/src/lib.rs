//! Part II block: idempotency keys on PostgreSQL.
//!
//! A client that sent a write and lost the answer (a timeout, a dropped
//! connection, a 503 after the commit) cannot tell whether the write
//! happened. It retries with the same `Idempotency-Key`; this block makes
//! the retry get the first request's answer instead of doing the work twice.
//!
//! - [`key`]: the key (1 to 255 visible ASCII, parsed once) and its scope
//!   (account and endpoint).
//! - [`fingerprint`]: SHA-256 of a canonical form of the request (method,
//!   route, account, body); the same key with another request is refused.
//! - [`decide`]: the pure rule a claim follows when the key exists.
//! - [`pg`]: the statements, run on the caller's connection, so the answer
//!   commits in the same transaction as the work it answers for.
//! - [`memory`]: the same rules in memory, for tests and demo binaries.
//!
//! The lock on a key is a lease on the *database's* clock with a
//! generation: a claim that takes over an expired lease adds one to the
//! generation, and the first holder's later `finish` names the old
//! generation and is refused ([`FinishError::Fenced`]). The purge deletes
//! finished keys only; unfinished ones are counted and left for recovery.

pub mod fingerprint;
pub mod key;
pub mod memory;
pub mod pg;

#[cfg(feature = "book")]
pub mod book;

use std::future::Future;
use std::time::Duration;

pub use fingerprint::Fingerprint;
pub use key::{IdempotencyKey, KEY_MAX_LEN, KeyError, KeyScope};
pub use memory::{MemoryKeys, SharedMemoryKeys};
pub use pg::PgKeys;

// ANCHOR: policy
/// How long a claim holds a key before another request may take it over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How long a finished key is kept (Stripe keeps keys at least 24 hours).
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// The most keys one `DELETE` of the purge removes, so that no statement
/// holds locks for long; a purge runs batch after batch.
pub const PURGE_BATCH: i64 = 10_000;
/// How long one purge may go on deleting batches before it stops and
/// leaves the rest to the next call (well under an hourly tick).
pub const PURGE_BUDGET: Duration = Duration::from_secs(60);
// ANCHOR_END: policy

/// The recovery point of a key whose work is done.
pub const FINISHED: &str = "finished";
/// The recovery point of a key just claimed.
pub const STARTED: &str = "started";

// ANCHOR: types
/// A final answer: HTTP status and JSON body, replayed to every retry.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FinalAnswer {
    /// The HTTP status (a 5xx too: Stripe replays those).
    pub status: u16,
    /// The body.
    pub body: serde_json::Value,
}

/// A claim's hold on a key: the row and the generation it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lock {
    /// The key's row.
    pub id: i64,
    /// The generation this holder owns; a takeover makes it stale.
    pub generation: i64,
}

/// What a claim got.
#[derive(Clone, Debug, PartialEq)]
pub enum Claimed {
    /// A new key: this request does the work.
    New(Lock),
    /// An unfinished key whose lease ran out: this request resumes the
    /// work from `recovery_point`; the earlier holder is fenced off.
    TakenOver {
        /// The new hold (generation one higher).
        lock: Lock,
        /// How far the earlier holder got.
        recovery_point: String,
    },
    /// The key is finished: its answer, to replay.
    Replay(FinalAnswer),
}

/// Why a claim was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The key was used with a different request (Stripe: 400; here 422).
    #[error("this Idempotency-Key was used with a different request")]
    KeyReused,
    /// Another request holds the key and its lease has not run out (409).
    #[error("a request with this Idempotency-Key is in progress")]
    KeyInUse,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A stored value did not parse (written by this code, so: corruption).
    #[error("corrupt idempotency key row: {0}")]
    Corrupt(String),
}

/// Why a holder's write on its key was refused.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// Another request took the key over (or finished it): this holder's
    /// generation is stale, so its answer and its work must not commit.
    #[error("the key was taken over by another request")]
    Fenced,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a purge did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Purged {
    /// Finished keys older than the retention, deleted.
    pub deleted: u64,
    /// Unfinished keys older than the retention, kept for recovery.
    pub unfinished_kept: u64,
    /// The budget ran out before a batch came back short: expired keys may
    /// be left for the next purge (the purge is falling behind if this lasts).
    pub more_left: bool,
}
// ANCHOR_END: types

// ANCHOR: decide
/// What a claim does with a key that exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Replay the stored answer.
    Replay,
    /// Take the key over: bump the generation, start a new lease.
    TakeOver,
}

/// The rule for an existing key, the same in every adapter. `held` is
/// whether its lease is still running, by the store's clock.
pub fn decide(
    stored: &str,
    asked: &Fingerprint,
    finished: bool,
    held: bool,
) -> Result<Decision, ClaimError> {
    // Another request under the same key is an error even when the key is
    // finished: the client has a bug, and a replay would hide it.
    if stored != asked.as_str() {
        return Err(ClaimError::KeyReused);
    }
    if finished {
        return Ok(Decision::Replay);
    }
    if held {
        return Err(ClaimError::KeyInUse);
    }
    Ok(Decision::TakeOver)
}
// ANCHOR_END: decide

/// The operations of a key store, each in its own transaction: what the
/// behaviour suite runs against every adapter.
pub trait KeyStore: Send + Sync + 'static {
    /// Claims `scope` for a request with `fingerprint`, with a lease of `lease`.
    fn claim(
        &self,
        scope: &KeyScope,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> impl Future<Output = Result<Claimed, ClaimError>> + Send;

    /// Stores the final answer, if `lock` still holds the key.
    fn finish(
        &self,
        lock: Lock,
        answer: &FinalAnswer,
    ) -> impl Future<Output = Result<(), FinishError>> + Send;

    /// Ends the lease early (the work stopped, unfinished), if `lock` still holds the key.
    fn release(&self, lock: Lock) -> impl Future<Output = Result<(), FinishError>> + Send;

    /// Deletes every finished key older than `retention`, batch after batch
    /// within [`PURGE_BUDGET`]; counts unfinished ones.
    fn purge(&self, retention: Duration)
    -> impl Future<Output = Result<Purged, ClaimError>> + Send;
}
