//! In-process timelines with the same semantics as Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{CacheError, TIMELINE_CAP, TimelineCache, Window};
use crate::domain::{PostId, UserId};

#[derive(Debug, Default)]
struct Timeline {
    ready: bool,
    /// Newest first.
    ids: Vec<PostId>,
}

impl Timeline {
    fn insert(&mut self, id: PostId, cap: usize) -> bool {
        // Newest first: find the first entry older than `id`.
        match self.ids.binary_search_by(|probe| id.cmp(probe)) {
            Ok(_) => false,
            Err(at) => {
                self.ids.insert(at, id);
                self.ids.truncate(cap);
                true
            }
        }
    }
}

/// Timelines in process memory; clones share them.
#[derive(Clone, Debug)]
pub struct MemoryTimelines {
    cap: usize,
    inner: Arc<Mutex<HashMap<UserId, Timeline>>>,
}

impl Default for MemoryTimelines {
    fn default() -> Self {
        Self::with_cap(TIMELINE_CAP)
    }
}

impl MemoryTimelines {
    /// Timelines capped at `cap` entries.
    pub fn with_cap(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            inner: Arc::default(),
        }
    }

    /// Drops every timeline (as a Redis flush does).
    pub fn flush(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Timeline>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TimelineCache for MemoryTimelines {
    fn cap(&self) -> usize {
        self.cap
    }

    async fn deliver(&self, post: PostId, users: &[UserId]) -> Result<usize, CacheError> {
        let mut all = self.lock();
        Ok(users
            .iter()
            .filter(|u| all.get_mut(u).is_some_and(|t| t.insert(post, self.cap)))
            .count())
    }

    async fn insert(&self, user: UserId, posts: &[PostId]) -> Result<(), CacheError> {
        if let Some(t) = self.lock().get_mut(&user) {
            for p in posts {
                t.insert(*p, self.cap);
            }
        }
        Ok(())
    }

    async fn window(
        &self,
        user: UserId,
        before: Option<PostId>,
        n: usize,
    ) -> Result<Option<Window>, CacheError> {
        let all = self.lock();
        let Some(t) = all.get(&user).filter(|t| t.ready) else {
            return Ok(None);
        };
        let start = match before {
            None => 0,
            Some(b) => t.ids.partition_point(|id| *id >= b),
        };
        let ids: Vec<PostId> = t.ids[start..].iter().take(n).copied().collect();
        Ok(Some(Window {
            exhausted: start + ids.len() >= t.ids.len(),
            full: t.ids.len() >= self.cap,
            ids,
        }))
    }

    async fn begin_rebuild(&self, user: UserId) -> Result<bool, CacheError> {
        let mut all = self.lock();
        if all.contains_key(&user) {
            return Ok(false);
        }
        all.insert(user, Timeline::default());
        Ok(true)
    }

    async fn finish_rebuild(&self, user: UserId, posts: &[PostId]) -> Result<bool, CacheError> {
        let mut all = self.lock();
        let Some(t) = all.get_mut(&user) else {
            return Ok(false);
        };
        for p in posts {
            t.insert(*p, self.cap);
        }
        t.ready = true;
        Ok(true)
    }

    async fn evict(&self, user: UserId) -> Result<(), CacheError> {
        self.lock().remove(&user);
        Ok(())
    }
}
