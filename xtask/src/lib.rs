//! Chores of the book, as a library so `tests/book.rs` can reuse them.
//!
//! The binary (`cargo xtask ...`) is a thin command-line front over these
//! modules. The generator registry lives here because two callers need it:
//! `cargo xtask gen` writes the files, and the book check compares them.

pub mod bench_report;
pub mod book;
pub mod e2e;
pub mod generate;
pub mod loadgen;
pub mod machine;
pub mod pdf;
pub mod static_server;
pub mod tools;
