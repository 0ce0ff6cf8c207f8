//! Where a user's interactions come from.
//!
//! The trait is what the service needs: a user's history with the kind of
//! each event. The in-memory adapter is the default of the demo binary.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::data::Kind;
use crate::model::ItemId;

/// A user's public id.
pub type UserId = i64;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed or was unreachable (retryable).
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Most events of one user the service reads per request: a bound on the
/// work a very active user can cause.
pub const HISTORY_LIMIT: usize = 200;

/// The interactions store.
pub trait Interactions: Send + Sync {
    /// The user's most recent events (oldest first, at most
    /// [`HISTORY_LIMIT`]), or `None` for a user the store has never seen.
    fn history(
        &self,
        user: UserId,
    ) -> impl Future<Output = Result<Option<Vec<(ItemId, Kind)>>, StoreError>> + Send;

    /// Records one event.
    fn record(
        &self,
        user: UserId,
        item: ItemId,
        kind: Kind,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Interactions in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    users: RwLock<HashMap<UserId, Vec<(ItemId, Kind)>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Interactions for MemoryStore {
    async fn history(&self, user: UserId) -> Result<Option<Vec<(ItemId, Kind)>>, StoreError> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        Ok(users.get(&user).map(|events| {
            let skip = events.len().saturating_sub(HISTORY_LIMIT);
            events[skip..].to_vec()
        }))
    }

    async fn record(&self, user: UserId, item: ItemId, kind: Kind) -> Result<(), StoreError> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        users.entry(user).or_default().push((item, kind));
        Ok(())
    }
}
