//! Carts in PostgreSQL, for the comparison with Redis: one row per add,
//! a tombstone is `removed = true`.

use chrono::Utc;
use sqlx::{PgPool, Row};

use super::{CART_TTL, CartError, CartId, CartStore, MAX_CART_ENTRIES};
use crate::domain::{Cart, Quantity, Sku, Tag};

/// Carts in the `cart_entries` table.
#[derive(Clone)]
pub struct PgCarts {
    pool: PgPool,
}

impl PgCarts {
    /// Carts over `pool` (the schema must be applied).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn expires() -> chrono::DateTime<Utc> {
    Utc::now() + chrono::TimeDelta::from_std(CART_TTL).unwrap_or(chrono::TimeDelta::days(30))
}

impl CartStore for PgCarts {
    async fn add(
        &self,
        cart: &CartId,
        tag: Tag,
        sku: &Sku,
        quantity: Quantity,
    ) -> Result<(), CartError> {
        // The count and the insert are one statement; two adds racing at the
        // cap may both pass, so the bound is the cap plus the concurrent adds.
        let added = sqlx::query(
            // The whole cart's expiry moves with each write, as the Redis key's TTL does.
            "WITH touched AS (
                 UPDATE cart_entries SET expires_at = $5
                 WHERE cart_id = $1 AND expires_at > now())
             INSERT INTO cart_entries (cart_id, tag, sku, quantity, expires_at)
             SELECT $1, $2, $3, $4, $5
             WHERE (SELECT count(*) FROM cart_entries
                    WHERE cart_id = $1 AND expires_at > now()) < $6
             ON CONFLICT (cart_id, tag) DO NOTHING",
        )
        .bind(cart.as_str())
        .bind(uuid::Uuid::from_u128(tag.0))
        .bind(sku.as_str())
        .bind(quantity.get() as i32)
        .bind(expires())
        .bind(MAX_CART_ENTRIES as i64)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if added == 0 {
            // Either a retried add (its tag is there) or a full cart.
            let retried: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM cart_entries WHERE cart_id = $1 AND tag = $2)",
            )
            .bind(cart.as_str())
            .bind(uuid::Uuid::from_u128(tag.0))
            .fetch_one(&self.pool)
            .await?;
            if !retried {
                return Err(CartError::Full);
            }
        }
        Ok(())
    }

    async fn remove(&self, cart: &CartId, sku: &Sku) -> Result<(), CartError> {
        sqlx::query(
            "UPDATE cart_entries SET removed = removed OR sku = $2, expires_at = $3
             WHERE cart_id = $1 AND expires_at > now()",
        )
        .bind(cart.as_str())
        .bind(sku.as_str())
        .bind(expires())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ANCHOR: pg_merge
    async fn merge(&self, from: &CartId, into: &CartId) -> Result<(), CartError> {
        if from == into {
            // A set joined with itself is itself; deleting the source would empty it.
            return Ok(());
        }
        // The cap, checked before (an add racing the merge may pass it by one).
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cart_entries
             WHERE cart_id IN ($1, $2) AND expires_at > now()",
        )
        .bind(from.as_str())
        .bind(into.as_str())
        .fetch_one(&self.pool)
        .await?;
        if total > MAX_CART_ENTRIES as i64 {
            return Err(CartError::Full);
        }
        // One statement: the rows deleted are exactly the rows inserted. An
        // add committed after its snapshot is neither, and stays in the guest cart.
        sqlx::query(
            "WITH moved AS (
                 DELETE FROM cart_entries WHERE cart_id = $1
                 RETURNING tag, sku, quantity, removed, expires_at)
             INSERT INTO cart_entries (cart_id, tag, sku, quantity, removed, expires_at)
             SELECT $2, tag, sku, quantity, removed, $3 FROM moved
             WHERE expires_at > now()
             ON CONFLICT (cart_id, tag) DO UPDATE
             SET removed = cart_entries.removed OR excluded.removed",
        )
        .bind(from.as_str())
        .bind(into.as_str())
        .bind(expires())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    // ANCHOR_END: pg_merge

    async fn get(&self, cart: &CartId) -> Result<Cart, CartError> {
        let rows = sqlx::query(
            "SELECT tag, sku, quantity, removed FROM cart_entries
             WHERE cart_id = $1 AND expires_at > now()",
        )
        .bind(cart.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Cart::new();
        let mut adds = Vec::new();
        for row in rows {
            let tag = Tag(row.try_get::<uuid::Uuid, _>("tag")?.as_u128());
            if row.try_get::<bool, _>("removed")? {
                out.cancel(tag);
            } else if let (Ok(sku), Ok(q)) = (
                Sku::parse(&row.try_get::<String, _>("sku")?),
                Quantity::new(i64::from(row.try_get::<i32, _>("quantity")?)),
            ) {
                adds.push((tag, sku, q));
            }
        }
        for (tag, sku, q) in adds {
            out.add(tag, sku, q);
        }
        Ok(out)
    }
}
