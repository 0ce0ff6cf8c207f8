//! E-commerce: a catalog, a cart, and a checkout that charges once.
#![warn(missing_docs)]

pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod domain;
pub mod idempotency;
pub mod problem;
pub mod service;
pub mod store;
