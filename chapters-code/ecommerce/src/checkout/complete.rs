//! The completer: ends the checkouts nobody finished.
//!
//! A checkout whose request died after phase 1 (a crash, a provider
//! timeout, a client that never retried) leaves its order in
//! `pending_payment` with its stock reserved. The completer finds those
//! orders once they are older than [`GRACE`] by the database's clock, and
//! for each:
//!
//! 1. **takes the key over by generation** (the idempotency block's fence),
//!    only when no lease on it still runs, so a late phase 2 of the dead
//!    request, or of a second completer, writes nothing;
//! 2. **asks the provider to settle** the payment by its key
//!    (`order-<id>`): the charge if there is one, else a void that refuses
//!    every later charge with that key, so no charge can land after the
//!    order was failed;
//! 3. **runs the checkout's own phase 2** with that outcome: paid (and the
//!    receipt job staged), or failed with its stock released and the key's
//!    answer `410 checkout-expired`. Phase 2 is fenced on the generation and
//!    guarded on `pending_payment`, and a receipt job is unique per order.
//!
//! "In progress" at the provider, or any error, releases the key and leaves
//! the order for the next pass. The completer runs on PostgreSQL only: the
//! in-memory store has no second process to finish after.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use uuid::Uuid;

use super::provider::{PaymentError, PaymentProvider, Settled};
use super::{Charged, CheckoutError, Hooks, NoHooks, PROVIDER_TIMEOUT, Point};
use crate::idempotency::{Lock, lease};
use crate::store::{PgStore, Store, StoreError};

/// How old an unfinished order must be before the completer settles it:
/// twice the key's lease, so the client's own retry (which resumes the
/// same order) normally comes first.
pub const GRACE: Duration = Duration::from_secs(60);
/// Orders settled per pass, at most.
pub const BATCH: i64 = 100;
/// How often the binary's completer runs a pass.
pub const EVERY: Duration = Duration::from_secs(30);

// ANCHOR: candidates_sql
/// Orders waiting for an outcome for longer than the grace, by the
/// database's clock, whose key (if they have one) no lease holds.
pub const CANDIDATES_SQL: &str = "\
SELECT o.id, k.id AS key_id
FROM orders AS o
LEFT JOIN idempotency_keys AS k ON k.order_id = o.id AND k.finished_at IS NULL
WHERE o.status = 'pending_payment'
  AND o.reserved_at < clock_timestamp() - $1 * interval '1 millisecond'
  AND (k.locked_until IS NULL OR k.locked_until <= clock_timestamp())
ORDER BY o.reserved_at
LIMIT $2";

/// Takes an unfinished key over, only if no lease on it runs: the
/// generation goes up, so the earlier holder's phase 2 is fenced off. A
/// second completer waits on the row lock, then finds the new lease and
/// gets no row.
pub const TAKE_OVER_SQL: &str = "\
UPDATE idempotency_keys
SET generation = generation + 1,
    locked_until = clock_timestamp() + $2 * interval '1 millisecond'
WHERE id = $1 AND finished_at IS NULL
  AND (locked_until IS NULL OR locked_until <= clock_timestamp())
RETURNING generation";
// ANCHOR_END: candidates_sql

/// What one order's completion ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The provider had the charge: the order is paid.
    Paid,
    /// The provider had no charge and voided the key: the order failed and its stock is back.
    Voided,
    /// The provider's charge is still running: left for the next pass.
    InProgress,
    /// A lease on the key still runs (a retry, another completer): left alone.
    Held,
    /// Another finisher committed first (a fenced or already finished phase 2): nothing written.
    Lost,
}

/// Counts of a pass, by [`Completion`]; `failed` counts errors (left for the next pass).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Orders paid.
    pub paid: u32,
    /// Orders voided.
    pub voided: u32,
    /// Orders whose charge was still running.
    pub in_progress: u32,
    /// Orders whose key was held.
    pub held: u32,
    /// Orders another finisher finished first.
    pub lost: u32,
    /// Orders whose completion failed.
    pub failed: u32,
}

/// The completer over a PostgreSQL store and a provider.
pub struct Completer<P> {
    /// Orders and keys.
    pub store: PgStore,
    /// Who is asked how each payment ended.
    pub provider: Arc<P>,
    /// Test hooks ([`Point::AfterTakeOver`], [`Point::AfterSettle`], phase 2's).
    pub hooks: Arc<dyn Hooks>,
    /// How old an unfinished order must be.
    pub grace: Duration,
    /// How long to wait for the provider.
    pub provider_timeout: Duration,
}

impl<P: PaymentProvider> Completer<P> {
    /// A completer with the production grace and no hooks.
    pub fn new(store: PgStore, provider: Arc<P>) -> Self {
        Self {
            store,
            provider,
            hooks: Arc::new(NoHooks),
            grace: GRACE,
            provider_timeout: PROVIDER_TIMEOUT,
        }
    }

    // ANCHOR: pass
    /// Settles up to [`BATCH`] unfinished orders, one at a time.
    pub async fn pass(&self) -> Result<Pass, StoreError> {
        let grace = i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        let rows = sqlx::query(CANDIDATES_SQL)
            .bind(grace)
            .bind(BATCH)
            .fetch_all(self.store.pool())
            .await?;
        let mut pass = Pass::default();
        for row in rows {
            let order_id: Uuid = row.try_get("id")?;
            let key_id: Option<i64> = row.try_get("key_id")?;
            match self.complete(order_id, key_id).await {
                Ok(Completion::Paid) => pass.paid += 1,
                Ok(Completion::Voided) => pass.voided += 1,
                Ok(Completion::InProgress) => pass.in_progress += 1,
                Ok(Completion::Held) => pass.held += 1,
                Ok(Completion::Lost) => pass.lost += 1,
                Err(e) => {
                    // Left as it was (or with its lease released): the next pass retries.
                    tracing::warn!(%order_id, error = %e, "completing an order failed");
                    pass.failed += 1;
                }
            }
        }
        Ok(pass)
    }
    // ANCHOR_END: pass

    // ANCHOR: complete
    /// Settles one unfinished order, taking its key (if any) over first.
    pub async fn complete(
        &self,
        order_id: Uuid,
        key_id: Option<i64>,
    ) -> Result<Completion, CheckoutError> {
        let lock = match key_id {
            Some(id) => {
                let generation: Option<i64> = sqlx::query_scalar(TAKE_OVER_SQL)
                    .bind(id)
                    .bind(i64::try_from(lease().as_millis()).unwrap_or(i64::MAX))
                    .fetch_optional(self.store.pool())
                    .await
                    .map_err(StoreError::from)?;
                match generation {
                    Some(generation) => Some(Lock { id, generation }),
                    None => return Ok(Completion::Held),
                }
            }
            // A keyless checkout has no fence: phase 2's `pending_payment`
            // guard is what keeps two finishers from both applying.
            None => None,
        };
        self.hooks.reached(Point::AfterTakeOver).await;
        let settled = tokio::time::timeout(
            self.provider_timeout,
            self.provider.settle(&format!("order-{order_id}")),
        )
        .await
        .unwrap_or(Err(PaymentError::Timeout(self.provider_timeout)));
        self.hooks.reached(Point::AfterSettle).await;
        let charged = match settled {
            Ok(Settled::Paid(charge)) => Charged::Paid(charge.id),
            Ok(Settled::Voided) => Charged::Voided,
            Ok(Settled::InProgress) => {
                self.release(lock).await?;
                return Ok(Completion::InProgress);
            }
            Err(e) => {
                self.release(lock).await?;
                return Err(CheckoutError::Payment(e));
            }
        };
        let now = chrono::Utc::now();
        match self
            .store
            .finish_checkout(lock, order_id, &charged, now, &*self.hooks)
            .await
        {
            Ok(_) if matches!(charged, Charged::Paid(_)) => Ok(Completion::Paid),
            Ok(_) => Ok(Completion::Voided),
            // Fenced, or the order was already finished: nothing was written.
            Err(CheckoutError::KeyInUse) => Ok(Completion::Lost),
            Err(e) => {
                self.release(lock).await?;
                Err(e)
            }
        }
    }
    // ANCHOR_END: complete

    async fn release(&self, lock: Option<Lock>) -> Result<(), StoreError> {
        match lock {
            Some(lock) => self.store.release_key(lock).await,
            None => Ok(()),
        }
    }
}
