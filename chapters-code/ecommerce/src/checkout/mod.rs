//! Checkout: snapshot prices, reserve stock, charge, record the order, once.
//!
//! The design is Brandur Leach's "Implementing Stripe-like Idempotency Keys
//! in Postgres" (<https://brandur.org/idempotency-keys>): the work between
//! two calls to a foreign system (here, the payment provider) is an *atomic
//! phase*, one PostgreSQL transaction, and each phase ends by writing a
//! *recovery point* on the idempotency key's row. A request that dies
//! anywhere leaves the key at the last recovery point it committed; the
//! retry reads it and continues from there.
//!
//! | phase | one transaction | recovery point after |
//! |---|---|---|
//! | 1 | claim the key, price the lines, check the quote, reserve stock, insert the order | `order_created` |
//! | - | charge the provider with the key `order-<id>` (foreign call, no transaction) | - |
//! | 2 | mark the order paid (or failed, releasing stock), stage the receipt job, store the response | `finished` |
//!
//! The key and the order are written in the *same* transaction, so there
//! is no moment where one exists without the other. A key kept in Redis
//! next to an order in PostgreSQL would be two writes to two systems: a
//! crash between them leaves an order without a key (the retry creates a
//! second order) or a key without an order (the retry is told "done" for an
//! order that does not exist).

pub mod breaker;
pub mod complete;
pub mod provider;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Currency, Money, PricingError, Promotion, Quantity, Quote, Sku};
use crate::idempotency::{KeyScope, Lock, fingerprint};
use crate::problem::Problem;
use crate::store::{Store, StoreError};
use breaker::{Breaker, Outcome, Refused};
use provider::{PaymentError, PaymentProvider};

/// The endpoint name keys are scoped by.
pub const CHECKOUT_ENDPOINT: &str = "POST /checkout";
/// How long the checkout waits for the provider before answering 503.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(2);

// ANCHOR: request
/// A checkout request, parsed: what the shopper saw on the review page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRequest {
    /// Sorted by SKU, each SKU once.
    pub lines: Vec<(Sku, Quantity)>,
    /// The currency the shopper was quoted in.
    pub currency: Currency,
    /// The total the shopper agreed to pay, in minor units.
    pub expected_total_minor: i64,
    /// A promotion code, if any.
    pub promotion: Option<String>,
    /// The provider's token for the card.
    pub payment_method: String,
}
// ANCHOR_END: request

/// The promotion codes the shop honours.
pub const PROMOTIONS: &[(&str, Promotion)] = &[
    ("SPRING10", Promotion::PercentOff { bp: 1_000 }),
    ("HALF", Promotion::PercentOff { bp: 5_000 }),
];

// ANCHOR: promotion_limit
/// Checkouts naming a promotion code that one account may send at once.
pub const PROMOTION_BURST: u32 = 10;
/// Then one more per this long: guessing a code from a list is hopeless.
pub const PROMOTION_PERIOD: Duration = Duration::from_secs(60);
/// Accounts whose attempts are remembered (the block's bound on memory).
pub const PROMOTION_ACCOUNTS: usize = 100_000;

/// Attempts with a promotion code, per account: the rate-limiter block's
/// bounded keyed buckets.
pub type PromotionAttempts = block_rate_limiter::KeyedBuckets<String>;

/// The default promotion limit.
pub fn promotion_attempts() -> PromotionAttempts {
    let quota = block_rate_limiter::Quota::with_period(PROMOTION_PERIOD, PROMOTION_BURST)
        .unwrap_or_else(|_| unreachable!("a valid constant quota"));
    block_rate_limiter::KeyedBuckets::new(quota, PROMOTION_ACCOUNTS)
}
// ANCHOR_END: promotion_limit

/// The promotion for `code`, if it exists.
pub fn promotion(code: &str) -> Option<Promotion> {
    PROMOTIONS.iter().find(|(c, _)| *c == code).map(|(_, p)| *p)
}

/// An order as the API returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Its id.
    pub id: Uuid,
    /// Whose.
    pub account: String,
    /// `pending_payment`, `paid` or `payment_failed`.
    pub status: String,
    /// The snapshot of prices, discount and tax taken at checkout.
    pub quote: Quote,
    /// The provider's charge, once paid.
    pub charge_id: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

// ANCHOR: stored_response
/// A final answer: status and body, replayed to every retry of the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (an order, or a problem).
    pub body: serde_json::Value,
}
// ANCHOR_END: stored_response

impl StoredResponse {
    /// A problem as a final answer.
    pub fn problem(p: &Problem) -> Self {
        Self {
            status: p.status,
            body: serde_json::to_value(p).unwrap_or_default(),
        }
    }

    /// A created order as a final answer.
    pub fn created(order: &Order) -> Self {
        Self {
            status: 201,
            body: serde_json::to_value(order).unwrap_or_default(),
        }
    }
}

/// What checkout answered, and whether it was a replay.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// Status and body.
    pub response: StoredResponse,
    /// True when this repeats an earlier request's answer.
    pub replayed: bool,
}

// ANCHOR: outcomes
/// What phase 1 found or did.
#[derive(Debug)]
pub enum Begun {
    /// An order waits for its charge (created now, or left by a request that died).
    Charge {
        /// The hold on the key (row and generation), when the request had a key.
        lock: Option<Lock>,
        /// The order.
        order_id: Uuid,
        /// Its total.
        amount: Money,
        /// True when a dead request's order is being resumed.
        resumed: bool,
    },
    /// The key already has a final answer.
    Replay(StoredResponse),
    /// A final answer reached in phase 1 (price changed, out of stock), stored with the key.
    Refused(StoredResponse),
}

/// How the charge ended, for phase 2.
#[derive(Debug, Clone)]
pub enum Charged {
    /// Paid by this charge.
    Paid(String),
    /// The card was declined.
    Declined(String),
    /// The provider failed and charged nothing.
    ProviderFailed(String),
    /// Never charged, and voided by the completer: the checkout expired.
    Voided,
}
// ANCHOR_END: outcomes

// ANCHOR: checkout_error
/// Why checkout answered with an error that is *not* stored with the key.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Same key, different request (422).
    #[error("this Idempotency-Key was used with a different request")]
    KeyReused,
    /// Same key, a request still running (409). Also what phase 2 answers
    /// when its key was taken over, or its order was already finished by
    /// another finisher: it wrote nothing.
    #[error("a request with this Idempotency-Key is in progress")]
    KeyInUse,
    /// A line names no product (404).
    #[error("no product {0}")]
    UnknownProduct(Sku),
    /// The order's currency is not the products' (422).
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// A promotion code that does not exist (422).
    #[error("no promotion {0:?}")]
    UnknownPromotion(String),
    /// Too many checkouts with a promotion code from this account (429,
    /// `Retry-After`): codes are not to be guessed.
    #[error("too many attempts with a promotion code; retry in {} s", .0.as_secs().max(1))]
    PromotionAttempts(Duration),
    /// The stock's `CHECK (stock >= 0)` refused the reservation (409
    /// `stock-changed`, not stored: the transaction, key included, rolled
    /// back, so a retry with the same key runs afresh). Phase 1 locks the
    /// rows first, so only a bug reaches this.
    #[error("not enough stock left for this order")]
    OutOfStock,
    /// The provider did not answer in time; the order waits at its recovery point (503).
    #[error(transparent)]
    Payment(PaymentError),
    /// The breaker is open: refused before anything was written (503, `Retry-After`).
    #[error(transparent)]
    ProviderUnavailable(Refused),
    /// The database failed (503 or 500).
    #[error(transparent)]
    Store(#[from] StoreError),
}
// ANCHOR_END: checkout_error

/// Points in the flow where a test may stop the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Point {
    /// Phase 1 has done its work; its COMMIT is next.
    BeforeOrderCommit,
    /// Phase 1 committed; the charge is next.
    AfterOrderCommit,
    /// The charge answered; phase 2 has not started.
    AfterCharge,
    /// Phase 2 has done its work; its COMMIT is next.
    BeforeFinishCommit,
    /// Phase 2 committed; the HTTP answer is next.
    AfterFinishCommit,
    /// The completer took a key over; asking the provider is next.
    AfterTakeOver,
    /// The completer has the provider's answer; phase 2 is next.
    AfterSettle,
}

/// A boxed future, for the object-safe hook.
pub type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Called at each [`Point`]; production passes [`NoHooks`].
pub trait Hooks: Send + Sync {
    /// The flow reached `point`; it continues when the future completes.
    fn reached(&self, point: Point) -> BoxFuture<'_>;
}

/// Hooks that do nothing.
pub struct NoHooks;

impl Hooks for NoHooks {
    fn reached(&self, _: Point) -> BoxFuture<'_> {
        Box::pin(std::future::ready(()))
    }
}

/// The checkout: a store, a provider, and the hooks tests use.
pub struct Checkout<S, P> {
    /// Orders, keys and products.
    pub store: Arc<S>,
    /// Who charges the card.
    pub provider: Arc<P>,
    /// Test hooks.
    pub hooks: Arc<dyn Hooks>,
    /// How long to wait for the provider.
    pub provider_timeout: Duration,
    /// Refuses checkouts while the provider is failing (shared by clones).
    pub breaker: Arc<Breaker>,
    /// Attempts with a promotion code, per account (shared by clones).
    pub promotions: Arc<PromotionAttempts>,
}

impl<S, P> Clone for Checkout<S, P> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            provider: Arc::clone(&self.provider),
            hooks: Arc::clone(&self.hooks),
            provider_timeout: self.provider_timeout,
            breaker: Arc::clone(&self.breaker),
            promotions: Arc::clone(&self.promotions),
        }
    }
}

impl<S: Store, P: PaymentProvider> Checkout<S, P> {
    /// A checkout over `store` and `provider`, without hooks.
    pub fn new(store: Arc<S>, provider: Arc<P>) -> Self {
        Self {
            store,
            provider,
            hooks: Arc::new(NoHooks),
            provider_timeout: PROVIDER_TIMEOUT,
            breaker: Arc::new(Breaker::default()),
            promotions: Arc::new(promotion_attempts()),
        }
    }

    // ANCHOR: run
    /// Runs one checkout request for `account`, with an optional idempotency key.
    pub async fn run(
        &self,
        account: &str,
        key: Option<&KeyScope>,
        request: &CheckoutRequest,
        now: DateTime<Utc>,
    ) -> Result<Answer, CheckoutError> {
        let print = fingerprint(account, request);
        if let Some(code) = &request.promotion {
            // A retry of a finished checkout replays its answer first: it
            // guesses nothing, so it spends no attempt.
            if let Some(k) = key
                && let Some(response) = self.store.final_answer(k, &print).await?
            {
                return Ok(Answer {
                    response,
                    replayed: true,
                });
            }
            // Counted before the code is looked up, valid or not: a refusal
            // tells a guesser nothing about the code.
            use block_rate_limiter::Limiter;
            if let Err(refused) = self.promotions.check(&account.to_string()) {
                return Err(CheckoutError::PromotionAttempts(refused.retry_after));
            }
            if promotion(code).is_none() {
                return Err(CheckoutError::UnknownPromotion(code.clone()));
            }
        }
        // Before anything is written: while the provider is failing, refuse
        // at once and leave the key, the stock and any earlier order as they
        // are. A retry whose key already has its final answer needs no
        // provider, so it still gets that answer, as any other retry does.
        let mut permit = match self.breaker.guard(now) {
            Ok(permit) => permit,
            Err(refused) => {
                if let Some(k) = key
                    && let Some(response) = self.store.final_answer(k, &print).await?
                {
                    return Ok(Answer {
                        response,
                        replayed: true,
                    });
                }
                return Err(CheckoutError::ProviderUnavailable(refused));
            }
        };
        // Phase 1: one transaction for the key, the stock and the order.
        let begun = self
            .store
            .begin_checkout(account, key, request, &print, now, &*self.hooks)
            .await?;
        let (lock, order_id, amount) = match begun {
            Begun::Replay(response) => {
                return Ok(Answer {
                    response,
                    replayed: true,
                });
            }
            Begun::Refused(response) => {
                return Ok(Answer {
                    response,
                    replayed: false,
                });
            }
            Begun::Charge {
                lock,
                order_id,
                amount,
                ..
            } => (lock, order_id, amount),
        };
        self.hooks.reached(Point::AfterOrderCommit).await;

        // The foreign call, outside any transaction, with a key of its own.
        let charge_key = format!("order-{order_id}");
        // From here a cancelled request counts as a failed call.
        permit.calling();
        let charge = tokio::time::timeout(
            self.provider_timeout,
            self.provider
                .charge(&charge_key, amount, &request.payment_method),
        )
        .await
        .unwrap_or(Err(PaymentError::Timeout(self.provider_timeout)));
        permit.record(match &charge {
            // "In progress" is an answer: the provider is up.
            Ok(_) | Err(PaymentError::Declined(_) | PaymentError::InProgress) => Outcome::Success,
            Err(PaymentError::Failed(_) | PaymentError::Timeout(_)) => Outcome::Failure,
        });
        self.hooks.reached(Point::AfterCharge).await;
        let charged = match charge {
            Ok(c) => Charged::Paid(c.id),
            Err(PaymentError::Declined(why)) => Charged::Declined(why),
            Err(PaymentError::Failed(why)) => Charged::ProviderFailed(why),
            Err(e @ (PaymentError::Timeout(_) | PaymentError::InProgress)) => {
                // Unknown outcome: leave the order at its recovery point and
                // let the next retry ask the provider again (same charge key).
                if let Some(lock) = lock {
                    self.store.release_key(lock).await?;
                }
                return Err(CheckoutError::Payment(e));
            }
        };

        // Phase 2: one transaction for the order's outcome and the key's answer.
        let response = match self
            .store
            .finish_checkout(lock, order_id, &charged, now, &*self.hooks)
            .await
        {
            Ok(response) => response,
            Err(e) => {
                // Phase 2 rolled back (a deadlock, a timeout): the order
                // waits at its recovery point, as after a provider timeout.
                // End the lease, so the retry after `Retry-After` resumes
                // instead of getting 409 until the lease runs out (fenced:
                // nothing, when the key was taken over).
                if let Some(lock) = lock
                    && let Err(release) = self.store.release_key(lock).await
                {
                    tracing::warn!(error = %release, "the key keeps its lease until it runs out");
                }
                return Err(e);
            }
        };
        self.hooks.reached(Point::AfterFinishCommit).await;
        Ok(Answer {
            response,
            replayed: false,
        })
    }
    // ANCHOR_END: run
}

/// A product as phase 1 sees it: the catalog record and the stock left.
#[derive(Clone, Debug)]
pub struct Stocked {
    /// The product.
    pub product: crate::domain::Product,
    /// Units not yet reserved.
    pub stock: i32,
}

// ANCHOR: price_order
/// Phase 1's decision, pure: the quote to charge, or a final refusal.
///
/// Bad input (an unknown product, a currency the products are not sold in,
/// an unknown promotion) is an error and nothing is stored. A changed price
/// or missing stock is a final answer, stored with the key: the shopper
/// sees the new quote and confirms again with a new key.
pub fn price_order(
    request: &CheckoutRequest,
    products: &[Stocked],
) -> Result<Result<Quote, StoredResponse>, CheckoutError> {
    let mut lines = Vec::with_capacity(request.lines.len());
    for (sku, quantity) in &request.lines {
        let found = products
            .iter()
            .find(|p| &p.product.sku == sku)
            .ok_or_else(|| CheckoutError::UnknownProduct(sku.clone()))?;
        if found.product.price.currency() != request.currency {
            return Err(PricingError::CurrencyMismatch {
                expected: request.currency,
                found: found.product.price.currency(),
                what: format!("product {sku}"),
            }
            .into());
        }
        lines.push(crate::domain::PricedLine {
            sku: sku.clone(),
            unit: found.product.price,
            quantity: *quantity,
            tax_class: found.product.tax_class,
        });
    }
    let promo = match &request.promotion {
        Some(code) => {
            Some(promotion(code).ok_or_else(|| CheckoutError::UnknownPromotion(code.clone()))?)
        }
        None => None,
    };
    let quote = crate::domain::quote(&lines, promo.as_ref(), &crate::domain::TAX_RATES)?;
    if quote.total_minor != request.expected_total_minor {
        let p = Problem::new(
            409,
            "price-changed",
            "Price changed",
            format!(
                "the total is now {} minor units, not {}; review the new quote and confirm again with a new Idempotency-Key",
                quote.total_minor, request.expected_total_minor
            ),
        )
        .with("quote", serde_json::to_value(&quote).unwrap_or_default());
        return Ok(Err(StoredResponse::problem(&p)));
    }
    for (sku, quantity) in &request.lines {
        let left = products
            .iter()
            .find(|p| &p.product.sku == sku)
            .map_or(0, |p| p.stock);
        if i64::from(left) < i64::from(quantity.get()) {
            let p = Problem::new(
                409,
                "out-of-stock",
                "Out of stock",
                // Not how many are left: exact stock is not public.
                format!("not enough {sku} left for {} units", quantity.get()),
            );
            return Ok(Err(StoredResponse::problem(&p)));
        }
    }
    Ok(Ok(quote))
}
// ANCHOR_END: price_order

// ANCHOR: finish_response
/// Phase 2's answer for an order and how its charge ended.
pub fn finish_response(order: &Order, charged: &Charged) -> StoredResponse {
    match charged {
        Charged::Paid(_) => StoredResponse::created(order),
        Charged::Declined(why) => StoredResponse::problem(
            &Problem::new(402, "payment-declined", "Payment declined", why.clone())
                .with("order_id", serde_json::json!(order.id)),
        ),
        // A 5xx stored as the final answer: retries replay it, as Stripe's do.
        Charged::ProviderFailed(why) => StoredResponse::problem(
            &Problem::new(
                502,
                "payment-provider-failed",
                "Payment provider failed",
                why.clone(),
            )
            .with("order_id", serde_json::json!(order.id)),
        ),
        // The completer's answer for a checkout nobody finished: the retry
        // that comes after it gets this, and must start a new checkout.
        Charged::Voided => StoredResponse::problem(
            &Problem::new(
                410,
                "checkout-expired",
                "Checkout expired",
                "the checkout was not completed in time; nothing was charged and the stock was released",
            )
            .with("order_id", serde_json::json!(order.id)),
        ),
    }
}
// ANCHOR_END: finish_response
