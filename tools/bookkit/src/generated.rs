//! Rendering, checking and writing [`GeneratedFile`]s.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::chapter::{GeneratedFile, Source};

/// The outcome of comparing one generated file with the file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The file matches what the generator produces.
    Current,
    /// The file differs from (or is missing compared to) the generator's output.
    Stale,
    /// The generator could not run here (PostgreSQL is absent).
    Skipped(String),
}

/// Runs `g` and returns its output, or `Ok(None)` when its service is unavailable.
pub fn render(g: &GeneratedFile, database_url: Option<&str>) -> Result<Option<String>> {
    match g.source {
        Source::Pure(f) => f().map(Some),
        Source::Postgres(f) => match database_url {
            Some(url) => f(url).map(Some),
            None => Ok(None),
        },
    }
    .with_context(|| format!("generator for {}", g.path))
}

/// Compares each generated file's fresh output with the file under `root`.
pub fn check(
    root: &Path,
    files: &[GeneratedFile],
    database_url: Option<&str>,
) -> Result<Vec<(PathBuf, Status)>> {
    let mut out = Vec::new();
    for g in files {
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

/// Writes each file's output under `root`; returns the paths that changed.
pub fn write_all(
    root: &Path,
    files: &[GeneratedFile],
    database_url: Option<&str>,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for g in files {
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
