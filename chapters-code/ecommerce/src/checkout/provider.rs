//! The payment provider, and a fake one that is slow, times out or fails on demand.
//!
//! A real provider (Stripe, Adyen) accepts an idempotency key of its own on
//! each charge: a second charge request with the same key returns the first
//! charge instead of making another. The checkout passes `order-<order id>`,
//! fixed when the order is created, so every retry of one order asks for the
//! same charge. That, not luck, is why a retry after a timeout cannot charge
//! twice: exactly once = at-least-once delivery + an idempotent receiver.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::domain::Money;

/// A charge the provider made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// The provider's id for it.
    pub id: String,
    /// What was charged.
    pub amount: Money,
}

// ANCHOR: payment_error
/// What a charge attempt can end in besides a charge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The card was refused: final, nothing was charged.
    #[error("the card was declined: {0}")]
    Declined(String),
    /// The provider answered that it failed and charged nothing: final.
    #[error("the payment provider failed: {0}")]
    Failed(String),
    /// No answer in time: the charge may or may not exist. Retry with the same key.
    #[error("no answer from the payment provider within {0:?}")]
    Timeout(Duration),
}
// ANCHOR_END: payment_error

/// Charges money.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Charges `amount` to `method`; `key` makes a repeated call return the first charge.
    fn charge(
        &self,
        key: &str,
        amount: Money,
        method: &str,
    ) -> impl Future<Output = Result<Charge, PaymentError>> + Send;
}

// ANCHOR: behaviour
/// What the fake does with the next charge call.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Charge and answer at once.
    Succeed,
    /// Charge, then answer after this long (the caller may have given up).
    Slow(Duration),
    /// Refuse the card.
    Decline,
    /// Refuse the card, answering only when the test notifies: a late decline.
    DeclineWhenNotified(Arc<Notify>),
    /// Answer "failed", charge nothing.
    Fail,
    /// Charge, then never answer until released: the test aborts the caller here.
    HangAfterCharge,
}
// ANCHOR_END: behaviour

#[derive(Default)]
struct FakeState {
    /// Charges by idempotency key.
    by_key: HashMap<String, Charge>,
    /// Behaviours for the next calls; `Succeed` when empty.
    script: VecDeque<Behaviour>,
    calls: u64,
}

/// An in-memory provider that counts what it charged.
#[derive(Clone, Default)]
pub struct FakeProvider {
    state: Arc<Mutex<FakeState>>,
    /// Notified when a call reaches `HangAfterCharge`.
    pub hung: Arc<Notify>,
}

impl FakeProvider {
    /// A provider that succeeds until told otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues behaviours for the next calls, in order.
    pub fn script(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.lock().script.extend(behaviours);
    }

    /// Distinct charges made (a repeated key is not a new charge).
    pub fn charges(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Sum of all charges, in minor units.
    pub fn charged_minor(&self) -> i64 {
        self.lock().by_key.values().map(|c| c.amount.minor()).sum()
    }

    /// Charge calls received, repeats included.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        // A panic while holding this lock is a test failure already.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records (or finds) the charge for `key`.
    fn record(&self, key: &str, amount: Money) -> Charge {
        let mut s = self.lock();
        let n = s.by_key.len();
        s.by_key
            .entry(key.to_string())
            .or_insert_with(|| Charge {
                id: format!(
                    "ch_{n:06}_{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                ),
                amount,
            })
            .clone()
    }
}

impl PaymentProvider for FakeProvider {
    async fn charge(
        &self,
        key: &str,
        amount: Money,
        _method: &str,
    ) -> Result<Charge, PaymentError> {
        let behaviour = {
            let mut s = self.lock();
            s.calls += 1;
            // A key already charged is answered from the record, as Stripe does.
            if let Some(c) = s.by_key.get(key) {
                return Ok(c.clone());
            }
            s.script.pop_front().unwrap_or(Behaviour::Succeed)
        };
        match behaviour {
            Behaviour::Succeed => Ok(self.record(key, amount)),
            Behaviour::Slow(d) => {
                let c = self.record(key, amount);
                tokio::time::sleep(d).await;
                Ok(c)
            }
            Behaviour::Decline => Err(PaymentError::Declined("insufficient funds".into())),
            Behaviour::DeclineWhenNotified(answer) => {
                answer.notified().await;
                Err(PaymentError::Declined("insufficient funds".into()))
            }
            Behaviour::Fail => Err(PaymentError::Failed("processing error".into())),
            Behaviour::HangAfterCharge => {
                self.record(key, amount);
                self.hung.notify_one();
                std::future::pending().await
            }
        }
    }
}
