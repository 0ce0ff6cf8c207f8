//! Chores of the book, as a library so `tests/book.rs` can reuse them.
//!
//! The binary (`cargo xtask ...`) is a thin command-line front over these
//! modules. xtask depends on no chapter crate: `serve` and `build` (the
//! reader's path) compile none, nor any async runtime or browser driver.
//! `gen` and `bench-report` run the binary of `tools/chapters`, which lists
//! the chapters; `e2e` and `pdf` run the binary of `tools/browser`.

pub mod book;
pub mod http;
pub mod serve;
pub mod sources;
