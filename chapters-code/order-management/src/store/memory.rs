//! The reference store: a map behind one mutex.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Utc;
use uuid::Uuid;

use super::{OrderStore, RecordedEvent, StoreError, decide_at};
use crate::domain::{Command, NewOrder, Order};

/// Orders and their histories in memory; the demo's default and the model's twin.
#[derive(Default)]
pub struct MemoryStore {
    orders: Mutex<HashMap<Uuid, (Order, Vec<RecordedEvent>)>>,
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

impl OrderStore for MemoryStore {
    async fn create(&self, id: Uuid, request: &NewOrder) -> Result<Order, StoreError> {
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
