//! A home timeline like Twitter's: users post, follow, unfollow, block and
//! delete, and read the posts of the accounts they follow, newest first.
//!
//! Reads outnumber writes many times over, and a few authors have
//! millions of followers. The design follows from those two facts. A
//! timeline is a capped list of post ids per user in Redis, written when a
//! post is made (fan-out on write), so that a read is one range of one
//! key. An author with very many followers would make one post cost
//! millions of writes, so posts by authors above a follower threshold are
//! not fanned out but merged in at read time (the hybrid). The threshold
//! is measured, not guessed (`sim`).
//!
//! The crate reads top-down:
//!
//! - [`domain`]: Snowflake ids (time-sortable 64-bit), post bodies and
//!   handles that can only be built by parsing, signed cursors, and the
//!   k-way merge.
//! - [`store`]: the source of truth (users, posts, follows, blocks) and the
//!   fan-out queue, in memory or in PostgreSQL. A post and its fan-out job
//!   are one transaction.
//! - [`cache`]: timelines as capped, sorted, duplicate-free lists, in memory
//!   or in Redis (LIST or ZSET), kept by Lua scripts.
//! - [`timeline`]: the three strategies behind one trait, [`reference`]
//!   the naive model they are tested against.
//! - [`fanout`]: the worker that drains the queue, in batches, idempotently.
//! - [`app`]: the use cases; [`service`]: the axum routes and problem+json errors.
//! - [`sim`]: the power-law graph and the threshold sweep; [`capacity`] and
//!   [`generated`]: what the book prints.
//!
//! The binary serves on `127.0.0.1:8081` in memory; `DATABASE_URL` and
//! `REDIS_URL` switch to PostgreSQL and Redis.
#![warn(missing_docs)]

pub mod app;
#[cfg(feature = "book")]
pub mod book;
pub mod cache;
pub mod capacity;
pub mod config;
pub mod domain;
pub mod fanout;
#[cfg(feature = "book")]
pub mod generated;
pub mod reference;
#[cfg(feature = "book")]
pub mod report;
pub mod service;
pub mod sim;
pub mod store;
pub mod timeline;
