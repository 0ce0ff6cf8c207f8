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
use crate::idempotency::{KeyScope, LOCK_TIMEOUT};

struct KeyRow {
    id: i64,
    fingerprint: String,
    created_at: DateTime<Utc>,
    locked_at: Option<DateTime<Utc>>,
    order_id: Option<Uuid>,
    response: Option<StoredResponse>,
}

#[derive(Default)]
struct State {
    products: BTreeMap<Sku, Stocked>,
    orders: HashMap<Uuid, Order>,
    keys: HashMap<(String, &'static str, String), KeyRow>,
    next_key_id: i64,
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
        fingerprint: &str,
    ) -> Result<Option<StoredResponse>, CheckoutError> {
        let s = self.state.lock().await;
        let scope = (
            key.account.clone(),
            key.endpoint,
            key.key.as_str().to_string(),
        );
        match s.keys.get(&scope) {
            Some(row) if row.fingerprint != fingerprint => Err(CheckoutError::KeyReused),
            Some(row) => Ok(row.response.clone()),
            None => Ok(None),
        }
    }

    async fn begin_checkout(
        &self,
        account: &str,
        key: Option<&KeyScope>,
        request: &CheckoutRequest,
        fingerprint: &str,
        now: DateTime<Utc>,
        hooks: &dyn Hooks,
    ) -> Result<Begun, CheckoutError> {
        let mut s = self.state.lock().await;
        let scope = key.map(|k| (k.account.clone(), k.endpoint, k.key.as_str().to_string()));
        if let Some(scope) = &scope
            && let Some(row) = s.keys.get(scope)
        {
            if row.fingerprint != fingerprint {
                return Err(CheckoutError::KeyReused);
            }
            if let Some(response) = &row.response {
                return Ok(Begun::Replay(response.clone()));
            }
            if row.locked_at.is_some_and(|t| t > now - LOCK_TIMEOUT) {
                return Err(CheckoutError::KeyInUse);
            }
            let (id, order_id) = (row.id, row.order_id);
            let order_id =
                order_id.ok_or_else(|| StoreError::Corrupt("key without order".into()))?;
            let amount = s
                .orders
                .get(&order_id)
                .ok_or_else(|| StoreError::Corrupt("key names a missing order".into()))?
                .quote
                .total();
            if let Some(row) = s.keys.get_mut(scope) {
                row.locked_at = Some(now);
            }
            return Ok(Begun::Charge {
                key_id: Some(id),
                order_id,
                amount,
                resumed: true,
            });
        }
        let products: Vec<Stocked> = request
            .lines
            .iter()
            .filter_map(|(sku, _)| s.products.get(sku).cloned())
            .collect();
        let decision = price_order(request, &products)?;
        hooks.reached(Point::BeforeOrderCommit).await;
        s.next_key_id += 1;
        let key_id = s.next_key_id;
        let quote = match decision {
            Err(refusal) => {
                if let Some(scope) = scope {
                    s.keys.insert(
                        scope,
                        KeyRow {
                            id: key_id,
                            fingerprint: fingerprint.to_string(),
                            created_at: now,
                            locked_at: None,
                            order_id: None,
                            response: Some(refusal.clone()),
                        },
                    );
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
        let key_id = scope.map(|scope| {
            s.keys.insert(
                scope,
                KeyRow {
                    id: key_id,
                    fingerprint: fingerprint.to_string(),
                    created_at: now,
                    locked_at: Some(now),
                    order_id: Some(order_id),
                    response: None,
                },
            );
            key_id
        });
        Ok(Begun::Charge {
            key_id,
            order_id,
            amount,
            resumed: false,
        })
    }

    async fn finish_checkout(
        &self,
        key_id: Option<i64>,
        order_id: Uuid,
        charged: &Charged,
        _now: DateTime<Utc>,
        hooks: &dyn Hooks,
    ) -> Result<StoredResponse, StoreError> {
        let mut s = self.state.lock().await;
        let mut order = s
            .orders
            .get(&order_id)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("no order {order_id}")))?;
        hooks.reached(Point::BeforeFinishCommit).await;
        match charged {
            Charged::Paid(charge) => {
                order.status = "paid".into();
                order.charge_id = Some(charge.clone());
            }
            Charged::Declined(_) | Charged::ProviderFailed(_) => {
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
        if let Some(id) = key_id
            && let Some(row) = s.keys.values_mut().find(|r| r.id == id)
        {
            row.response = Some(response.clone());
            row.locked_at = None;
        }
        Ok(response)
    }

    async fn unlock_key(&self, key_id: i64) -> Result<(), StoreError> {
        let mut s = self.state.lock().await;
        if let Some(row) = s.keys.values_mut().find(|r| r.id == key_id) {
            row.locked_at = None;
        }
        Ok(())
    }

    async fn purge_keys(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut s = self.state.lock().await;
        let before = s.keys.len();
        s.keys.retain(|_, r| r.created_at >= cutoff);
        Ok((before - s.keys.len()) as u64)
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
        let mut v: Vec<KeyRecord> = self
            .state
            .lock()
            .await
            .keys
            .iter()
            .map(|((account, _, key), row)| KeyRecord {
                account: account.clone(),
                key: key.clone(),
                recovery_point: if row.response.is_some() {
                    "finished"
                } else {
                    "order_created"
                }
                .into(),
                locked_at: row.locked_at,
            })
            .collect();
        v.sort_by(|a, b| (&a.account, &a.key).cmp(&(&b.account, &b.key)));
        Ok(v)
    }
}
