//! A URL shortener: create a short code for a long URL, redirect the code,
//! delete it, count its clicks.
//!
//! The design follows from the numbers: 100,000 redirects a second across
//! the fleet with a p95 under 50 ms, a hundred reads per write, links kept
//! for five years. Redirects dominate, so the redirect path touches as
//! little as possible: an in-process cache answers most of them, Redis the
//! next share, and PostgreSQL only the rest. Writing a click never delays
//! a redirect; clicks are counted in memory and written in batches.
//!
//! The crate reads top-down:
//!
//! - [`domain`]: pure types. A [`domain::Code`], [`domain::Alias`],
//!   [`domain::TargetUrl`], [`domain::Expiry`] or
//!   [`domain::ManagementToken`] can only be built by parsing, so invalid
//!   input is refused once, at the edge, with a named reason.
//! - [`codegen`]: where codes come from. Base62, and four strategies behind
//!   one trait: a counter, random codes, a hash of the URL, and blocks of ids
//!   leased from a ticket server and scrambled by a Feistel permutation (the
//!   default). [`collisions`] computes and simulates the birthday bound that
//!   decides how long random codes must be.
//! - [`store`]: the [`store::LinkStore`] trait, with an in-memory adapter
//!   and a PostgreSQL one. The database's unique constraint on the code,
//!   not a check in Rust, is what makes two concurrent creates of one alias
//!   end with one winner.
//! - [`cache`]: moka in front of Redis in front of the store, with
//!   stampede protection, negative caching, timeouts that make Redis
//!   optional, and writes that cannot undo a change: a delete writes a
//!   tombstone, a fill after a store read is `SET NX`.
//! - [`scan`]: the per-client budget of lookups that find nothing, the
//!   defence against scanning, and its measurement. [`race`]: the alias
//!   race with and without the unique constraint.
//! - [`clicks`]: the bounded channel and batching task that count clicks
//!   off the redirect path, and flush on shutdown.
//! - [`shortener`]: the use cases, which tie the above together.
//! - [`proxy`]: who the client is, behind the proxies we trust.
//! - [`service`]: the axum routes, the error-to-status mapping (RFC 9457
//!   problem details), per-client rate limiting before the body is read,
//!   the management token on delete and stats, and graceful shutdown.
//!
//! The binary (`src/main.rs`) serves on `127.0.0.1:8080` with the in-memory
//! store; `DATABASE_URL` switches to PostgreSQL (and requires
//! `SCRAMBLE_KEY`), `REDIS_URL` adds Redis, and `TRUST_FORWARDED_FOR`
//! names the proxies whose `X-Forwarded-For` says who the client is.
#![warn(missing_docs)]

#[cfg(feature = "book")]
pub mod book;
pub mod cache;
pub mod capacity;
pub mod clicks;
pub mod codegen;
pub mod collisions;
pub mod config;
pub mod domain;
#[cfg(feature = "book")]
pub mod generated;
pub mod metrics;
pub mod proxy;
pub mod race;
#[cfg(feature = "book")]
pub mod report;
pub mod scan;
pub mod service;
pub mod shortener;
pub mod store;

pub use config::Config;
pub use service::App;
