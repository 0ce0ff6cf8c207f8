//! Part II block: rate limiting and admission (token bucket, GCRA, a sliding window in Redis).

#[cfg(feature = "book")]
pub mod book;
