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
    /// Another call with the same key is still running at the provider
    /// (Stripe's `idempotency_key_in_use`): the outcome is not known yet.
    #[error("a charge with this key is still in progress at the payment provider")]
    InProgress,
}
// ANCHOR_END: payment_error

// ANCHOR: settled
/// How a payment ends when the completer asks for it by its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// A charge exists for the key: the order is paid by it.
    Paid(Charge),
    /// No charge exists, and none ever will: the key is voided, so a late
    /// `charge` with it is refused (as cancelling a Stripe PaymentIntent is).
    Voided,
    /// A charge with the key is running at the provider: ask again later.
    InProgress,
}
// ANCHOR_END: settled

/// Charges money.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Charges `amount` to `method`; `key` makes a repeated call return the first charge.
    fn charge(
        &self,
        key: &str,
        amount: Money,
        method: &str,
    ) -> impl Future<Output = Result<Charge, PaymentError>> + Send;

    /// Settles the payment of `key` one way or the other: its charge, or a
    /// void that refuses every later charge with the key.
    fn settle(&self, key: &str) -> impl Future<Output = Result<Settled, PaymentError>> + Send;
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
    /// Refuse the card, answering only when the test notifies: a late
    /// decline, from a provider that meanwhile answers other calls with the
    /// same key as if this one did not exist (no in-flight lock).
    DeclineWhenNotified(Arc<Notify>),
    /// Answer "failed", charge nothing.
    Fail,
    /// Charge, then never answer until released: the test aborts the caller here.
    HangAfterCharge,
    /// Take the call, never charge and never answer: the key stays in
    /// flight, so a second call or a settle answers "in progress".
    HangBeforeCharge,
}
// ANCHOR_END: behaviour

/// What the fake remembers of a key, as a real provider's idempotency store does.
#[derive(Clone, Debug)]
enum Remembered {
    /// A call with the key is running.
    InFlight,
    /// The key's charge.
    Charged(Charge),
    /// The key's call ended in this refusal (declined or failed), replayed.
    Refused(PaymentError),
    /// Voided by `settle`: nothing charged, every later charge refused.
    Voided,
}

#[derive(Default)]
struct FakeState {
    /// Every key the provider has seen, and how its call ended.
    by_key: HashMap<String, Remembered>,
    /// Behaviours for the next calls; `Succeed` when empty.
    script: VecDeque<Behaviour>,
    calls: u64,
    settles: u64,
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
        self.charged().count()
    }

    /// Sum of all charges, in minor units.
    pub fn charged_minor(&self) -> i64 {
        self.charged().map(|c| c.amount.minor()).sum()
    }

    /// The charge made with `key`, if any.
    pub fn charge_of(&self, key: &str) -> Option<Charge> {
        match self.lock().by_key.get(key) {
            Some(Remembered::Charged(c)) => Some(c.clone()),
            _ => None,
        }
    }

    /// Settle calls received.
    pub fn settles(&self) -> u64 {
        self.lock().settles
    }

    /// Keys voided by `settle`.
    pub fn voided(&self) -> usize {
        let s = self.lock();
        s.by_key
            .values()
            .filter(|r| matches!(r, Remembered::Voided))
            .count()
    }

    fn charged(&self) -> std::vec::IntoIter<Charge> {
        let s = self.lock();
        let v: Vec<Charge> = s
            .by_key
            .values()
            .filter_map(|r| match r {
                Remembered::Charged(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        v.into_iter()
    }

    /// Charge calls received, repeats included.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        // A panic while holding this lock is a test failure already.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the charge for `key` (the call holds the key in flight).
    fn record(&self, key: &str, amount: Money) -> Charge {
        let mut s = self.lock();
        let n = s.by_key.len();
        let c = Charge {
            id: format!(
                "ch_{n:06}_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            amount,
        };
        s.by_key
            .insert(key.to_string(), Remembered::Charged(c.clone()));
        c
    }

    /// Records how the call with `key` ended, and returns it.
    fn refuse(&self, key: &str, e: PaymentError) -> Result<Charge, PaymentError> {
        let mut s = self.lock();
        // A charge made meanwhile (only without an in-flight lock) stands.
        if !matches!(s.by_key.get(key), Some(Remembered::Charged(_))) {
            s.by_key
                .insert(key.to_string(), Remembered::Refused(e.clone()));
        }
        Err(e)
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
            // A key seen before is answered from the record, as Stripe does:
            // the same charge, the same refusal, or "in progress".
            match s.by_key.get(key) {
                Some(Remembered::Charged(c)) => return Ok(c.clone()),
                Some(Remembered::Refused(e)) => return Err(e.clone()),
                Some(Remembered::InFlight) => return Err(PaymentError::InProgress),
                Some(Remembered::Voided) => {
                    return Err(PaymentError::Declined("the payment was voided".into()));
                }
                None => {}
            }
            let next = s.script.pop_front().unwrap_or(Behaviour::Succeed);
            // A late decline models a provider with no in-flight lock (the
            // worst case the key's fence is for): the key stays answerable.
            if !matches!(next, Behaviour::DeclineWhenNotified(_)) {
                s.by_key.insert(key.to_string(), Remembered::InFlight);
            }
            next
        };
        match behaviour {
            Behaviour::Succeed => Ok(self.record(key, amount)),
            Behaviour::Slow(d) => {
                let c = self.record(key, amount);
                tokio::time::sleep(d).await;
                Ok(c)
            }
            Behaviour::Decline => {
                self.refuse(key, PaymentError::Declined("insufficient funds".into()))
            }
            Behaviour::DeclineWhenNotified(answer) => {
                answer.notified().await;
                self.refuse(key, PaymentError::Declined("insufficient funds".into()))
            }
            Behaviour::Fail => self.refuse(key, PaymentError::Failed("processing error".into())),
            Behaviour::HangAfterCharge => {
                self.record(key, amount);
                self.hung.notify_one();
                std::future::pending().await
            }
            Behaviour::HangBeforeCharge => {
                self.hung.notify_one();
                std::future::pending().await
            }
        }
    }

    // ANCHOR: fake_settle
    async fn settle(&self, key: &str) -> Result<Settled, PaymentError> {
        let mut s = self.lock();
        s.settles += 1;
        match s.by_key.get(key) {
            Some(Remembered::Charged(c)) => Ok(Settled::Paid(c.clone())),
            Some(Remembered::InFlight) => Ok(Settled::InProgress),
            // Refused or never seen: nothing was charged, and the void makes
            // sure nothing will be.
            Some(Remembered::Refused(_) | Remembered::Voided) | None => {
                s.by_key.insert(key.to_string(), Remembered::Voided);
                Ok(Settled::Voided)
            }
        }
    }
    // ANCHOR_END: fake_settle
}
