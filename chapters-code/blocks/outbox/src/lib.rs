//! Part II block: the transactional outbox and its relay (head-row claim, LISTEN/NOTIFY with polling, message ids).

#[cfg(feature = "book")]
pub mod book;
