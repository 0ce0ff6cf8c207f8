//! Part II block: state machines as transition tables, with generated diagrams and reachability.

#[cfg(feature = "book")]
pub mod book;
