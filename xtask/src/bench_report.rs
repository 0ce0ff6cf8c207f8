//! `cargo xtask bench-report [filter]`: run benchmarks, then write the book's
//! performance tables and plots from what they measured.
//!
//! # Where numbers come from
//!
//! Two kinds of measurement feed a report:
//!
//! - **criterion benchmarks** (`benches/*.rs` of the root package, and the
//!   bench targets of chapter crates). Criterion writes
//!   `target/criterion/<group>/<bench>/new/estimates.json`; [`read_criterion_group`]
//!   reads the mean and the median of its samples with their bootstrap
//!   confidence intervals. A criterion *sample* times a batch of iterations
//!   and divides by the batch size, so its distribution is one of batch means:
//!   it has no per-operation p99. Reports built on criterion show the median
//!   and its confidence interval, not tail latency.
//! - **load tests and simulations** (the loopback load generator in
//!   [`crate::loadgen`], chapter tests that simulate a design). They record a
//!   latency per operation, so they do have p50 and p99, and they write one
//!   [`BenchResult`] per measured configuration with [`write_result`].
//!
//! # The result format: `target/sdb-results/<chapter>/<name>.json`
//!
//! One JSON object per file, one file per measured configuration:
//!
//! ```json
//! {
//!   "version": 1,
//!   "chapter": "url-shortener",
//!   "name": "redirect_cache_hit",
//!   "kind": "load",
//!   "ops": 412345,
//!   "errors": 0,
//!   "duration_s": 5.0,
//!   "ops_per_sec": 82469.0,
//!   "p50_us": 180.0,
//!   "p99_us": 610.0,
//!   "ceiling": "constant_302",
//!   "concurrency": 32,
//!   "cores": 2,
//!   "recorded_at_unix_s": 1767225600,
//!   "extra": { "cache_hit_ratio": 0.99 }
//! }
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `version` | format version, [`RESULT_FORMAT_VERSION`]; readers reject others |
//! | `chapter` | the chapter's slug (its directory under `src/`), `[a-z0-9_-]+` |
//! | `name` | the configuration's stable id within the chapter, `[a-z0-9_-]+`; also the file name |
//! | `kind` | `"load"` (real requests against a real server) or `"simulation"` (a model run in-process) |
//! | `ops` | operations measured (warm-up excluded) |
//! | `errors` | operations that failed or got an unexpected answer |
//! | `duration_s` | wall time of the measured phase, seconds |
//! | `ops_per_sec` | successful operations per second over `duration_s`, or `null` |
//! | `p50_us`, `p99_us` | per-operation latency percentiles in microseconds, or `null` |
//! | `ceiling` | `name` of the result in the same chapter this one is compared to (measured in the same run), or `null` for a ceiling itself |
//! | `concurrency` | operations in flight at once (connections, tasks), or `null` |
//! | `cores` | logical CPUs available to the process that measured |
//! | `recorded_at_unix_s` | when the file was written; a report can check that a result and its ceiling come from one run |
//! | `extra` | any other figures, by name (numbers, strings); shown by the chapter's own report |
//!
//! Optional fields may be absent on read. Producers build a value with
//! [`BenchResult::new`] and its `with_*` methods and call [`write_result`].
//!
//! # Reports, and adding one for a chapter
//!
//! A report is a [`ChapterReport`] in [`registry`]: a `key` (the filter that
//! selects it, usually the chapter slug), the bench targets it reads, an
//! optional `measure` step (for example a load test that writes
//! [`BenchResult`]s) and a `render` function that writes
//! `src/<chapter>/generated/*.md` and `*.svg` through a [`Context`]. To add
//! one:
//!
//! 1. create `xtask/src/bench_report/<chapter>.rs` with
//!    `pub fn render(ctx: &Context) -> anyhow::Result<Vec<PathBuf>>` (and a
//!    `measure` function if the chapter runs its own load test);
//! 2. declare it with `mod <chapter>;` below and add a [`ChapterReport`] entry
//!    to [`registry`], keeping entries sorted by key;
//! 3. start every table with [`Context::header`] (the machine, compiler,
//!    commit and date) and use [`fmt_ns`], [`fmt_ns_round`], [`fmt_ratio`], [`markdown_table`]
//!    and [`plot::log_bar_chart`] so the chapters look alike.
//!
//! [`latency`](self::latency) is the worked example.

mod criterion;
pub mod latency;
pub mod plot;
pub mod url_shortener;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use serde::{Deserialize, Serialize};

pub use self::criterion::{CriterionBench, Interval, read_criterion_group};
use crate::machine::MachineHeader;

/// The version written in (and required of) every result file.
pub const RESULT_FORMAT_VERSION: u32 = 1;

/// How a [`BenchResult`] was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultKind {
    /// Real requests against a real server over loopback.
    Load,
    /// A model of the design run in-process (no network).
    Simulation,
}

/// One measured configuration of a load test or simulation; see the module docs for the format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Format version, [`RESULT_FORMAT_VERSION`].
    pub version: u32,
    /// The chapter's slug, `[a-z0-9_-]+`.
    pub chapter: String,
    /// The configuration's stable id within the chapter, `[a-z0-9_-]+`.
    pub name: String,
    /// Load test or simulation.
    pub kind: ResultKind,
    /// Operations measured, warm-up excluded.
    #[serde(default)]
    pub ops: u64,
    /// Operations that failed or got an unexpected answer.
    #[serde(default)]
    pub errors: u64,
    /// Wall time of the measured phase, seconds.
    #[serde(default)]
    pub duration_s: f64,
    /// Successful operations per second over `duration_s`.
    #[serde(default)]
    pub ops_per_sec: Option<f64>,
    /// Median latency per operation, microseconds.
    #[serde(default)]
    pub p50_us: Option<f64>,
    /// 99th-percentile latency per operation, microseconds.
    #[serde(default)]
    pub p99_us: Option<f64>,
    /// The `name` of the result (same chapter, same run) this one is compared to.
    #[serde(default)]
    pub ceiling: Option<String>,
    /// Operations in flight at once (connections, tasks).
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Logical CPUs available to the measuring process.
    pub cores: usize,
    /// When the result was recorded, seconds since the Unix epoch.
    #[serde(default)]
    pub recorded_at_unix_s: u64,
    /// Other figures by name, for the chapter's own report.
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl BenchResult {
    /// An empty result for `chapter`/`name`, stamped with this machine's cores and the current time.
    pub fn new(chapter: &str, name: &str, kind: ResultKind) -> Self {
        Self {
            version: RESULT_FORMAT_VERSION,
            chapter: chapter.to_string(),
            name: name.to_string(),
            kind,
            ops: 0,
            errors: 0,
            duration_s: 0.0,
            ops_per_sec: None,
            p50_us: None,
            p99_us: None,
            ceiling: None,
            concurrency: None,
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            recorded_at_unix_s: unix_now(),
            extra: BTreeMap::new(),
        }
    }

    /// Sets `ops`, `errors`, `duration_s` and `ops_per_sec`.
    ///
    /// `ops` counts every measured operation, failed ones included;
    /// `ops_per_sec` is `(ops - errors) / elapsed`, the successful rate.
    pub fn with_throughput(mut self, ops: u64, errors: u64, elapsed: std::time::Duration) -> Self {
        self.ops = ops;
        self.errors = errors;
        self.duration_s = elapsed.as_secs_f64();
        let ok = ops.saturating_sub(errors) as f64;
        self.ops_per_sec = (self.duration_s > 0.0).then(|| ok / self.duration_s);
        self
    }

    /// Sets `p50_us` and `p99_us` from a histogram of latencies recorded in microseconds.
    pub fn with_latency_us(mut self, histogram: &hdrhistogram::Histogram<u64>) -> Self {
        if !histogram.is_empty() {
            self.p50_us = Some(histogram.value_at_quantile(0.50) as f64);
            self.p99_us = Some(histogram.value_at_quantile(0.99) as f64);
        }
        self
    }

    /// Names the result this one is compared to.
    pub fn with_ceiling(mut self, ceiling: &str) -> Self {
        self.ceiling = Some(ceiling.to_string());
        self
    }

    /// Sets the number of operations in flight at once.
    pub fn with_concurrency(mut self, concurrency: u32) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// Adds one named figure to `extra`.
    pub fn with_extra(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// `self.ops_per_sec / ceiling.ops_per_sec`, when both are known and the ceiling is non-zero.
    pub fn throughput_ratio(&self, ceiling: &BenchResult) -> Option<f64> {
        match (self.ops_per_sec, ceiling.ops_per_sec) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    }

    /// Checks the version and that `chapter` and `name` are safe file names.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.version == RESULT_FORMAT_VERSION,
            "result format version {} (this code reads {RESULT_FORMAT_VERSION})",
            self.version
        );
        for (what, s) in [("chapter", &self.chapter), ("name", &self.name)] {
            ensure!(is_slug(s), "{what} {s:?} is not [a-z0-9_-]+");
        }
        Ok(())
    }
}

/// Writes `result` to `target/sdb-results/<chapter>/<name>.json`; returns that path.
///
/// The file is replaced atomically, so a report never reads half of it.
pub fn write_result(result: &BenchResult) -> Result<PathBuf> {
    write_result_in(&results_dir(), result)
}

/// Like [`write_result`], under `dir` instead of `target/sdb-results`.
pub fn write_result_in(dir: &Path, result: &BenchResult) -> Result<PathBuf> {
    result.validate()?;
    let chapter_dir = dir.join(&result.chapter);
    std::fs::create_dir_all(&chapter_dir)
        .with_context(|| format!("creating {}", chapter_dir.display()))?;
    let path = chapter_dir.join(format!("{}.json", result.name));
    let tmp = chapter_dir.join(format!(".{}.json.tmp", result.name));
    let mut json = serde_json::to_string_pretty(result).context("serializing a result")?;
    json.push('\n');
    std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(path)
}

/// Every result of `chapter` under `target/sdb-results`, sorted by name (none is not an error).
pub fn read_results(chapter: &str) -> Result<Vec<BenchResult>> {
    read_results_in(&results_dir(), chapter)
}

/// Like [`read_results`], under `dir` instead of `target/sdb-results`.
pub fn read_results_in(dir: &Path, chapter: &str) -> Result<Vec<BenchResult>> {
    ensure!(is_slug(chapter), "chapter {chapter:?} is not [a-z0-9_-]+");
    let chapter_dir = dir.join(chapter);
    let entries = match std::fs::read_dir(&chapter_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", chapter_dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", chapter_dir.display()))?
            .path();
        let is_json = path.extension().is_some_and(|e| e == "json");
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !is_json || hidden {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let result: BenchResult =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        result
            .validate()
            .with_context(|| format!("checking {}", path.display()))?;
        out.push(result);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `target/sdb-results` of this workspace (honouring `CARGO_TARGET_DIR`).
pub fn results_dir() -> PathBuf {
    target_dir(&repo_root()).join("sdb-results")
}

/// The repository root: the parent of the `xtask` crate's directory.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo target directory: `CARGO_TARGET_DIR` (relative to `root` if relative), else `root/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// What a report's `render` (and `measure`) function works with.
pub struct Context {
    /// The repository root.
    pub root: PathBuf,
    /// The cargo target directory (criterion output is in `criterion/` under it).
    pub target_dir: PathBuf,
    /// The machine, compiler, commit and date of this run.
    pub machine: MachineHeader,
    /// When set, criterion results older than this are treated as not measured
    /// (the bench was skipped in this run, for example because Redis was down).
    pub fresh_since: Option<SystemTime>,
}

impl Context {
    /// The header every generated table starts with: a generated-file notice and the machine.
    pub fn header(&self, command: &str) -> String {
        format!(
            "<!-- Generated by `{command}`; do not edit by hand. -->\n\n{}",
            self.machine.to_markdown()
        )
    }

    /// The benchmarks of criterion group `group` measured in this run (see [`Context::fresh_since`]).
    pub fn criterion(&self, group: &str) -> Result<Vec<CriterionBench>> {
        let all = read_criterion_group(&self.target_dir.join("criterion"), group)?;
        Ok(match self.fresh_since {
            Some(since) => all.into_iter().filter(|b| b.modified >= since).collect(),
            None => all,
        })
    }

    /// Every [`BenchResult`] of `chapter` (see [`read_results`]).
    pub fn results(&self, chapter: &str) -> Result<Vec<BenchResult>> {
        read_results_in(&self.target_dir.join("sdb-results"), chapter)
    }

    /// Writes `contents` to `rel` (relative to the repository root, `/`-separated),
    /// creating directories; returns the absolute path.
    pub fn write(&self, rel: &str, contents: &str) -> Result<PathBuf> {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// A chapter's performance report: what selects it, what it measures, how it renders.
#[derive(Clone, Copy)]
pub struct ChapterReport {
    /// The filter that selects this report (`cargo xtask bench-report <key>`), usually the chapter slug.
    pub key: &'static str,
    /// Bench targets (`cargo bench --bench <name>`) to run before rendering.
    pub benches: &'static [&'static str],
    /// An optional measurement run before rendering (a load test writing [`BenchResult`]s).
    pub measure: Option<fn(&Context) -> Result<()>>,
    /// Writes the generated tables and plots; returns the files written.
    pub render: fn(&Context) -> Result<Vec<PathBuf>>,
}

/// Every report of the book, sorted by key. Add a chapter's entry here.
pub fn registry() -> Vec<ChapterReport> {
    vec![
        ChapterReport {
            key: "latency",
            benches: &["latency"],
            measure: None,
            render: latency::render,
        },
        ChapterReport {
            key: "parking-reservation",
            benches: &["parking-reservation"],
            measure: None,
            // The tables are rendered by the chapter crate (`parking_reservation::report`).
            render: |ctx| {
                let results = ctx.results(parking_reservation::report::CHAPTER)?;
                let results = results
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<Vec<_>, _>>()?;
                let header = ctx.header("cargo xtask bench-report parking-reservation");
                let mut written = parking_reservation::report::render_all(&results)?
                    .into_iter()
                    .map(|(path, body)| ctx.write(path, &format!("{header}{body}")))
                    .collect::<Result<Vec<_>>>()?;
                // The reserve path's per-core figure feeds the capacity estimate;
                // regenerate the estimate at once so the two cannot disagree.
                let measured = parking_reservation::report::measured_json(&results, &ctx.machine.one_line())?;
                written.push(ctx.write(parking_reservation::capacity::MEASURED_PATH, &measured)?);
                let capacity: Vec<_> = crate::generate::registry()
                    .into_iter()
                    .filter(|g| g.path == parking_reservation::capacity::CAPACITY_PATH)
                    .collect();
                written.extend(crate::generate::write_all(&ctx.root, &capacity, None)?);
                Ok(written)
            },
        },
        ChapterReport {
            key: "url-shortener",
            benches: &["url-shortener", "url-shortener-load"],
            measure: None,
            render: url_shortener::render,
        },
    ]
}

/// How [`run_with`] behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run the benchmarks (and `measure` steps) first; `false` only re-renders
    /// from the results already on disk, whatever their age (the machine
    /// header then describes the moment of rendering, so use it on the
    /// machine and commit that measured).
    pub measure: bool,
    /// Extra arguments for criterion, after `--` (for example `--quick`).
    pub bench_args: Vec<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            measure: true,
            bench_args: Vec::new(),
        }
    }
}

/// `cargo xtask bench-report [filter]`: runs the matching benches and reports, writing `src/*/generated/`.
///
/// `filter` selects reports whose key contains it and bench targets whose
/// name contains it; `None` selects everything.
pub fn run(filter: Option<&str>) -> Result<()> {
    run_with(filter, &RunOptions::default())
}

/// [`run`] with explicit [`RunOptions`].
pub fn run_with(filter: Option<&str>, options: &RunOptions) -> Result<()> {
    let root = repo_root();
    let metadata = cargo_metadata(&root)?;
    let reports: Vec<ChapterReport> = registry()
        .into_iter()
        .filter(|r| matches(filter, r.key))
        .collect();
    let mut benches: Vec<&BenchTarget> = metadata
        .benches
        .iter()
        .filter(|b| matches(filter, &b.name))
        .collect();
    for r in &reports {
        for name in r.benches {
            let target = metadata
                .benches
                .iter()
                .find(|b| b.name == *name)
                .with_context(|| {
                    format!(
                        "report {:?} reads bench {name:?}, which no package declares",
                        r.key
                    )
                })?;
            if !benches
                .iter()
                .any(|b| b.name == target.name && b.package == target.package)
            {
                benches.push(target);
            }
        }
    }
    if reports.is_empty() && benches.is_empty() {
        let keys: Vec<_> = registry().iter().map(|r| r.key).collect();
        let names: Vec<_> = metadata.benches.iter().map(|b| b.name.as_str()).collect();
        bail!("nothing matches {filter:?}: reports are {keys:?}, bench targets are {names:?}");
    }

    let started = SystemTime::now();
    let mut ctx = Context {
        root: root.clone(),
        target_dir: metadata.target_directory.clone(),
        machine: MachineHeader::detect(&root)?,
        fresh_since: None,
    };
    if options.measure {
        warn_if_busy(ctx.machine.cores);
        for b in &benches {
            run_bench(&root, b, &options.bench_args)?;
        }
        ctx.fresh_since = Some(started);
        for r in &reports {
            if let Some(measure) = r.measure {
                measure(&ctx).with_context(|| format!("measuring for report {:?}", r.key))?;
            }
        }
    }
    for b in &benches {
        if !reports.iter().any(|r| r.benches.contains(&b.name.as_str())) {
            println!(
                "bench {} has no report in xtask::bench_report::registry()",
                b.name
            );
        }
    }
    for r in &reports {
        let written = (r.render)(&ctx).with_context(|| format!("rendering report {:?}", r.key))?;
        for path in written {
            println!(
                "wrote {}",
                path.strip_prefix(&root).unwrap_or(&path).display()
            );
        }
    }
    Ok(())
}

/// Prints a warning when the one-minute load average says other work shares the CPUs.
fn warn_if_busy(cores: usize) {
    let load = std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| {
        s.split_whitespace()
            .next()
            .and_then(|l| l.parse::<f64>().ok())
    });
    if let Some(load) = load.filter(|l| *l > 0.5 * cores as f64) {
        eprintln!(
            "WARNING: load average {load:.2} on {cores} CPUs: other processes will inflate \
             the measurements; re-run on an idle machine for figures worth publishing"
        );
    }
}

/// True when `name` is selected by `filter` (no filter selects everything).
fn matches(filter: Option<&str>, name: &str) -> bool {
    filter.is_none_or(|f| name.contains(f))
}

/// One bench target of a workspace package.
#[derive(Debug, Clone)]
struct BenchTarget {
    package: String,
    name: String,
}

/// What `cargo metadata` tells us: the target directory and every bench target.
struct Metadata {
    target_directory: PathBuf,
    benches: Vec<BenchTarget>,
}

/// Runs `cargo metadata --no-deps` at `root`.
fn cargo_metadata(root: &Path) -> Result<Metadata> {
    #[derive(Deserialize)]
    struct Raw {
        target_directory: PathBuf,
        packages: Vec<Package>,
    }
    #[derive(Deserialize)]
    struct Package {
        name: String,
        targets: Vec<Target>,
    }
    #[derive(Deserialize)]
    struct Target {
        name: String,
        kind: Vec<String>,
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
    let mut benches: Vec<BenchTarget> = raw
        .packages
        .iter()
        .flat_map(|p| {
            p.targets
                .iter()
                .filter(|t| t.kind.iter().any(|k| k == "bench"))
                .map(|t| BenchTarget {
                    package: p.name.clone(),
                    name: t.name.clone(),
                })
        })
        .collect();
    benches.sort_by(|a, b| (&a.package, &a.name).cmp(&(&b.package, &b.name)));
    Ok(Metadata {
        target_directory: raw.target_directory,
        benches,
    })
}

/// `cargo bench -p <package> --bench <name> [-- args]`, output shown as it runs.
fn run_bench(root: &Path, bench: &BenchTarget, args: &[String]) -> Result<()> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .args(["bench", "-p", &bench.package, "--bench", &bench.name]);
    if !args.is_empty() {
        cmd.arg("--").args(args);
    }
    println!("running {cmd:?}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} exited with {status}");
    }
    Ok(())
}

/// `$CARGO` when run under cargo, else `cargo`.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A duration in nanoseconds with three significant digits and a fitting unit: `83.2 ns`, `1.53 ms`.
pub fn fmt_ns(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", sig3(value))
}

/// Like [`fmt_ns`] without trailing zeros, for round figures and axis ticks: `7 ns`, `1 µs`, `1.5 ms`.
pub fn fmt_ns_round(ns: f64) -> String {
    let full = fmt_ns(ns);
    match full.split_once(' ') {
        Some((num, unit)) if num.contains('.') => {
            format!("{} {unit}", num.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => full,
    }
}

/// A ratio with two significant digits and a `×`: `0.84×`, `12×`, `0.031×`.
pub fn fmt_ratio(ratio: f64) -> String {
    if !ratio.is_finite() || ratio <= 0.0 {
        return "n/a".to_string();
    }
    let digits = 1 - ratio.log10().floor() as i32; // two significant digits
    let decimals = digits.clamp(0, 6) as usize;
    format!("{ratio:.decimals$}×")
}

/// `v` with three significant digits (no exponent): `1.23`, `12.3`, `123`.
fn sig3(v: f64) -> String {
    if v >= 99.95 {
        format!("{v:.0}")
    } else if v >= 9.995 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A Markdown table: a header row, the alignment row, then `rows` (cells must not contain `|`).
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|", headers.join(" | "));
    for _ in headers {
        out.push_str("---|");
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Result<Self> {
            let dir = std::env::temp_dir().join(format!(
                "sdb-{tag}-{}-{}",
                std::process::id(),
                unix_now()
            ));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok(Self(dir))
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn results_round_trip_through_the_file() -> Result<()> {
        let dir = TempDir::new("round-trip")?;
        let mut h = hdrhistogram::Histogram::<u64>::new(3)?;
        for us in 1..=1000u64 {
            h.record(us)?;
        }
        let r = BenchResult::new("url-shortener", "redirect_cache_hit", ResultKind::Load)
            .with_throughput(2000, 0, std::time::Duration::from_secs(2))
            .with_latency_us(&h)
            .with_ceiling("constant_302")
            .with_concurrency(32)
            .with_extra("cache_hit_ratio", 0.99);
        let path = write_result_in(dir.path(), &r)?;
        assert!(path.ends_with("url-shortener/redirect_cache_hit.json"));
        let back = read_results_in(dir.path(), "url-shortener")?;
        assert_eq!(back, vec![r.clone()]);
        assert_eq!(r.ops_per_sec, Some(1000.0));
        assert_eq!(r.p50_us, Some(500.0));
        assert_eq!(r.p99_us, Some(990.0));
        assert!(read_results_in(dir.path(), "absent")?.is_empty());
        Ok(())
    }

    #[test]
    fn the_documented_example_parses() -> Result<()> {
        let doc = include_str!("bench_report.rs");
        let start = doc.find("//! ```json\n").context("example start")? + "//! ```json\n".len();
        let end = start + doc[start..].find("//! ```\n").context("example end")?;
        let json: String = doc[start..end]
            .lines()
            .map(|l| l.trim_start_matches("//!"))
            .collect();
        let r: BenchResult = serde_json::from_str(&json)?;
        r.validate()?;
        assert_eq!(r.kind, ResultKind::Load);
        Ok(())
    }

    #[test]
    fn bad_names_and_versions_are_refused() {
        let r = BenchResult::new("../etc", "x", ResultKind::Simulation);
        assert!(write_result_in(&std::env::temp_dir(), &r).is_err());
        let mut r = BenchResult::new("ok", "x", ResultKind::Simulation);
        r.version = 2;
        assert!(r.validate().is_err());
    }

    #[test]
    fn durations_and_ratios_are_formatted() {
        assert_eq!(fmt_ns(0.512), "0.51 ns");
        assert_eq!(fmt_ns(83.24), "83.2 ns");
        assert_eq!(fmt_ns(999.0), "999 ns");
        assert_eq!(fmt_ns(1_530.0), "1.53 µs");
        assert_eq!(fmt_ns(150_000.0), "150 µs");
        assert_eq!(fmt_ns(2_345_678.0), "2.35 ms");
        assert_eq!(fmt_ns_round(7.0), "7 ns");
        assert_eq!(fmt_ns_round(10.0), "10 ns");
        assert_eq!(fmt_ns_round(1_500_000.0), "1.5 ms");
        assert_eq!(fmt_ns_round(500_000.0), "500 µs");
        assert_eq!(fmt_ratio(0.8412), "0.84×");
        assert_eq!(fmt_ratio(12.3), "12×");
        assert_eq!(fmt_ratio(0.0312), "0.031×");
        assert_eq!(fmt_ratio(1.0), "1.0×");
        assert_eq!(fmt_ratio(0.0), "n/a");
    }

    #[test]
    fn filters_select_by_substring() {
        assert!(matches(None, "latency"));
        assert!(matches(Some("latency"), "latency"));
        assert!(matches(Some("url"), "url-shortener"));
        assert!(!matches(Some("latency"), "url-shortener"));
    }

    #[test]
    fn tables_are_markdown() {
        let t = markdown_table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }

    /// Runs the latency benchmarks for real and rewrites `src/appendix/generated/`.
    #[test]
    #[ignore = "runs `cargo bench --bench latency` (about two minutes) and rewrites src/appendix/generated/"]
    fn bench_report_latency_for_real() -> Result<()> {
        run(Some("latency"))
    }

    /// Rewrites `src/appendix/generated/` from the criterion results already on disk.
    #[test]
    #[ignore = "rewrites src/appendix/generated/ from target/criterion"]
    fn bench_report_latency_render_only() -> Result<()> {
        run_with(
            Some("latency"),
            &RunOptions {
                measure: false,
                bench_args: Vec::new(),
            },
        )
    }
}
