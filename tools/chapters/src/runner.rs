//! `gen` and `bench-report` over [`crate::chapters`].
//!
//! - `gen [--check] [slug]` rewrites (or checks) every generated file.
//! - `bench-report [--render-only] [filter]` runs the matching chapters'
//!   bench targets and measure steps, saves what they measured under
//!   `src/<slug>/generated/results/`, then rewrites every generated file of
//!   the book (performance tables are computed from those results, and some
//!   quote other chapters' figures). With
//!   `--render-only` it measures nothing and only rewrites, so the tables it
//!   writes are the committed ones, headed by the run that measured them.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, bail};
use bookkit::criterion::read_criterion_group;
use bookkit::generated::{self, Status};
use bookkit::{Chapter, MachineHeader, results};
use serde::Deserialize;

use crate::chapters;

const USAGE: &str = "usage: chapters gen [--check] [slug] | chapters bench-report [--render-only] [filter] | chapters guards [--render-only] [slug]";

/// Parses `args` and runs the command.
pub fn cli(args: &[String]) -> Result<ExitCode> {
    let (cmd, rest) = args.split_first().context(USAGE)?;
    let flag = |f: &str| rest.iter().any(|a| a == f);
    let filters: Vec<&str> = rest
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    if let Some(bad) = rest
        .iter()
        .find(|a| a.starts_with("--") && !["--check", "--render-only"].contains(&a.as_str()))
    {
        bail!("unknown option {bad:?}\n{USAGE}");
    }
    let filter = match filters.as_slice() {
        [] => None,
        [f] => Some(*f),
        more => bail!("at most one filter, got {more:?}"),
    };
    match cmd.as_str() {
        "gen" => generate(filter, flag("--check")),
        "list" => {
            for c in chapters() {
                println!("{}", c.slug);
            }
            Ok(ExitCode::SUCCESS)
        }
        "bench-report" => bench_report(filter, !flag("--render-only")).map(|()| ExitCode::SUCCESS),
        "guards" => {
            if !flag("--render-only") {
                crate::guards::run(&bookkit::repo_root(), &selected(filter))?;
            }
            // The tables belong to the pseudo-chapter "guards".
            generate(Some("guards"), false)
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// The chapters whose slug, or one of whose bench targets, contains `filter`.
fn selected(filter: Option<&str>) -> Vec<Chapter> {
    chapters()
        .into_iter()
        .filter(|c| {
            filter.is_none_or(|f| {
                c.slug.contains(f)
                    || c.report
                        .is_some_and(|r| r.benches.iter().any(|b| b.contains(f)))
            })
        })
        .collect()
}

/// `gen`: writes every generated file of the selected chapters, or with `check` compares them.
pub fn generate(filter: Option<&str>, check: bool) -> Result<ExitCode> {
    let root = bookkit::repo_root();
    let files: Vec<_> = selected(filter)
        .into_iter()
        .flat_map(|c| c.generated)
        .collect();
    if files.is_empty() {
        bail!("no chapter matches {filter:?}");
    }
    let needs_pg = files
        .iter()
        .any(|g| matches!(g.source, bookkit::Source::Postgres(_)));
    let db = if needs_pg {
        testkit::postgres_available_blocking()
    } else {
        None
    };
    if check {
        let mut stale = 0;
        for (path, status) in generated::check(&root, &files, db.as_deref())? {
            match status {
                Status::Current => {}
                Status::Stale => {
                    stale += 1;
                    eprintln!("stale: {} (run `cargo xtask gen`)", path.display());
                }
                Status::Skipped(why) => eprintln!("SKIPPED: {why}"),
            }
        }
        if stale > 0 {
            return Ok(ExitCode::FAILURE);
        }
        println!("all {} generated files are current", files.len());
    } else {
        let written = generated::write_all(&root, &files, db.as_deref())?;
        for p in &written {
            println!("wrote {}", p.strip_prefix(&root).unwrap_or(p).display());
        }
        println!(
            "{} of {} generated files changed",
            written.len(),
            files.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `bench-report`: measure (unless `measure` is false), save the results, rewrite the files.
pub fn bench_report(filter: Option<&str>, measure: bool) -> Result<()> {
    let root = bookkit::repo_root();
    let chosen: Vec<Chapter> = selected(filter)
        .into_iter()
        .filter(|c| c.report.is_some())
        .collect();
    if chosen.is_empty() {
        let keys: Vec<_> = chapters()
            .iter()
            .filter(|c| c.report.is_some())
            .map(|c| c.slug)
            .collect();
        bail!("no report matches {filter:?}; reports: {keys:?}");
    }
    let with_book_feature = packages_with_book_feature(&root)?;
    for chapter in &chosen {
        let Some(report) = chapter.report else {
            continue;
        };
        if measure {
            // Build first, then let the build's load decay, so the header's
            // load average is other work's and not the compiler's.
            for bench in report.benches {
                run_cargo(
                    bench_command(&root, chapter, bench, &with_book_feature).arg("--no-run"),
                )?;
            }
            let machine = header_after_quiet(&root)?;
            if machine.busy() {
                eprintln!(
                    "WARNING: load average {:.2} on {} CPUs: other processes will inflate the \
                     measurements (the tables' header will say so)",
                    machine.load_average.unwrap_or(0.0),
                    machine.cores
                );
            }
            let started = SystemTime::now();
            for bench in report.benches {
                run_cargo(&mut bench_command(
                    &root,
                    chapter,
                    bench,
                    &with_book_feature,
                ))?;
            }
            if let Some(step) = report.measure {
                step().with_context(|| format!("measuring {}", chapter.slug))?;
            }
            let mut fresh = results::fresh(chapter.slug, started)?;
            // One header for the whole run: the benches' own processes stamped
            // theirs while they loaded the machine. A result left without one
            // on purpose (the appendix's environment) stays without.
            for r in fresh.iter_mut().filter(|r| r.machine.is_some()) {
                r.machine = Some(machine.clone());
            }
            let criterion_dir = bookkit::target_dir().join("criterion");
            for group in report.criterion_groups {
                for b in read_criterion_group(&criterion_dir, group)? {
                    if b.modified >= started {
                        let mut r = b.to_result(chapter.slug);
                        r.machine = Some(machine.clone());
                        fresh.push(r);
                    }
                }
            }
            if fresh.is_empty() {
                bail!("{}: the run measured nothing", chapter.slug);
            }
            for p in results::save_committed(&fresh)? {
                println!("saved {}", p.strip_prefix(&root).unwrap_or(&p).display());
            }
        }
    }
    // Every chapter's files, not only the measured ones': some tables quote
    // other chapters' figures (parking's per-core table quotes the URL
    // shortener's redirects) and would otherwise go stale.
    generate(None, false)?;
    Ok(())
}

/// `cargo bench -p <package> --bench <bench>`, with the `book` feature where the package has one.
fn bench_command(
    root: &Path,
    chapter: &Chapter,
    bench: &str,
    with_book_feature: &[String],
) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .args(["bench", "-p", chapter.package, "--bench", bench]);
    if with_book_feature.iter().any(|p| p == chapter.package) {
        cmd.args(["--features", "book"]);
    }
    cmd
}

/// Runs `cmd`, failing unless it succeeds.
fn run_cargo(cmd: &mut Command) -> Result<()> {
    println!("running {cmd:?}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} exited with {status}");
    }
    Ok(())
}

/// The longest wait for the load of a build to decay before measuring.
const QUIET_WAIT: Duration = Duration::from_secs(120);

/// The run's header, detected once the one-minute load average is below half
/// the cores, or after [`QUIET_WAIT`] (then the header says the machine was busy).
fn header_after_quiet(root: &Path) -> Result<MachineHeader> {
    let cores = bookkit::machine::available_cores() as f64;
    let waited = Instant::now();
    while waited.elapsed() < QUIET_WAIT {
        match bookkit::machine::load_average() {
            Some(l) if l > 0.5 * cores => {
                println!("load average {l:.2} on {cores} CPUs: waiting for it to settle");
                std::thread::sleep(Duration::from_secs(10));
            }
            _ => break,
        }
    }
    MachineHeader::detect(root)
}

/// Workspace packages that declare a `book` feature (their benches need it).
fn packages_with_book_feature(root: &Path) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Raw {
        packages: Vec<Package>,
    }
    #[derive(Deserialize)]
    struct Package {
        name: String,
        features: std::collections::BTreeMap<String, serde_json::Value>,
    }
    let out = Command::new(cargo())
        .current_dir(root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let raw: Raw = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    Ok(raw
        .packages
        .into_iter()
        .filter(|p| p.features.contains_key("book"))
        .map(|p| p.name)
        .collect())
}

/// `$CARGO` when run under cargo, else `cargo`.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_path_is_under_its_chapter_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for c in chapters() {
            for g in &c.generated {
                assert!(
                    g.path.starts_with("src/") && g.path.contains("/generated/"),
                    "{} of {} is not under src/<slug>/generated/",
                    g.path,
                    c.slug
                );
                assert!(seen.insert(g.path), "{} is generated twice", g.path);
            }
        }
    }

    #[test]
    fn a_filter_selects_by_slug_or_bench_name() {
        let slugs = |f| selected(Some(f)).iter().map(|c| c.slug).collect::<Vec<_>>();
        assert_eq!(slugs("latency"), vec!["appendix"]);
        assert_eq!(slugs("url-shortener"), vec!["url-shortener"]);
        assert!(slugs("no-such-chapter").is_empty());
    }

    #[test]
    fn slugs_are_unique() {
        let mut slugs: Vec<_> = chapters().iter().map(|c| c.slug).collect();
        let n = slugs.len();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), n);
    }
}
