//! One behaviour suite for the three cart stores: memory, Redis, PostgreSQL.

mod common;

use common::*;
use ecommerce::cart::{
    CART_TTL, CartError, CartId, CartStore, MAX_CART_ENTRIES, MemoryCarts, PgCarts, RedisCarts,
};
use ecommerce::domain::{Quantity, Tag};

macro_rules! all_stores {
    ($($name:ident),* $(,)?) => {
        mod on_memory {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(&MemoryCarts::new()).await; } )*
        }
        mod on_redis {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(r) = testkit::redis().await else { return };
                    let carts = RedisCarts::connect(&r.url, &r.prefix).await.expect("Redis");
                    super::$name(&carts).await;
                }
            )*
        }
        mod on_postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = testkit::postgres(Some(&schema_path())).await else { return };
                    super::$name(&PgCarts::new(db.pool.clone())).await;
                }
            )*
        }
    };
}

all_stores!(
    adds_accumulate_and_removals_remove,
    a_login_merge_folds_the_guest_cart_in_and_deletes_it,
    a_stale_copy_merged_back_does_not_resurrect_a_removal,
    a_retried_merge_changes_nothing,
    an_add_acknowledged_during_a_merge_is_never_lost,
    a_cart_merged_into_itself_keeps_its_lines,
    a_full_cart_refuses_an_add_and_keeps_what_it_has,
);

fn q(n: i64) -> Quantity {
    Quantity::new(n).expect("test quantity")
}

async fn adds_accumulate_and_removals_remove<C: CartStore>(carts: &C) {
    let c = CartId::new_guest();
    carts
        .add(&c, Tag::random(), &sku("MUG-RED"), q(1))
        .await
        .expect("add");
    carts
        .add(&c, Tag::random(), &sku("MUG-RED"), q(2))
        .await
        .expect("add");
    carts
        .add(&c, Tag::random(), &sku("BOOK-RUST"), q(1))
        .await
        .expect("add");
    let lines = carts.get(&c).await.expect("get").lines();
    assert_eq!(lines.get(&sku("MUG-RED")), Some(&3));
    carts.remove(&c, &sku("MUG-RED")).await.expect("remove");
    let lines = carts.get(&c).await.expect("get").lines();
    assert_eq!(lines.get(&sku("MUG-RED")), None);
    assert_eq!(lines.get(&sku("BOOK-RUST")), Some(&1));
}

// ANCHOR: login_merge
async fn a_login_merge_folds_the_guest_cart_in_and_deletes_it<C: CartStore>(carts: &C) {
    let guest = CartId::new_guest();
    let account = CartId::account("alice").expect("valid");
    carts
        .add(&account, Tag::random(), &sku("MUG-RED"), q(2))
        .await
        .expect("add");
    carts
        .add(&guest, Tag::random(), &sku("MUG-RED"), q(1))
        .await
        .expect("add");
    carts
        .add(&guest, Tag::random(), &sku("BOOK-RUST"), q(1))
        .await
        .expect("add");
    carts.merge(&guest, &account).await.expect("merge");
    let lines = carts.get(&account).await.expect("get").lines();
    // Rule: quantities of the same product add up (2 on the account + 1 as a guest).
    assert_eq!(lines.get(&sku("MUG-RED")), Some(&3));
    assert_eq!(lines.get(&sku("BOOK-RUST")), Some(&1));
    assert!(
        carts.get(&guest).await.expect("get").is_empty(),
        "the guest cart is gone"
    );
}
// ANCHOR_END: login_merge

// ANCHOR: stale_copy
async fn a_stale_copy_merged_back_does_not_resurrect_a_removal<C: CartStore>(carts: &C) {
    let account = CartId::account("alice").expect("valid");
    let phone = CartId::parse("g-phone-offline-copy").expect("valid");
    carts
        .add(&account, Tag::random(), &sku("MUG-RED"), q(1))
        .await
        .expect("add");
    // The phone syncs a copy, goes offline; meanwhile the mug is removed on the web.
    let snapshot = carts.get(&account).await.expect("get");
    for (tag, added) in snapshot.adds() {
        carts
            .add(&phone, *tag, &added.sku, added.quantity)
            .await
            .expect("copy");
    }
    carts
        .remove(&account, &sku("MUG-RED"))
        .await
        .expect("remove");
    // The phone comes back online and merges its stale copy.
    carts.merge(&phone, &account).await.expect("merge");
    let lines = carts.get(&account).await.expect("get").lines();
    assert_eq!(lines.get(&sku("MUG-RED")), None, "the mug stays removed");
}
// ANCHOR_END: stale_copy

async fn a_retried_merge_changes_nothing<C: CartStore>(carts: &C) {
    let guest = CartId::new_guest();
    let account = CartId::account("bob").expect("valid");
    carts
        .add(&guest, Tag::random(), &sku("MUG-RED"), q(1))
        .await
        .expect("add");
    carts.merge(&guest, &account).await.expect("merge");
    let once = carts.get(&account).await.expect("get");
    carts.merge(&guest, &account).await.expect("merge again");
    assert_eq!(carts.get(&account).await.expect("get"), once);
}

// ANCHOR: merge_race
/// Adds race a login merge, round after round: each add that answered is
/// afterwards in the guest cart (it came after the merge) or in the
/// account's (it was merged), never in neither.
async fn an_add_acknowledged_during_a_merge_is_never_lost<C: CartStore>(carts: &C) {
    let account = CartId::account("racer").expect("valid");
    let mut acknowledged = Vec::new();
    let mut guests = Vec::new();
    for round in 0..40u128 {
        let guest = CartId::new_guest();
        carts
            .add(&guest, Tag(round << 32), &sku("MUG-RED"), q(1))
            .await
            .expect("add");
        acknowledged.push(Tag(round << 32));
        let adds = async {
            let mut done = Vec::new();
            for i in 1..=8u128 {
                let tag = Tag((round << 32) | i);
                carts
                    .add(&guest, tag, &sku("BOOK-RUST"), q(1))
                    .await
                    .expect("add");
                done.push(tag);
                tokio::task::yield_now().await;
            }
            done
        };
        let (merged, done) = tokio::join!(carts.merge(&guest, &account), adds);
        merged.expect("merge");
        acknowledged.extend(done);
        guests.push(guest);
    }
    let mut present: std::collections::BTreeSet<Tag> = carts
        .get(&account)
        .await
        .expect("get")
        .adds()
        .map(|(t, _)| *t)
        .collect();
    for g in &guests {
        present.extend(carts.get(g).await.expect("get").adds().map(|(t, _)| *t));
    }
    let lost: Vec<&Tag> = acknowledged
        .iter()
        .filter(|t| !present.contains(t))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged adds lost: {lost:?}",
        lost.len()
    );
}
// ANCHOR_END: merge_race

async fn a_cart_merged_into_itself_keeps_its_lines<C: CartStore>(carts: &C) {
    let guest = CartId::new_guest();
    carts
        .add(&guest, Tag::random(), &sku("MUG-RED"), q(2))
        .await
        .expect("add");
    carts.merge(&guest, &guest).await.expect("merge");
    let lines = carts.get(&guest).await.expect("get").lines();
    assert_eq!(lines.get(&sku("MUG-RED")), Some(&2));
}

// ANCHOR: cart_cap
/// A cart holds at most [`MAX_CART_ENTRIES`] adds and tombstones: the next
/// add is refused with a named error, so no request works over a cart
/// larger than that (a removal reads the whole cart).
async fn a_full_cart_refuses_an_add_and_keeps_what_it_has<C: CartStore>(carts: &C) {
    let c = CartId::new_guest();
    for i in 0..MAX_CART_ENTRIES as u128 {
        let s = if i % 2 == 0 { "MUG-RED" } else { "BOOK-RUST" };
        carts.add(&c, Tag(i + 1), &sku(s), q(1)).await.expect("add");
        if i % 50 == 49 {
            // Tombstones count: they are entries too.
            carts.remove(&c, &sku("BOOK-RUST")).await.expect("remove");
        }
    }
    let before = carts.get(&c).await.expect("get");
    let refused = carts.add(&c, Tag(u128::MAX), &sku("MUG-RED"), q(1)).await;
    assert!(matches!(refused, Err(CartError::Full)), "{refused:?}");
    assert_eq!(carts.get(&c).await.expect("get"), before, "nothing changed");
}
// ANCHOR_END: cart_cap

#[tokio::test]
async fn a_redis_cart_expires_with_its_ttl_and_garbage_is_skipped() {
    let Some(r) = testkit::redis().await else {
        return;
    };
    let carts = RedisCarts::connect(&r.url, &r.prefix).await.expect("Redis");
    let c = CartId::new_guest();
    carts
        .add(&c, Tag::random(), &sku("MUG-RED"), q(1))
        .await
        .expect("add");
    let mut conn = r.conn.clone();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(carts.key(&c))
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!(pttl > 0 && pttl <= CART_TTL.as_millis() as i64, "{pttl}");
    // A damaged field loses that field, not the cart.
    let _: () = redis::cmd("HSET")
        .arg(carts.key(&c))
        .arg("a:not-a-tag")
        .arg("garbage")
        .query_async(&mut conn)
        .await
        .expect("HSET");
    let lines = carts.get(&c).await.expect("get").lines();
    assert_eq!(lines.get(&sku("MUG-RED")), Some(&1));
    assert_eq!(lines.len(), 1);
}

// ANCHOR: memory_merge_threads
/// The memory store on the binary's multi-threaded runtime: adds on another
/// thread race the merge, and an add acknowledged to the guest cart is in
/// one of the two carts after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_memory_merge_loses_no_add_from_another_thread() {
    use std::sync::Arc;
    let carts = Arc::new(MemoryCarts::new());
    let mut lost = 0;
    for round in 0..2000u128 {
        let guest = CartId::new_guest();
        let account = CartId::account(&format!("threads-{round}")).expect("valid");
        carts
            .add(&guest, Tag(round << 32), &sku("PEN-BLUE"), q(1))
            .await
            .expect("add");
        let start = Arc::new(std::sync::Barrier::new(2));
        let adds = {
            let (carts, guest, start) = (Arc::clone(&carts), guest.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                let book = sku("BOOK-RUST");
                start.wait();
                let mut done = Vec::new();
                for i in 1..=20u128 {
                    let tag = Tag((round << 32) | i);
                    at_once(carts.add(&guest, tag, &book, q(1))).expect("add");
                    done.push(tag);
                }
                done
            })
        };
        start.wait();
        carts.merge(&guest, &account).await.expect("merge");
        let done = adds.join().expect("the adds");
        let mut present: std::collections::BTreeSet<Tag> = carts
            .get(&account)
            .await
            .expect("get")
            .adds()
            .map(|(t, _)| *t)
            .collect();
        present.extend(carts.get(&guest).await.expect("get").adds().map(|(t, _)| *t));
        lost += done.iter().filter(|t| !present.contains(t)).count();
    }
    assert_eq!(lost, 0, "acknowledged adds lost");
}

/// Runs a memory-store call on this thread: it never awaits, so one poll ends it.
fn at_once<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => unreachable!("the memory store never awaits"),
    }
}
// ANCHOR_END: memory_merge_threads
