//! A Redis counter in front of the PostgreSQL ledger, and the job that
//! repairs the two when they disagree.
//!
//! A reserve is three writes to two systems: a Lua script decrements the
//! counter *and* notes the claim in a `pending` hash (one atomic step in
//! Redis), PostgreSQL records the claim, and the pending note is removed.
//! A crash between the first two leaves Redis with a unit the ledger never
//! saw: the customer got no reservation, yet the unit is gone from sale.
//! That is the gap Shopify's write-up names as the reason they left Redis.
//!
//! [`RedisFront::reconcile`] closes it. For each pending claim older than a
//! grace period it inserts a *voided* claim row in PostgreSQL. If the row
//! holding the id is voided (this insert, or another reconciler's), the
//! writer never arrived (or is late: the primary key now refuses it), and a
//! second script gives the unit back to Redis, once: only the caller that
//! removes the pending note increments. If the row is the writer's, the
//! claim was real and only the note is removed.
//!
//! That repairs Redis *behind* the truth by the claims it saw start. Redis
//! can also run *ahead*: a failover to a replica that had not received the
//! last decrements, a restart from a snapshot or from an AOF fsynced every
//! second loses acknowledged decrements, and the counter then hands out
//! units the ledger already gave away. [`RedisFront::reconcile`] therefore
//! ends with [`RedisFront::repair_counter`], which compares the counter
//! with the ledger in both directions and corrects it by an amount that
//! claims in flight can only make smaller, never larger (see its comment).
//!
//! Keys are hash-tagged, `inv:{sku}:available` and `inv:{sku}:pending`, so
//! that under Redis Cluster both live in one slot and one script may touch both.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ladder::rung_sku;

// ANCHOR: claim_lua
/// Decrement if enough, and note the claim as pending, atomically.
/// KEYS: counter, pending hash. ARGV: qty, claim id, now (ms). Returns the
/// units left, or -1 when there were not enough.
pub const CLAIM_LUA: &str = r"
local available = tonumber(redis.call('GET', KEYS[1]) or '0')
local qty = tonumber(ARGV[1])
if available < qty then return -1 end
redis.call('DECRBY', KEYS[1], qty)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1] .. ':' .. ARGV[3])
return available - qty
";
// ANCHOR_END: claim_lua

// ANCHOR: compensate_lua
/// Give a dead claim's units back, at most once: only the caller that
/// removes the pending note increments. KEYS: counter, pending. ARGV: id, qty.
pub const COMPENSATE_LUA: &str = r"
if redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[2])
end
return -1
";
// ANCHOR_END: compensate_lua

/// Units received minus the claims PostgreSQL holds (`$1`: the SKU).
const DURABLE_SQL: &str = "
SELECT h.available - COALESCE((SELECT sum(qty) FROM redis_claims
                                WHERE sku = h.sku AND NOT voided), 0)::bigint
  FROM hot_stock AS h WHERE h.sku = $1";

/// The per-SKU lock that serialises counter repairs (`$1`: the SKU), held
/// until the end of its transaction; false when another pass holds it.
const REPAIR_LOCK_SQL: &str =
    "SELECT pg_try_advisory_xact_lock(hashtextextended('inventory.repair_counter', $1))";

/// Where a test makes the next reserve stop, as if the process died there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FailPoint {
    /// Run to the end.
    None = 0,
    /// After Redis decremented, before PostgreSQL recorded the claim.
    AfterRedis = 1,
    /// After PostgreSQL recorded the claim, before the pending note was removed.
    AfterPostgres = 2,
}

/// A reserve that stopped at a [`FailPoint`] (a simulated crash).
#[derive(Debug, thiserror::Error)]
#[error("simulated crash {0:?}")]
pub struct Crashed(pub FailPoint);

/// What one reconciliation pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Pending notes whose claim PostgreSQL had: note removed.
    pub completed: u64,
    /// Claims PostgreSQL never got: voided there, units given back in Redis.
    pub voided: u64,
    /// Units given back.
    pub units_restored: i64,
    /// The correction of a counter that had drifted from the ledger:
    /// negative when Redis was ahead (lost decrements), positive when behind.
    pub counter_corrected: i64,
}

/// The two systems' view of one SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Views {
    /// Units Redis would still hand out.
    pub redis_available: i64,
    /// Units received minus claims PostgreSQL recorded (not voided).
    pub durable_available: i64,
    /// Units in pending notes (claims between the first and last write).
    pub pending: i64,
}

/// The Redis counter and the PostgreSQL claims table of one SKU.
#[derive(Clone)]
pub struct RedisFront {
    redis: MultiplexedConnection,
    pool: PgPool,
    counter_key: String,
    pending_key: String,
    sku: i64,
    fail: Arc<AtomicU8>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl RedisFront {
    /// The front of the ladder's Redis SKU, with keys under `prefix`
    /// (PostgreSQL needs `sql/ladder.sql`).
    pub fn new(redis: MultiplexedConnection, pool: PgPool, prefix: &str) -> Self {
        let sku = rung_sku("redis");
        Self {
            redis,
            pool,
            // Hash tag `{sku}`: both keys in one Redis Cluster slot.
            counter_key: format!("{prefix}inv:{{{sku}}}:available"),
            pending_key: format!("{prefix}inv:{{{sku}}}:pending"),
            sku,
            fail: Arc::new(AtomicU8::new(FailPoint::None as u8)),
        }
    }

    /// Makes the next reserve stop at `point`.
    pub fn fail_next(&self, point: FailPoint) {
        self.fail.store(point as u8, Ordering::SeqCst);
    }

    fn take_fail(&self) -> FailPoint {
        match self.fail.swap(FailPoint::None as u8, Ordering::SeqCst) {
            1 => FailPoint::AfterRedis,
            2 => FailPoint::AfterPostgres,
            _ => FailPoint::None,
        }
    }

    /// Puts `units` in stock in both systems and forgets every claim.
    pub async fn setup(&self, units: i64) -> anyhow::Result<()> {
        let mut r = self.redis.clone();
        let _: () = redis::pipe()
            .atomic()
            .set(&self.counter_key, units)
            .del(&self.pending_key)
            .query_async(&mut r)
            .await?;
        sqlx::query("DELETE FROM redis_claims WHERE sku = $1")
            .bind(self.sku)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO hot_stock (sku, available) VALUES ($1, $2)
             ON CONFLICT (sku) DO UPDATE SET available = EXCLUDED.available",
        )
        .bind(self.sku)
        .bind(units)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ANCHOR: reserve
    /// Takes `qty` units: `Some(claim id)`, or `None` when Redis says sold out.
    pub async fn reserve(&self, qty: i64) -> anyhow::Result<Option<Uuid>> {
        let id = Uuid::new_v4();
        let fail = self.take_fail();
        if self.claim_in_redis(id, qty).await? < 0 {
            return Ok(None);
        }
        if fail == FailPoint::AfterRedis {
            return Err(Crashed(FailPoint::AfterRedis).into());
        }
        if !self.record_in_postgres(id, qty).await? {
            // The reconciler voided this claim first: we were too slow.
            anyhow::bail!("claim {id} was voided by reconciliation before it was recorded");
        }
        if fail == FailPoint::AfterPostgres {
            return Err(Crashed(FailPoint::AfterPostgres).into());
        }
        self.clear_pending(id).await?;
        Ok(Some(id))
    }
    // ANCHOR_END: reserve

    /// Write 1: the Lua decrement and pending note. Units left, or -1.
    pub async fn claim_in_redis(&self, id: Uuid, qty: i64) -> anyhow::Result<i64> {
        let mut r = self.redis.clone();
        Ok(redis::Script::new(CLAIM_LUA)
            .key(&self.counter_key)
            .key(&self.pending_key)
            .arg(qty)
            .arg(id.to_string())
            .arg(now_ms())
            .invoke_async(&mut r)
            .await?)
    }

    /// Write 2: the durable claim. False when a voided row already holds the id.
    pub async fn record_in_postgres(&self, id: Uuid, qty: i64) -> anyhow::Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO redis_claims (id, sku, qty) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(self.sku)
        .bind(qty)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Write 3: the claim is durable; forget the note.
    pub async fn clear_pending(&self, id: Uuid) -> anyhow::Result<()> {
        let mut r = self.redis.clone();
        let _: i64 = redis::cmd("HDEL")
            .arg(&self.pending_key)
            .arg(id.to_string())
            .query_async(&mut r)
            .await?;
        Ok(())
    }

    // ANCHOR: reconcile
    /// Repairs every pending claim older than `grace`.
    pub async fn reconcile(&self, grace: Duration) -> anyhow::Result<Reconciled> {
        let mut r = self.redis.clone();
        let pending: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&self.pending_key)
            .query_async(&mut r)
            .await?;
        let cutoff = now_ms() - i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let mut out = Reconciled::default();
        for (id_text, note) in pending {
            // Values read back from Redis are parsed like input: garbage is skipped.
            let Ok(id) = Uuid::parse_str(&id_text) else {
                continue;
            };
            let Some((qty, at)) = note.split_once(':') else {
                continue;
            };
            let (Ok(qty), Ok(at)) = (qty.parse::<i64>(), at.parse::<i64>()) else {
                continue;
            };
            if at > cutoff || qty <= 0 {
                continue; // in flight: its writer may still be on its way
            }
            // Void the claim unless its writer got there first. The row that
            // ends up holding the id says which: ours, or another
            // reconciler's, is voided; the writer's is not.
            let voided: bool = sqlx::query_scalar(
                "INSERT INTO redis_claims (id, sku, qty, voided) VALUES ($1, $2, $3, true)
                 ON CONFLICT (id) DO UPDATE SET voided = redis_claims.voided
                 RETURNING voided",
            )
            .bind(id)
            .bind(self.sku)
            .bind(qty)
            .fetch_one(&self.pool)
            .await?;
            if voided {
                // Give back, guarded by the note: of several reconcilers (or a
                // retry after one died here), only the one that removes the
                // note increments.
                let left: i64 = redis::Script::new(COMPENSATE_LUA)
                    .key(&self.counter_key)
                    .key(&self.pending_key)
                    .arg(id_text.as_str())
                    .arg(qty)
                    .invoke_async(&mut r)
                    .await?;
                if left >= 0 {
                    out.voided += 1;
                    out.units_restored += qty;
                }
            } else {
                self.clear_pending(id).await?;
                out.completed += 1;
            }
        }
        out.counter_corrected = self.repair_counter().await?;
        Ok(out)
    }
    // ANCHOR_END: reconcile

    /// The keys, for the tests.
    pub fn keys(&self) -> (&str, &str) {
        (&self.counter_key, &self.pending_key)
    }

    // ANCHOR: repair_counter
    /// Compares the counter with the ledger and corrects it; the correction.
    ///
    /// Healthy, `counter = durable - unrecorded`, where `unrecorded` is the
    /// units of pending claims PostgreSQL does not hold (yet). The two
    /// systems cannot be read at one instant, so each direction is judged
    /// with the reads ordered so that claims in flight can only hide drift,
    /// never invent it:
    ///
    /// - *ahead*: ledger snapshot first, then Redis. A claim recorded
    ///   between the two lowers the counter but not the snapshot, which
    ///   looks like "behind", never like "ahead".
    /// - *behind*: Redis first, then a new ledger snapshot. A claim
    ///   decremented after the Redis read lowers the ledger but not the
    ///   counter read, which looks like "ahead", never like "behind".
    ///
    /// So each measured gap is at most the real one, and a correction by it
    /// never overshoots; what it misses, the next pass finds.
    ///
    /// That holds for one pass at a time. Two passes that both read the
    /// counter before either writes would each apply the whole gap (review
    /// H1: a counter behind by 3 was raised by 6, 9, 18), so the repair is
    /// serialised per SKU by a transaction-scoped advisory lock held from
    /// the first snapshot through the Redis write. A pass that does not get
    /// it skips the repair (answers 0): another pass is doing it. The lock
    /// goes with its transaction if this pass fails or is dropped midway.
    pub async fn repair_counter(&self) -> anyhow::Result<i64> {
        let mut guard = self.pool.begin().await?;
        let mine: bool = sqlx::query_scalar(REPAIR_LOCK_SQL)
            .bind(self.sku)
            .fetch_one(&mut *guard)
            .await?;
        if !mine {
            return Ok(0);
        }
        let corrected = self.repair_counter_locked().await?;
        guard.commit().await?;
        Ok(corrected)
    }
    // ANCHOR_END: repair_counter

    /// The repair itself; the caller holds the SKU's repair lock.
    async fn repair_counter_locked(&self) -> anyhow::Result<i64> {
        let mut r = self.redis.clone();
        // Snapshot 1: REPEATABLE READ, so both queries see the ledger as it
        // was at the first one, before the Redis read.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        let durable_before = self.durable_in(&mut tx).await?;
        let (counter, notes): (Option<i64>, Vec<(String, String)>) = redis::pipe()
            .atomic()
            .get(&self.counter_key)
            .hgetall(&self.pending_key)
            .query_async(&mut r)
            .await?;
        let counter = counter.unwrap_or(0);
        // Pending notes, parsed like input (garbage is skipped).
        let pending: Vec<(Uuid, i64)> = notes
            .iter()
            .filter_map(|(id, note)| {
                let qty = note.split_once(':')?.0.parse::<i64>().ok()?;
                Some((Uuid::parse_str(id).ok()?, qty))
            })
            .collect();
        let ids: Vec<Uuid> = pending.iter().map(|(id, _)| *id).collect();
        let pending_units: i64 = pending.iter().map(|(_, q)| q).sum();
        let recorded_before = self.recorded_in(&mut tx, &ids).await?;
        tx.commit().await?;
        let ahead = counter - (durable_before - (pending_units - recorded_before));
        if ahead > 0 {
            let _: i64 = redis::cmd("DECRBY")
                .arg(&self.counter_key)
                .arg(ahead)
                .query_async(&mut r)
                .await?;
            return Ok(-ahead);
        }
        // Snapshot 2, after the Redis read, again one snapshot for both
        // queries: read apart, a claim recorded between them would count as
        // recorded without lowering `durable_after`, and look like "behind"
        // (the reconciliation test during a sell-out caught exactly that).
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        let durable_after = self.durable_in(&mut tx).await?;
        let recorded_after = self.recorded_in(&mut tx, &ids).await?;
        tx.commit().await?;
        let behind = (durable_after - (pending_units - recorded_after)) - counter;
        if behind > 0 {
            let _: i64 = redis::cmd("INCRBY")
                .arg(&self.counter_key)
                .arg(behind)
                .query_async(&mut r)
                .await?;
            return Ok(behind);
        }
        Ok(0)
    }

    async fn durable_in(&self, c: &mut sqlx::PgConnection) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(DURABLE_SQL)
            .bind(self.sku)
            .fetch_one(c)
            .await?)
    }

    /// Units of the claims `ids` that PostgreSQL holds as real (not voided).
    async fn recorded_in(&self, c: &mut sqlx::PgConnection, ids: &[Uuid]) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(sum(qty), 0)::bigint FROM redis_claims
              WHERE id = ANY($1) AND NOT voided",
        )
        .bind(ids)
        .fetch_one(c)
        .await?)
    }

    /// Units received minus the claims PostgreSQL holds: the durable truth.
    pub async fn durable_remaining(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(DURABLE_SQL)
            .bind(self.sku)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Both systems' numbers, for the reconciliation tests.
    pub async fn views(&self) -> anyhow::Result<Views> {
        let mut r = self.redis.clone();
        let redis_available: Option<i64> = redis::cmd("GET")
            .arg(&self.counter_key)
            .query_async(&mut r)
            .await?;
        let notes: Vec<String> = redis::cmd("HVALS")
            .arg(&self.pending_key)
            .query_async(&mut r)
            .await?;
        let pending = notes
            .iter()
            .filter_map(|n| n.split_once(':')?.0.parse::<i64>().ok())
            .sum();
        Ok(Views {
            redis_available: redis_available.unwrap_or(0),
            durable_available: self.durable_remaining().await?,
            pending,
        })
    }
}
