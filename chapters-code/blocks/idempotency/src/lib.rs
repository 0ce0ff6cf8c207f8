//! Part II block: idempotency keys on PostgreSQL (fingerprint, fenced claim, stored final answer, safe purge).

#[cfg(feature = "book")]
pub mod book;
