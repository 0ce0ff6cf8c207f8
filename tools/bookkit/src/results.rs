//! The result format: one JSON file per measured configuration.
//!
//! Benches and measure steps write results to
//! `target/sdb-results/<slug>/<name>.json` ([`write_result`]); the runner of
//! `bench-report` keeps the ones written during its run by saving them under
//! `src/<slug>/generated/results/` ([`save_committed`]), and performance
//! tables are computed from those committed files ([`committed`]).
//!
//! ```json
//! {
//!   "version": 2,
//!   "chapter": "url-shortener",
//!   "name": "redirect_redis",
//!   "kind": "load",
//!   "ops": 412345,
//!   "errors": 0,
//!   "duration_s": 10.0,
//!   "ops_per_sec": 41234.5,
//!   "p50_us": 180.0,
//!   "p99_us": 610.0,
//!   "ceiling": "ceiling_constant_302",
//!   "ratio": { "median": 0.41, "min": 0.38, "max": 0.45 },
//!   "rounds_ops_per_sec": [40100.0, 41900.0, 41000.0, 42100.0, 40500.0],
//!   "concurrency": 32,
//!   "cores": 2,
//!   "recorded_at_unix_s": 1767225600,
//!   "machine": { "cpu_model": "AMD EPYC 7B13", "cores": 2, "rustc": "rustc 1.95.0",
//!                "commit": "abc1234", "date_utc": "2026-11-30", "load_average": 0.4 },
//!   "extra": { "store_loads_per_lookup": 0.0 }
//! }
//! ```
//!
//! `ratio` is the median, minimum and maximum over the rounds of this path's
//! throughput divided by its ceiling's throughput in the same round
//! ([`crate::rounds`]). `machine` is the machine, commit and date of the run
//! that measured the result. Optional fields may be absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, ensure};
use serde::{Deserialize, Serialize};

use crate::machine::MachineHeader;

/// The version written in (and required of) every result file.
pub const RESULT_FORMAT_VERSION: u32 = 2;

/// How a [`BenchResult`] was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultKind {
    /// Real requests against a real server or engine over loopback.
    Load,
    /// A model of the design run in-process (no network).
    Simulation,
    /// A criterion benchmark (see [`BenchResult::criterion`]).
    Criterion,
}

/// The median, minimum and maximum of a set of per-round figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none (NaNs are ignored).
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// Criterion's estimates of one benchmark, in nanoseconds per iteration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CriterionEstimate {
    /// Median of the samples' time per iteration.
    pub median_ns: f64,
    /// Lower bound of the median's confidence interval.
    pub median_lower_ns: f64,
    /// Upper bound of the median's confidence interval.
    pub median_upper_ns: f64,
    /// Mean time per iteration.
    pub mean_ns: f64,
    /// Samples taken (each a timed batch of iterations).
    pub samples: usize,
    /// Iterations timed, over all samples.
    pub iterations: u64,
}

/// One measured configuration; see the module docs for the format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Format version, [`RESULT_FORMAT_VERSION`].
    pub version: u32,
    /// The chapter's slug, `[a-z0-9_-]+`, or a block's `blocks/<slug>`.
    pub chapter: String,
    /// The configuration's stable id within the chapter, `[a-z0-9_-]+`; also the file name.
    pub name: String,
    /// Load test, simulation or criterion benchmark.
    pub kind: ResultKind,
    /// Operations measured, warm-up excluded (failed ones included).
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
    /// Throughput over the ceiling's, per round: median, min, max.
    #[serde(default)]
    pub ratio: Option<Spread>,
    /// Successful operations per second in each round, in order.
    #[serde(default)]
    pub rounds_ops_per_sec: Vec<f64>,
    /// Operations in flight at once (connections, tasks).
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Logical CPUs available to the measuring process.
    pub cores: usize,
    /// When the result was recorded, seconds since the Unix epoch.
    #[serde(default)]
    pub recorded_at_unix_s: u64,
    /// The machine, commit and date of the run that measured this.
    #[serde(default)]
    pub machine: Option<MachineHeader>,
    /// Criterion's estimates, for [`ResultKind::Criterion`].
    #[serde(default)]
    pub criterion: Option<CriterionEstimate>,
    /// Other figures by name, for the chapter's own tables.
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl BenchResult {
    /// An empty result for `chapter`/`name`, stamped with this machine, commit and the current time.
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
            ratio: None,
            rounds_ops_per_sec: Vec::new(),
            concurrency: None,
            cores: crate::machine::available_cores(),
            recorded_at_unix_s: unix_now(),
            machine: process_header(),
            criterion: None,
            extra: BTreeMap::new(),
        }
    }

    /// Sets `ops`, `errors`, `duration_s` and `ops_per_sec` (the successful rate).
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

    /// A figure of `extra` as a number.
    pub fn extra_f64(&self, key: &str) -> Option<f64> {
        self.extra.get(key).and_then(serde_json::Value::as_f64)
    }

    /// Successful operations per second per logical CPU of the measuring machine.
    pub fn ops_per_core(&self) -> Option<f64> {
        self.ops_per_sec.map(|ops| ops / self.cores.max(1) as f64)
    }

    /// Checks the version and that `chapter` and `name` are safe file names.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.version == RESULT_FORMAT_VERSION,
            "result format version {} (this code reads {RESULT_FORMAT_VERSION})",
            self.version
        );
        ensure!(
            is_chapter(&self.chapter),
            "chapter {:?} is not [a-z0-9_-]+ or blocks/[a-z0-9_-]+",
            self.chapter
        );
        ensure!(
            is_slug(&self.name),
            "name {:?} is not [a-z0-9_-]+",
            self.name
        );
        Ok(())
    }
}

/// Writes `result` to `target/sdb-results/<chapter>/<name>.json`; returns that path.
pub fn write_result(result: &BenchResult) -> Result<PathBuf> {
    write_result_in(&crate::target_dir().join("sdb-results"), result)
}

/// Writes `result` to `<dir>/<chapter>/<name>.json`, atomically; returns that path.
pub fn write_result_in(dir: &Path, result: &BenchResult) -> Result<PathBuf> {
    result.validate()?;
    let chapter_dir = dir.join(&result.chapter);
    write_json(&chapter_dir, result)
}

fn write_json(dir: &Path, result: &BenchResult) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.json", result.name));
    let tmp = dir.join(format!(".{}.json.tmp", result.name));
    let mut json = serde_json::to_string_pretty(result).context("serializing a result")?;
    json.push('\n');
    std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(path)
}

/// Results of `chapter` under `target/sdb-results` written since `since` (this run's), sorted by name.
pub fn fresh(chapter: &str, since: SystemTime) -> Result<Vec<BenchResult>> {
    let since = since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(
        read_dir(&crate::target_dir().join("sdb-results").join(chapter))?
            .into_iter()
            .filter(|r| r.chapter == chapter && r.recorded_at_unix_s >= since)
            .collect(),
    )
}

/// Where a chapter's committed results live, relative to the repository root.
pub fn committed_dir(chapter: &str) -> String {
    format!("src/{chapter}/generated/results")
}

/// The committed results of `chapter` (`src/<chapter>/generated/results/*.json`), sorted by name.
pub fn committed(chapter: &str) -> Result<Vec<BenchResult>> {
    ensure!(
        is_chapter(chapter),
        "chapter {chapter:?} is not [a-z0-9_-]+ or blocks/[a-z0-9_-]+"
    );
    read_dir(&crate::repo_root().join(committed_dir(chapter)))
}

/// Saves `results` among the committed results of their chapter (replacing same-named files).
pub fn save_committed(results: &[BenchResult]) -> Result<Vec<PathBuf>> {
    results
        .iter()
        .map(|r| {
            r.validate()?;
            write_json(&crate::repo_root().join(committed_dir(&r.chapter)), r)
        })
        .collect()
}

/// The committed result `name` of `chapter`, or an error saying which command measures it.
pub fn find<'a>(results: &'a [BenchResult], name: &str) -> Result<&'a BenchResult> {
    results
        .iter()
        .find(|r| r.name == name)
        .with_context(|| {
            let chapter = results.first().map_or("<chapter>", |r| r.chapter.as_str());
            format!("no result {name:?}: run `cargo xtask bench-report {chapter}` and commit src/{chapter}/generated/results/")
        })
}

/// Every result file in `dir`, sorted by name (a missing directory holds none).
pub fn read_dir(dir: &Path) -> Result<Vec<BenchResult>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
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

/// This process's machine header, detected once: `bench-report` replaces it
/// with the header of the whole run (taken before any bench ran, so its load
/// average is other work's, not the bench's own).
fn process_header() -> Option<MachineHeader> {
    static HEADER: std::sync::OnceLock<Option<MachineHeader>> = std::sync::OnceLock::new();
    HEADER
        .get_or_init(|| MachineHeader::detect(&crate::repo_root()).ok())
        .clone()
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A chapter's slug, or a Part II block's `blocks/<slug>` (its folder under `src/`).
pub(crate) fn is_chapter(s: &str) -> bool {
    match s.strip_prefix("blocks/") {
        Some(block) => is_slug(block),
        None => is_slug(s),
    }
}

pub(crate) fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chapter_is_a_slug_or_a_block_under_blocks() {
        for ok in ["url-shortener", "appendix", "blocks/rate-limiter"] {
            assert!(is_chapter(ok), "{ok}");
        }
        for bad in [
            "",
            "blocks/",
            "blocks/a/b",
            "../x",
            "Blocks/x",
            "other/x",
            "a b",
        ] {
            assert!(!is_chapter(bad), "{bad}");
        }
    }

    #[test]
    fn results_round_trip_through_a_file() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("bookkit-rt-{}", std::process::id()));
        let mut h = hdrhistogram::Histogram::<u64>::new(3)?;
        for us in 1..=1000u64 {
            h.record(us)?;
        }
        let r = BenchResult::new("url-shortener", "redirect_redis", ResultKind::Load)
            .with_throughput(2000, 0, std::time::Duration::from_secs(2))
            .with_latency_us(&h)
            .with_ceiling("ceiling")
            .with_concurrency(32)
            .with_extra("hit_ratio", 0.99);
        let path = write_result_in(&dir, &r)?;
        assert!(path.ends_with("url-shortener/redirect_redis.json"));
        let back = read_dir(&dir.join("url-shortener"))?;
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(back, vec![r.clone()]);
        assert_eq!(r.ops_per_sec, Some(1000.0));
        assert_eq!(r.p50_us, Some(500.0));
        assert_eq!(r.p99_us, Some(990.0));
        Ok(())
    }

    #[test]
    fn the_documented_example_parses() -> Result<()> {
        let doc = include_str!("results.rs");
        let start = doc.find("//! ```json\n").context("example start")? + "//! ```json\n".len();
        let end = start + doc[start..].find("//! ```\n").context("example end")?;
        let json: String = doc[start..end]
            .lines()
            .map(|l| l.trim_start_matches("//!"))
            .collect();
        let r: BenchResult = serde_json::from_str(&json)?;
        r.validate()?;
        assert_eq!(r.ratio.map(|s| s.median), Some(0.41));
        Ok(())
    }

    #[test]
    fn bad_names_and_versions_are_refused() {
        let r = BenchResult::new("../etc", "x", ResultKind::Simulation);
        assert!(write_result_in(&std::env::temp_dir(), &r).is_err());
        let mut r = BenchResult::new("ok", "x", ResultKind::Simulation);
        r.version = 1;
        assert!(r.validate().is_err());
    }

    #[test]
    fn spread_is_median_min_max() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 10.0, 4.0]).expect("values");
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 10.0));
        let s = Spread::of(&[1.0, 2.0]).expect("values");
        assert_eq!(s.median, 1.5);
        assert!(Spread::of(&[]).is_none());
    }
}
