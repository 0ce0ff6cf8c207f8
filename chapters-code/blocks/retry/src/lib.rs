//! Part II block: retries with backoff and jitter, deadlines, and the circuit breaker.

#[cfg(feature = "book")]
pub mod book;
