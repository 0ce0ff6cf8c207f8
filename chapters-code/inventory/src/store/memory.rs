//! The in-memory adapter: one mutex around the whole state, so every
//! operation is atomic by construction. The demo binary's default.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::{InventoryStore, LAZY_RECLAIM_LIMIT, Outcome, Stock, StoreError, replay};
use crate::domain::{
    Balance, Count, Decision, Event, Movement, MovementKind, Qty, Reservation, Sku, State,
    StockKey, Warehouse, decide,
};

#[derive(Default)]
struct Inner {
    skus: BTreeSet<Sku>,
    warehouses: BTreeSet<Warehouse>,
    stock: BTreeMap<StockKey, (Balance, i64)>,
    reservations: HashMap<Uuid, Reservation>,
    movements: Vec<Movement>,
    /// Receipt ids recorded, with their position and quantity.
    receipts: HashMap<Uuid, (StockKey, i64)>,
}

/// Stock and reservations in process memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied
        // movement (each one is applied by a single assignment), so the
        // state is still consistent and poisoning can be ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn known(&self, key: &StockKey) -> Result<(), StoreError> {
        if !self.skus.contains(&key.sku) {
            return Err(StoreError::UnknownSku(key.sku.clone()));
        }
        if !self.warehouses.contains(&key.warehouse) {
            return Err(StoreError::UnknownWarehouse(key.warehouse.clone()));
        }
        Ok(())
    }

    /// Applies a movement of `q` units to `key`, or changes nothing.
    fn movement(
        &mut self,
        key: &StockKey,
        kind: MovementKind,
        q: i64,
    ) -> Result<Balance, StoreError> {
        let (balance, version) = self.stock.get(key).copied().unwrap_or_default();
        let after = balance
            .apply(kind, q)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (d_on_hand, d_reserved, d_committed) = kind.deltas(q);
        self.stock.insert(key.clone(), (after, version + 1));
        self.movements.push(Movement {
            key: key.clone(),
            kind,
            d_on_hand,
            d_reserved,
            d_committed,
        });
        Ok(after)
    }

    fn stock_of(&self, key: &StockKey, now: DateTime<Utc>) -> Stock {
        let (balance, version) = self.stock.get(key).copied().unwrap_or_default();
        // What one reserve would reclaim: the oldest lapsed holds, at most the limit.
        let reclaimable = self
            .lapsed(Some(key), now, LAZY_RECLAIM_LIMIT)
            .iter()
            .filter_map(|id| self.reservations.get(id))
            .map(|r| r.qty.get())
            .sum();
        Stock {
            key: key.clone(),
            balance,
            version,
            reclaimable,
        }
    }

    fn transition(
        &mut self,
        id: Uuid,
        event: Event,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let r = self
            .reservations
            .get(&id)
            .cloned()
            .ok_or(StoreError::ReservationNotFound(id))?;
        match decide(&r, event, now)? {
            Decision::AlreadyDone => Ok(Outcome {
                reservation: r,
                replayed: true,
            }),
            Decision::Apply(to) => {
                let kind = match event {
                    Event::Commit => MovementKind::Commit,
                    Event::Ship => MovementKind::Ship,
                    Event::Release => MovementKind::Release,
                    Event::Expire => MovementKind::Expire,
                };
                self.movement(&r.key, kind, r.qty.get())?;
                let mut r = r;
                r.state = to;
                self.reservations.insert(id, r.clone());
                Ok(Outcome {
                    reservation: r,
                    replayed: false,
                })
            }
        }
    }

    fn lapsed(&self, key: Option<&StockKey>, now: DateTime<Utc>, limit: u32) -> Vec<Uuid> {
        let mut due: Vec<&Reservation> = self
            .reservations
            .values()
            .filter(|r| r.state == State::Held && r.expires_at <= now)
            .filter(|r| key.is_none_or(|k| &r.key == k))
            .collect();
        due.sort_by_key(|r| (r.expires_at, r.id));
        due.into_iter().take(limit as usize).map(|r| r.id).collect()
    }
}

impl InventoryStore for MemoryStore {
    async fn add_sku(&self, sku: &Sku) -> Result<(), StoreError> {
        self.lock().skus.insert(sku.clone());
        Ok(())
    }

    async fn add_warehouse(&self, w: &Warehouse) -> Result<(), StoreError> {
        self.lock().warehouses.insert(w.clone());
        Ok(())
    }

    async fn receive(
        &self,
        id: Uuid,
        key: &StockKey,
        qty: Qty,
        now: DateTime<Utc>,
    ) -> Result<Stock, StoreError> {
        let mut g = self.lock();
        g.known(key)?;
        match g.receipts.get(&id) {
            Some((k, q)) if k == key && *q == qty.get() => return Ok(g.stock_of(key, now)),
            Some(_) => return Err(StoreError::ReceiptReused(id)),
            None => {}
        }
        g.movement(key, MovementKind::Receive, qty.get())?;
        g.receipts.insert(id, (key.clone(), qty.get()));
        Ok(g.stock_of(key, now))
    }

    async fn reserve_with_id(
        &self,
        id: Uuid,
        key: &StockKey,
        qty: Qty,
        ttl: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let mut g = self.lock();
        g.known(key)?;
        if let Some(r) = g.reservations.get(&id) {
            return replay(r.clone(), key, qty);
        }
        let available = |g: &Inner| g.stock.get(key).map_or(0, |(b, _)| b.available());
        if available(&g) < qty.get() {
            // Lazy reclaim: lapsed holds of this position go back first.
            for id in g.lapsed(Some(key), now, LAZY_RECLAIM_LIMIT) {
                g.transition(id, Event::Expire, now)?;
            }
        }
        let have = available(&g);
        if have < qty.get() {
            return Err(StoreError::OutOfStock {
                key: key.clone(),
                requested: qty.get(),
                available: have,
            });
        }
        let r = Reservation {
            id,
            key: key.clone(),
            qty,
            state: State::Held,
            expires_at: now + ttl,
        };
        g.movement(key, MovementKind::Reserve, qty.get())?;
        g.reservations.insert(r.id, r.clone());
        Ok(Outcome {
            reservation: r,
            replayed: false,
        })
    }

    async fn commit(&self, id: Uuid, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        self.lock().transition(id, Event::Commit, now)
    }

    async fn release(&self, id: Uuid, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        self.lock().transition(id, Event::Release, now)
    }

    async fn expire(&self, id: Uuid, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        self.lock().transition(id, Event::Expire, now)
    }

    async fn ship(&self, id: Uuid, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        self.lock().transition(id, Event::Ship, now)
    }

    async fn expire_due(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let mut g = self.lock();
        let mut n = 0;
        for id in g.lapsed(None, now, limit) {
            if !g.transition(id, Event::Expire, now)?.replayed {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn adjust(
        &self,
        key: &StockKey,
        counted: Count,
        seen: Count,
        now: DateTime<Utc>,
    ) -> Result<Stock, StoreError> {
        let mut g = self.lock();
        g.known(key)?;
        let (balance, _) = g.stock.get(key).copied().unwrap_or_default();
        if balance.on_hand != seen.get() {
            return Err(StoreError::CountStale {
                key: key.clone(),
                seen: seen.get(),
                on_hand: balance.on_hand,
            });
        }
        if counted.get() < balance.promised() {
            return Err(StoreError::CountBelowReserved {
                key: key.clone(),
                counted: counted.get(),
                reserved: balance.promised(),
            });
        }
        let delta = counted.get() - balance.on_hand;
        if delta != 0 {
            g.movement(key, MovementKind::Adjust, delta)?;
        }
        Ok(g.stock_of(key, now))
    }

    async fn stock(&self, key: &StockKey, now: DateTime<Utc>) -> Result<Stock, StoreError> {
        let g = self.lock();
        g.known(key)?;
        Ok(g.stock_of(key, now))
    }

    async fn reservation(&self, id: Uuid) -> Result<Reservation, StoreError> {
        self.lock()
            .reservations
            .get(&id)
            .cloned()
            .ok_or(StoreError::ReservationNotFound(id))
    }

    async fn movements(&self, key: &StockKey) -> Result<Vec<Movement>, StoreError> {
        Ok(self
            .lock()
            .movements
            .iter()
            .filter(|m| &m.key == key)
            .cloned()
            .collect())
    }
}
