//! RFC 9457 problem details: the body of every error response.
//!
//! The checkout stores some errors as the final answer of an idempotency
//! key (a declined card, a price change), so building the body lives here,
//! beside the types, rather than only in the HTTP layer.

use serde::{Deserialize, Serialize};

/// Problem `type` URIs start with this: the chapter's problems page, where
/// each type has a section. A book check compares the page with [`PROBLEM_TYPES`].
pub const PROBLEM_BASE: &str =
    "https://designing-systems-in-rust.github.io/book/ecommerce/problems.html#";

// ANCHOR: problem_types
/// Every problem type the service answers with, and its status (a test
/// checks the list is exactly what the code returns).
pub const PROBLEM_TYPES: &[(&str, u16)] = &[
    ("malformed-request", 400),
    ("invalid-sku", 400),
    ("invalid-quantity", 400),
    ("invalid-currency", 400),
    ("invalid-cart-id", 400),
    ("invalid-query", 400),
    ("duplicate-line", 400),
    ("empty-order", 400),
    ("too-many-lines", 400),
    ("invalid-idempotency-key", 400),
    ("missing-idempotency-key", 400),
    ("account-header-refused", 400),
    ("unauthenticated", 401),
    ("payment-declined", 402),
    ("forbidden", 403),
    ("unknown-product", 404),
    ("unknown-order", 404),
    ("idempotency-key-in-use", 409),
    ("price-changed", 409),
    ("out-of-stock", 409),
    ("stock-changed", 409),
    ("cart-full", 409),
    ("checkout-expired", 410),
    ("body-too-large", 413),
    ("idempotency-key-reused", 422),
    ("currency-mismatch", 422),
    ("unknown-promotion", 422),
    ("invalid-order", 422),
    ("checkout-busy", 429),
    ("promotion-attempts", 429),
    ("internal", 500),
    ("payment-provider-failed", 502),
    ("payment-pending", 503),
    ("payment-provider-unavailable", 503),
    ("unavailable", 503),
    ("cart-unavailable", 503),
    ("catalog-unavailable", 503),
];
// ANCHOR_END: problem_types

// ANCHOR: problem
/// The JSON body of an error response: the errors block's problem document,
/// with this chapter's [`PROBLEM_BASE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Problem(pub block_errors::Problem);
// ANCHOR_END: problem

impl Problem {
    /// A problem of type `slug`.
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self(block_errors::Problem::new(
            PROBLEM_BASE,
            slug,
            title,
            status,
            detail,
        ))
    }

    /// Adds an extension member.
    pub fn with(self, name: &str, value: serde_json::Value) -> Self {
        Self(self.0.with(name, value))
    }

    /// The slug after [`PROBLEM_BASE`].
    pub fn slug(&self) -> &str {
        self.0.slug(PROBLEM_BASE)
    }
}

impl std::ops::Deref for Problem {
    type Target = block_errors::Problem;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
