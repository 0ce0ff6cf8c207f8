//! The same rules in memory: for tests, demo binaries and chapters' in-memory stores.
//!
//! [`MemoryKeys`] takes no lock of its own: a chapter's in-memory store
//! keeps it inside the one lock it already holds for a whole operation,
//! which is what a transaction gives the PostgreSQL adapter. The clock is
//! passed in (`now`), the store's clock: in one process there is only one.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Mutex;

use crate::{
    ClaimError, Claimed, Decision, FINISHED, FinalAnswer, Fingerprint, FinishError, KeyScope,
    KeyStore, Lock, Purged, STARTED, decide,
};

#[derive(Clone, Debug)]
struct Row {
    id: i64,
    fingerprint: String,
    created_at: DateTime<Utc>,
    generation: i64,
    locked_until: Option<DateTime<Utc>>,
    recovery_point: String,
    answer: Option<FinalAnswer>,
    finished_at: Option<DateTime<Utc>>,
}

type Scope = (String, &'static str, String);

fn scope_of(s: &KeyScope) -> Scope {
    (s.account.clone(), s.endpoint, s.key.as_str().to_string())
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// The key table in memory.
#[derive(Debug, Default)]
pub struct MemoryKeys {
    rows: HashMap<Scope, Row>,
    next_id: i64,
}

/// One key, as tests and reconciliation read it.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyView {
    /// Whose key.
    pub account: String,
    /// The key.
    pub key: String,
    /// How far its work got.
    pub recovery_point: String,
    /// Whether a holder's lease is running at `now`.
    pub held: bool,
}

impl MemoryKeys {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn row_mut(&mut self, lock: Lock) -> Option<&mut Row> {
        self.rows
            .values_mut()
            .find(|r| r.id == lock.id && r.generation == lock.generation && r.answer.is_none())
    }

    /// Claims `scope` at `now`, as [`crate::pg::claim`] does.
    pub fn claim(
        &mut self,
        scope: &KeyScope,
        fingerprint: &Fingerprint,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Claimed, ClaimError> {
        let until = now + delta(lease);
        let key = scope_of(scope);
        if let Some(row) = self.rows.get_mut(&key) {
            let held = row.locked_until.is_some_and(|t| t > now);
            return match decide(&row.fingerprint, fingerprint, row.answer.is_some(), held)? {
                Decision::Replay => row
                    .answer
                    .clone()
                    .map(Claimed::Replay)
                    .ok_or_else(|| ClaimError::Corrupt("finished without an answer".into())),
                Decision::TakeOver => {
                    row.generation += 1;
                    row.locked_until = Some(until);
                    Ok(Claimed::TakenOver {
                        lock: Lock {
                            id: row.id,
                            generation: row.generation,
                        },
                        recovery_point: row.recovery_point.clone(),
                    })
                }
            };
        }
        self.next_id += 1;
        let id = self.next_id;
        self.rows.insert(
            key,
            Row {
                id,
                fingerprint: fingerprint.as_str().to_string(),
                created_at: now,
                generation: 1,
                locked_until: Some(until),
                recovery_point: STARTED.into(),
                answer: None,
                finished_at: None,
            },
        );
        Ok(Claimed::New(Lock { id, generation: 1 }))
    }

    /// What [`Self::claim`] would decide at `now`, writing nothing: `None`
    /// for a new key. An in-memory store checks first and claims after its
    /// last fallible step, so a failure leaves nothing behind, as a rollback.
    pub fn check(
        &self,
        scope: &KeyScope,
        fingerprint: &Fingerprint,
        now: DateTime<Utc>,
    ) -> Result<Option<Decision>, ClaimError> {
        let Some(row) = self.rows.get(&scope_of(scope)) else {
            return Ok(None);
        };
        let held = row.locked_until.is_some_and(|t| t > now);
        decide(&row.fingerprint, fingerprint, row.answer.is_some(), held).map(Some)
    }

    /// Whether the key of row `id` is still in the table (not purged).
    pub fn exists(&self, id: i64) -> bool {
        self.rows.values().any(|r| r.id == id)
    }

    /// Stores the final answer if `lock` still holds the key.
    pub fn finish(
        &mut self,
        lock: Lock,
        answer: &FinalAnswer,
        now: DateTime<Utc>,
    ) -> Result<(), FinishError> {
        let row = self.row_mut(lock).ok_or(FinishError::Fenced)?;
        row.answer = Some(answer.clone());
        row.finished_at = Some(now);
        row.locked_until = None;
        row.recovery_point = FINISHED.into();
        Ok(())
    }

    /// Whether `lock` still holds the key: check it before doing work that
    /// [`Self::finish`] would then refuse to answer for.
    pub fn holds(&self, lock: Lock) -> bool {
        self.rows
            .values()
            .any(|r| r.id == lock.id && r.generation == lock.generation && r.answer.is_none())
    }

    /// Records a recovery point if `lock` still holds the key.
    pub fn advance(&mut self, lock: Lock, point: &str) -> Result<(), FinishError> {
        self.row_mut(lock)
            .ok_or(FinishError::Fenced)?
            .recovery_point = point.into();
        Ok(())
    }

    /// Ends the lease now if `lock` still holds the key.
    pub fn release(&mut self, lock: Lock) -> Result<(), FinishError> {
        self.row_mut(lock).ok_or(FinishError::Fenced)?.locked_until = None;
        Ok(())
    }

    /// Deletes every finished key older than `retention` at `now` (in
    /// memory there is no lock to hold for long, so no batches); counts
    /// unfinished ones.
    pub fn purge(&mut self, retention: Duration, now: DateTime<Utc>) -> Purged {
        let cutoff = now - delta(retention);
        let mut purged = Purged::default();
        self.rows.retain(|_, r| match r.finished_at {
            Some(t) if t < cutoff => {
                purged.deleted += 1;
                false
            }
            None => {
                if r.created_at < cutoff {
                    purged.unfinished_kept += 1;
                }
                true
            }
            Some(_) => true,
        });
        purged
    }

    /// The final answer of `scope`, without claiming anything.
    pub fn final_answer(
        &self,
        scope: &KeyScope,
        fingerprint: &Fingerprint,
    ) -> Result<Option<FinalAnswer>, ClaimError> {
        match self.rows.get(&scope_of(scope)) {
            None => Ok(None),
            Some(r) if r.fingerprint != fingerprint.as_str() => Err(ClaimError::KeyReused),
            Some(r) => Ok(r.answer.clone()),
        }
    }

    /// Every key, sorted by account and key.
    pub fn keys(&self, now: DateTime<Utc>) -> Vec<KeyView> {
        let mut v: Vec<KeyView> = self
            .rows
            .iter()
            .map(|((account, _, key), r)| KeyView {
                account: account.clone(),
                key: key.clone(),
                recovery_point: r.recovery_point.clone(),
                held: r.locked_until.is_some_and(|t| t > now),
            })
            .collect();
        v.sort_by(|a, b| (&a.account, &a.key).cmp(&(&b.account, &b.key)));
        v
    }
}

/// [`MemoryKeys`] behind a lock, on the wall clock: the in-memory [`KeyStore`].
#[derive(Debug, Default)]
pub struct SharedMemoryKeys {
    keys: Mutex<MemoryKeys>,
}

impl SharedMemoryKeys {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl KeyStore for SharedMemoryKeys {
    async fn claim(
        &self,
        scope: &KeyScope,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Claimed, ClaimError> {
        self.keys
            .lock()
            .await
            .claim(scope, fingerprint, lease, Utc::now())
    }

    async fn finish(&self, lock: Lock, answer: &FinalAnswer) -> Result<(), FinishError> {
        self.keys.lock().await.finish(lock, answer, Utc::now())
    }

    async fn release(&self, lock: Lock) -> Result<(), FinishError> {
        self.keys.lock().await.release(lock)
    }

    async fn purge(&self, retention: Duration) -> Result<Purged, ClaimError> {
        Ok(self.keys.lock().await.purge(retention, Utc::now()))
    }
}
