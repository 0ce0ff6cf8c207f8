//! `cargo xtask <command>`: every chore of the book in one place.
//!
//! ```text
//! cargo xtask serve [--hostname H] [--port P] [--open]   read the book with live reload
//! cargo xtask build                                      static site in book/
//! cargo xtask gen [--check] [slug]                       regenerate (or verify) generated files
//! cargo xtask bench-report [--render-only] [filter]      measure, commit results, rewrite tables
//! cargo xtask guards [--render-only] [slug]              remove each guard, run the tests that must fail
//! cargo xtask e2e                                        test the built book in headless Chromium
//! cargo xtask pdf                                        print the book to book/designing-systems-in-rust.pdf
//! ```
//!
//! `gen` and `bench-report` run `tools/chapters` (which knows the chapters);
//! `e2e` and `pdf` run `tools/browser` (headless Chromium over WebDriver), so
//! `serve` and `build` compile neither a chapter crate nor a browser driver.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use xtask::book;

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
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    match cmd {
        "serve" => serve(&root, rest),
        "build" => {
            let dest = root.join("book");
            book::build_html(&root, &dest, true)?;
            println!("wrote {}", dest.join("index.html").display());
            Ok(ExitCode::SUCCESS)
        }
        "gen" | "bench-report" | "guards" => run_package(&root, "chapters", cmd, rest),
        "e2e" | "pdf" => run_package(&root, "browser", cmd, rest),
        "help" | "--help" | "-h" => {
            println!("{}", USAGE);
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

const USAGE: &str = "usage: cargo xtask <command>
  serve [--hostname H] [--port P] [--open]  read the book with live reload (builds in-process, installs nothing)
  build                                     write the static site to book/
  gen [--check] [slug]                      regenerate generated files; --check fails on stale ones
  bench-report [--render-only] [filter]     measure, save results in src/<slug>/generated/results/, rewrite tables
  guards [--render-only] [slug]             remove each guard of guards.toml in a scratch copy, run the tests that must fail
  e2e [--book DIR] [--pages-only]           build the book, test every page in headless Chromium
      [--page PAGE]                         ... or only the per-page checks of PAGE (url-shortener/index.html)
  pdf [--book DIR]                          build book/ and print it to book/designing-systems-in-rust.pdf";

/// The repository root: the parent of this crate's directory.
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn serve(root: &Path, rest: &[String]) -> Result<ExitCode> {
    let mut options = xtask::serve::Options {
        hostname: "127.0.0.1".to_string(),
        port: 3000,
        open: false,
    };
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--hostname" | "-n" => {
                options.hostname = it.next().context("--hostname needs a value")?.clone()
            }
            "--port" | "-p" => {
                let port = it.next().context("--port needs a value")?;
                options.port = port
                    .parse()
                    .with_context(|| format!("--port {port:?} is not a port number"))?;
            }
            "--open" | "-o" => options.open = true,
            other => bail!("unknown serve option {other:?}"),
        }
    }
    xtask::serve::run(root, &options)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `cargo run -p <package> -- <cmd> <rest>`: `chapters` (the runner
/// that knows the chapters) or `browser` (the browser suite and the PDF).
///
/// The working directory is left as it is, so a relative `--book DIR` means
/// what it meant to `cargo xtask`.
fn run_package(root: &Path, package: &str, cmd: &str, rest: &[String]) -> Result<ExitCode> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .arg("run")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["--package", package, "--"])
        .arg(cmd)
        .args(rest)
        .status()
        .with_context(|| format!("running cargo run -p {package}"))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
