//! Pinned external tools, installed on demand into `target/tools`.
//!
//! `mdbook serve` (live reload) needs the real binaries. They are installed
//! with `cargo install --locked --version <pinned>` into the repository's
//! own `target/tools`, so the version is the project's choice, not whatever
//! happens to be on the reader's PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A tool the book needs, with the version it is pinned to.
pub struct Tool {
    /// Crate and binary name.
    pub name: &'static str,
    /// Exact version; must match the library versions in `Cargo.toml`.
    pub version: &'static str,
}

/// mdBook itself.
pub const MDBOOK: Tool = Tool {
    name: "mdbook",
    version: "0.5.4",
};
/// The mermaid preprocessor.
pub const MDBOOK_MERMAID: Tool = Tool {
    name: "mdbook-mermaid",
    version: "0.17.1",
};

/// Where pinned tools are installed.
pub fn tools_root(repo: &Path) -> PathBuf {
    repo.join("target").join("tools")
}

/// The path of `tool`'s binary, installing it first when it is absent or of another version.
pub fn ensure(repo: &Path, tool: &Tool) -> Result<PathBuf> {
    let root = tools_root(repo);
    let bin = root.join("bin").join(tool.name);
    if installed_version(&bin).as_deref() == Some(tool.version) {
        return Ok(bin);
    }
    eprintln!(
        "installing {} {} into {} (once)",
        tool.name,
        tool.version,
        root.display()
    );
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "--locked", "--version", tool.version, "--root"])
        .arg(&root)
        .arg(tool.name)
        .status()
        .with_context(|| format!("running cargo install {}", tool.name))?;
    if !status.success() {
        bail!("cargo install {} {} failed", tool.name, tool.version);
    }
    match installed_version(&bin) {
        Some(v) if v == tool.version => Ok(bin),
        other => bail!(
            "{} reports version {other:?} after install, expected {}",
            bin.display(),
            tool.version
        ),
    }
}

/// The version a binary reports with `--version` (last word, without a leading `v`).
fn installed_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let word = text.split_whitespace().last()?;
    Some(word.trim_start_matches('v').to_string())
}
