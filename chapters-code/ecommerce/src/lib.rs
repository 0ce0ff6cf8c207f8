//! E-commerce: a catalog, a cart, and a checkout that charges once.
//!
//! Shoppers browse and search a catalog, keep a cart (as guests, then
//! signed in) and check out. Three ideas carry the design:
//!
//! - **The checkout charges once.** Each checkout carries an
//!   `Idempotency-Key` with Stripe's semantics. The key's row is written in
//!   the same PostgreSQL transaction as the order, and the checkout is split
//!   into atomic phases around the payment provider, each ending in a
//!   recovery point on the key (Brandur Leach's design). A request killed
//!   anywhere is resumed by its retry, or settled by the completer when no
//!   retry comes; the provider's own key (`order-<id>`) makes the resumed
//!   charge the same charge.
//! - **The cart never resurrects a removal.** It is an observed-remove set:
//!   tagged adds, tombstones for the adds a removal saw, merge by join.
//!   Adding succeeds up to the cart's size cap; the guest cart merges at sign-in.
//! - **The catalog cache cannot go back.** moka in the process, Redis for
//!   the fleet, fills that keep the higher version, and a stated staleness
//!   bound for price changes.
//!
//! The crate reads top-down:
//!
//! - [`domain`]: money in minor units, SKUs and quantities, tax and
//!   discounts in one function ([`domain::quote`]), the cart set;
//! - [`idempotency`]: the key, its scope and the request's fingerprint;
//! - [`store`]: products, orders and keys behind [`store::Store`], in
//!   memory and in PostgreSQL (one behaviour suite runs against both);
//! - [`checkout`]: the phases, the provider trait and a fake provider that
//!   is slow, times out or fails on demand;
//! - [`checkout::complete`]: the completer that settles checkouts nobody
//!   finished; [`jobs`]: the worker that runs each staged job once;
//! - [`cart`]: carts in Redis (Lua, TTL), PostgreSQL or memory;
//! - [`catalog`]: the two cache layers;
//! - [`service`]: axum routes, problem+json in one place, the flash-sale
//!   admission bucket; [`problem`]: the problem document and its types;
//! - [`load`], [`capacity`] and (feature `book`) `report`, `generated` and
//!   `book`: the measured runs and what the chapter publishes.
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
pub mod jobs;
pub mod load;
pub mod problem;
#[cfg(feature = "book")]
pub mod report;
pub mod service;
pub mod store;
