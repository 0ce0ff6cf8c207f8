//! The suite's takeover and purge tests against the statements ecommerce
//! used before it moved onto this block (issue #26, defects 1 and 3),
//! copied here so the tests can be seen failing on them:
//!
//! - the purge deleted `WHERE created_at < $1 AND locked_at IS NULL`, so an
//!   unfinished key unlocked after a provider timeout was deleted, and its
//!   retry became a new order and a second charge;
//! - the lock was a lease on the application's clock with no generation,
//!   and the answer was written unconditionally, so a holder whose lease
//!   was taken over still wrote its answer over the taker's.
//!
//! Each test here is expected to fail; it passes only while the old logic
//! still has the defect, which is the point of keeping it.

mod suite;

use std::time::Duration;

use block_idempotency::{
    ClaimError, Claimed, FinalAnswer, Fingerprint, FinishError, KeyScope, KeyStore, Lock, Purged,
};
use chrono::{TimeDelta, Utc};
use sqlx::{PgPool, Row};
use testkit::TestDb;

/// Ecommerce's old table, without the foreign key to its orders.
const OLD_TABLE: &str = "
CREATE TABLE idempotency_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      text NOT NULL,
    endpoint        text NOT NULL,
    key             text NOT NULL,
    fingerprint     text NOT NULL,
    created_at      timestamptz NOT NULL,
    locked_at       timestamptz,
    recovery_point  text NOT NULL,
    response_status smallint,
    response_body   jsonb,
    CONSTRAINT idempotency_keys_scope UNIQUE (account_id, endpoint, key))";

struct OldEcommerceKeys {
    pool: PgPool,
}

async fn old_ecommerce() -> Option<(TestDb, OldEcommerceKeys)> {
    let db = testkit::postgres(None).await?;
    db.apply_sql(OLD_TABLE).await.expect("old table");
    let pool = db.pool_with(8).await;
    Some((db, OldEcommerceKeys { pool }))
}

impl KeyStore for OldEcommerceKeys {
    /// `begin_checkout`'s INSERT, then `resume`, as they were.
    async fn claim(
        &self,
        k: &KeyScope,
        fingerprint: &Fingerprint,
        lease: Duration,
    ) -> Result<Claimed, ClaimError> {
        let now = Utc::now(); // the application's clock
        let lock_timeout = TimeDelta::from_std(lease).unwrap_or(TimeDelta::MAX);
        let mut tx = self.pool.begin().await?;
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO idempotency_keys (account_id, endpoint, key, fingerprint,
                 created_at, locked_at, recovery_point)
             VALUES ($1, $2, $3, $4, $5, $5, 'order_created')
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .bind(&k.account)
        .bind(k.endpoint)
        .bind(k.key.as_str())
        .bind(fingerprint.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = id {
            tx.commit().await?;
            return Ok(Claimed::New(Lock { id, generation: 0 }));
        }
        let row = sqlx::query(
            "SELECT id, fingerprint, locked_at, response_status, response_body
             FROM idempotency_keys WHERE account_id = $1 AND endpoint = $2 AND key = $3
             FOR UPDATE",
        )
        .bind(&k.account)
        .bind(k.endpoint)
        .bind(k.key.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(ClaimError::KeyInUse)?;
        let stored: String = row.try_get("fingerprint")?;
        if stored != fingerprint.as_str() {
            return Err(ClaimError::KeyReused);
        }
        let status: Option<i16> = row.try_get("response_status")?;
        if let Some(status) = status {
            return Ok(Claimed::Replay(FinalAnswer {
                status: status as u16,
                body: row.try_get("response_body")?,
            }));
        }
        let locked_at: Option<chrono::DateTime<Utc>> = row.try_get("locked_at")?;
        if locked_at.is_some_and(|t| t > now - lock_timeout) {
            return Err(ClaimError::KeyInUse);
        }
        let id: i64 = row.try_get("id")?;
        sqlx::query("UPDATE idempotency_keys SET locked_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Claimed::TakenOver {
            lock: Lock { id, generation: 0 },
            recovery_point: "order_created".into(),
        })
    }

    /// `store_response`, as it was: unconditional.
    async fn finish(&self, lock: Lock, answer: &FinalAnswer) -> Result<(), FinishError> {
        sqlx::query(
            "UPDATE idempotency_keys SET recovery_point = 'finished',
                 locked_at = NULL, response_status = $2, response_body = $3 WHERE id = $1",
        )
        .bind(lock.id)
        .bind(answer.status as i16)
        .bind(&answer.body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `unlock_key`, as it was.
    async fn release(&self, lock: Lock) -> Result<(), FinishError> {
        sqlx::query("UPDATE idempotency_keys SET locked_at = NULL WHERE id = $1")
            .bind(lock.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `purge_keys`, as it was, with the cutoff the demo binary passed.
    async fn purge(&self, retention: Duration) -> Result<Purged, ClaimError> {
        let cutoff = Utc::now() - TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX);
        let done =
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1 AND locked_at IS NULL")
                .bind(cutoff)
                .execute(&self.pool)
                .await?;
        Ok(Purged {
            deleted: done.rows_affected(),
            unfinished_kept: 0,
            more_left: false,
        })
    }
}

// ANCHOR: old_fails
#[tokio::test]
#[should_panic(expected = "the first holder's finish must be refused")]
async fn the_old_lease_lets_a_taken_over_holder_write_its_answer() {
    let Some((_db, store)) = old_ecommerce().await else {
        panic!("the first holder's finish must be refused (skipped: no PostgreSQL)");
    };
    suite::a_takeover_fences_the_first_holder(std::sync::Arc::new(store)).await;
}

#[tokio::test]
#[should_panic(expected = "only the finished key is deleted")]
async fn the_old_purge_deletes_an_unfinished_key() {
    let Some((_db, store)) = old_ecommerce().await else {
        panic!("only the finished key is deleted (skipped: no PostgreSQL)");
    };
    suite::a_purge_keeps_unfinished_keys(std::sync::Arc::new(store)).await;
}
// ANCHOR_END: old_fails
