//! Real-time inventory: never oversell, measured on a hot SKU.
//!
//! Stock is kept per SKU per warehouse. A checkout *reserves* units for a
//! few minutes, *commits* them when payment succeeds, and *releases* them
//! when it gives up; a hold that nobody commits *expires*. Goods are
//! *received*, and a stock count *adjusts* what is on hand. Other services
//! read availability in near real time.
//!
//! The invariant is one line, "never promise more than is on hand", and the
//! design is about where it is enforced and what that costs on the one SKU
//! everybody wants at once:
//!
//! - [`domain`]: pure types. A position stores `on_hand` and `reserved`;
//!   `available` is derived. Every change is an append-only
//!   [`domain::Movement`], and folding them gives the balance. The
//!   reservation's transition table is data; the book's state diagram is
//!   generated from it.
//! - [`store`]: the [`store::InventoryStore`] trait, an in-memory adapter
//!   and the PostgreSQL adapter, whose every state change is one guarded
//!   statement, backed by CHECK constraints in `sql/schema.sql`.
//! - [`ladder`]: seven ways to take one unit of a hot SKU, from the naive
//!   read-modify-write that oversells to a Redis Lua decrement in front of
//!   the ledger, each behind the [`ladder::Rung`] trait, with the load
//!   generator that measures them beside a ceiling.
//! - [`redis_front`]: the Redis counter in front of PostgreSQL, the gap
//!   between the two writes, and the reconciliation job that closes it.
//! - [`events`]: the outbox relay to NATS JetStream and the availability
//!   read model that consumes it idempotently.
//! - [`service`]: axum routes; errors become RFC 9457 problem+json in one place.
//! - [`capacity`], and under the `book` feature `generated`, `report` and
//!   `book`: the numbers the book prints.
#![warn(missing_docs)]

#[cfg(feature = "book")]
pub mod book;
pub mod capacity;
pub mod domain;
pub mod events;
#[cfg(feature = "book")]
pub mod generated;
pub mod ladder;
pub mod redis_front;
#[cfg(feature = "book")]
pub mod report;
pub mod service;
pub mod store;
