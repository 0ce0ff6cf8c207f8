//! `cargo run -p browser -- e2e|pdf [options]`: what `cargo xtask e2e` and
//! `cargo xtask pdf` run. Options, output and exit codes are those of the
//! xtask commands (see `xtask/src/main.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode> {
    let root = repo_root();
    match args.split_first() {
        Some((cmd, rest)) if cmd == "e2e" => browser::e2e::cli(&root, rest),
        Some((cmd, rest)) if cmd == "pdf" => browser::pdf::cli(&root, rest),
        _ => bail!("usage: browser e2e [--book DIR] [--pages-only] | browser pdf [--book DIR]"),
    }
}

/// The repository root: two levels above this crate's directory (`tools/browser`).
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}
