//! Part II block: cache-aside that never contradicts the database (conditional fills, tombstones, bounded negative entries).

#[cfg(feature = "book")]
pub mod book;
