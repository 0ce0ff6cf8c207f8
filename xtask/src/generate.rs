//! Every generated file in the book, and the code that produces it.
//!
//! A generated file is committed; `cargo xtask gen` rewrites them all and
//! `cargo xtask gen --check` (and `tests/book.rs`) fails when one on disk
//! differs from what its generator produces now.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// How a generator computes its file's contents.
#[derive(Clone, Copy)]
pub enum Source {
    /// A pure function of the code in the repository.
    Pure(fn() -> Result<String>),
    /// Needs PostgreSQL; receives the server's admin URL (for `testkit`).
    Postgres(fn(&str) -> Result<String>),
}

/// One generated file: where it lives (relative to the repository root) and how it is made.
#[derive(Clone, Copy)]
pub struct Generator {
    /// Path relative to the repository root, with `/` separators.
    pub path: &'static str,
    /// How the contents are computed.
    pub source: Source,
}

/// Every generated file of the book.
pub fn registry() -> Vec<Generator> {
    vec![
        // Entries are added by each chapter; keep them sorted by path.
        Generator {
            path: "src/method/generated/capacity-example-inputs.md",
            source: Source::Pure(|| Ok(capacity::worked_example_inputs_markdown())),
        },
        Generator {
            path: "src/method/generated/capacity-example.md",
            source: Source::Pure(|| Ok(capacity::worked_example_markdown()?)),
        },
        Generator {
            path: "src/parking-reservation/generated/capacity.md",
            // Computed from the committed measurement that `bench-report parking-reservation` writes.
            source: Source::Pure(|| {
                parking_reservation::capacity::capacity_markdown(&repo_file(parking_reservation::capacity::MEASURED_PATH)?)
            }),
        },
        Generator {
            path: "src/parking-reservation/generated/explain-assign.md",
            source: Source::Postgres(parking_reservation::generated::explain_assign),
        },
        Generator {
            path: "src/parking-reservation/generated/explain-availability.md",
            source: Source::Postgres(parking_reservation::generated::explain_availability),
        },
        Generator {
            path: "src/parking-reservation/generated/pricing.md",
            source: Source::Pure(parking_reservation::generated::pricing),
        },
        Generator {
            path: "src/parking-reservation/generated/state-diagram.md",
            source: Source::Pure(parking_reservation::generated::state_diagram),
        },
        Generator {
            path: "src/url-shortener/generated/capacity.md",
            // Computed from the committed measurement that `bench-report` writes.
            source: Source::Pure(|| {
                url_shortener::capacity::capacity_markdown(&repo_file(
                    "src/url-shortener/generated/measured.json",
                )?)
            }),
        },
        Generator {
            path: "src/url-shortener/generated/collision-simulation.md",
            source: Source::Pure(|| Ok(url_shortener::collisions::collision_simulation_markdown())),
        },
        Generator {
            path: "src/url-shortener/generated/collisions.md",
            source: Source::Pure(|| Ok(url_shortener::collisions::collision_table_markdown())),
        },
        Generator {
            path: "src/url-shortener/generated/explain-redirect.md",
            source: Source::Postgres(url_shortener::generated::explain_redirect),
        },
        Generator {
            path: "src/url-shortener/generated/explain-stats.md",
            source: Source::Postgres(url_shortener::generated::explain_stats),
        },
    ]
}

/// Reads a committed file of the repository (an input some generators compute from).
pub fn repo_file(relative: &str) -> Result<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().unwrap_or(manifest);
    let path = root.join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The outcome of comparing one generator with the file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The file matches what the generator produces.
    Current,
    /// The file differs from (or is missing compared to) the generator's output.
    Stale,
    /// The generator could not run here (for example PostgreSQL is absent).
    Skipped(String),
}

/// Runs `g` and returns its output, or `Ok(None)` when its service is unavailable.
pub fn render(g: &Generator, database_url: Option<&str>) -> Result<Option<String>> {
    match g.source {
        Source::Pure(f) => f().map(Some),
        Source::Postgres(f) => match database_url {
            Some(url) => f(url).map(Some),
            None => Ok(None),
        },
    }
    .with_context(|| format!("generator for {}", g.path))
}

/// Compares each generator's output with the file under `root`.
pub fn check(
    root: &Path,
    generators: &[Generator],
    database_url: Option<&str>,
) -> Result<Vec<(PathBuf, Status)>> {
    let mut out = Vec::new();
    for g in generators {
        let path = root.join(g.path);
        let status = match render(g, database_url)? {
            None => Status::Skipped(format!("needs PostgreSQL to regenerate {}", g.path)),
            Some(fresh) => {
                let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
                if on_disk == fresh {
                    Status::Current
                } else {
                    Status::Stale
                }
            }
        };
        out.push((path, status));
    }
    Ok(out)
}

/// Writes every generator's output under `root`; returns the paths written.
pub fn write_all(
    root: &Path,
    generators: &[Generator],
    database_url: Option<&str>,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for g in generators {
        let Some(fresh) = render(g, database_url)? else {
            eprintln!("SKIPPED: {} needs PostgreSQL", g.path);
            continue;
        };
        let path = root.join(g.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let unchanged = std::fs::read_to_string(&path).is_ok_and(|s| s == fresh);
        if !unchanged {
            std::fs::write(&path, fresh).with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}
