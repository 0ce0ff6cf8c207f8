//! Distributed logging: never block the app, never lose what was acknowledged.
#![warn(missing_docs)]

#[cfg(feature = "book")]
pub mod book;
pub mod corpus;
pub mod domain;
pub mod layer;
#[cfg(feature = "book")]
pub mod report;
pub mod service;
pub mod store;
