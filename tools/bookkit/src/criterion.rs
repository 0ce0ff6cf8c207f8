//! Reading criterion's output: `<criterion dir>/<group>/<bench>/new/*.json`.
//!
//! Criterion writes, per benchmark, `benchmark.json` (its id), `sample.json`
//! (for each sample: the iteration count and the total time) and
//! `estimates.json` (point estimates of the mean, median, ... of the
//! per-iteration time, each with a bootstrap confidence interval). All times
//! are nanoseconds.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::results::{BenchResult, CriterionEstimate, ResultKind};
use serde::Deserialize;

/// A point estimate with its confidence interval, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Interval {
    /// The point estimate.
    pub point: f64,
    /// Lower bound of the confidence interval.
    pub lower: f64,
    /// Upper bound of the confidence interval.
    pub upper: f64,
    /// The interval's confidence level (criterion's default is 0.95).
    pub confidence_level: f64,
}

/// One criterion benchmark's latest results.
#[derive(Debug, Clone, PartialEq)]
pub struct CriterionBench {
    /// The group (`latency` in `latency/redis_ping`).
    pub group: String,
    /// The benchmark's id within its group (`redis_ping`).
    pub id: String,
    /// Mean time per iteration, nanoseconds.
    pub mean_ns: Interval,
    /// Median of the samples' time per iteration, nanoseconds.
    pub median_ns: Interval,
    /// Number of samples (each one timed batch of iterations).
    pub samples: usize,
    /// Iterations timed, over all samples.
    pub iterations: u64,
    /// When criterion wrote these estimates.
    pub modified: SystemTime,
}

#[derive(Deserialize)]
struct RawId {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
}

#[derive(Deserialize)]
struct RawCi {
    confidence_level: f64,
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct RawEstimate {
    confidence_interval: RawCi,
    point_estimate: f64,
}

#[derive(Deserialize)]
struct RawEstimates {
    mean: RawEstimate,
    median: RawEstimate,
}

#[derive(Deserialize)]
struct RawSample {
    iters: Vec<f64>,
}

impl From<RawEstimate> for Interval {
    fn from(e: RawEstimate) -> Self {
        Self {
            point: e.point_estimate,
            lower: e.confidence_interval.lower_bound,
            upper: e.confidence_interval.upper_bound,
            confidence_level: e.confidence_interval.confidence_level,
        }
    }
}

/// Every benchmark of `group` under `criterion_dir` (usually `target/criterion`), sorted by id.
///
/// A group that was never run yields an empty list.
pub fn read_criterion_group(criterion_dir: &Path, group: &str) -> Result<Vec<CriterionBench>> {
    let mut out = Vec::new();
    let group_dir = criterion_dir.join(group);
    let entries = match std::fs::read_dir(&group_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("listing {}", group_dir.display())),
    };
    for entry in entries {
        let new = entry
            .with_context(|| format!("listing {}", group_dir.display()))?
            .path()
            .join("new");
        if !new.join("estimates.json").is_file() {
            continue; // `report/` and benchmarks that never finished
        }
        let id: RawId = read_json(&new.join("benchmark.json"))?;
        if id.group_id != group {
            continue;
        }
        let estimates_path = new.join("estimates.json");
        let estimates: RawEstimates = read_json(&estimates_path)?;
        let sample: RawSample = read_json(&new.join("sample.json"))?;
        let modified = std::fs::metadata(&estimates_path)
            .and_then(|m| m.modified())
            .with_context(|| format!("reading the time of {}", estimates_path.display()))?;
        let id_in_group = match (id.function_id, id.value_str) {
            (Some(f), Some(v)) => format!("{f}/{v}"),
            (Some(f), None) => f,
            (None, Some(v)) => v,
            (None, None) => String::new(),
        };
        out.push(CriterionBench {
            group: id.group_id,
            id: id_in_group,
            mean_ns: estimates.mean.into(),
            median_ns: estimates.median.into(),
            samples: sample.iters.len(),
            iterations: sample.iters.iter().sum::<f64>() as u64,
            modified,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

impl CriterionBench {
    /// This benchmark as a result of `chapter`, named by its id, for committing.
    pub fn to_result(&self, chapter: &str) -> BenchResult {
        let mut r = BenchResult::new(chapter, &self.id, ResultKind::Criterion);
        r.criterion = Some(CriterionEstimate {
            median_ns: self.median_ns.point,
            median_lower_ns: self.median_ns.lower,
            median_upper_ns: self.median_ns.upper,
            mean_ns: self.mean_ns.point,
            samples: self.samples,
            iterations: self.iterations,
        });
        r.extra.insert("group".into(), self.group.clone().into());
        r.extra.insert(
            "confidence_level".into(),
            self.median_ns.confidence_level.into(),
        );
        r
    }

    /// The criterion benchmarks among committed `results` (the inverse of [`Self::to_result`]).
    pub fn from_results(results: &[BenchResult]) -> Vec<Self> {
        results
            .iter()
            .filter_map(|r| {
                let c = r.criterion?;
                let level = r.extra_f64("confidence_level").unwrap_or(0.95);
                Some(Self {
                    group: r
                        .extra
                        .get("group")
                        .and_then(|g| g.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    id: r.name.clone(),
                    mean_ns: Interval {
                        point: c.mean_ns,
                        lower: c.mean_ns,
                        upper: c.mean_ns,
                        confidence_level: level,
                    },
                    median_ns: Interval {
                        point: c.median_ns,
                        lower: c.median_lower_ns,
                        upper: c.median_upper_ns,
                        confidence_level: level,
                    },
                    samples: c.samples,
                    iterations: c.iterations,
                    modified: std::time::UNIX_EPOCH
                        + std::time::Duration::from_secs(r.recorded_at_unix_s),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_criterion_writes() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("sdb-criterion-{}", std::process::id()));
        let new = dir.join("latency").join("redis_ping").join("new");
        std::fs::create_dir_all(&new)?;
        std::fs::create_dir_all(dir.join("latency").join("report"))?;
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"latency","function_id":"redis_ping","value_str":null,"throughput":null,
               "full_id":"latency/redis_ping","directory_name":"latency/redis_ping","title":"latency/redis_ping"}"#,
        )?;
        let est = |p: f64| {
            format!(
                r#"{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{},"upper_bound":{}}},
                   "point_estimate":{p},"standard_error":1.0}}"#,
                p - 1.0,
                p + 1.0
            )
        };
        std::fs::write(
            new.join("estimates.json"),
            format!(
                r#"{{"mean":{},"median":{},"median_abs_dev":{},"slope":null,"std_dev":{}}}"#,
                est(30_000.0),
                est(29_000.0),
                est(10.0),
                est(100.0)
            ),
        )?;
        std::fs::write(
            new.join("sample.json"),
            r#"{"sampling_mode":"Linear","iters":[1.0,2.0,3.0],"times":[30000.0,60000.0,90000.0]}"#,
        )?;
        let got = read_criterion_group(&dir, "latency");
        let _ = std::fs::remove_dir_all(&dir);
        let got = got?;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "redis_ping");
        assert_eq!(got[0].median_ns.point, 29_000.0);
        assert_eq!(got[0].mean_ns.upper, 30_001.0);
        assert_eq!((got[0].samples, got[0].iterations), (3, 6));
        Ok(())
    }
}
