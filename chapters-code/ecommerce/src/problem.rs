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
    ("invalid-idempotency-key", 400),
    ("missing-idempotency-key", 400),
    ("unauthenticated", 401),
    ("payment-declined", 402),
    ("forbidden", 403),
    ("unknown-product", 404),
    ("unknown-order", 404),
    ("idempotency-key-in-use", 409),
    ("price-changed", 409),
    ("out-of-stock", 409),
    ("idempotency-key-reused", 422),
    ("currency-mismatch", 422),
    ("unknown-promotion", 422),
    ("invalid-order", 422),
    ("checkout-busy", 429),
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
/// The JSON body of an error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the kind of problem; the slug is a heading of the chapter's problems page.
    #[serde(rename = "type")]
    pub kind: String,
    /// A summary of the kind of problem.
    pub title: String,
    /// The HTTP status, repeated for clients that lose the status line.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// Extra members (the new quote of a `price-changed`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}
// ANCHOR_END: problem

impl Problem {
    /// A problem of type `slug`.
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("{PROBLEM_BASE}{slug}"),
            title: title.to_string(),
            status,
            detail: detail.into(),
            extra: None,
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extra
            .get_or_insert_with(serde_json::Map::new)
            .insert(name.to_string(), value);
        self
    }

    /// The slug after [`PROBLEM_BASE`].
    pub fn slug(&self) -> &str {
        self.kind.strip_prefix(PROBLEM_BASE).unwrap_or(&self.kind)
    }
}
