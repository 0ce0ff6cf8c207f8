//! Rung 6: the SKU's stock split over several rows ("buckets"), so clients
//! that start at different buckets do not queue on one row lock.
//!
//! The catch is the end of the sale. A client whose own bucket is empty
//! does not know that another bucket still has the last unit: without a
//! fallback it reports "sold out" while stock remains (an undersell). The
//! fallback looks for any bucket with stock, skipping the locked ones. A
//! request for several units has a second problem: the units may exist in
//! total but in no single bucket. [`Buckets::rebalance`] fixes that by
//! spreading stock evenly while there is plenty, and pulling it into one
//! bucket when it runs low.

use sqlx::PgPool;

use super::{Attempt, BoxFuture, Rung, rung_sku};

/// Buckets per SKU in the ladder.
pub const BUCKETS: i32 = 8;

/// Below this many units per bucket, [`Buckets::rebalance`] pulls all stock into bucket 0.
pub const LOW_PER_BUCKET: i64 = 4;

/// The bucketed counter.
pub struct Buckets {
    pool: PgPool,
    buckets: i32,
    fallback: bool,
}

impl Buckets {
    /// `buckets` rows per SKU; with `fallback`, an empty own bucket sends the client to the others.
    pub fn new(pool: PgPool, buckets: i32, fallback: bool) -> Self {
        Self {
            pool,
            buckets: buckets.max(1),
            fallback,
        }
    }

    fn sku(&self) -> i64 {
        rung_sku(self.id())
    }

    // ANCHOR: take
    /// Takes `qty` units, starting at the client's own bucket.
    pub async fn take(&self, client: u32, qty: i64) -> anyhow::Result<Attempt> {
        let own = i32::try_from(client % self.buckets.unsigned_abs()).unwrap_or(0);
        let row = sqlx::query(
            "UPDATE hot_buckets SET available = available - $3
              WHERE sku = $1 AND bucket = $2 AND available >= $3 RETURNING bucket",
        )
        .bind(self.sku())
        .bind(own)
        .bind(qty)
        .fetch_optional(&self.pool)
        .await?;
        if row.is_some() {
            return Ok(Attempt::Reserved);
        }
        if !self.fallback {
            // The last-unit problem: our bucket is empty, others may not be.
            return Ok(Attempt::SoldOut);
        }
        // Any other bucket that can serve the request, without waiting on a locked one.
        let row = sqlx::query(
            "UPDATE hot_buckets AS b SET available = b.available - $2
               FROM (SELECT bucket FROM hot_buckets
                      WHERE sku = $1 AND available >= $2
                      ORDER BY available DESC LIMIT 1
                      FOR UPDATE SKIP LOCKED) AS pick
              WHERE b.sku = $1 AND b.bucket = pick.bucket AND b.available >= $2
             RETURNING b.bucket",
        )
        .bind(self.sku())
        .bind(qty)
        .fetch_optional(&self.pool)
        .await?;
        if row.is_some() {
            return Ok(Attempt::Reserved);
        }
        let total: i64 = self.total().await?;
        if total < qty {
            return Ok(Attempt::SoldOut);
        }
        if qty > 1 {
            // Perhaps split over several buckets: no retry would ever find
            // them in one, so gather them.
            return self.gather(qty).await;
        }
        // One unit, in a bucket locked right now: a retry finds it.
        Ok(Attempt::Busy)
    }
    // ANCHOR_END: take

    /// The way out for a request no single bucket can serve: lock the SKU's
    /// buckets that have stock, in bucket order (every gatherer locks in the
    /// same order, so two cannot deadlock), and take `qty` across them, or
    /// answer sold out. It waits for locks rather than skipping them, so its
    /// answer is final: a multi-unit request against fragmented buckets is
    /// served (or refused) instead of told "busy" for as long as the
    /// fragments stay apart.
    async fn gather(&self, qty: i64) -> anyhow::Result<Attempt> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT bucket, available FROM hot_buckets
              WHERE sku = $1 AND available > 0 ORDER BY bucket FOR UPDATE",
        )
        .bind(self.sku())
        .fetch_all(&mut *tx)
        .await?;
        if rows.iter().map(|(_, n)| n).sum::<i64>() < qty {
            return Ok(Attempt::SoldOut);
        }
        let mut left = qty;
        for (bucket, n) in rows {
            let take = n.min(left);
            sqlx::query(
                "UPDATE hot_buckets SET available = available - $3 WHERE sku = $1 AND bucket = $2",
            )
            .bind(self.sku())
            .bind(bucket)
            .bind(take)
            .execute(&mut *tx)
            .await?;
            left -= take;
            if left == 0 {
                break;
            }
        }
        tx.commit().await?;
        Ok(Attempt::Reserved)
    }

    /// Units in all buckets together.
    pub async fn total(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(sum(available), 0)::bigint FROM hot_buckets WHERE sku = $1",
        )
        .bind(self.sku())
        .fetch_one(&self.pool)
        .await?)
    }

    /// The units in each bucket, in bucket order.
    pub async fn layout(&self) -> anyhow::Result<Vec<i64>> {
        Ok(
            sqlx::query_scalar("SELECT available FROM hot_buckets WHERE sku = $1 ORDER BY bucket")
                .bind(self.sku())
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Sets the buckets to exactly these amounts (for tests and setup).
    pub async fn set_layout(&self, units: &[i64]) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM hot_buckets WHERE sku = $1")
            .bind(self.sku())
            .execute(&mut *tx)
            .await?;
        for (b, n) in units.iter().enumerate() {
            sqlx::query("INSERT INTO hot_buckets (sku, bucket, available) VALUES ($1, $2, $3)")
                .bind(self.sku())
                .bind(i32::try_from(b)?)
                .bind(*n)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ANCHOR: rebalance
    /// Locks every bucket of the SKU (in bucket order, so two rebalancers
    /// cannot deadlock) and redistributes the total: evenly while there are
    /// at least [`LOW_PER_BUCKET`] per bucket, otherwise all in bucket 0,
    /// where a multi-unit request can find them together.
    pub async fn rebalance(&self) -> anyhow::Result<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        let current: Vec<i64> = sqlx::query_scalar(
            "SELECT available FROM hot_buckets WHERE sku = $1 ORDER BY bucket FOR UPDATE",
        )
        .bind(self.sku())
        .fetch_all(&mut *tx)
        .await?;
        let k = current.len().max(1) as i64;
        let total: i64 = current.iter().sum();
        let target: Vec<i64> = if total >= k * LOW_PER_BUCKET {
            (0..k)
                .map(|b| total / k + i64::from(b < total % k))
                .collect()
        } else {
            (0..k).map(|b| if b == 0 { total } else { 0 }).collect()
        };
        for (b, n) in target.iter().enumerate() {
            sqlx::query("UPDATE hot_buckets SET available = $3 WHERE sku = $1 AND bucket = $2")
                .bind(self.sku())
                .bind(i32::try_from(b)?)
                .bind(*n)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(target)
    }
    // ANCHOR_END: rebalance
}

impl Rung for Buckets {
    fn id(&self) -> &'static str {
        if self.fallback {
            "buckets-fallback"
        } else {
            "buckets"
        }
    }
    fn setup(&self, units: i64) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let k = i64::from(self.buckets);
            let layout: Vec<i64> = (0..k)
                .map(|b| units / k + i64::from(b < units % k))
                .collect();
            self.set_layout(&layout).await
        })
    }
    fn reserve(&self, client: u32) -> BoxFuture<'_, anyhow::Result<Attempt>> {
        Box::pin(self.take(client, 1))
    }
    fn remaining(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(self.total())
    }
}
