//! The cart as an observed-remove set: adds always succeed, merges never
//! bring back a removal.
//!
//! Amazon's Dynamo paper made the cart its example of a store that must
//! accept every "add to cart", even during a partition, and merge the
//! divergent versions later. Merging by union has a known flaw: an item
//! removed in one version is still present in the other, so the union puts
//! it back. The fix is to remember *which* add a removal cancelled.
//!
//! Every add carries a fresh [`Tag`]. A removal of a product records the
//! tags of the adds it saw (tombstones). A merge takes the union of adds and
//! the union of tombstones, and an add is live when no tombstone names its
//! tag. So a removal cancels exactly the adds it observed: a stale copy of
//! the cart cannot resurrect them, and an add the removal did not see (made
//! concurrently on another device) survives it ("add wins").
//!
//! The quantity of a product is the sum of its live adds, capped at
//! [`MAX_QUANTITY`]; setting a quantity is a removal of the observed adds
//! plus one new add.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::product::{MAX_QUANTITY, Quantity, Sku};

// ANCHOR: tag
/// The identity of one add: random, so two devices never pick the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag(pub u128);

impl Tag {
    /// A fresh random tag.
    pub fn random() -> Self {
        Tag(uuid::Uuid::new_v4().as_u128())
    }

    /// Parses the 32 hex digits written by `Display`.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 32 {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(Tag)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}
// ANCHOR_END: tag

// ANCHOR: cart
/// One add: a product and how many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    /// The product.
    pub sku: Sku,
    /// How many this add put in.
    pub quantity: Quantity,
}

/// A cart: live adds by tag, and the tags of cancelled adds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    adds: BTreeMap<Tag, Added>,
    removed: BTreeSet<Tag>,
}

impl Cart {
    /// An empty cart.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `quantity` of `sku` under a fresh `tag`. Never fails; a tag
    /// already cancelled stays cancelled.
    pub fn add(&mut self, tag: Tag, sku: Sku, quantity: Quantity) {
        if !self.removed.contains(&tag) {
            self.adds.insert(tag, Added { sku, quantity });
        }
    }

    /// Removes `sku`: every add of it this cart has seen becomes a tombstone.
    /// Returns the tags cancelled.
    pub fn remove(&mut self, sku: &Sku) -> Vec<Tag> {
        let seen: Vec<Tag> = self
            .adds
            .iter()
            .filter(|(_, a)| &a.sku == sku)
            .map(|(t, _)| *t)
            .collect();
        for tag in &seen {
            self.adds.remove(tag);
            self.removed.insert(*tag);
        }
        seen
    }

    /// Sets the quantity of `sku`: removes what was seen, then adds under `tag`.
    pub fn set_quantity(&mut self, tag: Tag, sku: Sku, quantity: Quantity) {
        self.remove(&sku);
        self.add(tag, sku, quantity);
    }

    /// Folds `other` into this cart: union of adds, union of tombstones,
    /// and no add whose tag is a tombstone. Commutative, associative and
    /// idempotent, so merges may be repeated, reordered or retried.
    pub fn merge(&mut self, other: &Cart) {
        self.removed.extend(other.removed.iter().copied());
        for (tag, added) in &other.adds {
            self.adds.entry(*tag).or_insert_with(|| added.clone());
        }
        let removed = &self.removed;
        self.adds.retain(|tag, _| !removed.contains(tag));
    }

    /// Quantity per product: the sum of live adds, capped at [`MAX_QUANTITY`].
    pub fn lines(&self) -> BTreeMap<Sku, u32> {
        let mut out: BTreeMap<Sku, u32> = BTreeMap::new();
        for added in self.adds.values() {
            let q = out.entry(added.sku.clone()).or_default();
            *q = (*q + added.quantity.get()).min(MAX_QUANTITY);
        }
        out
    }
    // ANCHOR_END: cart

    /// Records that the add `tag` was cancelled (loading a stored cart).
    pub fn cancel(&mut self, tag: Tag) {
        self.adds.remove(&tag);
        self.removed.insert(tag);
    }

    /// The live adds.
    pub fn adds(&self) -> impl Iterator<Item = (&Tag, &Added)> {
        self.adds.iter()
    }

    /// The tombstones.
    pub fn tombstones(&self) -> impl Iterator<Item = &Tag> {
        self.removed.iter()
    }

    /// Adds and tombstones held: what a store's cap counts.
    pub fn entries(&self) -> usize {
        self.adds.len() + self.removed.len()
    }

    /// True when nothing is live.
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty()
    }
}

// ANCHOR: naive
/// The cart most people write first: quantity per product, merged by union
/// (the larger quantity wins). Kept to show, in a test, the Dynamo anomaly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NaiveCart(pub BTreeMap<Sku, u32>);

impl NaiveCart {
    /// Adds to the product's quantity.
    pub fn add(&mut self, sku: Sku, quantity: Quantity) {
        let q = self.0.entry(sku).or_default();
        *q = (*q + quantity.get()).min(MAX_QUANTITY);
    }

    /// Forgets the product.
    pub fn remove(&mut self, sku: &Sku) {
        self.0.remove(sku);
    }

    /// Union, keeping the larger quantity.
    pub fn merge(&mut self, other: &NaiveCart) {
        for (sku, q) in &other.0 {
            let mine = self.0.entry(sku.clone()).or_default();
            *mine = (*mine).max(*q);
        }
    }
}
// ANCHOR_END: naive
