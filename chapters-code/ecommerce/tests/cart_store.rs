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
    a_removal_merged_into_a_full_cart_that_holds_the_add_is_applied,
    a_full_cart_emptied_takes_adds_again,
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

// ANCHOR: cart_clear
/// A cart full of adds and tombstones is not stuck: emptied, it takes adds again.
async fn a_full_cart_emptied_takes_adds_again<C: CartStore>(carts: &C) {
    let c = CartId::account(&format!("stuck-{}", Tag::random().0)).expect("valid");
    for i in 0..MAX_CART_ENTRIES as u128 {
        carts
            .add(&c, Tag(i + 1), &sku("MUG-RED"), q(1))
            .await
            .expect("add");
    }
    carts.remove(&c, &sku("MUG-RED")).await.expect("remove");
    let refused = carts.add(&c, Tag::random(), &sku("BOOK-RUST"), q(1)).await;
    assert!(matches!(refused, Err(CartError::Full)), "{refused:?}");
    carts.clear(&c).await.expect("clear");
    assert_eq!(carts.get(&c).await.expect("get").entries(), 0);
    carts
        .add(&c, Tag::random(), &sku("BOOK-RUST"), q(1))
        .await
        .expect("add after clear");
    assert_eq!(
        carts
            .get(&c)
            .await
            .expect("get")
            .lines()
            .get(&sku("BOOK-RUST")),
        Some(&1)
    );
}
// ANCHOR_END: cart_clear

// ANCHOR: cap_counts_new_entries
/// The cap counts the entries a merge would add, not the fields it sends: a
/// tombstone for an add the full target already holds replaces it and is
/// applied (as the Redis merge's second round needs), and a merge retried
/// after its delete was lost is not refused either.
async fn a_removal_merged_into_a_full_cart_that_holds_the_add_is_applied<C: CartStore>(carts: &C) {
    let guest = CartId::new_guest();
    let account = CartId::account(&format!("full-{}", Tag::random().0)).expect("valid");
    let pen = Tag(7);
    carts
        .add(&guest, pen, &sku("PEN-BLUE"), q(1))
        .await
        .expect("add");
    // The pen's add has reached the account already (a first merge round).
    carts
        .add(&account, pen, &sku("PEN-BLUE"), q(1))
        .await
        .expect("add");
    for i in 1..MAX_CART_ENTRIES as u128 {
        carts
            .add(&account, Tag(i << 8), &sku("MUG-RED"), q(1))
            .await
            .expect("fill");
    }
    carts
        .remove(&guest, &sku("PEN-BLUE"))
        .await
        .expect("remove");
    carts
        .merge(&guest, &account)
        .await
        .expect("the tombstone takes no new place");
    let after = carts.get(&account).await.expect("get");
    assert_eq!(
        after.lines().get(&sku("PEN-BLUE")),
        None,
        "the removal arrived"
    );
    assert_eq!(after.entries(), MAX_CART_ENTRIES);
}
// ANCHOR_END: cap_counts_new_entries

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
        present.extend(
            carts
                .get(&guest)
                .await
                .expect("get")
                .adds()
                .map(|(t, _)| *t),
        );
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

/// Fills `c` to the cap on PostgreSQL, with tombstones among the entries.
async fn fill(carts: &PgCarts, c: &CartId, entries: usize, salt: u128) {
    for i in 0..entries as u128 {
        let s = if i % 2 == 0 { "MUG-RED" } else { "BOOK-RUST" };
        carts
            .add(c, Tag((salt << 64) | (i + 1)), &sku(s), q(1))
            .await
            .expect("add");
    }
}

async fn entries(pool: &sqlx::PgPool, c: &CartId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM cart_entries WHERE cart_id = $1")
        .bind(c.as_str())
        .fetch_one(pool)
        .await
        .expect("count")
}

// ANCHOR: full_cart_expiry
/// A refused add is not a write: it does not move the cart's expiry, so a
/// full cart that is only refused still expires.
#[tokio::test]
async fn a_refused_add_does_not_keep_a_full_cart_alive() {
    let Some(db) = testkit::postgres(Some(&schema_path())).await else {
        return;
    };
    let carts = PgCarts::new(db.pool.clone());
    let c = CartId::new_guest();
    fill(&carts, &c, MAX_CART_ENTRIES, 1).await;
    // As if the cart had last been written a day ago.
    sqlx::query(
        "UPDATE cart_entries SET expires_at = now() + interval '29 days' WHERE cart_id = $1",
    )
    .bind(c.as_str())
    .execute(&db.pool)
    .await
    .expect("age the cart");
    for i in 0..10u128 {
        let refused = carts
            .add(&c, Tag(u128::MAX - i), &sku("MUG-RED"), q(1))
            .await;
        assert!(matches!(refused, Err(CartError::Full)), "{refused:?}");
    }
    let latest: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(expires_at) FROM cart_entries WHERE cart_id = $1")
            .bind(c.as_str())
            .fetch_one(&db.pool)
            .await
            .expect("expiry");
    assert!(
        latest < chrono::Utc::now() + chrono::TimeDelta::days(29) + chrono::TimeDelta::minutes(1),
        "the refused adds moved the expiry to {latest}"
    );
}
// ANCHOR_END: full_cart_expiry

// ANCHOR: pg_cap_races
/// On PostgreSQL the cap holds under concurrency: merges of several guest
/// carts into one account, and adds racing at the cap, never leave more
/// than [`MAX_CART_ENTRIES`] entries.
#[tokio::test]
async fn concurrent_merges_and_adds_never_pass_the_cap_on_postgres() {
    let Some(db) = testkit::postgres(Some(&schema_path())).await else {
        return;
    };
    let carts = PgCarts::new(db.pool.clone());
    let account = CartId::account("many-tabs").expect("valid");
    fill(&carts, &account, MAX_CART_ENTRIES - 150, 0).await;
    let mut guests = Vec::new();
    for g in 0..8u128 {
        let guest = CartId::new_guest();
        fill(&carts, &guest, 100, g + 1).await;
        guests.push(guest);
    }
    let merges = guests.iter().map(|g| carts.merge(g, &account));
    let results = futures_join_all(merges).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "one 100-entry guest cart fits in 150 places, not two"
    );
    assert_eq!(
        entries(&db.pool, &account).await,
        (MAX_CART_ENTRIES - 50) as i64
    );
    // Now 60 adds race for the last 50 places.
    let mug = sku("MUG-RED");
    let adds = (0..60u128).map(|i| carts.add(&account, Tag((99 << 64) | i), &mug, q(1)));
    let results = futures_join_all(adds).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 50);
    assert_eq!(entries(&db.pool, &account).await, MAX_CART_ENTRIES as i64);
}
// ANCHOR_END: pg_cap_races

/// Runs the futures concurrently (each on its own task-local poll, one pool
/// connection each), in order.
async fn futures_join_all<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in set.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("ready")).collect()
}

// ANCHOR: one_guest_two_accounts
/// One guest cart merged into two accounts at once on Redis (two logins
/// with the same guest cookie): each of its entries lands in at most one
/// account. A merge that finds the guest cart being merged is refused as
/// retryable, and changes nothing.
#[tokio::test]
async fn on_redis_one_guest_cart_merged_into_two_accounts_lands_once() {
    let Some(r) = testkit::redis().await else {
        return;
    };
    let carts = RedisCarts::connect(&r.url, &r.prefix).await.expect("Redis");
    let mut twice = 0;
    for round in 0..50u128 {
        let guest = CartId::new_guest();
        for i in 0..20u128 {
            carts
                .add(&guest, Tag((round << 32) | i), &sku("MUG-RED"), q(1))
                .await
                .expect("add");
        }
        let a1 = CartId::account(&format!("one-{round}")).expect("valid");
        let a2 = CartId::account(&format!("two-{round}")).expect("valid");
        let (r1, r2) = tokio::join!(carts.merge(&guest, &a1), carts.merge(&guest, &a2));
        for r in [&r1, &r2] {
            if let Err(e) = r {
                assert!(
                    matches!(e, CartError::Redis(block_errors::Class::Retryable(_), _)),
                    "{e:?}"
                );
            }
        }
        let in1: std::collections::BTreeSet<Tag> = carts
            .get(&a1)
            .await
            .expect("get")
            .adds()
            .map(|(t, _)| *t)
            .collect();
        let in2: std::collections::BTreeSet<Tag> = carts
            .get(&a2)
            .await
            .expect("get")
            .adds()
            .map(|(t, _)| *t)
            .collect();
        twice += in1.intersection(&in2).count();
    }
    assert_eq!(twice, 0, "entries merged into both accounts");
}
// ANCHOR_END: one_guest_two_accounts
