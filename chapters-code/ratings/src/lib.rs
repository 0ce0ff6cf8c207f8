//! Ratings and reviews: verified buyers rate a product once, edit or delete
//! it; shoppers vote reviews helpful; product pages show an aggregate and a
//! ranking score; spam is held back, never silently deleted.
//!
//! The design follows from three invariants, each kept where it holds in
//! production:
//!
//! - one review per (user, product): the `one_review_per_buyer` UNIQUE
//!   constraint decides two concurrent submits, not a check in Rust;
//! - the aggregate (count, sum, five-star histogram) equals a recompute
//!   from the published reviews after any interleaving of writes: every
//!   write changes it in the same transaction, by a relative update under
//!   the product row's lock, with the review row locked first;
//! - nothing is hard-deleted: moderation and the author's delete are
//!   transitions of one state machine ([`domain::MODERATION`]), each
//!   audited with who, why, from, to and when.
//!
//! The crate reads top-down:
//!
//! - [`domain`]: ratings and bodies that parse, the aggregate, the scores
//!   (mean, Bayesian average, Wilson lower bound), the moderation table and
//!   the vote-burst rule;
//! - [`spam`]: the tiers of the spam defence (rules, SimHash, naive Bayes)
//!   and the seeded corpus they are measured on;
//! - [`store`]: the [`store::ReviewStore`] trait, in memory and PostgreSQL;
//! - [`service`]: the axum routes and the problem types.
#![warn(missing_docs)]

#[cfg(feature = "book")]
pub mod book;
pub mod domain;
#[cfg(feature = "book")]
pub mod generated;
pub mod service;
pub mod spam;
pub mod store;
