//! Every chapter of the book, one line each, and the runner of `gen` and `bench-report`.
//!
//! `cargo xtask gen` and `cargo xtask bench-report` run this crate's binary,
//! so `xtask` itself (and with it `cargo xtask serve`, `build`, `e2e` and
//! `pdf`, the reader's path) compiles no chapter crate.
//!
//! To add a chapter: a line in [`chapters`] and the dependency line (with
//! `features = ["book"]`) in this crate's `Cargo.toml`. CONTRIBUTING.md has
//! the whole list of steps.

pub mod guards;
pub mod latency;
pub mod runner;
pub mod trust;

use bookkit::Chapter;

/// Every chapter (and the method pages and the appendix), in book order.
pub fn chapters() -> Vec<Chapter> {
    vec![
        capacity::book::book(),
        block_errors::book::book(),
        block_idempotency::book::book(),
        block_rate_limiter::book::book(),
        block_cache_aside::book::book(),
        block_retry::book::book(),
        block_outbox::book::book(),
        block_state_machine::book::book(),
        block_service::book::book(),
        url_shortener::book::book(),
        twitter_timeline::book::book(),
        ecommerce::book::book(),
        order_management::book::book(),
        parking_reservation::book::book(),
        inventory::book::book(),
        logging::book::book(),
        ratings::book::book(),
        recommendations::book::book(),
        load_balancer::book::book(),
        latency::book(),
        trust::book(),
        guards::book(),
    ]
}

/// Every generated file of the book, sorted by path.
pub fn generated_files() -> Vec<bookkit::GeneratedFile> {
    let mut files: Vec<_> = chapters().into_iter().flat_map(|c| c.generated).collect();
    files.sort_by_key(|g| g.path);
    files
}
