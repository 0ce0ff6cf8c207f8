//! Part II block: a demo binary's start-up (ADDR/PORT, tracing filter, graceful shutdown, engine URLs).

#[cfg(feature = "book")]
pub mod book;
