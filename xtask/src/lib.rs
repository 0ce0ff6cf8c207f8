//! Chores of the book, as a library so `tests/book.rs` can reuse them.
//!
//! The binary (`cargo xtask ...`) is a thin command-line front over these
//! modules. xtask depends on no chapter crate: `serve`, `build`, `e2e` and
//! `pdf` (the reader's path) compile none. `gen` and `bench-report` run the
//! binary of `tools/chapters`, which lists the chapters.

pub mod book;
pub mod e2e;
pub mod pdf;
pub mod serve;
pub mod sources;
pub mod static_server;
