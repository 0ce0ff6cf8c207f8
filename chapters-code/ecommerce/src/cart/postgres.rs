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

/// Takes the carts' advisory locks until the transaction ends, in one order
/// (sorted), so two merges over the same carts cannot deadlock. Two carts
/// whose ids hash alike only wait for each other.
async fn lock_carts(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    carts: &[&CartId],
) -> Result<(), sqlx::Error> {
    let mut ids: Vec<&str> = carts.iter().map(|c| c.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cart_entries'), hashtext($1))")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl CartStore for PgCarts {
    async fn add(
        &self,
        cart: &CartId,
        tag: Tag,
        sku: &Sku,
        quantity: Quantity,
    ) -> Result<(), CartError> {
        // The cart's lock makes the count and the insert one step: adds and
        // merges into this cart wait for each other, so the cap is exact.
        let mut tx = self.pool.begin().await?;
        lock_carts(&mut tx, &[cart]).await?;
        let added = sqlx::query(
            "INSERT INTO cart_entries (cart_id, tag, sku, quantity, expires_at)
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
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added == 0 {
            // Either a retried add (its tag is there) or a full cart.
            let retried: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM cart_entries WHERE cart_id = $1 AND tag = $2)",
            )
            .bind(cart.as_str())
            .bind(uuid::Uuid::from_u128(tag.0))
            .fetch_one(&mut *tx)
            .await?;
            tx.rollback().await?;
            return if retried {
                Ok(())
            } else {
                Err(CartError::Full)
            };
        }
        // Only a write that happened moves the whole cart's expiry, as the
        // Redis key's TTL does: a refused add does not keep a full cart alive.
        sqlx::query(
            "UPDATE cart_entries SET expires_at = $2 WHERE cart_id = $1 AND expires_at > now()",
        )
        .bind(cart.as_str())
        .bind(expires())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
        // Both carts' locks, so the cap checked is the cap kept: no add or
        // other merge into either cart runs between the count and the move.
        let mut tx = self.pool.begin().await?;
        lock_carts(&mut tx, &[from, into]).await?;
        let total: i64 = sqlx::query_scalar(
            // A tag in both carts is one entry after the merge.
            "SELECT count(DISTINCT tag) FROM cart_entries
             WHERE cart_id IN ($1, $2) AND expires_at > now()",
        )
        .bind(from.as_str())
        .bind(into.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if total > MAX_CART_ENTRIES as i64 {
            tx.rollback().await?;
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
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
    // ANCHOR_END: pg_merge

    async fn clear(&self, cart: &CartId) -> Result<(), CartError> {
        sqlx::query("DELETE FROM cart_entries WHERE cart_id = $1")
            .bind(cart.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

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
