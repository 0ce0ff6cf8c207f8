//! E-commerce: a catalog, a cart, and a checkout that charges once.
#![warn(missing_docs)]

#[cfg(feature = "book")]
pub mod book;
pub mod capacity;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod domain;
#[cfg(feature = "book")]
pub mod generated;
pub mod idempotency;
pub mod load;
pub mod problem;
#[cfg(feature = "book")]
pub mod report;
pub mod service;
pub mod store;
