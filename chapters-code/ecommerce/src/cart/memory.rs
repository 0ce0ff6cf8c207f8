//! Carts in one process's memory (the demo binary's default).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::{CART_TTL, CartError, CartId, CartStore, MAX_CART_ENTRIES};
use crate::domain::{Cart, Quantity, Sku, Tag};

/// Carts in a map, each with its expiry.
#[derive(Default)]
pub struct MemoryCarts {
    carts: Mutex<HashMap<CartId, (Cart, Instant)>>,
}

impl MemoryCarts {
    /// No carts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `f` to the live cart (an expired one is empty) under the
    /// caller's lock hold; the expiry moves only when `f` wrote (`Ok`), so a
    /// refused add does not keep a full cart alive.
    fn apply<T>(
        carts: &mut HashMap<CartId, (Cart, Instant)>,
        cart: &CartId,
        now: Instant,
        f: impl FnOnce(&mut Cart) -> Result<T, CartError>,
    ) -> Result<T, CartError> {
        let entry = carts
            .entry(cart.clone())
            .or_insert_with(|| (Cart::new(), now));
        if entry.1 < now {
            entry.0 = Cart::new();
        }
        let done = f(&mut entry.0)?;
        entry.1 = now + CART_TTL;
        Ok(done)
    }

    fn with<T>(
        &self,
        cart: &CartId,
        f: impl FnOnce(&mut Cart) -> Result<T, CartError>,
    ) -> Result<T, CartError> {
        let mut carts = self.carts.lock().unwrap_or_else(|e| e.into_inner());
        Self::apply(&mut carts, cart, Instant::now(), f)
    }
}

impl CartStore for MemoryCarts {
    async fn add(
        &self,
        cart: &CartId,
        tag: Tag,
        sku: &Sku,
        quantity: Quantity,
    ) -> Result<(), CartError> {
        self.with(cart, |c| {
            if c.entries() >= MAX_CART_ENTRIES {
                return Err(CartError::Full);
            }
            c.add(tag, sku.clone(), quantity);
            Ok(())
        })
    }

    async fn remove(&self, cart: &CartId, sku: &Sku) -> Result<(), CartError> {
        self.with(cart, |c| {
            c.remove(sku);
            Ok(())
        })
    }

    async fn merge(&self, from: &CartId, into: &CartId) -> Result<(), CartError> {
        if from == into {
            return Ok(());
        }
        // One lock hold from the check to the removal: no add or removal on
        // either cart can land in between.
        let mut carts = self.carts.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let Some((source, expires)) = carts.get(from).cloned() else {
            return Ok(());
        };
        if expires >= now {
            Self::apply(&mut carts, into, now, |target| {
                // The cap counts what the merge adds: a tag already here
                // (as an add or a tombstone) takes no new place.
                let mut merged = target.clone();
                merged.merge(&source);
                if merged.entries() > MAX_CART_ENTRIES {
                    return Err(CartError::Full);
                }
                *target = merged;
                Ok(())
            })?;
        }
        carts.remove(from);
        Ok(())
    }

    async fn clear(&self, cart: &CartId) -> Result<(), CartError> {
        let mut carts = self.carts.lock().unwrap_or_else(|e| e.into_inner());
        carts.remove(cart);
        Ok(())
    }

    async fn get(&self, cart: &CartId) -> Result<Cart, CartError> {
        let carts = self.carts.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match carts.get(cart) {
            Some((c, expires)) if *expires >= Instant::now() => c.clone(),
            _ => Cart::new(),
        })
    }
}
