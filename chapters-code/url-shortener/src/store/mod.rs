//! Durable storage of links and click counts, behind one trait.
//!
//! [`LinkStore`] has two adapters with the same semantics: [`MemoryStore`]
//! (a mutex around hash maps, for the demo binary and fast tests) and
//! [`PgStore`] (PostgreSQL, the real one). One behaviour suite runs against
//! both (`tests/behaviour.rs`).
//!
//! Decisions every adapter follows:
//!
//! - **A code is unique for ever.** `insert` fails with
//!   [`StoreError::CodeTaken`] when the code exists in any state, and the
//!   check is the insert itself (PostgreSQL's unique index), never a read
//!   followed by a write, which two racing requests would both pass.
//! - **Delete is soft.** `deleted_at` is set and the row stays, so the code
//!   is never handed to someone else: a reused code would send the old
//!   link's visitors (printed QR codes, old emails) to a stranger's page.
//!   Redirects answer 410 Gone. A retention job (out of scope) purges rows
//!   five years after creation.
//! - **Clicks are counted per link per day**, added in batches.

mod memory;
mod postgres;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

pub use memory::MemoryStore;
pub use postgres::{DAILY_CLICKS, GET_LINK, PgBlockAllocator, PgStore, SCHEMA, db_error};

use crate::domain::{Code, Link, NewLink, TokenHash};

// ANCHOR: store_trait
/// Where links and their click counts live.
///
/// `Clone` because every request handler holds one; adapters are cheap
/// handles around shared state (an `Arc`, a connection pool).
pub trait LinkStore: Clone + Send + Sync + 'static {
    /// Stores a new link; [`StoreError::CodeTaken`] if the code exists, in any state.
    fn insert(&self, link: NewLink) -> impl Future<Output = Result<Link, StoreError>> + Send;

    /// The link with this code, whatever its state (live, expired, deleted).
    fn get(&self, code: &Code) -> impl Future<Output = Result<Option<Link>, StoreError>> + Send;

    /// Marks the link deleted at `at`, if `token` is its token's hash.
    fn delete(
        &self,
        code: &Code,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<DeleteOutcome, StoreError>> + Send;

    /// Adds click counts. Each (code, day) appears at most once in `batch`.
    fn add_clicks(
        &self,
        batch: &[DailyClicks],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Click counts of one link, one entry per day with clicks, oldest first.
    fn daily_clicks(
        &self,
        code: &Code,
    ) -> impl Future<Output = Result<Vec<DayCount>, StoreError>> + Send;
}

/// What a delete found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The link was live (or expired) and is now deleted.
    Deleted,
    /// The link had been deleted before.
    AlreadyDeleted,
    /// The link exists, and the token is not its own: nothing changed.
    WrongToken,
    /// No link has this code.
    NotFound,
}

/// Clicks on one link on one day (UTC), as the batcher adds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyClicks {
    /// The link.
    pub code: Code,
    /// The UTC day of the redirects.
    pub day: NaiveDate,
    /// How many redirects.
    pub count: u64,
}

// ANCHOR: day_count
/// Clicks on one day, as stats report them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DayCount {
    /// The UTC day.
    pub day: NaiveDate,
    /// Redirects that day.
    pub count: u64,
}
// ANCHOR_END: day_count

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The code belongs to another link.
    #[error("the code is taken")]
    CodeTaken,
    /// The store cannot be reached (connection refused, pool closed, ...).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store refuses until an operator acts (a missing grant): no
    /// retry helps, so the answer has no `Retry-After`.
    #[error("the store refuses: {0}")]
    Refused(String),
    /// The store did not answer in time.
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    /// The store answered with an error we did not expect (a bug or a broken schema).
    #[error("the store failed: {0}")]
    Backend(String),
}
// ANCHOR_END: store_trait
