//! Building the book in-process, with the same library versions the book
//! checks use, so `cargo xtask build` needs no installed binaries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use mdbook_driver::MDBook;
use mdbook_driver::config::Config;

/// Loads the book at `root`, set to build into `build_dir`, without the mermaid step.
///
/// The `[preprocessor.mermaid]` table in `book.toml` names the
/// `mdbook-mermaid` binary, which `mdbook serve` needs. Here the table is
/// removed so the driver does not look for the binary; callers add the
/// library's preprocessor with `with_preprocessor(mdbook_mermaid::Mermaid)`
/// (or leave it out, which the book checks do to prove the omission is seen).
pub fn load(root: &Path, build_dir: &Path) -> Result<MDBook> {
    let toml = root.join("book.toml");
    let mut config =
        Config::from_disk(&toml).with_context(|| format!("reading {}", toml.display()))?;
    let mut preprocessors: BTreeMap<String, serde_json::Value> = config
        .preprocessors()
        .context("reading the [preprocessor] table")?;
    preprocessors.remove("mermaid");
    config
        .set("preprocessor", preprocessors)
        .map_err(|e| anyhow!("rewriting [preprocessor]: {e}"))?;
    config.build.build_dir = build_dir.to_path_buf();
    MDBook::load_with_config(root, config)
        .map_err(|e| anyhow!("loading the book at {}: {e:#}", root.display()))
}

/// Builds the HTML book rooted at `root` into `dest`; returns `dest`.
///
/// `mermaid: false` leaves diagrams as code blocks (for tests of the checks).
pub fn build_html(root: &Path, dest: &Path, mermaid: bool) -> Result<PathBuf> {
    let mut book = load(root, dest)?;
    if mermaid {
        book.with_preprocessor(mdbook_mermaid::Mermaid);
    }
    book.build()
        .map_err(|e| anyhow!("building the book: {e:#}"))?;
    Ok(dest.to_path_buf())
}
