//! The in-memory store: the same rules as PostgreSQL, one lock for atomicity.
//!
//! A phase holds the (async) lock from its first read to its last write,
//! which is what a transaction gives the PostgreSQL adapter. Hooks run while
//! the lock is held and before anything is written, so a test that aborts
//! the task there leaves nothing behind, like a rolled-back transaction.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{KeyRecord, NewProduct, Store, StoreError};
use crate::checkout::{
    Begun, Charged, CheckoutError, CheckoutRequest, Hooks, Order, Point, Stocked, StoredResponse,
    finish_response, price_order,
};
use crate::domain::{Money, Product, Sku};
use crate::idempotency::{
    Fingerprint, KeyScope, Lock, Purged, claim_error, final_answer, lease, stored,
};
use block_idempotency::{Claimed, FinishError, MemoryKeys};

#[derive(Default)]
struct State {
    products: BTreeMap<Sku, Stocked>,
    orders: HashMap<Uuid, Order>,
    /// The block's key table, under the same lock as the orders.
    keys: MemoryKeys,
    /// The order each key's work created (the chapter's own column).
    key_orders: HashMap<i64, Uuid>,
}

/// Everything in one process's memory; lost on restart.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    async fn put_product(&self, p: &NewProduct) -> Result<Product, StoreError> {
        let mut s = self.state.lock().await;
        let version = s
            .products
            .get(&p.sku)
            .map_or(1, |old| old.product.version + 1);
        let product = Product {
            sku: p.sku.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            price: p.price,
            tax_class: p.tax_class,
            version,
        };
        s.products.insert(
            p.sku.clone(),
            Stocked {
                product: product.clone(),
                stock: p.stock,
            },
        );
        Ok(product)
    }

    async fn set_price(&self, sku: &Sku, price: Money) -> Result<Product, StoreError> {
        let mut s = self.state.lock().await;
        let entry = s
            .products
            .get_mut(sku)
            .ok_or_else(|| StoreError::ProductNotFound(sku.clone()))?;
        entry.product.price = price;
        entry.product.version += 1;
        Ok(entry.product.clone())
    }

    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        Ok(self
            .state
            .lock()
            .await
            .products
            .get(sku)
            .map(|p| p.product.clone()))
    }

    async fn search(&self, query: &str, limit: u32) -> Result<Vec<Product>, StoreError> {
        // Every word must appear in the name or description; name hits first.
        let words: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.state.lock().await;
        let mut hits: Vec<(usize, Product)> = s
            .products
            .values()
            .filter_map(|p| {
                let name = p.product.name.to_lowercase();
                let text = format!("{name} {}", p.product.description.to_lowercase());
                words.iter().all(|w| text.contains(w.as_str())).then(|| {
                    let in_name = words.iter().filter(|w| name.contains(w.as_str())).count();
                    (in_name, p.product.clone())
                })
            })
            .collect();
        hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.sku.cmp(&b.1.sku)));
        Ok(hits
            .into_iter()
            .take(limit as usize)
            .map(|(_, p)| p)
            .collect())
    }

    async fn stock(&self, sku: &Sku) -> Result<Option<i32>, StoreError> {
        Ok(self.state.lock().await.products.get(sku).map(|p| p.stock))
    }

    async fn final_answer(
        &self,
        key: &KeyScope,
        fingerprint: &Fingerprint,
    ) -> Result<Option<StoredResponse>, CheckoutError> {
        let s = self.state.lock().await;
        let answer = s.keys.final_answer(key, fingerprint).map_err(claim_error)?;
        Ok(answer.map(stored))
    }

    async fn begin_checkout(
        &self,
        account: &str,
        key: Option<&KeyScope>,
        request: &CheckoutRequest,
        fingerprint: &Fingerprint,
        now: DateTime<Utc>,
        hooks: &dyn Hooks,
    ) -> Result<Begun, CheckoutError> {
        let mut s = self.state.lock().await;
        // Check first, claim after the last step that can fail: nothing is
        // written before the hook, as nothing commits before it on PostgreSQL.
        if let Some(k) = key {
            match s.keys.check(k, fingerprint, now).map_err(claim_error)? {
                None => {}
                Some(_) => {
                    return match s
                        .keys
                        .claim(k, fingerprint, lease(), now)
                        .map_err(claim_error)?
                    {
                        Claimed::Replay(answer) => Ok(Begun::Replay(stored(answer))),
                        Claimed::TakenOver { lock, .. } => {
                            let order_id = *s
                                .key_orders
                                .get(&lock.id)
                                .ok_or_else(|| StoreError::Corrupt("key without order".into()))?;
                            let amount = s
                                .orders
                                .get(&order_id)
                                .ok_or_else(|| {
                                    StoreError::Corrupt("key names a missing order".into())
                                })?
                                .quote
                                .total();
                            Ok(Begun::Charge {
                                lock: Some(lock),
                                order_id,
                                amount,
                                resumed: true,
                            })
                        }
                        Claimed::New(_) => Err(StoreError::Corrupt("key vanished".into()).into()),
                    };
                }
            }
        }
        let products: Vec<Stocked> = request
            .lines
            .iter()
            .filter_map(|(sku, _)| s.products.get(sku).cloned())
            .collect();
        let decision = price_order(request, &products)?;
        hooks.reached(Point::BeforeOrderCommit).await;
        let lock = match key {
            Some(k) => match s
                .keys
                .claim(k, fingerprint, lease(), now)
                .map_err(claim_error)?
            {
                Claimed::New(l) => Some(l),
                _ => return Err(StoreError::Corrupt("key appeared under the lock".into()).into()),
            },
            None => None,
        };
        let quote = match decision {
            Err(refusal) => {
                if let Some(l) = lock {
                    s.keys
                        .finish(l, &final_answer(&refusal), now)
                        .map_err(|_| CheckoutError::KeyInUse)?;
                }
                return Ok(Begun::Refused(refusal));
            }
            Ok(q) => q,
        };
        for (sku, quantity) in &request.lines {
            if let Some(p) = s.products.get_mut(sku) {
                p.stock -= quantity.get() as i32;
            }
        }
        let order_id = Uuid::new_v4();
        let amount = quote.total();
        s.orders.insert(
            order_id,
            Order {
                id: order_id,
                account: account.to_string(),
                status: "pending_payment".into(),
                quote,
                charge_id: None,
                created_at: now,
            },
        );
        if let Some(l) = lock {
            s.keys
                .advance(l, "order_created")
                .map_err(|_| CheckoutError::KeyInUse)?;
            s.key_orders.insert(l.id, order_id);
        }
        Ok(Begun::Charge {
            lock,
            order_id,
            amount,
            resumed: false,
        })
    }

    async fn finish_checkout(
        &self,
        lock: Option<Lock>,
        order_id: Uuid,
        charged: &Charged,
        now: DateTime<Utc>,
        hooks: &dyn Hooks,
    ) -> Result<StoredResponse, CheckoutError> {
        let mut s = self.state.lock().await;
        let mut order = s
            .orders
            .get(&order_id)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("no order {order_id}")))?;
        hooks.reached(Point::BeforeFinishCommit).await;
        // The fence before any write, as on PostgreSQL.
        if let Some(l) = lock
            && !s.keys.holds(l)
        {
            return Err(CheckoutError::KeyInUse);
        }
        // An order already finished is left as it is, as on PostgreSQL.
        if order.status != "pending_payment" {
            return Err(CheckoutError::KeyInUse);
        }
        match charged {
            Charged::Paid(charge) => {
                order.status = "paid".into();
                order.charge_id = Some(charge.clone());
            }
            Charged::Declined(_) | Charged::ProviderFailed(_) | Charged::Voided => {
                order.status = "payment_failed".into();
                for line in &order.quote.lines {
                    if let Some(p) = s.products.get_mut(&line.sku) {
                        p.stock += line.quantity as i32;
                    }
                }
            }
        }
        let response = finish_response(&order, charged);
        s.orders.insert(order_id, order);
        if let Some(l) = lock {
            s.keys
                .finish(l, &final_answer(&response), now)
                .map_err(|_| CheckoutError::KeyInUse)?;
        }
        Ok(response)
    }

    async fn release_key(&self, lock: Lock) -> Result<(), StoreError> {
        // Fenced when taken over meanwhile: the lease is the taker's to keep.
        let _: Result<(), FinishError> = self.state.lock().await.keys.release(lock);
        Ok(())
    }

    async fn purge_keys(
        &self,
        retention: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Purged, StoreError> {
        let mut s = self.state.lock().await;
        let purged = s.keys.purge(retention, now);
        // Forget the order links of keys that are gone.
        let State {
            keys, key_orders, ..
        } = &mut *s;
        key_orders.retain(|id, _| keys.exists(*id));
        Ok(purged)
    }

    async fn order(&self, id: Uuid) -> Result<Option<Order>, StoreError> {
        Ok(self.state.lock().await.orders.get(&id).cloned())
    }

    async fn orders(&self) -> Result<Vec<Order>, StoreError> {
        let mut v: Vec<Order> = self.state.lock().await.orders.values().cloned().collect();
        v.sort_by_key(|o| (o.created_at, o.id));
        Ok(v)
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let s = self.state.lock().await;
        Ok(s.keys
            .keys(chrono::Utc::now())
            .into_iter()
            .map(|k| KeyRecord {
                account: k.account,
                key: k.key,
                recovery_point: k.recovery_point,
                held: k.held,
            })
            .collect())
    }
}
