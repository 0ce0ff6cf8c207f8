//! Every error the API returns, and the one place that maps them to HTTP.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use block_errors::{ApiProblem, Class, INTERNAL, RETRY_AFTER, classify_sqlx};

use crate::cart::{CartError, CartIdError};
use crate::catalog::CatalogError;
use crate::checkout::CheckoutError;
use crate::domain::{PricingError, QuantityError, SkuError, UnknownCurrency};
use crate::idempotency::KeyError;
use crate::problem::{PROBLEM_BASE, Problem};
use crate::store::StoreError;

// ANCHOR: api_error
/// Why a request failed, from any layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A SKU that does not parse.
    #[error(transparent)]
    Sku(#[from] SkuError),
    /// A quantity below 1 or above the maximum.
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    /// A currency code the shop does not use.
    #[error(transparent)]
    Currency(#[from] UnknownCurrency),
    /// A cart id that does not parse.
    #[error(transparent)]
    CartId(#[from] CartIdError),
    /// The `Idempotency-Key` header refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `POST /checkout` without an `Idempotency-Key`.
    #[error("POST /checkout needs an Idempotency-Key header")]
    MissingKey,
    /// No `X-Account` header where one is needed.
    #[error("this route needs a signed-in account (X-Account)")]
    Unauthenticated,
    /// `X-Account` sent to a service configured not to trust it.
    #[error("this service is not behind a gateway that sets X-Account; the header is refused")]
    AccountHeaderRefused,
    /// An account's cart or order, asked for by another account.
    #[error("this belongs to another account")]
    Forbidden,
    /// A SKU twice in one order.
    #[error("product {0} appears in two lines; send one line per product")]
    DuplicateLine(String),
    /// An order with more than [`super::MAX_LINES`] lines.
    #[error("an order has at most {max} lines, not {0}", max = super::MAX_LINES)]
    TooManyLines(usize),
    /// A body larger than [`super::BODY_LIMIT`].
    #[error("a request body has at most {max} bytes", max = super::BODY_LIMIT)]
    BodyTooLarge,
    /// An order with no lines.
    #[error("an order needs at least one line")]
    EmptyOrder,
    /// A search without words, or too long.
    #[error("{0}")]
    Query(&'static str),
    /// The product does not exist.
    #[error("no product {0}")]
    ProductNotFound(String),
    /// The order does not exist.
    #[error("no order {0}")]
    OrderNotFound(String),
    /// The body, path or query string did not parse.
    #[error("{0}")]
    Malformed(String),
    /// The flash-sale admission refused the request.
    #[error("checkout is at capacity; retry in a moment")]
    Busy,
    /// The checkout's task panicked (a bug).
    #[error("the checkout task failed: {0}")]
    Internal(String),
    /// The checkout refused (not stored with the key).
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    /// The cart store failed.
    #[error(transparent)]
    Cart(#[from] CartError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
// ANCHOR_END: api_error

/// The chapter's side of the errors block, which builds the body and the
/// headers and logs a 5xx's cause instead of sending it.
impl ApiProblem for ApiError {
    const BASE: &'static str = PROBLEM_BASE;

    // ANCHOR: status_map
    /// The status, the problem type's slug and its title: the whole mapping, in one match.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::Sku(_) => (S::BAD_REQUEST, "invalid-sku", "Invalid SKU"),
            ApiError::Quantity(_) => (S::BAD_REQUEST, "invalid-quantity", "Invalid quantity"),
            ApiError::Currency(_) => (S::BAD_REQUEST, "invalid-currency", "Invalid currency"),
            ApiError::CartId(_) => (S::BAD_REQUEST, "invalid-cart-id", "Invalid cart id"),
            ApiError::Key(_) => (
                S::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
            ),
            ApiError::MissingKey => (
                S::BAD_REQUEST,
                "missing-idempotency-key",
                "Idempotency-Key required",
            ),
            ApiError::Unauthenticated => (S::UNAUTHORIZED, "unauthenticated", "Sign in first"),
            ApiError::Forbidden => (S::FORBIDDEN, "forbidden", "Not yours"),
            ApiError::AccountHeaderRefused => (
                S::BAD_REQUEST,
                "account-header-refused",
                "X-Account refused",
            ),
            ApiError::DuplicateLine(_) => (S::BAD_REQUEST, "duplicate-line", "Duplicate line"),
            ApiError::EmptyOrder => (S::BAD_REQUEST, "empty-order", "Empty order"),
            ApiError::TooManyLines(_) => (S::BAD_REQUEST, "too-many-lines", "Too many lines"),
            ApiError::BodyTooLarge => (S::PAYLOAD_TOO_LARGE, "body-too-large", "Body too large"),
            ApiError::Query(_) => (S::BAD_REQUEST, "invalid-query", "Invalid search query"),
            ApiError::ProductNotFound(_) => (S::NOT_FOUND, "unknown-product", "No such product"),
            ApiError::OrderNotFound(_) => (S::NOT_FOUND, "unknown-order", "No such order"),
            ApiError::Malformed(_) => (S::BAD_REQUEST, "malformed-request", "Malformed request"),
            ApiError::Internal(_) => INTERNAL,
            ApiError::Busy => (
                S::TOO_MANY_REQUESTS,
                "checkout-busy",
                "Checkout at capacity",
            ),
            ApiError::Checkout(e) => match e {
                CheckoutError::KeyReused => (
                    S::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    "Idempotency-Key reused with a different request",
                ),
                CheckoutError::KeyInUse => (
                    S::CONFLICT,
                    "idempotency-key-in-use",
                    "A request with this Idempotency-Key is in progress",
                ),
                CheckoutError::UnknownProduct(_) => {
                    (S::NOT_FOUND, "unknown-product", "No such product")
                }
                CheckoutError::Pricing(PricingError::CurrencyMismatch { .. }) => (
                    S::UNPROCESSABLE_ENTITY,
                    "currency-mismatch",
                    "Currency mismatch",
                ),
                CheckoutError::Pricing(_) => (
                    S::UNPROCESSABLE_ENTITY,
                    "invalid-order",
                    "Order cannot be priced",
                ),
                CheckoutError::UnknownPromotion(_) => (
                    S::UNPROCESSABLE_ENTITY,
                    "unknown-promotion",
                    "No such promotion",
                ),
                // Not the stored `out-of-stock`: nothing is stored with the
                // key, so the client retries with the same key.
                CheckoutError::OutOfStock => (
                    S::CONFLICT,
                    "stock-changed",
                    "Stock changed; retry with the same key",
                ),
                CheckoutError::PromotionAttempts(_) => (
                    S::TOO_MANY_REQUESTS,
                    "promotion-attempts",
                    "Too many promotion attempts",
                ),
                CheckoutError::Payment(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "payment-pending",
                    "Payment outcome unknown; retry with the same key",
                ),
                CheckoutError::ProviderUnavailable(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "payment-provider-unavailable",
                    "Payment provider unavailable; nothing was done",
                ),
                CheckoutError::Store(e) => store_status(e),
            },
            // The block's class: a 500 only for a bug (a key of the wrong
            // type); a full or locked-out Redis is a 503 like a slow one.
            ApiError::Cart(CartError::Full) => (S::CONFLICT, "cart-full", "Cart full"),
            ApiError::Cart(e) if e.class().status() == S::INTERNAL_SERVER_ERROR => INTERNAL,
            ApiError::Cart(_) => (
                S::SERVICE_UNAVAILABLE,
                "cart-unavailable",
                "Cart store unavailable",
            ),
            ApiError::Catalog(e) if e.class().status() == S::INTERNAL_SERVER_ERROR => INTERNAL,
            ApiError::Catalog(_) => (
                S::SERVICE_UNAVAILABLE,
                "catalog-unavailable",
                "Catalog unavailable",
            ),
            ApiError::Store(e) => store_status(e),
        }
    }

    fn detail(&self) -> String {
        self.to_string()
    }

    fn class(&self) -> Option<Class> {
        match self {
            ApiError::Store(StoreError::Database(e))
            | ApiError::Checkout(CheckoutError::Store(StoreError::Database(e))) => {
                Some(classify_sqlx(e))
            }
            ApiError::Cart(CartError::Full) => None,
            ApiError::Cart(e) => Some(e.class()),
            ApiError::Catalog(e) => Some(e.class()),
            _ => None,
        }
    }

    fn retry_after(&self, status: StatusCode) -> Option<Duration> {
        match self {
            // The breaker knows when its cool-down ends.
            ApiError::Checkout(CheckoutError::ProviderUnavailable(r)) => {
                r.retry_after.to_std().ok()
            }
            ApiError::Busy | ApiError::Checkout(CheckoutError::OutOfStock) => Some(RETRY_AFTER),
            // Whole seconds, rounded up, as the rate-limiter block does.
            ApiError::Checkout(CheckoutError::PromotionAttempts(wait)) => {
                let refused = block_rate_limiter::Refused { retry_after: *wait };
                Some(Duration::from_secs(refused.retry_after_secs()))
            }
            _ => block_errors::default_retry_after(self.class(), status),
        }
    }

    /// A payment's outcome is for the client: it decides whether to retry.
    fn detail_is_public(&self) -> bool {
        matches!(
            self,
            ApiError::Checkout(CheckoutError::Payment(_) | CheckoutError::ProviderUnavailable(_))
        )
    }
}

fn store_status(e: &StoreError) -> (StatusCode, &'static str, &'static str) {
    match e {
        StoreError::ProductNotFound(_) => {
            (StatusCode::NOT_FOUND, "unknown-product", "No such product")
        }
        // The errors block's class: 503 for what a retry may cure.
        StoreError::Database(e) if classify_sqlx(e).status() == StatusCode::SERVICE_UNAVAILABLE => {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Database unavailable",
            )
        }
        StoreError::Database(_) | StoreError::Corrupt(_) => INTERNAL,
    }
}
// ANCHOR_END: status_map

block_errors::into_response!(ApiError);

/// A problem+json response (for a stored problem replayed as it was).
pub fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    block_errors::ProblemResponse {
        status,
        problem: problem.0.clone(),
        retry_after: None,
        cache_control: block_errors::NO_STORE,
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkout::provider::PaymentError;
    use crate::checkout::{Charged, CheckoutRequest, Order, Stocked, finish_response, price_order};
    use crate::domain::{Currency, Money, Product, Quantity, Quote, Sku, TaxClass};
    use crate::problem::PROBLEM_TYPES;

    fn sku() -> Sku {
        Sku::parse("MUG").expect("valid")
    }

    /// The problems checkout stores as final answers, produced by the real code paths.
    fn stored() -> Vec<(String, u16)> {
        let eur = |m| Money::new(m, Currency::Eur).expect("valid");
        let product = |stock| Stocked {
            product: Product {
                sku: sku(),
                name: "Mug".into(),
                description: String::new(),
                price: eur(1000),
                tax_class: TaxClass::Exempt,
                version: 1,
            },
            stock,
        };
        let request = |total| CheckoutRequest {
            lines: vec![(sku(), Quantity::new(2).expect("valid"))],
            currency: Currency::Eur,
            expected_total_minor: total,
            promotion: None,
            payment_method: "tok".into(),
        };
        let order = Order {
            id: uuid::Uuid::nil(),
            account: "a".into(),
            status: "pending_payment".into(),
            quote: Quote {
                currency: Currency::Eur,
                lines: vec![],
                subtotal_minor: 0,
                discount_minor: 0,
                tax_minor: 0,
                total_minor: 0,
            },
            charge_id: None,
            created_at: chrono::Utc::now(),
        };
        let mut out = Vec::new();
        for (total, stock) in [(1, 10), (2000, 1)] {
            if let Ok(Err(r)) = price_order(&request(total), &[product(stock)]) {
                out.push(r);
            }
        }
        out.push(finish_response(&order, &Charged::Declined(String::new())));
        out.push(finish_response(
            &order,
            &Charged::ProviderFailed(String::new()),
        ));
        out.push(finish_response(&order, &Charged::Voided));
        out.iter()
            .map(|r| {
                let kind = r.body["type"].as_str().unwrap_or_default();
                let slug = kind
                    .strip_prefix(crate::problem::PROBLEM_BASE)
                    .unwrap_or(kind);
                (slug.to_string(), r.status)
            })
            .collect()
    }

    #[test]
    fn problem_types_lists_exactly_what_the_code_returns() {
        let every_error: Vec<ApiError> = vec![
            SkuError::Length.into(),
            QuantityError::Zero.into(),
            UnknownCurrency(String::new()).into(),
            CartIdError.into(),
            KeyError::Empty.into(),
            ApiError::MissingKey,
            ApiError::Unauthenticated,
            ApiError::Forbidden,
            ApiError::AccountHeaderRefused,
            ApiError::DuplicateLine(String::new()),
            ApiError::EmptyOrder,
            ApiError::TooManyLines(0),
            ApiError::BodyTooLarge,
            ApiError::Query(""),
            ApiError::ProductNotFound(String::new()),
            ApiError::OrderNotFound(String::new()),
            ApiError::Malformed(String::new()),
            ApiError::Busy,
            ApiError::Internal(String::new()),
            CheckoutError::KeyReused.into(),
            CheckoutError::KeyInUse.into(),
            CheckoutError::UnknownProduct(sku()).into(),
            CheckoutError::Pricing(PricingError::CurrencyMismatch {
                expected: Currency::Eur,
                found: Currency::Usd,
                what: String::new(),
            })
            .into(),
            CheckoutError::Pricing(PricingError::Overflow).into(),
            CheckoutError::UnknownPromotion(String::new()).into(),
            CheckoutError::OutOfStock.into(),
            CheckoutError::PromotionAttempts(std::time::Duration::from_secs(1)).into(),
            CheckoutError::Payment(PaymentError::Timeout(std::time::Duration::ZERO)).into(),
            CheckoutError::ProviderUnavailable(crate::checkout::breaker::Refused {
                retry_after: chrono::TimeDelta::seconds(1),
            })
            .into(),
            CheckoutError::Store(StoreError::Corrupt(String::new())).into(),
            CartError::Redis(Class::Final, String::new()).into(),
            CartError::Full.into(),
            CartError::Redis(Class::Bug, String::new()).into(),
            CatalogError::Timeout.into(),
            CatalogError::from(StoreError::Corrupt(String::new())).into(),
            StoreError::Database(sqlx::Error::PoolTimedOut).into(),
            StoreError::ProductNotFound(sku()).into(),
        ];
        let mut returned = block_errors::problem_types_of(&every_error);
        let stored = stored();
        assert_eq!(stored.len(), 5, "{stored:?}");
        returned.extend(stored);
        block_errors::assert_problem_types(&returned, PROBLEM_TYPES);
    }

    /// A 5xx body names its type and nothing of its cause: no SQL, no
    /// message from the database, no Rust type (the cause is logged).
    #[tokio::test]
    async fn an_internal_error_carries_no_internals() {
        use http_body_util::BodyExt;
        let leak = "SELECT card_token FROM secrets WHERE id = 42";
        let response = ApiError::Store(StoreError::Corrupt(leak.into())).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("#internal"), "{body}");
        for secret in ["SELECT", "card_token", "Corrupt", "42"] {
            assert!(!body.contains(secret), "{secret} leaked: {body}");
        }
    }

    /// A Redis error reply, parsed as off the wire.
    fn redis_reply(bytes: &[u8]) -> redis::RedisError {
        redis::parse_redis_value(bytes)
            .and_then(|v| v.extract_error())
            .err()
            .unwrap_or_else(|| panic!("{bytes:?} is not an error reply"))
    }

    /// The block's rule for a cart's Redis error: an operator's problem is
    /// a 503 without Retry-After, a passing one a 503 with it, and only a
    /// refusal of the command itself (a bug) a 500.
    #[test]
    fn a_cart_redis_error_is_a_500_only_when_it_is_a_bug() {
        let cases: &[(&[u8], u16, Option<u64>)] = &[
            (
                b"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
                503,
                None,
            ),
            (b"-NOAUTH Authentication required.\r\n", 503, None),
            (
                b"-NOPERM User default has no permissions to run the 'hset' command\r\n",
                503,
                None,
            ),
            (
                b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
                503,
                None,
            ),
            (b"-BUSY Redis is busy running a script.\r\n", 503, Some(1)),
            (
                b"-LOADING Redis is loading the dataset in memory\r\n",
                503,
                Some(1),
            ),
            (
                b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
                500,
                None,
            ),
        ];
        for (bytes, status, retry) in cases {
            let e = ApiError::from(CartError::from(redis_reply(bytes)));
            let r = block_errors::respond(&e);
            let got = (
                r.status.as_u16(),
                r.retry_after.map(block_errors::retry_after_secs),
            );
            assert_eq!(got, (*status, *retry), "{}", String::from_utf8_lossy(bytes));
        }
    }

    /// A catalog load that failed for a bug (a corrupt row) is a 500; only
    /// a slow load asks the client to come back.
    #[test]
    fn a_catalog_bug_is_a_500_and_only_a_timeout_says_when_to_retry() {
        let cases = [
            (
                CatalogError::from(StoreError::Corrupt("price: -1".into())),
                500,
                None,
            ),
            (CatalogError::Timeout, 503, Some(1)),
        ];
        for (e, status, retry) in cases {
            let e = ApiError::from(e);
            let r = block_errors::respond(&e);
            let got = (
                r.status.as_u16(),
                r.retry_after.map(block_errors::retry_after_secs),
            );
            assert_eq!(got, (status, retry), "{e}");
        }
    }
}
