//! RFC 9457 problem details: the body of every error response.
//!
//! The checkout stores some errors as the final answer of an idempotency
//! key (a declined card, a price change), so building the body lives here,
//! beside the types, rather than only in the HTTP layer.

use serde::{Deserialize, Serialize};

/// Problem `type` URIs start with this (the `.example` domain is reserved for documentation).
pub const PROBLEM_BASE: &str = "https://docs.ecommerce.example/problems/";

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
