//! `guards [--render-only] [slug]`: every guard a chapter's text relies on,
//! removed one at a time, with the tests that must then fail.
//!
//! For each chapter with a `guards.toml` ([`bookkit::guards`]) the runner
//! 1. syncs a scratch copy of the tree (`target/guards/tree-<slug>`, never the
//!    working tree), so only files that changed are rewritten and cargo
//!    rebuilds little;
//! 2. runs every named test once unmutated: they must all pass, or the run
//!    stops (a caught mutation means nothing if the test failed anyway);
//! 3. for each guard, applies its mutation to the scratch copy, runs only the
//!    named tests with services required, records caught, missed, unviable
//!    (did not compile) or timed out, and restores the file;
//! 4. saves the run in `src/<slug>/generated/guards.json`.
//!
//! The tables are rendered from that file by `cargo xtask gen`, like every
//! generated file. Logs of each run are kept under `target/guards/logs/`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use bookkit::guards::{self, Guard, GuardResult, GuardsRun, Outcome, TestName};
use bookkit::{Chapter, GeneratedFile, MachineHeader};

/// The checking page's summary of every guarded chapter.
pub const SUMMARY_PATH: &str = "src/generated/guards.md";

/// The chapters and blocks that keep a `guards.toml`, in book order; each
/// gets `src/<slug>/generated/guards.md`, and a row in the summary.
macro_rules! guarded {
    ($($slug:literal),* $(,)?) => {
        /// Slugs of the chapters and blocks with guards, in book order.
        pub const GUARDED: &[&str] = &[$($slug),*];

        /// The guards' generated files: one table per chapter, and the summary.
        pub fn book() -> Chapter {
            Chapter {
                slug: "guards",
                package: "chapters",
                generated: vec![
                    $(GeneratedFile::pure(
                        concat!("src/", $slug, "/generated/guards.md"),
                        || table($slug),
                    ),)*
                    GeneratedFile::pure(SUMMARY_PATH, summary),
                ],
                report: None,
            }
        }
    };
}

guarded![
    "blocks/idempotency",
    "url-shortener",
    "twitter-timeline",
    "order-management",
    "parking-reservation",
    "inventory",
    "ecommerce"
];

/// A chapter's table, for its failure-modes page (links relative to that page).
fn table(slug: &str) -> Result<String> {
    let root = bookkit::repo_root();
    let list = guards::load(&crate_dir(&root, slug))?
        .with_context(|| format!("{slug} is listed as guarded but has no guards.toml"))?;
    let run = guards::committed(&root, slug)?;
    let up = "../".repeat(slug.split('/').count() + 1);
    Ok(guards::table_markdown(
        &list,
        run.as_ref(),
        &format!("{up}chapters-code/{slug}"),
    ))
}

/// The summary on the checking page: guards listed and their outcomes, per chapter.
fn summary() -> Result<String> {
    let root = bookkit::repo_root();
    let mut rows = Vec::new();
    for slug in GUARDED {
        let list = guards::load(&crate_dir(&root, slug))?.unwrap_or_default();
        rows.push((*slug, list, guards::committed(&root, slug)?));
    }
    let borrowed: Vec<(&str, &[Guard], Option<&GuardsRun>)> = rows
        .iter()
        .map(|(s, l, r)| (*s, l.as_slice(), r.as_ref()))
        .collect();
    Ok(guards::summary_markdown(&borrowed))
}

/// How long one guard's tests may take, compiling included.
const TIMEOUT: Duration = Duration::from_secs(900);

/// The crate directory of a chapter or block slug.
pub fn crate_dir(root: &Path, slug: &str) -> PathBuf {
    root.join("chapters-code").join(slug)
}

/// Runs the guards of every selected chapter that has a `guards.toml`.
pub fn run(root: &Path, chapters: &[bookkit::Chapter]) -> Result<()> {
    let mut any = false;
    for c in chapters {
        let dir = crate_dir(root, c.slug);
        let Some(list) = guards::load(&dir)? else {
            continue;
        };
        any = true;
        let run = run_chapter(root, c.slug, c.package, &list)?;
        guards::save(root, &run)?;
        let [caught, missed, unviable, timed_out] = guards::counts(&run);
        println!(
            "{}: {caught} caught, {missed} missed, {unviable} unviable, {timed_out} timed out",
            c.slug
        );
    }
    ensure!(any, "no selected chapter has a guards.toml");
    Ok(())
}

fn run_chapter(root: &Path, slug: &str, package: &str, list: &[Guard]) -> Result<GuardsRun> {
    // A scratch tree per chapter, so two chapters' guards can run at once.
    let scratch = bookkit::target_dir()
        .join("guards")
        .join(format!("tree-{}", slug.replace('/', "-")));
    let logs = bookkit::target_dir().join("guards").join("logs");
    fs::create_dir_all(&logs)?;
    // Every mutation must apply to today's code before anything runs.
    let rel = Path::new("chapters-code").join(slug);
    for g in list {
        let text = fs::read_to_string(root.join(&rel).join(&g.file))
            .with_context(|| format!("guard {:?}: reading {}", g.guard, g.file))?;
        guards::mutate(g, &text)?;
    }
    sync_tree(root, &scratch)?;
    let machine = MachineHeader::detect(root)?;

    let all: BTreeSet<TestName> = list
        .iter()
        .flat_map(|g| g.tests.iter())
        .map(|t| TestName::parse(t))
        .collect::<Result<_>>()?;
    let all: Vec<TestName> = all.into_iter().collect();
    let log = logs.join(format!("{}-baseline.log", slug.replace('/', "-")));
    println!("{slug}: baseline, {} tests unmutated", all.len());
    let base = run_tests(&scratch, package, &all, &log)?;
    if base.outcome != Outcome::Missed {
        bail!(
            "{slug}: the named tests do not all pass unmutated ({:?}: {:?} {}); see {}",
            base.outcome,
            base.failed,
            base.how,
            log.display()
        );
    }

    let mut results = Vec::new();
    for (i, g) in list.iter().enumerate() {
        let path = scratch.join(&rel).join(&g.file);
        let original = fs::read_to_string(&path)?;
        fs::write(&path, guards::mutate(g, &original)?)?;
        let tests: Vec<TestName> = g
            .tests
            .iter()
            .map(|t| TestName::parse(t))
            .collect::<Result<_>>()?;
        let log = logs.join(format!("{}-{i}.log", slug.replace('/', "-")));
        println!("{slug}: [{}/{}] {}", i + 1, list.len(), g.guard);
        let ran = run_tests(&scratch, package, &tests, &log);
        fs::write(&path, &original)?;
        let ran = ran?;
        println!(
            "    {:?} in {:.0} s {:?}",
            ran.outcome, ran.seconds, ran.failed
        );
        results.push(GuardResult {
            guard: g.guard.clone(),
            file: g.file.clone(),
            find: g.find.clone(),
            replace: g.replace.clone(),
            tests: g.tests.clone(),
            outcome: ran.outcome,
            failed: ran.failed,
            how: ran.how,
            seconds: ran.seconds,
        });
    }
    Ok(GuardsRun {
        slug: slug.to_owned(),
        machine,
        results,
    })
}

/// The outcome of running some tests: `Missed` here means "all passed".
struct Ran {
    outcome: Outcome,
    failed: Vec<String>,
    how: String,
    seconds: f64,
}

fn run_tests(scratch: &Path, package: &str, tests: &[TestName], log: &Path) -> Result<Ran> {
    let started = Instant::now();
    // One cargo run per target: `dedup` alone would run a target twice when
    // a guard lists its tests as postgres, memory, postgres.
    let targets: BTreeSet<&str> = tests.iter().map(|t| t.target.as_str()).collect();
    let mut output = String::new();
    let mut status_ok = true;
    let mut timed_out = false;
    let mut failed = Vec::new();
    for target in targets {
        let names: Vec<&str> = tests
            .iter()
            .filter(|t| t.target == target)
            .map(|t| t.name.as_str())
            .collect();
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.arg("test")
            .arg("--manifest-path")
            .arg(scratch.join("Cargo.toml"))
            .args(["-p", package]);
        if target == "lib" {
            cmd.arg("--lib");
        } else {
            cmd.args(["--test", target]);
        }
        cmd.arg("--").args(&names).arg("--exact");
        cmd.env("SDB_REQUIRE_SERVICES", "1")
            .env("CARGO_TARGET_DIR", bookkit::target_dir());
        let (ok, text, late) = run_bounded(cmd, log, TIMEOUT.saturating_sub(started.elapsed()))?;
        status_ok &= ok;
        timed_out |= late;
        failed.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
                .map(|name| format!("{target}::{name}")),
        );
        output.push_str(&text);
        for name in &names {
            let ran = text.lines().any(|l| {
                l.starts_with(&format!("test {name} ... "))
                    && (l.ends_with("ok") || l.ends_with("FAILED"))
            });
            if !ran && !late && !text.contains("could not compile") {
                bail!(
                    "test {target}::{name} did not run (a typo in guards.toml?); see {}",
                    log.display()
                );
            }
        }
        if late {
            break;
        }
    }
    let how = first_panic(&output);
    let outcome = if timed_out {
        Outcome::TimedOut
    } else if output.contains("could not compile") {
        Outcome::Unviable
    } else if status_ok {
        Outcome::Missed
    } else {
        Outcome::Caught
    };
    Ok(Ran {
        outcome,
        failed,
        how,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Runs `cmd` with its output in `log`, killed (with its children) after `limit`.
/// Returns (succeeded, output, timed out).
fn run_bounded(mut cmd: Command, log: &Path, limit: Duration) -> Result<(bool, String, bool)> {
    use std::os::unix::process::CommandExt as _;
    let file = fs::File::create(log)?;
    cmd.stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .stdin(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().context("starting cargo test")?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > limit {
            // The test binary is cargo's child: kill the whole group.
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = fs::read_to_string(log).unwrap_or_default();
    Ok((status.is_some_and(|s| s.success()), text, status.is_none()))
}

/// The message of the first panic in a test run's output, on one line.
fn first_panic(output: &str) -> String {
    let mut lines = output.lines();
    while let Some(l) = lines.next() {
        if l.starts_with("thread '") && l.contains("panicked at") {
            let message = lines.next().unwrap_or_default().trim();
            return message.chars().take(160).collect();
        }
    }
    String::new()
}

/// Makes `scratch` a copy of the files git knows in `root` (tracked or not
/// ignored), rewriting only files whose contents differ so that cargo
/// rebuilds only what changed.
fn sync_tree(root: &Path, scratch: &Path) -> Result<()> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .context("git ls-files")?;
    ensure!(out.status.success(), "git ls-files failed");
    let files: BTreeSet<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .filter(|p| root.join(p).is_file())
        .collect();
    for rel in &files {
        let src = fs::read(root.join(rel))?;
        let dst = scratch.join(rel);
        if fs::read(&dst).ok().as_deref() != Some(src.as_slice()) {
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&dst, src)?;
        }
    }
    remove_extras(scratch, scratch, &files)
}

/// Deletes files under `dir` that are not in `keep` (paths relative to `base`).
fn remove_extras(base: &Path, dir: &Path, keep: &BTreeSet<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            remove_extras(base, &path, keep)?;
        } else if let Ok(rel) = path.strip_prefix(base)
            && !keep.contains(rel)
        {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_panic_message_is_kept() {
        let output = "test a ... FAILED\n\n---- a stdout ----\n\nthread 'a' panicked at tests/x.rs:3:5:\nboth committed: 2 rows\nnote: run with RUST_BACKTRACE=1\n";
        assert_eq!(first_panic(output), "both committed: 2 rows");
        assert_eq!(first_panic("test a ... ok\n"), "");
    }

    #[test]
    fn the_scratch_tree_follows_the_source_and_drops_extras() {
        let root = tempdir("root");
        let scratch = tempdir("scratch");
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .args(args)
                .current_dir(&root)
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        fs::write(root.join("a.txt"), "one").unwrap();
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/b.txt"), "two").unwrap();
        fs::write(scratch.join("stale.txt"), "old").unwrap();
        sync_tree(&root, &scratch).unwrap();
        assert_eq!(fs::read_to_string(scratch.join("d/b.txt")).unwrap(), "two");
        assert!(!scratch.join("stale.txt").exists());
        fs::write(root.join("a.txt"), "changed").unwrap();
        sync_tree(&root, &scratch).unwrap();
        assert_eq!(
            fs::read_to_string(scratch.join("a.txt")).unwrap(),
            "changed"
        );
        let _ = fs::remove_dir_all(&root);
        let _ = fs::remove_dir_all(&scratch);
    }

    fn tempdir(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("guards-{name}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
