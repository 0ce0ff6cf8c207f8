//! Every error the API returns, and the one place that maps them to HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::cart::{CartError, CartIdError};
use crate::catalog::CatalogError;
use crate::checkout::CheckoutError;
use crate::domain::{PricingError, QuantityError, SkuError, UnknownCurrency};
use crate::idempotency::KeyError;
use crate::problem::Problem;
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
    /// An account's cart or order, asked for by another account.
    #[error("this belongs to another account")]
    Forbidden,
    /// A SKU twice in one order.
    #[error("product {0} appears in two lines; send one line per product")]
    DuplicateLine(String),
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

// ANCHOR: status_map
impl ApiError {
    /// The status, the problem type's slug and its title: the whole mapping, in one match.
    pub fn classify(&self) -> (StatusCode, &'static str, &'static str) {
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
            ApiError::DuplicateLine(_) => (S::BAD_REQUEST, "duplicate-line", "Duplicate line"),
            ApiError::EmptyOrder => (S::BAD_REQUEST, "empty-order", "Empty order"),
            ApiError::Query(_) => (S::BAD_REQUEST, "invalid-query", "Invalid search query"),
            ApiError::ProductNotFound(_) => (S::NOT_FOUND, "unknown-product", "No such product"),
            ApiError::OrderNotFound(_) => (S::NOT_FOUND, "unknown-order", "No such order"),
            ApiError::Malformed(_) => (S::BAD_REQUEST, "malformed-request", "Malformed request"),
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
            ApiError::Cart(_) => (
                S::SERVICE_UNAVAILABLE,
                "cart-unavailable",
                "Cart store unavailable",
            ),
            ApiError::Catalog(_) => (
                S::SERVICE_UNAVAILABLE,
                "catalog-unavailable",
                "Catalog unavailable",
            ),
            ApiError::Store(e) => store_status(e),
        }
    }
}

fn store_status(e: &StoreError) -> (StatusCode, &'static str, &'static str) {
    match e {
        StoreError::ProductNotFound(_) => {
            (StatusCode::NOT_FOUND, "unknown-product", "No such product")
        }
        StoreError::Database(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Database unavailable",
        ),
        StoreError::Corrupt(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        ),
    }
}
// ANCHOR_END: status_map

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.classify();
        let detail = if status.is_server_error()
            && !matches!(
                self,
                ApiError::Checkout(
                    CheckoutError::Payment(_) | CheckoutError::ProviderUnavailable(_)
                )
            ) {
            tracing::error!(error = %self, "request failed");
            "the service could not complete the request; retry shortly".to_string()
        } else {
            self.to_string()
        };
        let problem = Problem::new(status.as_u16(), slug, title, detail);
        let mut response = problem_response(status, &problem);
        if let ApiError::Checkout(CheckoutError::ProviderUnavailable(r)) = &self {
            // The breaker knows when its cool-down ends.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(r.retry_after.num_seconds().max(1)),
            );
        } else if matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A problem+json response.
pub fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

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
            ApiError::DuplicateLine(String::new()),
            ApiError::EmptyOrder,
            ApiError::Query(""),
            ApiError::ProductNotFound(String::new()),
            ApiError::OrderNotFound(String::new()),
            ApiError::Malformed(String::new()),
            ApiError::Busy,
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
            CheckoutError::Payment(PaymentError::Timeout(std::time::Duration::ZERO)).into(),
            CheckoutError::ProviderUnavailable(crate::checkout::breaker::Refused {
                retry_after: chrono::TimeDelta::seconds(1),
            })
            .into(),
            CheckoutError::Store(StoreError::Corrupt(String::new())).into(),
            CartError::Unavailable(String::new()).into(),
            CatalogError::Timeout.into(),
            StoreError::Database(sqlx::Error::PoolTimedOut).into(),
            StoreError::ProductNotFound(sku()).into(),
        ];
        let mut returned: BTreeSet<(String, u16)> = every_error
            .iter()
            .map(|e| {
                let (status, slug, _) = e.classify();
                (slug.to_string(), status.as_u16())
            })
            .collect();
        let stored = stored();
        assert_eq!(stored.len(), 4, "{stored:?}");
        returned.extend(stored);
        let listed: BTreeSet<(String, u16)> = PROBLEM_TYPES
            .iter()
            .map(|(s, c)| (s.to_string(), *c))
            .collect();
        assert_eq!(returned, listed);
        assert_eq!(listed.len(), PROBLEM_TYPES.len(), "a type listed twice");
    }
}
