//! Building the book in-process, with the same library versions the book
//! checks use, so `cargo xtask build` needs no installed binaries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use mdbook_driver::MDBook;
use mdbook_driver::config::Config;

/// Builds the HTML book rooted at `root` into `dest`; returns `dest`.
///
/// The `[preprocessor.mermaid]` table in `book.toml` names the
/// `mdbook-mermaid` binary, which `mdbook serve` needs. Here the table is
/// replaced by the library's preprocessor, so nothing has to be installed.
/// `mermaid: false` leaves diagrams unprocessed, which the book checks use
/// to prove that a missing preprocessor is noticed.
pub fn build_html(root: &Path, dest: &Path, mermaid: bool) -> Result<PathBuf> {
    let mut config = Config::from_disk(root.join("book.toml"))
        .with_context(|| format!("reading {}", root.join("book.toml").display()))?;
    config
        .set("preprocessor", BTreeMap::<String, String>::new())
        .map_err(|e| anyhow!("clearing [preprocessor]: {e}"))?;
    config
        .set("build.build-dir", dest)
        .map_err(|e| anyhow!("setting build-dir: {e}"))?;
    let mut book = MDBook::load_with_config(root, config)
        .map_err(|e| anyhow!("loading the book at {}: {e:#}", root.display()))?;
    if mermaid {
        book.with_preprocessor(mdbook_mermaid::Mermaid);
    }
    book.build()
        .map_err(|e| anyhow!("building the book: {e:#}"))?;
    Ok(dest.to_path_buf())
}
