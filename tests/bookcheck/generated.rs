//! Check 6: every generated file on disk is what its generator produces now.
//!
//! The generators are `chapters::generated_files()` (fixtures pass their
//! own). A generator that needs PostgreSQL is skipped with a loud line when
//! the server is absent (a failure under `SDB_REQUIRE_SERVICES=1`, through
//! `testkit`).

use std::io::Write;
use std::path::Path;

use bookkit::generated::Status;
use bookkit::{GeneratedFile as Generator, Source};

use super::{Problem, relative};

/// The PostgreSQL admin URL, probed only when some generator needs it.
pub fn database_url_for(generators: &[Generator]) -> Option<String> {
    let needs_postgres = generators
        .iter()
        .any(|g| matches!(g.source, Source::Postgres(_)));
    if needs_postgres {
        testkit::postgres_available_blocking()
    } else {
        None
    }
}

/// Check 6 for `generators` under `root`.
pub fn check(root: &Path, generators: &[Generator], database_url: Option<&str>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for g in generators {
        // One generator at a time, so a failing one does not hide the others.
        match bookkit::generated::check(root, std::slice::from_ref(g), database_url) {
            Err(e) => problems.push(Problem::file(
                g.path,
                format!("its generator failed: {e:#}"),
            )),
            Ok(results) => {
                for (path, status) in results {
                    let rel = relative(root, &path);
                    match status {
                        Status::Current => {}
                        Status::Stale if !path.exists() => problems.push(Problem::file(
                            rel,
                            "generated file is missing; run `cargo xtask gen` and commit the result",
                        )),
                        Status::Stale => problems.push(Problem::file(
                            rel,
                            "generated file is stale (differs from what its generator produces now); \
                             run `cargo xtask gen` and commit the result",
                        )),
                        Status::Skipped(why) => {
                            let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
                        }
                    }
                }
            }
        }
    }
    problems
}
