//! Parking reservation: concurrency control done by the database.
//!
//! Drivers reserve a *kind* of spot (compact, regular, large, EV,
//! accessible) in a lot for a time range; the service assigns a concrete
//! spot, holds it for ten minutes until the driver confirms, and later
//! records check-in, check-out and the charge. The one invariant is
//!
//! > no two live reservations of the same spot overlap in time,
//!
//! and the design's central decision is *where* it is enforced: not in Rust,
//! but by a PostgreSQL exclusion constraint,
//! `EXCLUDE USING gist (spot_id WITH =, during WITH &&) WHERE (state IN
//! ('held', 'confirmed', 'checked_in'))`. Any number of service instances
//! may race; the database refuses the loser's INSERT with SQLSTATE 23P01,
//! and the loser retries with the next free spot. The module
//! [`strategies`] compares this with the alternatives (check-then-insert,
//! `SELECT ... FOR UPDATE`, SERIALIZABLE with retry) under real contention.
//!
//! The crate reads top-down:
//!
//! - [`domain`]: pure types and rules. A [`domain::TimeRange`] is aligned to
//!   15-minute slots, ordered and at most 7 days long; the state machine's
//!   transition table is data ([`domain::TRANSITIONS`]) and the book's state
//!   diagram is generated from it; prices are integer cents.
//! - [`clock`]: "now" is injected, so tests move time to expire holds.
//! - [`assign`]: the lowest-level free spot of a kind, as SQL and as a
//!   brute-force reference that the property test compares it with.
//! - [`idempotency`]: a retried reserve with the same `Idempotency-Key`
//!   returns the first answer; insert-first, so concurrent retries make one
//!   reservation.
//! - [`store`]: the [`store::ReservationStore`] trait, an in-memory adapter
//!   and the PostgreSQL adapter; one behaviour suite runs against both.
//! - [`service`]: axum routes; errors become RFC 9457 problem+json in one place.
//! - [`strategies`], [`load`], [`report`]: the comparison and the measured
//!   runs behind the chapter's tables; [`capacity`]: the requirements as
//!   inputs of the capacity model; [`generated`]: the computed files.
#![warn(missing_docs)]

pub mod assign;
#[cfg(feature = "book")]
pub mod book;
pub mod capacity;
pub mod clock;
pub mod domain;
#[cfg(feature = "book")]
pub mod generated;
pub mod idempotency;
#[cfg(feature = "book")]
pub mod load;
#[cfg(feature = "book")]
pub mod report;
pub mod service;
pub mod stadium;
pub mod store;
pub mod strategies;
