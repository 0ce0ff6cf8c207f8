//! The cart merge: random interleavings of add, remove and merge over
//! several copies of a cart, checked against a model that keeps the whole
//! history.
//!
//! The model replica is the set of events it has received; an add is live
//! when no received removal observed it. That is the definition of
//! observed-remove, written without tombstones or compaction, so the compact
//! `Cart` is checked against something obviously right.

use std::collections::{BTreeMap, BTreeSet};

use ecommerce::domain::cart::NaiveCart;
use ecommerce::domain::{Cart, MAX_QUANTITY, Quantity, Sku, Tag};
use proptest::prelude::*;

/// Replicas: 0 = the account's cart on the server, 1 = a guest cart,
/// 2 = an offline phone's copy, 3 = a stale copy from an old session.
const REPLICAS: usize = 4;
const SKUS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Add {
        replica: usize,
        sku: usize,
        qty: i64,
    },
    Remove {
        replica: usize,
        sku: usize,
    },
    SetQuantity {
        replica: usize,
        sku: usize,
        qty: i64,
    },
    Merge {
        from: usize,
        into: usize,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    let r = 0..REPLICAS;
    let s = 0..SKUS;
    prop_oneof![
        3 => (r.clone(), s.clone(), 1i64..5).prop_map(|(replica, sku, qty)| Op::Add { replica, sku, qty }),
        2 => (r.clone(), s.clone()).prop_map(|(replica, sku)| Op::Remove { replica, sku }),
        1 => (r.clone(), s, 1i64..5).prop_map(|(replica, sku, qty)| Op::SetQuantity { replica, sku, qty }),
        3 => (r.clone(), r).prop_map(|(from, into)| Op::Merge { from, into }),
    ]
}

fn sku(i: usize) -> Sku {
    Sku::parse(&format!("P{i}")).expect("test SKU")
}

fn qty(n: i64) -> Quantity {
    Quantity::new(n).expect("test quantity")
}

/// An event of the model's history.
#[derive(Clone, Debug)]
enum Event {
    Add { tag: Tag, sku: usize, qty: u32 },
    Remove { observed: BTreeSet<Tag> },
}

/// A model replica: the indices of the events it has received.
#[derive(Clone, Debug, Default)]
struct ModelReplica(BTreeSet<usize>);

impl ModelReplica {
    fn live(&self, log: &[Event]) -> BTreeMap<Tag, (usize, u32)> {
        let killed: BTreeSet<Tag> = self
            .0
            .iter()
            .filter_map(|i| match &log[*i] {
                Event::Remove { observed } => Some(observed.iter().copied()),
                Event::Add { .. } => None,
            })
            .flatten()
            .collect();
        self.0
            .iter()
            .filter_map(|i| match &log[*i] {
                Event::Add { tag, sku, qty } if !killed.contains(tag) => Some((*tag, (*sku, *qty))),
                _ => None,
            })
            .collect()
    }

    fn lines(&self, log: &[Event]) -> BTreeMap<Sku, u32> {
        let mut out = BTreeMap::new();
        for (_, (s, q)) in self.live(log) {
            let e: &mut u32 = out.entry(sku(s)).or_default();
            *e = (*e + q).min(MAX_QUANTITY);
        }
        out
    }

    fn remove(&mut self, log: &mut Vec<Event>, s: usize) -> BTreeSet<Tag> {
        let observed: BTreeSet<Tag> = self
            .live(log)
            .into_iter()
            .filter(|(_, (x, _))| *x == s)
            .map(|(t, _)| t)
            .collect();
        log.push(Event::Remove {
            observed: observed.clone(),
        });
        self.0.insert(log.len() - 1);
        observed
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    // ANCHOR: merge_property
    /// After every step, every replica of the real cart shows what the
    /// history model shows, and no add that a removal cancelled is live in
    /// any replica that has received that removal.
    #[test]
    fn a_removal_is_never_resurrected_by_a_merge(ops in proptest::collection::vec(arb_op(), 1..60)) {
        let mut carts = vec![Cart::new(); REPLICAS];
        let mut model = vec![ModelReplica::default(); REPLICAS];
        let mut log: Vec<Event> = Vec::new();
        // Per replica, the tags its received removals cancelled.
        let mut cancelled: Vec<BTreeSet<Tag>> = vec![BTreeSet::new(); REPLICAS];
        let mut next_tag = 0u128;
        for op in &ops {
            match *op {
                Op::Add { replica, sku: s, qty: n } => {
                    next_tag += 1;
                    carts[replica].add(Tag(next_tag), sku(s), qty(n));
                    log.push(Event::Add { tag: Tag(next_tag), sku: s, qty: n as u32 });
                    model[replica].0.insert(log.len() - 1);
                }
                Op::Remove { replica, sku: s } => {
                    let real: BTreeSet<Tag> = carts[replica].remove(&sku(s)).into_iter().collect();
                    let expected = model[replica].remove(&mut log, s);
                    prop_assert_eq!(&real, &expected, "the removal observed different adds");
                    cancelled[replica].extend(real);
                }
                Op::SetQuantity { replica, sku: s, qty: n } => {
                    next_tag += 1;
                    carts[replica].set_quantity(Tag(next_tag), sku(s), qty(n));
                    let observed = model[replica].remove(&mut log, s);
                    cancelled[replica].extend(observed);
                    log.push(Event::Add { tag: Tag(next_tag), sku: s, qty: n as u32 });
                    model[replica].0.insert(log.len() - 1);
                }
                Op::Merge { from, into } => {
                    let src = carts[from].clone();
                    carts[into].merge(&src);
                    let events = model[from].0.clone();
                    model[into].0.extend(events);
                    let c = cancelled[from].clone();
                    cancelled[into].extend(c);
                }
            }
            for r in 0..REPLICAS {
                prop_assert_eq!(carts[r].lines(), model[r].lines(&log), "replica {} after {:?}", r, op);
                for (tag, _) in carts[r].adds() {
                    prop_assert!(!cancelled[r].contains(tag), "replica {} resurrected {:?}", r, tag);
                }
            }
        }
    }
    // ANCHOR_END: merge_property

    /// Merge is a join: order, grouping and repetition do not matter, so a
    /// retried or reordered merge request is harmless.
    #[test]
    fn merge_is_commutative_associative_and_idempotent(
        ops in proptest::collection::vec(arb_op(), 1..40)
    ) {
        let mut carts = vec![Cart::new(); 3];
        let mut next_tag = 0u128;
        for op in &ops {
            match *op {
                Op::Add { replica, sku: s, qty: n } | Op::SetQuantity { replica, sku: s, qty: n } => {
                    next_tag += 1;
                    carts[replica % 3].add(Tag(next_tag), sku(s), qty(n));
                }
                Op::Remove { replica, sku: s } => { carts[replica % 3].remove(&sku(s)); }
                Op::Merge { from, into } => {
                    let src = carts[from % 3].clone();
                    carts[into % 3].merge(&src);
                }
            }
        }
        let (a, b, c) = (&carts[0], &carts[1], &carts[2]);
        let join = |x: &Cart, y: &Cart| { let mut z = x.clone(); z.merge(y); z };
        prop_assert_eq!(join(a, b), join(b, a));
        prop_assert_eq!(join(&join(a, b), c), join(a, &join(b, c)));
        prop_assert_eq!(join(a, a), a.clone());
    }
}

// ANCHOR: naive_fails
/// The cart most people write first brings a removed item back: the
/// account's cart is copied to a phone, the shopper removes the mug on the
/// web, and the phone syncs its stale copy.
#[test]
fn a_union_merge_resurrects_a_removed_item_and_the_tagged_cart_does_not() {
    let mut web = NaiveCart::default();
    web.add(sku(1), qty(1));
    let phone = web.clone();
    web.remove(&sku(1));
    web.merge(&phone);
    assert_eq!(
        web.0.get(&sku(1)),
        Some(&1),
        "the naive cart resurrects the mug"
    );

    let mut web = Cart::new();
    web.add(Tag(1), sku(1), qty(1));
    let phone = web.clone();
    web.remove(&sku(1));
    web.merge(&phone);
    assert!(web.lines().is_empty(), "the tombstone keeps the mug out");
    // An add the removal did not see survives it: add wins.
    let mut phone = phone;
    phone.add(Tag(2), sku(1), qty(2));
    web.merge(&phone);
    assert_eq!(web.lines().get(&sku(1)), Some(&2));
}
// ANCHOR_END: naive_fails
