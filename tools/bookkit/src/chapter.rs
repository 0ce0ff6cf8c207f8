//! The one entry point of a chapter crate: [`Chapter`].

use anyhow::Result;

/// Everything a chapter publishes into the book (see the crate docs).
pub struct Chapter {
    /// The chapter's slug: its folder under `src/` and `chapters-code/`, and its package name.
    pub slug: &'static str,
    /// The cargo package whose bench targets the report runs (the slug, for a chapter crate).
    pub package: &'static str,
    /// Files under `src/` computed by the chapter's code, sorted by path.
    pub generated: Vec<GeneratedFile>,
    /// What `cargo xtask bench-report <slug>` measures, if anything.
    pub report: Option<Report>,
}

/// How a generated file's contents are computed.
#[derive(Clone, Copy)]
pub enum Source {
    /// A pure function of the repository's code and committed files.
    Pure(fn() -> Result<String>),
    /// Needs PostgreSQL; receives the server's admin URL (for `testkit`).
    Postgres(fn(&str) -> Result<String>),
}

/// One generated file: its path relative to the repository root, and how it is made.
#[derive(Clone, Copy)]
pub struct GeneratedFile {
    /// Path relative to the repository root, `/`-separated (`src/<slug>/generated/x.md`).
    pub path: &'static str,
    /// How the contents are computed.
    pub source: Source,
}

impl GeneratedFile {
    /// A file computed by a pure function.
    pub const fn pure(path: &'static str, f: fn() -> Result<String>) -> Self {
        Self {
            path,
            source: Source::Pure(f),
        }
    }

    /// A file computed against a throwaway PostgreSQL database.
    pub const fn postgres(path: &'static str, f: fn(&str) -> Result<String>) -> Self {
        Self {
            path,
            source: Source::Postgres(f),
        }
    }
}

/// What a chapter measures for `cargo xtask bench-report <slug>`.
///
/// The runner runs `benches` (`cargo bench -p <package> --bench <name>`, with
/// `--features book` when the package has that feature),
/// then `measure`, then keeps every [`crate::BenchResult`] they wrote under
/// `target/sdb-results/<slug>/` during the run and the estimates of the
/// named criterion groups, saving them under `src/<slug>/generated/results/`.
/// Finally it rewrites the chapter's generated files, whose performance
/// tables are computed from those committed results.
#[derive(Clone, Copy)]
pub struct Report {
    /// Bench targets of the chapter's own crate, run in this order.
    pub benches: &'static [&'static str],
    /// Criterion groups whose fresh estimates are saved as results.
    pub criterion_groups: &'static [&'static str],
    /// An optional measurement run after the benches (a load test writing results).
    pub measure: Option<fn() -> Result<()>>,
}
