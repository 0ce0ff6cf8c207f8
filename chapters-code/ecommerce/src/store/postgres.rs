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
use crate::idempotency::{KeyScope, LOCK_TIMEOUT};

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

fn response_json(r: &StoredResponse) -> serde_json::Value {
    r.body.clone()
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
        fingerprint: &str,
    ) -> Result<Option<StoredResponse>, CheckoutError> {
        let row = sqlx::query(
            "SELECT fingerprint, response_status, response_body
             FROM idempotency_keys WHERE account_id = $1 AND endpoint = $2 AND key = $3",
        )
        .bind(&key.account)
        .bind(key.endpoint)
        .bind(key.key.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let get = |e: sqlx::Error| CheckoutError::Store(e.into());
        let stored: String = row.try_get("fingerprint").map_err(get)?;
        if stored != fingerprint {
            return Err(CheckoutError::KeyReused);
        }
        let status: Option<i16> = row.try_get("response_status").map_err(get)?;
        let Some(status) = status else {
            return Ok(None);
        };
        Ok(Some(StoredResponse {
            status: u16::try_from(status).map_err(corrupt)?,
            body: row.try_get("response_body").map_err(get)?,
        }))
    }
    // ANCHOR_END: final_answer

    // ANCHOR: begin_checkout
    async fn begin_checkout(
        &self,
        account: &str,
        key: Option<&KeyScope>,
        request: &CheckoutRequest,
        fingerprint: &str,
        now: DateTime<Utc>,
        hooks: &dyn Hooks,
    ) -> Result<Begun, CheckoutError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let order_id = Uuid::new_v4();
        let mut key_id = None;
        if let Some(k) = key {
            // Claim the key. A concurrent claim of the same key waits here
            // for our COMMIT; the UNIQUE constraint is what makes it wait.
            key_id = sqlx::query_scalar::<_, i64>(
                "INSERT INTO idempotency_keys (account_id, endpoint, key, fingerprint,
                     created_at, locked_at, recovery_point, order_id)
                 VALUES ($1, $2, $3, $4, $5, $5, 'order_created', $6)
                 ON CONFLICT DO NOTHING
                 RETURNING id",
            )
            .bind(&k.account)
            .bind(k.endpoint)
            .bind(k.key.as_str())
            .bind(fingerprint)
            .bind(now)
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            if key_id.is_none() {
                return resume(tx, k, fingerprint, now).await;
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
                if let Some(id) = key_id {
                    store_response(&mut tx, id, &refusal, true).await?;
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
        .map_err(StoreError::from)?;
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
        hooks.reached(Point::BeforeOrderCommit).await;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Begun::Charge {
            key_id,
            order_id,
            amount: quote.total(),
            resumed: false,
        })
    }
    // ANCHOR_END: begin_checkout

    // ANCHOR: finish_checkout
    async fn finish_checkout(
        &self,
        key_id: Option<i64>,
        order_id: Uuid,
        charged: &Charged,
        now: DateTime<Utc>,
        hooks: &dyn Hooks,
    ) -> Result<StoredResponse, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut order = load_order(&mut tx, order_id, true).await?;
        match charged {
            Charged::Paid(charge_id) => {
                sqlx::query(
                    "UPDATE orders SET status = 'paid', charge_id = $2, updated_at = $3 WHERE id = $1",
                )
                .bind(order_id)
                .bind(charge_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                // The receipt e-mail, staged in the same transaction: sent once the order is paid, never before.
                sqlx::query(
                    "INSERT INTO staged_jobs (kind, payload, created_at)
                     VALUES ('send_receipt', jsonb_build_object('order_id', $1::uuid), $2)",
                )
                .bind(order_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                order.status = "paid".into();
                order.charge_id = Some(charge_id.clone());
            }
            Charged::Declined(_) | Charged::ProviderFailed(_) => {
                sqlx::query(
                    "UPDATE orders SET status = 'payment_failed', updated_at = $2 WHERE id = $1",
                )
                .bind(order_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                // Release the reserved stock.
                sqlx::query(
                    "UPDATE products SET stock = stock + l.quantity
                     FROM order_lines AS l WHERE l.order_id = $1 AND products.sku = l.sku",
                )
                .bind(order_id)
                .execute(&mut *tx)
                .await?;
                order.status = "payment_failed".into();
            }
        }
        let response = finish_response(&order, charged);
        if let Some(id) = key_id {
            store_response(&mut tx, id, &response, false).await?;
        }
        hooks.reached(Point::BeforeFinishCommit).await;
        tx.commit().await?;
        Ok(response)
    }
    // ANCHOR_END: finish_checkout

    async fn unlock_key(&self, key_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE idempotency_keys SET locked_at = NULL WHERE id = $1")
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ANCHOR: purge
    async fn purge_keys(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        // A key still locked belongs to a request in flight (or one that
        // died and awaits its retry): it is not purged until it finishes.
        let done =
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1 AND locked_at IS NULL")
                .bind(cutoff)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
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
            "SELECT account_id, key, recovery_point, locked_at
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
                    locked_at: r.try_get("locked_at")?,
                })
            })
            .collect()
    }
}

// ANCHOR: resume
/// The key exists: replay its answer, refuse, or take it over and resume.
async fn resume(
    mut tx: Transaction<'_, Postgres>,
    k: &KeyScope,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<Begun, CheckoutError> {
    let row = sqlx::query(
        "SELECT id, fingerprint, locked_at, order_id, response_status, response_body
         FROM idempotency_keys WHERE account_id = $1 AND endpoint = $2 AND key = $3
         FOR UPDATE",
    )
    .bind(&k.account)
    .bind(k.endpoint)
    .bind(k.key.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::from)?
    // Purged between our INSERT and this SELECT: the client may simply retry.
    .ok_or(CheckoutError::KeyInUse)?;
    let get = |e: sqlx::Error| CheckoutError::Store(e.into());
    let stored: String = row.try_get("fingerprint").map_err(get)?;
    if stored != fingerprint {
        return Err(CheckoutError::KeyReused);
    }
    let status: Option<i16> = row.try_get("response_status").map_err(get)?;
    if let Some(status) = status {
        let body: serde_json::Value = row.try_get("response_body").map_err(get)?;
        return Ok(Begun::Replay(StoredResponse {
            status: u16::try_from(status).map_err(corrupt)?,
            body,
        }));
    }
    let locked_at: Option<DateTime<Utc>> = row.try_get("locked_at").map_err(get)?;
    if locked_at.is_some_and(|t| t > now - LOCK_TIMEOUT) {
        return Err(CheckoutError::KeyInUse);
    }
    let id: i64 = row.try_get("id").map_err(get)?;
    let order_id: Option<Uuid> = row.try_get("order_id").map_err(get)?;
    let order_id = order_id.ok_or_else(|| corrupt("an unfinished key without an order"))?;
    sqlx::query("UPDATE idempotency_keys SET locked_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    let order = load_order(&mut tx, order_id, false).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Begun::Charge {
        key_id: Some(id),
        order_id,
        amount: order.quote.total(),
        resumed: true,
    })
}
// ANCHOR_END: resume

/// Writes the final answer on the key's row and unlocks it.
async fn store_response(
    tx: &mut Transaction<'_, Postgres>,
    key_id: i64,
    response: &StoredResponse,
    drop_order: bool,
) -> Result<(), StoreError> {
    let sql = if drop_order {
        // A refusal in phase 1: the order this key was to create never existed.
        "UPDATE idempotency_keys SET recovery_point = 'finished', order_id = NULL,
             locked_at = NULL, response_status = $2, response_body = $3 WHERE id = $1"
    } else {
        "UPDATE idempotency_keys SET recovery_point = 'finished',
             locked_at = NULL, response_status = $2, response_body = $3 WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(key_id)
        .bind(response.status as i16)
        .bind(response_json(response))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
