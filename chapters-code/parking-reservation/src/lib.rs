//! Parking reservation: concurrency control done by the database.
//!
//! Drivers find a lot near a place and reserve a *kind* of spot (compact,
//! regular, large, EV, accessible) for a time range; the service assigns
//! the free spot nearest the ground floor, holds it at a quoted price until
//! the driver pays and confirms, and later records check-in, check-out and
//! the charge: the quote, plus any overstay. The one invariant is
//!
//! > no two live reservations of the same spot overlap in time,
//!
//! and the design's central decision is *where* it is enforced: not in Rust,
//! but by a PostgreSQL exclusion constraint,
//! `EXCLUDE USING gist (spot_id WITH =, during WITH &&) WHERE (state IN
//! ('held', 'confirmed', 'checked_in'))`. Any number of service instances
//! may race. The reserve path skips spots other reserves are taking
//! (`FOR NO KEY UPDATE SKIP LOCKED`) and inserts with `ON CONFLICT ON
//! CONSTRAINT ... DO NOTHING`, so a lost race costs one more query, never a
//! deadlock or a rollback ([`store::ReservePath`] keeps the alternatives,
//! which [`stadium`] measures). [`strategies`] compares the constraint with
//! check-then-insert, `SELECT ... FOR UPDATE` and SERIALIZABLE.
//!
//! The crate reads top-down:
//!
//! - [`domain`]: pure types and rules. A [`domain::TimeRange`] is aligned to
//!   15-minute slots; the state machine's transition table is data
//!   ([`domain::TRANSITIONS`]) and the book's diagram is generated from it;
//!   prices are integer cents; every time rule is decided by
//!   [`domain::Reservation::apply`] against the request's clock.
//! - [`clock`]: "now" is injected, so tests move time.
//! - [`assign`]: the assignment rule as SQL and as a brute-force reference
//!   that a property test compares it with.
//! - [`idempotency`]: a retried reserve with the same `Idempotency-Key`
//!   returns the first answer; the key is claimed first, inside the
//!   reservation's transaction.
//! - [`store`]: the [`store::ReservationStore`] trait, an in-memory
//!   adapter and the PostgreSQL adapter; one behaviour suite runs on both.
//!   Every change is recorded in an append-only history.
//! - [`service`]: axum routes; errors become RFC 9457 problem documents in
//!   one place, database errors by SQLSTATE.
//! - [`strategies`], [`stadium`], [`load`], [`report`]: the comparisons and
//!   measured runs behind the chapter's tables, each ending at its deadline
//!   ([`cutoff`]); [`capacity`]: the
//!   requirements as capacity inputs; [`generated`]: the computed files.
#![warn(missing_docs)]

pub mod assign;
#[cfg(feature = "book")]
pub mod book;
pub mod capacity;
pub mod clock;
pub mod cutoff;
pub mod domain;
#[cfg(feature = "book")]
pub mod generated;
pub mod idempotency;
pub mod load;
#[cfg(feature = "book")]
pub mod report;
pub mod service;
pub mod stadium;
pub mod store;
pub mod strategies;
