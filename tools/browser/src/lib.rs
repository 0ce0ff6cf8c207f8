//! The book in headless Chromium: the browser suite (`cargo xtask e2e`) and
//! the PDF (`cargo xtask pdf`), as a library so `tests/e2e.rs` can reuse them.
//!
//! A crate of its own so that `cargo xtask serve`, the reader's first
//! command, compiles no WebDriver client and no async HTTP stack: xtask runs
//! this crate's binary (`cargo run -p browser -- e2e|pdf ...`) for these two
//! commands. The book itself is built with [`xtask::book`].

pub mod e2e;
pub mod pdf;
pub mod static_server;
