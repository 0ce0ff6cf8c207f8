//! What a chapter publishes into the book, in one shape for every chapter.
//!
//! A chapter crate owns its book outputs. Behind its `book` feature it has
//! `pub fn book() -> bookkit::Chapter` (in `src/book.rs`), which lists:
//!
//! - its **generated files** ([`GeneratedFile`]): a path under
//!   `src/<slug>/generated/` and a function that computes the contents, either
//!   pure ([`Source::Pure`]) or from a throwaway PostgreSQL database
//!   ([`Source::Postgres`], for `EXPLAIN` plans). `cargo xtask gen` writes
//!   them; `cargo xtask gen --check` and the book checks fail when one on disk
//!   is stale;
//! - its **report** ([`Report`]): the bench targets to run, the criterion
//!   groups whose estimates to keep, and an optional measure step. `cargo
//!   xtask bench-report <slug>` runs them and saves every measurement as a
//!   [`BenchResult`] under `src/<slug>/generated/results/`, committed with the
//!   machine, commit and date of the run that measured it.
//!
//! Performance tables and plots are generated files like any other: pure
//! functions of the committed results ([`results::committed`]). So
//! `bench-report --render-only` (and `gen`) reproduce the committed tables
//! exactly, and each table's header names the run that measured it
//! ([`table::measured_header`]), not the moment it was rendered.
//!
//! The rest is shared so chapters look alike: [`table`] (Markdown tables and
//! number formats), [`plot`] (SVG charts legible at the book's width),
//! [`rounds`] (a path and its ceiling measured interleaved over several
//! rounds, reported as the median ratio with its spread), [`loadgen`] (a
//! bounded loopback HTTP load generator and a constant-response ceiling),
//! [`criterion`] (reading criterion's output) and [`machine`].
//!
//! This crate depends on no chapter; the runner (`tools/chapters`) lists the
//! chapters, one line each.

pub mod chapter;
pub mod criterion;
pub mod generated;
pub mod guards;
pub mod loadgen;
pub mod machine;
pub mod plot;
pub mod results;
pub mod rounds;
pub mod table;

pub use chapter::{Chapter, GeneratedFile, Report, Source};
pub use machine::MachineHeader;
pub use results::{BenchResult, ResultKind, Spread};

use std::path::{Path, PathBuf};

/// A load bench's `main`: runs `run` on a multi-threaded runtime; an error
/// is printed with its causes and ends the process with a failing code.
pub fn bench_main<F>(run: impl FnOnce() -> F) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: building the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The cargo target directory: `CARGO_TARGET_DIR` (relative to the root if relative), else `<root>/target`.
pub fn target_dir() -> PathBuf {
    let root = repo_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Reads a committed file of the repository, by its path relative to the root.
pub fn repo_file(relative: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}
