//! Guards proven necessary: a chapter's list of guards, each with the
//! mutation that removes it and the tests that must then fail.
//!
//! A chapter keeps `chapters-code/<crate>/guards.toml`:
//!
//! ```toml
//! [[guard]]
//! guard = "the EXCLUDE constraint on a spot's live reservations"
//! file = "sql/schema.sql"                 # relative to the chapter crate
//! find = "EXCLUDE USING gist (spot_id WITH =, during WITH &&)"
//! replace = ""                            # the text that takes its place
//! tests = ["concurrency::two_drivers_never_share_a_spot"]
//! ```
//!
//! A test is `<target>::<exact name>`: `<target>` is an integration test
//! file under `tests/` (without `.rs`) or `lib` for unit tests, and the name
//! is what `cargo test` prints (`module::test` for a unit test).
//!
//! `cargo xtask guards [slug]` (the runner in `tools/chapters`) applies each
//! mutation to a scratch copy of the tree, runs the named tests, and writes
//! what happened to `src/<slug>/generated/guards.json`; the table on the
//! chapter's failure-modes page ([`table_markdown`]) and the summary on the
//! checking page ([`summary_markdown`]) are rendered from that file, so
//! `cargo xtask gen` reproduces them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::MachineHeader;
use crate::table::markdown_table;

/// The command that measures the guards, named under every table.
pub const COMMAND: &str = "cargo xtask guards";

/// One guard: what it protects, the mutation that removes it, the tests that catch that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// The guard, in a phrase.
    pub guard: String,
    /// The file the mutation edits, relative to the chapter crate.
    pub file: String,
    /// The exact text removed; it must occur exactly once in `file`.
    pub find: String,
    /// The text put in its place.
    pub replace: String,
    /// The tests expected to fail, as `<target>::<exact name>`.
    pub tests: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardsFile {
    guard: Vec<Guard>,
}

/// A test named by a guard: its target (`lib` or a file under `tests/`) and its exact name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TestName {
    /// `lib`, or an integration test file under `tests/` without `.rs`.
    pub target: String,
    /// The exact name `cargo test` prints.
    pub name: String,
}

impl TestName {
    /// Parses `<target>::<exact name>`.
    pub fn parse(spec: &str) -> Result<Self> {
        let (target, name) = spec
            .split_once("::")
            .with_context(|| format!("test {spec:?} is not <target>::<name>"))?;
        ensure!(
            !target.is_empty() && !name.is_empty(),
            "test {spec:?} is not <target>::<name>"
        );
        Ok(Self {
            target: target.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Parses a `guards.toml` and checks each entry's shape (not yet the files).
pub fn parse(text: &str) -> Result<Vec<Guard>> {
    let file: GuardsFile = toml::from_str(text).context("guards.toml does not parse")?;
    for g in &file.guard {
        ensure!(!g.guard.trim().is_empty(), "a guard has no name");
        ensure!(!g.find.is_empty(), "guard {:?}: `find` is empty", g.guard);
        ensure!(
            g.find != g.replace,
            "guard {:?}: `replace` equals `find`, so nothing is mutated",
            g.guard
        );
        ensure!(!g.tests.is_empty(), "guard {:?}: no tests named", g.guard);
        for t in &g.tests {
            TestName::parse(t).with_context(|| format!("guard {:?}", g.guard))?;
        }
    }
    let mut names: Vec<&str> = file.guard.iter().map(|g| g.guard.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("guard {:?} appears twice", w[0]);
    }
    Ok(file.guard)
}

/// Applies `g` to `contents`; an error when `find` does not occur exactly once.
pub fn mutate(g: &Guard, contents: &str) -> Result<String> {
    match contents.matches(&g.find).count() {
        1 => Ok(contents.replacen(&g.find, &g.replace, 1)),
        0 => bail!(
            "guard {:?}: the text to mutate is not in {} (the code changed: update guards.toml)",
            g.guard,
            g.file
        ),
        n => bail!(
            "guard {:?}: the text to mutate occurs {n} times in {}; make `find` unique",
            g.guard,
            g.file
        ),
    }
}

/// Reads and parses `<crate_dir>/guards.toml`; `None` when the chapter has none.
pub fn load(crate_dir: &Path) -> Result<Option<Vec<Guard>>> {
    let path = crate_dir.join("guards.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text)
            .with_context(|| format!("{}", path.display()))
            .map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// What happened when a guard was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A named test failed: the guard is proven necessary.
    Caught,
    /// Every named test passed without the guard: a finding.
    Missed,
    /// The mutated code did not compile, so it proves nothing.
    Unviable,
    /// The tests did not finish within the runner's limit.
    TimedOut,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Caught => "caught",
            Self::Missed => "**missed**",
            Self::Unviable => "**unviable**",
            Self::TimedOut => "timed out",
        }
    }
}

/// One guard's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardResult {
    /// The guard, as named in `guards.toml`.
    pub guard: String,
    /// The mutated file, relative to the chapter crate.
    pub file: String,
    /// The text removed.
    pub find: String,
    /// The text put in its place.
    pub replace: String,
    /// The tests that were run.
    pub tests: Vec<String>,
    /// What happened.
    pub outcome: Outcome,
    /// The tests that failed.
    pub failed: Vec<String>,
    /// The first line of the first failure's message, if any.
    pub how: String,
    /// Seconds the run took, compiling included.
    pub seconds: f64,
}

/// A chapter's run of `cargo xtask guards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardsRun {
    /// The chapter's slug.
    pub slug: String,
    /// The machine, toolchain and commit of the run.
    pub machine: MachineHeader,
    /// One entry per guard, in the order of `guards.toml`.
    pub results: Vec<GuardResult>,
}

/// `src/<slug>/generated/guards.json`, relative to `root`.
pub fn results_path(root: &Path, slug: &str) -> PathBuf {
    root.join("src")
        .join(slug)
        .join("generated")
        .join("guards.json")
}

/// The committed run of `slug`, if there is one.
pub fn committed(root: &Path, slug: &str) -> Result<Option<GuardsRun>> {
    let path = results_path(root, slug);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} does not parse", path.display()))
            .map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `run` where [`committed`] reads it.
pub fn save(root: &Path, run: &GuardsRun) -> Result<()> {
    let path = results_path(root, &run.slug);
    let json = serde_json::to_string_pretty(run)? + "\n";
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
}

/// Text for a table cell: pipes escaped, newlines folded, long text shortened.
fn cell(text: &str, max_chars: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = if one_line.chars().count() > max_chars {
        one_line.chars().take(max_chars).collect::<String>() + "…"
    } else {
        one_line
    };
    short.replace('|', "\\|").replace('`', "'")
}

/// What a mutation changes: `find` and `replace` without their common start
/// and end, cut at whitespace so that no word is split.
pub fn difference<'a>(find: &'a str, replace: &'a str) -> (&'a str, &'a str) {
    let mut prefix: usize = find
        .chars()
        .zip(replace.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    // Back to just after a whitespace, unless both sides end there anyway.
    let at_word = |s: &str, i: usize| {
        i == 0
            || i == s.len()
            || s[..i].ends_with(char::is_whitespace)
            || s[i..].starts_with(char::is_whitespace)
    };
    while !(at_word(find, prefix) && at_word(replace, prefix)) {
        prefix -= find[..prefix].chars().next_back().map_or(1, char::len_utf8);
    }
    let (f, r) = (&find[prefix..], &replace[prefix..]);
    let mut suffix: usize = f
        .chars()
        .rev()
        .zip(r.chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    let word_end = |s: &str, n: usize| at_word(s, s.len() - n);
    while !(word_end(f, suffix) && word_end(r, suffix)) {
        suffix -= f[f.len() - suffix..]
            .chars()
            .next()
            .map_or(1, char::len_utf8);
    }
    (&f[..f.len() - suffix], &r[..r.len() - suffix])
}

/// The result of `g` in `run`, if it ran with today's mutation and tests.
pub fn fresh<'a>(g: &Guard, run: Option<&'a GuardsRun>) -> Option<&'a GuardResult> {
    run?.results.iter().find(|x| {
        (&x.guard, &x.file, &x.find, &x.replace, &x.tests)
            == (&g.guard, &g.file, &g.find, &g.replace, &g.tests)
    })
}

/// The chapter's table: guard, mutation, tests, outcome, time.
///
/// `crate_path` is the chapter crate relative to the page's folder (for the
/// links to the mutated file). Guards listed but not yet run show "not run".
pub fn table_markdown(guards: &[Guard], run: Option<&GuardsRun>, crate_path: &str) -> String {
    let mut out = match run {
        Some(r) => r.machine.to_markdown(),
        None => "**Not run yet.**\n\n".to_owned(),
    };
    out.push_str(&format!("Reproduce with `{COMMAND} <chapter>`.\n\n"));
    let rows: Vec<Vec<String>> = guards
        .iter()
        .map(|g| {
            let fresh = fresh(g, run);
            let (removed, added) = difference(&g.find, &g.replace);
            let change = if added.trim().is_empty() {
                format!("removed `{}`", cell(removed, 60))
            } else if removed.trim().is_empty() {
                format!("added `{}`", cell(added, 60))
            } else {
                format!("`{}` → `{}`", cell(removed, 50), cell(added, 50))
            };
            vec![
                cell(&g.guard, 120),
                format!("[{}]({crate_path}/{}): {change}", g.file, g.file),
                g.tests
                    .iter()
                    .map(|t| format!("`{}`", cell(t, 80)))
                    .collect::<Vec<_>>()
                    .join("<br>"),
                match fresh {
                    Some(x) => x.outcome.label().to_owned(),
                    None => "not run".to_owned(),
                },
                match fresh {
                    Some(x) => format!("{:.0} s", x.seconds),
                    None => String::new(),
                },
            ]
        })
        .collect();
    out.push_str(&markdown_table(
        &[
            "Guard",
            "Mutation",
            "Tests that must fail",
            "Result",
            "Time",
        ],
        &rows,
    ));
    out
}

/// Counts of a run's outcomes: (caught, missed, unviable, timed out).
pub fn counts(run: &GuardsRun) -> [usize; 4] {
    let n = |o: Outcome| run.results.iter().filter(|r| r.outcome == o).count();
    [
        n(Outcome::Caught),
        n(Outcome::Missed),
        n(Outcome::Unviable),
        n(Outcome::TimedOut),
    ]
}

/// The checking page's summary: one row per chapter, counting only results
/// of today's mutations (a guard changed since the run counts as not run).
pub fn summary_markdown(chapters: &[(&str, &[Guard], Option<&GuardsRun>)]) -> String {
    let rows: Vec<Vec<String>> = chapters
        .iter()
        .map(|(slug, guards, run)| {
            let outcomes: Vec<Option<Outcome>> = guards
                .iter()
                .map(|g| fresh(g, *run).map(|r| r.outcome))
                .collect();
            let n = |o: Option<Outcome>| outcomes.iter().filter(|x| **x == o).count().to_string();
            vec![
                format!("`{slug}`"),
                guards.len().to_string(),
                n(Some(Outcome::Caught)),
                n(Some(Outcome::Missed)),
                n(Some(Outcome::Unviable)),
                n(Some(Outcome::TimedOut)),
                n(None),
                run.map_or(String::new(), |r| {
                    format!("`{}`, {}", r.machine.commit, r.machine.date_utc)
                }),
            ]
        })
        .collect();
    markdown_table(
        &[
            "Chapter",
            "Guards",
            "Caught",
            "Missed",
            "Unviable",
            "Timed out",
            "Not run",
            "Run",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[guard]]
guard = "the row lock"
file = "src/store.rs"
find = "FOR UPDATE"
replace = ""
tests = ["races::one_wins", "lib::store::tests::locks"]
"#;

    #[test]
    fn a_good_file_parses() {
        let g = parse(GOOD).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(
            TestName::parse(&g[0].tests[1]).unwrap(),
            TestName {
                target: "lib".into(),
                name: "store::tests::locks".into()
            }
        );
    }

    #[test]
    fn bad_files_are_refused_by_name() {
        let cases = [
            (
                GOOD.replace("tests = [", "extra = 1\ntests = ["),
                "unknown field",
            ),
            (
                GOOD.replace("\"races::one_wins\", ", "\"one_wins\", "),
                "<target>::<name>",
            ),
            (
                GOOD.replace("replace = \"\"", "replace = \"FOR UPDATE\""),
                "nothing is mutated",
            ),
            (format!("{GOOD}{GOOD}"), "appears twice"),
            (
                GOOD.replace("find = \"FOR UPDATE\"", "find = \"\""),
                "`find` is empty",
            ),
        ];
        for (text, expected) in cases {
            let e = format!("{:#}", parse(&text).unwrap_err());
            assert!(e.contains(expected), "{expected:?} not in {e:?}");
        }
    }

    #[test]
    fn a_mutation_must_find_its_text_exactly_once() {
        let g = &parse(GOOD).unwrap()[0];
        assert_eq!(mutate(g, "SELECT 1 FOR UPDATE;").unwrap(), "SELECT 1 ;");
        let missing = mutate(g, "SELECT 1;").unwrap_err().to_string();
        assert!(missing.contains("not in src/store.rs"), "{missing}");
        let twice = mutate(g, "FOR UPDATE FOR UPDATE").unwrap_err().to_string();
        assert!(twice.contains("occurs 2 times"), "{twice}");
    }

    #[test]
    fn a_mutation_is_shown_as_what_it_changes() {
        assert_eq!(
            difference("WHERE id = $1 AND gen = $2 AND x", "WHERE id = $1 AND x"),
            ("gen = $2 AND ", "")
        );
        assert_eq!(
            difference("a clock_timestamp() + 1", "a now() + 1"),
            ("clock_timestamp()", "now()")
        );
        assert_eq!(
            difference(
                "WHERE finished_at IS NOT NULL AND finished_at < t",
                "WHERE created_at < t"
            ),
            ("finished_at IS NOT NULL AND finished_at", "created_at")
        );
        assert_eq!(difference("é 1é é", "é 2é é"), ("1é", "2é"));
        assert_eq!(difference("x < y", "x <= y"), ("<", "<="));
    }

    #[test]
    fn the_table_shows_what_ran_and_what_did_not() {
        let guards = parse(GOOD).unwrap();
        let pending = table_markdown(&guards, None, "../../chapters-code/x");
        assert!(pending.contains("Not run yet"), "{pending}");
        assert!(pending.contains("| not run |"), "{pending}");
        let run = GuardsRun {
            slug: "x".into(),
            machine: MachineHeader {
                cpu_model: "cpu".into(),
                cores: 2,
                rustc: "rustc".into(),
                commit: "abc1234".into(),
                date_utc: "2026-12-07".into(),
                load_average: None,
            },
            results: vec![GuardResult {
                guard: "the row lock".into(),
                file: "src/store.rs".into(),
                find: "FOR UPDATE".into(),
                replace: String::new(),
                tests: guards[0].tests.clone(),
                outcome: Outcome::Caught,
                failed: vec!["races::one_wins".into()],
                how: "assertion failed".into(),
                seconds: 41.2,
            }],
        };
        let done = table_markdown(&guards, Some(&run), "../../chapters-code/x");
        assert!(done.contains("| caught | 41 s |"), "{done}");
        assert!(
            done.contains("[src/store.rs](../../chapters-code/x/src/store.rs)"),
            "{done}"
        );
        // A guard whose tests changed since the run is shown as not run.
        let mut changed = guards.clone();
        changed[0].tests.pop();
        assert!(table_markdown(&changed, Some(&run), "p").contains("| not run |"));
        let summary = summary_markdown(&[("x", &guards, Some(&run)), ("y", &changed, Some(&run))]);
        assert!(
            summary.contains("| `x` | 1 | 1 | 0 | 0 | 0 | 0 |"),
            "{summary}"
        );
        assert!(
            summary.contains("| `y` | 1 | 0 | 0 | 0 | 0 | 1 |"),
            "{summary}"
        );
    }
}
