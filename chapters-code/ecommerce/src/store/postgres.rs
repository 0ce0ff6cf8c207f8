//! The PostgreSQL store: each checkout phase is one transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{KeyRecord, NewProduct, SCHEMA_SQL, Store, StoreError};
use crate::checkout::{
    Begun, Charged, CheckoutError, CheckoutRequest, Hooks, Order, Point, Stocked, StoredResponse,
    finish_response, price_order,
};
use crate::domain::{Currency, Money, Product, Quote, Sku, TaxClass};
use crate::idempotency::{
    Fingerprint, KeyScope, Lock, Purged, claim_error, final_answer, finish_error, lease, stored,
};
use block_idempotency::{ClaimError, Claimed, FinishError, pg as keys};

// ANCHOR: search_sql
/// Full-text search over the generated `search` column (GIN index).
pub const SEARCH_SQL: &str = "\
SELECT sku, name, description, price_minor, currency, tax_class, version
FROM products
WHERE search @@ websearch_to_tsquery('english', $1)
ORDER BY ts_rank(search, websearch_to_tsquery('english', $1)) DESC, sku
LIMIT $2";
// ANCHOR_END: search_sql

const PRODUCT_COLUMNS: &str = "sku, name, description, price_minor, currency, tax_class, version";

/// Products, orders and keys in PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// A store over `pool` (the schema must be applied).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Connects a pool of `max` connections to `url`.
    pub async fn connect(url: &str, max: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies `sql/schema.sql` when the database has no `products` table; true when it did.
    pub async fn ensure_schema(&self) -> Result<bool, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('public.products') IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        if exists {
            return Ok(false);
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(SCHEMA_SQL))
            .execute(&self.pool)
            .await?;
        Ok(true)
    }
}

// ANCHOR: stock_backstop
/// A database error from the stock reservation: the `CHECK (stock >= 0)`
/// backstop is an out-of-stock answer; anything else keeps its class.
pub fn stock_backstop(e: sqlx::Error) -> CheckoutError {
    let is_backstop = e.as_database_error().is_some_and(|d| {
        d.kind() == sqlx::error::ErrorKind::CheckViolation
            && d.constraint() == Some("products_stock_check")
    });
    if is_backstop {
        CheckoutError::OutOfStock
    } else {
        CheckoutError::Store(StoreError::Database(e))
    }
}
// ANCHOR_END: stock_backstop

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn product_from_row(row: &PgRow) -> Result<Product, StoreError> {
    let sku: String = row.try_get("sku")?;
    let currency: String = row.try_get("currency")?;
    let class: String = row.try_get("tax_class")?;
    let currency: Currency = currency.parse().map_err(corrupt)?;
    Ok(Product {
        sku: Sku::parse(&sku).map_err(corrupt)?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price: Money::new(row.try_get("price_minor")?, currency).map_err(corrupt)?,
        tax_class: TaxClass::parse(&class).ok_or_else(|| corrupt(class))?,
        version: row.try_get("version")?,
    })
}

fn order_from_row(row: &PgRow) -> Result<Order, StoreError> {
    let quote: serde_json::Value = row.try_get("quote")?;
    let quote: Quote = serde_json::from_value(quote).map_err(corrupt)?;
    Ok(Order {
        id: row.try_get("id")?,
        account: row.try_get("account_id")?,
        status: row.try_get("status")?,
        quote,
        charge_id: row.try_get("charge_id")?,
        created_at: row.try_get("created_at")?,
    })
}

const ORDER_COLUMNS: &str = "id, account_id, status, quote, charge_id, created_at";

async fn load_order(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    lock: bool,
) -> Result<Order, StoreError> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| corrupt(format!("no order {id}")))?;
    order_from_row(&row)
}

impl Store for PgStore {
    async fn put_product(&self, p: &NewProduct) -> Result<Product, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO products (sku, name, description, price_minor, currency, tax_class, stock)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (sku) DO UPDATE SET name = excluded.name,
                 description = excluded.description, price_minor = excluded.price_minor,
                 currency = excluded.currency, tax_class = excluded.tax_class,
                 stock = excluded.stock, version = products.version + 1
             RETURNING {PRODUCT_COLUMNS}"
        )))
        .bind(p.sku.as_str())
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.price.minor())
        .bind(p.price.currency().code())
        .bind(p.tax_class.as_str())
        .bind(p.stock)
        .fetch_one(&self.pool)
        .await?;
        product_from_row(&row)
    }

    // ANCHOR: set_price
    async fn set_price(&self, sku: &Sku, price: Money) -> Result<Product, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE products SET price_minor = $2, currency = $3, version = version + 1
             WHERE sku = $1 RETURNING {PRODUCT_COLUMNS}"
        )))
        .bind(sku.as_str())
        .bind(price.minor())
        .bind(price.currency().code())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::ProductNotFound(sku.clone()))?;
        product_from_row(&row)
    }
    // ANCHOR_END: set_price

    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = $1"
        )))
        .bind(sku.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(product_from_row).transpose()
    }

    async fn search(&self, query: &str, limit: u32) -> Result<Vec<Product>, StoreError> {
        let rows = sqlx::query(SEARCH_SQL)
            .bind(query)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(product_from_row).collect()
    }

    async fn stock(&self, sku: &Sku) -> Result<Option<i32>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT stock FROM products WHERE sku = $1")
                .bind(sku.as_str())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    // ANCHOR: final_answer
    async fn final_answer(
        &self,
        key: &KeyScope,
        fingerprint: &Fingerprint,
    ) -> Result<Option<StoredResponse>, CheckoutError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let answer = keys::final_answer(&mut conn, key, fingerprint)
            .await
            .map_err(claim_error)?;
        Ok(answer.map(stored))
    }
    // ANCHOR_END: final_answer

    // ANCHOR: begin_checkout
    async fn begin_checkout(
        &self,
        account: &str,
        key: Option<&KeyScope>,
        request: &CheckoutRequest,
        fingerprint: &Fingerprint,
        now: DateTime<Utc>,
        hooks: &dyn Hooks,
    ) -> Result<Begun, CheckoutError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let order_id = Uuid::new_v4();
        let mut lock = None;
        if let Some(k) = key {
            // Claim the key in this transaction (the block's statements). A
            // concurrent claim of the same key waits for our COMMIT; the
            // UNIQUE constraint is what makes it wait.
            match keys::claim(&mut tx, k, fingerprint, lease())
                .await
                .map_err(claim_error)?
            {
                Claimed::New(l) => lock = Some(l),
                Claimed::Replay(answer) => return Ok(Begun::Replay(stored(answer))),
                Claimed::TakenOver { lock: l, .. } => return resume(tx, l).await,
            }
        }
        let rows = sqlx::query(
            "SELECT sku, name, description, price_minor, currency, tax_class, version, stock
             FROM products WHERE sku = ANY($1) ORDER BY sku FOR UPDATE",
        )
        .bind(
            request
                .lines
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let mut products = Vec::with_capacity(rows.len());
        for row in &rows {
            products.push(Stocked {
                product: product_from_row(row)?,
                stock: row.try_get("stock").map_err(StoreError::from)?,
            });
        }
        // Bad input returns here: dropping `tx` rolls back, the key included.
        let quote = match price_order(request, &products)? {
            Ok(quote) => quote,
            Err(refusal) => {
                if let Some(l) = lock {
                    keys::finish(&mut tx, l, &final_answer(&refusal))
                        .await
                        .map_err(finish_error)?;
                }
                hooks.reached(Point::BeforeOrderCommit).await;
                tx.commit().await.map_err(StoreError::from)?;
                return Ok(Begun::Refused(refusal));
            }
        };
        let skus: Vec<&str> = request.lines.iter().map(|(s, _)| s.as_str()).collect();
        let quantities: Vec<i32> = request.lines.iter().map(|(_, q)| q.get() as i32).collect();
        // Reserve stock; the rows are locked, and CHECK (stock >= 0) is the backstop.
        sqlx::query(
            "UPDATE products SET stock = stock - q.quantity
             FROM unnest($1::text[], $2::int[]) AS q(sku, quantity)
             WHERE products.sku = q.sku",
        )
        .bind(&skus)
        .bind(&quantities)
        .execute(&mut *tx)
        .await
        .map_err(stock_backstop)?;
        sqlx::query(
            "INSERT INTO orders (id, account_id, status, currency, total_minor, quote,
                                 created_at, updated_at)
             VALUES ($1, $2, 'pending_payment', $3, $4, $5, $6, $6)",
        )
        .bind(order_id)
        .bind(account)
        .bind(quote.currency.code())
        .bind(quote.total_minor)
        .bind(serde_json::to_value(&quote).map_err(corrupt)?)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let units: Vec<i64> = quote.lines.iter().map(|l| l.unit_minor).collect();
        let totals: Vec<i64> = quote.lines.iter().map(|l| l.total_minor).collect();
        let line_skus: Vec<&str> = quote.lines.iter().map(|l| l.sku.as_str()).collect();
        let line_qty: Vec<i32> = quote.lines.iter().map(|l| l.quantity as i32).collect();
        sqlx::query(
            "INSERT INTO order_lines (order_id, sku, quantity, unit_minor, total_minor)
             SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[])",
        )
        .bind(order_id)
        .bind(&line_skus)
        .bind(&line_qty)
        .bind(&units)
        .bind(&totals)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if let Some(l) = lock {
            // The recovery point, and the order a retry resumes (the
            // chapter's own column), with the order in one COMMIT.
            sqlx::query(
                "UPDATE idempotency_keys SET recovery_point = 'order_created', order_id = $3
                 WHERE id = $1 AND generation = $2",
            )
            .bind(l.id)
            .bind(l.generation)
            .bind(order_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        }
        hooks.reached(Point::BeforeOrderCommit).await;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Begun::Charge {
            lock,
            order_id,
            amount: quote.total(),
            resumed: false,
        })
    }
    // ANCHOR_END: begin_checkout

    // ANCHOR: finish_checkout
    async fn finish_checkout(
        &self,
        lock: Option<Lock>,
        order_id: Uuid,
        charged: &Charged,
        now: DateTime<Utc>,
        hooks: &dyn Hooks,
    ) -> Result<StoredResponse, CheckoutError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let mut order = load_order(&mut tx, order_id, true).await?;
        // Under the order's row lock: an order already finished (a second
        // finisher, which a keyless run has no key to fence) is left as it
        // is, so stock is released once and a failed order never turns paid.
        if order.status != "pending_payment" {
            return Err(CheckoutError::KeyInUse);
        }
        match charged {
            Charged::Paid(charge_id) => {
                order.status = "paid".into();
                order.charge_id = Some(charge_id.clone());
            }
            Charged::Declined(_) | Charged::ProviderFailed(_) | Charged::Voided => {
                order.status = "payment_failed".into();
            }
        }
        let response = finish_response(&order, charged);
        // The fence first: a request whose key was taken over (its lease ran
        // out) stops here and writes nothing; the taker's answer is final.
        if let Some(l) = lock {
            keys::finish(&mut tx, l, &final_answer(&response))
                .await
                .map_err(finish_error)?;
        }
        match charged {
            Charged::Paid(charge_id) => {
                sqlx::query(
                    "UPDATE orders SET status = 'paid', charge_id = $2, updated_at = $3 WHERE id = $1",
                )
                .bind(order_id)
                .bind(charge_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
                // The receipt e-mail, staged in the same transaction: sent once the order is paid, never before.
                sqlx::query(
                    "INSERT INTO staged_jobs (kind, payload, created_at)
                     VALUES ('send_receipt', jsonb_build_object('order_id', $1::uuid), $2)",
                )
                .bind(order_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            }
            Charged::Declined(_) | Charged::ProviderFailed(_) | Charged::Voided => {
                sqlx::query(
                    "UPDATE orders SET status = 'payment_failed', updated_at = $2 WHERE id = $1",
                )
                .bind(order_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
                // Release the reserved stock.
                sqlx::query(
                    "UPDATE products SET stock = stock + l.quantity
                     FROM order_lines AS l WHERE l.order_id = $1 AND products.sku = l.sku",
                )
                .bind(order_id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            }
        }
        hooks.reached(Point::BeforeFinishCommit).await;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(response)
    }
    // ANCHOR_END: finish_checkout

    async fn release_key(&self, lock: Lock) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        match keys::release(&mut conn, lock).await {
            // Taken over meanwhile: the lease is the taker's to keep.
            Ok(()) | Err(FinishError::Fenced) => Ok(()),
            Err(FinishError::Database(e)) => Err(e.into()),
        }
    }

    // ANCHOR: purge
    async fn purge_keys(
        &self,
        retention: std::time::Duration,
        _now: DateTime<Utc>,
    ) -> Result<Purged, StoreError> {
        // Finished keys only, by the database clock: an unfinished key is an
        // order awaiting its outcome, and its retry must find it.
        let mut conn = self.pool.acquire().await?;
        keys::purge(&mut conn, retention)
            .await
            .map_err(|e| match e {
                ClaimError::Database(e) => StoreError::Database(e),
                other => StoreError::Corrupt(other.to_string()),
            })
    }
    // ANCHOR_END: purge

    async fn order(&self, id: Uuid) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(order_from_row).transpose()
    }

    async fn orders(&self) -> Result<Vec<Order>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_from_row).collect()
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_id, key, recovery_point,
                    coalesce(locked_until > clock_timestamp(), false) AS held
             FROM idempotency_keys ORDER BY account_id, key",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| -> Result<KeyRecord, StoreError> {
                Ok(KeyRecord {
                    account: r.try_get("account_id")?,
                    key: r.try_get("key")?,
                    recovery_point: r.try_get("recovery_point")?,
                    held: r.try_get("held")?,
                })
            })
            .collect()
    }
}

// ANCHOR: resume
/// The key was taken over (its holder's lease ran out): resume its order.
async fn resume(mut tx: Transaction<'_, Postgres>, lock: Lock) -> Result<Begun, CheckoutError> {
    let order_id: Option<Uuid> =
        sqlx::query_scalar("SELECT order_id FROM idempotency_keys WHERE id = $1")
            .bind(lock.id)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?;
    // The claim and the order commit together, so an unfinished key has one.
    let order_id = order_id.ok_or_else(|| corrupt("an unfinished key without an order"))?;
    let order = load_order(&mut tx, order_id, false).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Begun::Charge {
        lock: Some(lock),
        order_id,
        amount: order.quote.total(),
        resumed: true,
    })
}
// ANCHOR_END: resume
