//! The in-memory adapter: the demo binary's default and the fast half of the test suite.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, NaiveDate, Utc};

use super::{DailyClicks, DayCount, DeleteOutcome, LinkStore, StoreError};
use crate::domain::{Code, Link, NewLink, TokenHash};

// ANCHOR: memory_store
/// Links and click counts in hash maps behind one mutex.
///
/// A `std::sync::Mutex`, not tokio's: no method holds the lock across an
/// `.await`, and the critical sections are a few map operations, so a
/// blocking lock is cheaper than an async one (the advice in tokio's docs).
/// One lock for both maps keeps every operation atomic: `insert` checks and
/// writes under the same guard, which is what makes it race-free.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    links: HashMap<Code, Link>,
    clicks: HashMap<Code, BTreeMap<NaiveDate, u64>>,
}
// ANCHOR_END: memory_store

impl LinkStore for MemoryStore {
    // ANCHOR: memory_insert
    async fn insert(&self, link: NewLink) -> Result<Link, StoreError> {
        let mut state = self.lock();
        if state.links.contains_key(&link.code) {
            return Err(StoreError::CodeTaken);
        }
        let link = link.into_link();
        state.links.insert(link.code.clone(), link.clone());
        Ok(link)
    }
    // ANCHOR_END: memory_insert

    async fn get(&self, code: &Code) -> Result<Option<Link>, StoreError> {
        Ok(self.lock().links.get(code).cloned())
    }

    async fn delete(
        &self,
        code: &Code,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<DeleteOutcome, StoreError> {
        let mut state = self.lock();
        Ok(match state.links.get_mut(code) {
            None => DeleteOutcome::NotFound,
            Some(link) if link.token_hash != *token => DeleteOutcome::WrongToken,
            Some(link) if link.deleted_at.is_some() => DeleteOutcome::AlreadyDeleted,
            Some(link) => {
                link.deleted_at = Some(at);
                DeleteOutcome::Deleted
            }
        })
    }

    async fn add_clicks(&self, batch: &[DailyClicks]) -> Result<(), StoreError> {
        let mut state = self.lock();
        let State { links, clicks } = &mut *state;
        // Like the PostgreSQL adapter, clicks for an unknown code are ignored.
        for c in batch.iter().filter(|c| links.contains_key(&c.code)) {
            *clicks
                .entry(c.code.clone())
                .or_default()
                .entry(c.day)
                .or_default() += c.count;
        }
        Ok(())
    }

    async fn daily_clicks(&self, code: &Code) -> Result<Vec<DayCount>, StoreError> {
        let state = self.lock();
        let days = state.clicks.get(code);
        Ok(days
            .into_iter()
            .flatten()
            .map(|(&day, &count)| DayCount { day, count })
            .collect())
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of links stored, in any state.
    pub fn len(&self) -> usize {
        self.lock().links.len()
    }

    /// True when no link was ever stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated
        // (each critical section is one map operation), so a poisoned lock
        // is safe to keep using.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
