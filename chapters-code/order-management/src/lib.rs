//! Order management (design overview written below as the crate grows).
#![warn(missing_docs)]

pub mod consumer;
pub mod domain;
pub mod generated;
pub mod relay;
pub mod saga;
pub mod service;
pub mod store;
