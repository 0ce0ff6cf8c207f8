//! The reference store: a map behind one mutex.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Utc;
use uuid::Uuid;

use super::{Keyed, OrderStore, RecordedEvent, StoreError, created_answer, decide_at};
use crate::domain::{Command, NewOrder, Order};

/// Orders and their histories in memory; the demo's default and the model's twin.
#[derive(Default)]
pub struct MemoryStore {
    orders: Mutex<HashMap<Uuid, (Order, Vec<RecordedEvent>)>>,
    keys: Mutex<block_idempotency::MemoryKeys>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Order, Vec<RecordedEvent>)>> {
        // A panic while holding the lock leaves whole values behind (each
        // change is built aside and swapped in), so the data is still valid.
        self.orders.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MemoryStore {
    fn create_now(&self, id: Uuid, request: &NewOrder) -> Result<Order, StoreError> {
        let created = request.validate()?;
        let order = Order::from_created(id, &created)?;
        let mut orders = self.lock();
        if orders.contains_key(&id) {
            return Err(StoreError::AlreadyExists(id));
        }
        let event = RecordedEvent {
            version: 1,
            event: created,
            recorded_at: Utc::now(),
        };
        orders.insert(id, (order.clone(), vec![event]));
        Ok(order)
    }
}

impl OrderStore for MemoryStore {
    async fn create(&self, id: Uuid, request: &NewOrder) -> Result<Order, StoreError> {
        self.create_now(id, request)
    }

    async fn create_keyed(
        &self,
        id: Uuid,
        request: &NewOrder,
        key: &block_idempotency::KeyScope,
    ) -> Result<Keyed, StoreError> {
        request.validate()?;
        let fingerprint = super::create_fingerprint(key, request)?;
        let now = Utc::now();
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        // Check first, claim after the work: a failed create leaves no key,
        // as a rollback would.
        if let Some(block_idempotency::Decision::Replay) = keys.check(key, &fingerprint, now)?
            && let block_idempotency::Claimed::Replay(answer) =
                keys.claim(key, &fingerprint, block_idempotency::DEFAULT_LEASE, now)?
        {
            return Ok(Keyed::Replay(answer));
        }
        let order = self.create_now(id, request)?;
        let lock = match keys.claim(key, &fingerprint, block_idempotency::DEFAULT_LEASE, now)? {
            block_idempotency::Claimed::New(lock)
            | block_idempotency::Claimed::TakenOver { lock, .. } => lock,
            block_idempotency::Claimed::Replay(answer) => return Ok(Keyed::Replay(answer)),
        };
        if keys.finish(lock, &created_answer(&order)?, now).is_err() {
            return Err(block_idempotency::ClaimError::KeyInUse.into());
        }
        Ok(Keyed::Created(order))
    }

    async fn get(&self, id: Uuid) -> Result<Order, StoreError> {
        self.lock()
            .get(&id)
            .map(|(o, _)| o.clone())
            .ok_or(StoreError::NotFound(id))
    }

    async fn history(&self, id: Uuid) -> Result<Vec<RecordedEvent>, StoreError> {
        self.lock()
            .get(&id)
            .map(|(_, h)| h.clone())
            .ok_or(StoreError::NotFound(id))
    }

    async fn apply(
        &self,
        id: Uuid,
        expected_version: i64,
        command: &Command,
    ) -> Result<Order, StoreError> {
        let mut orders = self.lock();
        let (order, history) = orders.get_mut(&id).ok_or(StoreError::NotFound(id))?;
        let (event, next) = decide_at(order, expected_version, command)?;
        history.push(RecordedEvent {
            version: next.version,
            event,
            recorded_at: Utc::now(),
        });
        *order = next.clone();
        Ok(next)
    }
}
