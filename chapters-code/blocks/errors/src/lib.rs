//! Part II block: errors over HTTP (RFC 9457 problem details) and one classification of PostgreSQL, pool and Redis failures.

#[cfg(feature = "book")]
pub mod book;
