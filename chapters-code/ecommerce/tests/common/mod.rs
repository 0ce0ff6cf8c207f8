//! Shared fixtures of the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ecommerce::checkout::{CHECKOUT_ENDPOINT, CheckoutRequest};
use ecommerce::domain::{Currency, Money, PricedLine, Quantity, Sku, TAX_RATES, TaxClass, quote};
use ecommerce::idempotency::{IdempotencyKey, KeyScope};
use ecommerce::store::{NewProduct, PgStore, Store};
use testkit::TestDb;

/// `sql/schema.sql` of this crate.
pub fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/schema.sql")
}

/// A throwaway database with the schema and the demo products, and a store over it.
pub async fn pg_store_with(max: u32) -> Option<(TestDb, PgStore)> {
    let db = testkit::postgres(Some(&schema_path())).await?;
    let store = PgStore::new(db.pool_with(max).await);
    seed(&store).await;
    Some((db, store))
}

/// Like [`pg_store_with`] with a small pool.
pub async fn pg_store() -> Option<(TestDb, PgStore)> {
    pg_store_with(4).await
}

pub fn sku(s: &str) -> Sku {
    Sku::parse(s).expect("test SKU")
}

pub fn money(minor: i64, c: Currency) -> Money {
    Money::new(minor, c).expect("test amount")
}

/// The products every test starts with.
pub fn products() -> Vec<NewProduct> {
    vec![
        NewProduct {
            sku: sku("MUG-RED"),
            name: "Red mug".into(),
            description: "A stoneware coffee mug, red glaze".into(),
            price: money(1250, Currency::Eur),
            tax_class: TaxClass::Standard,
            stock: 100,
        },
        NewProduct {
            sku: sku("BOOK-RUST"),
            name: "Rust in practice".into(),
            description: "A paperback book about systems programming".into(),
            price: money(3999, Currency::Eur),
            tax_class: TaxClass::Reduced,
            stock: 100,
        },
        NewProduct {
            sku: sku("CAP-USD"),
            name: "Baseball cap".into(),
            description: "Sold in dollars only".into(),
            price: money(2000, Currency::Usd),
            tax_class: TaxClass::Standard,
            stock: 10,
        },
    ]
}

pub async fn seed<S: Store>(store: &S) {
    for p in products() {
        store.put_product(&p).await.expect("seeding a product");
    }
}

/// A request for `lines`, with the total the shopper was shown (priced from the store now).
pub async fn request<S: Store>(store: &S, lines: &[(&str, i64)]) -> CheckoutRequest {
    let mut parsed: Vec<(Sku, Quantity)> = lines
        .iter()
        .map(|(s, q)| (sku(s), Quantity::new(*q).expect("test quantity")))
        .collect();
    parsed.sort();
    let mut priced = Vec::new();
    for (s, q) in &parsed {
        let p = store
            .product(s)
            .await
            .expect("store")
            .expect("test product");
        priced.push(PricedLine {
            sku: s.clone(),
            unit: p.price,
            quantity: *q,
            tax_class: p.tax_class,
        });
    }
    let q = quote(&priced, None, &TAX_RATES).expect("a valid test order");
    CheckoutRequest {
        lines: parsed,
        currency: q.currency,
        expected_total_minor: q.total_minor,
        promotion: None,
        payment_method: "tok_visa".into(),
    }
}

pub fn key(account: &str, k: &str) -> KeyScope {
    KeyScope {
        account: account.into(),
        endpoint: CHECKOUT_ENDPOINT,
        key: IdempotencyKey::parse(k.as_bytes()).expect("test key"),
    }
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("test time").to_utc()
}

/// The tests' "now".
pub fn now0() -> DateTime<Utc> {
    at("2026-03-02T08:00:00Z")
}

pub fn arc<T>(t: T) -> Arc<T> {
    Arc::new(t)
}
