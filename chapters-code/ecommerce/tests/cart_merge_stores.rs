//! The removal property on the real stores (Redis's Lua scripts, PostgreSQL's
//! rows), not the domain type, under random interleavings of add, remove, offline copy and
//! merge. Each step is mirrored on the domain [`Cart`] (whose own property
//! test is in `cart_merge.rs`), and after every step the carts in Redis must
//! hold exactly the live adds the domain carts hold, and no add a cart has
//! seen removed.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{schema_path, sku};
use ecommerce::cart::{CartId, CartStore, PgCarts, RedisCarts};
use ecommerce::domain::{Cart, Quantity, Tag};
use proptest::prelude::*;

const CARTS: usize = 3;
const SKUS: [&str; 3] = ["MUG-RED", "BOOK-RUST", "CAP-USD"];

#[derive(Clone, Debug)]
enum Op {
    Add {
        cart: usize,
        sku: usize,
        qty: i64,
    },
    Remove {
        cart: usize,
        sku: usize,
    },
    /// A device syncs a copy of `from`'s adds into `into` (same tags).
    Copy {
        from: usize,
        into: usize,
    },
    /// The login merge: `from` folded into `into`, then deleted.
    Merge {
        from: usize,
        into: usize,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    let c = 0..CARTS;
    let s = 0..SKUS.len();
    prop_oneof![
        (c.clone(), s.clone(), 1i64..4).prop_map(|(cart, sku, qty)| Op::Add { cart, sku, qty }),
        (c.clone(), s).prop_map(|(cart, sku)| Op::Remove { cart, sku }),
        (c.clone(), c.clone()).prop_map(|(from, into)| Op::Copy { from, into }),
        (c.clone(), c).prop_map(|(from, into)| Op::Merge { from, into }),
    ]
}

fn live(cart: &Cart) -> BTreeMap<Tag, (String, u32)> {
    cart.adds()
        .map(|(t, a)| (*t, (a.sku.to_string(), a.quantity.get())))
        .collect()
}

async fn run<C: CartStore>(carts: &C, ops: &[Op]) -> Result<(), TestCaseError> {
    let ids: Vec<CartId> = (0..CARTS).map(|_| CartId::new_guest()).collect();
    let mut model = vec![Cart::new(); CARTS];
    // Per cart, the tags it has seen removed (its own removals and those merged in).
    let mut cancelled: Vec<BTreeSet<Tag>> = vec![BTreeSet::new(); CARTS];
    let mut next = 0u128;
    for op in ops {
        match *op {
            Op::Add { cart, sku: s, qty } => {
                next += 1;
                let q = Quantity::new(qty).expect("test quantity");
                carts
                    .add(&ids[cart], Tag(next), &sku(SKUS[s]), q)
                    .await
                    .expect("add");
                model[cart].add(Tag(next), sku(SKUS[s]), q);
            }
            Op::Remove { cart, sku: s } => {
                carts
                    .remove(&ids[cart], &sku(SKUS[s]))
                    .await
                    .expect("remove");
                let gone = model[cart].remove(&sku(SKUS[s]));
                cancelled[cart].extend(gone);
            }
            Op::Copy { from, into } => {
                let snapshot = carts.get(&ids[from]).await.expect("get");
                for (tag, a) in snapshot.adds() {
                    carts
                        .add(&ids[into], *tag, &a.sku, a.quantity)
                        .await
                        .expect("copy");
                    model[into].add(*tag, a.sku.clone(), a.quantity);
                }
            }
            Op::Merge { from, into } => {
                if from == into {
                    continue;
                }
                carts.merge(&ids[from], &ids[into]).await.expect("merge");
                let src = std::mem::take(&mut model[from]);
                model[into].merge(&src);
                let seen = std::mem::take(&mut cancelled[from]);
                cancelled[into].extend(seen);
            }
        }
        for c in 0..CARTS {
            let stored = live(&carts.get(&ids[c]).await.expect("get"));
            prop_assert_eq!(&stored, &live(&model[c]), "cart {} after {:?}", c, op);
            for tag in stored.keys() {
                prop_assert!(
                    !cancelled[c].contains(tag),
                    "cart {} resurrected {:?} after {:?}",
                    c,
                    tag,
                    op
                );
            }
        }
    }
    Ok(())
}

// ANCHOR: redis_merge_property
#[test]
fn on_redis_a_removal_is_never_resurrected_by_a_merge() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let Some(r) = rt.block_on(testkit::redis()) else {
        return;
    };
    let carts = rt
        .block_on(RedisCarts::connect(&r.url, &r.prefix))
        .expect("Redis");
    proptest!(ProptestConfig::with_cases(48), |(ops in proptest::collection::vec(arb_op(), 1..30))| {
        rt.block_on(run(&carts, &ops))?;
    });
}
// ANCHOR_END: redis_merge_property

#[test]
fn on_postgres_a_removal_is_never_resurrected_by_a_merge() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let Some(db) = rt.block_on(testkit::postgres(Some(&schema_path()))) else {
        return;
    };
    let carts = PgCarts::new(db.pool.clone());
    proptest!(ProptestConfig::with_cases(24), |(ops in proptest::collection::vec(arb_op(), 1..30))| {
        rt.block_on(run(&carts, &ops))?;
    });
}
