//! `cargo xtask <command>`: every chore of the book in one place.
//!
//! ```text
//! cargo xtask serve [--hostname H] [--port P] [--open]   read the book with live reload
//! cargo xtask build                                      static site in book/
//! cargo xtask gen [--check]                              regenerate (or verify) generated files
//! cargo xtask bench-report [--render-only] [filter]      run benches, write tables and plots
//! cargo xtask e2e                                        test the built book in headless Chromium
//! cargo xtask pdf                                        print the book to book/designing-systems-in-rust.pdf
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use xtask::{book, generate, tools};

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
        "gen" => gen_files(&root, rest),
        "bench-report" => {
            // `--render-only` rewrites the tables from the results on disk, measuring nothing.
            let render_only = rest.iter().any(|a| a == "--render-only");
            let filters: Vec<&String> = rest.iter().filter(|a| *a != "--render-only").collect();
            let filter = match filters.as_slice() {
                [] => None,
                [f] => Some(f.as_str()),
                other => bail!("bench-report takes at most one filter, got {other:?}"),
            };
            let options = xtask::bench_report::RunOptions {
                measure: !render_only,
                ..Default::default()
            };
            xtask::bench_report::run_with(filter, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        "e2e" => xtask::e2e::cli(&root, rest),
        "pdf" => xtask::pdf::cli(&root, rest),
        "help" | "--help" | "-h" => {
            println!("{}", USAGE);
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

const USAGE: &str = "usage: cargo xtask <command>
  serve [--hostname H] [--port P] [--open]  read the book with live reload (installs pinned mdbook)
  build                                     write the static site to book/
  gen [--check]                             regenerate generated files; --check fails on stale ones
  bench-report [--render-only] [filter]     run benches and write tables and plots into src/
  e2e [--book DIR] [--pages-only]           build the book, test every page in headless Chromium
  pdf [--book DIR]                          build book/ and print it to book/designing-systems-in-rust.pdf";

/// The repository root: the parent of this crate's directory.
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn serve(root: &Path, rest: &[String]) -> Result<ExitCode> {
    let mut hostname = "127.0.0.1".to_string();
    let mut port = "3000".to_string();
    let mut open = false;
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--hostname" | "-n" => {
                hostname = it.next().context("--hostname needs a value")?.clone()
            }
            "--port" | "-p" => port = it.next().context("--port needs a value")?.clone(),
            "--open" | "-o" => open = true,
            other => bail!("unknown serve option {other:?}"),
        }
    }
    let mdbook = tools::ensure(root, &tools::MDBOOK)?;
    let mermaid = tools::ensure(root, &tools::MDBOOK_MERMAID)?;
    // mdbook finds the preprocessor by the command name in book.toml, so the
    // pinned binary's directory goes first on PATH.
    let bin_dir = mermaid.parent().context("tool path has no parent")?;
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let mut cmd = Command::new(mdbook);
    cmd.current_dir(root).env("PATH", path).args([
        "serve",
        "--hostname",
        &hostname,
        "--port",
        &port,
    ]);
    if open {
        cmd.arg("--open");
    }
    let status = cmd.status().context("running mdbook serve")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn gen_files(root: &Path, rest: &[String]) -> Result<ExitCode> {
    let check = match rest {
        [] => false,
        [flag] if flag == "--check" => true,
        other => bail!("unknown gen arguments {other:?}"),
    };
    let registry = generate::registry();
    let needs_pg = registry
        .iter()
        .any(|g| matches!(g.source, generate::Source::Postgres(_)));
    let db = if needs_pg {
        testkit::postgres_available_blocking()
    } else {
        None
    };
    if check {
        let mut stale = 0;
        for (path, status) in generate::check(root, &registry, db.as_deref())? {
            match status {
                generate::Status::Current => {}
                generate::Status::Stale => {
                    stale += 1;
                    eprintln!("stale: {} (run `cargo xtask gen`)", path.display());
                }
                generate::Status::Skipped(why) => eprintln!("SKIPPED: {why}"),
            }
        }
        if stale > 0 {
            return Ok(ExitCode::FAILURE);
        }
        println!("all {} generated files are current", registry.len());
    } else {
        let written = generate::write_all(root, &registry, db.as_deref())?;
        for p in &written {
            println!("wrote {}", p.display());
        }
        println!(
            "{} of {} generated files changed",
            written.len(),
            registry.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
