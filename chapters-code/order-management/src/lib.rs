//! Order management: a state machine, the transactional outbox, and a saga
//! that compensates.
//!
//! An order moves from `created` through `pending` (checkout running),
//! `paid`, `partially_shipped` and `shipped` to `delivered`; it can be
//! cancelled before anything ships, fail payment, be rejected for lack of
//! stock, be returned and be refunded, but only if it was paid. The design
//! has four parts, each in its own module:
//!
//! - **The state machine, twice.** [`domain::state::TRANSITIONS`] is a table
//!   of (from, command, guard, to) rows checked at run time; the book's state
//!   diagram is generated from it. [`domain::typestate`] encodes the same
//!   machine in types, so an illegal transition does not compile (trybuild
//!   proves it). [`domain::order`] holds the aggregate: `decide` turns a
//!   command into an event or a named refusal, `evolve` applies an event,
//!   and folding an order's events gives back the order.
//! - **Persistence.** [`store::PgStore`] keeps the current row in `orders`
//!   (with a `version` column for optimistic concurrency), appends to the
//!   append-only `order_events`, and writes an `outbox` row, all in one
//!   transaction. Two writers who read the same version cannot both commit:
//!   `UPDATE ... WHERE version = $expected` lets exactly one through.
//!   [`store::MemoryStore`] is the reference; the model-based test drives
//!   both.
//! - **Events out.** [`relay`] publishes outbox rows to NATS JetStream
//!   (claimed with `FOR UPDATE SKIP LOCKED`, woken by polling or by
//!   LISTEN/NOTIFY), at least once, with `Nats-Msg-Id` for the broker's
//!   dedupe; [`consumer`] applies each message once with an inbox table and
//!   sends what keeps failing to a dead-letter table after `max_deliver`.
//! - **Checkout.** [`saga`] orchestrates order, inventory and payment steps,
//!   with a pivot (capture), compensations in reverse order, a semantic
//!   lock (the `pending` state), timeouts, retries, a dead-letter state, and
//!   recovery of a coordinator that died half-way, one coordinator per
//!   saga (an advisory-lock claim; saga-row writes fenced by status and step).
//!
//! [`service`] exposes it over HTTP (errors as problem+json); [`load`] and
//! the bench measure it; [`capacity`] turns the requirements and the
//! measurement into the capacity table; [`generated`] writes the diagram.
#![warn(missing_docs)]

#[cfg(feature = "book")]
pub mod book;
pub mod capacity;
pub mod consumer;
pub mod domain;
pub mod generated;
pub mod load;
pub mod relay;
#[cfg(feature = "book")]
pub mod report;
pub mod saga;
pub mod service;
pub mod store;
