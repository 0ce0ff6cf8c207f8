//! The last units of a product, raced by shoppers with different keys on
//! PostgreSQL: the stock row's lock (`FOR UPDATE` in phase 1) makes every
//! loser a stored out-of-stock answer, and the `CHECK (stock >= 0)`
//! backstop, reached only if that lock were gone, answers out of stock too.

mod common;

use std::sync::Arc;

use common::*;
use ecommerce::checkout::provider::FakeProvider;
use ecommerce::checkout::{Checkout, CheckoutError};
use ecommerce::store::{Store, stock_backstop};
use tokio::sync::Barrier;

// ANCHOR: oversell_race
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_shoppers_racing_for_the_last_units_never_oversell() {
    let Some((_db, store)) = pg_store_with(16).await else {
        return;
    };
    let store = Arc::new(store);
    let c = Checkout::new(Arc::clone(&store), Arc::new(FakeProvider::new()));
    // CAP-USD has 10 units; twelve shoppers want 3 each: three can have them.
    let req = request(&*store, &[("CAP-USD", 3)]).await;
    let shoppers = 12;
    let start = Arc::new(Barrier::new(shoppers));
    let mut tasks = Vec::new();
    for i in 0..shoppers {
        let (c, req, start) = (c.clone(), req.clone(), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            let who = format!("shopper-{i}");
            let k = key(&who, "last-units");
            start.wait().await;
            let first = c.run(&who, Some(&k), &req, now0()).await;
            // A refusal is a final answer, stored with the key: the retry replays it.
            let again = c.run(&who, Some(&k), &req, now0()).await;
            (first, again)
        }));
    }
    let (mut paid, mut refused) = (0, 0);
    for t in tasks {
        let (first, again) = t.await.expect("task");
        let first = first.expect("every shopper gets an answer, never a database error");
        let again = again.expect("the retry gets the same answer");
        assert_eq!(first.response, again.response);
        assert!(again.replayed, "the answer was stored with the key");
        match first.response.status {
            201 => paid += 1,
            409 => {
                assert_eq!(
                    first.response.body["type"]
                        .as_str()
                        .map(|t| t.ends_with("#out-of-stock")),
                    Some(true),
                    "{:?}",
                    first.response.body
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {:?}", first.response.body),
        }
    }
    assert_eq!((paid, refused), (3, 9));
    assert_eq!(store.stock(&sku("CAP-USD")).await.expect("stock"), Some(1));
}
// ANCHOR_END: oversell_race

#[tokio::test]
async fn on_postgres_the_stock_check_backstop_answers_out_of_stock() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    // The error PostgreSQL raises when a reservation would take stock below zero.
    let err = sqlx::query("UPDATE products SET stock = stock - 1000 WHERE sku = 'MUG-RED'")
        .execute(store.pool())
        .await
        .expect_err("CHECK (stock >= 0)");
    assert!(
        matches!(stock_backstop(err), CheckoutError::OutOfStock),
        "the backstop is an out-of-stock answer, not a database failure"
    );
    // Any other database error keeps its class.
    let other = sqlx::query("SELECT * FROM no_such_table")
        .execute(store.pool())
        .await
        .expect_err("undefined table");
    assert!(matches!(stock_backstop(other), CheckoutError::Store(_)));
}

// ANCHOR: backstop_path
/// The backstop reached through phase 1 (a trigger stands in for the bug
/// that alone could reach it): the checkout answers `stock-changed`, a type
/// of its own, because nothing is stored with the key; a retry with the same
/// key runs afresh and gets a final answer.
#[tokio::test]
async fn on_postgres_the_backstop_in_phase_1_answers_stock_changed_and_settles_nothing() {
    use block_errors::ApiProblem;
    use ecommerce::service::ApiError;
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    let store = Arc::new(store);
    sqlx::raw_sql(
        "CREATE FUNCTION steal() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN NEW.stock := NEW.stock - 1000; RETURN NEW; END $$;
         CREATE TRIGGER steal BEFORE UPDATE OF stock ON products
         FOR EACH ROW WHEN (NEW.stock < OLD.stock) EXECUTE FUNCTION steal();",
    )
    .execute(store.pool())
    .await
    .expect("the trigger");
    let provider = Arc::new(FakeProvider::new());
    let c = Checkout::new(Arc::clone(&store), Arc::clone(&provider));
    let req = request(&*store, &[("MUG-RED", 2)]).await;
    let k = key("alice", "backstop");
    let got = c.run("alice", Some(&k), &req, now0()).await;
    let Err(e) = got else {
        panic!("the backstop let the checkout through: {got:?}")
    };
    assert!(matches!(e, CheckoutError::OutOfStock), "{e:?}");
    let (status, kind, _) = ApiError::from(e).classify();
    assert_eq!((status.as_u16(), kind), (409, "stock-changed"));
    assert_eq!(provider.calls(), 0);
    assert!(store.orders().await.expect("orders").is_empty());
    // Nothing was stored with the key: the retry runs phase 1 again.
    sqlx::raw_sql("DROP TRIGGER steal ON products")
        .execute(store.pool())
        .await
        .expect("drop the trigger");
    let again = c
        .run("alice", Some(&k), &req, now0())
        .await
        .expect("the retry");
    assert_eq!(again.response.status, 201, "{:?}", again.response.body);
    assert!(!again.replayed);
}
// ANCHOR_END: backstop_path

// ANCHOR: stock_not_public
/// Exact stock is not public: an out-of-stock answer names the product and
/// the quantity asked, never how many are left (a scraper polling with a
/// large quantity would otherwise read the stock level of every product).
#[tokio::test]
async fn an_out_of_stock_answer_does_not_tell_the_stock_level() {
    let store = ecommerce::store::MemoryStore::new();
    seed(&store).await;
    let c = Checkout::new(Arc::new(store), Arc::new(FakeProvider::new()));
    // CAP-USD has 10 units left; ask for 17.
    let req = request(&*c.store, &[("CAP-USD", 17)]).await;
    let answer = c
        .run("scraper", Some(&key("scraper", "k")), &req, now0())
        .await
        .expect("an answer");
    assert_eq!(answer.response.status, 409);
    let detail = answer.response.body["detail"].as_str().expect("a detail");
    assert!(!detail.contains("10"), "the stock level leaked: {detail}");
    assert!(
        detail.contains("CAP-USD") && detail.contains("17"),
        "{detail}"
    );
}
// ANCHOR_END: stock_not_public
