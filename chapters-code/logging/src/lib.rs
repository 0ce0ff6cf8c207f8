//! Distributed logging: never block the app, never lose what was acknowledged.
#![warn(missing_docs)]

pub mod domain;
pub mod layer;
pub mod store;
